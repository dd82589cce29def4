//! `ccmp cleanup`: remove tasks and their logs.

use std::process::ExitCode;

use ccmp_core::{Ccmp, CleanupOptions, CleanupReport, CleanupTarget};
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
    /// Also delete the ccmp/ID branches of removed worktrees, even if they hold work.
    #[arg(long)]
    pub delete_branch: bool,
    /// Print JSON: what was removed and what was kept.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(ccmp: &Ccmp, args: CleanupArgs) -> anyhow::Result<ExitCode> {
    let options = CleanupOptions {
        delete_branches: args.delete_branch,
    };
    let mut report = CleanupReport::default();
    if let Some(age) = &args.older_than {
        let target = CleanupTarget::OlderThan(ccmp_core::parse_duration(age)?);
        report = ccmp.cleanup_with(target, options).await?;
    } else if args.finished {
        report = ccmp.cleanup_with(CleanupTarget::Finished, options).await?;
    } else if args.ids.is_empty() {
        return Err(
            UsageError("say what to remove: task ids, --finished or --older-than".into()).into(),
        );
    } else {
        // Every id is checked before anything is removed.
        for id in ccmp.resolve_all(&args.ids)? {
            let target = CleanupTarget::Task {
                id,
                force: args.force,
            };
            let one = ccmp.cleanup_with(target, options).await?;
            report.removed.extend(one.removed);
            report.skipped.extend(one.skipped);
            report.worktrees.extend(one.worktrees);
            report.notes.extend(one.notes);
        }
    }
    if args.json {
        print_json(&report)?;
        return Ok(ExitCode::SUCCESS);
    }
    for id in &report.removed {
        out!("removed {id}");
    }
    for worktree in &report.worktrees {
        match (worktree.branch_kept, worktree.saved_changes) {
            (true, true) => err!(
                "kept branch {} (uncommitted changes were committed to it)",
                worktree.branch
            ),
            (true, false) => err!("kept branch {} (it has commits)", worktree.branch),
            (false, _) => err!("deleted branch {}", worktree.branch),
        }
    }
    for note in &report.notes {
        err!("{note}");
    }
    for skipped in &report.skipped {
        err!("kept {}: {}", skipped.short_id, skipped.reason);
    }
    if report.removed.is_empty() && report.skipped.is_empty() {
        err!("nothing to remove");
    }
    Ok(ExitCode::SUCCESS)
}
