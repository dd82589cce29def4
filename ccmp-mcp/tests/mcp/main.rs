//! End-to-end tests of the real `ccmp-mcp` binary over stdio, with raw JSON-RPC in both protocol
//! eras, and the fake agent as `claude`.

mod agents;
mod approvals;
mod budgets;
mod client;
mod faults;
mod hostile;
mod limits;
mod news;
mod python;
mod scheduler;
mod tasks;

use std::time::{Duration, Instant};

use ccmp_tests::{Sandbox, poll};
use client::{Era, LONG, Mcp, server_command};
use pretty_assertions::assert_eq;
use serde_json::{Value, json};

const TOOLS: [&str; 10] = [
    "answer_approval",
    "execute_cc_task",
    "start_cc_task_async",
    "check_task_status",
    "list_active_tasks",
    "cleanup_task",
    "wait_for_tasks",
    "cancel_task",
    "get_task_output",
    "continue_task",
];

macro_rules! both_eras {
    ($($name:ident),* $(,)?) => {
        mod legacy {
            $( #[test] fn $name() { super::$name(super::Era::Legacy); } )*
        }
        mod modern {
            $( #[test] fn $name() { super::$name(super::Era::Modern); } )*
        }
    };
}

both_eras!(
    tools_fit_the_context_budget_with_annotations,
    execute_runs_and_waits,
    start_then_wait_for_all_and_any,
    execute_reports_progress_and_never_after_the_reply,
    cancelling_an_execute_request_cancels_its_task,
    execute_returns_a_running_task_after_max_wait,
    long_results_are_cut_and_paged,
    bad_input_is_a_tool_error_that_says_what_to_do,
    cancel_cleanup_and_list,
    continue_task_resumes_the_session,
);

fn tools_fit_the_context_budget_with_annotations(era: Era) {
    let sandbox = Sandbox::new();
    let mut mcp = Mcp::start(&sandbox, era);
    let tools = mcp.request("tools/list", json!({}))["result"]["tools"].clone();
    let tools = tools.as_array().unwrap();
    let mut names: Vec<&str> = tools.iter().map(|t| t["name"].as_str().unwrap()).collect();
    names.sort();
    let mut expected = TOOLS.to_vec();
    expected.sort();
    assert_eq!(names, expected);
    // What the model reads: names, descriptions and input schemas, all together.
    let context: usize = tools
        .iter()
        .map(|t| json!({"name": t["name"], "description": t["description"], "inputSchema": t["inputSchema"]}).to_string().len())
        .sum();
    assert!(
        context <= 6 * 1024,
        "tool definitions take {context} bytes, over 6 KB"
    );
    let tool = |name: &str| tools.iter().find(|t| t["name"] == name).unwrap().clone();
    for name in [
        "check_task_status",
        "list_active_tasks",
        "wait_for_tasks",
        "get_task_output",
    ] {
        assert_eq!(tool(name)["annotations"]["readOnlyHint"], true, "{name}");
    }
    assert_eq!(tool("cleanup_task")["annotations"]["destructiveHint"], true);
    assert_eq!(tool("cleanup_task")["annotations"]["idempotentHint"], true);
    assert_eq!(tool("cancel_task")["annotations"]["destructiveHint"], true);
    for t in tools {
        assert_eq!(
            t["outputSchema"]["type"], "object",
            "{} has no output schema",
            t["name"]
        );
        assert!(t["description"].as_str().unwrap().len() > 20);
    }
    assert_eq!(
        tool("execute_cc_task")["inputSchema"]["required"],
        json!(["prompt"])
    );
}

fn execute_runs_and_waits(era: Era) {
    let sandbox = Sandbox::new();
    let mut mcp = Mcp::start(&sandbox, era);
    let result = mcp.call(
        "execute_cc_task",
        json!({"prompt": "write tests for utils.py FAKE_TOOLS=1", "model": "sonnet"}),
    );
    assert_eq!(result["isError"], false);
    let task = &result["structuredContent"];
    assert_eq!(task["status"], "succeeded", "{task}");
    assert_eq!(task["num_turns"], 2);
    assert_eq!(task["model"], "sonnet");
    assert!(task["session_id"].as_str().is_some_and(|s| s.len() == 36));
    assert!(task["cost_usd"].as_f64().unwrap() > 0.0);
    assert!(task["result"].as_str().unwrap().contains("FAKE-DONE"));
    assert_eq!(task["truncated"], false);
    assert!(task["next"].as_str().unwrap().contains("continue_task"));
    assert_eq!(
        task["working_dir"],
        sandbox.work().canonicalize().unwrap().display().to_string()
    );
    // The text block carries the same JSON for clients that read only text.
    let text: Value = serde_json::from_str(result["content"][0]["text"].as_str().unwrap()).unwrap();
    assert_eq!(&text, task);
}

fn start_then_wait_for_all_and_any(era: Era) {
    let sandbox = Sandbox::new();
    let mut mcp = Mcp::start(&sandbox, era);
    let a = mcp.ok("start_cc_task_async", json!({"prompt": "FAKE_SLEEP=0.2"}));
    let b = mcp.ok("start_cc_task_async", json!({"prompt": "FAKE_SLEEP=0.3"}));
    let slow = mcp.ok("start_cc_task_async", json!({"prompt": "FAKE_HANG"}));
    for t in [&a, &b, &slow] {
        assert!(
            ["queued", "running"].contains(&t["status"].as_str().unwrap()),
            "{t}"
        );
        assert_eq!(t["short_id"].as_str().unwrap().len(), 8);
        assert!(t["next"].as_str().unwrap().contains("wait_for_tasks"));
    }
    let all = mcp.ok(
        "wait_for_tasks",
        json!({"task_ids": [a["short_id"], b["id"]], "timeout_s": 50}),
    );
    assert_eq!(all["timed_out"], false);
    assert_eq!(all["finished"].as_array().unwrap().len(), 2);
    assert!(
        all["finished"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["status"] == "succeeded" && t["result"].is_string())
    );
    let any = mcp.ok(
        "wait_for_tasks",
        json!({"task_ids": [slow["short_id"], a["short_id"]], "mode": "any"}),
    );
    assert_eq!(any["finished"][0]["id"], a["id"]);
    assert_eq!(any["pending"][0]["id"], slow["id"]);
    let timed = mcp.ok(
        "wait_for_tasks",
        json!({"task_ids": [slow["short_id"]], "timeout_s": 0.3}),
    );
    assert_eq!(timed["timed_out"], true);
    assert!(
        timed["next"]
            .as_str()
            .unwrap()
            .contains(slow["short_id"].as_str().unwrap())
    );
    let status = mcp.ok("check_task_status", json!({"task_id": slow["short_id"]}));
    assert_eq!(status["status"], "running");
    mcp.ok("cancel_task", json!({"task_id": slow["id"]}));
}

fn execute_reports_progress_and_never_after_the_reply(era: Era) {
    let sandbox = Sandbox::new();
    let mut cmd = server_command(&sandbox);
    cmd.env("CCMP_MCP_PROGRESS_SECS", "0.2");
    let mut mcp = Mcp::spawn(cmd, era);
    let id = mcp.send_request(
        "tools/call",
        json!({"name": "execute_cc_task", "arguments": {"prompt": "FAKE_SLEEP=1.2 FAKE_TOOLS=1"}}),
        Some(json!({"progressToken": "tok-1"})),
    );
    let response = mcp.response(id, LONG);
    assert_eq!(
        response["result"]["structuredContent"]["status"],
        "succeeded"
    );
    let progress: Vec<&Value> = mcp
        .notifications
        .iter()
        .filter(|n| n["method"] == "notifications/progress")
        .collect();
    assert!(
        progress.len() >= 2,
        "expected progress while waiting, got {progress:?}"
    );
    let mut last = 0.0;
    for p in &progress {
        assert_eq!(p["params"]["progressToken"], "tok-1");
        let value = p["params"]["progress"].as_f64().unwrap();
        assert!(value > last, "progress must increase");
        last = value;
        assert!(
            p["params"]["message"].as_str().unwrap().contains('s'),
            "{p}"
        );
    }
    // Nothing more for that token once the reply is out: the next message is the next response.
    let ping = mcp.send_request("tools/list", json!({}), None);
    let next = mcp.next_message(LONG).expect("a response");
    assert_eq!(
        next["id"], ping,
        "unexpected message after the reply: {next}"
    );
    // Without a token there is no progress at all.
    mcp.notifications.clear();
    let r = mcp.call("execute_cc_task", json!({"prompt": "FAKE_SLEEP=0.6"}));
    assert_eq!(r["structuredContent"]["status"], "succeeded");
    assert!(
        mcp.notifications
            .iter()
            .all(|n| n["method"] != "notifications/progress")
    );
}

fn running_task(mcp: &mut Mcp) -> Value {
    poll(LONG, "a running task", || {
        let list = mcp.ok("list_active_tasks", json!({}));
        list["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["status"] == "running" && t["progress"] != "starting")
            .cloned()
    })
}

fn cancelling_an_execute_request_cancels_its_task(era: Era) {
    let sandbox = Sandbox::new();
    let mut mcp = Mcp::start(&sandbox, era);
    let request = mcp.send_request(
        "tools/call",
        json!({"name": "execute_cc_task", "arguments": {"prompt": "FAKE_HANG"}}),
        None,
    );
    let task = running_task(&mut mcp);
    mcp.notify(
        "notifications/cancelled",
        json!({"requestId": request, "reason": "user pressed escape"}),
    );
    let cancelled = poll(LONG, "the task to be cancelled", || {
        let t = mcp.ok("check_task_status", json!({"task_id": task["id"]}));
        (t["status"] == "cancelled").then_some(t)
    });
    assert_eq!(cancelled["error"], "cancelled on request");
    // No response is sent for a cancelled request.
    let ping = mcp.send_request("tools/list", json!({}), None);
    let _ = mcp.response(ping, LONG);
    assert!(
        mcp.notifications.iter().all(|m| m["id"] != request),
        "{:?}",
        mcp.notifications
    );
}

fn execute_returns_a_running_task_after_max_wait(era: Era) {
    let sandbox = Sandbox::new();
    let mut mcp = Mcp::start(&sandbox, era);
    let started = Instant::now();
    let task = mcp.ok(
        "execute_cc_task",
        json!({"prompt": "FAKE_HANG", "max_wait_s": 0.5}),
    );
    assert!(started.elapsed() < Duration::from_secs(20));
    assert!(
        ["queued", "running"].contains(&task["status"].as_str().unwrap()),
        "{task}"
    );
    let next = task["next"].as_str().unwrap();
    assert!(
        next.contains("max_wait_s") && next.contains("wait_for_tasks"),
        "{next}"
    );
    let cancelled = mcp.ok("cancel_task", json!({"task_id": task["short_id"]}));
    assert_eq!(cancelled["status"], "cancelled");
    let again = mcp.ok("cancel_task", json!({"task_id": task["short_id"]}));
    assert!(again["next"].as_str().unwrap().contains("already finished"));
}

fn long_results_are_cut_and_paged(era: Era) {
    let sandbox = Sandbox::new();
    let mut mcp = Mcp::start(&sandbox, era);
    let result = mcp.call("execute_cc_task", json!({"prompt": "FAKE_HUGE=100000"}));
    let task = &result["structuredContent"];
    assert!(
        task.to_string().len() <= 8192,
        "reply is {} bytes",
        task.to_string().len()
    );
    assert_eq!(task["status"], "succeeded");
    assert_eq!(task["truncated"], true);
    assert!(task["next"].as_str().unwrap().contains("stream=\"result\""));
    // The whole result, page by page.
    let mut text = String::new();
    let mut offset = 0;
    loop {
        let page = mcp.ok(
            "get_task_output",
            json!({"task_id": task["short_id"], "stream": "result", "offset": offset}),
        );
        assert!(page.to_string().len() <= 8192);
        text.push_str(page["text"].as_str().unwrap());
        offset = page["next_offset"].as_u64().unwrap();
        if page["at_end"] == true {
            break;
        }
        assert!(
            page["next"]
                .as_str()
                .unwrap()
                .contains(&format!("offset={offset}"))
        );
    }
    assert_eq!(text.len(), 100_000);
    // Other logs, by tail and by page.
    let tail = mcp.ok(
        "get_task_output",
        json!({"task_id": task["short_id"], "tail": 3}),
    );
    // The answer is longer than a page: the tail keeps its end, and the outcome line after it.
    let text = tail["text"].as_str().unwrap();
    assert!(text.len() <= 6000);
    assert!(
        text.ends_with("xxx\n[result] succeeded · 1 turn · $0.01\n"),
        "{}",
        &text[text.len().saturating_sub(200)..]
    );
    assert_eq!(tail["at_end"], true);
    let raw = mcp.ok(
        "get_task_output",
        json!({"task_id": task["short_id"], "stream": "stdout", "limit": 100}),
    );
    assert!(
        raw["text"]
            .as_str()
            .unwrap()
            .starts_with("{\"type\":\"system\"")
    );
    // The limit counts the text as escaped in JSON, so the page covers fewer raw bytes.
    let shown = serde_json::to_string(&raw["text"]).unwrap().len() - 2;
    assert!(shown <= 100, "{raw}");
    assert!(
        (80..100).contains(&raw["next_offset"].as_u64().unwrap()),
        "{raw}"
    );
    // Many tasks: the list stays within the budget and says how many there are.
    for _ in 0..30 {
        mcp.ok(
            "start_cc_task_async",
            json!({"prompt": format!("{} FAKE_SLEEP=0", "a long prompt ".repeat(20))}),
        );
    }
    let list = mcp.ok(
        "list_active_tasks",
        json!({"include_finished": true, "limit": 1000}),
    );
    assert!(
        list.to_string().len() <= 8192,
        "list reply is {} bytes",
        list.to_string().len()
    );
    assert_eq!(list["total"], 31);
    let ids: Vec<Value> = list["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].clone())
        .collect();
    let waited = mcp.ok("wait_for_tasks", json!({"task_ids": ids}));
    assert!(
        waited.to_string().len() <= 8192,
        "wait reply is {} bytes",
        waited.to_string().len()
    );
}

fn bad_input_is_a_tool_error_that_says_what_to_do(era: Era) {
    let sandbox = Sandbox::new();
    let mut mcp = Mcp::start(&sandbox, era);
    let cases = [
        (
            "check_task_status",
            json!({"task_id": "../../etc"}),
            "hex digits",
        ),
        (
            "check_task_status",
            json!({"task_id": "deadbeef"}),
            "no task matches",
        ),
        ("check_task_status", json!({"task_id": "abc"}), "at least 4"),
        ("start_cc_task_async", json!({"prompt": ""}), "empty"),
        (
            "start_cc_task_async",
            json!({"prompt": "x".repeat(1024 * 1024 + 1)}),
            "over the limit",
        ),
        (
            "start_cc_task_async",
            json!({"prompt": "x", "working_dir": "/nonexistent/dir"}),
            "does not exist",
        ),
        (
            "start_cc_task_async",
            json!({"prompt": "x", "model": "son\nnet"}),
            "model",
        ),
        (
            "start_cc_task_async",
            json!({"prompt": "x", "timeout": 0}),
            "timeout",
        ),
        (
            "start_cc_task_async",
            json!({"prompt": "x", "permission_mode": "yolo"}),
            "acceptEdits",
        ),
        (
            "execute_cc_task",
            json!({"prompt": "x", "max_wait_s": -1}),
            "max_wait_s",
        ),
        (
            "start_cc_task_async",
            json!({"working_dir": "/tmp"}),
            "prompt",
        ),
        ("wait_for_tasks", json!({"task_ids": []}), "at least one"),
        (
            "wait_for_tasks",
            json!({"task_ids": ["deadbeef"], "timeout_s": 601}),
            "600",
        ),
        (
            "wait_for_tasks",
            json!({"task_ids": ["deadbeef"], "mode": "some"}),
            "any",
        ),
        (
            "list_active_tasks",
            json!({"status": "done"}),
            "unknown task state",
        ),
        ("cleanup_task", json!({}), "exactly one"),
        ("cleanup_task", json!({"older_than": "soon"}), "duration"),
        (
            "get_task_output",
            json!({"task_id": "deadbeef", "stream": "everything"}),
            "transcript",
        ),
        (
            "continue_task",
            json!({"task_id": "deadbeef", "prompt": "more"}),
            "no task matches",
        ),
    ];
    for (tool, args, expected) in cases {
        let text = mcp.err(tool, args.clone());
        assert!(
            text.contains(expected),
            "{tool} {args}: {text:?} should mention {expected:?}"
        );
    }
    // An unknown tool is a protocol error.
    let response = mcp.request(
        "tools/call",
        json!({"name": "no_such_tool", "arguments": {}}),
    );
    assert!(response["error"]["code"].is_i64(), "{response}");
    // Nothing was created by any of it.
    let list = mcp.ok("list_active_tasks", json!({"include_finished": true}));
    assert_eq!(list["total"], 0);
    // claude not installed: the error says how to fix it.
    let mut cmd = server_command(&sandbox);
    cmd.env("CCMP_CLAUDE_BIN", "definitely-not-claude");
    let mut other = Mcp::spawn(cmd, era);
    let text = other.err("start_cc_task_async", json!({"prompt": "x"}));
    assert!(
        text.contains("not found on PATH") && text.contains("npm install"),
        "{text}"
    );
}

fn cancel_cleanup_and_list(era: Era) {
    let sandbox = Sandbox::new();
    let mut mcp = Mcp::start(&sandbox, era);
    let done = mcp.ok("execute_cc_task", json!({"prompt": "FAKE_SLEEP=0"}));
    let hang = mcp.ok("start_cc_task_async", json!({"prompt": "FAKE_HANG"}));
    let active = mcp.ok("list_active_tasks", json!({}));
    assert_eq!(active["total"], 1);
    assert_eq!(active["tasks"][0]["id"], hang["id"]);
    let all = mcp.ok("list_active_tasks", json!({"include_finished": true}));
    assert_eq!(all["total"], 2);
    assert_eq!(all["tasks"][0]["id"], hang["id"], "newest first");
    let limited = mcp.ok(
        "list_active_tasks",
        json!({"include_finished": true, "limit": 1}),
    );
    assert_eq!(limited["tasks"].as_array().unwrap().len(), 1);
    assert!(limited["next"].as_str().unwrap().contains("1 of 2"));
    assert_eq!(limited["truncated"], true, "fewer shown than matched");
    assert_eq!(all["truncated"], false);
    let only = mcp.ok("list_active_tasks", json!({"status": "succeeded"}));
    assert_eq!(only["tasks"][0]["id"], done["id"]);

    // One target at a time, and force only with a task.
    for two in [
        json!({"finished": true, "older_than": "1h"}),
        json!({"task_id": done["short_id"], "finished": true}),
        json!({"task_id": done["short_id"], "older_than": "1h"}),
    ] {
        let text = mcp.err("cleanup_task", two.clone());
        assert!(text.contains("exactly one"), "{two}: {text}");
    }
    let text = mcp.err("cleanup_task", json!({"finished": true, "force": true}));
    assert!(text.contains("force applies to one task"), "{text}");
    let refused = mcp.err("cleanup_task", json!({"task_id": hang["short_id"]}));
    assert!(
        refused.contains("still") && refused.contains("force"),
        "{refused}"
    );
    let old = mcp.ok("cleanup_task", json!({"older_than": "1h"}));
    assert_eq!(old["removed"], json!([]));
    let finished = mcp.ok("cleanup_task", json!({"finished": true}));
    assert_eq!(finished["removed"], json!([done["short_id"]]));
    let forced = mcp.ok(
        "cleanup_task",
        json!({"task_id": hang["short_id"], "force": true}),
    );
    assert_eq!(forced["removed"], json!([hang["short_id"]]));
    let gone = mcp.err("check_task_status", json!({"task_id": hang["short_id"]}));
    assert!(gone.contains("no task matches"), "{gone}");
}

/// A reply says what is true when it is made, and carries what a model uses, not everything.
#[test]
fn replies_say_what_is_true_and_only_what_a_model_needs() {
    let sandbox = Sandbox::new();
    let mut cmd = server_command(&sandbox);
    cmd.env("CCMP_MAX_PARALLEL", "1");
    let mut mcp = Mcp::spawn(cmd, Era::Modern);
    let first = mcp.ok("start_cc_task_async", json!({"prompt": "FAKE_HANG"}));
    let next = first["next"].as_str().unwrap();
    assert!(
        first["status"] == "running" || next.contains("a slot is free"),
        "{first}"
    );
    running_task(&mut mcp);
    let second = mcp.ok("start_cc_task_async", json!({"prompt": "FAKE_SLEEP=0"}));
    assert_eq!(second["status"], "queued");
    let next = second["next"].as_str().unwrap();
    assert!(
        next.contains("the one slot (max_parallel 1) is busy"),
        "{next}"
    );
    mcp.ok("cancel_task", json!({"task_id": first["id"]}));
    let done = mcp.ok("wait_for_tasks", json!({"task_ids": [second["id"]]}));
    assert_eq!(done["finished"][0]["status"], "succeeded");
    let status = mcp.ok("check_task_status", json!({"task_id": second["id"]}));
    assert!(
        status.get("usage").is_none() && status.get("log_path").is_none(),
        "{status}"
    );
    assert!(status["input_tokens"].is_u64() && status["output_tokens"].is_u64());
    let cost = status["cost_usd"].as_f64().unwrap();
    assert_eq!(
        cost,
        (cost * 10_000.0).round() / 10_000.0,
        "{cost} is not rounded"
    );
}

fn continue_task_resumes_the_session(era: Era) {
    let sandbox = Sandbox::new();
    let mut mcp = Mcp::start(&sandbox, era);
    let first = mcp.ok("execute_cc_task", json!({"prompt": "refactor database.py"}));
    let next = mcp.ok(
        "continue_task",
        json!({"task_id": first["short_id"], "prompt": "now run the tests"}),
    );
    assert_eq!(next["follows"], first["id"]);
    let waited = mcp.ok("wait_for_tasks", json!({"task_ids": [next["id"]]}));
    let second = mcp.ok("check_task_status", json!({"task_id": next["id"]}));
    assert_eq!(waited["finished"][0]["status"], "succeeded");
    assert_eq!(second["session_id"], first["session_id"]);
    assert!(second["cost_usd"].as_f64() > first["cost_usd"].as_f64());
    // A follow-up of a running task queues behind it and says so.
    let running = mcp.ok("start_cc_task_async", json!({"prompt": "FAKE_HANG"}));
    let behind = mcp.ok(
        "continue_task",
        json!({"task_id": running["id"], "prompt": "more"}),
    );
    assert_eq!(behind["after"], json!([running["short_id"]]));
    let next = behind["next"].as_str().unwrap();
    assert!(
        next.starts_with(&format!(
            "Queued behind {}: it starts once that task has succeeded",
            running["short_id"].as_str().unwrap()
        )),
        "{next}"
    );
    mcp.ok("cancel_task", json!({"task_id": running["id"]}));
    let waited = mcp.ok("wait_for_tasks", json!({"task_ids": [behind["id"]]}));
    assert_eq!(waited["finished"][0]["status"], "skipped");
}

#[test]
fn tasks_outlive_a_server_killed_with_sigkill() {
    let sandbox = Sandbox::new();
    let mut first = Mcp::start(&sandbox, Era::Modern);
    let ids: Vec<Value> = (0..3)
        .map(|_| first.ok("start_cc_task_async", json!({"prompt": "FAKE_SLEEP=1"}))["id"].clone())
        .collect();
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    let mut second = Mcp::start(&sandbox, Era::Legacy);
    let waited = second.ok("wait_for_tasks", json!({"task_ids": ids, "timeout_s": 60}));
    assert_eq!(waited["timed_out"], false);
    for task in waited["finished"].as_array().unwrap() {
        assert_eq!(task["status"], "succeeded", "{task}");
    }
}

#[test]
fn closing_stdin_stops_the_server_quickly_and_leaves_tasks_running() {
    let sandbox = Sandbox::new();
    let mut mcp = Mcp::start(&sandbox, Era::Legacy);
    let task = mcp.ok("start_cc_task_async", json!({"prompt": "FAKE_SLEEP=1"}));
    // An in-flight wait must not keep the server alive either.
    mcp.send_request(
        "tools/call",
        json!({"name": "wait_for_tasks", "arguments": {"task_ids": [task["id"]], "timeout_s": 60}}),
        None,
    );
    let closed = Instant::now();
    mcp.close_stdin();
    let status = poll(Duration::from_secs(5), "the server to exit", || {
        mcp.child.try_wait().unwrap()
    });
    assert!(status.success(), "{status}");
    assert!(
        closed.elapsed() < Duration::from_secs(1),
        "took {:?} to exit",
        closed.elapsed()
    );
    let mut again = Mcp::start(&sandbox, Era::Modern);
    let waited = again.ok("wait_for_tasks", json!({"task_ids": [task["id"]]}));
    assert_eq!(waited["finished"][0]["status"], "succeeded");
}

#[test]
fn nothing_but_protocol_reaches_stdout() {
    // Every line the client reads is parsed as JSON-RPC (the reader panics otherwise); run a task
    // whose agent prints non-JSON and binary output to make sure none of it leaks.
    let sandbox = Sandbox::new();
    let mut mcp = Mcp::start(&sandbox, Era::Legacy);
    let task = mcp.ok(
        "execute_cc_task",
        json!({"prompt": "FAKE_BINARY FAKE_GRANDCHILD"}),
    );
    assert_eq!(task["status"], "succeeded");
    let ping = mcp.send_request("tools/list", json!({}), None);
    let response = mcp.response(ping, LONG);
    assert_eq!(response["jsonrpc"], "2.0");
}

#[test]
fn worktree_isolation_through_mcp() {
    let sandbox = Sandbox::new();
    let dir = sandbox.work();
    let git = |args: &[&str]| ccmp_tests::git(&dir, args);
    git(&["init", "-q", "-b", "main"]);
    git(&["commit", "-q", "--allow-empty", "-m", "init"]);
    let mut mcp = Mcp::start(&sandbox, Era::Modern);
    let task = mcp.ok(
        "execute_cc_task",
        json!({"prompt": "FAKE_WRITE=notes.md", "isolation": "worktree"}),
    );
    assert_eq!(task["status"], "succeeded");
    let worktree = &task["worktree"];
    assert_eq!(
        worktree["branch"],
        format!("ccmp/{}", task["short_id"].as_str().unwrap())
    );
    assert_eq!(worktree["files_changed"], 1);
    assert_eq!(worktree["dirty"], true);
    let cleaned = mcp.ok(
        "cleanup_task",
        json!({"task_id": task["short_id"], "delete_branch": true}),
    );
    assert_eq!(cleaned["branches_deleted"], json!([worktree["branch"]]));
    let text = mcp.err(
        "start_cc_task_async",
        json!({"prompt": "x", "isolation": "container"}),
    );
    assert!(text.contains("worktree"), "{text}");
    let plain = sandbox.path("plain");
    std::fs::create_dir(&plain).unwrap();
    let text = mcp.err(
        "start_cc_task_async",
        json!({"prompt": "x", "isolation": "worktree", "working_dir": plain}),
    );
    assert!(text.contains("not in a git repository"), "{text}");
}

#[test]
fn the_server_reaps_its_runners() {
    use ccmp_core::TaskStore;
    let sandbox = Sandbox::new();
    let mut mcp = Mcp::start(&sandbox, Era::Legacy);
    let ids: Vec<Value> = (0..5)
        .map(|_| mcp.ok("start_cc_task_async", json!({"prompt": "FAKE_SLEEP=0"}))["id"].clone())
        .collect();
    let waited = mcp.ok("wait_for_tasks", json!({"task_ids": ids}));
    assert_eq!(waited["finished"].as_array().unwrap().len(), 5);
    let store = ccmp_core::FsStore::open(sandbox.state()).unwrap();
    let runners: Vec<i32> = ids
        .iter()
        .map(|id| {
            store
                .load(&id.as_str().unwrap().parse().unwrap())
                .unwrap()
                .runner
                .unwrap()
                .pid
        })
        .collect();
    // A runner that exited but was not reaped stays in /proc as a zombie of the server.
    poll(
        Duration::from_secs(10),
        "the server's exited runners to be reaped",
        || {
            runners
                .iter()
                .all(|pid| !std::path::Path::new(&format!("/proc/{pid}")).exists())
                .then_some(())
        },
    );
}
