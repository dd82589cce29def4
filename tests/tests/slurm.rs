//! The Slurm executor against a real Slurm: the one-node cluster `.ci/setup-slurm` starts (the
//! CI script does), found through `SLURM_CONF` or where that script writes its config. Tasks run
//! the fake agent in Slurm batch jobs on that node; the tests read Slurm's own view of the jobs
//! with `squeue`.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use ccmp_tests::dashboard::Served;
use ccmp_tests::mcp_client::{Era, Mcp, server_command};
use ccmp_tests::{Sandbox, peak_concurrency, poll, task_processes, workspace_bin};
use serde_json::{Value, json};

/// Where `.ci/setup-slurm` writes its config unless `CCMP_SLURM_DIR` says otherwise.
const SETUP_CONF: &str = "/tmp/ccmp-slurm/slurm.conf";

/// The cluster's config; fails the test, saying how to start one, when there is none.
fn cluster() -> PathBuf {
    let conf = std::env::var_os("SLURM_CONF")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(SETUP_CONF));
    assert!(
        conf.exists(),
        "no Slurm cluster ({} is missing): run .ci/setup-slurm (the CI script does), which starts a one-node cluster",
        conf.display()
    );
    static ANSWERS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let answers = *ANSWERS.get_or_init(|| {
        Command::new("sinfo")
            .arg("--noheader")
            .env("SLURM_CONF", &conf)
            .output()
            .is_ok_and(|out| out.status.success())
    });
    assert!(
        answers,
        "the Slurm cluster of {} does not answer (`sinfo` fails): run .ci/setup-slurm to start it again",
        conf.display()
    );
    conf
}

/// `ccmp` in the sandbox, with the fake agent and the cluster.
fn ccmp(sandbox: &Sandbox, args: &[&str]) -> Command {
    let mut cmd = Command::new(workspace_bin("ccmp"));
    cmd.args(args)
        .env("SLURM_CONF", cluster())
        .env("CCMP_STATE_DIR", sandbox.state())
        .env("CCMP_CLAUDE_BIN", workspace_bin("fake-claude"))
        .env("CCMP_GRACE_SECS", "2")
        .env("CCMP_MAX_PARALLEL", "8")
        .env("IS_SANDBOX", "1")
        .env("CLAUDE_CONFIG_DIR", sandbox.path("claude-config"))
        .env("NO_COLOR", "1")
        .current_dir(sandbox.work());
    cmd
}

fn run(sandbox: &Sandbox, args: &[&str]) -> Output {
    ccmp(sandbox, args).output().expect("run ccmp")
}

/// Runs `ccmp args…`, which must succeed, and returns its stdout.
fn ok(sandbox: &Sandbox, args: &[&str]) -> String {
    let out = run(sandbox, args);
    assert!(
        out.status.success(),
        "ccmp {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// `ccmp status ID --json`.
fn status(sandbox: &Sandbox, id: &str) -> Value {
    serde_json::from_str(&ok(sandbox, &["status", id, "--json"])).expect("status is JSON")
}

/// Makes a group whose tasks run as Slurm jobs.
fn slurm_group(sandbox: &Sandbox, name: &str, extra: &[&str]) {
    let mut args = vec!["group", "add", name, "--executor", "slurm"];
    args.extend_from_slice(extra);
    ok(sandbox, &args);
}

/// Slurm's view of a job: its name and state (`squeue --states=all`).
fn squeue(job_id: u64) -> Option<(String, String)> {
    let out = Command::new("squeue")
        .env("SLURM_CONF", cluster())
        .args(["--noheader", "--states=all", "--format=%j|%T"])
        .arg(format!("--jobs={job_id}"))
        .output()
        .expect("run squeue");
    let text = String::from_utf8_lossy(&out.stdout);
    let (name, state) = text.trim().split_once('|')?;
    Some((name.to_owned(), state.to_owned()))
}

/// The state of every job of the cluster named one of `names` that Slurm has not ended.
fn live_jobs(names: &HashSet<String>) -> usize {
    let out = Command::new("squeue")
        .env("SLURM_CONF", cluster())
        .args(["--noheader", "--format=%j|%T"])
        .output()
        .expect("run squeue");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().split_once('|'))
        .filter(|(name, _)| names.contains(*name))
        .count()
}

fn job_id(view: &Value) -> u64 {
    view["slurm"]["job_id"]
        .as_u64()
        .unwrap_or_else(|| panic!("the task names no Slurm job: {view}"))
}

fn hostname() -> String {
    let out = Command::new("hostname").arg("-s").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Waits for the task to end, through `ccmp wait`, and returns its view.
fn wait(sandbox: &Sandbox, id: &str) -> Value {
    run(sandbox, &["wait", id, "--timeout", "150"]);
    let view = status(sandbox, id);
    assert!(
        !matches!(view["status"].as_str(), Some("queued" | "running")),
        "{id} did not end: {view}"
    );
    view
}

/// Polls until the task is running in its job, and returns its view.
fn until_running(sandbox: &Sandbox, id: &str) -> Value {
    poll(Duration::from_secs(60), "the task runs in its job", || {
        let view = status(sandbox, id);
        assert!(
            matches!(view["status"].as_str(), Some("queued" | "running")),
            "the task ended before it ran: {view}"
        );
        (view["status"] == "running" && view["slurm"]["state"] == "RUNNING").then_some(view)
    })
}

/// Kills the task's runner on this machine with SIGKILL and waits until it is gone.
fn kill_runner(sandbox: &Sandbox, id: &str) {
    let runner = sandbox.stored_record(id)["runner"]["pid"].as_i64().unwrap() as i32;
    let pid = rustix::process::Pid::from_raw(runner).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::KILL).unwrap();
    poll(Duration::from_secs(10), "the runner is gone", || {
        (!ccmp_tests::pid_alive(runner)).then_some(())
    });
}

/// Polls until no process carries the task's marker and Slurm has ended its job.
fn until_nothing_left(id: &str, job: u64) {
    poll(
        Duration::from_secs(60),
        "the task's processes and job are gone",
        || {
            let ended = squeue(job).is_none_or(|(_, state)| {
                !matches!(state.as_str(), "RUNNING" | "COMPLETING" | "PENDING")
            });
            (ended && task_processes(id).is_empty()).then_some(())
        },
    );
}

#[test]
fn a_task_in_a_slurm_group_runs_as_a_batch_job_and_succeeds_with_the_agents_result() {
    let sandbox = Sandbox::new();
    slurm_group(&sandbox, "cluster", &["--time", "10"]);
    let list = ok(&sandbox, &["group", "list"]);
    assert!(list.contains("slurm (time 10)"), "{list}");
    let short = ok(
        &sandbox,
        &[
            "start",
            "--group",
            "cluster",
            "write",
            "tests",
            "FAKE_SLEEP=1",
        ],
    );
    let view = wait(&sandbox, &short);
    assert_eq!(view["status"], "succeeded", "{view}");
    assert_eq!(view["result"], "FAKE-DONE after 0 tool uses");
    // Slurm ran it: the job is named after the task and ran on the node.
    let job = job_id(&view);
    let (name, _) = squeue(job).expect("Slurm knows the job");
    assert_eq!(name, format!("ccmp-{short}"));
    assert_eq!(view["slurm"]["node"], hostname());
    // The task's runner records Slurm's last word on the job once Slurm has ended it.
    poll(
        Duration::from_secs(30),
        "the record says the job completed",
        || (status(&sandbox, &short)["slurm"]["state"] == "COMPLETED").then_some(()),
    );
    // The agent ran in the job: its stdout log and transcript are where they are for any task.
    let logs = ok(&sandbox, &["logs", &short]);
    assert!(logs.contains("FAKE-DONE"), "{logs}");
    // Every frontend shows the job and node.
    let human = ok(&sandbox, &["status", &short]);
    assert!(
        human.contains(&format!("slurm:    job {job} on {}, COMPLETED", hostname())),
        "{human}"
    );
    let table = ok(&sandbox, &["list", "--all"]);
    assert!(
        table.contains(&format!("cluster job {job}@{}", hostname())),
        "{table}"
    );
    let served = Served::start(ccmp(&sandbox, &["dashboard"]).stderr(Stdio::null()));
    let id = view["id"].as_str().unwrap();
    let (code, _, page) = served.get(&format!("/task/{id}"));
    assert_eq!(code, 200);
    assert!(
        page.contains(&format!(
            "<dd id=\"slurm\">job {job} on {}, COMPLETED</dd>",
            hostname()
        )),
        "{page}"
    );
    let (_, _, queue) = served.get("/queue");
    assert!(queue.contains("<td>slurm (time 10)</td>"), "{queue}");
}

#[test]
fn wait_status_and_follow_ups_work_from_the_mcp_server_and_a_follow_up_runs_on_slurm() {
    let sandbox = Sandbox::new();
    slurm_group(&sandbox, "cluster", &[]);
    let mut server = server_command(&sandbox);
    server.env("SLURM_CONF", cluster());
    let mut mcp = Mcp::spawn(server, Era::Legacy);
    let started = mcp.ok(
        "start_cc_task_async",
        json!({"prompt": "FAKE_SLEEP=1 refactor database.py", "group": "cluster"}),
    );
    let done = mcp.ok(
        "wait_for_tasks",
        json!({"task_ids": [started["id"]], "timeout_s": 120}),
    );
    assert_eq!(done["finished"][0]["status"], "succeeded", "{done}");
    let first = mcp.ok("check_task_status", json!({"task_id": started["id"]}));
    let first_job = job_id(&first);
    assert_eq!(first["slurm"]["node"], hostname(), "{first}");
    let listed = mcp.ok("list_active_tasks", json!({"include_finished": true}));
    assert_eq!(
        listed["tasks"][0]["slurm_job"],
        format!("{first_job}@{}", hostname()),
        "{listed}"
    );
    let follow = mcp.ok(
        "continue_task",
        json!({"task_id": started["id"], "prompt": "now add type hints"}),
    );
    let done = mcp.ok(
        "wait_for_tasks",
        json!({"task_ids": [follow["id"]], "timeout_s": 120}),
    );
    assert_eq!(done["finished"][0]["status"], "succeeded", "{done}");
    let second = mcp.ok("check_task_status", json!({"task_id": follow["id"]}));
    assert_eq!(second["group"], "cluster");
    assert_eq!(
        second["session_id"], first["session_id"],
        "it resumed the session"
    );
    let second_job = job_id(&second);
    assert_ne!(
        second_job, first_job,
        "the follow-up ran in a job of its own"
    );
    poll(
        Duration::from_secs(30),
        "Slurm completes the follow-up's job",
        || (squeue(second_job)?.1 == "COMPLETED").then_some(()),
    );
}

#[test]
fn cancel_ends_a_slurm_task_with_scancel_and_leaves_no_process() {
    let sandbox = Sandbox::new();
    slurm_group(&sandbox, "cluster", &[]);
    let short = ok(
        &sandbox,
        &[
            "start",
            "--group",
            "cluster",
            "FAKE_SLEEP=120",
            "FAKE_GRANDCHILD",
        ],
    );
    let view = until_running(&sandbox, &short);
    let id = view["id"].as_str().unwrap().to_owned();
    poll(Duration::from_secs(30), "the agent runs", || {
        (!task_processes(&id).is_empty()).then_some(())
    });
    ok(&sandbox, &["cancel", &short]);
    let view = wait(&sandbox, &short);
    assert_eq!(view["status"], "cancelled", "{view}");
    assert_eq!(view["error"], "cancelled on request");
    until_nothing_left(&id, job_id(&view));
}

#[test]
fn a_job_cancelled_in_slurm_from_outside_ends_cancelled_with_the_reason() {
    let sandbox = Sandbox::new();
    slurm_group(&sandbox, "cluster", &[]);
    let short = ok(&sandbox, &["start", "--group", "cluster", "FAKE_SLEEP=120"]);
    let view = until_running(&sandbox, &short);
    let job = job_id(&view);
    let out = Command::new("scancel")
        .env("SLURM_CONF", cluster())
        .arg(job.to_string())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let view = wait(&sandbox, &short);
    assert_eq!(view["status"], "cancelled", "{view}");
    let error = view["error"].as_str().unwrap();
    assert!(
        error.contains(&format!("Slurm cancelled job {job}")) && error.contains("outside ccmp"),
        "{error}"
    );
    until_nothing_left(view["id"].as_str().unwrap(), job);
}

#[test]
fn a_job_past_its_slurm_time_limit_ends_timed_out_with_the_reason() {
    let sandbox = Sandbox::new();
    // Slurm's shortest limit is a minute, and it checks limits about every 30 s.
    slurm_group(&sandbox, "short", &["--time", "1"]);
    let short = ok(&sandbox, &["start", "--group", "short", "FAKE_SLEEP=600"]);
    let view = until_running(&sandbox, &short);
    let job = job_id(&view);
    let view = wait(&sandbox, &short);
    assert_eq!(view["status"], "timed_out", "{view}");
    let error = view["error"].as_str().unwrap();
    assert!(
        error.contains(&format!("Slurm job {job} reached its time limit")),
        "{error}"
    );
    poll(
        Duration::from_secs(60),
        "Slurm says the job timed out",
        || (squeue(job)?.1 == "TIMEOUT").then_some(()),
    );
    until_nothing_left(view["id"].as_str().unwrap(), job);
}

#[test]
fn a_dependency_chain_of_slurm_tasks_runs_in_order() {
    let sandbox = Sandbox::new();
    slurm_group(&sandbox, "cluster", &[]);
    let record = sandbox.path("agents.log");
    let knob = format!("FAKE_RECORD={}", record.display());
    let first = ok(&sandbox, &["start", "-g", "cluster", "FAKE_SLEEP=1", &knob]);
    let second = ok(
        &sandbox,
        &[
            "start",
            "-g",
            "cluster",
            "--after",
            &first,
            "FAKE_SLEEP=1",
            &knob,
        ],
    );
    let third = ok(
        &sandbox,
        &[
            "start",
            "-g",
            "cluster",
            "--after",
            &second,
            "FAKE_SLEEP=1",
            &knob,
        ],
    );
    let views: Vec<Value> = [&first, &second, &third]
        .into_iter()
        .map(|id| wait(&sandbox, id))
        .collect();
    for view in &views {
        assert_eq!(view["status"], "succeeded", "{view}");
    }
    // Each started after the one before it ended, in a job submitted after that one's.
    let spans = agent_spans(&record);
    let jobs: Vec<u64> = views.iter().map(job_id).collect();
    for pair in views.windows(2) {
        let before = &spans[pair[0]["id"].as_str().unwrap()];
        let after = &spans[pair[1]["id"].as_str().unwrap()];
        assert!(after.0 >= before.1, "{pair:?} overlapped: {spans:?}");
    }
    assert!(jobs.windows(2).all(|w| w[0] < w[1]), "{jobs:?}");
}

/// Each agent's start and end (ns) from a `FAKE_RECORD` log, by task id.
fn agent_spans(log: &Path) -> BTreeMap<String, (u128, u128)> {
    let mut spans = BTreeMap::new();
    for line in std::fs::read_to_string(log).unwrap_or_default().lines() {
        let parts: Vec<&str> = line.split(' ').collect();
        let (Some(what), Some(who), Some(at)) = (parts.first(), parts.get(1), parts.get(2)) else {
            continue;
        };
        let at: u128 = at.parse().unwrap();
        let span = spans.entry((*who).to_owned()).or_insert((0, 0));
        match *what {
            "start" => span.0 = at,
            _ => span.1 = at,
        }
    }
    spans
}

#[test]
fn twenty_tasks_in_a_slurm_group_with_a_limit_of_four_never_have_more_than_four_jobs() {
    let sandbox = Sandbox::new();
    slurm_group(&sandbox, "cluster", &["--parallel", "4"]);
    let record = sandbox.path("agents.log");
    let knob = format!("FAKE_RECORD={}", record.display());
    let shorts: Vec<String> = (0..20)
        .map(|_| ok(&sandbox, &["start", "-g", "cluster", "FAKE_SLEEP=2", &knob]))
        .collect();
    let names: HashSet<String> = shorts.iter().map(|s| format!("ccmp-{s}")).collect();
    // Slurm's view, sampled until every task has ended: jobs submitted and not ended.
    let mut most = 0;
    poll(Duration::from_secs(150), "all twenty tasks end", || {
        most = most.max(live_jobs(&names));
        let list = ok(&sandbox, &["list", "--group", "cluster", "--json"]);
        let live: Value = serde_json::from_str(&list).unwrap();
        live["tasks"].as_array().unwrap().is_empty().then_some(())
    });
    assert!(most <= 4, "{most} jobs of the group at once in Slurm");
    let (peak, starts) = peak_concurrency(&record);
    assert_eq!(starts, 20);
    assert_eq!(peak, 4, "the group ran four at a time, not fewer");
    for short in &shorts {
        assert_eq!(status(&sandbox, short)["status"], "succeeded");
    }
}

#[test]
fn bad_slurm_options_are_refused_by_flag_and_make_no_group() {
    let sandbox = Sandbox::new();
    for (args, says) in [
        (vec!["--executor", "slurm", "--time", "1h"], "--time `1h`"),
        (
            vec!["--executor", "slurm", "--partition=-x"],
            "--partition `-x`",
        ),
        (vec!["--executor", "slurm", "--mem", "lots"], "--mem `lots`"),
        (vec!["--partition", "gpu"], "add `--executor slurm`"),
    ] {
        let mut all = vec!["group", "add", "cluster"];
        all.extend(args.iter());
        let out = run(&sandbox, &all);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{all:?} was taken");
        assert!(stderr.contains(says), "{all:?}: {stderr}");
    }
    // Without Slurm's commands here, no Slurm group: its tasks could never be submitted.
    let empty = sandbox.path("empty-bin");
    std::fs::create_dir(&empty).unwrap();
    let out = ccmp(
        &sandbox,
        &["group", "add", "cluster", "--executor", "slurm"],
    )
    .env("PATH", &empty)
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("`sbatch` is not on PATH"), "{stderr}");
    let list = ok(&sandbox, &["group", "list"]);
    assert!(!list.contains("cluster"), "{list}");
}

#[test]
fn a_job_waiting_in_slurms_queue_says_why_and_a_cancel_removes_it() {
    let sandbox = Sandbox::new();
    // `.ci/setup-slurm`'s `held` partition is down: its jobs queue and never start.
    slurm_group(&sandbox, "held", &["--partition", "held"]);
    let short = ok(&sandbox, &["start", "--group", "held", "FAKE_SLEEP=1"]);
    let view = poll(
        Duration::from_secs(60),
        "the task says why Slurm holds it",
        || {
            let view = status(&sandbox, &short);
            view["progress"]
                .as_str()?
                .contains("(PartitionDown)")
                .then_some(view)
        },
    );
    let job = job_id(&view);
    assert_eq!(view["status"], "queued");
    assert_eq!(
        view["progress"],
        format!("waiting in Slurm's queue as job {job} (PartitionDown)")
    );
    assert_eq!(view["slurm"]["state"], "PENDING");
    let human = ok(&sandbox, &["status", &short]);
    assert!(
        human.contains(&format!("job {job}, PENDING (PartitionDown)")),
        "{human}"
    );
    // The model is told where it waits, not that it is starting.
    let mut server = server_command(&sandbox);
    server.env("SLURM_CONF", cluster());
    let mut mcp = Mcp::spawn(server, Era::Legacy);
    let reply = mcp.ok("check_task_status", json!({"task_id": short}));
    let next = reply["next"].as_str().unwrap();
    assert!(
        next.starts_with(&format!(
            "Queued in Slurm as job {job} (PartitionDown): Slurm starts it when the cluster has room."
        )),
        "{next}"
    );
    ok(&sandbox, &["cancel", &short]);
    let view = wait(&sandbox, &short);
    assert_eq!(view["status"], "cancelled", "{view}");
    let error = view["error"].as_str().unwrap();
    assert!(error.starts_with("cancelled on request"), "{error}");
    assert_eq!(squeue(job).unwrap().1, "CANCELLED");
}

#[test]
fn a_job_slurm_refuses_fails_the_task_with_slurms_words() {
    let sandbox = Sandbox::new();
    slurm_group(&sandbox, "nowhere", &["--partition", "nosuch"]);
    let short = ok(&sandbox, &["start", "--group", "nowhere", "FAKE_SLEEP=0"]);
    let view = wait(&sandbox, &short);
    assert_eq!(view["status"], "failed", "{view}");
    let error = view["error"].as_str().unwrap();
    assert!(
        error.starts_with("could not submit the task to Slurm: sbatch refused the job")
            && error.contains("Invalid partition name specified"),
        "{error}"
    );
}

#[test]
fn a_slurm_task_whose_runner_is_killed_is_not_lost_while_its_job_runs() {
    let sandbox = Sandbox::new();
    slurm_group(&sandbox, "cluster", &[]);
    let short = ok(&sandbox, &["start", "--group", "cluster", "FAKE_SLEEP=4"]);
    let view = until_running(&sandbox, &short);
    let id = view["id"].as_str().unwrap().to_owned();
    kill_runner(&sandbox, &id);
    // Looked at now, the task is not lost: Slurm still runs its job, which records the outcome.
    let view = status(&sandbox, &short);
    assert_eq!(view["status"], "running", "{view}");
    let view = wait(&sandbox, &short);
    assert_eq!(view["status"], "succeeded", "{view}");
    assert_eq!(view["result"], "FAKE-DONE after 0 tool uses");
}

#[test]
fn a_slurm_task_parks_on_a_usage_limit_without_a_job_and_resumes_in_a_new_one() {
    let sandbox = Sandbox::new();
    slurm_group(&sandbox, "cluster", &[]);
    // Under an OAuth login the fake agent stops on the 5-hour limit until 3 s from now.
    let short = ok(
        &sandbox,
        &[
            "start",
            "-g",
            "cluster",
            "-e",
            "CLAUDE_CODE_OAUTH_TOKEN=sk-ant-oat01-dummy",
            "-e",
            "FAKE_USAGE_LIMIT=3",
            "refactor db.py",
        ],
    );
    let parked = poll(Duration::from_secs(60), "the task parks", || {
        let view = status(&sandbox, &short);
        (view["status"] == "parked").then_some(view)
    });
    // While parked it holds no job: the first one has ended.
    let first = job_id(&parked);
    poll(Duration::from_secs(30), "the first job ends", || {
        (squeue(first)?.1 == "COMPLETED").then_some(())
    });
    let view = wait(&sandbox, &short);
    assert_eq!(view["status"], "succeeded", "{view}");
    let second = job_id(&view);
    assert!(
        second > first,
        "it resumed in a new job: {first} then {second}"
    );
    assert_eq!(squeue(second).unwrap().0, format!("ccmp-{short}"));
    assert_eq!(view["attempts"].as_array().unwrap().len(), 1, "{view}");
    assert_eq!(view["attempts"][0]["parked"], true);
}

#[test]
fn a_slurm_tasks_events_are_delivered_from_the_starting_machine_not_from_its_job() {
    let sandbox = Sandbox::new();
    slurm_group(&sandbox, "cluster", &[]);
    // Where a deliverer runs decides what reaches the user: a desktop notification needs the
    // starting session, and a deliverer started inside a job dies with it where Slurm tracks
    // jobs by cgroup. Whatever runs in a job has SLURM_JOB_ID.
    let heard = sandbox.path("heard.log");
    let script = format!(
        "echo \"$CCMP_STATUS $CCMP_SHORT_ID job=${{SLURM_JOB_ID:-none}}\" >> '{}'",
        heard.display()
    );
    ok(
        &sandbox,
        &[
            "notify",
            "add",
            "log",
            "--event",
            "succeeded",
            "--",
            "/bin/sh",
            "-c",
            &script,
        ],
    );
    let short = ok(&sandbox, &["start", "-g", "cluster", "FAKE_SLEEP=0"]);
    let view = wait(&sandbox, &short);
    assert_eq!(view["status"], "succeeded", "{view}");
    let line = poll(Duration::from_secs(30), "the notifier hears of it", || {
        std::fs::read_to_string(&heard)
            .ok()
            .filter(|t| !t.is_empty())
    });
    assert_eq!(line.trim(), format!("succeeded {short} job=none"));
}

#[test]
fn a_slurm_groups_runs_take_none_of_the_machines_slots() {
    let sandbox = Sandbox::new();
    // One agent at a time on this machine, three at a time on the cluster.
    ok(&sandbox, &["parallel", "1"]);
    slurm_group(&sandbox, "cluster", &["--parallel", "3"]);
    let record = sandbox.path("agents.log");
    let knob = format!("FAKE_RECORD={}", record.display());
    let mut shorts: Vec<String> = (0..3)
        .map(|_| ok(&sandbox, &["start", "-g", "cluster", "FAKE_SLEEP=3", &knob]))
        .collect();
    shorts.push(ok(&sandbox, &["start", "FAKE_SLEEP=3", &knob]));
    for short in &shorts {
        assert_eq!(wait(&sandbox, short)["status"], "succeeded");
    }
    let (peak, starts) = peak_concurrency(&record);
    assert_eq!(starts, 4);
    assert_eq!(peak, 4, "three on the cluster and one here, at once");
    let human = ok(&sandbox, &["group", "list"]);
    assert!(human.contains("slurm"), "{human}");
}

#[test]
fn a_groups_executor_can_be_changed_and_its_next_tasks_go_there() {
    let sandbox = Sandbox::new();
    ok(&sandbox, &["group", "add", "work"]);
    ok(
        &sandbox,
        &["group", "set", "work", "--executor", "slurm", "--time", "5"],
    );
    assert!(ok(&sandbox, &["group", "list"]).contains("slurm (time 5)"));
    let on_slurm = ok(&sandbox, &["start", "-g", "work", "FAKE_SLEEP=0"]);
    let view = wait(&sandbox, &on_slurm);
    assert_eq!(view["status"], "succeeded", "{view}");
    job_id(&view);
    ok(&sandbox, &["group", "set", "work", "--executor", "local"]);
    let here = ok(&sandbox, &["start", "-g", "work", "FAKE_SLEEP=0"]);
    let view = wait(&sandbox, &here);
    assert_eq!(view["status"], "succeeded", "{view}");
    assert!(view.get("slurm").is_none(), "ran here: {view}");
    // Refused, naming what to do, and nothing changes.
    for (args, says) in [
        (
            vec!["group", "set", "work", "--time", "5"],
            "--executor slurm",
        ),
        (vec!["group", "set", "work"], "--executor local"),
        (
            vec!["group", "set", "nosuch", "--executor", "slurm"],
            "group nosuch does not exist",
        ),
    ] {
        let out = run(&sandbox, &args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
    let list = ok(&sandbox, &["group", "list"]);
    assert!(list.contains("work") && !list.contains("slurm"), "{list}");
}

#[test]
fn a_slurm_task_whose_runner_is_killed_is_still_cancelled_with_scancel() {
    let sandbox = Sandbox::new();
    slurm_group(&sandbox, "cluster", &[]);
    let short = ok(&sandbox, &["start", "--group", "cluster", "FAKE_SLEEP=120"]);
    let view = until_running(&sandbox, &short);
    let id = view["id"].as_str().unwrap().to_owned();
    kill_runner(&sandbox, &id);
    // Nobody here runs the task any more: the cancel goes to Slurm.
    ok(&sandbox, &["cancel", &short]);
    let view = wait(&sandbox, &short);
    assert_eq!(view["status"], "cancelled", "{view}");
    assert_eq!(view["error"], "cancelled on request");
    until_nothing_left(&id, job_id(&view));
}
