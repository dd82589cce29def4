//! The end-to-end tier: the real Claude Code CLI (`@anthropic-ai/claude-code@2.1.331`, installed
//! by `.ci/setup-e2e` into `tests/e2e/node_modules`), run offline against the loopback mock of
//! the Messages API in `tests/e2e/mock_anthropic.py`, as the agent ccmp runs and as the MCP
//! client that loads ccmp-mcp.
//!
//! Run this tier alone with `cargo nextest run -p ccmp-tests --test e2e_claude`.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use ccmp_core::{Ccmp, Config, FsStore, TaskRecord, TaskRequest, TaskStatus, WaitMode};
use ccmp_tests::e2e::Mock;
use ccmp_tests::mcp_client::{Era, Mcp};
use ccmp_tests::{Sandbox, poll, task_processes, workspace_bin};
use pretty_assertions::assert_eq;
use serde_json::{Value, json};

const LONG: Duration = Duration::from_secs(120);

fn claude() -> PathBuf {
    ccmp_tests::e2e::e2e_bin("claude")
}

/// One scenario: a sandbox, a mock, and the environment that keeps the CLI offline and hermetic.
struct Scene {
    sandbox: Sandbox,
    mock: Mock,
}

impl Scene {
    fn new() -> Self {
        let sandbox = Sandbox::new();
        for dir in ["home", "cc-tmp"] {
            std::fs::create_dir(sandbox.path(dir)).unwrap();
        }
        let mock = Mock::start("mock_anthropic.py", sandbox.root());
        Self { sandbox, mock }
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("ANTHROPIC_BASE_URL", self.mock.url.clone()),
            ("ANTHROPIC_API_KEY", "sk-ant-dummy".into()),
            ("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1".into()),
            ("DISABLE_TELEMETRY", "1".into()),
            ("DISABLE_ERROR_REPORTING", "1".into()),
            ("DISABLE_AUTOUPDATER", "1".into()),
            ("CLAUDE_CODE_MAX_RETRIES", "0".into()),
            ("IS_SANDBOX", "1".into()),
            ("HOME", self.sandbox.path("home").display().to_string()),
            (
                "CLAUDE_CODE_TMPDIR",
                self.sandbox.path("cc-tmp").display().to_string(),
            ),
        ]
    }

    fn request(&self, prompt: &str) -> TaskRequest {
        let mut request = TaskRequest::new(prompt)
            .program(claude())
            .working_dir(self.sandbox.work());
        for (key, value) in self.env() {
            request = request.env(key, value);
        }
        request
    }

    fn ccmp(&self, max_parallel: usize) -> Ccmp {
        let config = Config {
            max_parallel,
            grace: Duration::from_secs(5),
            claude_program: claude().into_os_string(),
            ..Config::default()
        };
        Ccmp::open_with_runner(
            FsStore::open(self.sandbox.state()).unwrap(),
            config,
            workspace_bin("ccmp-test-host"),
        )
    }
}

async fn run(ccmp: &Ccmp, request: TaskRequest) -> TaskRecord {
    let started = ccmp.start(request).unwrap();
    let outcome = ccmp.wait(&[started.id], WaitMode::All, LONG).await.unwrap();
    assert!(!outcome.timed_out, "the task did not finish");
    outcome.finished.into_iter().next().unwrap()
}

fn no_claude_left(record: &TaskRecord) {
    let id = record.id.to_string();
    poll(
        Duration::from_secs(10),
        "no process of the task to be left",
        || task_processes(&id).is_empty().then_some(()),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_the_real_claude_on_a_prompt() {
    let scene = Scene::new();
    let ccmp = scene.ccmp(4);
    let done = run(&ccmp, scene.request("write tests for utils.py")).await;
    assert_eq!(done.status, TaskStatus::Succeeded, "{:?}", done.outcome);
    let view = ccmp.view(&done);
    assert_eq!(
        view.result.as_deref(),
        Some("MOCK-OK: write tests for utils.py")
    );
    assert!(uuid::Uuid::parse_str(view.session_id.as_deref().unwrap()).is_ok());
    assert_eq!(view.num_turns, Some(1));
    assert!(
        view.cost_usd.unwrap() > 0.0,
        "the CLI prices the mock's tokens"
    );
    assert_eq!(view.model.as_deref(), Some("claude-opus-5-5"));
    let requests = scene.mock.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0]["prompt"], "write tests for utils.py");
    assert_eq!(requests[0]["stream"], true);
    no_claude_left(&done);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_tool_use_writes_with_skip_permissions_and_is_denied_without() {
    let scene = Scene::new();
    let ccmp = scene.ccmp(4);
    let target = scene
        .sandbox
        .work()
        .canonicalize()
        .unwrap()
        .join("mock-written.txt");
    let done = run(
        &ccmp,
        scene.request(&format!("PLEASE-WRITE {}", target.display())),
    )
    .await;
    assert_eq!(done.status, TaskStatus::Succeeded, "{:?}", done.outcome);
    assert_eq!(
        std::fs::read_to_string(&target).unwrap(),
        "written by the mock model\n"
    );
    assert_eq!(ccmp.view(&done).num_turns, Some(2));
    std::fs::remove_file(&target).unwrap();

    let denied = scene
        .request(&format!("PLEASE-WRITE {}", target.display()))
        .claude(ccmp_core::ClaudeOptions {
            skip_permissions: Some(false),
            ..Default::default()
        });
    let done = run(&ccmp, denied).await;
    assert_eq!(done.status, TaskStatus::Succeeded, "{:?}", done.outcome);
    assert!(!target.exists(), "the write was not denied");
    let denials = ccmp.view(&done).permission_denials;
    assert_eq!(denials.len(), 1, "{denials:?}");
    assert_eq!(denials[0]["tool_name"], "Write");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overloaded_api_fails_the_task_with_the_api_error() {
    let scene = Scene::new();
    let ccmp = scene.ccmp(4);
    let done = run(&ccmp, scene.request("PLEASE-529")).await;
    assert_eq!(done.status, TaskStatus::Failed);
    let view = ccmp.view(&done);
    let error = view.error.unwrap();
    assert!(
        error.contains("HTTP 529") && error.contains("Overloaded"),
        "{error}"
    );
    assert_eq!(view.is_error, Some(true));
    // CLAUDE_CODE_MAX_RETRIES=0: one request, no three-minute retry loop.
    assert_eq!(scene.mock.requests().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follow_up_resumes_the_session() {
    let scene = Scene::new();
    let ccmp = scene.ccmp(4);
    let first = run(&ccmp, scene.request("refactor database.py")).await;
    assert_eq!(first.status, TaskStatus::Succeeded, "{:?}", first.outcome);
    let next = ccmp.follow_up(&first.id, "now run the tests").unwrap();
    let outcome = ccmp.wait(&[next.id], WaitMode::All, LONG).await.unwrap();
    let second = &outcome.finished[0];
    assert_eq!(second.status, TaskStatus::Succeeded, "{:?}", second.outcome);
    assert_eq!(
        second.session_id, first.session_id,
        "--resume keeps the session id"
    );
    let (c1, c2) = (
        ccmp.view(&first).cost_usd.unwrap(),
        ccmp.view(second).cost_usd.unwrap(),
    );
    assert!(c2 > c1, "cost adds up over the session: {c1} then {c2}");
    let requests = scene.mock.requests();
    let last = requests.last().unwrap();
    assert_eq!(
        last["prompts"],
        json!(["refactor database.py", "now run the tests"]),
        "{last}"
    );
    assert!(
        last["msgs"].as_u64().unwrap() >= 4,
        "the mock saw the earlier turns: {last}"
    );
}

/// Five follow-ups of one task, sent at once from the library and the CLI: each resumes the
/// session after the one before it, and the real Claude Code sends the mock every turn, in the
/// order the follow-ups were made.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_ups_sent_at_once_reach_the_model_in_order() {
    let scene = Scene::new();
    let ccmp = scene.ccmp(4);
    let first = run(&ccmp, scene.request("turn 0")).await;
    assert_eq!(first.status, TaskStatus::Succeeded, "{:?}", first.outcome);
    let short = first.id.short();
    let mut ids = Vec::new();
    std::thread::scope(|scope| {
        let from_cli: Vec<_> = (1..=2)
            .map(|n| {
                let (short, state) = (&short, scene.sandbox.state());
                scope.spawn(move || {
                    let output = Command::new(workspace_bin("ccmp"))
                        .args(["reply", short, &format!("turn from the CLI {n}")])
                        .env("CCMP_STATE_DIR", state)
                        .output()
                        .unwrap();
                    assert!(output.status.success(), "{output:?}");
                })
            })
            .collect();
        for n in 1..=3 {
            ids.push(
                ccmp.follow_up(&first.id, format!("turn from the library {n}"))
                    .unwrap()
                    .id,
            );
        }
        for reply in from_cli {
            reply.join().unwrap();
        }
    });
    let mut follow_ups: Vec<TaskRecord> = ccmp
        .list(&ccmp_core::ListQuery::all())
        .unwrap()
        .tasks
        .into_iter()
        .filter(|t| t.id != first.id)
        .collect();
    assert_eq!(follow_ups.len(), 5);
    let all: Vec<_> = follow_ups.iter().map(|t| t.id).collect();
    let outcome = ccmp.wait(&all, WaitMode::All, LONG).await.unwrap();
    assert!(!outcome.timed_out);
    for task in &outcome.finished {
        assert_eq!(task.status, TaskStatus::Succeeded, "{:?}", task.outcome);
    }
    follow_ups.sort_by_key(|t| t.created_at);
    let mut expected = vec![json!("turn 0")];
    expected.extend(follow_ups.iter().map(|t| json!(t.spec.prompt)));
    let requests = scene.mock.requests();
    assert_eq!(requests.last().unwrap()["prompts"], json!(expected));
    // Each turn saw exactly the turns before it.
    let firsts: Vec<&Value> = requests
        .iter()
        .filter(|r| r["prompts"].as_array().is_some_and(|p| p.len() > 1))
        .map(|r| &r["prompts"])
        .collect();
    for (n, prompts) in firsts.iter().enumerate() {
        let turns = prompts.as_array().unwrap();
        assert_eq!(turns[..], expected[..turns.len()], "request {n}");
    }
}

/// The request of a task under a subscription (OAuth) login instead of an API key.
fn under_oauth(mut request: TaskRequest) -> TaskRequest {
    request.env.remove("ANTHROPIC_API_KEY");
    request.env.insert(
        "CLAUDE_CODE_OAUTH_TOKEN".into(),
        "sk-ant-oat01-dummy".into(),
    );
    request
}

/// A 5-hour usage limit under an OAuth login: the real Claude Code stops at once with
/// `usage_limit_reached` and the reset time; ccmp parks the task, resumes its session at the
/// reset, and it succeeds. The mock sees the resumed session carry the first prompt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_usage_limit_parks_the_task_and_it_resumes_at_the_reset() {
    let scene = Scene::new();
    let ccmp = scene.ccmp(4);
    let started = ccmp
        .start(under_oauth(
            scene.request("PLEASE-USAGE-LIMIT=4 summarize the repo"),
        ))
        .unwrap();
    let parked = poll(Duration::from_secs(60), "the task to park", || {
        let record = ccmp.status(&started.id).unwrap();
        assert!(!record.status.is_terminal(), "{:?}", record.outcome);
        (record.status == TaskStatus::Parked).then_some(record)
    });
    let progress = parked.progress.clone().unwrap_or_default();
    assert!(
        progress.starts_with("usage limit (5-hour) reached"),
        "{progress}"
    );
    let until = parked.parked_until.unwrap();
    let outcome = ccmp.wait(&[started.id], WaitMode::All, LONG).await.unwrap();
    let done = &outcome.finished[0];
    assert_eq!(done.status, TaskStatus::Succeeded, "{:?}", done.outcome);
    assert_eq!(done.attempts.len(), 1);
    assert!(done.attempts[0].parked);
    let requests = scene.mock.requests();
    let last = requests.last().unwrap();
    assert_eq!(last["status"], 200);
    // The refused turn's prompt is in the resumed session (Claude Code sends it in one user
    // message with the word to go on).
    let said = last["last_user_text"].as_str().unwrap();
    let first = said.find("PLEASE-USAGE-LIMIT=4 summarize the repo");
    let then = said.find("Continue the task where you left off");
    assert!(first.is_some() && first < then, "{last}");
    // The successful request came after the reset.
    let refused = requests.iter().filter(|r| r["status"] == 429).count();
    assert_eq!(refused, 1, "Claude Code does not retry a usage limit");
    assert!(chrono::Utc::now() >= until);
    no_claude_left(done);
}

/// The same refusal under an API key is a plain 429 with no reset time: the task fails, and
/// says so, without a guess.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_usage_limit_under_an_api_key_fails_clearly() {
    let scene = Scene::new();
    let ccmp = scene.ccmp(4);
    let done = run(&ccmp, scene.request("PLEASE-USAGE-LIMIT=60 summarize")).await;
    assert_eq!(done.status, TaskStatus::Failed);
    let error = done.error().unwrap();
    assert!(error.contains("HTTP 429"), "{error}");
    assert!(done.attempts.is_empty());
}

/// A 529 that clears after two requests: with three retries the task succeeds on its third
/// run, with the two failed runs in its record; with none it fails as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overloaded_api_is_retried_when_asked() {
    let scene = Scene::new();
    let ccmp = scene.ccmp(4);
    ccmp.set_setting("retry_backoff", "200ms").unwrap();
    let once = run(
        &ccmp,
        TaskRequest {
            retries: Some(0),
            ..scene.request("PLEASE-529-TIMES=1 hello")
        },
    )
    .await;
    assert_eq!(once.status, TaskStatus::Failed);
    assert!(once.error().unwrap().contains("HTTP 529"));
    let retried = run(
        &ccmp,
        TaskRequest {
            retries: Some(3),
            ..scene.request("PLEASE-529-TIMES=3 hello again")
        },
    )
    .await;
    assert_eq!(
        retried.status,
        TaskStatus::Succeeded,
        "{:?}",
        retried.outcome
    );
    assert_eq!(retried.attempts.len(), 2, "{:?}", retried.attempts);
    assert!(
        retried
            .attempts
            .iter()
            .all(|a| !a.parked && a.why.contains("HTTP 529"))
    );
}

/// A task that asks before `echo RAN…` runs: the real Claude Code defers the Bash call through
/// ccmp's hook, the task waits in `needs_approval` with no process alive, and after an answer
/// it resumes its session: approved, the command runs and its output reaches the model; denied,
/// the model is told the reason and the command never runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_tool_use_waits_for_approval_and_the_answer_reaches_the_model() {
    let scene = Scene::new();
    let ccmp = scene.ccmp(4);
    for (allow, file) in [(true, "approved.txt"), (false, "denied.txt")] {
        let marker = scene.sandbox.work().join(file);
        let prompt = format!(
            "PLEASE-BASH echo RAN >> {}; echo bash-output",
            marker.display()
        );
        let request = scene.request(&prompt).claude(ccmp_core::ClaudeOptions {
            ask: vec!["Bash(echo RAN:*)".into()],
            ..ccmp_core::ClaudeOptions::default()
        });
        let started = ccmp.start(request).unwrap();
        let waiting = poll(Duration::from_secs(60), "the task to ask", || {
            let record = ccmp.status(&started.id).unwrap();
            assert!(!record.status.is_terminal(), "{:?}", record.outcome);
            (record.status == TaskStatus::NeedsApproval).then_some(record)
        });
        let pending = waiting.pending_approval.clone().unwrap();
        assert_eq!(pending.tool, "Bash");
        assert!(pending.summary.contains("echo RAN"), "{pending:?}");
        assert!(!marker.exists(), "the command ran before it was approved");
        no_claude_left(&waiting);
        assert_eq!(ccmp.inbox().unwrap()[0].id, started.id);
        // A wait returns at once for a task that needs an answer, in the library and the CLI.
        let waited = ccmp.wait(&[started.id], WaitMode::All, LONG).await.unwrap();
        assert!(!waited.timed_out && waited.pending[0].status == TaskStatus::NeedsApproval);
        let cli = Command::new(workspace_bin("ccmp"))
            .args(["wait", &started.id.short()])
            .env("CCMP_STATE_DIR", scene.sandbox.state())
            .output()
            .unwrap();
        assert_eq!(cli.status.code(), Some(7), "{cli:?}");
        let said = String::from_utf8_lossy(&cli.stderr);
        assert!(
            said.contains("needs your approval for Bash: echo RAN"),
            "{said}"
        );
        let answer = if allow {
            ccmp_core::ApprovalAnswer::approve()
        } else {
            ccmp_core::ApprovalAnswer::deny(Some("REVIEWER-SAYS-NO: use the staging dir".into()))
        };
        ccmp.answer_approval(&started.id, answer.clone()).unwrap();
        let again = ccmp.answer_approval(&started.id, answer).unwrap_err();
        assert!(again.to_string().contains("already answered"), "{again}");
        let outcome = ccmp.wait(&[started.id], WaitMode::All, LONG).await.unwrap();
        let done = &outcome.finished[0];
        assert_eq!(done.status, TaskStatus::Succeeded, "{:?}", done.outcome);
        let result = done
            .outcome
            .as_ref()
            .and_then(|o| o.result.clone())
            .unwrap();
        if allow {
            assert_eq!(std::fs::read_to_string(&marker).unwrap(), "RAN\n");
            assert!(result.contains("bash-output"), "{result}");
        } else {
            assert!(!marker.exists(), "a denied command ran");
            assert!(result.contains("REVIEWER-SAYS-NO"), "{result}");
        }
        no_claude_left(done);
    }
}

/// Two held Bash calls in one message: one waits, the other is refused for now and asked again
/// after the answer, so both are asked and both run, and none is lost. With `always`, the
/// second runs without asking.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_held_calls_in_one_message_are_both_asked_and_always_skips_the_second() {
    let scene = Scene::new();
    let ccmp = scene.ccmp(4);
    for always in [false, true] {
        let dir = scene.sandbox.work();
        let (a, b) = (
            dir.join(format!("a-{always}.txt")),
            dir.join(format!("b-{always}.txt")),
        );
        let prompt = format!(
            "PLEASE-BASH2 echo RAN-A >> {} ;; echo RAN-B >> {}",
            a.display(),
            b.display()
        );
        let started = ccmp
            .start(scene.request(&prompt).claude(ccmp_core::ClaudeOptions {
                ask: vec!["Bash(echo RAN:*)".into()],
                ..ccmp_core::ClaudeOptions::default()
            }))
            .unwrap();
        let mut asked = Vec::new();
        let done = loop {
            let record = poll(Duration::from_secs(60), "the task to ask or end", || {
                let record = ccmp.status(&started.id).unwrap();
                let settled =
                    record.status.is_terminal() || record.status == TaskStatus::NeedsApproval;
                settled.then_some(record)
            });
            if record.status.is_terminal() {
                break record;
            }
            let pending = record.pending_approval.clone().unwrap();
            // An answer meant for the tool use asked before this one is stale: refused.
            if let Some(previous) = asked.last().map(|(id, _): &(String, String)| id.clone()) {
                let stale = ccmp
                    .answer_approval(
                        &started.id,
                        ccmp_core::ApprovalAnswer::approve().for_tool_use(previous),
                    )
                    .unwrap_err()
                    .to_string();
                assert!(stale.contains("now waits for another"), "{stale}");
            }
            asked.push((pending.tool_use_id.clone(), pending.summary.clone()));
            ccmp.answer_approval(
                &started.id,
                ccmp_core::ApprovalAnswer::approve()
                    .always(always)
                    .for_tool_use(&pending.tool_use_id),
            )
            .unwrap();
            poll(Duration::from_secs(30), "the answer to be taken up", || {
                (ccmp.status(&started.id).unwrap().status != TaskStatus::NeedsApproval)
                    .then_some(())
            });
        };
        assert_eq!(done.status, TaskStatus::Succeeded, "{:?}", done.outcome);
        assert_eq!(
            std::fs::read_to_string(&a).unwrap(),
            "RAN-A\n",
            "asked {asked:?}"
        );
        assert_eq!(
            std::fs::read_to_string(&b).unwrap(),
            "RAN-B\n",
            "asked {asked:?}"
        );
        assert_eq!(asked.len(), if always { 1 } else { 2 }, "asked {asked:?}");
    }
}

/// An approval answered while every slot is busy queues the task like any other: it resumes
/// when a slot frees.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_answered_while_slots_are_full_waits_for_a_slot() {
    let scene = Scene::new();
    let ccmp = scene.ccmp(1);
    let marker = scene.sandbox.work().join("ran.txt");
    let prompt = format!("PLEASE-BASH echo RAN >> {}", marker.display());
    let asking = ccmp
        .start(scene.request(&prompt).claude(ccmp_core::ClaudeOptions {
            ask: vec!["Bash".into()],
            ..ccmp_core::ClaudeOptions::default()
        }))
        .unwrap();
    poll(Duration::from_secs(60), "the task to ask", || {
        (ccmp.status(&asking.id).unwrap().status == TaskStatus::NeedsApproval).then_some(())
    });
    // It holds no slot while it waits: another task takes the only one.
    let busy = ccmp
        .start(scene.request("PLEASE-SLOW take the slot"))
        .unwrap();
    poll(Duration::from_secs(60), "the slow task to run", || {
        (ccmp.status(&busy.id).unwrap().status == TaskStatus::Running).then_some(())
    });
    ccmp.answer_approval(&asking.id, ccmp_core::ApprovalAnswer::approve())
        .unwrap();
    let queued = poll(
        Duration::from_secs(30),
        "the answered task to queue",
        || {
            let record = ccmp.status(&asking.id).unwrap();
            let says = record
                .progress
                .as_deref()
                .is_some_and(|p| p.contains("in line"));
            (record.status == TaskStatus::Queued && says).then_some(record)
        },
    );
    assert!(!marker.exists(), "{queued:?}");
    ccmp.cancel(&busy.id).await.unwrap();
    let outcome = ccmp.wait(&[asking.id], WaitMode::All, LONG).await.unwrap();
    let done = &outcome.finished[0];
    assert_eq!(done.status, TaskStatus::Succeeded, "{:?}", done.outcome);
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), "RAN\n");
}

/// ccmp-mcp in the scene, running the real Claude Code against the mock.
fn ccmp_mcp(scene: &Scene) -> Command {
    let mut cmd = Command::new(workspace_bin("ccmp-mcp"));
    cmd.env("CCMP_STATE_DIR", scene.sandbox.state())
        .env("CCMP_CLAUDE_BIN", claude())
        .envs(scene.env())
        .current_dir(scene.sandbox.work())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    cmd
}

/// The approval flow through ccmp-mcp alone: start with `ask`, see `needs_approval` and the
/// pending command, answer with `answer_approval`, and wait for the result.
#[test]
fn the_approval_flow_works_through_ccmp_mcp_alone() {
    let scene = Scene::new();
    let mut mcp = Mcp::spawn(ccmp_mcp(&scene), Era::Legacy);
    let marker = scene.sandbox.work().join("ran.txt");
    let prompt = format!("PLEASE-BASH echo RAN >> {}", marker.display());
    let task = mcp.ok(
        "start_cc_task_async",
        json!({"prompt": prompt, "ask": ["Bash(echo RAN:*)"]}),
    );
    let id = task["short_id"].as_str().unwrap().to_owned();
    let waited = mcp.ok("wait_for_tasks", json!({"task_ids": [id], "timeout_s": 60}));
    assert_eq!(waited["timed_out"], false, "{waited}");
    let next = waited["next"].as_str().unwrap();
    assert!(next.contains("answer_approval"), "{next}");
    let status = mcp.ok("check_task_status", json!({"task_id": id}));
    assert_eq!(status["status"], "needs_approval", "{status}");
    let summary = status["pending_approval"]["summary"].as_str().unwrap();
    assert!(summary.starts_with("Bash: echo RAN"), "{status}");
    assert!(!marker.exists());
    let answered = mcp.ok("answer_approval", json!({"task_id": id, "approve": true}));
    assert_ne!(answered["status"], "needs_approval", "{answered}");
    let again = mcp.request(
        "tools/call",
        json!({"name": "answer_approval", "arguments": {"task_id": id, "approve": true}}),
    );
    assert_eq!(again["result"]["isError"], true, "{again}");
    let done = mcp.ok("wait_for_tasks", json!({"task_ids": [id], "timeout_s": 60}));
    assert_eq!(done["finished"][0]["status"], "succeeded", "{done}");
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), "RAN\n");
}

/// For a client of the MCP tasks extension, a task waiting for approval is `input_required`
/// with a form elicitation for the pending command; `tasks/update` answers it, and the task
/// completes with the command run. A repeated answer is refused.
#[test]
fn a_tasks_extension_client_answers_an_approval_through_input_required() {
    let scene = Scene::new();
    let mut mcp = Mcp::spawn_with_caps(
        ccmp_mcp(&scene),
        Era::Modern,
        json!({"extensions": {"io.modelcontextprotocol/tasks": {}}, "elicitation": {"form": {}}}),
    );
    let marker = scene.sandbox.work().join("ran.txt");
    let prompt = format!("PLEASE-BASH echo RAN >> {}", marker.display());
    let created = mcp.call(
        "execute_cc_task",
        json!({"prompt": prompt, "ask": ["Bash(echo RAN:*)"]}),
    );
    assert_eq!(created["resultType"], "task", "{created}");
    let id = created["taskId"].clone();
    let get = |mcp: &mut Mcp| mcp.request("tasks/get", json!({"taskId": id}))["result"].clone();
    let asking = poll(LONG, "the task to ask for input", || {
        let task = get(&mut mcp);
        (task["status"] == "input_required").then_some(task)
    });
    let requests = asking["inputRequests"].as_object().unwrap();
    assert_eq!(requests.len(), 1, "{asking}");
    let (key, request) = requests.iter().next().unwrap();
    assert_eq!(request["method"], "elicitation/create", "{request}");
    assert_eq!(request["params"]["mode"], "form", "{request}");
    let message = request["params"]["message"].as_str().unwrap();
    assert!(message.contains("Bash: echo RAN"), "{message}");
    let schema = &request["params"]["requestedSchema"];
    assert_eq!(schema["required"], json!(["decision"]), "{schema}");
    assert!(!marker.exists());
    let answer = json!({"taskId": id, "inputResponses": {key: {"action": "accept", "content": {"decision": "approve"}}}});
    let ack = mcp.request("tasks/update", answer.clone());
    assert!(ack.get("error").is_none(), "{ack}");
    let again = mcp.request("tasks/update", answer);
    assert_eq!(again["error"]["code"], -32602, "{again}");
    let done = poll(LONG, "the task to complete", || {
        let task = get(&mut mcp);
        (task["status"] == "completed").then_some(task)
    });
    assert_eq!(
        done["result"]["structuredContent"]["status"], "succeeded",
        "{done}"
    );
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), "RAN\n");
}

/// An approval answered on the dashboard, in a real browser, resumes the task: the held
/// command runs and the task succeeds.
#[test]
fn an_approval_answered_on_the_dashboard_resumes_the_task() {
    let scene = Scene::new();
    /// Stops the dashboard however the test ends.
    struct Stop(std::process::Child);
    impl Drop for Stop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut dashboard = Command::new(workspace_bin("ccmp"))
        .arg("dashboard")
        .env("CCMP_STATE_DIR", scene.sandbox.state())
        .env("CCMP_CLAUDE_BIN", claude())
        .envs(scene.env())
        .current_dir(scene.sandbox.work())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut url = String::new();
    BufReader::new(dashboard.stdout.take().unwrap())
        .read_line(&mut url)
        .unwrap();
    let _dashboard = Stop(dashboard);
    let base = url.trim().split("/?token=").next().unwrap().to_owned();
    let ccmp = scene.ccmp(4);
    let marker = scene.sandbox.work().join("ran.txt");
    let prompt = format!("PLEASE-BASH echo RAN >> {}", marker.display());
    let started = ccmp
        .start(scene.request(&prompt).claude(ccmp_core::ClaudeOptions {
            ask: vec!["Bash(echo RAN:*)".into()],
            ..ccmp_core::ClaudeOptions::default()
        }))
        .unwrap();
    poll(Duration::from_secs(60), "the task to ask", || {
        (ccmp.status(&started.id).unwrap().status == TaskStatus::NeedsApproval).then_some(())
    });
    let browser = ccmp_tests::browser::Browser::start();
    browser.go(url.trim());
    browser.go(&format!("{base}/inbox"));
    let asked = browser.text(".asking h2").unwrap_or_default();
    assert!(asked.contains("Bash: echo RAN"), "{asked}");
    assert!(!marker.exists());
    browser.script(
        "document.querySelector(\".asking form input[value=approve]\").form.submit(); return null;",
        json!([]),
    );
    let done = poll(LONG, "the task to succeed", || {
        let record = ccmp.status(&started.id).unwrap();
        record.status.is_terminal().then_some(record)
    });
    assert_eq!(done.status, TaskStatus::Succeeded, "{:?}", done.outcome);
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), "RAN\n");
    let errors = browser.console_errors();
    assert!(errors.is_empty(), "console errors: {errors:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_during_a_slow_reply_leaves_nothing_running() {
    let scene = Scene::new();
    let ccmp = scene.ccmp(4);
    let started = ccmp.start(scene.request("PLEASE-SLOW")).unwrap();
    let id = started.id.to_string();
    poll(LONG, "the CLI to be waiting on the mock", || {
        let requests = scene.mock.requests();
        (!requests.is_empty()).then_some(())
    });
    let outcome = ccmp.cancel(&ccmp.resolve(&id).unwrap()).await.unwrap();
    assert_eq!(
        outcome.record.status,
        TaskStatus::Cancelled,
        "{:?}",
        outcome.record
    );
    // SIGTERM: the real CLI exits 143 at once, well within the grace period.
    assert_eq!(ccmp.view(&outcome.record).exit_code, Some(143));
    no_claude_left(&outcome.record);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_during_a_slow_reply_times_out() {
    let scene = Scene::new();
    let ccmp = scene.ccmp(4);
    let done = run(&ccmp, scene.request("PLEASE-SLOW").timeout_secs(4.0)).await;
    assert_eq!(done.status, TaskStatus::TimedOut, "{:?}", done.outcome);
    no_claude_left(&done);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prompts_that_look_like_flags_reach_the_model_verbatim() {
    let scene = Scene::new();
    let ccmp = scene.ccmp(4);
    for prompt in ["-rf please", "--model=evil", "-p"] {
        let done = run(&ccmp, scene.request(prompt)).await;
        assert_eq!(
            done.status,
            TaskStatus::Succeeded,
            "{prompt}: {:?}",
            done.outcome
        );
        assert_eq!(
            ccmp.view(&done).model.as_deref(),
            Some("claude-opus-5-5"),
            "{prompt}"
        );
    }
    let prompts: Vec<Value> = scene
        .mock
        .requests()
        .iter()
        .map(|r| r["prompt"].clone())
        .collect();
    assert_eq!(
        prompts,
        vec![json!("-rf please"), json!("--model=evil"), json!("-p")]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_real_tasks_with_max_parallel_two() {
    let scene = Scene::new();
    let ccmp = scene.ccmp(2);
    let ids: Vec<String> = (0..5)
        .map(|n| {
            ccmp.start(scene.request(&format!("task number {n}")))
                .unwrap()
                .id
                .to_string()
        })
        .collect();
    let ids = ccmp.resolve_all(&ids).unwrap();
    let outcome = ccmp.wait(&ids, WaitMode::All, LONG).await.unwrap();
    assert!(!outcome.timed_out);
    assert!(
        outcome
            .finished
            .iter()
            .all(|r| r.status == TaskStatus::Succeeded)
    );
    // At no moment were more than two agents running.
    let mut events: Vec<(chrono::DateTime<chrono::Utc>, i32)> = Vec::new();
    for r in &outcome.finished {
        events.push((r.started_at.unwrap(), 1));
        events.push((r.finished_at.unwrap(), -1));
    }
    events.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
    let peak = events.iter().scan(0, |n, (_, d)| {
        *n += d;
        Some(*n)
    });
    assert!(peak.max().unwrap() <= 2, "more than two ran at once");
}

/// The MCP config that loads ccmp-mcp (with the fake agent) into the real Claude Code.
fn ccmp_mcp_config(scene: &Scene) -> PathBuf {
    let config = scene.sandbox.path("mcp.json");
    let server = json!({"mcpServers": {"ccmp": {
        "type": "stdio",
        "command": workspace_bin("ccmp-mcp"),
        "args": [],
        "env": {
            "CCMP_STATE_DIR": scene.sandbox.state(),
            "CCMP_CLAUDE_BIN": workspace_bin("fake-claude"),
            "IS_SANDBOX": "1",
            "CLAUDE_CONFIG_DIR": scene.sandbox.path("claude-config"),
        },
    }}});
    std::fs::write(&config, server.to_string()).unwrap();
    config
}

/// What the model is given of ccmp's tools, measured where it counts: in the request the real
/// Claude Code sends. (By default Claude Code 2.1.331 defers MCP tools: the model sees their
/// names and the server's instructions, and loads a definition with ToolSearch. With tool
/// search off every definition is sent up front, which is the figure to keep within 6 KB.)
#[test]
fn ccmp_tool_definitions_as_claude_code_sends_them_fit_6_kb() {
    let scene = Scene::new();
    let config = ccmp_mcp_config(&scene);
    let output = Command::new(claude())
        .args([
            "-p",
            "--output-format",
            "json",
            "--strict-mcp-config",
            "--mcp-config",
        ])
        .arg(&config)
        .args(["--", "hello"])
        .envs(scene.env())
        .env("ENABLE_TOOL_SEARCH", "false")
        .current_dir(scene.sandbox.work())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "claude failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let requests = scene.mock.requests();
    let tools = requests[0]["tools"].as_array().unwrap();
    let ours: Vec<(&str, u64)> = tools
        .iter()
        .filter_map(|t| {
            let name = t["name"].as_str()?.strip_prefix("mcp__ccmp__")?;
            Some((name, t["bytes"].as_u64()?))
        })
        .collect();
    assert_eq!(ours.len(), 10, "{ours:?}");
    let total: u64 = ours.iter().map(|(_, bytes)| bytes).sum();
    eprintln!("ccmp's tool definitions as Claude Code sends them: {total} bytes: {ours:?}");
    assert!(total <= 6 * 1024, "{total} bytes: {ours:?}");
}

#[test]
fn the_real_claude_code_drives_ccmp_mcp() {
    let scene = Scene::new();
    let config = ccmp_mcp_config(&scene);
    let output = Command::new(claude())
        .args(["-p", "--output-format", "json", "--mcp-config"])
        .arg(&config)
        .args([
            "--strict-mcp-config",
            "--allowedTools=mcp__ccmp__start_cc_task_async",
            "--allowedTools=mcp__ccmp__wait_for_tasks",
            "--",
            "PLEASE-CCMP start a task and wait for it",
        ])
        .envs(scene.env())
        .current_dir(scene.sandbox.work())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "claude failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let result: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(result["is_error"], false, "{result}");
    assert_eq!(result["num_turns"], 3, "{result}");
    assert!(
        result["result"].as_str().unwrap().starts_with("MCP-DONE."),
        "{result}"
    );
    // What the real client handed back to the model: the started task's id, then its end.
    let requests = scene.mock.requests();
    let results: Vec<String> = requests.last().unwrap()["tool_results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(results.len(), 2, "{requests:?}");
    let store = FsStore::open(scene.sandbox.state()).unwrap();
    let ids = ccmp_core::TaskStore::ids(&store).unwrap();
    assert_eq!(ids.len(), 1, "one nested task");
    let nested = ccmp_core::TaskStore::load(&store, &ids[0]).unwrap();
    assert!(
        results[0].contains(&nested.id.to_string()),
        "{}",
        results[0]
    );
    assert!(results[1].contains("succeeded"), "{}", results[1]);
    assert_eq!(nested.status, TaskStatus::Succeeded);
}

/// The MCP tasks path with the client that takes it: Claude Code 2.1.331 declares the tasks
/// extension only in interactive sessions, so this drives the interactive CLI in a real
/// terminal. The model's execute_cc_task call becomes a background MCP task whose id is the ccmp
/// task's; Claude Code polls tasks/get and hands the finished task's reply to the model.
#[test]
fn the_interactive_claude_code_runs_execute_cc_task_as_an_mcp_task() {
    let scene = Scene::new();
    let config = ccmp_mcp_config(&scene);
    // What a signed-in user's config already says: onboarding done, the key and the dir trusted.
    let claude_config = scene.sandbox.path("cc-config");
    std::fs::create_dir(&claude_config).unwrap();
    let work = scene.sandbox.work().canonicalize().unwrap();
    let seeded = json!({
        "hasCompletedOnboarding": true,
        "theme": "dark",
        "customApiKeyResponses": {"approved": ["sk-ant-dummy"], "rejected": []},
        "projects": {work.display().to_string(): {"hasTrustDialogAccepted": true}},
    });
    std::fs::write(claude_config.join(".claude.json"), seeded.to_string()).unwrap();
    let mut env = scene.env();
    env.push(("CLAUDE_CONFIG_DIR", claude_config.display().to_string()));
    env.push(("TERM", "xterm-256color".into()));
    let script = format!(
        "'{}' --mcp-config '{}' --strict-mcp-config --allowedTools mcp__ccmp",
        claude().display(),
        config.display()
    );
    let terminal = ccmp_tests::Tmux::run(&work, &env, &script);
    terminal.until("auto mode", Duration::from_secs(60));
    terminal.keys(&["PLEASE-EXEC run it", "Enter"]);
    // The model's next request carries the task notification with ccmp's reply.
    let notified = poll(
        Duration::from_secs(60),
        "the task's result to reach the model",
        || {
            scene.mock.requests().into_iter().find(|r| {
                let text = r["last_user_text"].as_str().unwrap_or_default();
                text.contains("task-notification") && text.contains("FAKE-DONE after 0 tool uses")
            })
        },
    );
    let store = FsStore::open(scene.sandbox.state()).unwrap();
    let ids = ccmp_core::TaskStore::ids(&store).unwrap();
    assert_eq!(ids.len(), 1, "one task");
    let task = ccmp_core::TaskStore::load(&store, &ids[0]).unwrap();
    assert_eq!(task.status, TaskStatus::Succeeded);
    // The tool call answered at once with an MCP task named by the ccmp task's id.
    let started = notified["tool_results"][0].as_str().unwrap_or_default();
    assert!(
        started.contains(&format!("started server-side task {}", task.id)),
        "{started}"
    );
    let text = notified["last_user_text"].as_str().unwrap();
    assert!(text.contains("\"status\":\"succeeded\""), "{text}");
}
