//! `ccmp status`: a human summary of one task.

use std::process::ExitCode;

use ccmp_core::Ccmp;
use clap::Args;

use super::common::print_json;
use crate::render::{age, bold, dim, duration, short_path, state};

/// Show one task: state, time, turns, cost, progress, result or error, and its log.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Task id or a unique prefix (4+ characters).
    pub id: String,
    /// Print the task's JSON view.
    #[arg(long)]
    pub json: bool,
}

/// How much of a result `status` shows, in lines and in bytes; `logs --stream result` shows the
/// rest. (A result may be one line of many megabytes.)
const RESULT_LINES: usize = 20;
const RESULT_BYTES: usize = 4096;

/// The head of a result: at most [`RESULT_LINES`] lines and [`RESULT_BYTES`] bytes, cut at a
/// character boundary.
fn result_head(result: &str) -> &str {
    let mut end = result
        .match_indices('\n')
        .nth(RESULT_LINES - 1)
        .map_or(result.len(), |(i, _)| i);
    end = end.min(RESULT_BYTES);
    while !result.is_char_boundary(end) {
        end -= 1;
    }
    &result[..end]
}

pub fn run(ccmp: &Ccmp, args: StatusArgs) -> anyhow::Result<ExitCode> {
    let record = ccmp.status(&ccmp.resolve(&args.id)?)?;
    let view = ccmp.view(&record);
    if args.json {
        print_json(&view)?;
        return Ok(ExitCode::SUCCESS);
    }
    let time = match view.elapsed_s.map(|s| s as i64) {
        _ if view.parked_until.is_some() => {
            let until = view.parked_until.unwrap_or(view.created_at);
            let left = (until - chrono::Utc::now()).num_seconds().max(0);
            format!(
                "resumes at {} UTC, in {}",
                until.format("%H:%M"),
                duration(left)
            )
        }
        Some(secs) if view.finished_at.is_some() => format!("ran {}", duration(secs)),
        Some(secs) => format!("running for {}", duration(secs)),
        None => format!("created {} ago", age(view.created_at)),
    };
    out!(
        "{}  {}  {}",
        bold(&view.short_id),
        state(view.status),
        dim(&time)
    );
    let field = |name: &str, value: &str| format!("{:<10}{value}", format!("{name}:"));
    out!(
        "{}",
        field("prompt", &crate::render::head(&view.prompt, 100))
    );
    out!("{}", field("dir", &short_path(&view.working_dir)));
    if view.agent != ccmp_core::AgentKind::Claude {
        out!("{}", field("agent", view.agent.as_str()));
    }
    if let Some(model) = &view.model {
        out!("{}", field("model", model));
    }
    out!(
        "{}",
        field(
            "created",
            &format!(
                "{} ({} ago)",
                view.created_at.format("%Y-%m-%d %H:%M:%S UTC"),
                age(view.created_at)
            )
        )
    );
    let mut numbers = Vec::new();
    if let Some(turns) = view.num_turns {
        numbers.push(format!("{turns} turn{}", if turns == 1 { "" } else { "s" }));
    }
    if let Some(cost) = view.cost_usd {
        numbers.push(format!("${cost:.4}"));
    }
    if let Some(code) = view.exit_code {
        numbers.push(format!("exit {code}"));
    }
    if let Some(signal) = view.signal {
        numbers.push(format!(
            "signal {signal} ({})",
            ccmp_core::signal_name(signal)
        ));
    }
    if !numbers.is_empty() {
        out!("{}", field("stats", &numbers.join(", ")));
    }
    if let Some(session) = &view.session_id {
        out!("{}", field("session", session));
    }
    if let Some(follows) = &view.follows {
        out!("{}", field("follows", &follows[..8.min(follows.len())]));
    }
    if view.group != ccmp_core::DEFAULT_GROUP {
        out!("{}", field("group", &view.group));
    }
    if !view.after.is_empty() {
        out!("{}", field("after", &view.after.join(", ")));
    }
    if let Some(job) = &view.slurm {
        out!("{}", field("slurm", &job.describe()));
    }
    if let Some(worktree) = &view.worktree {
        out!(
            "{}",
            field(
                "worktree",
                &format!(
                    "{} (branch {})",
                    short_path(&worktree.path),
                    worktree.branch
                )
            )
        );
        if let Some(files) = worktree.files_changed {
            let mut text = format!(
                "{files} file{} changed, +{} -{}",
                if files == 1 { "" } else { "s" },
                worktree.insertions.unwrap_or(0),
                worktree.deletions.unwrap_or(0)
            );
            let commits = worktree.commits.unwrap_or(0);
            if commits > 0 {
                text.push_str(&format!(
                    ", {commits} commit{}",
                    if commits == 1 { "" } else { "s" }
                ));
            }
            if worktree.dirty == Some(true) {
                text.push_str(", uncommitted changes");
            }
            out!("{}", field("changes", &text));
        }
    }
    if let Some(progress) = &view.progress {
        out!("{}", field("progress", progress));
    }
    if let Some(pending) = &view.pending_approval {
        out!(
            "{}",
            field(
                "asks",
                &format!(
                    "{} (waiting {}; `ccmp approve {}` or `ccmp deny {} --reason …`)",
                    pending.summary,
                    crate::render::age(pending.asked_at),
                    view.short_id,
                    view.short_id
                )
            )
        );
    }
    for (n, attempt) in view.attempts.iter().enumerate() {
        let cost = attempt
            .cost_usd
            .map(|c| format!(" · {}", crate::render::cost(c)))
            .unwrap_or_default();
        let then = if attempt.parked {
            "parked"
        } else {
            "tried again"
        };
        out!(
            "{}",
            field(
                if n == 0 { "earlier" } else { "" },
                &format!(
                    "run {} ended {}{cost}: {}; {then}",
                    n + 1,
                    attempt.ended_at.format("%H:%M:%S"),
                    crate::render::head(&attempt.why, 120)
                )
            )
        );
    }
    if !view.permission_denials.is_empty() {
        let tools: Vec<&str> = view
            .permission_denials
            .iter()
            .filter_map(|d| d["tool_name"].as_str())
            .collect();
        out!("{}", field("denied", &tools.join(", ")));
    }
    if let Some(error) = &view.error {
        out!("{}", field("error", error));
    }
    // A failed task's result is usually its error message: do not show it twice.
    let repeated = |result: &str| {
        view.error
            .as_deref()
            .is_some_and(|e| e.contains(result.trim()))
    };
    if let Some(result) = view.result.as_ref().filter(|r| !repeated(r)) {
        let shown = result_head(result);
        let mut lines = shown.lines();
        out!("{}", field("result", lines.next().unwrap_or("")));
        for line in lines {
            out!("{:<10}{line}", "");
        }
        if shown.len() < result.len() {
            let rest = &result[shown.len()..];
            out!(
                "{:<10}{}",
                "",
                dim(&format!(
                    "… {} more bytes ({} more lines): ccmp logs {} --stream result",
                    rest.len(),
                    rest.lines().count(),
                    view.short_id
                ))
            );
        }
    }
    if let Some(log) = &view.log_path {
        out!("{}", field("log", &log.display().to_string()));
    }
    Ok(ExitCode::SUCCESS)
}
