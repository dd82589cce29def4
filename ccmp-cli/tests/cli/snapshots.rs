//! Snapshots of human output, with ids, times, durations and paths redacted.

use ccmp_tests::Sandbox;

use crate::{ccmp, start, until_state};

fn filters(sandbox: &Sandbox) -> Vec<(String, String)> {
    let state = sandbox
        .state()
        .canonicalize()
        .unwrap()
        .display()
        .to_string();
    vec![
        (regex_escape(&state), "[STATE]".into()),
        (r"/tasks/[0-9a-f]{2}/".into(), "/tasks/[SHARD]/".into()),
        (r"\b[0-9a-f]{32}\b".into(), "[ID32]".into()),
        (
            r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b".into(),
            "[UUID]".into(),
        ),
        (r"\b[0-9a-f]{8}\b".into(), "[ID]".into()),
        (
            r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC".into(),
            "[TIME]".into(),
        ),
        (
            r"\b\d+(d \d+h|h \d+m|m \d+s|s|m|h|d)\b".into(),
            "[AGE]".into(),
        ),
        // Column widths follow the redacted values; compare the words, not the padding.
        (r" {2,}".into(), "  ".into()),
        (r"(?m) +$".into(), "".into()),
    ]
}

fn regex_escape(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '/' {
                c.to_string()
            } else {
                format!("\\{c}")
            }
        })
        .collect()
}

fn stdout(cmd: &mut assert_cmd::Command) -> String {
    String::from_utf8(cmd.assert().success().get_output().stdout.clone()).unwrap()
}

#[test]
fn help() {
    let sandbox = Sandbox::new();
    insta::assert_snapshot!("help", stdout(ccmp(&sandbox).arg("--help")));
    insta::assert_snapshot!(
        "start_help",
        stdout(ccmp(&sandbox).args(["start", "--help"]))
    );
}

#[test]
fn list_and_status() {
    let sandbox = Sandbox::new();
    let done = start(&sandbox, "Generate unit tests for utils.py FAKE_TOOLS=2");
    until_state(&sandbox, &done, "succeeded");
    let failed = start(&sandbox, "Refactor database.py to async FAKE_FAIL=529");
    until_state(&sandbox, &failed, "failed");
    let filters = filters(&sandbox);
    let filters: Vec<(&str, &str)> = filters
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    insta::with_settings!({ filters => filters }, {
        insta::assert_snapshot!("list_all", stdout(ccmp(&sandbox).args(["list", "--all"])));
        insta::assert_snapshot!("status_succeeded", stdout(ccmp(&sandbox).args(["status", &done])));
        insta::assert_snapshot!("status_failed", stdout(ccmp(&sandbox).args(["status", &failed])));
    });
}
