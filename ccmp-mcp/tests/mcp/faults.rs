//! Faults, load and leaks: what must hold when servers crash, writers race, records rot, the
//! disk fills up, and a thousand tasks go through one server.

use std::process::Command;
use std::time::{Duration, Instant};

use ccmp_core::{FsStore, TaskStore};
use ccmp_tests::{Sandbox, poll, task_processes, workspace_bin};
use pretty_assertions::assert_eq;
use serde_json::{Value, json};

use crate::client::{Era, LONG, Mcp, server_command, start_from_test_host};

fn ids_of(replies: &[Value]) -> Vec<Value> {
    replies.iter().map(|t| t["id"].clone()).collect()
}

/// Waits for every task (in chunks of 100) and returns the finished views.
fn wait_all(mcp: &mut Mcp, ids: &[Value]) -> Vec<Value> {
    let mut finished = Vec::new();
    for chunk in ids.chunks(100) {
        let reply = mcp.ok(
            "wait_for_tasks",
            json!({"task_ids": chunk, "timeout_s": 600}),
        );
        assert_eq!(reply["timed_out"], false);
        finished.extend(reply["finished"].as_array().unwrap().iter().cloned());
    }
    finished
}

fn cli_list(sandbox: &Sandbox) -> Value {
    let output = Command::new(workspace_bin("ccmp"))
        .args(["list", "--all", "--json", "--limit", "1000"])
        .env("CCMP_STATE_DIR", sandbox.state())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

#[test]
fn twenty_tasks_outlive_a_server_killed_with_sigkill() {
    let sandbox = Sandbox::new();
    let mut first = Mcp::start(&sandbox, Era::Modern);
    let started: Vec<Value> = (0..20)
        .map(|_| {
            first.ok(
                "start_cc_task_async",
                json!({"prompt": "FAKE_SLEEP=0.5 FAKE_TOOLS=1"}),
            )
        })
        .collect();
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    let mut second = Mcp::start(&sandbox, Era::Legacy);
    let finished = wait_all(&mut second, &ids_of(&started));
    assert_eq!(finished.len(), 20);
    assert!(
        finished.iter().all(|t| t["status"] == "succeeded"),
        "{finished:?}"
    );
    let list = cli_list(&sandbox);
    assert_eq!(list["total"], 20);
    assert!(
        list["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["status"] == "succeeded" && t["num_turns"] == 2)
    );
}

#[test]
fn three_processes_starting_a_hundred_tasks_each_lose_nothing() {
    let sandbox = Sandbox::new();
    let events = sandbox.path("events.log");
    let prompt = format!("FAKE_SLEEP=0 FAKE_RECORD={}", events.display());
    let hosts: Vec<_> = (0..2)
        .map(|_| start_from_test_host(&sandbox, 100, &prompt, "4"))
        .collect();
    let mut mcp = Mcp::start(&sandbox, Era::Modern);
    let mut ids: Vec<Value> = (0..100)
        .map(|_| mcp.ok("start_cc_task_async", json!({"prompt": prompt}))["id"].clone())
        .collect();
    for host in hosts {
        let output = host.wait_with_output().unwrap();
        assert!(output.status.success());
        ids.extend(
            String::from_utf8(output.stdout)
                .unwrap()
                .lines()
                .map(|l| json!(l)),
        );
    }
    let distinct: std::collections::BTreeSet<String> =
        ids.iter().map(|v| v.as_str().unwrap().to_owned()).collect();
    assert_eq!(distinct.len(), 300);
    let finished = wait_all(&mut mcp, &ids);
    assert!(finished.iter().all(|t| t["status"] == "succeeded"));
    let store = FsStore::open(sandbox.state()).unwrap();
    let listed = store.list().unwrap();
    assert_eq!(listed.len(), 300);
    assert!(listed.iter().all(Result::is_ok), "a record was damaged");
    // max_parallel (4) held across the three processes: replay the agents' start and end times.
    let text = std::fs::read_to_string(&events).unwrap();
    let mut marks: Vec<(u128, i32)> = text
        .lines()
        .map(|l| {
            let parts: Vec<&str> = l.split(' ').collect();
            (
                parts[2].parse().unwrap(),
                if parts[0] == "start" { 1 } else { -1 },
            )
        })
        .collect();
    assert_eq!(marks.len(), 600);
    marks.sort();
    let peak = marks.iter().scan(0, |n, (_, d)| {
        *n += d;
        Some(*n)
    });
    assert!(
        peak.max().unwrap() <= 4,
        "more than max_parallel agents ran at once"
    );
}

#[test]
fn damaged_records_affect_only_their_own_task_in_both_frontends() {
    let sandbox = Sandbox::new();
    let mut mcp = Mcp::start(&sandbox, Era::Modern);
    let good = mcp.ok("execute_cc_task", json!({"prompt": "FAKE_SLEEP=0"}));
    let store = FsStore::open(sandbox.state()).unwrap();
    let contents: [Option<&[u8]>; 4] = [
        Some(b"{\"schema\":1,\"id\":"),
        Some(b"\xff\xfe\x00garbage"),
        Some(b""),
        None,
    ];
    let mut damaged = Vec::new();
    for content in contents {
        let id = ccmp_core::TaskId::new();
        let dir = store.task_dir(&id);
        std::fs::create_dir_all(&dir).unwrap();
        if let Some(content) = content {
            std::fs::write(dir.join("record.json"), content).unwrap();
        }
        damaged.push(id);
    }
    let list = mcp.ok("list_active_tasks", json!({"include_finished": true}));
    assert_eq!(list["total"], 1);
    assert_eq!(list["damaged"].as_array().unwrap().len(), 4);
    assert_eq!(
        mcp.ok("check_task_status", json!({"task_id": good["id"]}))["status"],
        "succeeded"
    );
    let text = mcp.err("check_task_status", json!({"task_id": damaged[0].short()}));
    assert!(
        text.contains("damaged") && text.contains("cleanup"),
        "{text}"
    );
    let cli = cli_list(&sandbox);
    assert_eq!(cli["total"], 1);
    assert_eq!(cli["damaged"].as_array().unwrap().len(), 4);
    // Cleanup of the finished tasks goes on, and keeps the damaged ones (saying so)…
    let cleaned = mcp.ok("cleanup_task", json!({"finished": true}));
    assert_eq!(cleaned["removed"], json!([good["short_id"]]));
    assert_eq!(cleaned["skipped"].as_array().unwrap().len(), 4);
    // …which can be removed one by one.
    for id in &damaged {
        mcp.ok("cleanup_task", json!({"task_id": id.short()}));
    }
    assert!(store.ids().unwrap().is_empty());
}

#[test]
fn fifty_running_tasks_cancelled_at_once_all_stop() {
    let sandbox = Sandbox::new();
    let mut cmd = server_command(&sandbox);
    cmd.env("CCMP_MAX_PARALLEL", "50");
    let mut mcp = Mcp::spawn(cmd, Era::Modern);
    let ids: Vec<Value> = (0..50)
        .map(|_| mcp.ok("start_cc_task_async", json!({"prompt": "FAKE_HANG"}))["id"].clone())
        .collect();
    poll(LONG, "all 50 tasks to run", || {
        let list = mcp.ok(
            "list_active_tasks",
            json!({"status": "running", "limit": 100}),
        );
        (list["total"] == 50).then_some(())
    });
    let started = Instant::now();
    let requests: Vec<u64> = ids
        .iter()
        .map(|id| {
            mcp.send_request(
                "tools/call",
                json!({"name": "cancel_task", "arguments": {"task_id": id}}),
                None,
            )
        })
        .collect();
    for request in requests {
        let response = mcp.response(request, LONG);
        assert_eq!(
            response["result"]["structuredContent"]["status"], "cancelled",
            "{response}"
        );
    }
    // Grace 1.5 s (server_command) plus 2 s.
    assert!(
        started.elapsed() < Duration::from_millis(3500),
        "took {:?}",
        started.elapsed()
    );
    for id in &ids {
        assert!(task_processes(id.as_str().unwrap()).is_empty());
    }
}

/// Open file descriptors of a process.
fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap()
}

#[test]
fn a_thousand_tasks_leave_no_zombies_and_no_growth() {
    let sandbox = Sandbox::new();
    let mut cmd = server_command(&sandbox);
    cmd.env("CCMP_MAX_PARALLEL", "8");
    let mut mcp = Mcp::spawn(cmd, Era::Modern);
    let server = mcp.child.id();
    // Warm up, then take the baseline.
    let warm: Vec<Value> = (0..20)
        .map(|_| mcp.ok("start_cc_task_async", json!({"prompt": "FAKE_SLEEP=0"}))["id"].clone())
        .collect();
    wait_all(&mut mcp, &warm);
    let (fds_before, rss_before) = (fd_count(server), rss_kib(server));
    let ids: Vec<Value> = (0..1000)
        .map(|_| mcp.ok("start_cc_task_async", json!({"prompt": "FAKE_SLEEP=0"}))["id"].clone())
        .collect();
    let finished = wait_all(&mut mcp, &ids);
    assert_eq!(finished.len(), 1000);
    assert!(finished.iter().all(|t| t["status"] == "succeeded"));
    let store = FsStore::open(sandbox.state()).unwrap();
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
    poll(
        Duration::from_secs(30),
        "every runner to be gone and reaped",
        || {
            runners
                .iter()
                .all(|pid| !std::path::Path::new(&format!("/proc/{pid}")).exists())
                .then_some(())
        },
    );
    let (fds_after, rss_after) = (fd_count(server), rss_kib(server));
    assert!(
        fds_after <= fds_before + 4,
        "fds grew from {fds_before} to {fds_after}"
    );
    assert!(
        rss_after <= rss_before * 2 + 8 * 1024,
        "RSS grew from {rss_before} KiB to {rss_after} KiB"
    );
}

/// A tmpfs of `size` mounted on `dir` for the life of the guard (the tests run as root).
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(dir: &std::path::Path, size: &str) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let status = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(dir)
            .status()
            .unwrap();
        assert!(status.success(), "mounting a tmpfs needs root");
        Self(dir.to_owned())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_refuses_starts_damages_nothing_and_running_tasks_still_finish() {
    let sandbox = Sandbox::new();
    let _tmpfs = Tmpfs::mount(&sandbox.state(), "1m");
    let mut mcp = Mcp::start(&sandbox, Era::Modern);
    let running = mcp.ok(
        "start_cc_task_async",
        json!({"prompt": "FAKE_SLEEP=1.5 FAKE_TOOLS=1"}),
    );
    poll(LONG, "the task to run", || {
        let t = mcp.ok("check_task_status", json!({"task_id": running["id"]}));
        (t["status"] == "running").then_some(())
    });
    // Fill the disk.
    let filler = sandbox.state().join("filler");
    let mut file = std::fs::File::create(&filler).unwrap();
    // To the last byte: what a coarser fill leaves may hold a record but not the runner's
    // writes after it.
    for size in [64 * 1024, 4096, 1] {
        let chunk = vec![0u8; size];
        while std::io::Write::write_all(&mut file, &chunk).is_ok() {}
    }
    drop(file);
    let text = mcp.err("start_cc_task_async", json!({"prompt": "FAKE_SLEEP=0"}));
    assert!(
        text.contains("No space left") || text.contains("cannot be created or written"),
        "{text}"
    );
    let store = FsStore::open(sandbox.state()).unwrap();
    assert_eq!(
        store.ids().unwrap().len(),
        1,
        "a failed start left a task behind"
    );
    assert!(
        store.list().unwrap().iter().all(Result::is_ok),
        "a record was damaged"
    );
    // Space comes back: the running task records its outcome.
    std::fs::remove_file(&filler).unwrap();
    let waited = mcp.ok(
        "wait_for_tasks",
        json!({"task_ids": [running["id"]], "timeout_s": 60}),
    );
    let dir = store.task_dir(&running["id"].as_str().unwrap().parse().unwrap());
    let logs = ["runner.log", "stderr.log", "transcript.log"].map(|f| {
        format!(
            "{f}: {}",
            std::fs::read_to_string(dir.join(f)).unwrap_or_default()
        )
    });
    assert_eq!(
        waited["finished"][0]["status"], "succeeded",
        "{waited}\n{logs:?}"
    );
}

#[test]
fn prompts_and_secrets_stay_out_of_the_server_log() {
    let sandbox = Sandbox::new();
    let log = sandbox.path("server-stderr.log");
    let mut cmd = server_command(&sandbox);
    cmd.env("ANTHROPIC_API_KEY", "sk-ant-secret-4242")
        .env_remove("RUST_LOG")
        .stderr(std::fs::File::create(&log).unwrap());
    let mut mcp = Mcp::spawn(cmd, Era::Modern);
    let done = mcp.ok(
        "execute_cc_task",
        json!({"prompt": "PRIVATE-PROMPT-7777 FAKE_SLEEP=0"}),
    );
    assert_eq!(done["status"], "succeeded");
    mcp.err("check_task_status", json!({"task_id": "deadbeef"}));
    drop(mcp);
    let mut logs = std::fs::read_to_string(&log).unwrap();
    logs.push_str(
        &std::fs::read_to_string(sandbox.state().join("ccmp-mcp.log")).unwrap_or_default(),
    );
    assert!(
        !logs.contains("PRIVATE-PROMPT-7777"),
        "the prompt reached the log: {logs}"
    );
    assert!(
        !logs.contains("sk-ant-secret-4242"),
        "a secret reached the log"
    );
}
