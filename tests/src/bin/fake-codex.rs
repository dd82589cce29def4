//! `fake-codex`: a stand-in for OpenAI's Codex CLI 0.171 (`codex exec --json`) for fast tests. It
//! takes the same flags, reads the prompt from stdin (`-`), and prints the event shapes the
//! recorded transcripts in `tests/fixtures/codex/` show, with the same exit codes: a thread, a
//! turn, the agent's message and usage (exit 0), or an `error` and `turn.failed` (exit 1).
//! Threads persist under `$CODEX_HOME` (else `~/.codex`), so `resume <thread>` continues one and
//! resuming an unknown thread fails as the real CLI does.
//!
//! Knobs, as words in the prompt: `FAKE_SLEEP=<secs>` (a slow reply), `FAKE_HANG` (no reply),
//! `FAKE_FAIL=500` (the API fails), `FAKE_FAIL=400` (the API refuses), `FAKE_FAIL=limit` (a
//! plan's usage limit, resetting in an hour), `FAKE_TOOL` (a shell command, `echo tool-ran`, run
//! and shown as the `command_execution` items Codex prints).

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) != Some("exec") {
        eprintln!("fake-codex: only `codex exec` is faked, got {args:?}");
        return ExitCode::from(2);
    }
    let mut json = false;
    let mut resume = None;
    let mut stdin_prompt = false;
    let mut rest = args[1..].iter();
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "--json" => json = true,
            "--skip-git-repo-check" | "--dangerously-bypass-approvals-and-sandbox" => {}
            "--color" | "--model" | "-m" | "--sandbox" | "-s" => {
                rest.next();
            }
            "resume" => resume = rest.next().cloned(),
            "-" => stdin_prompt = true,
            other => {
                eprintln!("error: unexpected argument '{other}' found");
                return ExitCode::from(2);
            }
        }
    }
    if !json || !stdin_prompt {
        eprintln!("fake-codex: ccmp runs `codex exec --json … -`");
        return ExitCode::from(2);
    }
    let mut prompt = String::new();
    let _ = std::io::stdin().read_to_string(&mut prompt);
    let home = std::env::var_os("CODEX_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".codex")
        })
        .join("fake-codex-threads");
    let _ = std::fs::create_dir_all(&home);
    let (thread, turns_before) = match resume {
        Some(thread) => match std::fs::read_to_string(home.join(&thread)) {
            Ok(turns) => (thread, turns.trim().parse::<u64>().unwrap_or(0)),
            Err(_) => {
                eprintln!(
                    "Error: thread/resume: thread/resume failed: no rollout found for thread id {thread} (code -32600)"
                );
                return ExitCode::from(1);
            }
        },
        None => (uuid::Uuid::new_v4().hyphenated().to_string(), 0),
    };
    let turn = turns_before + 1;
    let _ = std::fs::write(home.join(&thread), turn.to_string());
    let out = |line: serde_json::Value| println!("{line}");
    out(serde_json::json!({"type": "thread.started", "thread_id": thread}));
    out(serde_json::json!({"type": "turn.started"}));
    let word = |name: &str| {
        prompt
            .split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{name}=")).map(str::to_owned))
    };
    if prompt.split_whitespace().any(|w| w == "FAKE_HANG") {
        loop {
            std::thread::sleep(Duration::from_secs(3600));
        }
    }
    if let Some(secs) = word("FAKE_SLEEP").and_then(|s| s.parse::<f64>().ok()) {
        std::thread::sleep(Duration::from_secs_f64(secs));
    }
    if let Some(kind) = word("FAKE_FAIL") {
        let message = match kind.as_str() {
            "400" => "Invalid model: nope".to_owned(),
            "limit" => {
                let at = chrono::Local::now() + chrono::Duration::hours(1);
                format!(
                    "You’ve hit your usage limit. Upgrade to Pro (https://chatgpt.com/explore/pro), visit https://chatgpt.com/settings/usage to purchase more credits or try again at {}.",
                    at.format("%-I:%M %p")
                )
            }
            _ => "We’re currently experiencing high demand, which may cause temporary errors."
                .to_owned(),
        };
        out(serde_json::json!({"type": "error", "message": message}));
        out(serde_json::json!({"type": "turn.failed", "error": {"message": message}}));
        return ExitCode::from(1);
    }
    if prompt.split_whitespace().any(|w| w == "FAKE_TOOL") {
        let command = "/bin/bash -lc 'echo tool-ran'";
        out(
            serde_json::json!({"type": "item.started", "item": {"id": "item_0", "type": "command_execution",
            "command": command, "aggregated_output": "", "exit_code": null, "status": "in_progress"}}),
        );
        let ran = std::process::Command::new("/bin/bash")
            .args(["-lc", "echo tool-ran"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        out(
            serde_json::json!({"type": "item.completed", "item": {"id": "item_0", "type": "command_execution",
            "command": command, "aggregated_output": ran, "exit_code": 0, "status": "completed"}}),
        );
    }
    let text = format!("FAKE-CODEX-DONE turn {turn}");
    out(
        serde_json::json!({"type": "item.completed", "item": {"id": "item_0", "type": "agent_message", "text": text}}),
    );
    out(serde_json::json!({"type": "turn.completed", "usage": {
        "input_tokens": 100 * turn, "cached_input_tokens": 0, "cache_write_input_tokens": 0,
        "output_tokens": 5 * turn, "reasoning_output_tokens": 0
    }}));
    ExitCode::SUCCESS
}
