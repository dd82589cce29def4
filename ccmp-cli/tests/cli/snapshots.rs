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

fn stderr(cmd: &mut assert_cmd::Command) -> String {
    String::from_utf8(cmd.assert().get_output().stderr.clone()).unwrap()
}

#[test]
fn list_and_status() {
    let sandbox = Sandbox::new();
    let done = start(&sandbox, "Generate unit tests for utils.py FAKE_TOOLS=2");
    until_state(&sandbox, &done, "succeeded");
    let failed = start(&sandbox, "Refactor database.py to async FAKE_FAIL=529");
    until_state(&sandbox, &failed, "failed");
    let running = start(
        &sandbox,
        "Add type hints to every function in api.py and keep the public names FAKE_HANG",
    );
    ccmp_tests::poll(std::time::Duration::from_secs(30), "progress", || {
        (crate::status_json(&sandbox, &running)["progress"] == "started").then_some(())
    });
    let filters = filters(&sandbox);
    let filters: Vec<(&str, &str)> = filters
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    insta::with_settings!({ filters => filters }, {
        // On a narrow terminal the prompt gives way first; model ids stay whole.
        insta::assert_snapshot!("list_all_70", stdout(ccmp(&sandbox).args(["list", "--all"]).env("COLUMNS", "70")));
        insta::assert_snapshot!("list_all_120", stdout(ccmp(&sandbox).args(["list", "--all"]).env("COLUMNS", "120")));
        insta::assert_snapshot!("status_succeeded", stdout(ccmp(&sandbox).args(["status", &done])));
        insta::assert_snapshot!("status_failed", stdout(ccmp(&sandbox).args(["status", &failed])));
        // `wait` prints each task as it ends, with how it ended.
        insta::assert_snapshot!("wait_lines", stdout(ccmp(&sandbox).args(["wait", &done]))
            + &String::from_utf8(ccmp(&sandbox).args(["wait", &failed]).assert().code(1).get_output().stdout.clone()).unwrap());
        // `run` ends with an outcome line on stderr; stdout is the result alone.
        insta::assert_snapshot!("run_outcome_succeeded", stderr(ccmp(&sandbox).args(["run", "FAKE_TOOLS=3"])));
        insta::assert_snapshot!("run_outcome_failed", stderr(ccmp(&sandbox).args(["run", "FAKE_FAIL=529"])));
    });
    ccmp(&sandbox).args(["cancel", &running]).assert().success();
}
