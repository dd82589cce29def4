//! What only the detached supervisor promises: tasks outlive their frontend, a runner that dies
//! leaves a `lost` task and no processes, and a recorded pid is never signalled once it names
//! another process.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use ccmp_core::{
    Ccmp, Config, FsStore, LaunchMode, LogRange, OutputSource, TaskRecord, TaskStatus, TaskStore,
    WaitMode,
};
use ccmp_tests::{Sandbox, grandchild_pids, pid_alive, poll, task_processes, workspace_bin};
use pretty_assertions::assert_eq;
use rustix::process::{Pid, Signal, kill_process};

const LONG: Duration = Duration::from_secs(60);

fn ccmp(sandbox: &Sandbox, max_parallel: usize) -> Ccmp {
    let config = Config {
        max_parallel,
        grace: Duration::from_millis(1500),
        claude_program: workspace_bin("fake-claude").into_os_string(),
        ..Config::default()
    };
    Ccmp::open_with_runner(
        FsStore::open(sandbox.state()).unwrap(),
        config,
        workspace_bin("ccmp-test-host"),
    )
}

fn kill9(pid: i32) {
    kill_process(Pid::from_raw(pid).unwrap(), Signal::KILL).unwrap();
}

/// Starts `count` tasks from a separate frontend process and returns it with the task ids.
fn start_from_host(
    sandbox: &Sandbox,
    count: usize,
    prompt: &str,
    hold: bool,
) -> (std::process::Child, Vec<String>) {
    let mut cmd = Command::new(workspace_bin("ccmp-test-host"));
    cmd.args([
        "start",
        &sandbox.state().display().to_string(),
        &count.to_string(),
        prompt,
    ])
    .env("CCMP_CLAUDE_BIN", workspace_bin("fake-claude"))
    .env("CCMP_MAX_PARALLEL", "4")
    .env("CLAUDE_CONFIG_DIR", sandbox.path("claude-config"))
    .current_dir(sandbox.work())
    .stdout(Stdio::piped());
    if hold {
        cmd.env("HOLD", "1");
    }
    let mut child = cmd.spawn().unwrap();
    let mut ids = Vec::new();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    while ids.len() < count {
        ids.push(lines.next().expect("the host printed every id").unwrap());
    }
    (child, ids)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_survive_a_frontend_killed_with_sigkill() {
    let sandbox = Sandbox::new();
    let (mut host, ids) = start_from_host(&sandbox, 3, "FAKE_SLEEP=1", true);
    kill9(host.id() as i32);
    host.wait().unwrap();
    // A new process, started later, sees every task and its result.
    let ccmp = ccmp(&sandbox, 4);
    let ids = ccmp.resolve_all(&ids).unwrap();
    let outcome = ccmp.wait(&ids, WaitMode::All, LONG).await.unwrap();
    assert!(!outcome.timed_out);
    for record in &outcome.finished {
        assert_eq!(record.status, TaskStatus::Succeeded, "{:?}", record.outcome);
        assert!(record.session_id.is_some() && record.outcome.as_ref().unwrap().cost_usd.is_some());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_tasks_started_by_a_program_that_exits_are_all_seen_later() {
    let sandbox = Sandbox::new();
    let (mut host, ids) = start_from_host(&sandbox, 50, "FAKE_TOOLS=1", false);
    assert!(host.wait().unwrap().success());
    let ccmp = ccmp(&sandbox, 4);
    let list = ccmp
        .list(&ccmp_core::ListQuery {
            states: None,
            limit: 100,
            group: None,
        })
        .unwrap();
    assert_eq!(list.total, 50);
    let ids = ccmp.resolve_all(&ids).unwrap();
    let outcome = ccmp
        .wait(&ids, WaitMode::All, Duration::from_secs(120))
        .await
        .unwrap();
    assert!(
        !outcome.timed_out,
        "{} still pending",
        outcome.pending.len()
    );
    assert!(
        outcome
            .finished
            .iter()
            .all(|r| r.status == TaskStatus::Succeeded
                && r.outcome.as_ref().unwrap().num_turns == Some(2))
    );
    // No runner is left behind once every task has finished.
    for record in &outcome.finished {
        let runner = record.runner.clone().expect("runner identity recorded");
        poll(Duration::from_secs(10), "runners to exit", || {
            (!runner.is_alive()).then_some(())
        });
    }
}

async fn running_with_grandchild(ccmp: &Ccmp, sandbox: &Sandbox) -> (TaskRecord, i32) {
    let started = ccmp
        .start(sandbox.request("FAKE_HANG FAKE_GRANDCHILD"))
        .unwrap();
    let id = started.id;
    let grandchild = poll(LONG, "the grandchild to start", || {
        let stderr = ccmp
            .output(&id, OutputSource::Stderr, LogRange::tail(10))
            .ok()?;
        grandchild_pids(&stderr.text).first().copied()
    });
    let record = poll(LONG, "the task to run", || {
        let r = ccmp.status(&id).ok()?;
        (r.status == TaskStatus::Running && r.agent_process.is_some()).then_some(r)
    });
    (record, grandchild)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runner_killed_with_sigkill_leaves_a_lost_task_and_no_processes() {
    // The runner in target/ has the small `ccmp-exec-agent` beside it, and starts agents
    // through that.
    let sandbox = Sandbox::new();
    killed_runner_leaves_lost_task_and_no_processes(&sandbox, ccmp(&sandbox, 4)).await;
}

/// Where there is no cgroup for the task (none can be made, or `CCMP_TASK_CGROUPS=off`), the
/// marker sweep finds what the agent left in a session of its own.
#[test]
fn without_a_cgroup_the_marker_sweep_stops_what_the_agent_left() {
    let sandbox = Sandbox::new();
    let output = Command::new(workspace_bin("ccmp"))
        .args(["start", "--wait", "--json", "FAKE_GRANDCHILD"])
        .env("CCMP_STATE_DIR", sandbox.state())
        .env("CCMP_CLAUDE_BIN", workspace_bin("fake-claude"))
        .env("CCMP_TASK_CGROUPS", "off")
        .env("IS_SANDBOX", "1")
        .env("CLAUDE_CONFIG_DIR", sandbox.path("claude-config"))
        .current_dir(sandbox.work())
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let view: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let id = view["id"].as_str().unwrap().to_owned();
    let record = sandbox.stored_record(&id);
    assert_eq!(record["status"], "succeeded");
    assert!(record["agent_process"]["cgroup"].is_null(), "{record}");
    let store = FsStore::open(sandbox.state()).unwrap();
    let task = store.resolve(&id).unwrap();
    let stderr = store
        .read_log(&task, ccmp_core::LogStream::Stderr, LogRange::tail(10))
        .unwrap();
    let pids = grandchild_pids(&stderr.text);
    assert!(!pids.is_empty(), "the agent left no grandchild to find");
    // The outcome is recorded only after the sweep: the grandchild is gone already.
    for pid in pids {
        assert!(!pid_alive(pid), "grandchild {pid} outlived its task");
    }
}

/// A log the agent never writes to is not made (most agents print nothing on stderr): one file
/// less per task, and readers take the missing log as an empty one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_silent_on_stderr_leaves_no_stderr_log() {
    let sandbox = Sandbox::new();
    let ccmp = ccmp(&sandbox, 4);
    let quiet = ccmp.start(sandbox.request("FAKE_TOOLS=1")).unwrap();
    let loud = ccmp.start(sandbox.request("FAKE_GRANDCHILD")).unwrap();
    let done = ccmp
        .wait(&[quiet.id, loud.id], WaitMode::All, LONG)
        .await
        .unwrap();
    assert!(
        done.finished
            .iter()
            .all(|r| r.status == TaskStatus::Succeeded)
    );
    let store = FsStore::open(sandbox.state()).unwrap();
    assert!(store.task_dir(&quiet.id).join("stdout.jsonl").exists());
    assert!(!store.task_dir(&quiet.id).join("stderr.log").exists());
    let quiet_err = ccmp
        .output(&quiet.id, OutputSource::Stderr, LogRange::tail(10))
        .unwrap();
    assert_eq!(quiet_err.text, "");
    let loud_err = ccmp
        .output(&loud.id, OutputSource::Stderr, LogRange::tail(10))
        .unwrap();
    assert!(loud_err.text.contains("grandchild:"), "{}", loud_err.text);
}

/// Progress is saved at most every 250 ms: an agent reports in bursts, and each save rewrites
/// the record. 20 quick tool uses (25 ms each) cost a handful of record writes, not one each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_progress_costs_a_few_record_writes_not_one_each() {
    use rustix::fs::inotify::{self, CreateFlags, WatchFlags};
    let sandbox = Sandbox::new();
    let ccmp = ccmp(&sandbox, 4);
    let started = ccmp
        .start(sandbox.request("FAKE_TOOLS=20 FAKE_TOOL_MS=25"))
        .unwrap();
    let store = FsStore::open(sandbox.state()).unwrap();
    let fd = inotify::init(CreateFlags::CLOEXEC | CreateFlags::NONBLOCK).unwrap();
    // CREATE too: the kernel merges identical events queued back to back, so the renames of
    // record.json alone would read as one.
    inotify::add_watch(
        &fd,
        store.task_dir(&started.id),
        WatchFlags::MOVED_TO | WatchFlags::CREATE,
    )
    .unwrap();
    let done = ccmp.wait(&[started.id], WaitMode::All, LONG).await.unwrap();
    let record = &done.finished[0];
    assert_eq!(record.status, TaskStatus::Succeeded);
    assert_eq!(record.outcome.as_ref().and_then(|o| o.num_turns), Some(21));
    let mut writes = 0;
    let mut buf = [std::mem::MaybeUninit::uninit(); 4096];
    let mut events = inotify::Reader::new(&fd, &mut buf);
    while let Ok(event) = events.next() {
        if event
            .file_name()
            .is_some_and(|n| n.to_bytes() == b"record.json")
        {
            writes += 1;
        }
    }
    assert!(
        (1..=6).contains(&writes),
        "{writes} record writes for 20 quick tool uses"
    );
}

/// A runner binary with no `ccmp-exec-agent` beside it starts agents through itself, with the
/// same guarantee: the agent dies with its runner.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_ccmp_exec_agent_a_runner_starts_agents_through_itself() {
    let sandbox = Sandbox::new();
    let alone = sandbox.path("bin");
    std::fs::create_dir(&alone).unwrap();
    let runner = alone.join("ccmp-test-host");
    std::fs::copy(workspace_bin("ccmp-test-host"), &runner).unwrap();
    let config = Config {
        grace: Duration::from_millis(1500),
        claude_program: workspace_bin("fake-claude").into_os_string(),
        ..Config::default()
    };
    let ccmp = Ccmp::open_with_runner(FsStore::open(sandbox.state()).unwrap(), config, runner);
    killed_runner_leaves_lost_task_and_no_processes(&sandbox, ccmp).await;
}

async fn killed_runner_leaves_lost_task_and_no_processes(sandbox: &Sandbox, ccmp: Ccmp) {
    let (record, grandchild) = running_with_grandchild(&ccmp, sandbox).await;
    let agent = record.agent_process.clone().unwrap().identity;
    kill9(record.runner.clone().unwrap().pid);
    // The agent dies with its runner (parent-death signal)...
    poll(
        Duration::from_secs(10),
        "the agent to die with its runner",
        || (!agent.is_alive()).then_some(()),
    );
    // ...and the next look decides `lost` and stops what is left: the grandchild in its own session.
    let lost = ccmp.status(&record.id).unwrap();
    assert_eq!(lost.status, TaskStatus::Lost);
    let error = lost.error().unwrap();
    assert!(
        error.contains("runner") && error.contains("killed"),
        "{error}"
    );
    poll(
        Duration::from_secs(5),
        "the grandchild to be stopped",
        || (!pid_alive(grandchild)).then_some(()),
    );
    assert!(task_processes(&record.id.to_string()).is_empty());
    // Lost is terminal: it stays lost.
    assert_eq!(ccmp.status(&record.id).unwrap().status, TaskStatus::Lost);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reused_pid_is_never_signalled() {
    let sandbox = Sandbox::new();
    let ccmp = ccmp(&sandbox, 4);
    let started = ccmp.start(sandbox.request("FAKE_HANG")).unwrap();
    let record = poll(LONG, "the task to run", || {
        let r = ccmp.status(&started.id).ok()?;
        (r.status == TaskStatus::Running && r.agent_process.is_some()).then_some(r)
    });
    let runner = record.runner.clone().unwrap();
    kill9(runner.pid);
    poll(Duration::from_secs(10), "the runner to be gone", || {
        (!runner.is_alive()).then_some(())
    });
    // An unrelated process now holds the recorded pids, as if they had been reused.
    let mut bystander = Command::new("sleep").arg("30").spawn().unwrap();
    let store = FsStore::open(sandbox.state()).unwrap();
    let mut edited = store.load(&record.id).unwrap();
    edited.runner.as_mut().unwrap().pid = bystander.id() as i32;
    if let Some(agent) = edited.agent_process.as_mut() {
        agent.identity.pid = bystander.id() as i32;
        agent.pgid = bystander.id() as i32;
    }
    store.save(&edited).unwrap();
    let outcome = ccmp.cancel(&record.id).await.unwrap();
    assert!(outcome.already_finished);
    assert_eq!(outcome.record.status, TaskStatus::Lost);
    assert!(
        pid_alive(bystander.id() as i32),
        "an unrelated process was signalled"
    );
    assert!(bystander.try_wait().unwrap().is_none());
    bystander.kill().unwrap();
    bystander.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runner_binary_that_is_not_ccmp_fails_the_start_clearly() {
    let sandbox = Sandbox::new();
    let config = Config {
        claude_program: workspace_bin("fake-claude").into_os_string(),
        ..Config::default()
    };
    let ccmp = Ccmp::open_with_runner(FsStore::open(sandbox.state()).unwrap(), config, "/bin/true");
    let err = ccmp.start(sandbox.request("x")).unwrap_err();
    assert!(err.to_string().contains("/bin/true"), "{err}");
    // The task is kept, failed, with the reason, so it is not a mystery later.
    let ids = ccmp.store().ids().unwrap();
    assert_eq!(ids.len(), 1);
    let record = ccmp.status(&ids[0]).unwrap();
    assert_eq!(record.status, TaskStatus::Failed);
    assert!(record.error().unwrap().contains("/bin/true"));
}

/// A frontend that lives on (the MCP server) does not wait for the runner to be ready: the
/// start returns at once, and a runner that exits before taking the task leaves it `failed`
/// with the runner's own words, recorded by the frontend's reaper.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watched_runner_that_dies_before_taking_its_task_fails_it_with_its_log() {
    use std::os::unix::fs::PermissionsExt;
    let sandbox = Sandbox::new();
    let runner = sandbox.path("broken-runner");
    std::fs::write(
        &runner,
        "#!/bin/sh\necho 'ccmp runner: cannot open the state dir: disk on fire' >&2\nexit 1\n",
    )
    .unwrap();
    std::fs::set_permissions(&runner, std::fs::Permissions::from_mode(0o755)).unwrap();
    let config = Config {
        claude_program: workspace_bin("fake-claude").into_os_string(),
        launch: LaunchMode::Watch,
        ..Config::default()
    };
    let store = FsStore::open(sandbox.state()).unwrap();
    let ccmp = Ccmp::open_with_runner(store.clone(), config, &runner);
    let started = ccmp.start(sandbox.request("x")).unwrap();
    assert_eq!(started.status, TaskStatus::Queued);
    // A reader checking the task (as `status` does) may hold its runner lock just when the
    // reaper looks: the reaper waits it out instead of leaving the task queued for ever.
    let reader = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(store.task_dir(&started.id).join("runner.lock"))
        .unwrap();
    reader.lock().unwrap();
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(store.load(&started.id).unwrap().status, TaskStatus::Queued);
    drop(reader);
    let record = poll(LONG, "the task to be recorded failed", || {
        let record = ccmp.status(&started.id).unwrap();
        record.status.is_terminal().then_some(record)
    });
    assert_eq!(record.status, TaskStatus::Failed);
    let error = record.error().unwrap();
    assert!(
        error.contains("could not start") && error.contains("disk on fire"),
        "{error}"
    );
}

/// A cancel that comes while a watched start's runner is still starting reaches it: the runner
/// either finds the cancel marker after it recorded itself, or is signalled by the canceller,
/// who looks for a runner again after writing the marker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_right_after_a_watched_start_is_never_lost() {
    let sandbox = Sandbox::new();
    let config = Config {
        grace: Duration::from_millis(500),
        claude_program: workspace_bin("fake-claude").into_os_string(),
        launch: LaunchMode::Watch,
        ..Config::default()
    };
    let ccmp = Ccmp::open_with_runner(
        FsStore::open(sandbox.state()).unwrap(),
        config,
        workspace_bin("ccmp-test-host"),
    );
    for round in 0..12 {
        let started = ccmp.start(sandbox.request("FAKE_HANG")).unwrap();
        // Give the runner a moment in some rounds, so the cancel lands at every point of its
        // start-up across rounds.
        if round % 3 > 0 {
            let until = std::time::Instant::now() + Duration::from_micros(700 * round);
            while std::time::Instant::now() < until {
                std::hint::spin_loop();
            }
        }
        ccmp.request_cancel(&started.id).unwrap();
        let record = poll(LONG, "the cancelled task to end", || {
            let record = ccmp.status(&started.id).unwrap();
            record.status.is_terminal().then_some(record)
        });
        assert_eq!(record.status, TaskStatus::Cancelled, "round {round}");
    }
}

/// Watched runners run their tasks as confirmed ones do, and one killed after it took its task
/// leaves it `lost`, not "could not start".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watched_runners_run_tasks_and_a_killed_one_is_lost() {
    let sandbox = Sandbox::new();
    let config = Config {
        claude_program: workspace_bin("fake-claude").into_os_string(),
        launch: LaunchMode::Watch,
        ..Config::default()
    };
    let ccmp = Ccmp::open_with_runner(
        FsStore::open(sandbox.state()).unwrap(),
        config,
        workspace_bin("ccmp-test-host"),
    );
    let quick = ccmp.start(sandbox.request("FAKE_TOOLS=1")).unwrap();
    let slow = ccmp.start(sandbox.request("FAKE_SLEEP=60")).unwrap();
    let done = ccmp.wait(&[quick.id], WaitMode::All, LONG).await.unwrap();
    assert_eq!(done.finished[0].status, TaskStatus::Succeeded);
    let running = poll(LONG, "the slow task to run", || {
        let record = ccmp.status(&slow.id).unwrap();
        (record.status == TaskStatus::Running).then_some(record)
    });
    kill9(running.runner.unwrap().pid);
    let record = poll(LONG, "the killed task to end", || {
        let record = ccmp.status(&slow.id).unwrap();
        record.status.is_terminal().then_some(record)
    });
    assert_eq!(record.status, TaskStatus::Lost, "{:?}", record.error());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_frontend_binaries_can_play_runner() {
    let sandbox = Sandbox::new();
    for runner in ["ccmp", "ccmp-mcp"] {
        let config = Config {
            claude_program: workspace_bin("fake-claude").into_os_string(),
            ..Config::default()
        };
        let ccmp = Ccmp::open_with_runner(
            FsStore::open(sandbox.state()).unwrap(),
            config,
            workspace_bin(runner),
        );
        let started = ccmp.start(sandbox.request("FAKE_TOOLS=1")).unwrap();
        let done = ccmp.wait(&[started.id], WaitMode::All, LONG).await.unwrap();
        let record = &done.finished[0];
        assert_eq!(
            record.status,
            TaskStatus::Succeeded,
            "{runner}: {:?}",
            record.outcome
        );
        assert!(
            record.runner.is_some(),
            "{runner} recorded no runner identity"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_entries_left_by_dead_runners_do_not_block_the_queue() {
    let sandbox = Sandbox::new();
    let ccmp = ccmp(&sandbox, 1);
    // Three entries ahead of any new task, from runners that are gone (no task, no lock holder).
    let queue = sandbox.state().join("queue");
    for n in 1..=3u64 {
        std::fs::write(
            queue.join(format!("{n:020}-{}", ccmp_core::TaskId::new().simple())),
            "",
        )
        .unwrap();
    }
    let started = ccmp.start(sandbox.request("FAKE_SLEEP=0")).unwrap();
    let done = ccmp.wait(&[started.id], WaitMode::All, LONG).await.unwrap();
    assert_eq!(done.finished[0].status, TaskStatus::Succeeded);
    let left: Vec<_> = std::fs::read_dir(&queue)
        .unwrap()
        .flatten()
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .collect();
    assert!(left.is_empty(), "dead entries were not cleared: {left:?}");
}

/// Processes of the re-forking and re-exec'ing kinds fake-claude leaves behind.
fn hand_on_processes() -> Vec<i32> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|cmd| {
                cmd.windows(12)
                    .any(|w| w == b"--fake-refor" || w == b"--fake-reexe")
            }) && pid_alive(*pid)
        })
        .collect()
}

/// A background process that keeps re-forking (its pid changes every few ms) or re-exec'ing
/// (its environment reads empty inside `execve`) escaped the marker sweep in some runs. Where
/// the machine allows a cgroup per task, `cgroup.kill` takes the whole tree at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweep_catches_processes_that_re_fork_or_re_exec() {
    let sandbox = Sandbox::new();
    let ccmp = ccmp(&sandbox, 4);
    let tasks: Vec<TaskRecord> = (0..12)
        .map(|n| {
            let knob = if n % 2 == 0 {
                "FAKE_REFORK"
            } else {
                "FAKE_REEXEC"
            };
            ccmp.start(sandbox.request(&format!("{knob} FAKE_SLEEP=0.3")))
                .unwrap()
        })
        .collect();
    let ids: Vec<_> = tasks.iter().map(|t| t.id).collect();
    let done = ccmp.wait(&ids, WaitMode::All, LONG).await.unwrap();
    let in_cgroups = done
        .finished
        .iter()
        .all(|r| r.agent_process.as_ref().is_some_and(|a| a.cgroup.is_some()));
    // Look a few times: a survivor is alive at every look, even if caught in execve at one.
    let mut survivors = Vec::new();
    for _ in 0..20 {
        survivors = hand_on_processes();
        if !survivors.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // Never leak them, whatever the outcome.
    for _ in 0..50 {
        let left = hand_on_processes();
        if left.is_empty() {
            break;
        }
        for pid in left {
            let _ = kill_process(Pid::from_raw(pid).unwrap(), Signal::KILL);
        }
    }
    for record in &done.finished {
        assert_eq!(record.status, TaskStatus::Succeeded, "{:?}", record.outcome);
    }
    if !in_cgroups {
        eprintln!(
            "no writable cgroup v2 here: only the marker sweep ran, which can miss these (survivors: {survivors:?})"
        );
        return;
    }
    assert_eq!(
        survivors,
        Vec::<i32>::new(),
        "processes outlived their tasks"
    );
    for record in &done.finished {
        let cgroup = record
            .agent_process
            .as_ref()
            .and_then(|a| a.cgroup.clone())
            .unwrap();
        assert!(!cgroup.exists(), "{} was not removed", cgroup.display());
    }
}

/// inotify instances a process holds.
fn inotify_instances(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|fd| {
            std::fs::read_link(fd.path())
                .is_ok_and(|target| target.as_os_str() == "anon_inode:inotify")
        })
        .count()
}

/// Waiting runners used one inotify instance each (the per-user limit is 128 on many machines,
/// past which they polled every 50 ms). Now only the head of the line watches; the others sleep
/// in `flock` on the entry ahead, and a waiter killed in the middle does not stall the line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_tasks_hold_no_inotify_and_a_killed_waiter_does_not_stall_the_line() {
    let sandbox = Sandbox::new();
    let ccmp = ccmp(&sandbox, 1);
    let running = ccmp.start(sandbox.request("FAKE_HANG")).unwrap();
    let waiting: Vec<TaskRecord> = (0..8)
        .map(|_| ccmp.start(sandbox.request("FAKE_SLEEP=0")).unwrap())
        .collect();
    let queue = sandbox.state().join("queue");
    poll(LONG, "eight waiters in the line", || {
        let entries = std::fs::read_dir(&queue)
            .unwrap()
            .flatten()
            .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
            .count();
        (entries == 8).then_some(())
    });
    let store = FsStore::open(sandbox.state()).unwrap();
    let runner = |task: &TaskRecord| store.load(&task.id).unwrap().runner.unwrap().pid;
    let watching: usize = waiting.iter().map(|t| inotify_instances(runner(t))).sum();
    assert!(
        watching <= 1,
        "{watching} waiting runners hold an inotify instance"
    );
    kill9(runner(&waiting[3]));
    ccmp.cancel(&running.id).await.unwrap();
    let ids: Vec<_> = waiting.iter().map(|t| t.id).collect();
    let done = ccmp.wait(&ids, WaitMode::All, LONG).await.unwrap();
    let status = |t: &TaskRecord| {
        done.finished
            .iter()
            .find(|f| f.id == t.id)
            .map(|f| f.status)
    };
    for (n, task) in waiting.iter().enumerate() {
        let expected = if n == 3 {
            TaskStatus::Lost
        } else {
            TaskStatus::Succeeded
        };
        assert_eq!(status(task), Some(expected), "waiter {n}");
    }
}

/// A second runner for a task that a live runner owns gives up without touching the task, and
/// its error never tells anyone to delete the lock (a held flock belongs to a live process).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_runner_for_a_live_task_leaves_it_alone() {
    let sandbox = Sandbox::new();
    let ccmp = ccmp(&sandbox, 4);
    let hang = ccmp.start(sandbox.request("FAKE_HANG")).unwrap();
    let running = poll(LONG, "the task to run", || {
        let r = ccmp.status(&hang.id).ok()?;
        (r.status == TaskStatus::Running && r.agent_process.is_some()).then_some(r)
    });
    let output = Command::new(workspace_bin("ccmp-test-host"))
        .arg(ccmp_core::RUNNER_CMD)
        .arg(sandbox.state())
        .arg(hang.id.simple())
        .arg("1000")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(
        output.stdout.is_empty(),
        "a second runner said it took the task"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("held by another live ccmp process"),
        "{stderr}"
    );
    assert!(!stderr.contains("remove"), "{stderr}");
    let after = ccmp.status(&hang.id).unwrap();
    assert_eq!(after.status, TaskStatus::Running);
    assert_eq!(
        (&after.runner, &after.agent_process),
        (&running.runner, &running.agent_process)
    );
    ccmp.cancel(&hang.id).await.unwrap();
}

/// A task started from inside a task (an agent running `ccmp start` in its Bash tool, or a
/// Claude Code that loads ccmp-mcp) belongs to itself: the outer task's end-of-task sweep does
/// not kill its runner, and it finishes on its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_started_inside_a_task_outlives_the_outer_task() {
    use std::os::unix::fs::PermissionsExt;
    let sandbox = Sandbox::new();
    let ccmp = ccmp(&sandbox, 4);
    let inner_id = sandbox.path("inner-id");
    let script = sandbox.path("nested.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nexport CCMP_CLAUDE_BIN='{}'\nexec '{}' start '{}' 1 'FAKE_SLEEP=2' > '{}'\n",
            workspace_bin("fake-claude").display(),
            workspace_bin("ccmp-test-host").display(),
            sandbox.state().display(),
            inner_id.display(),
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let outer = ccmp
        .start(sandbox.request(&format!("FAKE_BASH={}", script.display())))
        .unwrap();
    let outer = ccmp
        .wait(&[outer.id], WaitMode::All, LONG)
        .await
        .unwrap()
        .finished
        .remove(0);
    assert_eq!(outer.status, TaskStatus::Succeeded, "{:?}", outer.outcome);
    let inner = std::fs::read_to_string(&inner_id).unwrap();
    let inner = ccmp.resolve(inner.trim()).unwrap();
    let done = ccmp.wait(&[inner], WaitMode::All, LONG).await.unwrap();
    let inner = &done.finished[0];
    assert_eq!(
        inner.status,
        TaskStatus::Succeeded,
        "the nested task did not finish on its own: {:?}",
        inner.outcome
    );
}
