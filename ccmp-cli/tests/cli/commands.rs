//! Each subcommand, its `--json` output and its exit codes.

use std::io::Read;
use std::process::Stdio;

use ccmp_tests::Sandbox;
use predicates::prelude::*;
use pretty_assertions::assert_eq;
use serde_json::Value;

use crate::{ccmp, start, status_json, until_state};

#[test]
fn start_prints_the_short_id_and_the_task_runs() {
    let sandbox = Sandbox::new();
    let id = start(&sandbox, "Generate unit tests for utils.py FAKE_TOOLS=1");
    assert_eq!(id.len(), 8);
    assert!(id.chars().all(|c| c.is_ascii_hexdigit()));
    let view = until_state(&sandbox, &id, "succeeded");
    assert_eq!(view["short_id"], id);
    assert_eq!(view["num_turns"], 2);
    assert_eq!(
        view["working_dir"],
        sandbox.work().canonicalize().unwrap().display().to_string()
    );
    for key in [
        "id",
        "prompt",
        "model",
        "created_at",
        "started_at",
        "finished_at",
        "exit_code",
        "signal",
        "is_error",
        "result",
        "error",
        "session_id",
        "cost_usd",
        "usage",
        "permission_denials",
        "progress",
        "log_path",
    ] {
        assert!(view.get(key).is_some(), "--json lacks {key}");
    }
}

#[test]
fn start_takes_options_and_json() {
    let sandbox = Sandbox::new();
    let out = ccmp(&sandbox)
        .args([
            "start",
            "--json",
            "-m",
            "sonnet",
            "--timeout",
            "10m",
            "--max-turns",
            "5",
            "--allowed-tools",
            "Bash(git:*)",
            "-e",
            "EXTRA=1",
            "x",
        ])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let view: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(view["model"], "sonnet");
    assert_eq!(view["timeout_secs"], 600.0);
    assert!(view["env"].as_array().unwrap().contains(&"EXTRA".into()));
}

#[test]
fn the_prompt_can_come_from_stdin() {
    let sandbox = Sandbox::new();
    let out = ccmp(&sandbox)
        .args(["start", "-"])
        .write_stdin("from stdin -rf please\nsecond line")
        .assert()
        .success();
    let id = String::from_utf8(out.get_output().stdout.clone())
        .unwrap()
        .trim()
        .to_owned();
    let view = until_state(&sandbox, &id, "succeeded");
    assert_eq!(view["prompt"], "from stdin -rf please\nsecond line");
    // Piped, with no argument at all.
    let out = ccmp(&sandbox)
        .arg("start")
        .write_stdin("piped prompt")
        .assert()
        .success();
    let id = String::from_utf8(out.get_output().stdout.clone())
        .unwrap()
        .trim()
        .to_owned();
    assert_eq!(status_json(&sandbox, &id)["prompt"], "piped prompt");
    // An empty one is refused.
    ccmp(&sandbox)
        .arg("start")
        .write_stdin("  \n")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("error: the prompt is empty"));
}

#[test]
fn run_prints_the_result_and_fails_with_the_task() {
    let sandbox = Sandbox::new();
    ccmp(&sandbox)
        .args(["run", "FAKE_TOOLS=1"])
        .assert()
        .success()
        .stdout("FAKE-DONE after 1 tool uses\n");
    // A result too long for the record (over 2 MiB) is printed whole all the same.
    let out = ccmp(&sandbox)
        .args(["run", "FAKE_HUGE=3000000"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    assert_eq!(out.len(), 3_000_001);
    assert!(out[..3_000_000].iter().all(|b| *b == b'x'));
    ccmp(&sandbox)
        .args(["run", "FAKE_FAIL=529"])
        .assert()
        .code(1)
        .stdout("")
        .stderr(predicate::str::contains(
            " · 1 turn · $0.00: the model API failed with HTTP 529",
        ));
    let out = ccmp(&sandbox)
        .args(["run", "--json", "FAKE_EXIT=4"])
        .assert()
        .code(1)
        .get_output()
        .stdout
        .clone();
    let view: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(view["status"], "failed");
    assert_eq!(view["exit_code"], 4);
}

#[test]
fn wait_reports_each_task_and_its_exit_code() {
    let sandbox = Sandbox::new();
    let ok = start(&sandbox, "FAKE_SLEEP=0.2");
    let bad = start(&sandbox, "FAKE_FAIL=500");
    let hang = start(&sandbox, "FAKE_HANG");
    ccmp(&sandbox)
        .args(["wait", &ok])
        .assert()
        .success()
        .stdout(predicate::str::contains(format!("{ok} succeeded in")));
    ccmp(&sandbox)
        .args(["wait", &ok, &bad])
        .assert()
        .code(1)
        .stdout(predicate::str::contains(format!("{bad} failed in")));
    ccmp(&sandbox)
        .args(["wait", &hang, "--timeout", "0.3"])
        .assert()
        .code(4)
        .stderr(predicate::str::contains("timed out"));
    ccmp(&sandbox)
        .args(["wait", "--any", &hang, &ok])
        .assert()
        .success();
    let out = ccmp(&sandbox)
        .args(["wait", "--json", "--timeout", "0.2", &hang])
        .assert()
        .code(4)
        .get_output()
        .stdout
        .clone();
    let json: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(json["timed_out"], true);
    assert_eq!(json["pending"][0]["short_id"], hang);
    ccmp(&sandbox)
        .args(["cancel", &hang])
        .assert()
        .success()
        .stdout(predicate::str::contains("cancelled"));
}

#[test]
fn list_filters_and_json() {
    let sandbox = Sandbox::new();
    let done = start(&sandbox, "FAKE_SLEEP=0");
    until_state(&sandbox, &done, "succeeded");
    let hang = start(&sandbox, "FAKE_HANG");
    let active = ccmp(&sandbox)
        .arg("list")
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let active = String::from_utf8(active).unwrap();
    assert!(
        active.contains(&hang) && !active.contains(&done),
        "{active}"
    );
    let all = String::from_utf8(
        ccmp(&sandbox)
            .args(["list", "--all"])
            .assert()
            .success()
            .get_output()
            .stdout
            .clone(),
    )
    .unwrap();
    assert!(all.contains(&hang) && all.contains(&done));
    let out = ccmp(&sandbox)
        .args(["list", "--json", "--state", "succeeded"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let json: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(json["total"], 1);
    assert_eq!(json["tasks"][0]["short_id"], done);
    ccmp(&sandbox)
        .args(["list", "--all", "--limit", "1"])
        .assert()
        .success()
        .stderr(predicate::str::contains("showing 1 of 2"));
    ccmp(&sandbox)
        .args(["list", "--state", "done"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("unknown task state"));
    ccmp(&sandbox).args(["cancel", &hang]).assert().success();
}

#[test]
fn logs_follow_a_running_task_until_it_ends() {
    let sandbox = Sandbox::new();
    let id = start(&sandbox, "FAKE_SLEEP=1 FAKE_TOOLS=2");
    until_state(&sandbox, &id, "running");
    let out = ccmp(&sandbox)
        .args(["logs", "-f", &id])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8(out).unwrap();
    assert!(
        text.contains("[session]")
            && text.contains("tool Bash")
            && text.contains("[result] succeeded"),
        "{text}"
    );
    assert_eq!(status_json(&sandbox, &id)["status"], "succeeded");
    let tail = ccmp(&sandbox)
        .args(["logs", "--tail", "1", &id])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    assert!(String::from_utf8(tail).unwrap().starts_with("[result]"));
    let raw = ccmp(&sandbox)
        .args(["logs", "--stream", "stdout", &id])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    assert!(
        String::from_utf8(raw)
            .unwrap()
            .starts_with("{\"type\":\"system\"")
    );
    let out = ccmp(&sandbox)
        .args(["logs", "--json", &id])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let page: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(page["at_end"], true);
}

#[test]
fn reply_resumes_the_session() {
    let sandbox = Sandbox::new();
    let first = start(&sandbox, "refactor database.py");
    until_state(&sandbox, &first, "succeeded");
    let out = ccmp(&sandbox)
        .args(["reply", "--wait", &first[..4], "now run the tests"])
        .assert()
        .success();
    assert!(String::from_utf8_lossy(&out.get_output().stdout).contains("FAKE-DONE"));
    let all = ccmp(&sandbox)
        .args(["list", "--all", "--json"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let all: Value = serde_json::from_slice(&all).unwrap();
    let second = &all["tasks"][0];
    assert_eq!(second["follows"].as_str().unwrap()[..8], first);
    assert_eq!(
        second["session_id"],
        status_json(&sandbox, &first)["session_id"]
    );
    // A reply to a running task waits for it, and says so.
    let hang = start(&sandbox, "FAKE_HANG");
    ccmp(&sandbox)
        .args(["reply", &hang, "more"])
        .assert()
        .success()
        .stderr(predicate::str::contains(format!(
            "queued behind {hang}: it starts once that task has succeeded"
        )));
    ccmp(&sandbox).args(["cancel", &hang]).assert().success();
}

#[test]
fn cleanup_refuses_running_tasks_unless_forced() {
    let sandbox = Sandbox::new();
    let done = start(&sandbox, "FAKE_SLEEP=0");
    until_state(&sandbox, &done, "succeeded");
    let hang = start(&sandbox, "FAKE_HANG");
    until_state(&sandbox, &hang, "running");
    ccmp(&sandbox)
        .args(["cleanup", &hang])
        .assert()
        .code(5)
        .stderr(predicate::str::contains("--force").or(predicate::str::contains("force")));
    ccmp(&sandbox)
        .args(["cleanup", "--older-than", "1h"])
        .assert()
        .success()
        .stderr(predicate::str::contains("nothing to remove"));
    ccmp(&sandbox)
        .args(["cleanup", "--older-than", "soon"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("7d"));
    ccmp(&sandbox)
        .args(["cleanup", "--finished"])
        .assert()
        .success()
        .stdout(format!("removed {done}\n"));
    ccmp(&sandbox)
        .args(["cleanup", "--force", &hang])
        .assert()
        .success()
        .stdout(format!("removed {hang}\n"));
    ccmp(&sandbox).arg("cleanup").assert().code(2);
    ccmp(&sandbox).args(["status", &hang]).assert().code(3);
}

#[test]
fn errors_say_what_to_do_and_exit_with_documented_codes() {
    let sandbox = Sandbox::new();
    ccmp(&sandbox)
        .args(["status", "deadbeef"])
        .assert()
        .code(3)
        .stderr(predicate::str::starts_with("error: no task matches"));
    ccmp(&sandbox)
        .args(["status", "../../etc"])
        .assert()
        .code(3)
        .stderr(predicate::str::contains("hex digits"));
    ccmp(&sandbox)
        .args(["status", "abc"])
        .assert()
        .code(3)
        .stderr(predicate::str::contains("at least 4"));
    ccmp(&sandbox)
        .args(["start", "-C", "/nonexistent", "x"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("does not exist"));
    ccmp(&sandbox)
        .args(["start", "--timeout", "0", "x"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("timeout"));
    ccmp(&sandbox).args(["start", "--bogus"]).assert().code(2);
    ccmp(&sandbox)
        .args(["start", "x"])
        .env("CCMP_CLAUDE_BIN", "no-such-claude")
        .assert()
        .code(6)
        .stderr(predicate::str::contains(
            "npm install -g @anthropic-ai/claude-code",
        ));
    ccmp(&sandbox)
        .args(["list"])
        .env("CCMP_STATE_DIR", "/proc/ccmp")
        .assert()
        .code(6)
        .stderr(predicate::str::contains("CCMP_STATE_DIR"));
    ccmp(&sandbox)
        .args(["list"])
        .env("CCMP_MAX_PARALLEL", "lots")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("CCMP_MAX_PARALLEL"));
    // Nothing was created by any of it.
    let out = ccmp(&sandbox)
        .args(["list", "--all", "--json"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    assert_eq!(serde_json::from_slice::<Value>(&out).unwrap()["total"], 0);
}

#[test]
fn an_ambiguous_prefix_lists_the_candidates() {
    use ccmp_core::TaskStore;
    let sandbox = Sandbox::new();
    let short = start(&sandbox, "FAKE_SLEEP=0");
    // Copy the task under an id that shares its first 6 digits.
    let store = ccmp_core::FsStore::open(sandbox.state()).unwrap();
    let id = store.resolve(&short).unwrap();
    let mut twin = store.load(&id).unwrap();
    // Same first 6 digits, different 7th and 8th: only the 6-digit prefix is ambiguous.
    let next = if &short[6..8] == "00" { "ff" } else { "00" };
    twin.id = format!("{}{next}-0000-4000-8000-000000000000", &short[..6])
        .parse()
        .unwrap();
    store.create(&twin).unwrap();
    ccmp(&sandbox)
        .args(["status", &short[..6]])
        .assert()
        .code(3)
        .stderr(
            predicate::str::contains("ambiguous")
                .and(predicate::str::contains("give more characters")),
        );
    ccmp(&sandbox).args(["status", &short]).assert().success();
}

#[test]
fn completions_are_generated() {
    let sandbox = Sandbox::new();
    ccmp(&sandbox)
        .args(["completions", "bash"])
        .assert()
        .success()
        .stdout(predicate::str::contains("_ccmp"));
}

#[test]
fn a_closed_pipe_is_not_an_error() {
    let sandbox = Sandbox::new();
    let id = start(&sandbox, "FAKE_HUGE=2000000");
    until_state(&sandbox, &id, "succeeded");
    let mut child = crate::ccmp_std(&sandbox)
        .args(["logs", &id])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut byte = [0u8; 1];
    child.stdout.take().unwrap().read_exact(&mut byte).unwrap();
    // The read end is closed now; ccmp hits EPIPE on its next write.
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{:?}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn start_in_a_worktree_shows_branch_and_changes_and_cleanup_keeps_the_work() {
    let sandbox = Sandbox::new();
    let dir = sandbox.work();
    let git = |args: &[&str]| ccmp_tests::git(&dir, args);
    git(&["init", "-q", "-b", "main"]);
    std::fs::write(dir.join("api.py"), "def f(x):\n    return x\n").unwrap();
    git(&["add", "."]);
    git(&["commit", "-q", "-m", "init"]);
    let id = String::from_utf8(
        ccmp(&sandbox)
            .args([
                "start",
                "--worktree",
                "--wait",
                "Add type hints to api.py FAKE_WRITE=api.py",
            ])
            .assert()
            .success()
            .get_output()
            .stdout
            .clone(),
    )
    .unwrap()
    .trim()
    .to_owned();
    let status = String::from_utf8(
        ccmp(&sandbox)
            .args(["status", &id])
            .assert()
            .success()
            .get_output()
            .stdout
            .clone(),
    )
    .unwrap();
    assert!(status.contains(&format!("(branch ccmp/{id}")), "{status}");
    assert!(
        status.contains("1 file changed, +1 -2, uncommitted changes"),
        "{status}"
    );
    assert_eq!(git(&["status", "--porcelain"]), "");
    ccmp(&sandbox)
        .args(["cleanup", &id])
        .assert()
        .success()
        .stderr(predicate::str::contains(format!(
            "kept branch ccmp/{id} (uncommitted changes were committed to it)"
        )));
    assert_eq!(
        git(&["show", &format!("ccmp/{id}:api.py")]),
        "written by fake-claude\n"
    );
    // Outside a repository: a clear error, nothing created.
    let plain = sandbox.path("plain");
    std::fs::create_dir(&plain).unwrap();
    ccmp(&sandbox)
        .args([
            "start",
            "--worktree",
            "-C",
            &plain.display().to_string(),
            "x",
        ])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("not in a git repository"));
}

/// `ccmp … --json | head` ends quietly: a reader that stops early is not an error.
#[test]
fn json_into_a_closed_pipe_is_not_an_error() {
    use std::io::Read as _;
    let sandbox = Sandbox::new();
    let id = start(&sandbox, "FAKE_HUGE=400000");
    until_state(&sandbox, &id, "succeeded");
    let mut child = crate::ccmp_std(&sandbox)
        .args(["logs", "--json", "--stream", "stdout", &id])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut head = [0u8; 16];
    child.stdout.take().unwrap().read_exact(&mut head).unwrap();
    // The pipe closes here, with most of the JSON unread.
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{:?}", out.status);
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
}
