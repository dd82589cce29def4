//! Approvals through the MCP tools: what `ask` stores and refuses, and answers to tasks that do
//! not wait for one. (The flow itself, which needs Claude Code's hooks, is proven with the real
//! CLI in the end-to-end tier.)

use ccmp_tests::Sandbox;
use pretty_assertions::assert_eq;
use serde_json::json;

use crate::client::{Era, Mcp};

#[test]
fn ask_star_asks_about_every_tool_use() {
    let sandbox = Sandbox::new();
    let mut mcp = Mcp::start(&sandbox, Era::Legacy);
    let started = mcp.ok(
        "start_cc_task_async",
        json!({"prompt": "FAKE_HANG", "ask": ["*", "Write"]}),
    );
    let record = sandbox.stored_record(started["id"].as_str().unwrap());
    let claude = &record["spec"]["agent"]["claude"];
    assert_eq!(claude["ask_all"], true, "{record}");
    assert!(claude["ask"].is_null(), "{record}");
    mcp.ok("cancel_task", json!({"task_id": started["id"]}));
}

#[test]
fn a_bad_rule_is_refused_by_name_and_starts_nothing() {
    let sandbox = Sandbox::new();
    let mut mcp = Mcp::start(&sandbox, Era::Legacy);
    let error = mcp.err(
        "start_cc_task_async",
        json!({"prompt": "FAKE_SLEEP=0", "ask": ["Bash(git push"]}),
    );
    assert!(error.contains("ask"), "{error}");
    let list = mcp.ok("list_active_tasks", json!({"include_finished": true}));
    assert_eq!(list["total"], 0, "{list}");
}

#[test]
fn answering_a_task_that_waits_for_no_approval_is_refused_clearly() {
    let sandbox = Sandbox::new();
    let mut mcp = Mcp::start(&sandbox, Era::Legacy);
    let started = mcp.ok("start_cc_task_async", json!({"prompt": "FAKE_HANG"}));
    let error = mcp.err(
        "answer_approval",
        json!({"task_id": started["short_id"], "approve": true}),
    );
    assert!(error.contains("is not waiting for an approval"), "{error}");
    let status = mcp.ok("check_task_status", json!({"task_id": started["id"]}));
    assert_ne!(status["status"], "needs_approval");
    mcp.ok("cancel_task", json!({"task_id": started["id"]}));
}
