//! The end-to-end tier for Codex: the real Codex CLI (`@openai/codex@0.171.0`, installed by
//! `.ci/setup-e2e` into `tests/e2e/node_modules`), run offline against the loopback mock of the
//! Responses API in `tests/e2e/mock_openai.py`, through a `mock` model provider in the
//! sandbox's `$CODEX_HOME/config.toml`.
//!
//! Run this tier alone with `cargo nextest run -p ccmp-tests --test e2e_codex`.

use std::path::PathBuf;
use std::time::Duration;

use ccmp_core::{
    AgentOptions, Ccmp, CodexOptions, Config, FsStore, TaskRecord, TaskRequest, TaskStatus,
    WaitMode,
};
use ccmp_tests::e2e::Mock;
use ccmp_tests::{Sandbox, poll, task_processes, workspace_bin};
use pretty_assertions::assert_eq;

const LONG: Duration = Duration::from_secs(120);

fn codex() -> PathBuf {
    ccmp_tests::e2e::e2e_bin("codex")
}

/// A sandbox, the mock, and a `$CODEX_HOME` whose config sends Codex to the mock.
struct Scene {
    sandbox: Sandbox,
    mock: Mock,
}

impl Scene {
    fn new() -> Self {
        let sandbox = Sandbox::new();
        let mock = Mock::start("mock_openai.py", sandbox.root());
        // Not under /tmp: Codex refuses to make its helper links in a temporary dir, and only
        // warns; a home inside the sandbox keeps the warning to itself.
        let home = sandbox.path("codex-home");
        std::fs::create_dir(&home).unwrap();
        std::fs::write(
            home.join("config.toml"),
            format!(
                "model_provider = \"mock\"\n\n[model_providers.mock]\nname = \"mock\"\nbase_url = \"{}/v1\"\nenv_key = \"OPENAI_API_KEY\"\nwire_api = \"responses\"\nrequest_max_retries = 0\nstream_max_retries = 0\n",
                mock.url
            ),
        )
        .unwrap();
        Self { sandbox, mock }
    }

    fn request(&self, prompt: &str) -> TaskRequest {
        TaskRequest {
            agent: AgentOptions::Codex(CodexOptions::default()),
            ..TaskRequest::new(prompt)
        }
        .program(codex())
        .working_dir(self.sandbox.work())
        .env(
            "CODEX_HOME",
            self.sandbox.path("codex-home").display().to_string(),
        )
        .env("OPENAI_API_KEY", "sk-test-dummy")
        .env("HOME", self.sandbox.root().display().to_string())
    }

    fn ccmp(&self) -> Ccmp {
        Ccmp::open_with_runner(
            FsStore::open(self.sandbox.state()).unwrap(),
            Config {
                grace: Duration::from_secs(5),
                codex_program: codex().into_os_string(),
                ..Config::default()
            },
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

fn nothing_left(record: &TaskRecord) {
    let id = record.id.to_string();
    poll(
        Duration::from_secs(10),
        "no process of the task to be left",
        || task_processes(&id).is_empty().then_some(()),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_codex_task_succeeds_with_the_mocks_text_and_a_follow_up_resumes_its_thread() {
    let scene = Scene::new();
    let ccmp = scene.ccmp();
    let done = run(&ccmp, scene.request("Summarize the repository PLEASE-TOOL")).await;
    assert_eq!(done.status, TaskStatus::Succeeded, "{:?}", done.outcome);
    let outcome = done.outcome.clone().unwrap();
    let result = outcome.result.unwrap();
    assert!(
        result.starts_with("MOCK-CODEX: Summarize the repository"),
        "{result}"
    );
    // The shell command ran, and the transcript shows it.
    let transcript = ccmp
        .output(
            &done.id,
            ccmp_core::OutputSource::Transcript,
            ccmp_core::LogRange::from_start(),
        )
        .unwrap()
        .text;
    assert!(
        transcript.contains("[command] exit 0: tool-ran"),
        "{transcript}"
    );
    assert_eq!(outcome.cost_usd, None, "Codex reports no cost");
    // Two requests in the turn (the tool call, then the answer), 100 tokens each.
    assert_eq!(outcome.input_tokens, Some(200));
    let thread = done.session_id.clone().expect("the thread id");
    nothing_left(&done);
    // The follow-up resumes the same thread: the mock sees both prompts in one conversation.
    let reply = ccmp.follow_up(&done.id, "And now the tests").unwrap();
    let outcome = ccmp.wait(&[reply.id], WaitMode::All, LONG).await.unwrap();
    let followed = &outcome.finished[0];
    assert_eq!(
        followed.status,
        TaskStatus::Succeeded,
        "{:?}",
        followed.outcome
    );
    assert_eq!(followed.session_id.as_deref(), Some(thread.as_str()));
    let last = scene.mock.requests().pop().unwrap();
    let users = last["users"].to_string();
    assert!(
        users.contains("Summarize the repository") && users.contains("And now the tests"),
        "{users}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_error_fails_the_codex_task_with_the_error() {
    let scene = Scene::new();
    let ccmp = scene.ccmp();
    let done = run(&ccmp, scene.request("PLEASE-400 go")).await;
    assert_eq!(done.status, TaskStatus::Failed);
    assert_eq!(done.error(), Some("Invalid model: nope"));
    let done = run(&ccmp, scene.request("PLEASE-500 go")).await;
    assert_eq!(done.status, TaskStatus::Failed);
    assert!(
        done.error().unwrap().contains("high demand"),
        "{:?}",
        done.error()
    );
    nothing_left(&done);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_usage_limit_parks_the_codex_task_until_the_time_codex_names() {
    let scene = Scene::new();
    let ccmp = scene.ccmp();
    let started = ccmp.start(scene.request("PLEASE-LIMIT go")).unwrap();
    let parked = poll(LONG, "the task to park", || {
        let record = ccmp.status(&started.id).unwrap();
        (record.status == TaskStatus::Parked).then_some(record)
    });
    let until = parked.parked_until.expect("the reset time");
    let ahead = until - chrono::Utc::now();
    assert!(
        ahead > chrono::Duration::minutes(50) && ahead < chrono::Duration::minutes(70),
        "Codex said about an hour; parked until {until}"
    );
    ccmp.cancel(&started.id).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_during_a_slow_reply_leaves_no_codex_process() {
    let scene = Scene::new();
    let ccmp = scene.ccmp();
    let started = ccmp.start(scene.request("PLEASE-SLOW go")).unwrap();
    poll(LONG, "the mock to be asked", || {
        (!scene.mock.requests().is_empty()).then_some(())
    });
    ccmp.cancel(&started.id).await.unwrap();
    let done = ccmp.status(&started.id).unwrap();
    assert_eq!(done.status, TaskStatus::Cancelled);
    nothing_left(&done);
}
