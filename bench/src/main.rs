//! `ccmp-bench`: measures what ccmp adds to the agents it runs, as ratios against floors
//! measured in the same run, by driving the real `ccmp-mcp` binary over stdio with the fake
//! agent (in a near-free mode: sleep and print) and a fresh state dir per figure.
//!
//! ```sh
//! cargo run --release -p ccmp-bench            # the full run (about 2 minutes)
//! cargo run --release -p ccmp-bench -- --quick # smaller counts and a 5 s idle window
//! ```
//!
//! These are measurements, not tests: nothing here asserts a time.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use ccmp_core::{FsStore, TaskRecord, TaskRequest, TaskStatus, TaskStore};
use ccmp_tests::workspace_bin;
use serde_json::{Value, json};

struct Sizes {
    cold_starts: usize,
    list_calls: usize,
    starts: usize,
    fan_out: usize,
    fan_out_secs: f64,
    store_sizes: [usize; 3],
    spaced_starts: usize,
    idle_secs: u64,
    queue_tasks: usize,
    waiting_tasks: usize,
}

const FULL: Sizes = Sizes {
    cold_starts: 20,
    list_calls: 500,
    starts: 200,
    fan_out: 50,
    fan_out_secs: 2.0,
    store_sizes: [1_000, 10_000, 50_000],
    spaced_starts: 50,
    idle_secs: 30,
    queue_tasks: 20,
    waiting_tasks: 1_000,
};

const QUICK: Sizes = Sizes {
    cold_starts: 5,
    list_calls: 100,
    starts: 40,
    fan_out: 20,
    fan_out_secs: 1.0,
    store_sizes: [200, 1_000, 2_000],
    spaced_starts: 10,
    idle_secs: 5,
    queue_tasks: 10,
    waiting_tasks: 200,
};

/// One line of the results table.
struct Row {
    figure: String,
    value: String,
    floor: String,
    ratio: String,
    target: &'static str,
}

fn row(figure: impl Into<String>, value: impl Into<String>, target: &'static str) -> Row {
    Row {
        figure: figure.into(),
        value: value.into(),
        floor: "-".into(),
        ratio: "-".into(),
        target,
    }
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    let index = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples[index.min(samples.len() - 1)]
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|n| n.parse().ok()))
        })
        .unwrap_or(0)
}

/// Private memory (clean + dirty) and proportional set size of a process, in KiB.
fn private_and_pss_kib(pid: u32) -> (u64, u64) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
    let field = |name: &str| -> u64 {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
            .unwrap_or(0)
    };
    (
        field("Private_Clean:") + field("Private_Dirty:"),
        field("Pss:"),
    )
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// CPU time (user + system) of a process, in clock ticks.
fn cpu_ticks(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            let rest = s.rsplit_once(')')?.1.to_owned();
            let fields: Vec<&str> = rest.split_whitespace().collect();
            Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
        })
        .unwrap_or(0)
}

/// Where a figure's state dir lives: the default temp dir (a disk), or tmpfs. This disk's cost
/// of a new file moves 2x between hours, so figures are shown on both, beside a probe of it.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Disk {
    Default,
    Tmpfs,
}

impl Disk {
    const BOTH: [Disk; 2] = [Disk::Default, Disk::Tmpfs];

    fn name(self) -> &'static str {
        match self {
            Disk::Default => "disk",
            Disk::Tmpfs => "tmpfs",
        }
    }

    fn tempdir(self) -> std::io::Result<tempfile::TempDir> {
        match self {
            Disk::Default => tempfile::tempdir(),
            Disk::Tmpfs => tempfile::tempdir_in("/dev/shm"),
        }
    }
}

/// The fake agent's two modes: near-free (print and exit), and CPU-hungry at start (about
/// 20 ms of CPU, as Claude Code spends loading before it does anything).
#[derive(Debug, Clone, Copy)]
enum Agent {
    NearFree,
    Hungry,
}

impl Agent {
    fn prompt(self, sleep_secs: f64) -> String {
        match self {
            Agent::NearFree => format!("FAKE_SLEEP={sleep_secs}"),
            Agent::Hungry => format!("FAKE_SLEEP={sleep_secs} FAKE_START_CPU_MS=20"),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Agent::NearFree => "near-free agent",
            Agent::Hungry => "agent using 20 ms CPU at start",
        }
    }
}

/// A fresh place for one figure: state dir, working dir and agent config dir.
struct Scene {
    dir: tempfile::TempDir,
}

impl Scene {
    fn new() -> anyhow::Result<Self> {
        Self::on(Disk::Default)
    }

    fn on(disk: Disk) -> anyhow::Result<Self> {
        let dir = disk.tempdir()?;
        for sub in ["state", "work", "claude"] {
            std::fs::create_dir(dir.path().join(sub))?;
        }
        Ok(Self { dir })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn server(&self, max_parallel: usize) -> anyhow::Result<Server> {
        let mut cmd = Command::new(workspace_bin("ccmp-mcp"));
        cmd.env("CCMP_STATE_DIR", self.path("state"))
            .env("CCMP_CLAUDE_BIN", workspace_bin("fake-claude"))
            .env("CCMP_MAX_PARALLEL", max_parallel.to_string())
            .env("IS_SANDBOX", "1")
            .env("CLAUDE_CONFIG_DIR", self.path("claude"))
            .env("RUST_LOG", "error")
            .current_dir(self.path("work"));
        Server::spawn(cmd)
    }
}

struct Server {
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<Value>,
    next_id: u64,
}

impl Server {
    fn spawn(mut cmd: Command) -> anyhow::Result<Self> {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("start ccmp-mcp")?;
        let stdout = child.stdout.take().context("stdout")?;
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(value) = serde_json::from_str::<Value>(&line)
                    && tx.send(value).is_err()
                {
                    break;
                }
            }
        });
        let stdin = child.stdin.take().context("stdin")?;
        Ok(Self {
            child,
            stdin,
            lines: rx,
            next_id: 0,
        })
    }

    fn request(&mut self, method: &str, params: Value) -> anyhow::Result<Value> {
        self.next_id += 1;
        let id = self.next_id;
        writeln!(
            self.stdin,
            "{}",
            json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
        )?;
        self.stdin.flush()?;
        loop {
            let message = self
                .lines
                .recv_timeout(Duration::from_secs(300))
                .context("no reply from ccmp-mcp")?;
            if message["id"] == id {
                if message.get("error").is_some() {
                    bail!("{method} failed: {message}");
                }
                return Ok(message["result"].clone());
            }
        }
    }

    fn initialize(&mut self) -> anyhow::Result<()> {
        self.request(
            "initialize",
            json!({"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}}),
        )?;
        writeln!(
            self.stdin,
            "{}",
            json!({"jsonrpc": "2.0", "method": "notifications/initialized"})
        )?;
        Ok(())
    }

    fn call(&mut self, tool: &str, args: Value) -> anyhow::Result<Value> {
        let result = self.request("tools/call", json!({"name": tool, "arguments": args}))?;
        if result["isError"] == true {
            bail!("{tool}: {}", result["content"][0]["text"]);
        }
        Ok(result["structuredContent"].clone())
    }

    /// Starts `n` tasks with `prompt`; their ids.
    fn start_all(&mut self, prompt: &str, n: usize) -> anyhow::Result<Vec<String>> {
        (0..n)
            .map(|_| {
                self.call("start_cc_task_async", json!({"prompt": prompt}))
                    .map(|t| t["id"].as_str().unwrap_or_default().to_owned())
            })
            .collect()
    }

    fn wait_all(&mut self, ids: &[String]) -> anyhow::Result<()> {
        for chunk in ids.chunks(100) {
            loop {
                let reply = self.call(
                    "wait_for_tasks",
                    json!({"task_ids": chunk, "timeout_s": 600}),
                )?;
                if reply["timed_out"] == false {
                    break;
                }
            }
        }
        Ok(())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits (with a deadline) until every task of `ids` runs; their records.
fn all_running(store: &FsStore, ids: &[String]) -> anyhow::Result<Vec<TaskRecord>> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let records: Vec<TaskRecord> = ids
            .iter()
            .filter_map(|id| store.resolve(id).ok().and_then(|id| store.load(&id).ok()))
            .collect();
        if records.len() == ids.len() && records.iter().all(|r| r.status == TaskStatus::Running) {
            return Ok(records);
        }
        if Instant::now() > deadline {
            bail!("the tasks never all started");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Time to fork and exec a trivial binary and reap it: the floor for anything that starts a
/// process.
fn spawn_floor(samples: usize) -> Vec<Duration> {
    (0..samples)
        .map(|_| {
            let t = Instant::now();
            let _ = Command::new("/bin/true").status();
            t.elapsed()
        })
        .collect()
}

fn cold_start(sizes: &Sizes, rows: &mut Vec<Row>) -> anyhow::Result<()> {
    let scene = Scene::new()?;
    let (mut init, mut list, mut rss) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..sizes.cold_starts {
        let t = Instant::now();
        let mut server = scene.server(4)?;
        server.initialize()?;
        init.push(t.elapsed());
        rss.push(rss_kib(server.child.id()));
        let t = Instant::now();
        server.request("tools/list", json!({}))?;
        list.push(t.elapsed());
    }
    let mut floor = spawn_floor(sizes.cold_starts);
    let (init_p50, floor_p50) = (percentile(&mut init, 0.5), percentile(&mut floor, 0.5));
    rows.push(Row {
        figure: "cold start: spawn to initialize reply (median)".into(),
        value: ms(init_p50),
        floor: format!("{} (fork+exec /bin/true)", ms(floor_p50)),
        ratio: format!("{:.1}x", init_p50.as_secs_f64() / floor_p50.as_secs_f64()),
        target: "<= 5 ms",
    });
    rows.push(row(
        "first tools/list after initialize (median)",
        ms(percentile(&mut list, 0.5)),
        "-",
    ));
    rss.sort();
    rows.push(row(
        "server RSS after initialize (median)",
        mib(rss[rss.len() / 2]),
        "<= 8 MiB",
    ));
    Ok(())
}

fn tools_list(sizes: &Sizes, rows: &mut Vec<Row>) -> anyhow::Result<()> {
    let scene = Scene::new()?;
    let mut server = scene.server(4)?;
    server.initialize()?;
    let mut samples = Vec::new();
    for _ in 0..sizes.list_calls {
        let t = Instant::now();
        server.request("tools/list", json!({}))?;
        samples.push(t.elapsed());
    }
    rows.push(row(
        format!("tools/list latency p50 / p99 ({} calls)", sizes.list_calls),
        format!(
            "{} / {}",
            ms(percentile(&mut samples, 0.5)),
            ms(percentile(&mut samples, 0.99))
        ),
        "-",
    ));
    Ok(())
}

/// Starts the fake agent directly, as a server that only spawns would: the floor of a start.
fn spawn_agent(scene: &Scene, prompt: &str) -> anyhow::Result<Child> {
    let mut child = Command::new(workspace_bin("fake-claude"))
        .args([
            "-p",
            "--output-format",
            "stream-json",
            "--verbose",
            "--dangerously-skip-permissions",
        ])
        .env("IS_SANDBOX", "1")
        .env("CLAUDE_CONFIG_DIR", scene.path("claude"))
        .current_dir(scene.path("work"))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()?;
    child
        .stdin
        .take()
        .map(|mut s| s.write_all(prompt.as_bytes()));
    Ok(child)
}

/// CPU time (user + system, own and waited-for children) of a process, in clock ticks.
fn cpu_ticks_with_children(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            let rest = s.rsplit_once(')')?.1.to_owned();
            let fields: Vec<u64> = rest
                .split_whitespace()
                .skip(11)
                .take(4)
                .map(|f| f.parse().unwrap_or(0))
                .collect();
            Some(fields.iter().sum())
        })
        .unwrap_or(0)
}

/// Waits (with a deadline) until a process has no children left: every runner reaped.
fn until_childless(pid: u32) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let tasks = std::fs::read_dir(format!("/proc/{pid}/task"))?;
        let children: usize = tasks
            .flatten()
            .map(|t| {
                std::fs::read_to_string(t.path().join("children"))
                    .map(|c| c.split_whitespace().count())
                    .unwrap_or(0)
            })
            .sum();
        if children == 0 {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the runners did not all exit");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `n` starts through the server, `gap` apart; the per-start latencies, the task ids, and the
/// CPU the server and its runners (agents included) used until all of them were reaped.
fn timed_starts(
    scene: &Scene,
    prompt: &str,
    n: usize,
    gap: Duration,
) -> anyhow::Result<(Vec<Duration>, u64)> {
    let mut server = scene.server(8)?;
    server.initialize()?;
    let pid = server.child.id();
    let before = cpu_ticks_with_children(pid as i32);
    let mut samples = Vec::new();
    let mut ids = Vec::new();
    for _ in 0..n {
        std::thread::sleep(gap);
        let t = Instant::now();
        let task = server.call("start_cc_task_async", json!({"prompt": prompt}))?;
        samples.push(t.elapsed());
        ids.push(task["id"].as_str().unwrap_or_default().to_owned());
    }
    server.wait_all(&ids)?;
    until_childless(pid)?;
    Ok((samples, cpu_ticks_with_children(pid as i32) - before))
}

/// The same `n` agents spawned directly, `gap` apart: the spawn latencies and the agents' CPU.
fn timed_direct_spawns(
    scene: &Scene,
    prompt: &str,
    n: usize,
    gap: Duration,
) -> anyhow::Result<(Vec<Duration>, u64)> {
    let me = std::process::id() as i32;
    let before = cpu_ticks_with_children(me);
    let mut samples = Vec::new();
    let mut children = Vec::new();
    for _ in 0..n {
        std::thread::sleep(gap);
        let t = Instant::now();
        children.push(spawn_agent(scene, prompt)?);
        samples.push(t.elapsed());
    }
    for mut child in children {
        child.wait()?;
    }
    // Our own CPU counts too, but the bench does next to nothing while it waits.
    Ok((samples, cpu_ticks_with_children(me) - before))
}

fn start_latency(sizes: &Sizes, rows: &mut Vec<Row>) -> anyhow::Result<()> {
    for disk in Disk::BOTH {
        let runs = [
            (Agent::NearFree, sizes.starts, Duration::ZERO),
            (Agent::Hungry, sizes.starts, Duration::ZERO),
            (
                Agent::NearFree,
                sizes.spaced_starts,
                Duration::from_millis(100),
            ),
        ];
        for (agent, n, gap) in runs {
            let prompt = agent.prompt(0.0);
            let scene = Scene::on(disk)?;
            let (mut floor, floor_cpu) = timed_direct_spawns(&scene, &prompt, n, gap)?;
            let (mut samples, cpu) = timed_starts(&scene, &prompt, n, gap)?;
            let (p50, p99, floor_p50) = (
                percentile(&mut samples, 0.5),
                percentile(&mut samples, 0.99),
                percentile(&mut floor, 0.5),
            );
            let spacing = if gap.is_zero() {
                "back to back".to_owned()
            } else {
                format!("{} ms apart", gap.as_millis())
            };
            rows.push(Row {
                figure: format!(
                    "start_cc_task_async p50 / p99, {n} {spacing}, {}, on {}",
                    agent.name(),
                    disk.name()
                ),
                value: format!("{} / {}", ms(p50), ms(p99)),
                floor: format!("{} (spawn the agent directly)", ms(floor_p50)),
                ratio: format!("{:.2}x", p50.as_secs_f64() / floor_p50.as_secs_f64()),
                target: match (agent, gap.is_zero()) {
                    (_, false) => "p50 <= 2 ms",
                    (Agent::Hungry, true) => "<= 1.2x floor",
                    (Agent::NearFree, true) => "-",
                },
            });
            if matches!(agent, Agent::NearFree) && gap.is_zero() {
                // What ccmp spends per task besides the agent: server, runner, trampoline.
                let per_task = |ticks: u64| ticks as f64 / 100.0 / n as f64;
                rows.push(Row {
                    figure: format!(
                        "CPU per task outside the agent (server + runner, {n} tasks), on {}",
                        disk.name()
                    ),
                    value: format!(
                        "{:.1} ms",
                        (per_task(cpu) - per_task(floor_cpu)).max(0.0) * 1000.0
                    ),
                    floor: format!("{:.1} ms (the agent itself)", per_task(floor_cpu) * 1000.0),
                    ratio: "-".into(),
                    target: "half of round one's ~10 ms",
                });
            }
        }
    }
    Ok(())
}

fn fan_out(sizes: &Sizes, rows: &mut Vec<Row>) -> anyhow::Result<()> {
    let runs = [
        (Agent::NearFree, Disk::Default),
        (Agent::Hungry, Disk::Default),
        (Agent::Hungry, Disk::Tmpfs),
    ];
    for (agent, disk) in runs {
        let prompt = agent.prompt(sizes.fan_out_secs);
        // Floor: the same agents, spawned directly and waited for.
        let scene = Scene::on(disk)?;
        let t = Instant::now();
        let children: Vec<Child> = (0..sizes.fan_out)
            .map(|_| spawn_agent(&scene, &prompt))
            .collect::<anyhow::Result<_>>()?;
        for mut child in children {
            child.wait()?;
        }
        let floor = t.elapsed();

        let scene = Scene::on(disk)?;
        let mut server = scene.server(sizes.fan_out)?;
        server.initialize()?;
        let t = Instant::now();
        let ids = server.start_all(&prompt, sizes.fan_out)?;
        server.wait_all(&ids)?;
        let value = t.elapsed();
        rows.push(Row {
            figure: format!(
                "fan-out: {} tasks of {} s, {}, on {}, until wait_for_tasks returns",
                sizes.fan_out,
                sizes.fan_out_secs,
                agent.name(),
                disk.name()
            ),
            value: ms(value),
            floor: format!("{} (same agents spawned directly)", ms(floor)),
            ratio: format!(
                "{:+.1}%",
                (value.as_secs_f64() / floor.as_secs_f64() - 1.0) * 100.0
            ),
            target: "within 5% of the floor",
        });
    }
    Ok(())
}

/// What a new file costs on each disk right now: the median of creating 200 empty files in a
/// fresh directory (without and with an fsync of the file).
fn file_probe(_sizes: &Sizes, rows: &mut Vec<Row>) -> anyhow::Result<()> {
    for disk in Disk::BOTH {
        let dir = disk.tempdir()?;
        let (mut plain, mut synced) = (Vec::new(), Vec::new());
        for i in 0..200 {
            let t = Instant::now();
            std::fs::File::create(dir.path().join(format!("p{i}")))?;
            plain.push(t.elapsed());
            let t = Instant::now();
            std::fs::File::create(dir.path().join(format!("s{i}")))?.sync_all()?;
            synced.push(t.elapsed());
        }
        rows.push(row(
            format!(
                "probe: a new empty file / with fsync, median of 200, on {}",
                disk.name()
            ),
            format!(
                "{:.0} µs / {:.0} µs",
                percentile(&mut plain, 0.5).as_secs_f64() * 1e6,
                percentile(&mut synced, 0.5).as_secs_f64() * 1e6
            ),
            "(context)",
        ));
    }
    Ok(())
}

/// Fills a store with `n` finished tasks, written through the store itself.
fn populate(state: &Path, work: &Path, n: usize) -> anyhow::Result<Vec<String>> {
    let store = FsStore::open(state)?;
    let spec = TaskRequest::new("Generate unit tests for utils.py")
        .working_dir(work)
        .validate(&"true".into())?;
    let threads = 8;
    let ids = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let store = store.clone();
                let spec = spec.clone();
                scope.spawn(move || -> anyhow::Result<Vec<String>> {
                    let mut ids = Vec::new();
                    for _ in (t..n).step_by(threads) {
                        let mut record = TaskRecord::new(spec.clone());
                        record.finish(
                            TaskStatus::Succeeded,
                            ccmp_core::Outcome {
                                result: Some("Added 12 tests; all pass.".into()),
                                exit_code: Some(0),
                                num_turns: Some(7),
                                cost_usd: Some(0.21),
                                ..Default::default()
                            },
                        );
                        store.create(&record)?;
                        ids.push(record.id.short());
                    }
                    Ok(ids)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("populate thread"))
            .collect::<anyhow::Result<Vec<_>>>()
    })?;
    Ok(ids.into_iter().flatten().collect())
}

fn status_and_list(sizes: &Sizes, rows: &mut Vec<Row>) -> anyhow::Result<u64> {
    let mut server_rss = 0;
    for n in sizes.store_sizes {
        let scene = Scene::new()?;
        let ids = populate(&scene.path("state"), &scene.path("work"), n)?;
        let mut server = scene.server(4)?;
        server.initialize()?;
        let mut status = Vec::new();
        for i in 0..200 {
            let id = &ids[(i * 7919) % ids.len()];
            let t = Instant::now();
            server.call("check_task_status", json!({"task_id": id}))?;
            status.push(t.elapsed());
        }
        let (mut list, mut active) = (Vec::new(), Vec::new());
        let mut reply_bytes = 0;
        for _ in 0..20 {
            let t = Instant::now();
            let reply = server.call("list_active_tasks", json!({"include_finished": true}))?;
            list.push(t.elapsed());
            reply_bytes = reply.to_string().len();
            let t = Instant::now();
            server.call("list_active_tasks", json!({}))?;
            active.push(t.elapsed());
        }
        rows.push(row(
            format!("check_task_status p50 / p99, {n} tasks in the store"),
            format!(
                "{} / {}",
                ms(percentile(&mut status, 0.5)),
                ms(percentile(&mut status, 0.99))
            ),
            if n <= 1_000 {
                "p50 <= 0.5 ms"
            } else {
                "p50 <= 1 ms"
            },
        ));
        rows.push(row(
            format!(
                "list_active_tasks(include_finished) p50 / p99, {n} tasks ({reply_bytes} B reply)"
            ),
            format!(
                "{} / {}",
                ms(percentile(&mut list, 0.5)),
                ms(percentile(&mut list, 0.99))
            ),
            if n <= 1_000 {
                "<= 5 ms, reply bounded"
            } else {
                "reply bounded"
            },
        ));
        rows.push(row(
            format!("list_active_tasks (active only) p50 / p99, {n} tasks"),
            format!(
                "{} / {}",
                ms(percentile(&mut active, 0.5)),
                ms(percentile(&mut active, 0.99))
            ),
            "-",
        ));
        server_rss = rss_kib(server.child.id());
    }
    Ok(server_rss)
}

fn memory_and_idle(sizes: &Sizes, rows: &mut Vec<Row>, server_rss: u64) -> anyhow::Result<()> {
    rows.push(row(
        format!(
            "server RSS after the {}-task store figures",
            sizes.store_sizes[2]
        ),
        mib(server_rss),
        "-",
    ));
    let scene = Scene::new()?;
    let tasks = 50;
    let mut server = scene.server(tasks)?;
    server.initialize()?;
    let prompt = format!("FAKE_SLEEP={}", sizes.idle_secs + 30);
    let ids = server.start_all(&prompt, tasks)?;
    let store = FsStore::open(scene.path("state"))?;
    let runners: Vec<i32> = all_running(&store, &ids)?
        .iter()
        .filter_map(|r| r.runner.as_ref().map(|p| p.pid))
        .collect();
    let median = |mut values: Vec<u64>| -> u64 {
        values.sort();
        values[values.len() / 2]
    };
    let rss = median(runners.iter().map(|pid| rss_kib(*pid as u32)).collect());
    let private = median(
        runners
            .iter()
            .map(|pid| private_and_pss_kib(*pid as u32).0)
            .collect(),
    );
    let pss = median(
        runners
            .iter()
            .map(|pid| private_and_pss_kib(*pid as u32).1)
            .collect(),
    );
    rows.push(row(
        "runner memory, median of 50 running tasks: private / PSS / RSS (RSS counts the shared binary)",
        format!("{} / {} / {}", mib(private), mib(pss), mib(rss)),
        "<= 2 MiB",
    ));
    let server_pid = server.child.id() as i32;
    let all: Vec<i32> = std::iter::once(server_pid)
        .chain(runners.iter().copied())
        .collect();
    let before: u64 = all.iter().map(|p| cpu_ticks(*p)).sum();
    std::thread::sleep(Duration::from_secs(sizes.idle_secs));
    let after: u64 = all.iter().map(|p| cpu_ticks(*p)).sum();
    let ticks_per_sec = 100.0;
    rows.push(row(
        format!(
            "idle CPU of the server and 50 runners over {} s",
            sizes.idle_secs
        ),
        format!("{:.2} CPU-s", (after - before) as f64 / ticks_per_sec),
        "~0",
    ));
    for id in &ids {
        let _ = server.call("cancel_task", json!({"task_id": id}));
    }
    Ok(())
}

fn queue_latency(sizes: &Sizes, rows: &mut Vec<Row>) -> anyhow::Result<()> {
    let scene = Scene::new()?;
    let events = scene.path("events.log");
    let mut server = scene.server(2)?;
    server.initialize()?;
    let prompt = format!("FAKE_SLEEP=0.2 FAKE_RECORD={}", events.display());
    let ids = server.start_all(&prompt, sizes.queue_tasks)?;
    server.wait_all(&ids)?;
    let text = std::fs::read_to_string(&events)?;
    let mut lines: Vec<(u128, bool)> = text
        .lines()
        .filter_map(|l| {
            let parts: Vec<&str> = l.split(' ').collect();
            Some((parts.get(2)?.parse().ok()?, *parts.first()? == "start"))
        })
        .collect();
    lines.sort();
    // Each start after the first two waited for a slot: the gap since the latest end before it.
    let mut gaps = Vec::new();
    let mut last_end: Option<u128> = None;
    let mut starts = 0;
    for (time, is_start) in lines {
        if is_start {
            starts += 1;
            if starts > 2
                && let Some(end) = last_end
            {
                gaps.push(Duration::from_nanos((time.saturating_sub(end)) as u64));
            }
        } else {
            last_end = Some(time);
        }
    }
    if gaps.is_empty() {
        bail!("no queued starts were recorded");
    }
    rows.push(row(
        format!(
            "queue latency: slot free to next agent start, p50 / p99 (max_parallel 2, {} tasks)",
            sizes.queue_tasks
        ),
        format!(
            "{} / {}",
            ms(percentile(&mut gaps, 0.5)),
            ms(percentile(&mut gaps, 0.99))
        ),
        "p50 <= 100 ms",
    ));
    Ok(())
}

/// A long line of tasks waiting for one slot: what it costs while nothing moves.
fn waiting_line(sizes: &Sizes, rows: &mut Vec<Row>) -> anyhow::Result<()> {
    let scene = Scene::new()?;
    let mut server = scene.server(1)?;
    server.initialize()?;
    let hold = format!("FAKE_SLEEP={}", sizes.idle_secs + 600);
    let ids: Vec<String> = std::iter::once(hold.as_str())
        .chain(std::iter::repeat_n("FAKE_SLEEP=0", sizes.waiting_tasks))
        .map(|prompt| {
            server
                .call("start_cc_task_async", json!({"prompt": prompt}))
                .map(|t| t["id"].as_str().unwrap_or_default().to_owned())
        })
        .collect::<anyhow::Result<_>>()?;
    let store = FsStore::open(scene.path("state"))?;
    let runners: Vec<i32> = ids
        .iter()
        .filter_map(|id| store.resolve(id).ok().and_then(|id| store.load(&id).ok()))
        .filter_map(|r| r.runner.map(|p| p.pid))
        .collect();
    if runners.len() != ids.len() {
        bail!("only {} of {} runners registered", runners.len(), ids.len());
    }
    // Let the line settle (every waiter has looked once and gone to sleep).
    std::thread::sleep(Duration::from_secs(2));
    let all: Vec<i32> = std::iter::once(server.child.id() as i32)
        .chain(runners.iter().copied())
        .collect();
    let before: u64 = all.iter().map(|p| cpu_ticks(*p)).sum();
    std::thread::sleep(Duration::from_secs(sizes.idle_secs));
    let after: u64 = all.iter().map(|p| cpu_ticks(*p)).sum();
    rows.push(row(
        format!(
            "CPU of {} tasks waiting for one slot (and the server) over {} s",
            sizes.waiting_tasks, sizes.idle_secs
        ),
        format!("{:.2} CPU-s", (after - before) as f64 / 100.0),
        "~0",
    ));
    for id in ids.iter().rev() {
        let _ = server.call("cancel_task", json!({"task_id": id}));
    }
    Ok(())
}

/// A process's peak resident memory so far (VmHWM), in KiB.
fn peak_rss_kib(pid: i32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Runs one task through `server` and returns its runner's peak RSS, sampled until it exits.
fn runner_peak(server: &mut Server, store: &FsStore, prompt: &str) -> anyhow::Result<u64> {
    let task = server.call("start_cc_task_async", json!({"prompt": prompt}))?;
    let id = store.resolve(task["id"].as_str().unwrap_or_default())?;
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut peak = 0;
    let mut pid = None;
    loop {
        if pid.is_none() {
            pid = store.load(&id)?.runner.map(|r| r.pid);
        }
        match pid.and_then(peak_rss_kib) {
            Some(kib) => peak = peak.max(kib),
            None if pid.is_some() => break,
            None => {}
        }
        if Instant::now() > deadline {
            bail!("the task did not end");
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let record = store.load(&id)?;
    if record.status != TaskStatus::Succeeded {
        bail!("the task ended {}", record.status);
    }
    Ok(peak)
}

/// An agent whose result line is 50 MiB: what the runner's memory does with it.
fn long_line(_sizes: &Sizes, rows: &mut Vec<Row>) -> anyhow::Result<()> {
    let scene = Scene::new()?;
    let mut server = scene.server(1)?;
    server.initialize()?;
    let store = FsStore::open(scene.path("state"))?;
    let short = runner_peak(&mut server, &store, "FAKE_SLEEP=0")?;
    let long = runner_peak(&mut server, &store, "FAKE_HUGE=52428800")?;
    rows.push(Row {
        figure: "runner peak RSS with a 50 MiB result line (VmHWM, sampled every ms)".into(),
        value: mib(long),
        floor: format!("{} (a short result)", mib(short)),
        ratio: format!("{:.1}x", long as f64 / short.max(1) as f64),
        target: "bounded, not ∝ line",
    });
    Ok(())
}

/// One figure's measurement.
type Step = fn(&Sizes, &mut Vec<Row>) -> anyhow::Result<()>;

/// `ccmp dashboard` on a state dir, with its address and cookie; killed when dropped.
struct DashboardProcess {
    child: Child,
    addr: String,
    cookie: String,
}

impl DashboardProcess {
    fn start(scene: &Scene) -> anyhow::Result<Self> {
        let mut child = Command::new(workspace_bin("ccmp"))
            .arg("dashboard")
            .env("CCMP_STATE_DIR", scene.path("state"))
            .env("CCMP_CLAUDE_BIN", workspace_bin("fake-claude"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().context("stdout")?).read_line(&mut line)?;
        let rest = line.trim().strip_prefix("http://").context("a URL")?;
        let (addr, token) = rest.split_once("/?token=").context("a token")?;
        let port = addr.rsplit(':').next().unwrap_or_default();
        Ok(Self {
            cookie: format!("ccmp_dashboard_{port}={token}"),
            addr: addr.to_owned(),
            child,
        })
    }

    /// GETs `path`; returns the body's size.
    fn get(&self, path: &str) -> anyhow::Result<usize> {
        use std::io::Read;
        let mut stream = std::net::TcpStream::connect(&self.addr)?;
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: {}\r\nCookie: {}\r\nConnection: close\r\n\r\n",
            self.addr, self.cookie
        )?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response)?;
        if !response.starts_with(b"HTTP/1.1 200") {
            bail!(
                "{path}: {}",
                String::from_utf8_lossy(&response[..response.len().min(200)])
            );
        }
        Ok(response.len())
    }

    /// Opens a live stream and keeps it open (reading nothing) while the value lives.
    fn open_stream(&self, path: &str) -> anyhow::Result<std::net::TcpStream> {
        let mut stream = std::net::TcpStream::connect(&self.addr)?;
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: {}\r\nCookie: {}\r\n\r\n",
            self.addr, self.cookie
        )?;
        Ok(stream)
    }
}

impl Drop for DashboardProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn dashboard(sizes: &Sizes, rows: &mut Vec<Row>) -> anyhow::Result<()> {
    // The first page over a big store.
    let scene = Scene::new()?;
    let n = sizes.store_sizes[1];
    populate(&scene.path("state"), &scene.path("work"), n)?;
    let dashboard = DashboardProcess::start(&scene)?;
    let first = Instant::now();
    let bytes = dashboard.get("/")?;
    let first = first.elapsed();
    let mut samples: Vec<Duration> = (0..20)
        .map(|_| {
            let t = Instant::now();
            dashboard.get("/").map(|_| t.elapsed())
        })
        .collect::<anyhow::Result<_>>()?;
    rows.push(row(
        format!(
            "dashboard: tasks page with {n} tasks in the store, first / median of 20 ({bytes} B)"
        ),
        format!("{} / {}", ms(first), ms(percentile(&mut samples, 0.5))),
        "well under 1 s",
    ));
    drop(dashboard);
    // Idle: 50 running tasks, the tasks page and a task page open (their live streams).
    let scene = Scene::new()?;
    let tasks = 50;
    let mut server = scene.server(tasks)?;
    server.initialize()?;
    let prompt = format!("FAKE_SLEEP={}", sizes.idle_secs + 30);
    let ids = server.start_all(&prompt, tasks)?;
    all_running(&FsStore::open(scene.path("state"))?, &ids)?;
    let dashboard = DashboardProcess::start(&scene)?;
    let _table = dashboard.open_stream("/live/tasks")?;
    let _task = dashboard.open_stream(&format!("/live/task/{}", ids[0]))?;
    // Let the first renders go out, then measure.
    std::thread::sleep(Duration::from_secs(1));
    let pid = dashboard.child.id() as i32;
    let before = cpu_ticks(pid);
    std::thread::sleep(Duration::from_secs(sizes.idle_secs));
    let after = cpu_ticks(pid);
    rows.push(row(
        format!(
            "dashboard idle CPU with {tasks} running tasks and two live pages open, over {} s",
            sizes.idle_secs
        ),
        format!("{:.2} CPU-s", (after - before) as f64 / 100.0),
        "~0",
    ));
    for id in &ids {
        let _ = server.call("cancel_task", json!({"task_id": id}));
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let quick = std::env::args().any(|a| a == "--quick");
    let sizes = if quick { QUICK } else { FULL };
    let mut rows = Vec::new();
    let started = Instant::now();
    eprintln!(
        "ccmp-bench: binaries {}",
        workspace_bin("ccmp-mcp").display()
    );
    // `--only <name>`: run the figures whose step name contains <name> (the store figures
    // come with "status and list", whose server RSS the memory figure reports).
    let only: Option<String> = std::env::args().skip_while(|a| a != "--only").nth(1);
    let wanted = |name: &str| only.as_deref().is_none_or(|o| name.contains(o));
    let steps: [(&str, Step); 9] = [
        ("file probe", file_probe),
        ("cold start", cold_start),
        ("tools/list", tools_list),
        ("start latency", start_latency),
        ("fan-out", fan_out),
        ("queue latency", queue_latency),
        ("waiting line", waiting_line),
        ("long line", long_line),
        ("dashboard", dashboard),
    ];
    for (name, step) in steps.into_iter().filter(|(name, _)| wanted(name)) {
        eprintln!("ccmp-bench: {name}…");
        step(&sizes, &mut rows).with_context(|| format!("{name} failed"))?;
    }
    if wanted("status and list, memory and idle CPU") {
        eprintln!("ccmp-bench: status and list…");
        let server_rss = status_and_list(&sizes, &mut rows)?;
        eprintln!("ccmp-bench: memory and idle CPU ({} s)…", sizes.idle_secs);
        memory_and_idle(&sizes, &mut rows, server_rss)?;
    }

    let mut widths: HashMap<usize, usize> = HashMap::new();
    let table: Vec<[String; 5]> =
        std::iter::once(["figure", "value", "floor", "ratio", "target"].map(String::from))
            .chain(
                rows.into_iter()
                    .map(|r| [r.figure, r.value, r.floor, r.ratio, r.target.to_owned()]),
            )
            .collect();
    for cells in &table {
        for (i, cell) in cells.iter().enumerate() {
            let w = widths.entry(i).or_default();
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = std::io::stdout().lock();
    for (n, cells) in table.iter().enumerate() {
        let line: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[&i]))
            .collect();
        writeln!(out, "| {} |", line.join(" | "))?;
        if n == 0 {
            let rule: Vec<String> = (0..5).map(|i| "-".repeat(widths[&i])).collect();
            writeln!(out, "| {} |", rule.join(" | "))?;
        }
    }
    writeln!(
        out,
        "\nmeasured {} on {} CPUs in {:.0} s{}",
        chrono_free_date(),
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        started.elapsed().as_secs_f64(),
        if quick { " (--quick)" } else { "" }
    )?;
    Ok(())
}

/// Today's date from `date`, to stamp the table without another dependency.
fn chrono_free_date() -> String {
    Command::new("date")
        .arg("+%Y-%m-%d")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}
