//! What several subcommands share: reading the prompt, durations, waiting with a progress
//! display, and JSON output.

use std::io::{IsTerminal, Read, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use ccmp_core::{Ccmp, TaskRecord};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};
use serde::Serialize;

use crate::exit_codes::UsageError;

/// Seconds, or a duration such as `30m`.
pub fn parse_seconds(text: &str) -> anyhow::Result<f64> {
    if let Ok(secs) = text.trim().parse::<f64>() {
        return Ok(secs);
    }
    Ok(ccmp_core::parse_duration(text)?.as_secs_f64())
}

/// The prompt from the argument, or from stdin when it is `-` or absent and stdin is a pipe.
pub fn read_prompt(arg: Option<String>) -> anyhow::Result<String> {
    match arg.as_deref() {
        Some("-") => {}
        Some(_) => return Ok(arg.unwrap_or_default()),
        None if std::io::stdin().is_terminal() => {
            return Err(UsageError(
                "give the prompt as an argument, or pipe it on stdin (use `-` to read it from a terminal)".into(),
            )
            .into());
        }
        None => {}
    }
    let mut bytes = Vec::new();
    std::io::stdin()
        .read_to_end(&mut bytes)
        .context("failed to read the prompt from stdin")?;
    String::from_utf8(bytes)
        .map_err(|_| UsageError("the prompt on stdin is not UTF-8 text".into()).into())
}

/// Prints `value` as pretty JSON on stdout.
pub fn print_json(value: &impl Serialize) -> anyhow::Result<()> {
    // Serialized first, so that a closed pipe is an io::Error (a quiet end), not a JSON error.
    let text = serde_json::to_string_pretty(value)?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}")?;
    Ok(())
}

/// How a wait for one task ended.
pub enum Waited {
    /// The task ended.
    Ended(TaskRecord),
    /// Ctrl-C: the wait stopped, the task goes on.
    Interrupted(TaskRecord),
    /// The task waits for a person's approval: it goes nowhere until answered.
    NeedsApproval(TaskRecord),
}

/// Waits for a task to finish, showing its progress on stderr when stderr is a terminal: a loop
/// over the core's change stream, redrawn by the spinner's own tick. Ctrl-C ends the wait, not
/// the task.
pub async fn wait_with_progress(ccmp: &Ccmp, record: &TaskRecord) -> anyhow::Result<Waited> {
    let started = Arc::new(Mutex::new(record.started_at));
    let clock = started.clone();
    let style = ProgressStyle::with_template("{spinner} {prefix} {ran}: {msg}")
        .expect("valid template")
        .with_key(
            "ran",
            move |_: &ProgressState, w: &mut dyn std::fmt::Write| {
                let since = *clock.lock().unwrap_or_else(|e| e.into_inner());
                let secs = since.map_or(0, |start| (chrono::Utc::now() - start).num_seconds());
                let _ = w.write_str(&crate::render::duration(secs));
            },
        );
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    bar.set_style(style);
    bar.enable_steady_tick(Duration::from_millis(120));
    let mut changes = ccmp.watch(&[record.id]);
    let mut last = record.clone();
    let interrupt = tokio::signal::ctrl_c();
    tokio::pin!(interrupt);
    loop {
        let batch = tokio::select! {
            batch = changes.next() => batch,
            _ = &mut interrupt => {
                bar.finish_and_clear();
                return Ok(Waited::Interrupted(last));
            }
        };
        let Some(batch) = batch else { break };
        for current in batch? {
            *started.lock().unwrap_or_else(|e| e.into_inner()) = current.started_at;
            bar.set_prefix(format!("{} {}", current.id.short(), current.status));
            bar.set_message(
                current
                    .progress
                    .clone()
                    .unwrap_or_else(|| "starting".into()),
            );
            last = current;
        }
        if last.status == ccmp_core::TaskStatus::NeedsApproval {
            bar.finish_and_clear();
            return Ok(Waited::NeedsApproval(last));
        }
    }
    bar.finish_and_clear();
    Ok(Waited::Ended(last))
}

/// What a task asks approval for and how to answer, in a line.
pub fn needs_approval_line(record: &TaskRecord) -> String {
    let id = record.id.short();
    let what = record
        .pending_approval
        .as_ref()
        .map_or("a tool use", |p| p.summary.as_str());
    format!(
        "{id} needs your approval for {what}: `ccmp approve {id}` or `ccmp deny {id} --reason …`"
    )
}

/// Says on stderr what a task asks approval for and how to answer; exit code 7.
pub fn report_needs_approval(record: &TaskRecord) -> std::process::ExitCode {
    err!(
        "{}, then `ccmp wait {}`",
        needs_approval_line(record),
        record.id.short()
    );
    std::process::ExitCode::from(crate::exit_codes::NEEDS_APPROVAL)
}

/// Says on stderr that Ctrl-C left the task running, and how to stop it; exit code 130, as
/// for any command a SIGINT ended.
pub fn report_interrupted(record: &TaskRecord) -> std::process::ExitCode {
    let short = record.id.short();
    err!(
        "{short} keeps running in the background; `ccmp cancel {short}` stops it, `ccmp wait {short}` waits again"
    );
    std::process::ExitCode::from(crate::exit_codes::INTERRUPTED)
}

/// Waits for a task with a progress display, then prints its result (or its JSON view) on
/// stdout, and how it ended on stderr. A task that did not succeed prints nothing on stdout but
/// its JSON view with `json`: its error is not a result. Exits 0 only if it succeeded.
pub async fn wait_and_report(
    ccmp: &Ccmp,
    record: &TaskRecord,
    json: bool,
) -> anyhow::Result<std::process::ExitCode> {
    let done = match wait_with_progress(ccmp, record).await? {
        Waited::Ended(done) => done,
        Waited::Interrupted(last) => return Ok(report_interrupted(&last)),
        Waited::NeedsApproval(last) => return Ok(report_needs_approval(&last)),
    };
    let view = ccmp.view(&done);
    let succeeded = done.status.is_success();
    if json {
        print_json(&view)?;
    } else if succeeded {
        print_result(ccmp, &done, &view)?;
    }
    if !json || !succeeded {
        err!("{}", crate::render::outcome_line(&view));
    }
    Ok(if succeeded {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::from(crate::exit_codes::TASK_FAILED)
    })
}

/// Prints a finished task's whole result on stdout.
fn print_result(ccmp: &Ccmp, done: &TaskRecord, view: &ccmp_core::TaskView) -> anyhow::Result<()> {
    if view.result_bytes.is_none() {
        if let Some(result) = &view.result {
            out!("{result}");
        }
        return Ok(());
    }
    // Too long for the record: the whole result is read from its own file, page by page.
    let mut offset = 0;
    loop {
        let range = ccmp_core::LogRange::Bytes {
            offset,
            limit: ccmp_core::MAX_LOG_READ,
        };
        let page = ccmp.output(&done.id, ccmp_core::OutputSource::Result, range)?;
        write!(anstream::stdout(), "{}", page.text)?;
        if page.at_end || page.next_offset == offset {
            break;
        }
        offset = page.next_offset;
    }
    out!("");
    Ok(())
}

/// Prints a task that was just started: its short id, or its JSON view with `json`.
pub fn print_started(ccmp: &Ccmp, record: &TaskRecord, json: bool) -> anyhow::Result<()> {
    if json {
        return print_json(&ccmp.view(record));
    }
    out!("{}", record.id.short());
    if !record.spec.after.is_empty() {
        let ids: Vec<String> = record.spec.after.iter().map(|id| id.short()).collect();
        eprintln!(
            "queued behind {}: it starts once {} succeeded",
            ids.join(", "),
            if ids.len() == 1 {
                "that task has"
            } else {
                "those tasks have"
            }
        );
    }
    Ok(())
}
