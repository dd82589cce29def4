//! Hostile input at the terminal, table-driven: each gets a non-zero exit, `error: …` saying what
//! is wrong, and changes nothing on disk.

use ccmp_tests::Sandbox;
use serde_json::Value;

use crate::ccmp;

#[test]
fn thirty_plus_bad_commands_each_fail_clearly_and_change_nothing() {
    let sandbox = Sandbox::new();
    let file = sandbox.path("a-file");
    std::fs::write(&file, "x").unwrap();
    let file = file.display().to_string();
    let long_id = "f".repeat(200);
    let cases: Vec<(Vec<&str>, Option<&str>, &str)> = vec![
        (vec!["status", "../x"], None, "hex digits"),
        (vec!["status", "%2e%2e"], None, "hex digits"),
        (vec!["status", "a/b"], None, "hex digits"),
        (vec!["status", &long_id], None, "32 hex digits at most"),
        (vec!["status", ""], None, "empty"),
        (vec!["status", "DEADBEEF"], None, "no task matches"),
        (
            vec!["status", "\u{ff41}\u{ff42}\u{ff43}\u{ff44}"],
            None,
            "hex digits",
        ),
        (vec!["cancel", "../../etc"], None, "hex digits"),
        (vec!["logs", "/etc/passwd"], None, "hex digits"),
        (vec!["reply", "zzzz", "more"], None, "hex digits"),
        (vec!["wait", "abc"], None, "at least 4"),
        (vec!["cleanup", ".."], None, "hex digits"),
        (vec!["start", ""], None, "empty"),
        (vec!["start"], Some("   \n"), "empty"),
        (vec!["start", "-"], Some("nul\u{0}bytes"), "NUL"),
        (
            vec!["start", "-C", "/nonexistent", "x"],
            None,
            "does not exist",
        ),
        (vec!["start", "-C", &file, "x"], None, "not a directory"),
        (vec!["start", "-m", "son net", "x"], None, "model"),
        (vec!["start", "-m", "sonnet\nx", "x"], None, "model"),
        (vec!["start", "--timeout", "-1", "x"], None, "timeout"),
        (vec!["start", "--timeout", "0", "x"], None, "timeout"),
        (vec!["start", "--timeout", "NaN", "x"], None, "timeout"),
        (vec!["start", "--timeout", "1e300", "x"], None, "timeout"),
        (vec!["start", "--timeout", "soon", "x"], None, "duration"),
        (vec!["start", "--max-turns", "0", "x"], None, "max_turns"),
        (
            vec!["start", "--max-turns", "many", "x"],
            None,
            "invalid value",
        ),
        (
            vec!["start", "--max-budget-usd", "-1", "x"],
            None,
            "max_budget_usd",
        ),
        (
            vec!["start", "--permission-mode", "yolo", "x"],
            None,
            "acceptEdits",
        ),
        (
            vec!["start", "--allowed-tools", "", "x"],
            None,
            "allowed_tools",
        ),
        (vec!["start", "-e", "NOEQUALS", "x"], None, "NAME=VALUE"),
        (vec!["start", "--bogus", "x"], None, "unexpected argument"),
        (vec!["list", "--state", "done"], None, "unknown task state"),
        (vec!["list", "--limit", "0"], None, "limit"),
        (vec!["list", "--limit", "-3"], None, "error:"),
        (
            vec!["logs", "--stream", "everything", "abcd"],
            None,
            "transcript",
        ),
        (vec!["wait", "--timeout", "soon", "abcd"], None, "duration"),
        (vec!["cleanup", "--older-than", "soon"], None, "duration"),
        (vec!["cleanup"], None, "say what to remove"),
        (vec!["completions", "tcsh"], None, "invalid value"),
    ];
    assert!(cases.len() >= 30);
    for (args, stdin, expected) in cases {
        let mut cmd = ccmp(&sandbox);
        cmd.args(&args);
        if let Some(input) = stdin {
            cmd.write_stdin(input);
        }
        let output = cmd.output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?} succeeded");
        assert!(
            stderr.starts_with("error: ") || stderr.contains("\nerror: "),
            "{args:?}: {stderr}"
        );
        assert!(
            stderr.contains(expected),
            "{args:?}: {stderr:?} should mention {expected:?}"
        );
    }
    // A state dir other users can write to is refused, not used.
    let shared = sandbox.path("shared-state");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let output = ccmp(&sandbox)
        .args(["start", "x"])
        .env("CCMP_STATE_DIR", &shared)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(6));
    assert!(String::from_utf8_lossy(&output.stderr).contains("other users can write"));
    assert_eq!(std::fs::read_dir(&shared).unwrap().count(), 0);

    let out = ccmp(&sandbox)
        .args(["list", "--all", "--json"])
        .output()
        .unwrap();
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list["total"], 0, "a bad command created a task");
}

/// Errors say what to do next with `ccmp` commands and flags (the core gives the hint as data).
#[test]
fn errors_end_with_a_hint_in_command_terms() {
    let sandbox = Sandbox::new();
    let output = ccmp(&sandbox)
        .args(["status", "deadbeef"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("error: no task matches `deadbeef`"),
        "{stderr}"
    );
    assert!(stderr.contains("hint: `ccmp list --all`"), "{stderr}");
    assert!(!stderr.contains("list_active_tasks"), "{stderr}");

    let hang = crate::start(&sandbox, "FAKE_HANG");
    crate::until_state(&sandbox, &hang, "running");
    let output = ccmp(&sandbox).args(["cleanup", &hang]).output().unwrap();
    assert_eq!(output.status.code(), Some(5));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("hint: `ccmp cancel {hang}`"))
            && stderr.contains(&format!("`ccmp cleanup --force {hang}`")),
        "{stderr}"
    );
    assert!(!stderr.contains("force=true"), "{stderr}");
    ccmp(&sandbox).args(["cancel", &hang]).assert().success();
}

fn mkfifo(path: &std::path::Path) {
    let status = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success());
}

/// A symlink planted as a task's log is not followed, and a FIFO planted as a record neither
/// hangs `list` nor `status`: both are refused and reported.
#[test]
fn planted_symlinks_and_fifos_are_refused_and_nothing_hangs() {
    let sandbox = Sandbox::new();
    let id = crate::start(&sandbox, "FAKE_SLEEP=0");
    let view = crate::until_state(&sandbox, &id, "succeeded");
    let full = view["id"].as_str().unwrap().replace('-', "");
    let task_dir = sandbox.state().join("tasks").join(&full[..2]).join(&full);
    let secret = sandbox.path("secret");
    std::fs::write(&secret, "TOP-SECRET").unwrap();
    std::fs::remove_file(task_dir.join("transcript.log")).unwrap();
    std::os::unix::fs::symlink(&secret, task_dir.join("transcript.log")).unwrap();
    let output = ccmp(&sandbox)
        .args(["logs", &id])
        .timeout(std::time::Duration::from_secs(20))
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(!String::from_utf8_lossy(&output.stdout).contains("TOP-SECRET"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("not a regular file"), "{stderr}");

    let fifo_id = "abcdef0123456789abcdef0123456789";
    let fifo_dir = sandbox.state().join("tasks/ab").join(fifo_id);
    std::fs::create_dir_all(&fifo_dir).unwrap();
    mkfifo(&fifo_dir.join("record.json"));
    let output = ccmp(&sandbox)
        .args(["list", "--all", "--json"])
        .timeout(std::time::Duration::from_secs(20))
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let list: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(list["total"], 1);
    assert_eq!(list["damaged"][0]["short_id"], "abcdef01");
    let output = ccmp(&sandbox)
        .args(["status", "abcdef01"])
        .timeout(std::time::Duration::from_secs(20))
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("not a regular file"), "{stderr}");
}

/// An agent program that is there but cannot run is not "not found", a working dir removed while
/// the task waited is not blamed on the agent, and the exit code is the one `--help` gives (6).
#[test]
fn errors_name_the_real_cause_and_exit_as_documented() {
    use std::os::unix::fs::PermissionsExt;
    let sandbox = Sandbox::new();
    let plain = sandbox.path("plain-file");
    std::fs::write(&plain, "#!/bin/sh\n").unwrap();
    std::fs::set_permissions(&plain, std::fs::Permissions::from_mode(0o644)).unwrap();
    let dir = sandbox.path("a-dir");
    std::fs::create_dir(&dir).unwrap();
    for (program, expected) in [(&plain, "not executable"), (&dir, "is a directory")] {
        let output = ccmp(&sandbox)
            .args(["start", "x"])
            .env("CCMP_CLAUDE_BIN", program)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(6), "{stderr}");
        assert!(stderr.contains(expected), "{stderr}");
        assert!(!stderr.contains("not found"), "{stderr}");
    }
    let help = ccmp(&sandbox).arg("--help").output().unwrap();
    assert!(
        String::from_utf8_lossy(&help.stdout)
            .contains("6  ccmp failed (state dir, runner, agent program")
    );

    // One slot, held: the second task waits while its working dir is removed.
    let doomed = sandbox.path("doomed");
    std::fs::create_dir(&doomed).unwrap();
    ccmp(&sandbox).args(["parallel", "1"]).assert().success();
    let hang = ccmp(&sandbox)
        .args(["start", "FAKE_HANG"])
        .output()
        .unwrap();
    let hang = String::from_utf8_lossy(&hang.stdout).trim().to_owned();
    crate::until_state(&sandbox, &hang, "running");
    let queued = ccmp(&sandbox)
        .args(["start", "FAKE_SLEEP=0", "-C"])
        .arg(&doomed)
        .output()
        .unwrap();
    let queued = String::from_utf8_lossy(&queued.stdout).trim().to_owned();
    crate::until_state(&sandbox, &queued, "queued");
    std::fs::remove_dir(&doomed).unwrap();
    ccmp(&sandbox).args(["cancel", &hang]).assert().success();
    let view = crate::until_state(&sandbox, &queued, "failed");
    let error = view["error"].as_str().unwrap();
    assert!(
        error.contains("working dir") && error.contains("no longer exists"),
        "{error}"
    );
    assert!(!error.contains("installed"), "{error}");
}

/// A one-line result of megabytes is shown as a head, bounded in bytes, with the way to read it
/// all.
#[test]
fn status_bounds_a_huge_one_line_result() {
    let sandbox = Sandbox::new();
    let id = crate::start(&sandbox, "FAKE_HUGE=3000000");
    crate::until_state(&sandbox, &id, "succeeded");
    let output = ccmp(&sandbox).args(["status", &id]).output().unwrap();
    assert!(output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.len() < 8 * 1024,
        "status printed {} bytes",
        stdout.len()
    );
    assert!(
        stdout.contains(&format!("ccmp logs {id} --stream result")),
        "{stdout}"
    );
    let all = ccmp(&sandbox)
        .args(["logs", &id, "--stream", "result"])
        .output()
        .unwrap();
    assert_eq!(all.stdout.len(), 3_000_000);
}
