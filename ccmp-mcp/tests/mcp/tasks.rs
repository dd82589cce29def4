//! The MCP tasks extension (SEP-2663) on 2026-07-28 connections: `execute_cc_task` becomes a
//! task whose state `tasks/get` reads from ccmp's store.

use ccmp_tests::{Sandbox, poll};
use pretty_assertions::assert_eq;
use serde_json::{Value, json};

use crate::client::{Era, LONG, Mcp, server_command};

fn tasks_client(sandbox: &Sandbox) -> Mcp {
    Mcp::spawn_with_caps(
        server_command(sandbox),
        Era::Modern,
        json!({"extensions": {"io.modelcontextprotocol/tasks": {}}}),
    )
}

fn create(mcp: &mut Mcp, prompt: &str) -> Value {
    let result = mcp.request(
        "tools/call",
        json!({"name": "execute_cc_task", "arguments": {"prompt": prompt}}),
    );
    assert!(result.get("error").is_none(), "{result}");
    let task = result["result"].clone();
    assert_eq!(task["resultType"], "task", "{task}");
    task
}

fn get(mcp: &mut Mcp, id: &Value) -> Value {
    let response = mcp.request("tasks/get", json!({"taskId": id}));
    assert!(response.get("error").is_none(), "{response}");
    response["result"].clone()
}

fn until(mcp: &mut Mcp, id: &Value, status: &str) -> Value {
    poll(LONG, &format!("task to be {status}"), || {
        let task = get(mcp, id);
        (task["status"] == status).then_some(task)
    })
}

#[test]
fn execute_becomes_a_task_that_completes_with_the_tool_result() {
    let sandbox = Sandbox::new();
    let mut mcp = tasks_client(&sandbox);
    let discover = mcp.request("server/discover", json!({}));
    assert!(
        discover["result"]["capabilities"]["extensions"]["io.modelcontextprotocol/tasks"]
            .is_object(),
        "{discover}"
    );
    let task = create(&mut mcp, "FAKE_SLEEP=1 FAKE_TOOLS=1");
    assert_eq!(task["status"], "working");
    assert_eq!(task["ttlMs"], Value::Null, "ccmp's tasks do not expire");
    assert_eq!(task["pollIntervalMs"], 2000);
    assert_eq!(task["taskId"].as_str().unwrap().len(), 36);
    let working = get(&mut mcp, &task["taskId"]);
    assert_eq!(working["status"], "working");
    assert!(working["statusMessage"].is_string(), "{working}");
    let done = until(&mut mcp, &task["taskId"], "completed");
    let result = &done["result"];
    assert_eq!(result["isError"], false);
    assert_eq!(result["structuredContent"]["status"], "succeeded");
    assert_eq!(result["structuredContent"]["num_turns"], 2);
    assert_eq!(result["structuredContent"]["id"], task["taskId"]);
    // The same task through the ordinary tools.
    let status = mcp.ok("check_task_status", json!({"task_id": task["taskId"]}));
    assert_eq!(status["status"], "succeeded");
}

#[test]
fn a_failed_task_completes_with_an_error_result() {
    let sandbox = Sandbox::new();
    let mut mcp = tasks_client(&sandbox);
    let task = create(&mut mcp, "FAKE_FAIL=529");
    let done = until(&mut mcp, &task["taskId"], "completed");
    assert_eq!(done["result"]["isError"], true);
    let text = done["result"]["content"][0]["text"].as_str().unwrap();
    assert!(text.contains("HTTP 529"), "{text}");
    assert!(done["statusMessage"].as_str().unwrap().contains("529"));
}

#[test]
fn tasks_cancel_cancels_the_ccmp_task() {
    let sandbox = Sandbox::new();
    let mut mcp = tasks_client(&sandbox);
    let task = create(&mut mcp, "FAKE_HANG");
    let ack = mcp.request("tasks/cancel", json!({"taskId": task["taskId"]}));
    assert_eq!(ack["result"]["resultType"], "complete", "{ack}");
    until(&mut mcp, &task["taskId"], "cancelled");
    let status = mcp.ok("check_task_status", json!({"task_id": task["taskId"]}));
    assert_eq!(status["status"], "cancelled");
    // Cancelling again is an idempotent acknowledgement.
    let again = mcp.request("tasks/cancel", json!({"taskId": task["taskId"]}));
    assert!(again.get("error").is_none(), "{again}");
}

#[test]
fn unknown_task_ids_are_invalid_params() {
    let sandbox = Sandbox::new();
    let mut mcp = tasks_client(&sandbox);
    for id in ["1d4e0c2a-0000-4000-8000-000000000000", "../../etc", ""] {
        let response = mcp.request("tasks/get", json!({"taskId": id}));
        assert_eq!(response["error"]["code"], -32602, "{id}: {response}");
        let response = mcp.request("tasks/cancel", json!({"taskId": id}));
        assert_eq!(response["error"]["code"], -32602, "{id}: {response}");
    }
}

#[test]
fn a_task_survives_a_server_restart() {
    let sandbox = Sandbox::new();
    let mut first = tasks_client(&sandbox);
    let task = create(&mut first, "FAKE_SLEEP=1");
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    let mut second = tasks_client(&sandbox);
    let done = until(&mut second, &task["taskId"], "completed");
    assert_eq!(done["result"]["structuredContent"]["status"], "succeeded");
}

#[test]
fn without_the_extension_the_call_returns_the_plain_result() {
    let sandbox = Sandbox::new();
    let mut mcp = crate::client::Mcp::start(&sandbox, Era::Modern);
    let result = mcp.call("execute_cc_task", json!({"prompt": "FAKE_SLEEP=0"}));
    assert_ne!(result["resultType"], "task");
    assert_eq!(result["structuredContent"]["status"], "succeeded");
    // And tasks/* are refused to such a client.
    let response = mcp.request(
        "tasks/get",
        json!({"taskId": result["structuredContent"]["id"]}),
    );
    assert!(response["error"]["code"].is_i64(), "{response}");
}

/// A task parked on a usage limit is live: `tasks/get` says working, with why, never
/// completed (before, every state besides queued, running and cancelled read as completed).
#[test]
fn a_parked_task_is_working_not_completed() {
    let sandbox = Sandbox::new();
    let mut cmd = server_command(&sandbox);
    cmd.env("CLAUDE_CODE_OAUTH_TOKEN", "sk-ant-oat01-dummy");
    let mut mcp = Mcp::spawn_with_caps(
        cmd,
        Era::Modern,
        json!({"extensions": {"io.modelcontextprotocol/tasks": {}}}),
    );
    let task = create(&mut mcp, "FAKE_USAGE_LIMIT=60 refactor");
    let id = task["taskId"].clone();
    let parked = poll(LONG, "the task to park", || {
        let task = get(&mut mcp, &id);
        task["statusMessage"]
            .as_str()
            .is_some_and(|m| m.starts_with("usage limit (5-hour) reached"))
            .then_some(task)
    });
    assert_eq!(parked["status"], "working", "{parked}");
    mcp.request("tasks/cancel", json!({"taskId": id}));
}

/// `tasks/update` answers only an outstanding approval: for a task that asks nothing, or an
/// unknown id, it is invalid params that say why, and the task runs on untouched.
#[test]
fn tasks_update_without_an_outstanding_approval_is_refused_clearly() {
    let sandbox = Sandbox::new();
    let mut mcp = tasks_client(&sandbox);
    let task = create(&mut mcp, "FAKE_HANG");
    let id = task["taskId"].clone();
    let response = mcp.request(
        "tasks/update",
        json!({"taskId": id, "inputResponses": {"approval:toolu_1": {"action": "accept", "content": {"decision": "approve"}}}}),
    );
    assert_eq!(response["error"]["code"], -32602, "{response}");
    let message = response["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("no input request outstanding"),
        "{message}"
    );
    assert_eq!(get(&mut mcp, &id)["status"], "working");
    let unknown = mcp.request(
        "tasks/update",
        json!({"taskId": "1d4e0c2a-0000-4000-8000-000000000000", "inputResponses": {}}),
    );
    assert_eq!(unknown["error"]["code"], -32602, "{unknown}");
    mcp.request("tasks/cancel", json!({"taskId": id}));
    until(&mut mcp, &id, "cancelled");
}
