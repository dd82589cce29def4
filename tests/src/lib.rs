//! Shared helpers for ccmp's cross-crate tests: where the fixture binaries are, a hermetic
//! environment for the fake agent, polling with a deadline (never fixed sleeps), and a real
//! pseudo-terminal through tmux.

pub mod browser;
pub mod dashboard;
pub mod e2e;
pub mod mcp_client;
mod tmux;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub use tmux::Tmux;

/// A binary built from this workspace (`fake-claude`, `ccmp-test-host`, `ccmp`, `ccmp-mcp`),
/// found next to the running test executable's `deps/` directory.
///
/// Cargo builds a package's binaries only for that package's own integration tests, so a binary
/// of another package may be missing (for example under `cargo test -p ccmp-mcp`); it is then
/// built once, with the same cargo.
pub fn workspace_bin(name: &str) -> PathBuf {
    static BUILD: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe
        .parent()
        .and_then(|deps| {
            if deps.ends_with("deps") {
                deps.parent()
            } else {
                Some(deps)
            }
        })
        .expect("target dir");
    let path = dir.join(name);
    if !path.exists() {
        let _guard = BUILD.lock().unwrap_or_else(|e| e.into_inner());
        if !path.exists() {
            let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
            let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
                .parent()
                .expect("workspace root");
            let mut build = std::process::Command::new(cargo);
            build
                .current_dir(workspace)
                .args(["build", "--quiet", "--bin", name]);
            if dir.ends_with("release") {
                build.arg("--release");
            }
            let status = build.status().expect("run cargo build");
            assert!(status.success(), "cargo build --bin {name} failed");
        }
    }
    assert!(
        path.exists(),
        "{} is not built; run the tests through cargo",
        path.display()
    );
    path
}

/// Polls `check` every 20 ms until it returns `Some`, or panics after `limit` saying `what`.
pub fn poll<T>(limit: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether `pid` names a live process (a zombie counts as dead).
pub fn pid_alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z"),
        Err(_) => false,
    }
}

/// Pids the fake agent printed as `grandchild:<pid>` in a stderr log.
pub fn grandchild_pids(stderr: &str) -> Vec<i32> {
    stderr
        .lines()
        .filter_map(|l| l.strip_prefix("grandchild:"))
        .filter_map(|p| p.trim().parse().ok())
        .collect()
}

/// Pids of live processes whose environment carries `CCMP_TASK_ID=<id>`.
pub fn task_processes(task_id: &str) -> Vec<i32> {
    let marker = format!("CCMP_TASK_ID={task_id}");
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        if let Ok(env) = std::fs::read(format!("/proc/{pid}/environ"))
            && env.split(|b| *b == 0).any(|v| v == marker.as_bytes())
            && pid_alive(pid)
        {
            found.push(pid);
        }
    }
    found
}

/// A hermetic place for one test: a state dir, a working dir and a config dir for the agent.
#[derive(Debug)]
pub struct Sandbox {
    root: tempfile::TempDir,
}

impl Sandbox {
    /// A fresh sandbox.
    pub fn new() -> Self {
        let root = tempfile::tempdir().expect("tempdir");
        for sub in ["state", "work", "claude-config"] {
            std::fs::create_dir(root.path().join(sub)).expect("mkdir");
        }
        Self { root }
    }

    /// The ccmp state dir.
    pub fn state(&self) -> PathBuf {
        self.root.path().join("state")
    }

    /// The task working dir.
    pub fn work(&self) -> PathBuf {
        self.root.path().join("work")
    }

    /// A path inside the sandbox.
    pub fn path(&self, name: &str) -> PathBuf {
        self.root.path().join(name)
    }

    /// The root of the sandbox.
    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// The record file of a task, by its full id with or without dashes (reading it asks no
    /// status, so nothing is refreshed).
    pub fn record_path(&self, full: &str) -> PathBuf {
        let full = full.replace('-', "");
        self.state()
            .join("tasks")
            .join(&full[..2])
            .join(&full)
            .join("record.json")
    }

    /// The task's record as stored, by its full id.
    pub fn stored_record(&self, full: &str) -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(self.record_path(full)).expect("read the record"))
            .expect("the record is JSON")
    }

    /// A task request for the fake agent in this sandbox: its own config dir, and `IS_SANDBOX=1`
    /// because the tests run as root and the real CLI refuses skip-permissions as root without it.
    pub fn request(&self, prompt: &str) -> ccmp_core::TaskRequest {
        ccmp_core::TaskRequest::new(prompt)
            .program(workspace_bin("fake-claude"))
            .working_dir(self.work())
            .env("IS_SANDBOX", "1")
            .env(
                "CLAUDE_CONFIG_DIR",
                self.root.path().join("claude-config").display().to_string(),
            )
    }
}

impl Drop for Sandbox {
    /// A failed test must not leak agents: kill whatever still carries one of our task ids.
    fn drop(&mut self) {
        // Task dirs live in shards: tasks/<first two hex digits>/<id>.
        let shards = std::fs::read_dir(self.state().join("tasks"))
            .into_iter()
            .flatten()
            .flatten();
        let task_dirs = shards.flat_map(|shard| {
            std::fs::read_dir(shard.path())
                .into_iter()
                .flatten()
                .flatten()
        });
        for entry in task_dirs {
            let Some(id) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<uuid::Uuid>().ok())
            else {
                continue;
            };
            for pid in task_processes(&id.hyphenated().to_string()) {
                if let Some(pid) = rustix::process::Pid::from_raw(pid) {
                    let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
                }
            }
        }
    }
}

impl Default for Sandbox {
    fn default() -> Self {
        Self::new()
    }
}

/// Runs `git -C dir args…` with a fixed author, asserts it succeeded, and returns its stdout.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@t")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@t")
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("git prints UTF-8")
}

/// The most agents that ran at once, replayed from a `FAKE_RECORD` log of `start`/`end` lines,
/// and how many agents the log saw start.
pub fn peak_concurrency(events: &Path) -> (usize, usize) {
    let text = std::fs::read_to_string(events).unwrap_or_default();
    let mut marks: Vec<(u128, i64)> = text
        .lines()
        .filter_map(|l| {
            let parts: Vec<&str> = l.split(' ').collect();
            let at = parts.get(2)?.parse().ok()?;
            Some((at, if parts.first()? == &"start" { 1 } else { -1 }))
        })
        .collect();
    marks.sort();
    let starts = marks.iter().filter(|(_, d)| *d == 1).count();
    let peak = marks
        .iter()
        .scan(0i64, |n, (_, d)| {
            *n += d;
            Some(*n)
        })
        .max()
        .unwrap_or(0);
    (peak.max(0) as usize, starts)
}
