//! The machine-wide limit is a setting in the state dir: set from any frontend, obeyed by every
//! runner whatever the environment of the frontend that started it, changed live.

use std::process::Command;
use std::time::Duration;

use ccmp_tests::{Sandbox, peak_concurrency, poll, workspace_bin};
use serde_json::{Value, json};

use crate::client::{Era, Mcp, server_command, start_from_test_host};

/// `ccmp` in the sandbox, with `CCMP_MAX_PARALLEL` as given.
fn cli(sandbox: &Sandbox, env_limit: &str, args: &[&str]) -> String {
    let output = Command::new(workspace_bin("ccmp"))
        .args(args)
        .env("CCMP_STATE_DIR", sandbox.state())
        .env("CCMP_CLAUDE_BIN", workspace_bin("fake-claude"))
        .env("CCMP_MAX_PARALLEL", env_limit)
        .env("IS_SANDBOX", "1")
        .env("CLAUDE_CONFIG_DIR", sandbox.path("claude-config"))
        .current_dir(sandbox.work())
        .output()
        .unwrap();
    assert!(output.status.success(), "ccmp {args:?}: {output:?}");
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

fn running(mcp: &mut Mcp) -> usize {
    let list = mcp.ok("list_active_tasks", json!({"status": "running"}));
    list["total"].as_u64().unwrap() as usize
}

#[test]
fn a_limit_set_from_the_cli_holds_for_every_frontend_whatever_its_environment() {
    let sandbox = Sandbox::new();
    let events = sandbox.path("events.log");
    let prompt = format!("FAKE_SLEEP=0.3 FAKE_RECORD={}", events.display());
    // The MCP server says 4, the embedding program 6, the CLI 8; the setting says 2.
    let mut mcp = Mcp::start(&sandbox, Era::Modern);
    assert_eq!(cli(&sandbox, "8", &["parallel", "2"]), "2");
    let host = start_from_test_host(&sandbox, 4, &prompt, "6");
    let mut ids: Vec<Value> = (0..4)
        .map(|_| mcp.ok("start_cc_task_async", json!({"prompt": prompt}))["id"].clone())
        .collect();
    for _ in 0..4 {
        ids.push(json!(cli(&sandbox, "8", &["start", &prompt])));
    }
    let output = host.wait_with_output().unwrap();
    assert!(output.status.success());
    ids.extend(
        String::from_utf8(output.stdout)
            .unwrap()
            .lines()
            .map(|l| json!(l)),
    );
    let done = mcp.ok("wait_for_tasks", json!({"task_ids": ids, "timeout_s": 120}));
    assert_eq!(done["finished"].as_array().unwrap().len(), 12, "{done}");
    let (peak, starts) = peak_concurrency(&events);
    assert_eq!(starts, 12);
    assert_eq!(
        peak, 2,
        "the setting is 2, whatever each frontend's environment says"
    );
    assert_eq!(cli(&sandbox, "8", &["parallel"]), "2");
}

#[test]
fn raising_the_limit_starts_queued_tasks_and_lowering_it_stops_nothing() {
    let sandbox = Sandbox::new();
    let mut cmd = server_command(&sandbox);
    cmd.env("CCMP_MAX_PARALLEL", "1");
    let mut mcp = Mcp::spawn(cmd, Era::Modern);
    let ids: Vec<Value> = (0..3)
        .map(|_| mcp.ok("start_cc_task_async", json!({"prompt": "FAKE_HANG"}))["id"].clone())
        .collect();
    poll(Duration::from_secs(30), "one task running", || {
        (running(&mut mcp) == 1).then_some(())
    });
    cli(&sandbox, "1", &["parallel", "3"]);
    // Nothing ends: only the raised limit can start the two queued tasks.
    poll(Duration::from_secs(10), "three tasks running", || {
        (running(&mut mcp) == 3).then_some(())
    });
    cli(&sandbox, "1", &["parallel", "1"]);
    let list = mcp.ok("list_active_tasks", json!({}));
    assert!(
        list["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["status"] == "running"),
        "lowering the limit stopped a task: {list}"
    );
    for id in &ids {
        mcp.ok("cancel_task", json!({"task_id": id}));
    }
}

#[test]
fn pause_holds_new_tasks_back_and_resume_lets_them_start() {
    let sandbox = Sandbox::new();
    let mut cmd = server_command(&sandbox);
    cmd.env("CCMP_MAX_PARALLEL", "1");
    let mut mcp = Mcp::spawn(cmd, Era::Modern);
    let first = mcp.ok("start_cc_task_async", json!({"prompt": "FAKE_SLEEP=1"}));
    poll(Duration::from_secs(30), "the first task running", || {
        (running(&mut mcp) == 1).then_some(())
    });
    cli(&sandbox, "1", &["pause"]);
    let second = mcp.ok("start_cc_task_async", json!({"prompt": "FAKE_SLEEP=0"}));
    let next = second["next"].as_str().unwrap();
    assert!(next.contains("paused"), "{next}");
    // The running task goes on and ends; the queued one, woken by the freed slot, stays queued
    // and says why.
    let done = mcp.ok("wait_for_tasks", json!({"task_ids": [first["id"]]}));
    assert_eq!(done["finished"][0]["status"], "succeeded");
    let waiting = poll(
        Duration::from_secs(30),
        "the queued task to say it is paused",
        || {
            let status = mcp.ok("check_task_status", json!({"task_id": second["id"]}));
            let progress = status["progress"].as_str().unwrap_or_default().to_owned();
            progress.contains("paused").then_some(status)
        },
    );
    assert_eq!(waiting["status"], "queued", "{waiting}");
    let list = mcp.ok("list_active_tasks", json!({}));
    let next = list["next"].as_str().unwrap();
    assert!(next.contains("New tasks are paused"), "{next}");
    // A wait that runs out says the task never started, and why.
    let waited = mcp.ok(
        "wait_for_tasks",
        json!({"task_ids": [second["id"]], "timeout_s": 0.2}),
    );
    assert_eq!(waited["timed_out"], true);
    let next = waited["next"].as_str().unwrap();
    assert!(next.contains("None of them has started yet"), "{next}");
    let output = Command::new(workspace_bin("ccmp"))
        .args([
            "wait",
            second["short_id"].as_str().unwrap(),
            "--timeout",
            "0.2",
        ])
        .env("CCMP_STATE_DIR", sandbox.state())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(4));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stdout.contains("queued paused"), "{stdout}");
    assert!(stderr.contains("never started"), "{stderr}");
    cli(&sandbox, "1", &["resume"]);
    let done = mcp.ok(
        "wait_for_tasks",
        json!({"task_ids": [second["id"]], "timeout_s": 30}),
    );
    assert_eq!(done["finished"][0]["status"], "succeeded", "{done}");
}
