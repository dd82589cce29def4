//! Hostile input, table-driven: each bad call gets a tool error that says what is wrong, changes
//! nothing on disk, and the server goes on serving.

use std::time::Duration;

use ccmp_tests::Sandbox;
use serde_json::{Value, json};

use crate::client::{Era, Mcp, server_command};

fn cases(sandbox: &Sandbox) -> Vec<(&'static str, Value, &'static str)> {
    let file = sandbox.path("a-file");
    std::fs::write(&file, "x").unwrap();
    let dangling = sandbox.path("dangling");
    std::os::unix::fs::symlink("/nonexistent/target", &dangling).unwrap();
    vec![
        // Ids.
        (
            "check_task_status",
            json!({"task_id": "../x"}),
            "hex digits",
        ),
        (
            "check_task_status",
            json!({"task_id": "%2e%2e"}),
            "hex digits",
        ),
        ("check_task_status", json!({"task_id": "a/b"}), "hex digits"),
        (
            "check_task_status",
            json!({"task_id": "f".repeat(200)}),
            "32 hex digits at most",
        ),
        ("check_task_status", json!({"task_id": ""}), "empty"),
        (
            "check_task_status",
            json!({"task_id": "DEADBEEF"}),
            "no task matches",
        ),
        (
            "check_task_status",
            json!({"task_id": "\u{ff41}\u{ff42}\u{ff43}\u{ff44}"}),
            "hex digits",
        ),
        (
            "check_task_status",
            json!({"task_id": "abcd\u{0}"}),
            "hex digits",
        ),
        ("check_task_status", json!({"task_id": "-rf"}), "hex digits"),
        (
            "cancel_task",
            json!({"task_id": "../../etc/passwd"}),
            "hex digits",
        ),
        (
            "get_task_output",
            json!({"task_id": "..", "stream": "stdout"}),
            "hex digits",
        ),
        ("cleanup_task", json!({"task_id": "/etc"}), "hex digits"),
        // Prompts.
        ("start_cc_task_async", json!({"prompt": ""}), "empty"),
        (
            "start_cc_task_async",
            json!({"prompt": "x".repeat(2 * 1024 * 1024)}),
            "over the limit",
        ),
        (
            "start_cc_task_async",
            json!({"prompt": "\u{0}\u{0}\u{0}"}),
            "NUL",
        ),
        // Working dirs.
        (
            "start_cc_task_async",
            json!({"prompt": "x", "working_dir": "/nonexistent/dir"}),
            "does not exist",
        ),
        (
            "start_cc_task_async",
            json!({"prompt": "x", "working_dir": file}),
            "not a directory",
        ),
        (
            "start_cc_task_async",
            json!({"prompt": "x", "working_dir": dangling}),
            "does not exist",
        ),
        // Models.
        (
            "start_cc_task_async",
            json!({"prompt": "x", "model": "son net"}),
            "model",
        ),
        (
            "start_cc_task_async",
            json!({"prompt": "x", "model": "sonnet\n--evil"}),
            "model",
        ),
        (
            "start_cc_task_async",
            json!({"prompt": "x", "model": "--dangerously-skip-permissions"}),
            "model",
        ),
        // Timeouts.
        (
            "start_cc_task_async",
            json!({"prompt": "x", "timeout": -1}),
            "timeout",
        ),
        (
            "start_cc_task_async",
            json!({"prompt": "x", "timeout": 0}),
            "timeout",
        ),
        (
            "start_cc_task_async",
            json!({"prompt": "x", "timeout": "NaN"}),
            "invalid type",
        ),
        (
            "start_cc_task_async",
            json!({"prompt": "x", "timeout": 1e300}),
            "timeout",
        ),
        (
            "wait_for_tasks",
            json!({"task_ids": ["abcd"], "timeout_s": -3}),
            "timeout_s",
        ),
        // Wrong JSON types, field by field.
        ("start_cc_task_async", json!({"prompt": 5}), "invalid type"),
        (
            "start_cc_task_async",
            json!({"prompt": "x", "working_dir": []}),
            "invalid type",
        ),
        (
            "start_cc_task_async",
            json!({"prompt": "x", "model": {}}),
            "invalid type",
        ),
        (
            "start_cc_task_async",
            json!({"prompt": "x", "skip_permissions": "yes"}),
            "invalid type",
        ),
        (
            "start_cc_task_async",
            json!({"prompt": "x", "permission_mode": 1}),
            "invalid type",
        ),
        (
            "start_cc_task_async",
            json!({"prompt": "x", "allowed_tools": "Bash"}),
            "invalid type",
        ),
        (
            "start_cc_task_async",
            json!({"prompt": "x", "max_turns": "3"}),
            "invalid type",
        ),
        (
            "start_cc_task_async",
            json!({"prompt": "x", "max_budget_usd": "1"}),
            "invalid type",
        ),
        (
            "start_cc_task_async",
            json!({"prompt": "x", "append_system_prompt": false}),
            "invalid type",
        ),
        (
            "start_cc_task_async",
            json!({"prompt": "x", "isolation": 3}),
            "invalid type",
        ),
        (
            "execute_cc_task",
            json!({"prompt": "x", "max_wait_s": "soon"}),
            "invalid type",
        ),
        (
            "wait_for_tasks",
            json!({"task_ids": "abcd"}),
            "invalid type",
        ),
        (
            "wait_for_tasks",
            json!({"task_ids": ["abcd"], "mode": 1}),
            "invalid type",
        ),
        ("list_active_tasks", json!({"limit": -1}), "invalid value"),
        (
            "list_active_tasks",
            json!({"include_finished": "true"}),
            "invalid type",
        ),
        ("cleanup_task", json!({"finished": "yes"}), "invalid type"),
        (
            "get_task_output",
            json!({"task_id": "abcd", "offset": -5}),
            "invalid value",
        ),
        (
            "continue_task",
            json!({"task_id": "abcd", "prompt": 1}),
            "invalid type",
        ),
        // Unknown fields.
        (
            "start_cc_task_async",
            json!({"prompt": "x", "bogus": 1}),
            "unknown field",
        ),
        (
            "check_task_status",
            json!({"task_id": "abcd", "path": "/etc"}),
            "unknown field",
        ),
        // Other nonsense.
        (
            "start_cc_task_async",
            json!({"prompt": "x", "max_turns": 0}),
            "max_turns",
        ),
        (
            "start_cc_task_async",
            json!({"prompt": "x", "max_budget_usd": -2}),
            "max_budget_usd",
        ),
        (
            "start_cc_task_async",
            json!({"prompt": "x", "allowed_tools": ["-x"]}),
            "allowed_tools",
        ),
    ]
}

#[test]
fn thirty_plus_bad_calls_each_get_a_clear_error_and_change_nothing() {
    let sandbox = Sandbox::new();
    let mut mcp = Mcp::start(&sandbox, Era::Modern);
    let cases = cases(&sandbox);
    assert!(cases.len() >= 30);
    for (tool, args, expected) in cases {
        let text = mcp.err(tool, args.clone());
        let shown: String = args.to_string().chars().take(80).collect();
        assert!(
            text.contains(expected),
            "{tool} {shown}: {text:?} should mention {expected:?}"
        );
    }
    let list = mcp.ok("list_active_tasks", json!({"include_finished": true}));
    assert_eq!(list["total"], 0, "a bad call created a task");
    let tasks = sandbox.state().join("tasks");
    assert_eq!(
        std::fs::read_dir(tasks).unwrap().count(),
        0,
        "a bad call left files"
    );
}

#[test]
fn malformed_lines_do_not_stop_the_server() {
    let sandbox = Sandbox::new();
    let mut mcp = Mcp::start(&sandbox, Era::Legacy);
    let nested = format!(
        "{{\"jsonrpc\":\"2.0\",\"id\":900,\"method\":\"tools/call\",\"params\":{{\"name\":\"check_task_status\",\"arguments\":{}{}}}}}",
        "[".repeat(5000),
        "]".repeat(5000)
    );
    for line in [
        nested.as_str(),
        "this is not json",
        "{\"jsonrpc\":\"2.0\",\"id\":",
        "[]",
        "{}",
    ] {
        mcp.send_raw(line);
        // Whatever the server makes of it, it answers the next request.
        let tools = mcp.request("tools/list", json!({}));
        assert_eq!(
            tools["result"]["tools"].as_array().unwrap().len(),
            crate::TOOLS.len(),
            "after {}",
            &line[..line.len().min(40)]
        );
    }
    let big = "x".repeat(10 * 1024 * 1024);
    let text = mcp.err("start_cc_task_async", json!({"prompt": big}));
    assert!(text.contains("over the limit"), "{}", &text[..100]);
    let tools = mcp.request("tools/list", json!({}));
    assert!(tools["result"]["tools"].is_array());
}

#[test]
fn every_request_with_an_id_gets_an_answer_with_that_id() {
    let sandbox = Sandbox::new();
    let mut mcp = Mcp::start(&sandbox, Era::Modern);
    for (id, line, code) in [
        (
            json!(901),
            r#""method":"tools/call","params":[1,2]"#,
            -32602,
        ),
        (
            json!("s902"),
            r#""method":"tools/call","params":"x""#,
            -32602,
        ),
        (json!(903), r#""method":"tools/list","params":3"#, -32602),
        (json!(904), r#""method":"tools/call""#, -32602),
        (
            json!(905),
            r#""method":"tools/call","params":{"arguments":{}}"#,
            -32602,
        ),
        (json!(906), r#""method":"ping","params":[]"#, -32602),
    ] {
        mcp.send_raw(&format!(r#"{{"jsonrpc":"2.0","id":{id},{line}}}"#));
        let reply = mcp.next_message(Duration::from_secs(10));
        let reply = reply.unwrap_or_else(|| panic!("no answer to {line}"));
        assert_eq!(reply["id"], id, "{line}: {reply}");
        assert_eq!(reply["error"]["code"], code, "{line}: {reply}");
    }
    mcp.send_raw(r#"{"jsonrpc":"1.0","id":907,"method":"ping"}"#);
    let reply = mcp
        .next_message(Duration::from_secs(10))
        .expect("an answer");
    assert_eq!(
        (reply["id"].clone(), reply["error"]["code"].clone()),
        (json!(907), json!(-32600))
    );
    let tools = mcp.request("tools/list", json!({}));
    assert!(tools["result"]["tools"].is_array());
}

/// The server refuses a state dir other users can write to before it writes anything there:
/// its log used to be created first.
#[test]
fn an_unsafe_state_dir_is_refused_before_the_server_writes_in_it() {
    let sandbox = Sandbox::new();
    let shared = sandbox.path("shared-state");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let output = server_command(&sandbox)
        .env("CCMP_STATE_DIR", &shared)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("other users can write"), "{stderr}");
    let left: Vec<_> = std::fs::read_dir(&shared)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        left.is_empty(),
        "the refused state dir was written: {left:?}"
    );
}

/// A symlink planted where the server's log goes is not followed.
#[test]
fn a_symlink_planted_as_the_server_log_is_not_followed() {
    let sandbox = Sandbox::new();
    let victim = sandbox.path("victim");
    std::fs::write(&victim, "untouched").unwrap();
    std::os::unix::fs::symlink(&victim, sandbox.state().join("ccmp-mcp.log")).unwrap();
    let mut cmd = server_command(&sandbox);
    cmd.env("RUST_LOG", "info");
    let mut mcp = Mcp::spawn(cmd, Era::Modern);
    mcp.ok("list_active_tasks", json!({}));
    mcp.err("check_task_status", json!({"task_id": "deadbeef"}));
    drop(mcp);
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "untouched");
}

/// Errors say what to do next with this server's tools, never with the CLI's commands.
#[test]
fn errors_end_with_what_to_do_in_tool_terms() {
    let sandbox = Sandbox::new();
    let mut mcp = Mcp::start(&sandbox, Era::Modern);
    let not_found = mcp.err("check_task_status", json!({"task_id": "deadbeef"}));
    assert!(not_found.contains("no task matches"), "{not_found}");
    assert!(
        not_found.contains("list_active_tasks(include_finished=true)"),
        "{not_found}"
    );
    let hang = mcp.ok("start_cc_task_async", json!({"prompt": "FAKE_HANG"}));
    let id = hang["short_id"].as_str().unwrap().to_owned();
    let active = mcp.err("cleanup_task", json!({"task_id": id}));
    assert!(
        active.contains(&format!("cancel_task(task_id=\"{id}\")")) && active.contains("force=true"),
        "{active}"
    );
    for text in [&not_found, &active] {
        assert!(!text.contains("`ccmp ") && !text.contains("--"), "{text}");
    }
    mcp.ok("cancel_task", json!({"task_id": id}));
}

/// A FIFO planted as a task's record is reported as damaged: listing it twice does not tie up
/// the server, which still answers everything after.
#[test]
fn a_fifo_in_place_of_a_record_blocks_nothing() {
    let sandbox = Sandbox::new();
    let fifo_dir = sandbox
        .state()
        .join("tasks/ab/abcdef0123456789abcdef0123456789");
    std::fs::create_dir_all(&fifo_dir).unwrap();
    let status = std::process::Command::new("mkfifo")
        .arg(fifo_dir.join("record.json"))
        .status()
        .unwrap();
    assert!(status.success());
    let mut mcp = Mcp::start(&sandbox, Era::Modern);
    for _ in 0..2 {
        let list = mcp.ok("list_active_tasks", json!({"include_finished": true}));
        assert_eq!(list["damaged"][0]["short_id"], "abcdef01", "{list}");
    }
    let text = mcp.err("check_task_status", json!({"task_id": "abcdef01"}));
    assert!(text.contains("not a regular file"), "{text}");
    let tools = mcp.request("tools/list", json!({}));
    assert!(
        tools["result"]["tools"]
            .as_array()
            .is_some_and(|t| !t.is_empty()),
        "{tools}"
    );
}

#[test]
fn paging_binary_output_returns_every_byte_once() {
    // 60 KB of every byte value: invalid UTF-8, control characters, split characters.
    let sandbox = Sandbox::new();
    let mut mcp = Mcp::start(&sandbox, Era::Modern);
    let task = mcp.ok("execute_cc_task", json!({"prompt": "FAKE_BINARY=60000"}));
    assert_eq!(task["status"], "succeeded", "{task}");
    let id: ccmp_core::TaskId = task["id"].as_str().unwrap().parse().unwrap();
    let log = std::fs::read(
        ccmp_core::FsStore::open(sandbox.state())
            .unwrap()
            .task_dir(&id)
            .join("stdout.jsonl"),
    )
    .unwrap();
    let mut offset = 0u64;
    let mut pages = 0;
    loop {
        let page = mcp.ok(
            "get_task_output",
            json!({"task_id": task["short_id"], "stream": "stdout", "offset": offset}),
        );
        let (start, end) = (
            page["offset"].as_u64().unwrap(),
            page["next_offset"].as_u64().unwrap(),
        );
        assert_eq!(start, offset, "page {pages} starts elsewhere: {page}");
        assert!(end > start || page["at_end"] == true, "no progress: {page}");
        let bytes = &log[start as usize..end as usize];
        assert_eq!(
            page["text"].as_str().unwrap(),
            String::from_utf8_lossy(bytes),
            "page {pages} is not the log's bytes {start}..{end}"
        );
        let size = serde_json::to_vec(&page).unwrap().len();
        assert!(size <= 8 * 1024, "page {pages} is {size} bytes");
        if pages == 0 {
            let next = page["next"].as_str().unwrap();
            assert!(next.contains("not UTF-8"), "{next}");
        }
        pages += 1;
        if page["at_end"] == true {
            assert_eq!(end, log.len() as u64);
            break;
        }
        offset = end;
    }
    // Without the cut at 6,000 shown bytes, about 10 pages would do.
    assert!(pages >= 10, "{pages} pages");
    let tail = mcp.ok(
        "get_task_output",
        json!({"task_id": task["short_id"], "stream": "stdout", "tail": 1000}),
    );
    let (start, end) = (
        tail["offset"].as_u64().unwrap() as usize,
        tail["next_offset"].as_u64().unwrap() as usize,
    );
    assert_eq!(end, log.len());
    assert_eq!(
        tail["text"].as_str().unwrap(),
        String::from_utf8_lossy(&log[start..end])
    );
}
