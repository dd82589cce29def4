//! The end-to-end tier for Gemini: the real Gemini CLI (`@google/gemini-cli@0.61.0`, installed by
//! `.ci/setup-e2e` into `tests/e2e/node_modules`), run offline against the loopback mock of the
//! Gemini API in `tests/e2e/mock_gemini.py` (`GOOGLE_GEMINI_BASE_URL`, an API key login in the
//! sandbox's `~/.gemini/settings.json`).
//!
//! Run this tier alone with `cargo nextest run -p ccmp-tests --test e2e_gemini`.

use std::path::PathBuf;
use std::time::Duration;

use ccmp_core::{
    AgentOptions, Ccmp, Config, FsStore, GeminiOptions, TaskRecord, TaskRequest, TaskStatus,
    WaitMode,
};
use ccmp_tests::e2e::Mock;
use ccmp_tests::{Sandbox, poll, task_processes, workspace_bin};
use pretty_assertions::assert_eq;

const LONG: Duration = Duration::from_secs(120);

fn gemini() -> PathBuf {
    ccmp_tests::e2e::e2e_bin("gemini")
}

/// A sandbox, the mock, and a HOME whose Gemini settings log in with an API key.
struct Scene {
    sandbox: Sandbox,
    mock: Mock,
}

impl Scene {
    fn new() -> Self {
        let sandbox = Sandbox::new();
        let mock = Mock::start("mock_gemini.py", sandbox.root());
        let settings = sandbox.path("home").join(".gemini");
        std::fs::create_dir_all(&settings).unwrap();
        std::fs::write(
            settings.join("settings.json"),
            r#"{"security": {"auth": {"selectedType": "gemini-api-key"}}}"#,
        )
        .unwrap();
        Self { sandbox, mock }
    }

    fn request(&self, prompt: &str) -> TaskRequest {
        TaskRequest {
            agent: AgentOptions::Gemini(GeminiOptions::default()),
            // A model named: "auto" would first ask a routing model, which the mock is not.
            model: Some("gemini-2.5-pro".into()),
            ..TaskRequest::new(prompt)
        }
        .program(gemini())
        .working_dir(self.sandbox.work())
        .env("HOME", self.sandbox.path("home").display().to_string())
        .env("GEMINI_API_KEY", "test-dummy-key")
        .env("GOOGLE_GEMINI_BASE_URL", self.mock.url.clone())
    }

    fn ccmp(&self) -> Ccmp {
        Ccmp::open_with_runner(
            FsStore::open(self.sandbox.state()).unwrap(),
            Config {
                grace: Duration::from_secs(5),
                gemini_program: gemini().into_os_string(),
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
async fn a_gemini_task_succeeds_with_the_mocks_text_and_a_follow_up_resumes_its_session() {
    let scene = Scene::new();
    let ccmp = scene.ccmp();
    let done = run(&ccmp, scene.request("PLEASE-TOOL Summarize the repository")).await;
    assert_eq!(done.status, TaskStatus::Succeeded, "{:?}", done.outcome);
    let outcome = done.outcome.clone().unwrap();
    let result = outcome.result.unwrap();
    assert!(result.starts_with("MOCK-GEMINI: "), "{result}");
    assert_eq!(outcome.cost_usd, None, "Gemini reports no cost");
    assert!(outcome.input_tokens.unwrap() > 0);
    // The shell tool ran (the transcript has its output).
    let transcript = ccmp
        .output(
            &done.id,
            ccmp_core::OutputSource::Transcript,
            ccmp_core::LogRange::from_start(),
        )
        .unwrap()
        .text;
    assert!(transcript.contains("tool-ran"), "{transcript}");
    let session = done.session_id.clone().expect("the session id");
    nothing_left(&done);
    let reply = ccmp.follow_up(&done.id, "And now the tests").unwrap();
    let outcome = ccmp.wait(&[reply.id], WaitMode::All, LONG).await.unwrap();
    let followed = &outcome.finished[0];
    assert_eq!(
        followed.status,
        TaskStatus::Succeeded,
        "{:?}",
        followed.outcome
    );
    assert_eq!(followed.session_id.as_deref(), Some(session.as_str()));
    let last = scene.mock.requests().pop().unwrap();
    let users = last["users"].to_string();
    assert!(
        users.contains("Summarize the repository") && users.contains("And now the tests"),
        "{users}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_error_fails_the_gemini_task_with_the_apis_message() {
    let scene = Scene::new();
    let ccmp = scene.ccmp();
    let done = run(&ccmp, scene.request("PLEASE-400 go")).await;
    assert_eq!(done.status, TaskStatus::Failed);
    assert_eq!(
        done.error(),
        Some(
            "the Gemini API failed with HTTP 400: API key not valid. Please pass a valid API key."
        )
    );
    nothing_left(&done);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_during_a_slow_reply_leaves_no_gemini_process() {
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
