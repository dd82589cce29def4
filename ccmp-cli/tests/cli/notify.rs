//! Events and notifiers, with real processes: a command notifier hears every event of a task's
//! life in order, a webhook on a loopback server gets them with its token, a notifier that hangs
//! or fails delays nothing, several frontends at once deliver each event once, and a runner
//! killed with SIGKILL still yields its event.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::mpsc::{Receiver, channel};
use std::time::Duration;

use ccmp_tests::{Sandbox, pid_alive, poll};
use predicates::prelude::*;
use pretty_assertions::assert_eq;
use serde_json::Value;

use crate::{ccmp, full_id, kill_runner, start, status_json, until_state};

const LONG: Duration = Duration::from_secs(60);
const OAUTH: &str = "CLAUDE_CODE_OAUTH_TOKEN=sk-ant-oat01-dummy";

/// The JSON lines a `tee -a` notifier wrote.
fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Adds a notifier that appends every event it is given to `file`, one JSON line each.
fn add_recorder(sandbox: &Sandbox, name: &str, file: &Path, extra: &[&str]) {
    ccmp(sandbox)
        .args(["notify", "add", name])
        .args(extra)
        .args(["--", "tee", "-a", &file.display().to_string()])
        .assert()
        .success();
}

/// The event log, as `ccmp events --json` prints it.
fn logged(sandbox: &Sandbox) -> Vec<Value> {
    let out = ccmp(sandbox)
        .args(["events", "--json", "--since", "0"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn kinds(events: &[Value]) -> Vec<&str> {
    events.iter().map(|e| e["kind"].as_str().unwrap()).collect()
}

fn notifier_state(sandbox: &Sandbox, name: &str) -> Value {
    let out = ccmp(sandbox)
        .args(["notify", "list", "--json"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let all: Value = serde_json::from_slice(&out).unwrap();
    all.as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == name)
        .unwrap()["state"]
        .clone()
}

#[test]
fn a_command_notifier_hears_every_event_of_a_tasks_life_in_order() {
    let sandbox = Sandbox::new();
    let got = sandbox.path("got.jsonl");
    add_recorder(&sandbox, "rec", &got, &[]);
    let env_file = sandbox.path("env.txt");
    ccmp(&sandbox)
        .args([
            "notify",
            "add",
            "env",
            "--event",
            "succeeded",
            "--",
            "sh",
            "-c",
        ])
        .arg(format!(
            "echo \"$CCMP_EVENT $CCMP_SHORT_ID $CCMP_STATUS $CCMP_GROUP\" >> {}",
            env_file.display()
        ))
        .assert()
        .success();
    let out = ccmp(&sandbox)
        .args([
            "start",
            "-e",
            OAUTH,
            "-e",
            "FAKE_USAGE_LIMIT=2",
            "refactor db.py",
        ])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let id = String::from_utf8(out).unwrap().trim().to_owned();
    let events = poll(LONG, "four events", || {
        let events = lines(&got);
        (events.len() >= 4).then_some(events)
    });
    assert_eq!(
        kinds(&events),
        ["parked", "resumed", "succeeded", "group_drained"]
    );
    let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, [1, 2, 3, 4]);
    assert_eq!(events[2]["short_id"], id.as_str());
    assert_eq!(events[2]["status"], "succeeded");
    assert_eq!(events[2]["prompt_head"], "refactor db.py");
    assert_eq!(events[2]["next"], format!("ccmp status {id}"));
    assert!(events[2]["cost_usd"].as_f64().unwrap() > 0.0);
    assert_eq!(events[3]["group"], "default");
    let env = poll(LONG, "the env notifier", || {
        let text = std::fs::read_to_string(&env_file).unwrap_or_default();
        (!text.is_empty()).then_some(text)
    });
    assert_eq!(env.trim(), format!("succeeded {id} succeeded default"));
    // The log, as any program reads it.
    assert_eq!(logged(&sandbox), events);
    ccmp(&sandbox)
        .args(["events", "--since", "3"])
        .assert()
        .success()
        .stdout(predicate::str::contains("group default drained"))
        .stdout(predicate::str::contains("succeeded in").not());
    let state = poll(LONG, "the counts", || {
        let state = notifier_state(&sandbox, "rec");
        (state["delivered"] == 4).then_some(state)
    });
    assert_eq!(state["failed"], 0);
}

/// A loopback HTTP server that answers 200 and hands each request (head, body) over.
fn webhook_server() -> (String, Receiver<(String, String)>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { break };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut head = String::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                head.push_str(&line);
            }
            let length = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|n| n.trim().parse::<usize>().unwrap())
                })
                .unwrap_or(0);
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
            if tx.send((head, String::from_utf8(body).unwrap())).is_err() {
                break;
            }
        }
    });
    (url, rx)
}

#[test]
fn a_webhook_gets_the_events_with_its_token_and_template() {
    let sandbox = Sandbox::new();
    let (url, requests) = webhook_server();
    ccmp(&sandbox)
        .args(["notify", "add", "hook", "--webhook", &url])
        .args(["--header", "Authorization: Bearer tk_test_1"])
        .args(["--event", "succeeded", "--event", "failed"])
        .assert()
        .success();
    let (chat_url, chat) = webhook_server();
    ccmp(&sandbox)
        .args([
            "notify",
            "add",
            "chat",
            "--webhook",
            &chat_url,
            "--event",
            "failed",
        ])
        .args(["--template", r#"{"content": "{{summary}} -> {{next}}"}"#])
        .assert()
        .success();
    ccmp(&sandbox)
        .args(["notify", "list"])
        .assert()
        .success()
        .stdout(predicate::str::contains("[Authorization: …]"))
        .stdout(predicate::str::contains("tk_test_1").not());
    let good = start(&sandbox, "FAKE_SLEEP=0 summarize");
    let bad = start(&sandbox, "FAKE_FAIL=529 broken");
    let mut bodies = Vec::new();
    for _ in 0..2 {
        let (head, body) = requests.recv_timeout(LONG).expect("a webhook request");
        assert!(head.starts_with("POST /hook HTTP/1.1"), "{head}");
        // Header names are case-insensitive; ureq sends them in lowercase.
        let head = head.to_ascii_lowercase();
        assert!(head.contains("authorization: bearer tk_test_1"), "{head}");
        assert!(head.contains("content-type: application/json"), "{head}");
        bodies.push(serde_json::from_str::<Value>(&body).unwrap());
    }
    bodies.sort_by_key(|b| b["kind"].as_str().unwrap().to_owned());
    assert_eq!(bodies[0]["kind"], "failed");
    assert_eq!(bodies[0]["short_id"], bad.as_str());
    assert!(
        bodies[0]["text"].as_str().unwrap().contains("529"),
        "{}",
        bodies[0]
    );
    assert_eq!(bodies[1]["kind"], "succeeded");
    assert_eq!(bodies[1]["short_id"], good.as_str());
    let (_, body) = chat.recv_timeout(LONG).expect("the templated request");
    let body: Value = serde_json::from_str(&body).unwrap();
    let content = body["content"].as_str().unwrap();
    assert!(
        content.starts_with(&format!("{bad} failed"))
            && content.ends_with(&format!("-> ccmp status {bad}")),
        "{content}"
    );
    // Only what was asked for: every event passed, two sent (no group_drained).
    until_state(&sandbox, &good, "succeeded");
    until_state(&sandbox, &bad, "failed");
    let last = logged(&sandbox).last().unwrap()["seq"].clone();
    poll(LONG, "the deliveries to settle", || {
        let state = notifier_state(&sandbox, "hook");
        (state["cursor"] == last).then_some(())
    });
    assert_eq!(notifier_state(&sandbox, "hook")["delivered"], 2);
    assert!(requests.try_recv().is_err());
}

#[test]
fn a_notifier_that_hangs_or_fails_delays_nothing_and_its_failure_is_shown() {
    let sandbox = Sandbox::new();
    let pid_file = sandbox.path("slow.pid");
    ccmp(&sandbox)
        .args([
            "notify",
            "add",
            "slow",
            "--event",
            "succeeded",
            "--timeout",
            "3s",
        ])
        .args(["--", "sh", "-c"])
        .arg(format!("echo $$ > {}; exec sleep 60", pid_file.display()))
        .assert()
        .success();
    ccmp(&sandbox)
        .args(["notify", "add", "bad", "--event", "succeeded", "--"])
        .args(["sh", "-c", "echo no such channel >&2; exit 3"])
        .assert()
        .success();
    let id = start(&sandbox, "FAKE_SLEEP=0 quick");
    // The hanging notifier runs, and the task has its outcome all the same.
    let pid: i32 = poll(LONG, "the slow notifier to run", || {
        std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|p| p.trim().parse().ok())
    });
    assert!(pid_alive(pid));
    assert_eq!(status_json(&sandbox, &id)["status"], "succeeded");
    ccmp(&sandbox)
        .args(["wait", &id, "--timeout", "30"])
        .assert()
        .success();
    let slow = poll(LONG, "the slow notifier to time out", || {
        let state = notifier_state(&sandbox, "slow");
        (state["failed"] == 1).then_some(state)
    });
    assert!(
        slow["last_error"]
            .as_str()
            .unwrap()
            .contains("did not finish within 3s"),
        "{slow}"
    );
    poll(LONG, "the slow notifier to be killed", || {
        (!pid_alive(pid)).then_some(())
    });
    let bad = poll(LONG, "the failing notifier", || {
        let state = notifier_state(&sandbox, "bad");
        (state["failed"] == 1).then_some(state)
    });
    let error = bad["last_error"].as_str().unwrap();
    assert!(
        error.contains("exit status: 3") && error.contains("no such channel"),
        "{error}"
    );
    ccmp(&sandbox)
        .args(["notify", "list"])
        .assert()
        .success()
        .stdout(predicate::str::contains("failed 1"))
        .stdout(predicate::str::contains("no such channel"));
    let log = std::fs::read_to_string(sandbox.state().join("events/deliveries.log")).unwrap();
    assert!(log.contains("notifier bad: event 1 (succeeded"), "{log}");
}

#[test]
fn several_frontends_at_once_deliver_each_event_once() {
    let sandbox = Sandbox::new();
    let got = sandbox.path("got.jsonl");
    add_recorder(&sandbox, "rec", &got, &[]);
    // Three frontends, each starting tasks as fast as it can, every task ending on its own.
    let starters: Vec<_> = (0..3)
        .map(|n| {
            let mut cmd = crate::ccmp_std(&sandbox);
            cmd.args(["start", &format!("FAKE_SLEEP=0 from {n}")]);
            std::thread::spawn(move || {
                for _ in 0..4 {
                    assert!(cmd.output().unwrap().status.success());
                }
            })
        })
        .collect();
    for starter in starters {
        starter.join().unwrap();
    }
    poll(LONG, "every task to end", || {
        let out = ccmp(&sandbox).args(["list", "--json"]).output().unwrap();
        let list: Value = serde_json::from_slice(&out.stdout).ok()?;
        list["tasks"].as_array()?.is_empty().then_some(())
    });
    let last = poll(LONG, "the log to be complete", || {
        let events = logged(&sandbox);
        let ended = events.iter().filter(|e| e["kind"] == "succeeded").count();
        (ended == 12).then(|| events.last().unwrap()["seq"].as_u64().unwrap())
    });
    // Every event passed, so no deliverer has one left to send.
    poll(LONG, "every event delivered", || {
        let state = notifier_state(&sandbox, "rec");
        (state["cursor"] == last && state["delivered"] == last).then_some(())
    });
    let mut seqs: Vec<u64> = lines(&got)
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=last).collect::<Vec<_>>(), "each event once");
}

#[test]
fn a_runner_killed_with_sigkill_still_yields_its_event() {
    let sandbox = Sandbox::new();
    let got = sandbox.path("got.jsonl");
    add_recorder(&sandbox, "rec", &got, &["--event", "failed"]);
    let id = start(&sandbox, "FAKE_HANG");
    until_state(&sandbox, &id, "running");
    kill_runner(&sandbox, &full_id(&sandbox, &id));
    // The next frontend to look records the outcome, and the event with it.
    until_state(&sandbox, &id, "lost");
    let events = poll(LONG, "the lost event", || {
        let events = lines(&got);
        (!events.is_empty()).then_some(events)
    });
    assert_eq!(kinds(&events), ["failed"]);
    assert_eq!(events[0]["status"], "lost");
    assert_eq!(events[0]["short_id"], id.as_str());
}

#[test]
fn notify_flag_shows_a_desktop_notification_when_the_task_ends() {
    let sandbox = Sandbox::new();
    let bin = sandbox.path("bin");
    std::fs::create_dir(&bin).unwrap();
    let shown = sandbox.path("shown.txt");
    let fake = bin.join("notify-send");
    std::fs::write(
        &fake,
        format!("#!/bin/sh\nprintf '%s|' \"$@\" >> {}\n", shown.display()),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let out = ccmp(&sandbox)
        .env("PATH", &path)
        .args(["start", "--notify", "FAKE_SLEEP=0 write the docs"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let id = String::from_utf8(out).unwrap().trim().to_owned();
    let quiet = start(&sandbox, "FAKE_SLEEP=0 no notification for this one");
    until_state(&sandbox, &quiet, "succeeded");
    let text = poll(LONG, "the desktop notification", || {
        std::fs::read_to_string(&shown)
            .ok()
            .filter(|t| !t.is_empty())
    });
    assert_eq!(
        text,
        format!("--app-name=ccmp|ccmp: {id} succeeded|FAKE_SLEEP=0 write the docs|")
    );
}

#[test]
fn bad_notifiers_are_refused_and_change_nothing() {
    let sandbox = Sandbox::new();
    let cases: [(&[&str], &str); 7] = [
        (&["n"], "give a command after `--`"),
        (&["n", "--webhook", "http://x", "--", "true"], "not both"),
        (
            &["n", "--event", "done", "--", "true"],
            "unknown event kind \"done\"",
        ),
        (&["bad name", "--", "true"], "must be 1-40 letters"),
        (&["n", "--group", "nope", "--", "true"], "nope"),
        (&["n", "--webhook", "ftp://x"], "must start with http://"),
        (
            &["n", "--webhook", "http://x", "--template", "{{title}}"],
            "events do not have",
        ),
    ];
    for (args, expected) in cases {
        ccmp(&sandbox)
            .args(["notify", "add"])
            .args(args)
            .assert()
            .failure()
            .stderr(predicate::str::contains(expected));
    }
    ccmp(&sandbox)
        .args(["notify", "add", "ok", "--", "true"])
        .assert()
        .success();
    ccmp(&sandbox)
        .args(["notify", "add", "ok", "--", "true"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("already"));
    ccmp(&sandbox)
        .args(["notify", "remove", "nope"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("there are: ok"));
    ccmp(&sandbox)
        .args(["notify", "test", "ok"])
        .assert()
        .success()
        .stderr(predicate::str::contains("delivered"));
    let out = ccmp(&sandbox)
        .args(["notify", "list", "--json"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let all: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(all.as_array().unwrap().len(), 1, "{all}");
    ccmp(&sandbox)
        .args(["events", "--since", "yesterday-ish"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--since takes"));
}

#[test]
fn a_budget_that_is_spent_is_an_event_once() {
    let sandbox = Sandbox::new();
    ccmp(&sandbox)
        .args(["budget", "set", "0.015"])
        .assert()
        .success();
    ccmp(&sandbox)
        .args(["settings", "budget_reservation=0.001"])
        .assert()
        .success();
    // Each task of the fake agent costs $0.0104: the second takes the spend past $0.015.
    for n in 0..2 {
        let id = start(&sandbox, &format!("FAKE_SLEEP=0 task {n}"));
        until_state(&sandbox, &id, "succeeded");
    }
    // Settled by each runner after its outcome; the event needs both tasks' spend, so no
    // other can follow it.
    let events = poll(LONG, "the budget to be spent", || {
        let events = logged(&sandbox);
        events
            .iter()
            .any(|e| e["kind"] == "budget_spent")
            .then_some(events)
    });
    let spent: Vec<&Value> = events
        .iter()
        .filter(|e| e["kind"] == "budget_spent")
        .collect();
    assert_eq!(spent.len(), 1, "{events:?}");
    let summary = spent[0]["summary"].as_str().unwrap();
    assert!(
        summary.starts_with("the machine-wide budget of $0.01 is spent ($0.02)"),
        "{summary}"
    );
    assert!(
        spent[0]["next"]
            .as_str()
            .unwrap()
            .starts_with("ccmp budget set")
    );
}
