//! Usage limits park a task until they reset (and hold the login's queue meanwhile), API
//! failures are retried when asked, and a parked task outlives its runner. The fake agent
//! reports limits and failures with the lines the real Claude Code 2.1.331 prints.

use std::time::Duration;

use ccmp_tests::{Sandbox, poll};
use predicates::prelude::*;
use serde_json::Value;

use crate::{ccmp, status_json, until_progress};

/// Starts a task with these arguments before the prompt, and returns its short id.
fn start(sandbox: &Sandbox, args: &[&str]) -> String {
    let out = ccmp(sandbox).arg("start").args(args).assert().success();
    String::from_utf8(out.get_output().stdout.clone())
        .unwrap()
        .trim()
        .to_owned()
}

/// Waits (up to a minute: a limit takes a few seconds to reset) until the task is `state`.
fn until(sandbox: &Sandbox, id: &str, state: &str) -> Value {
    poll(
        Duration::from_secs(60),
        &format!("task {id} to be {state}"),
        || {
            let view = status_json(sandbox, id);
            (view["status"] == state).then_some(view)
        },
    )
}

/// The session's prompts as the fake agent kept them.
fn session_prompts(sandbox: &Sandbox, session: &str) -> Value {
    let path = sandbox
        .path("claude-config")
        .join("fake-claude-sessions")
        .join(format!("{session}.json"));
    let history: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    history["prompts"].clone()
}

const OAUTH: &str = "CLAUDE_CODE_OAUTH_TOKEN=sk-ant-oat01-dummy";

#[test]
fn a_usage_limit_parks_the_task_holds_the_queue_and_resumes_the_session_at_the_reset() {
    let sandbox = Sandbox::new();
    let parked = start(
        &sandbox,
        &["-e", OAUTH, "-e", "FAKE_USAGE_LIMIT=3", "refactor db.py"],
    );
    let view = until(&sandbox, &parked, "parked");
    let progress = view["progress"].as_str().unwrap();
    assert!(
        progress.starts_with("usage limit (5-hour) reached; resets at "),
        "{progress}"
    );
    assert!(view["parked_until"].is_string(), "{view}");
    // Another task of the same login waits for the reset instead of starting and failing.
    let queued = start(&sandbox, &["-e", OAUTH, "FAKE_SLEEP=0 second"]);
    let waiting = until_progress(&sandbox, &queued, "usage limit (5-hour) reached");
    assert_eq!(waiting["status"], "queued");
    // A parked task is not finished.
    ccmp(&sandbox)
        .args(["wait", &parked, "--timeout", "0.3"])
        .assert()
        .code(4);
    ccmp(&sandbox)
        .args(["status", &parked])
        .assert()
        .success()
        .stdout(predicate::str::contains("parked  resumes at"));
    let done = until(&sandbox, &parked, "succeeded");
    let attempts = done["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 1, "{done}");
    assert_eq!(attempts[0]["parked"], true);
    assert_eq!(done["num_turns"], 2, "turns add up over the runs");
    // The resumed run continued the same session: it holds the prompt, then the resume.
    let session = done["session_id"].as_str().unwrap();
    let prompts = session_prompts(&sandbox, session);
    assert_eq!(prompts[0], "refactor db.py");
    assert!(
        prompts[1].as_str().unwrap().contains("Continue the task"),
        "{prompts}"
    );
    let second = until(&sandbox, &queued, "succeeded");
    let reset = done["attempts"][0]["ended_at"].as_str().unwrap().to_owned();
    assert!(second["started_at"].as_str().unwrap() > reset.as_str());
}

#[test]
fn a_limit_without_a_reset_time_or_with_parking_off_fails_clearly() {
    let sandbox = Sandbox::new();
    // With an API key the same limit is a plain 429: no reset time, so no guess.
    let api_key = start(
        &sandbox,
        &[
            "-e",
            "ANTHROPIC_API_KEY=sk-ant-dummy",
            "-e",
            "FAKE_USAGE_LIMIT=60",
            "x",
        ],
    );
    let failed = until(&sandbox, &api_key, "failed");
    let error = failed["error"].as_str().unwrap();
    assert!(error.contains("HTTP 429"), "{error}");
    assert!(failed.get("attempts").is_none());
    // Parking off: the limit fails the task, as before.
    let no_park = start(
        &sandbox,
        &["--no-park", "-e", OAUTH, "-e", "FAKE_USAGE_LIMIT=60", "y"],
    );
    let failed = until(&sandbox, &no_park, "failed");
    let error = failed["error"].as_str().unwrap();
    assert!(error.contains("You've hit your 5-hour limit"), "{error}");
}

#[test]
fn api_failures_are_retried_when_asked_and_every_run_is_recorded() {
    let sandbox = Sandbox::new();
    ccmp(&sandbox)
        .args(["settings", "retry_backoff=100ms"])
        .assert()
        .success();
    let env = ["-e", "FAKE_FAIL=529", "-e", "FAKE_FAIL_TIMES=2"];
    let retried = start(
        &sandbox,
        &[&["--retries", "3"][..], &env, &["work"]].concat(),
    );
    let done = until(&sandbox, &retried, "succeeded");
    let attempts = done["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "{done}");
    for attempt in attempts {
        assert_eq!(attempt["parked"], false);
        assert!(
            attempt["why"].as_str().unwrap().contains("HTTP 529"),
            "{attempt}"
        );
    }
    ccmp(&sandbox)
        .args(["status", &retried])
        .assert()
        .success()
        .stdout(
            predicate::str::contains("run 2 ended").and(predicate::str::contains("tried again")),
        );
    // Without retries the failure ends the task, as before.
    let once = start(
        &sandbox,
        &[&["--retries", "0"][..], &env, &["work"]].concat(),
    );
    let failed = until(&sandbox, &once, "failed");
    assert!(failed["error"].as_str().unwrap().contains("HTTP 529"));
    // A failure a retry cannot fix is never retried.
    let bad = start(&sandbox, &["--retries", "3", "-e", "FAKE_FAIL=400", "work"]);
    let failed = until(&sandbox, &bad, "failed");
    assert!(failed.get("attempts").is_none(), "{failed}");
}

#[test]
fn a_parked_task_whose_runner_was_killed_is_taken_up_by_the_next_command() {
    let sandbox = Sandbox::new();
    let parked = start(&sandbox, &["-e", OAUTH, "-e", "FAKE_USAGE_LIMIT=3", "work"]);
    until(&sandbox, &parked, "parked");
    crate::kill_runner(&sandbox, &crate::full_id(&sandbox, &parked));
    // Any command takes it up: it is parked still, not lost, and resumes at the reset.
    let view = status_json(&sandbox, &parked);
    assert_eq!(view["status"], "parked", "{view}");
    let done = until(&sandbox, &parked, "succeeded");
    assert_eq!(done["attempts"].as_array().unwrap().len(), 1);
}

#[test]
fn a_parked_task_can_be_cancelled_and_says_so() {
    let sandbox = Sandbox::new();
    let parked = start(
        &sandbox,
        &["-e", OAUTH, "-e", "FAKE_USAGE_LIMIT=60", "work"],
    );
    until(&sandbox, &parked, "parked");
    ccmp(&sandbox).args(["cancel", &parked]).assert().success();
    let view = until(&sandbox, &parked, "cancelled");
    assert_eq!(view["progress"], "cancelled");
    assert!(view["parked_until"].is_null(), "{view}");
    let error = view["error"].as_str().unwrap();
    assert!(error.ends_with("while parked on a usage limit"), "{error}");
}
