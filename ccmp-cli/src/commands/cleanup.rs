//! `ccmp cleanup`: remove tasks and their logs.

use std::process::ExitCode;

use ccmp_core::{Ccmp, CleanupReport, CleanupTarget};
use clap::Args;

use super::common::print_json;
use crate::exit_codes::UsageError;

/// Remove tasks and their logs: by id, all finished ones, or finished ones older than a duration.
#[derive(Debug, Args)]
pub struct CleanupArgs {
    /// Task ids or unique prefixes.
    pub ids: Vec<String>,
    /// Remove every finished task.
    #[arg(long, conflicts_with = "ids")]
    pub finished: bool,
    /// Remove finished tasks that ended longer ago than this, e.g. 7d or 12h.
    #[arg(long, value_name = "DURATION", conflicts_with_all = ["ids", "finished"])]
    pub older_than: Option<String>,
    /// Cancel tasks that are still running, then remove them.
    #[arg(long)]
    pub force: bool,
    /// Print JSON: what was removed and what was kept.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(ccmp: &Ccmp, args: CleanupArgs) -> anyhow::Result<ExitCode> {
    let mut report = CleanupReport::default();
    if let Some(age) = &args.older_than {
        report = ccmp
            .cleanup(CleanupTarget::OlderThan(ccmp_core::parse_duration(age)?))
            .await?;
    } else if args.finished {
        report = ccmp.cleanup(CleanupTarget::Finished).await?;
    } else if args.ids.is_empty() {
        return Err(
            UsageError("say what to remove: task ids, --finished or --older-than".into()).into(),
        );
    } else {
        for id in args.ids {
            let one = ccmp
                .cleanup(CleanupTarget::Task {
                    id,
                    force: args.force,
                })
                .await?;
            report.removed.extend(one.removed);
            report.skipped.extend(one.skipped);
        }
    }
    if args.json {
        print_json(&report)?;
        return Ok(ExitCode::SUCCESS);
    }
    for id in &report.removed {
        out!("removed {id}");
    }
    for skipped in &report.skipped {
        err!("kept {}: {}", skipped.short_id, skipped.reason);
    }
    if report.removed.is_empty() && report.skipped.is_empty() {
        err!("nothing to remove");
    }
    Ok(ExitCode::SUCCESS)
}
