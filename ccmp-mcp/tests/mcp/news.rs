//! What the model hears without asking: each reply names this session's tasks that ended or
//! need an answer since the previous one; and the event log shows the MCP server's tasks to
//! any program that follows it.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::mpsc::channel;

use ccmp_tests::{Sandbox, poll, workspace_bin};
use pretty_assertions::assert_eq;
use serde_json::{Value, json};

use crate::client::{Era, LONG, Mcp, ccmp_cli};

#[test]
fn replies_name_this_sessions_tasks_that_ended_since_the_last_one_once() {
    let sandbox = Sandbox::new();
    let mut mcp = Mcp::start(&sandbox, Era::Legacy);
    let quick = mcp.ok(
        "start_cc_task_async",
        json!({"prompt": "FAKE_SLEEP=0 quick"}),
    );
    let quick_id = quick["short_id"].as_str().unwrap().to_owned();
    let slow = mcp.ok("start_cc_task_async", json!({"prompt": "FAKE_HANG"}));
    let slow_id = slow["short_id"].as_str().unwrap().to_owned();
    // A task of another frontend is not this session's news.
    let other = ccmp_cli(&sandbox, &["start", "FAKE_SLEEP=0 elsewhere"]);
    assert!(other.status.success());
    let other_id = String::from_utf8(other.stdout).unwrap().trim().to_owned();
    let told = poll(LONG, "a reply to mention the quick task", || {
        let status = mcp.ok("check_task_status", json!({"task_id": slow_id}));
        status.get("also").cloned()
    });
    assert_eq!(told, format!("{quick_id} succeeded"));
    ccmp_tests::poll(LONG, "the other task to end", || {
        let out = ccmp_cli(&sandbox, &["status", "--json", &other_id]);
        let view: Value = serde_json::from_slice(&out.stdout).ok()?;
        (view["status"] == "succeeded").then_some(())
    });
    // Told once: the next reply says nothing more, and never of the other frontend's task.
    let again = mcp.ok("check_task_status", json!({"task_id": slow_id}));
    assert!(again.get("also").is_none(), "{again}");
    // A task the reply shows is not repeated in `also`.
    mcp.ok("cancel_task", json!({"task_id": slow_id}));
    let shown = poll(LONG, "the cancel to land", || {
        let status = mcp.ok("check_task_status", json!({"task_id": slow_id}));
        (status["status"] == "cancelled").then_some(status)
    });
    assert!(shown.get("also").is_none(), "{shown}");
    // An error reply carries news as text.
    let quick2 = mcp.ok("start_cc_task_async", json!({"prompt": "FAKE_FAIL=529 x"}));
    let failed_id = quick2["short_id"].as_str().unwrap().to_owned();
    let text = poll(LONG, "an error reply with news", || {
        let text = mcp.err("check_task_status", json!({"task_id": "ffffffff"}));
        text.contains("also:").then_some(text)
    });
    assert!(
        text.ends_with(&format!("also: {failed_id} failed")),
        "{text}"
    );
}

#[test]
fn ccmp_events_follow_shows_events_of_tasks_the_mcp_server_started() {
    let sandbox = Sandbox::new();
    let mut follower = std::process::Command::new(workspace_bin("ccmp"))
        .args(["events", "--follow", "--json"])
        .env("CCMP_STATE_DIR", sandbox.state())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, lines) = channel();
    let stdout = follower.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut mcp = Mcp::start(&sandbox, Era::Legacy);
    let started = mcp.ok(
        "start_cc_task_async",
        json!({"prompt": "FAKE_SLEEP=0 from mcp"}),
    );
    let event: Value = loop {
        let line = lines.recv_timeout(LONG).expect("an event line");
        let event: Value = serde_json::from_str(&line).unwrap();
        if event["kind"] == "succeeded" {
            break event;
        }
    };
    assert_eq!(event["task_id"], started["id"]);
    assert_eq!(event["prompt_head"], "FAKE_SLEEP=0 from mcp");
    follower.kill().unwrap();
    follower.wait().unwrap();
}
