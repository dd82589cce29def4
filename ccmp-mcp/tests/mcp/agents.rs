//! The `agent` parameter: a Codex task through the same tools, and Claude Code's parameters
//! refused for it by name.

use ccmp_tests::Sandbox;
use pretty_assertions::assert_eq;
use serde_json::json;

use crate::client::{Era, Mcp};

#[test]
fn a_codex_task_runs_through_the_same_tools() {
    let sandbox = Sandbox::new();
    let mut mcp = Mcp::start(&sandbox, Era::Legacy);
    let started = mcp.ok(
        "start_cc_task_async",
        json!({"prompt": "FAKE_SLEEP=0 refactor", "agent": "codex"}),
    );
    let done = mcp.ok(
        "wait_for_tasks",
        json!({"task_ids": [started["id"]], "timeout_s": 30}),
    );
    let task = &done["finished"][0];
    assert_eq!(task["status"], "succeeded", "{done}");
    let status = mcp.ok("check_task_status", json!({"task_id": started["id"]}));
    assert_eq!(status["agent"], "codex");
    assert_eq!(status["result"], "FAKE-CODEX-DONE turn 1");
    let error = mcp.err(
        "start_cc_task_async",
        json!({"prompt": "x", "agent": "codex", "permission_mode": "plan"}),
    );
    assert!(
        error.contains("permission_mode is a setting of Claude Code, not of Codex"),
        "{error}"
    );
    let error = mcp.err(
        "start_cc_task_async",
        json!({"prompt": "x", "agent": "gpt"}),
    );
    assert!(error.contains("claude, codex"), "{error}");
}
