//! Dependencies (`--after`): chains, fan-in, failure passed down a chain, a dependency cleaned up
//! early, dependencies across groups, and dependencies that do not exist.

use std::collections::HashMap;
use std::path::Path;

use ccmp_tests::Sandbox;
use predicates::prelude::*;

use crate::{ccmp, status_json, until_state};

/// Starts a task with these extra arguments and returns its short id.
fn start_with(sandbox: &Sandbox, args: &[&str], prompt: &str) -> String {
    let out = ccmp(sandbox)
        .arg("start")
        .args(args)
        .arg(prompt)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    String::from_utf8(out).unwrap().trim().to_owned()
}

/// When each task's agent started and ended, by short id, from a `FAKE_RECORD` log.
fn times(events: &Path) -> HashMap<String, (u128, u128)> {
    let mut times: HashMap<String, (u128, u128)> = HashMap::new();
    for line in std::fs::read_to_string(events).unwrap().lines() {
        let parts: Vec<&str> = line.split(' ').collect();
        let short = parts[1].replace('-', "")[..8].to_owned();
        let at: u128 = parts[2].parse().unwrap();
        let entry = times.entry(short).or_default();
        match parts[0] {
            "start" => entry.0 = at,
            _ => entry.1 = at,
        }
    }
    times
}

#[test]
fn a_chain_runs_in_order_and_a_fan_in_waits_for_every_dependency() {
    let sandbox = Sandbox::new();
    let events = sandbox.path("events.log");
    let prompt = |sleep: &str| format!("FAKE_SLEEP={sleep} FAKE_RECORD={}", events.display());
    // A → B → C, and D after both A and F (F ends first).
    let a = start_with(&sandbox, &[], &prompt("0.4"));
    let f = start_with(&sandbox, &[], &prompt("0.1"));
    let b = start_with(&sandbox, &["--after", &a], &prompt("0.1"));
    let c = start_with(&sandbox, &["--after", &b], &prompt("0.1"));
    let d = start_with(&sandbox, &["--after", &a, "--after", &f], &prompt("0"));
    let view = status_json(&sandbox, &c);
    assert_eq!(view["status"], "queued");
    assert_eq!(view["after"], serde_json::json!([b]));
    for id in [&c, &d] {
        until_state(&sandbox, id, "succeeded");
    }
    let times = times(&events);
    let after = |task: &str, dependency: &str| {
        assert!(
            times[task].0 > times[dependency].1,
            "{task} started before {dependency} ended: {times:?}"
        );
    };
    after(&b, &a);
    after(&c, &b);
    after(&d, &a);
    after(&d, &f);
}

#[test]
fn a_failure_skips_every_task_down_the_chain_and_says_which_failed() {
    let sandbox = Sandbox::new();
    let a = start_with(&sandbox, &[], "FAKE_EXIT=2");
    let b = start_with(&sandbox, &["--after", &a], "never runs");
    let c = start_with(&sandbox, &["--after", &b], "never runs either");
    let c_view = until_state(&sandbox, &c, "skipped");
    let b_view = status_json(&sandbox, &b);
    assert_eq!(b_view["status"], "skipped");
    assert_eq!(b_view["error"], format!("dependency {a} failed"));
    assert_eq!(
        c_view["error"],
        format!("dependency {b} was skipped (dependency {a} failed)")
    );
    assert!(c_view["started_at"].is_null(), "a skipped task never runs");
    // The states are listed and waited on like any other end.
    ccmp(&sandbox)
        .args(["list", "--state", "skipped"])
        .assert()
        .success()
        .stdout(predicate::str::contains(&b).and(predicate::str::contains(&c)));
    ccmp(&sandbox)
        .args(["wait", &c])
        .assert()
        .code(1)
        .stdout(predicate::str::contains(format!(
            "{c} skipped: dependency {b} was skipped"
        )));
}

#[test]
fn a_dependency_cleaned_up_before_it_ends_skips_its_dependents() {
    let sandbox = Sandbox::new();
    ccmp(&sandbox)
        .args(["group", "add", "held"])
        .assert()
        .success();
    ccmp(&sandbox)
        .args(["pause", "--group", "held"])
        .assert()
        .success();
    let a = start_with(&sandbox, &["--group", "held"], "waits in a paused group");
    let b = start_with(&sandbox, &["--after", &a], "never runs");
    let waiting = crate::until_progress(&sandbox, &b, "waiting for");
    assert_eq!(waiting["progress"], format!("waiting for {a} (queued)"));
    ccmp(&sandbox)
        .args(["cleanup", "--force", &a])
        .assert()
        .success();
    let b_view = until_state(&sandbox, &b, "skipped");
    let error = b_view["error"].as_str().unwrap();
    // Cleanup cancels a live task first; the dependent sees it cancelled or already gone.
    assert!(
        error == format!("dependency {a} was cleaned up before it ended")
            || error == format!("dependency {a} was cancelled"),
        "{error}"
    );
}

#[test]
fn dependencies_cross_groups() {
    let sandbox = Sandbox::new();
    ccmp(&sandbox)
        .args(["group", "add", "later"])
        .assert()
        .success();
    ccmp(&sandbox)
        .args(["pause", "--group", "later"])
        .assert()
        .success();
    let a = start_with(&sandbox, &["--group", "later"], "FAKE_SLEEP=0");
    let b = start_with(&sandbox, &["--after", &a], "FAKE_SLEEP=0");
    crate::until_progress(&sandbox, &b, "waiting for");
    crate::until_progress(&sandbox, &a, "group later paused");
    ccmp(&sandbox)
        .args(["resume", "--group", "later"])
        .assert()
        .success();
    until_state(&sandbox, &b, "succeeded");
    assert_eq!(status_json(&sandbox, &a)["status"], "succeeded");
}

#[test]
fn dependencies_must_exist_and_a_bad_one_creates_nothing() {
    let sandbox = Sandbox::new();
    ccmp(&sandbox)
        .args(["start", "--after", "ffffffff", "x"])
        .assert()
        .code(3)
        .stderr(predicate::str::contains("--after"));
    ccmp(&sandbox)
        .args(["start", "--group", "nope", "x"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "group nope does not exist (groups: default); make it first with `ccmp group add nope`",
        ));
    ccmp(&sandbox)
        .args(["list", "--all", "--json"])
        .assert()
        .success()
        .stdout(predicate::str::contains("\"total\": 0"));
}
