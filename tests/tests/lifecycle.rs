//! One lifecycle suite, two supervisors: every case runs against the detached supervisor (file
//! store, runner processes) and the in-process supervisor (memory store, tokio tasks), with the
//! fake agent as the `claude` CLI.

use std::time::Duration;

use ccmp_core::{
    Ccmp, CleanupTarget, Config, Error, FsStore, ListQuery, LogRange, OutputSource, TaskId,
    TaskRecord, TaskRequest, TaskStatus, WaitMode,
};
use ccmp_tests::{Sandbox, grandchild_pids, pid_alive, poll, task_processes, workspace_bin};
use pretty_assertions::assert_eq;

const LONG: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy)]
enum Kind {
    Detached,
    InProcess,
}

fn config(max_parallel: usize) -> Config {
    Config {
        max_parallel,
        grace: Duration::from_millis(1500),
        claude_program: workspace_bin("fake-claude").into_os_string(),
        ..Config::default()
    }
}

fn ccmp(kind: Kind, sandbox: &Sandbox, max_parallel: usize) -> Ccmp {
    match kind {
        Kind::Detached => Ccmp::open_with_runner(
            FsStore::open(sandbox.state()).unwrap(),
            config(max_parallel),
            workspace_bin("ccmp-test-host"),
        ),
        Kind::InProcess => Ccmp::in_memory(config(max_parallel)).unwrap(),
    }
}

async fn wait_one(ccmp: &Ccmp, record: &TaskRecord) -> TaskRecord {
    let outcome = ccmp.wait(&[record.id], WaitMode::All, LONG).await.unwrap();
    assert!(
        !outcome.timed_out,
        "task {} did not finish: {:?}",
        record.id.short(),
        outcome.pending
    );
    outcome.finished.into_iter().next().unwrap()
}

async fn wait_running(ccmp: &Ccmp, record: &TaskRecord) -> TaskRecord {
    let deadline = tokio::time::Instant::now() + LONG;
    loop {
        let r = ccmp.status(&record.id).unwrap();
        if r.status == TaskStatus::Running && r.session_id.is_some() {
            return r;
        }
        assert!(!r.status.is_terminal(), "task ended early: {:?}", r.outcome);
        assert!(
            tokio::time::Instant::now() < deadline,
            "task never ran: {r:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn log(ccmp: &Ccmp, record: &TaskRecord, stream: OutputSource) -> String {
    ccmp.output(
        &record.id,
        stream,
        LogRange::Bytes {
            offset: 0,
            limit: 1 << 20,
        },
    )
    .unwrap()
    .text
}

/// The task's dir, for stores that keep tasks on disk.
fn sandbox_task_dir(sandbox: &Sandbox, record: &TaskRecord) -> Option<std::path::PathBuf> {
    let dir = ccmp_core::FsStore::open(sandbox.state())
        .ok()?
        .task_dir(&record.id);
    dir.is_dir().then_some(dir)
}

fn assert_no_processes(record: &TaskRecord) {
    let id = record.id.to_string();
    poll(
        Duration::from_secs(5),
        "the task's processes to be gone",
        || task_processes(&id).is_empty().then_some(()),
    );
}

macro_rules! lifecycle {
    ($($name:ident),* $(,)?) => {
        mod detached {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Kind::Detached).await;
                }
            )*
        }
        mod in_process {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Kind::InProcess).await;
                }
            )*
        }
    };
}

lifecycle!(
    succeeds_with_session_turns_and_cost,
    api_errors_fail_with_the_reason,
    a_crash_without_result_fails_with_stderr,
    timeout_stops_the_agent,
    cancel_stops_a_running_task,
    an_agent_ignoring_term_is_killed_after_the_grace,
    cancel_of_a_queued_task_never_starts_it,
    queue_is_fifo_and_max_parallel_holds,
    a_grandchild_in_its_own_session_does_not_outlive_its_task,
    raw_output_is_kept_and_paged,
    follow_up_resumes_the_session,
    bad_input_is_refused_and_leaves_nothing,
    prompts_that_look_like_flags_are_just_text,
    root_refusal_explains_is_sandbox,
    nested_claude_code_variables_are_stripped,
    waiting_costs_no_cpu,
    wait_any_returns_the_first_to_finish,
    list_filters_sorts_and_counts,
    cleanup_refuses_running_tasks_unless_forced,
    the_change_stream_reports_each_step_and_ends_with_the_task,
    the_change_stream_beats_while_nothing_changes,
    following_output_streams_it_live_and_ends_with_the_task,
);

async fn succeeds_with_session_turns_and_cost(kind: Kind) {
    let sandbox = Sandbox::new();
    let ccmp = ccmp(kind, &sandbox, 4);
    let started = ccmp
        .start(sandbox.request("write tests for utils.py FAKE_TOOLS=2"))
        .unwrap();
    assert!(matches!(
        started.status,
        TaskStatus::Queued | TaskStatus::Running
    ));
    let done = wait_one(&ccmp, &started).await;
    assert_eq!(done.status, TaskStatus::Succeeded, "{:?}", done.outcome);
    let view = ccmp.view(&done);
    let session = view.session_id.clone().expect("session id");
    assert!(uuid::Uuid::parse_str(&session).is_ok(), "{session}");
    assert_eq!(view.num_turns, Some(3));
    assert!(view.cost_usd.unwrap() > 0.0);
    assert_eq!(view.exit_code, Some(0));
    assert_eq!(view.is_error, Some(false));
    assert!(view.error.is_none());
    assert!(view.usage.is_some());
    assert_eq!(view.progress.as_deref(), Some("done"));
    assert!(
        view.started_at.unwrap() >= view.created_at
            && view.finished_at.unwrap() >= view.started_at.unwrap()
    );
    // The readable log tells the story; the raw log keeps the agent's own lines.
    let transcript = log(&ccmp, &done, OutputSource::Transcript);
    assert!(transcript.contains("tool Bash"), "{transcript}");
    assert!(transcript.contains(&session), "{transcript}");
    let stdout = log(&ccmp, &done, OutputSource::Stdout);
    assert_eq!(stdout.lines().count(), 1 + 2 * 2 + 1 + 1, "{stdout}");
    if let Kind::Detached = kind {
        assert!(view.log_path.unwrap().exists());
    }
    assert_no_processes(&done);
}

async fn api_errors_fail_with_the_reason(kind: Kind) {
    let sandbox = Sandbox::new();
    let ccmp = ccmp(kind, &sandbox, 4);
    let done = wait_one(
        &ccmp,
        &ccmp.start(sandbox.request("FAKE_FAIL=529")).unwrap(),
    )
    .await;
    assert_eq!(done.status, TaskStatus::Failed);
    let view = ccmp.view(&done);
    let error = view.error.unwrap();
    assert!(
        error.contains("HTTP 529") && error.contains("Overloaded"),
        "{error}"
    );
    assert_eq!((view.is_error, view.exit_code), (Some(true), Some(1)));
    assert!(view.session_id.is_some());
}

async fn a_crash_without_result_fails_with_stderr(kind: Kind) {
    let sandbox = Sandbox::new();
    let ccmp = ccmp(kind, &sandbox, 4);
    let done = wait_one(&ccmp, &ccmp.start(sandbox.request("FAKE_EXIT=3")).unwrap()).await;
    assert_eq!(done.status, TaskStatus::Failed);
    let error = done.error().unwrap();
    assert!(
        error.contains("exited with code 3 without reporting a result"),
        "{error}"
    );
    assert!(error.contains("crashing with exit code 3"), "{error}");
}

async fn timeout_stops_the_agent(kind: Kind) {
    let sandbox = Sandbox::new();
    let ccmp = ccmp(kind, &sandbox, 4);
    let started = ccmp
        .start(sandbox.request("FAKE_HANG").timeout_secs(0.5))
        .unwrap();
    let done = wait_one(&ccmp, &started).await;
    assert_eq!(done.status, TaskStatus::TimedOut, "{:?}", done.outcome);
    assert!(done.error().unwrap().contains("timed out after 0.5s"));
    assert_eq!(ccmp.view(&done).exit_code, Some(143));
    assert_no_processes(&done);
}

async fn cancel_stops_a_running_task(kind: Kind) {
    let sandbox = Sandbox::new();
    let ccmp = ccmp(kind, &sandbox, 4);
    let started = ccmp.start(sandbox.request("FAKE_HANG")).unwrap();
    let running = wait_running(&ccmp, &started).await;
    let outcome = ccmp.cancel(&running.id).await.unwrap();
    assert!(!outcome.already_finished);
    assert_eq!(
        outcome.record.status,
        TaskStatus::Cancelled,
        "{:?}",
        outcome.record
    );
    assert_eq!(outcome.record.error(), Some("cancelled on request"));
    assert_eq!(ccmp.view(&outcome.record).exit_code, Some(143));
    assert_no_processes(&outcome.record);
    // Terminal states never change again: a second cancel reports what happened.
    let again = ccmp.cancel(&running.id).await.unwrap();
    assert!(again.already_finished);
    assert_eq!(again.record.status, TaskStatus::Cancelled);
}

async fn an_agent_ignoring_term_is_killed_after_the_grace(kind: Kind) {
    let sandbox = Sandbox::new();
    let ccmp = ccmp(kind, &sandbox, 4);
    let started = ccmp
        .start(sandbox.request("FAKE_HANG FAKE_IGNORE_TERM"))
        .unwrap();
    wait_running(&ccmp, &started).await;
    let outcome = ccmp.cancel(&started.id).await.unwrap();
    assert_eq!(outcome.record.status, TaskStatus::Cancelled);
    assert_eq!(ccmp.view(&outcome.record).signal, Some(9));
    assert_no_processes(&outcome.record);
}

async fn cancel_of_a_queued_task_never_starts_it(kind: Kind) {
    let sandbox = Sandbox::new();
    let ccmp = ccmp(kind, &sandbox, 1);
    let first = ccmp.start(sandbox.request("FAKE_HANG")).unwrap();
    wait_running(&ccmp, &first).await;
    let second = ccmp.start(sandbox.request("FAKE_SLEEP=0")).unwrap();
    assert_eq!(ccmp.status(&second.id).unwrap().status, TaskStatus::Queued);
    let cancelled = ccmp.cancel(&second.id).await.unwrap().record;
    assert_eq!(cancelled.status, TaskStatus::Cancelled);
    assert!(cancelled.started_at.is_none());
    assert!(cancelled.error().unwrap().contains("while queued"));
    ccmp.cancel(&first.id).await.unwrap();
}

async fn queue_is_fifo_and_max_parallel_holds(kind: Kind) {
    let sandbox = Sandbox::new();
    let ccmp = ccmp(kind, &sandbox, 2);
    let events = sandbox.path("events.log");
    let prompt = format!("FAKE_SLEEP=0.3 FAKE_RECORD={}", events.display());
    let ids: Vec<TaskId> = (0..6)
        .map(|_| ccmp.start(sandbox.request(&prompt)).unwrap().id)
        .collect();
    let outcome = ccmp.wait(&ids, WaitMode::All, LONG).await.unwrap();
    assert!(!outcome.timed_out);
    assert!(
        outcome
            .finished
            .iter()
            .all(|r| r.status == TaskStatus::Succeeded)
    );
    let text = std::fs::read_to_string(&events).unwrap();
    let mut lines: Vec<(u128, &str, &str)> = text
        .lines()
        .map(|l| {
            let parts: Vec<&str> = l.split(' ').collect();
            (parts[2].parse().unwrap(), parts[0], parts[1])
        })
        .collect();
    lines.sort();
    let (mut running, mut peak) = (0i32, 0i32);
    for (_, what, _) in &lines {
        running += if *what == "start" { 1 } else { -1 };
        peak = peak.max(running);
    }
    assert!(peak <= 2, "max_parallel exceeded: {peak} at once\n{text}");
    assert_eq!(peak, 2, "the queue never ran two at once\n{text}");
    // FIFO: no task starts before one created earlier, except for tasks handed slots at the same
    // moment (two slots freeing together), which may reach exec in either order.
    let started: Vec<_> = ids
        .iter()
        .map(|id| {
            outcome
                .finished
                .iter()
                .find(|r| r.id == *id)
                .unwrap()
                .started_at
                .unwrap()
        })
        .collect();
    for i in 0..started.len() {
        for j in i + 1..started.len() {
            let early = started[i] - started[j];
            assert!(
                early < chrono::Duration::milliseconds(100),
                "task {j} started {early} before task {i}, which was created earlier: not FIFO"
            );
        }
    }
}

async fn a_grandchild_in_its_own_session_does_not_outlive_its_task(kind: Kind) {
    let sandbox = Sandbox::new();
    let ccmp = ccmp(kind, &sandbox, 4);
    let done = wait_one(
        &ccmp,
        &ccmp.start(sandbox.request("FAKE_GRANDCHILD")).unwrap(),
    )
    .await;
    assert_eq!(done.status, TaskStatus::Succeeded);
    let pids = grandchild_pids(&log(&ccmp, &done, OutputSource::Stderr));
    assert_eq!(pids.len(), 1);
    // The outcome is recorded only after the sweep, so the grandchild is already gone.
    assert!(
        !pid_alive(pids[0]),
        "grandchild {} survived its task",
        pids[0]
    );
    assert_no_processes(&done);
}

async fn raw_output_is_kept_and_paged(kind: Kind) {
    let sandbox = Sandbox::new();
    let ccmp = ccmp(kind, &sandbox, 4);
    let done = wait_one(
        &ccmp,
        &ccmp
            .start(sandbox.request("FAKE_BINARY FAKE_HUGE=3000000"))
            .unwrap(),
    )
    .await;
    assert_eq!(done.status, TaskStatus::Succeeded, "{:?}", done.outcome);
    // A result line over 2 MiB is streamed, not held: the record keeps the head of the result
    // and says how long it is; the whole is read as the result output.
    let view = ccmp.view(&done);
    assert_eq!(view.result_bytes, Some(3_000_000));
    assert_eq!(view.result.as_deref().map(str::len), Some(64 * 1024));
    assert_eq!(view.num_turns, Some(1));
    assert!(view.cost_usd.is_some() && view.session_id.is_some());
    let mut whole = String::new();
    let mut offset = 0;
    loop {
        let range = LogRange::Bytes {
            offset,
            limit: 1 << 20,
        };
        let page = ccmp.output(&done.id, OutputSource::Result, range).unwrap();
        whole.push_str(&page.text);
        if page.at_end {
            break;
        }
        offset = page.next_offset;
    }
    assert!(whole.len() == 3_000_000 && whole.bytes().all(|b| b == b'x'));
    if let Some(dir) = sandbox_task_dir(&sandbox, &done) {
        let record = std::fs::metadata(dir.join("record.json")).unwrap().len();
        assert!(record < 200_000, "record.json is {record} bytes");
    }
    let id = done.id;
    let first = ccmp
        .output(
            &id,
            OutputSource::Stdout,
            LogRange::Bytes {
                offset: 0,
                limit: 1 << 20,
            },
        )
        .unwrap();
    // Limits count the text as shown (JSON-escaped, U+FFFD for bad bytes): a little less of
    // this JSON log than 1 MiB fits.
    assert!(
        (1000 << 10..1 << 20).contains(&first.next_offset),
        "{}",
        first.next_offset
    );
    assert!(
        first
            .text
            .contains("plain text on stdout \u{fffd}\u{fffd} not utf-8")
    );
    assert!(!first.at_end && first.total_bytes > 6_000_000);
    let capped = ccmp
        .output(
            &id,
            OutputSource::Stdout,
            LogRange::Bytes {
                offset: 0,
                limit: usize::MAX,
            },
        )
        .unwrap();
    assert_eq!(capped.next_offset, first.next_offset);
    let second = ccmp
        .output(
            &id,
            OutputSource::Stdout,
            LogRange::Bytes {
                offset: first.next_offset,
                limit: 10,
            },
        )
        .unwrap();
    assert_eq!(second.offset, first.next_offset);
    // The result line is longer than a page: a tail is bounded, and ends where the log ends.
    let tail = ccmp
        .output(&id, OutputSource::Stdout, LogRange::tail(1))
        .unwrap();
    assert!(
        tail.text.len() <= ccmp_core::MAX_LOG_READ && tail.text.ends_with("}\n") && tail.at_end
    );
    let transcript = log(&ccmp, &done, OutputSource::Transcript);
    assert!(
        transcript.contains("[output] plain text on stdout"),
        "{}",
        &transcript[..200]
    );
}

async fn follow_up_resumes_the_session(kind: Kind) {
    let sandbox = Sandbox::new();
    let ccmp = ccmp(kind, &sandbox, 4);
    let first = wait_one(
        &ccmp,
        &ccmp.start(sandbox.request("refactor database.py")).unwrap(),
    )
    .await;
    assert_eq!(first.status, TaskStatus::Succeeded);
    let next = ccmp.follow_up(&first.id, "now run the tests").unwrap();
    assert_eq!(next.follows, Some(first.id));
    assert_eq!(next.spec.working_dir, first.spec.working_dir);
    assert_eq!(next.spec.resume_session, first.session_id);
    let second = wait_one(&ccmp, &next).await;
    assert_eq!(second.status, TaskStatus::Succeeded, "{:?}", second.outcome);
    assert_eq!(
        second.session_id, first.session_id,
        "--resume keeps the session id"
    );
    let (c1, c2) = (
        ccmp.view(&first).cost_usd.unwrap(),
        ccmp.view(&second).cost_usd.unwrap(),
    );
    assert!(
        c2 > c1,
        "cost adds up across a resumed session: {c1} then {c2}"
    );

    // A follow-up of a running task runs after it; if that one does not succeed, the
    // follow-up never runs and says why.
    let running = ccmp.start(sandbox.request("FAKE_HANG")).unwrap();
    let behind = ccmp.follow_up(&running.id, "more").unwrap();
    assert_eq!(behind.spec.after, vec![running.id]);
    assert_eq!(behind.follows, Some(running.id));
    ccmp.cancel(&running.id).await.unwrap();
    let behind = wait_one(&ccmp, &behind).await;
    assert_eq!(behind.status, TaskStatus::Skipped);
    assert_eq!(
        behind.error(),
        Some(format!("dependency {} was cancelled", running.id.short()).as_str())
    );
    let crashed = wait_one(&ccmp, &ccmp.start(sandbox.request("FAKE_EXIT=2")).unwrap()).await;
    // The fake prints its init line before crashing, so there is a session; a run that never
    // started one cannot be followed up.
    let never = wait_one(
        &ccmp,
        &ccmp
            .start(TaskRequest {
                resume_session: Some(uuid::Uuid::new_v4().to_string()),
                ..sandbox.request("resume a session that does not exist")
            })
            .unwrap(),
    )
    .await;
    assert_eq!(never.status, TaskStatus::Failed);
    assert!(
        never
            .error()
            .unwrap()
            .contains("session to resume no longer exists"),
        "{:?}",
        never.error()
    );
    let err = ccmp.follow_up(&never.id, "more").unwrap_err();
    assert!(matches!(err, Error::NoSession { .. }), "{err}");
    assert!(crashed.session_id.is_some());
}

async fn bad_input_is_refused_and_leaves_nothing(kind: Kind) {
    let sandbox = Sandbox::new();
    let ccmp = ccmp(kind, &sandbox, 4);
    let file = sandbox.path("a-file");
    std::fs::write(&file, "x").unwrap();
    let cases: Vec<(TaskRequest, &str)> = vec![
        (sandbox.request(""), "empty"),
        (sandbox.request(" \n\t "), "empty"),
        (
            sandbox.request(&"x".repeat(ccmp_core::MAX_PROMPT_BYTES + 1)),
            "over the limit",
        ),
        (
            sandbox.request("x").working_dir(sandbox.path("missing")),
            "does not exist",
        ),
        (sandbox.request("x").working_dir(&file), "not a directory"),
        (
            TaskRequest {
                model: Some("sonnet\u{7}".into()),
                ..sandbox.request("x")
            },
            "model",
        ),
        (sandbox.request("x").timeout_secs(0.0), "timeout"),
        (sandbox.request("x").timeout_secs(-5.0), "timeout"),
        (
            sandbox.request("x").program(sandbox.path("no-claude")),
            "CCMP_CLAUDE_BIN",
        ),
    ];
    for (request, expected) in cases {
        let err = ccmp.start(request).unwrap_err();
        assert!(err.is_invalid_input(), "{err}");
        assert!(
            err.to_string().contains(expected),
            "{err} (expected {expected:?})"
        );
    }
    for id in ["../../etc", "zzzz", "abc", "00000000"] {
        let err = ccmp.resolve(id).unwrap_err();
        assert!(err.is_not_found(), "{id}: {err}");
    }
    assert!(
        ccmp.store().ids().unwrap().is_empty(),
        "a refused start left a task behind"
    );
    if let Kind::Detached = kind {
        let tasks = std::fs::read_dir(sandbox.state().join("tasks"))
            .unwrap()
            .count();
        assert_eq!(tasks, 0, "a refused start left files behind");
    }
}

async fn prompts_that_look_like_flags_are_just_text(kind: Kind) {
    let sandbox = Sandbox::new();
    let ccmp = ccmp(kind, &sandbox, 4);
    for prompt in [
        "-rf please",
        "--model=evil",
        "-p",
        "--dangerously-skip-permissions is text",
    ] {
        let done = wait_one(&ccmp, &ccmp.start(sandbox.request(prompt)).unwrap()).await;
        assert_eq!(
            done.status,
            TaskStatus::Succeeded,
            "{prompt}: {:?}",
            done.outcome
        );
        assert_eq!(
            ccmp.view(&done).model,
            Some("claude-opus-5-5".into()),
            "{prompt}"
        );
    }
}

async fn root_refusal_explains_is_sandbox(kind: Kind) {
    if !rustix::process::getuid().is_root() {
        return;
    }
    let sandbox = Sandbox::new();
    let ccmp = ccmp(kind, &sandbox, 4);
    let mut request = sandbox.request("x");
    request.env.remove("IS_SANDBOX");
    let done = wait_one(&ccmp, &ccmp.start(request).unwrap()).await;
    assert_eq!(done.status, TaskStatus::Failed);
    let error = done.error().unwrap();
    assert!(
        error.contains("IS_SANDBOX=1") && error.contains("skip_permissions=false"),
        "{error}"
    );
    // Without skip-permissions, root is fine.
    let mut request = sandbox.request("x");
    request.env.remove("IS_SANDBOX");
    request = request.claude(ccmp_core::ClaudeOptions {
        skip_permissions: Some(false),
        ..Default::default()
    });
    let done = wait_one(&ccmp, &ccmp.start(request).unwrap()).await;
    assert_eq!(done.status, TaskStatus::Succeeded, "{:?}", done.outcome);
}

async fn wait_any_returns_the_first_to_finish(kind: Kind) {
    let sandbox = Sandbox::new();
    let ccmp = ccmp(kind, &sandbox, 4);
    let slow = ccmp.start(sandbox.request("FAKE_HANG")).unwrap();
    let fast = ccmp.start(sandbox.request("FAKE_SLEEP=0")).unwrap();
    let ids = [slow.id, fast.id];
    let outcome = ccmp.wait(&ids, WaitMode::Any, LONG).await.unwrap();
    assert!(!outcome.timed_out);
    assert_eq!(
        outcome.finished.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![fast.id]
    );
    assert_eq!(
        outcome.pending.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![slow.id]
    );
    let outcome = ccmp
        .wait(&ids, WaitMode::All, Duration::from_millis(300))
        .await
        .unwrap();
    assert!(outcome.timed_out);
    assert_eq!(outcome.pending.len(), 1);
    assert!(ccmp.wait(&[], WaitMode::All, LONG).await.is_err());
    ccmp.cancel(&slow.id).await.unwrap();
}

async fn list_filters_sorts_and_counts(kind: Kind) {
    let sandbox = Sandbox::new();
    let ccmp = ccmp(kind, &sandbox, 4);
    let done: Vec<_> = (0..3)
        .map(|_| ccmp.start(sandbox.request("FAKE_SLEEP=0")).unwrap())
        .collect();
    for r in &done {
        wait_one(&ccmp, r).await;
    }
    let hanging = ccmp.start(sandbox.request("FAKE_HANG")).unwrap();
    let active = ccmp.list(&ListQuery::active()).unwrap();
    assert_eq!(
        active.tasks.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![hanging.id]
    );
    assert_eq!(active.total, 1);
    let page = ccmp
        .list(&ListQuery {
            states: None,
            limit: 2,
            group: None,
        })
        .unwrap();
    assert_eq!(page.total, 4);
    assert_eq!(
        page.tasks.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![hanging.id, done[2].id]
    );
    let succeeded = ccmp
        .list(&ListQuery {
            states: Some(vec![TaskStatus::Succeeded]),
            limit: 10,
            group: None,
        })
        .unwrap();
    assert_eq!(succeeded.total, 3);
    assert!(
        ccmp.list(&ListQuery {
            states: None,
            limit: 0,
            group: None,
        })
        .is_err()
    );
    ccmp.cancel(&hanging.id).await.unwrap();
}

async fn cleanup_refuses_running_tasks_unless_forced(kind: Kind) {
    let sandbox = Sandbox::new();
    let ccmp = ccmp(kind, &sandbox, 4);
    let finished = wait_one(&ccmp, &ccmp.start(sandbox.request("FAKE_SLEEP=0")).unwrap()).await;
    let running = ccmp.start(sandbox.request("FAKE_HANG")).unwrap();
    wait_running(&ccmp, &running).await;
    let err = ccmp
        .cleanup(CleanupTarget::Task {
            id: running.id,
            force: false,
        })
        .await
        .unwrap_err();
    assert!(matches!(err, Error::TaskActive { .. }), "{err}");
    assert!(err.to_string().contains("force"), "{err}");
    // Only finished tasks older than an hour: none.
    let report = ccmp
        .cleanup(CleanupTarget::OlderThan(Duration::from_secs(3600)))
        .await
        .unwrap();
    assert!(report.removed.is_empty());
    let report = ccmp.cleanup(CleanupTarget::Finished).await.unwrap();
    assert_eq!(report.removed, vec![finished.id.short()]);
    assert!(ccmp.status(&finished.id).unwrap_err().is_not_found());
    let report = ccmp
        .cleanup(CleanupTarget::Task {
            id: running.id,
            force: true,
        })
        .await
        .unwrap();
    assert_eq!(report.removed, vec![running.id.short()]);
    assert!(ccmp.store().ids().unwrap().is_empty());
    assert_no_processes(&running);
}

async fn nested_claude_code_variables_are_stripped(kind: Kind) {
    let sandbox = Sandbox::new();
    let ccmp = ccmp(kind, &sandbox, 4);
    // Even when asked for explicitly, the variables that make Claude Code refuse to start are
    // not passed on: ccmp is often itself called from inside Claude Code.
    let request = sandbox
        .request("x")
        .env("CLAUDECODE", "1")
        .env("CLAUDE_CODE_ENTRYPOINT", "cli");
    let done = wait_one(&ccmp, &ccmp.start(request).unwrap()).await;
    assert_eq!(done.status, TaskStatus::Succeeded, "{:?}", done.outcome);
}

/// CPU time (user + system) this process has used, in clock ticks (1/100 s).
fn own_cpu_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let rest: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    rest[11].parse::<u64>().unwrap() + rest[12].parse::<u64>().unwrap()
}

async fn waiting_costs_no_cpu(kind: Kind) {
    let sandbox = Sandbox::new();
    let ccmp = ccmp(kind, &sandbox, 4);
    let hang = ccmp.start(sandbox.request("FAKE_HANG")).unwrap();
    wait_running(&ccmp, &hang).await;
    let before = own_cpu_ticks();
    let outcome = ccmp
        .wait(&[hang.id], WaitMode::All, Duration::from_secs(2))
        .await
        .unwrap();
    let used = own_cpu_ticks() - before;
    assert!(outcome.timed_out);
    // A busy loop would burn about 200 ticks here; looking once a second costs almost nothing.
    assert!(
        used < 30,
        "waiting 2 s on a running task used {used} ticks of CPU"
    );
    ccmp.cancel(&hang.id).await.unwrap();
}

async fn the_change_stream_reports_each_step_and_ends_with_the_task(kind: Kind) {
    let sandbox = Sandbox::new();
    let ccmp = ccmp(kind, &sandbox, 4);
    let started = ccmp.start(sandbox.request("FAKE_SLEEP=0.5")).unwrap();
    let mut changes = ccmp.watch(&[started.id, started.id]);
    let mut seen: Vec<TaskRecord> = Vec::new();
    let ended = tokio::time::timeout(LONG, async {
        while let Some(batch) = changes.next().await {
            let batch = batch.unwrap();
            assert!(!batch.is_empty(), "an empty batch");
            // The same task given twice is watched once.
            assert_eq!(batch.len(), 1, "{batch:?}");
            seen.extend(batch);
        }
    })
    .await;
    assert!(
        ended.is_ok(),
        "the stream did not end with the task: {seen:?}"
    );
    let order = |r: &TaskRecord| TaskStatus::ALL.iter().position(|s| *s == r.status);
    assert!(
        seen.windows(2)
            .all(|w| order(&w[0]) <= order(&w[1]) && w[0] != w[1]),
        "states went backwards or repeated: {:?}",
        seen.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    let last = seen.last().unwrap();
    assert_eq!(last.status, TaskStatus::Succeeded, "{:?}", last.outcome);
    assert!(seen.len() >= 2, "only the final state was seen: {seen:?}");
    assert_eq!(changes.latest(), vec![last]);
}

async fn the_change_stream_beats_while_nothing_changes(kind: Kind) {
    let sandbox = Sandbox::new();
    let ccmp = ccmp(kind, &sandbox, 4);
    let hang = ccmp.start(sandbox.request("FAKE_HANG")).unwrap();
    let running = wait_running(&ccmp, &hang).await;
    let mut changes = ccmp
        .watch(&[hang.id])
        .with_heartbeat(Duration::from_millis(200));
    let first = changes.next().await.unwrap().unwrap();
    assert_eq!(first[0].id, running.id);
    // A hanging agent changes nothing: the next batches are beats carrying the same record.
    for _ in 0..2 {
        let beat = tokio::time::timeout(Duration::from_secs(5), changes.next())
            .await
            .expect("no beat within 5 s")
            .unwrap()
            .unwrap();
        assert_eq!(beat.len(), 1);
        assert_eq!(beat[0].status, TaskStatus::Running);
    }
    ccmp.cancel(&hang.id).await.unwrap();
}

async fn following_output_streams_it_live_and_ends_with_the_task(kind: Kind) {
    let sandbox = Sandbox::new();
    let ccmp = ccmp(kind, &sandbox, 4);
    let started = ccmp.start(sandbox.request("FAKE_SLEEP=1")).unwrap();
    let mut follow = ccmp.follow(
        &started.id,
        OutputSource::Transcript,
        LogRange::Bytes {
            offset: 0,
            limit: 1 << 20,
        },
    );
    let mut chunks = Vec::new();
    let ended = tokio::time::timeout(LONG, async {
        while let Some(chunk) = follow.next().await {
            chunks.push(chunk.unwrap().text);
        }
    })
    .await;
    assert!(
        ended.is_ok(),
        "following did not end with the task: {chunks:?}"
    );
    // The session line came while the agent was still thinking, the result after it.
    assert!(chunks[0].contains("[session]"), "{chunks:?}");
    assert!(
        !chunks[0].contains("[result]"),
        "nothing came live: {chunks:?}"
    );
    let all = chunks.concat();
    assert!(all.contains("[result]"), "{all}");
    assert_eq!(all, log(&ccmp, &started, OutputSource::Transcript));
    assert!(ccmp.status(&started.id).unwrap().status.is_terminal());
    // The result is an output too, and follows the same way.
    let mut result = ccmp.follow(&started.id, OutputSource::Result, LogRange::tail(5));
    let text = result.next().await.unwrap().unwrap().text;
    assert_eq!(
        Some(text),
        ccmp.view(&ccmp.status(&started.id).unwrap()).result
    );
    assert!(result.next().await.is_none());
}
