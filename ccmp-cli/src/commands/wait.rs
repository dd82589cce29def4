//! `ccmp wait`: wait for tasks to finish.

use std::process::ExitCode;
use std::time::Duration;

use std::collections::HashMap;
use std::io::Write as _;

use ccmp_core::{Ccmp, TaskId, TaskRecord, WaitMode};
use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

use super::common::{parse_seconds, print_json};
use crate::exit_codes;
use crate::render::{bold, head, outcome_line, state};

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
    if args.json {
        let outcome = ccmp.wait(&ids, mode, timeout).await?;
        print_json(&WaitJson {
            finished: outcome.finished.iter().map(|r| ccmp.view(r)).collect(),
            pending: outcome.pending.iter().map(|r| ccmp.view(r)).collect(),
            timed_out: outcome.timed_out,
        })?;
        return Ok(ExitCode::from(exit_code(
            outcome.any_failed(),
            outcome.timed_out,
        )));
    }
    wait_and_print(ccmp, &ids, mode, timeout).await
}

fn exit_code(failed: bool, timed_out: bool) -> u8 {
    if failed {
        exit_codes::TASK_FAILED
    } else if timed_out {
        exit_codes::TIMED_OUT
    } else {
        exit_codes::OK
    }
}

/// One task's line: how it ended (or where it is), and the head of its result.
fn task_line(ccmp: &Ccmp, record: &TaskRecord) -> String {
    let view = ccmp.view(record);
    if !record.status.is_terminal() {
        let progress = view.progress.as_deref().unwrap_or("");
        return format!(
            "{} {} {}",
            bold(&view.short_id),
            state(view.status),
            head(progress, 80)
        );
    }
    let mut line = outcome_line(&view);
    if let (true, Some(result)) = (record.status.is_success(), &view.result) {
        line.push_str(&format!(": {}", head(result, 80)));
    }
    line
}

/// Prints each task as it ends, with a progress line on a terminal until the wait is over.
async fn wait_and_print(
    ccmp: &Ccmp,
    ids: &[TaskId],
    mode: WaitMode,
    timeout: Duration,
) -> anyhow::Result<ExitCode> {
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    bar.set_style(ProgressStyle::with_template("{spinner} {msg}").expect("valid template"));
    bar.enable_steady_tick(Duration::from_millis(120));
    let mut changes = ccmp.watch(ids);
    let deadline = tokio::time::sleep(timeout);
    let interrupt = tokio::signal::ctrl_c();
    tokio::pin!(deadline, interrupt);
    let mut latest: HashMap<TaskId, TaskRecord> = HashMap::new();
    let mut ended: Vec<TaskId> = Vec::new();
    let mut failed = false;
    let (mut timed_out, mut interrupted) = (false, false);
    loop {
        let batch = tokio::select! {
            batch = changes.next() => batch,
            () = &mut deadline => { timed_out = true; break }
            _ = &mut interrupt => { interrupted = true; break }
        };
        let Some(batch) = batch else { break };
        for record in batch? {
            if record.status.is_terminal() && !ended.contains(&record.id) {
                ended.push(record.id);
                failed |= !record.status.is_success();
                let line = task_line(ccmp, &record);
                bar.suspend(|| writeln!(anstream::stdout(), "{line}"))?;
            }
            latest.insert(record.id, record);
        }
        if mode == WaitMode::Any && !ended.is_empty() {
            break;
        }
        // A task that needs approval goes nowhere until someone answers: stop and say so.
        if latest
            .values()
            .any(|r| r.status == ccmp_core::TaskStatus::NeedsApproval)
        {
            break;
        }
        let running: Vec<String> = ids
            .iter()
            .filter(|id| !ended.contains(id))
            .filter_map(|id| latest.get(id))
            .map(|r| {
                format!(
                    "{} {}",
                    r.id.short(),
                    r.progress.as_deref().unwrap_or(r.status.as_str())
                )
            })
            .collect();
        bar.set_message(format!(
            "waiting for {} of {}: {}",
            running.len(),
            ids.len(),
            head(&running.join(", "), 100)
        ));
    }
    bar.finish_and_clear();
    let pending: Vec<&TaskRecord> = ids
        .iter()
        .filter(|id| !ended.contains(id))
        .filter_map(|id| latest.get(id))
        .collect();
    for record in &pending {
        out!("{}", task_line(ccmp, record));
    }
    if interrupted {
        err!(
            "stopped waiting; {} task(s) keep running in the background (`ccmp cancel ID` stops one)",
            pending.len()
        );
        return Ok(ExitCode::from(exit_codes::INTERRUPTED));
    }
    let asking: Vec<&&TaskRecord> = pending
        .iter()
        .filter(|r| r.status == ccmp_core::TaskStatus::NeedsApproval)
        .collect();
    for record in &asking {
        err!("{}", super::common::needs_approval_line(record));
    }
    if !asking.is_empty() {
        return Ok(ExitCode::from(exit_codes::NEEDS_APPROVAL));
    }
    if timed_out && !pending.is_empty() {
        let queued = pending
            .iter()
            .filter(|r| r.status == ccmp_core::TaskStatus::Queued)
            .count();
        match queued {
            0 => err!("timed out with {} task(s) still running", pending.len()),
            n if n == pending.len() => {
                err!("timed out: {n} task(s) never started (still queued; the lines above say why)")
            }
            n => err!(
                "timed out with {} task(s) still running, {n} of them never started (still queued)",
                pending.len()
            ),
        }
    }
    Ok(ExitCode::from(exit_code(
        failed,
        timed_out && !pending.is_empty(),
    )))
}
