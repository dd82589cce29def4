//! The machine-wide limit is a setting in the state dir: set from any frontend, obeyed by every
//! runner whatever the environment of the frontend that started it, changed live.

use std::process::Command;
use std::time::Duration;

use ccmp_tests::{Sandbox, peak_concurrency, poll, workspace_bin};
use serde_json::{Value, json};

use crate::client::{Era, Mcp, ccmp_cli, server_command, start_from_test_host};

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

/// Every task, as `ccmp list --all --json` gives them.
fn all_tasks(sandbox: &Sandbox) -> Vec<Value> {
    let output = ccmp_cli(sandbox, &["list", "--all", "--json", "--limit", "10000"]);
    assert!(output.status.success(), "{output:?}");
    let list: Value = serde_json::from_slice(&output.stdout).unwrap();
    list["tasks"].as_array().unwrap().clone()
}

#[test]
fn group_and_machine_limits_hold_together_under_three_frontends() {
    let sandbox = Sandbox::new();
    // Machine-wide 5; group `solo` 1, group `pair` 2, `default` only the machine's.
    cli(&sandbox, "4", &["parallel", "5"]);
    cli(&sandbox, "4", &["group", "add", "solo", "--parallel", "1"]);
    cli(&sandbox, "4", &["group", "add", "pair", "--parallel", "2"]);
    let groups = ["solo", "pair", "default"];
    let events = |group: &str| sandbox.path(&format!("events-{group}.log"));
    let prompt = |group: &str| format!("FAKE_SLEEP=0.05 FAKE_RECORD={}", events(group).display());
    let mut mcp = Mcp::start(&sandbox, Era::Modern);
    // Three frontends at once, 100 tasks each, spread over the three groups: the embedding
    // program (one process per group), the CLI (on a thread), the MCP server (here).
    let hosts: Vec<_> = groups
        .iter()
        .zip([33, 33, 34])
        .map(|(group, count)| {
            Command::new(workspace_bin("ccmp-test-host"))
                .args([
                    "start",
                    &sandbox.state().display().to_string(),
                    &count.to_string(),
                    &prompt(group),
                ])
                .env("CCMP_CLAUDE_BIN", workspace_bin("fake-claude"))
                .env("CLAUDE_CONFIG_DIR", sandbox.path("claude-config"))
                .env("GROUP", group)
                .current_dir(sandbox.work())
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    let cli_starts = std::thread::scope(|scope| {
        let cli_thread = scope.spawn(|| {
            for n in 0..100 {
                let group = groups[n % 3];
                cli(&sandbox, "9", &["start", "--group", group, &prompt(group)]);
            }
        });
        for n in 0..100 {
            let group = groups[(n + 1) % 3];
            mcp.ok(
                "start_cc_task_async",
                json!({"prompt": prompt(group), "group": group}),
            );
        }
        cli_thread.join()
    });
    cli_starts.unwrap();
    for mut host in hosts {
        assert!(host.wait().unwrap().success());
    }
    poll(Duration::from_secs(240), "all 300 tasks to end", || {
        let list = mcp.ok("list_active_tasks", json!({"limit": 1}));
        (list["total"] == 0).then_some(())
    });
    let tasks = all_tasks(&sandbox);
    assert_eq!(tasks.len(), 300);
    assert!(
        tasks.iter().all(|t| t["status"] == "succeeded"),
        "every task succeeds"
    );
    let mut all_events = String::new();
    for (group, limit) in [("solo", 1), ("pair", 2), ("default", 5)] {
        let (peak, starts) = peak_concurrency(&events(group));
        assert_eq!(starts, 100, "group {group}");
        assert!(
            peak <= limit,
            "group {group} ran {peak} at once, over {limit}"
        );
        all_events.push_str(&std::fs::read_to_string(events(group)).unwrap());
    }
    std::fs::write(sandbox.path("events-all.log"), all_events).unwrap();
    let (peak, starts) = peak_concurrency(&sandbox.path("events-all.log"));
    assert_eq!(starts, 300);
    assert!(peak <= 5, "{peak} ran at once, over the machine's 5");
    // First in, first out within a group: `solo` runs one at a time, and the tasks each
    // frontend started one after another started in that order. (Across frontends, a task made
    // a moment earlier may join the line a moment later.)
    let mut by_frontend: std::collections::HashMap<i64, Vec<(String, String)>> =
        std::collections::HashMap::new();
    for task in tasks.iter().filter(|t| t["group"] == "solo") {
        let full = task["id"].as_str().unwrap().replace('-', "");
        let record: Value = serde_json::from_slice(
            &std::fs::read(
                sandbox
                    .state()
                    .join("tasks")
                    .join(&full[..2])
                    .join(&full)
                    .join("record.json"),
            )
            .unwrap(),
        )
        .unwrap();
        by_frontend
            .entry(record["creator"]["pid"].as_i64().unwrap())
            .or_default()
            .push((
                task["created_at"].as_str().unwrap().to_owned(),
                task["started_at"].as_str().unwrap().to_owned(),
            ));
    }
    assert!(by_frontend.len() >= 3, "{:?}", by_frontend.keys());
    for (frontend, mut made) in by_frontend {
        made.sort();
        assert!(
            made.windows(2).all(|w| w[0].1 < w[1].1),
            "group solo started the tasks of frontend {frontend} out of order: {made:?}"
        );
    }
}

#[test]
fn pausing_a_group_holds_only_that_group() {
    let sandbox = Sandbox::new();
    cli(&sandbox, "4", &["group", "add", "review"]);
    let mut mcp = Mcp::start(&sandbox, Era::Modern);
    let first = mcp.ok(
        "start_cc_task_async",
        json!({"prompt": "FAKE_SLEEP=1", "group": "review"}),
    );
    poll(Duration::from_secs(30), "the review task running", || {
        (running(&mut mcp) == 1).then_some(())
    });
    cli(&sandbox, "4", &["pause", "--group", "review"]);
    let held = mcp.ok(
        "start_cc_task_async",
        json!({"prompt": "FAKE_SLEEP=0", "group": "review"}),
    );
    let next = held["next"].as_str().unwrap();
    assert!(next.starts_with("Queued: group review is paused"), "{next}");
    let other = mcp.ok("start_cc_task_async", json!({"prompt": "FAKE_SLEEP=0"}));
    // The other group runs; the running review task finishes; the queued one waits and says why.
    let done = mcp.ok(
        "wait_for_tasks",
        json!({"task_ids": [other["id"], first["id"]], "timeout_s": 30}),
    );
    assert_eq!(done["finished"].as_array().unwrap().len(), 2, "{done}");
    let waiting = poll(Duration::from_secs(30), "the held task to say why", || {
        let status = mcp.ok("check_task_status", json!({"task_id": held["id"]}));
        let progress = status["progress"].as_str().unwrap_or_default().to_owned();
        progress.contains("group review paused").then_some(status)
    });
    assert_eq!(waiting["status"], "queued");
    let list = cli(&sandbox, "4", &["group", "list"]);
    let review = list.lines().find(|l| l.starts_with("review")).unwrap();
    assert!(review.contains(" paused "), "{list}");
    let only_review = mcp.ok("list_active_tasks", json!({"group": "review"}));
    assert_eq!(only_review["total"], 1);
    cli(&sandbox, "4", &["resume", "--group", "review"]);
    let done = mcp.ok(
        "wait_for_tasks",
        json!({"task_ids": [held["id"]], "timeout_s": 30}),
    );
    assert_eq!(done["finished"][0]["status"], "succeeded", "{done}");
    // A group with no live tasks can go; `default` cannot.
    cli(&sandbox, "4", &["group", "remove", "review"]);
    let output = ccmp_cli(&sandbox, &["group", "remove", "default"]);
    assert_eq!(output.status.code(), Some(2), "{output:?}");
}

/// Follow-ups of one task sent at once, from the CLI and the MCP server: each resumes the
/// session after the one before it, so every turn is in the session's history, in the order
/// the follow-ups were made. (Before, they ran at once on the same session and the last to end
/// overwrote the others' turns.)
#[test]
fn follow_ups_sent_at_once_from_both_frontends_run_one_after_another() {
    let sandbox = Sandbox::new();
    let events = sandbox.path("events.log");
    let mut mcp = Mcp::start(&sandbox, Era::Modern);
    let first = mcp.ok("execute_cc_task", json!({"prompt": "first turn"}));
    assert_eq!(first["status"], "succeeded");
    let session = first["session_id"].as_str().unwrap().to_owned();
    let id = first["short_id"].as_str().unwrap().to_owned();
    let turn = |n: usize| format!("FAKE_SLEEP=0.2 FAKE_RECORD={} turn {n}", events.display());
    let mut made = 0;
    for (from_cli, from_mcp) in [(1, 1), (3, 2)] {
        let turns: Vec<String> = (made..made + from_cli + from_mcp).map(turn).collect();
        made += from_cli + from_mcp;
        std::thread::scope(|scope| {
            let replies: Vec<_> = turns[..from_cli]
                .iter()
                .map(|prompt| {
                    let (sandbox, id) = (&sandbox, &id);
                    scope.spawn(move || cli(sandbox, "4", &["reply", id, prompt]))
                })
                .collect();
            for prompt in &turns[from_cli..] {
                mcp.ok("continue_task", json!({"task_id": id, "prompt": prompt}));
            }
            for reply in replies {
                reply.join().unwrap();
            }
        });
        poll(Duration::from_secs(60), "the follow-ups to end", || {
            let list = mcp.ok("list_active_tasks", json!({"limit": 1}));
            (list["total"] == 0).then_some(())
        });
    }
    let mut follow_ups: Vec<Value> = all_tasks(&sandbox)
        .into_iter()
        .filter(|t| t["id"] != first["id"])
        .collect();
    assert_eq!(follow_ups.len(), 7);
    follow_ups.sort_by_key(|t| t["created_at"].as_str().unwrap().to_owned());
    for task in &follow_ups {
        assert_eq!(task["status"], "succeeded", "{task}");
        assert_eq!(task["session_id"], session.as_str());
    }
    // They ran one at a time, in the order they were made.
    let (peak, starts) = peak_concurrency(&events);
    assert_eq!((peak, starts), (1, 7));
    // And the session holds every turn, in that order.
    let history: Value = serde_json::from_slice(
        &std::fs::read(
            sandbox
                .path("claude-config")
                .join("fake-claude-sessions")
                .join(format!("{session}.json")),
        )
        .unwrap(),
    )
    .unwrap();
    let mut expected = vec![json!("first turn")];
    expected.extend(follow_ups.iter().map(|t| t["prompt"].clone()));
    assert_eq!(history["prompts"], json!(expected));
}

/// The start reply tells truthfully why a task waits when its group is full, though machine
/// slots are free. (Before, it counted only the machine's slots and said "starting now".)
#[test]
fn a_start_in_a_full_group_says_it_waits_for_the_group() {
    let sandbox = Sandbox::new();
    cli(&sandbox, "4", &["group", "add", "solo", "--parallel", "1"]);
    let mut mcp = Mcp::start(&sandbox, Era::Modern);
    let first = mcp.ok(
        "start_cc_task_async",
        json!({"prompt": "FAKE_HANG", "group": "solo"}),
    );
    poll(Duration::from_secs(30), "the first task running", || {
        (running(&mut mcp) == 1).then_some(())
    });
    let second = mcp.ok(
        "start_cc_task_async",
        json!({"prompt": "FAKE_HANG", "group": "solo"}),
    );
    let next = second["next"].as_str().unwrap();
    assert!(
        next.starts_with("Queued: group solo runs one task at a time"),
        "{next}"
    );
    let elsewhere = mcp.ok("start_cc_task_async", json!({"prompt": "FAKE_SLEEP=0"}));
    let next = elsewhere["next"].as_str().unwrap();
    assert!(next.starts_with("Queued: a slot is free"), "{next}");
    for task in [&first, &second] {
        mcp.ok("cancel_task", json!({"task_id": task["id"]}));
    }
}
