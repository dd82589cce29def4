//! A cgroup v2 per task, where the machine lets ccmp make one: the sweep that cannot miss.
//!
//! Finding a task's processes by the marker in their environment misses a process caught
//! inside `execve` (its environment reads empty) and one that hands itself on to a new child
//! faster than `/proc` can be scanned. A cgroup has neither gap: the agent is put in
//! `ccmp-task-<id>` before it runs (the exec trampoline moves itself there, then execs), every
//! descendant is born inside, and `cgroup.kill` kills them all at once, however fast they fork.
//!
//! The task's cgroup is made beside the runner's own cgroup when cgroup v2 is mounted and that
//! cgroup is writable (root, or a delegated systemd unit); otherwise nothing here applies and
//! the marker sweep is all there is. A runner started from inside a task (a nested task) moves
//! itself out of that task's cgroup first, so that the outer task's end does not kill it.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::id::TaskId;

/// Name prefix of a task's cgroup.
const PREFIX: &str = "ccmp-task-";
/// How long to wait for a killed cgroup to empty.
const EMPTY_WITHIN: Duration = Duration::from_secs(5);

/// The cgroup v2 this process is in, as a directory, if cgroup v2 is mounted.
fn own_cgroup() -> Option<PathBuf> {
    let cgroups = fs::read_to_string("/proc/self/cgroup").ok()?;
    let relative = cgroups.lines().find_map(|l| l.strip_prefix("0::"))?;
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").ok()?;
    // Fields: id parent major:minor root mount-point options… - fstype source options.
    let mount = mountinfo.lines().find_map(|line| {
        let (before, after) = line.split_once(" - ")?;
        (after.split_whitespace().next() == Some("cgroup2"))
            .then(|| before.split_whitespace().nth(4).map(PathBuf::from))?
    })?;
    Some(mount.join(relative.trim_start_matches('/')))
}

/// The cgroup runners and their tasks' cgroups live in: this process's own, above any task
/// cgroup it may be in.
fn base_cgroup() -> Option<PathBuf> {
    let mut dir = own_cgroup()?;
    while dir
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with(PREFIX))
    {
        dir.pop();
    }
    Some(dir)
}

/// Whether a process ever ran in the cgroup `dir` (its CPU time is above zero). A trampoline that
/// could not enter it leaves it unused, and then its emptiness says nothing about the tree.
pub(crate) fn was_used(dir: &Path) -> bool {
    fs::read_to_string(dir.join("cpu.stat"))
        .ok()
        .and_then(|stat| {
            stat.lines()
                .find_map(|l| l.strip_prefix("usage_usec "))
                .and_then(|v| v.trim().parse::<u64>().ok())
        })
        .is_some_and(|usec| usec > 0)
}

/// Moves process `pid` into the cgroup `dir`.
pub(crate) fn enter(dir: &Path, pid: u32) -> io::Result<()> {
    fs::write(dir.join("cgroup.procs"), pid.to_string())
}

/// Moves the calling runner out of a task's cgroup, if it was started from inside a task.
pub(crate) fn leave_task_cgroup() {
    let (Some(own), Some(base)) = (own_cgroup(), base_cgroup()) else {
        return;
    };
    if own != base
        && let Err(e) = enter(&base, std::process::id())
    {
        tracing::warn!(
            "cannot leave the outer task's cgroup ({e}); this task ends when that one does"
        );
    }
}

/// Set to `off` to run agents without a cgroup of their own, where one could be made (then the
/// marker sweep alone finds a task's processes).
pub(crate) const CGROUPS_ENV: &str = "CCMP_TASK_CGROUPS";

/// Makes the cgroup of task `task`'s agent; `None` where cgroup v2 is not writable.
pub(crate) fn create(task: &TaskId) -> Option<PathBuf> {
    if std::env::var_os(CGROUPS_ENV).is_some_and(|v| v == "off") {
        return None;
    }
    let dir = base_cgroup()?.join(format!("{PREFIX}{}", task.simple()));
    match fs::create_dir(&dir) {
        Ok(()) => Some(dir),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Some(dir),
        Err(e) => {
            tracing::debug!("no cgroup for the task ({e}); the marker sweep alone applies");
            None
        }
    }
}

/// Kills every process in a task's cgroup, waits until it is empty, and removes it. Returns
/// whether it is gone (or was never there).
pub(crate) fn kill(dir: &Path) -> bool {
    if !dir.is_dir() {
        return true;
    }
    // A name other than ours would be someone else's cgroup: never touch it.
    if !dir
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with(PREFIX))
    {
        return false;
    }
    if let Err(e) = fs::write(dir.join("cgroup.kill"), "1") {
        tracing::warn!("cannot kill the task's cgroup `{}`: {e}", dir.display());
    }
    let deadline = Instant::now() + EMPTY_WITHIN;
    loop {
        // Killed processes are reaped by their parents; the runner (a subreaper) reaps its own.
        super::unix::reap_children();
        let populated = fs::read_to_string(dir.join("cgroup.events"))
            .map(|events| events.lines().any(|l| l == "populated 1"))
            .unwrap_or(false);
        if !populated {
            break;
        }
        if Instant::now() > deadline {
            tracing::warn!("the task's cgroup `{}` did not empty", dir.display());
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    match fs::remove_dir(dir) {
        Ok(()) => true,
        Err(e) if e.kind() == io::ErrorKind::NotFound => true,
        Err(e) => {
            tracing::warn!("cannot remove the task's cgroup `{}`: {e}", dir.display());
            false
        }
    }
}
