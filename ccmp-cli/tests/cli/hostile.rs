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
