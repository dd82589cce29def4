//! Usage limits and retries through the MCP tools: a parked task's replies say so; `retries`
//! reruns a task the API failed for a while.

use std::time::Duration;

use ccmp_tests::{Sandbox, poll};
use serde_json::json;

use crate::client::{Era, Mcp, server_command};

#[test]
fn a_parked_task_says_so_and_retries_rerun_an_overloaded_task() {
    let sandbox = Sandbox::new();
    let set = std::process::Command::new(ccmp_tests::workspace_bin("ccmp"))
        .args(["settings", "retry_backoff=100ms"])
        .env("CCMP_STATE_DIR", sandbox.state())
        .status()
        .unwrap();
    assert!(set.success());
    // A subscription login: the fake reports a usage limit as Claude Code does under one.
    let mut cmd = server_command(&sandbox);
    cmd.env("CLAUDE_CODE_OAUTH_TOKEN", "sk-ant-oat01-dummy");
    let mut mcp = Mcp::spawn(cmd, Era::Modern);
    mcp.ok("start_cc_task_async", json!({"prompt": "x", "retries": 0}));
    let bad = mcp.err("start_cc_task_async", json!({"prompt": "x", "retries": 11}));
    assert!(
        bad.contains("retries must be a whole number from 0 to 10"),
        "{bad}"
    );
    let task = mcp.ok(
        "start_cc_task_async",
        json!({"prompt": "FAKE_USAGE_LIMIT=3 refactor"}),
    );
    let parked = poll(Duration::from_secs(30), "the task to park", || {
        let status = mcp.ok("check_task_status", json!({"task_id": task["id"]}));
        (status["status"] == "parked").then_some(status)
    });
    let next = parked["next"].as_str().unwrap();
    assert!(next.starts_with("Parked on a usage limit"), "{next}");
    assert!(parked["parked_until"].is_string(), "{parked}");
    let done = mcp.ok(
        "wait_for_tasks",
        json!({"task_ids": [task["id"]], "timeout_s": 60}),
    );
    assert_eq!(done["finished"][0]["status"], "succeeded", "{done}");
    let retried = mcp.ok(
        "execute_cc_task",
        json!({"prompt": "FAKE_FAIL=529 FAKE_FAIL_TIMES=1 go", "retries": 1}),
    );
    assert_eq!(retried["status"], "succeeded", "{retried}");
    assert_eq!(retried["attempts"].as_array().unwrap().len(), 1);
}
