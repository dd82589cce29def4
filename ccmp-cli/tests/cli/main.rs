//! End-to-end tests of the real `ccmp` binary, with the fake agent and a temporary state dir.

mod agents;
mod approvals;
mod browser;
mod commands;
mod cross;
mod dashboard;
mod dependencies;
mod hostile;
mod limits;
mod notify;
mod reboot;
mod snapshots;
mod terminal;

use std::time::Duration;

use assert_cmd::Command;
use ccmp_tests::{Sandbox, poll, workspace_bin};
use serde_json::Value;

/// `ccmp` in a sandbox: its own state dir, the fake agent, HOME at the sandbox root.
pub fn ccmp(sandbox: &Sandbox) -> Command {
    let mut cmd = Command::from_std(ccmp_std(sandbox));
    cmd.timeout(Duration::from_secs(60));
    cmd
}

/// The same, as a plain process command.
pub fn ccmp_std(sandbox: &Sandbox) -> std::process::Command {
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin!("ccmp"));
    cmd.env("CCMP_STATE_DIR", sandbox.state())
        .env("CCMP_CLAUDE_BIN", workspace_bin("fake-claude"))
        .env("CCMP_CODEX_BIN", workspace_bin("fake-codex"))
        .env("CODEX_HOME", sandbox.path("codex-home"))
        .env("CCMP_GEMINI_BIN", workspace_bin("fake-gemini"))
        .env("CCMP_GRACE_SECS", "1.5")
        .env("IS_SANDBOX", "1")
        .env("CLAUDE_CONFIG_DIR", sandbox.path("claude-config"))
        .env("HOME", sandbox.root())
        .env("NO_COLOR", "1")
        .env_remove("RUST_LOG")
        .current_dir(sandbox.work());
    cmd
}

/// Starts a task and returns its short id.
pub fn start(sandbox: &Sandbox, prompt: &str) -> String {
    let out = ccmp(sandbox)
        .args(["start", prompt])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    String::from_utf8(out).unwrap().trim().to_owned()
}

/// The task's JSON view.
pub fn status_json(sandbox: &Sandbox, id: &str) -> Value {
    let out = ccmp(sandbox)
        .args(["status", "--json", id])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    serde_json::from_slice(&out).unwrap()
}

/// Waits until the task is in `state`.
pub fn until_state(sandbox: &Sandbox, id: &str, state: &str) -> Value {
    poll(
        Duration::from_secs(30),
        &format!("task {id} to be {state}"),
        || {
            let view = status_json(sandbox, id);
            (view["status"] == state).then_some(view)
        },
    )
}

/// Waits until the task's progress contains `text`.
pub fn until_progress(sandbox: &Sandbox, id: &str, text: &str) -> Value {
    poll(
        Duration::from_secs(30),
        &format!("task {id} to say {text:?}"),
        || {
            let view = status_json(sandbox, id);
            view["progress"]
                .as_str()
                .is_some_and(|p| p.contains(text))
                .then_some(view)
        },
    )
}

/// A task's full id (without dashes, as its directory is named), by its short id.
pub fn full_id(sandbox: &Sandbox, id: &str) -> String {
    status_json(sandbox, id)["id"]
        .as_str()
        .unwrap()
        .replace('-', "")
}

/// Kills the runner of the task (by full id) with SIGKILL and waits until it is gone.
pub fn kill_runner(sandbox: &Sandbox, full: &str) {
    let pid = sandbox.stored_record(full)["runner"]["pid"]
        .as_i64()
        .unwrap();
    let killed = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    poll(Duration::from_secs(10), "the runner to die", || {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        (stat.is_empty() || stat.contains(") Z ")).then_some(())
    });
}

/// Rewrites the record of the task (by full id) as if the machine had booted since its runner
/// started.
pub fn pretend_rebooted(sandbox: &Sandbox, full: &str) {
    let mut record = sandbox.stored_record(full);
    for who in ["runner", "creator"] {
        record[who]["boot_id"] = "an-earlier-boot".into();
    }
    std::fs::write(
        sandbox.record_path(full),
        serde_json::to_vec(&record).unwrap(),
    )
    .unwrap();
}
