//! `ccmp wait`: wait for tasks to finish.

use std::process::ExitCode;
use std::time::Duration;

use ccmp_core::{Ccmp, WaitMode};
use clap::Args;
use serde::Serialize;

use super::common::{parse_seconds, print_json};
use crate::exit_codes;
use crate::render::{head, state};

/// Wait until the tasks finish (or one of them, with --any), then print how each ended.
#[derive(Debug, Args)]
pub struct WaitArgs {
    /// Task ids or unique prefixes.
    #[arg(required = true)]
    pub ids: Vec<String>,
    /// Return as soon as one task finishes.
    #[arg(long)]
    pub any: bool,
    /// Give up after this long: seconds, or a duration like 10m (default: no limit).
    #[arg(long, value_name = "DURATION")]
    pub timeout: Option<String>,
    /// Print JSON: the finished and pending tasks' views.
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct WaitJson {
    finished: Vec<ccmp_core::TaskView>,
    pending: Vec<ccmp_core::TaskView>,
    timed_out: bool,
}

pub async fn run(ccmp: &Ccmp, args: WaitArgs) -> anyhow::Result<ExitCode> {
    let timeout = match &args.timeout {
        Some(text) => {
            let secs = parse_seconds(text)?;
            if !(secs.is_finite() && secs >= 0.0) {
                return Err(crate::exit_codes::UsageError(format!(
                    "--timeout must be a duration, got `{text}`"
                ))
                .into());
            }
            Duration::from_secs_f64(secs)
        }
        None => ccmp_core::MAX_WAIT,
    };
    let mode = if args.any {
        WaitMode::Any
    } else {
        WaitMode::All
    };
    let ids = ccmp.resolve_all(&args.ids)?;
    let outcome = ccmp.wait(&ids, mode, timeout).await?;
    let failed = outcome.any_failed();
    if args.json {
        print_json(&WaitJson {
            finished: outcome.finished.iter().map(|r| ccmp.view(r)).collect(),
            pending: outcome.pending.iter().map(|r| ccmp.view(r)).collect(),
            timed_out: outcome.timed_out,
        })?;
    } else {
        for record in outcome.finished.iter().chain(&outcome.pending) {
            let view = ccmp.view(record);
            let detail = view
                .error
                .as_deref()
                .or(view.result.as_deref())
                .or(view.progress.as_deref())
                .unwrap_or("");
            out!(
                "{}  {}  {}",
                view.short_id,
                state(view.status),
                head(detail, 100)
            );
        }
        if outcome.timed_out {
            err!(
                "timed out with {} task(s) still running",
                outcome.pending.len()
            );
        }
    }
    let code = if failed {
        exit_codes::TASK_FAILED
    } else if outcome.timed_out {
        exit_codes::TIMED_OUT
    } else {
        exit_codes::OK
    };
    Ok(ExitCode::from(code))
}
