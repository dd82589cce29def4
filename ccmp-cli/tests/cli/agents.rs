//! Codex tasks beside Claude Code ones, with `fake-codex` (which replays the recorded Codex CLI
//! 0.171 transcripts): the same tasks, queue, groups, dependencies and follow-ups.

use ccmp_tests::Sandbox;
use predicates::prelude::*;
use pretty_assertions::assert_eq;

use crate::{ccmp, status_json, until_progress, until_state};

fn start(sandbox: &Sandbox, args: &[&str]) -> String {
    let out = ccmp(sandbox).arg("start").args(args).assert().success();
    String::from_utf8(out.get_output().stdout.clone())
        .unwrap()
        .trim()
        .to_owned()
}

#[test]
fn a_codex_task_succeeds_with_its_thread_and_a_reply_resumes_the_thread() {
    let sandbox = Sandbox::new();
    let id = start(&sandbox, &["--agent", "codex", "FAKE_TOOL write tests"]);
    let done = until_state(&sandbox, &id, "succeeded");
    let out = ccmp(&sandbox)
        .args(["logs", &id])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let transcript = String::from_utf8(out).unwrap();
    assert!(
        transcript.contains("[command] exit 0: tool-ran"),
        "{transcript}"
    );
    assert_eq!(done["agent"], "codex");
    assert_eq!(done["result"], "FAKE-CODEX-DONE turn 1");
    assert_eq!(done["num_turns"], 1);
    assert_eq!(done["input_tokens"], 100);
    assert!(
        done["cost_usd"].is_null(),
        "Codex reports no cost: absent, never zero"
    );
    let thread = done["session_id"].as_str().unwrap().to_owned();
    assert_eq!(thread.len(), 36, "{thread}");
    let out = ccmp(&sandbox)
        .args(["reply", &id, "now run them"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let reply = String::from_utf8(out).unwrap().trim().to_owned();
    let followed = until_state(&sandbox, &reply, "succeeded");
    assert_eq!(followed["agent"], "codex");
    assert_eq!(followed["session_id"], thread.as_str());
    assert_eq!(followed["result"], "FAKE-CODEX-DONE turn 2");
}

#[test]
fn a_codex_api_error_fails_the_task_with_the_error_and_a_limit_parks_it() {
    let sandbox = Sandbox::new();
    let id = start(&sandbox, &["--agent", "codex", "FAKE_FAIL=400 x"]);
    let failed = until_state(&sandbox, &id, "failed");
    assert_eq!(failed["error"], "Invalid model: nope");
    let limited = start(&sandbox, &["--agent", "codex", "FAKE_FAIL=limit x"]);
    let parked = until_state(&sandbox, &limited, "parked");
    assert!(parked["parked_until"].is_string(), "{parked}");
    ccmp(&sandbox).args(["cancel", &limited]).assert().success();
    until_state(&sandbox, &limited, "cancelled");
}

#[test]
fn claude_only_flags_are_refused_for_codex_and_unknown_agents_named() {
    let sandbox = Sandbox::new();
    ccmp(&sandbox)
        .args(["start", "--agent", "codex", "--permission-mode", "plan", "x"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "--permission-mode is an option of Claude Code, not of Codex; a codex task takes --no-skip-permissions and --sandbox",
        ));
    ccmp(&sandbox)
        .args(["start", "--sandbox", "read-only", "x"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--sandbox is an option of Codex"));
    ccmp(&sandbox)
        .args(["start", "--agent", "gemini-ish", "x"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("claude, codex"));
    ccmp(&sandbox)
        .args([
            "start",
            "--agent",
            "codex",
            "--no-skip-permissions",
            "--sandbox",
            "nowhere",
            "x",
        ])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "read-only, workspace-write or danger-full-access",
        ));
    let out = ccmp(&sandbox)
        .args(["list", "--all", "--json"])
        .output()
        .unwrap();
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list["total"], 0, "nothing was started: {list}");
}

#[test]
fn codex_and_claude_tasks_share_a_groups_limit_and_chain_with_after() {
    let sandbox = Sandbox::new();
    ccmp(&sandbox)
        .args(["group", "add", "mixed", "--parallel", "1"])
        .assert()
        .success();
    let codex = start(&sandbox, &["-g", "mixed", "--agent", "codex", "FAKE_HANG"]);
    until_state(&sandbox, &codex, "running");
    let claude = start(
        &sandbox,
        &["-g", "mixed", "FAKE_SLEEP=0 after the slot frees"],
    );
    let waiting = until_progress(&sandbox, &claude, "in group mixed");
    assert_eq!(waiting["status"], "queued");
    ccmp(&sandbox).args(["cancel", &codex]).assert().success();
    until_state(&sandbox, &claude, "succeeded");
    // A chain across agents: Claude Code, then Codex after it.
    let first = start(&sandbox, &["FAKE_SLEEP=0 first"]);
    let second = start(
        &sandbox,
        &["--agent", "codex", "--after", &first, "FAKE_SLEEP=0 second"],
    );
    until_state(&sandbox, &second, "succeeded");
    // And a Codex failure skips the Claude Code task after it.
    let broken = start(&sandbox, &["--agent", "codex", "FAKE_FAIL=500 broken"]);
    let skipped = start(&sandbox, &["--after", &broken, "FAKE_SLEEP=0 never"]);
    let view = until_state(&sandbox, &skipped, "skipped");
    assert!(view["error"].as_str().unwrap().contains("failed"), "{view}");
    assert_eq!(status_json(&sandbox, &broken)["status"], "failed");
}

#[test]
fn the_default_agent_comes_from_the_group_else_the_settings() {
    let sandbox = Sandbox::new();
    ccmp(&sandbox)
        .args(["settings", "agent=codex"])
        .assert()
        .success()
        .stdout(predicate::str::contains("agent                codex"));
    ccmp(&sandbox)
        .args(["group", "add", "reviews", "--agent", "claude"])
        .assert()
        .success();
    let machine = start(&sandbox, &["FAKE_SLEEP=0 machine default"]);
    let grouped = start(&sandbox, &["-g", "reviews", "FAKE_SLEEP=0 group default"]);
    let chosen = start(&sandbox, &["--agent", "claude", "FAKE_SLEEP=0 chosen"]);
    assert_eq!(
        until_state(&sandbox, &machine, "succeeded")["agent"],
        "codex"
    );
    assert_eq!(
        until_state(&sandbox, &grouped, "succeeded")["agent"],
        "claude"
    );
    assert_eq!(
        until_state(&sandbox, &chosen, "succeeded")["agent"],
        "claude"
    );
    ccmp(&sandbox)
        .args(["settings", "agent=gemini-ish"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("claude, codex"));
}

#[test]
fn gemini_tasks_refuse_the_settings_of_other_agents() {
    let sandbox = Sandbox::new();
    ccmp(&sandbox)
        .args(["start", "--agent", "gemini", "--sandbox", "read-only", "x"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "--sandbox is an option of Codex, not of Gemini CLI; a gemini task takes --no-skip-permissions",
        ));
    ccmp(&sandbox)
        .args(["start", "--agent", "gemini", "--max-turns", "3", "x"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "--max-turns is an option of Claude Code",
        ));
}

#[test]
fn a_gemini_task_runs_in_the_same_queue_with_tools_follow_ups_and_errors() {
    let sandbox = Sandbox::new();
    let id = start(&sandbox, &["--agent", "gemini", "FAKE_TOOL review api.py"]);
    let done = until_state(&sandbox, &id, "succeeded");
    assert_eq!(done["agent"], "gemini");
    assert_eq!(done["result"], "FAKE-GEMINI-DONE turn 1");
    assert!(done["cost_usd"].is_null());
    let session = done["session_id"].as_str().unwrap().to_owned();
    let out = ccmp(&sandbox)
        .args(["logs", &id])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let transcript = String::from_utf8(out).unwrap();
    assert!(
        transcript.contains("tool run_shell_command"),
        "{transcript}"
    );
    assert!(transcript.contains("tool-ran"), "{transcript}");
    let out = ccmp(&sandbox)
        .args(["reply", &id, "and the tests"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let reply = String::from_utf8(out).unwrap().trim().to_owned();
    let followed = until_state(&sandbox, &reply, "succeeded");
    assert_eq!(followed["session_id"], session.as_str());
    assert_eq!(followed["result"], "FAKE-GEMINI-DONE turn 2");
    let broken = start(&sandbox, &["--agent", "gemini", "FAKE_FAIL=400 x"]);
    let failed = until_state(&sandbox, &broken, "failed");
    assert_eq!(
        failed["error"],
        "the Gemini API failed with HTTP 400: API key not valid. Please pass a valid API key."
    );
}

#[test]
fn status_and_list_name_an_agent_other_than_claude_code() {
    let sandbox = Sandbox::new();
    let id = start(&sandbox, &["--agent", "codex", "FAKE_SLEEP=0 x"]);
    until_state(&sandbox, &id, "succeeded");
    ccmp(&sandbox)
        .args(["status", &id])
        .assert()
        .success()
        .stdout(predicate::str::contains("agent:    codex"));
    ccmp(&sandbox)
        .args(["list", "--all"])
        .env("COLUMNS", "200")
        .assert()
        .success()
        .stdout(predicate::str::contains("codex"));
}
