//! What several subcommands share: task options, reading the prompt, waiting with a progress
//! display, and JSON output.

use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use ccmp_core::{Ccmp, TaskRecord, TaskRequest, WaitMode};
use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

use crate::exit_codes::UsageError;

/// Options for a new task (`start`, `run`).
#[derive(Debug, Args)]
pub struct TaskOptions {
    /// What Claude Code should do; `-` (or nothing, with a pipe) reads it from stdin.
    pub prompt: Option<String>,
    /// Directory to work in (default: the current directory).
    #[arg(short = 'C', long, value_name = "DIR")]
    pub working_dir: Option<PathBuf>,
    /// Model: sonnet, opus, haiku or a full model id.
    #[arg(short, long)]
    pub model: Option<String>,
    /// Stop the task after this long: seconds, or a duration like 30m or 2h.
    #[arg(long, value_name = "DURATION", allow_negative_numbers = true)]
    pub timeout: Option<String>,
    /// Do not pass --dangerously-skip-permissions (tools that need permission are denied).
    #[arg(long)]
    pub no_skip_permissions: bool,
    /// Permission mode: acceptEdits, plan, dontAsk, default, auto or bypassPermissions.
    #[arg(long, value_name = "MODE")]
    pub permission_mode: Option<String>,
    /// A tool allowed without asking, e.g. "Bash(git log:*)"; repeat for more.
    #[arg(long = "allowed-tools", value_name = "TOOL")]
    pub allowed_tools: Vec<String>,
    /// Stop after this many turns.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub max_turns: Option<i64>,
    /// Stop after spending this many US dollars.
    #[arg(long, value_name = "USD", allow_negative_numbers = true)]
    pub max_budget_usd: Option<f64>,
    /// Text appended to the system prompt.
    #[arg(long, value_name = "TEXT")]
    pub append_system_prompt: Option<String>,
    /// Run in a new git worktree of the repository, on branch ccmp/ID, leaving the checkout
    /// untouched.
    #[arg(long)]
    pub worktree: bool,
    /// An environment variable for the agent, as NAME=VALUE; repeat for more.
    #[arg(short, long = "env", value_name = "NAME=VALUE")]
    pub env: Vec<String>,
}

impl TaskOptions {
    /// The core request.
    pub fn into_request(self) -> anyhow::Result<TaskRequest> {
        let prompt = read_prompt(self.prompt)?;
        let mut env = std::collections::BTreeMap::new();
        for pair in self.env {
            let (name, value) = pair
                .split_once('=')
                .ok_or_else(|| UsageError(format!("--env takes NAME=VALUE, got `{pair}`")))?;
            env.insert(name.to_owned(), value.to_owned());
        }
        Ok(TaskRequest {
            prompt,
            working_dir: self.working_dir,
            model: self.model,
            timeout_secs: self.timeout.as_deref().map(parse_seconds).transpose()?,
            env,
            isolation: self.worktree.then_some(ccmp_core::Isolation::Worktree),
            ..TaskRequest::default()
        }
        .claude(ccmp_core::ClaudeOptions {
            skip_permissions: Some(!self.no_skip_permissions),
            permission_mode: self.permission_mode,
            allowed_tools: self.allowed_tools,
            max_turns: self.max_turns,
            max_budget_usd: self.max_budget_usd,
            append_system_prompt: self.append_system_prompt,
            ..ccmp_core::ClaudeOptions::default()
        }))
    }
}

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
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value)?;
    writeln!(out)?;
    Ok(())
}

/// Waits for a task to finish, showing its progress on stderr when stderr is a terminal.
pub async fn wait_with_progress(ccmp: &Ccmp, record: &TaskRecord) -> anyhow::Result<TaskRecord> {
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    bar.set_style(ProgressStyle::with_template("{spinner} {msg}").expect("valid template"));
    bar.enable_steady_tick(Duration::from_millis(120));
    let id = [record.id.to_string()];
    let done = loop {
        let outcome = ccmp
            .wait(&id, WaitMode::All, Duration::from_millis(500))
            .await?;
        if let Some(done) = outcome.finished.into_iter().next() {
            break done;
        }
        if let Some(current) = outcome.pending.first() {
            let view = ccmp.view(current);
            let secs = crate::render::elapsed(&view).unwrap_or(0);
            bar.set_message(format!(
                "{} {} {}: {}",
                view.short_id,
                view.status,
                crate::render::duration(secs),
                view.progress.as_deref().unwrap_or("starting")
            ));
        }
    };
    bar.finish_and_clear();
    Ok(done)
}

/// Waits for a task with a progress display, then prints its result (or its JSON view) on stdout
/// and, if it did not succeed, why on stderr. Exits 0 only if it succeeded.
pub async fn wait_and_report(
    ccmp: &Ccmp,
    record: &TaskRecord,
    json: bool,
) -> anyhow::Result<std::process::ExitCode> {
    let done = wait_with_progress(ccmp, record).await?;
    let view = ccmp.view(&done);
    if json {
        print_json(&view)?;
    } else if let Some(result) = &view.result {
        out!("{result}");
    }
    if done.status == ccmp_core::TaskStatus::Succeeded {
        return Ok(std::process::ExitCode::SUCCESS);
    }
    err!(
        "{} {}: {}",
        view.short_id,
        crate::render::state(done.status),
        view.error.as_deref().unwrap_or("")
    );
    Ok(std::process::ExitCode::from(crate::exit_codes::TASK_FAILED))
}

/// Prints a task that was just started: its short id, or its JSON view with `json`.
pub fn print_started(ccmp: &Ccmp, record: &TaskRecord, json: bool) -> anyhow::Result<()> {
    if json {
        print_json(&ccmp.view(record))
    } else {
        out!("{}", record.id.short());
        Ok(())
    }
}
