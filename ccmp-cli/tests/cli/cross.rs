//! The CLI and the MCP server share one store: a task started by either is seen by the other.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use ccmp_tests::{Sandbox, workspace_bin};
use serde_json::{Value, json};

use crate::{ccmp, start, until_state};

/// Calls one MCP tool on a fresh `ccmp-mcp` sharing the sandbox's store.
fn mcp_call(sandbox: &Sandbox, tool: &str, args: Value) -> Value {
    let mut child = Command::new(workspace_bin("ccmp-mcp"))
        .env("CCMP_STATE_DIR", sandbox.state())
        .env("CCMP_CLAUDE_BIN", workspace_bin("fake-claude"))
        .env("IS_SANDBOX", "1")
        .env("CLAUDE_CONFIG_DIR", sandbox.path("claude-config"))
        .current_dir(sandbox.work())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    for message in [
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "cli-test", "version": "1"}}}),
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": tool, "arguments": args}}),
    ] {
        writeln!(stdin, "{message}").unwrap();
    }
    stdin.flush().unwrap();
    let reader = BufReader::new(child.stdout.take().unwrap());
    let mut reply = Value::Null;
    for line in reader.lines() {
        let message: Value = serde_json::from_str(&line.unwrap()).unwrap();
        if message["id"] == 2 {
            reply = message["result"].clone();
            break;
        }
    }
    drop(stdin);
    child.wait().unwrap();
    assert_ne!(reply["isError"], true, "{reply}");
    reply["structuredContent"].clone()
}

#[test]
fn a_task_started_by_the_cli_is_seen_by_the_mcp_server() {
    let sandbox = Sandbox::new();
    let id = start(&sandbox, "FAKE_TOOLS=1 started from the terminal");
    until_state(&sandbox, &id, "succeeded");
    let task = mcp_call(&sandbox, "check_task_status", json!({"task_id": id}));
    assert_eq!(task["status"], "succeeded");
    assert_eq!(task["prompt"], "FAKE_TOOLS=1 started from the terminal");
}

#[test]
fn a_task_started_by_the_mcp_server_is_seen_by_the_cli() {
    let sandbox = Sandbox::new();
    let task = mcp_call(
        &sandbox,
        "execute_cc_task",
        json!({"prompt": "started from Claude Code"}),
    );
    let id = task["short_id"].as_str().unwrap().to_owned();
    let view = until_state(&sandbox, &id, "succeeded");
    assert_eq!(view["session_id"], task["session_id"]);
    let list = ccmp(&sandbox)
        .args(["list", "--all"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    assert!(String::from_utf8(list).unwrap().contains(&id));
}
