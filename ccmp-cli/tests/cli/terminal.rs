//! `ccmp` in a real pseudo-terminal, driven through tmux (installed by `.ci/setup-tmux`): what a
//! person sees while a task runs, when it ends, and when they press Ctrl-C.

use std::time::Duration;

use ccmp_tests::{Sandbox, Tmux, workspace_bin};

use crate::status_json;

const LIMIT: Duration = Duration::from_secs(30);

/// Runs `script` in a terminal, with `ccmp` (a shell function for the binary under test) and
/// ccmp's sandbox environment.
fn terminal(sandbox: &Sandbox, script: &str) -> Tmux {
    let env = [
        ("CCMP_STATE_DIR", sandbox.state().display().to_string()),
        (
            "CCMP_CLAUDE_BIN",
            workspace_bin("fake-claude").display().to_string(),
        ),
        ("CCMP_GRACE_SECS", "1.5".into()),
        ("IS_SANDBOX", "1".into()),
        (
            "CLAUDE_CONFIG_DIR",
            sandbox.path("claude-config").display().to_string(),
        ),
        ("HOME", sandbox.root().display().to_string()),
        ("NO_COLOR", "1".into()),
        ("TERM", "xterm-256color".into()),
    ];
    let ccmp = assert_cmd::cargo::cargo_bin!("ccmp").display().to_string();
    Tmux::run(
        &sandbox.work(),
        &env,
        &format!("ccmp() {{ '{ccmp}' \"$@\"; }}; {script}"),
    )
}

#[test]
fn start_wait_shows_progress_then_ends_with_the_outcome() {
    let sandbox = Sandbox::new();
    let tmux = terminal(&sandbox, "ccmp start --wait FAKE_SLEEP=1 FAKE_TOOLS=2");
    // While it runs: the id, then a live line with the id, the state, the time it has run and
    // what the agent does.
    let running = tmux.until(" running ", LIMIT);
    let id = running.lines().next().unwrap().trim().to_owned();
    let live = running.lines().find(|l| l.contains(" running ")).unwrap();
    assert!(
        live.contains(&format!("{id} running ")) && live.contains("s: "),
        "{running}"
    );
    let done = tmux.until("exit=0", LIMIT);
    let lines: Vec<&str> = done.lines().filter(|l| !l.trim().is_empty()).collect();
    // The id stays on screen; the spinner is gone; the outcome line says how it ended.
    assert_eq!(lines.len(), 3, "{done}");
    assert_eq!(lines[0].trim(), id, "{done}");
    assert!(
        lines[1].starts_with(&format!("{id} succeeded in "))
            && lines[1].ends_with(" · 3 turns · $0.03"),
        "{done}"
    );
}

#[test]
fn ctrl_c_ends_the_wait_and_says_the_task_keeps_running() {
    let sandbox = Sandbox::new();
    let tmux = terminal(&sandbox, "ccmp run FAKE_HANG");
    tmux.until("running", LIMIT);
    tmux.keys(&["C-c"]);
    let screen = tmux.until("exit=130", LIMIT);
    let line = screen
        .lines()
        .find(|l| l.contains("keeps running"))
        .unwrap_or_else(|| panic!("{screen}"));
    let id = line.split_whitespace().next().unwrap();
    assert!(
        line.contains(&format!("`ccmp cancel {id}` stops it")),
        "{screen}"
    );
    assert_eq!(status_json(&sandbox, id)["status"], "running");
    crate::ccmp(&sandbox)
        .args(["cancel", id])
        .assert()
        .success();
}

#[test]
fn wait_prints_each_task_as_it_ends_under_a_live_progress_line() {
    let sandbox = Sandbox::new();
    let quick = crate::start(&sandbox, "FAKE_SLEEP=0.5");
    let slow = crate::start(&sandbox, "FAKE_SLEEP=3");
    let tmux = terminal(&sandbox, &format!("ccmp wait {slow} {quick}"));
    // The quick one is printed as soon as it ends, while the wait goes on for the other.
    let midway = tmux.until("waiting for 1 of 2", LIMIT);
    assert!(
        midway.contains(&format!("{quick} succeeded in ")),
        "{midway}"
    );
    assert!(midway.contains(&slow), "{midway}");
    let done = tmux.until("exit=0", LIMIT);
    let lines: Vec<&str> = done.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 3, "{done}");
    assert!(
        lines[0].starts_with(&format!("{quick} succeeded in ")),
        "{done}"
    );
    assert!(
        lines[1].starts_with(&format!("{slow} succeeded in ")),
        "{done}"
    );
}
