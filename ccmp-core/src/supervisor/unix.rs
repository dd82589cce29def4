//! Linux process plumbing: group signals, the task-tree sweep, orphan reaping, and the
//! parent-death trampoline.
//!
//! A task's processes are found by the `CCMP_TASK_ID=<id>` entry every one of them inherits in
//! its environment. That reaches what a process-group signal cannot: Claude Code's Bash tool
//! runs commands in a session of their own. Matching on the marker is also an identity check:
//! a reused pid belongs to a process without the marker, so it is never touched.

use std::ffi::OsString;
use std::fs;
use std::io;
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitCode};
use std::time::Duration;

use rustix::process::{Pid, Signal, WaitOptions};

use crate::agent::TASK_ENV;
use crate::id::TaskId;
use crate::process_identity::proc_stat;

/// Hidden subcommand: set the parent-death signal, then exec the agent.
pub(crate) const EXEC_AGENT_CMD: &str = "__ccmp-exec-agent";

/// The small program that does only `__ccmp-exec-agent`, installed beside `ccmp` and `ccmp-mcp`.
pub const EXEC_AGENT_PROGRAM: &str = "ccmp-exec-agent";

/// What to start agents through: `ccmp-exec-agent` beside `trampoline` if it is there (it
/// starts in a fraction of the time the big binary takes to load and relocate), else
/// `trampoline` itself, which does the same.
pub(crate) fn agent_launcher(trampoline: &std::path::Path) -> std::path::PathBuf {
    trampoline
        .parent()
        .map(|dir| dir.join(EXEC_AGENT_PROGRAM))
        .filter(|small| small.is_file())
        .unwrap_or_else(|| trampoline.to_owned())
}

/// Writes a line to stderr, ignoring failure: `eprintln!` panics when stderr cannot be written,
/// and a runner's stderr is a log file on a disk that may be full.
pub(crate) fn say(message: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{message}");
}

/// Sends `signal` to process group `pgid`. `Ok(false)` if the group no longer exists.
pub(crate) fn signal_group(pgid: i32, signal: Signal) -> io::Result<bool> {
    let Some(pid) = Pid::from_raw(pgid) else {
        return Ok(false);
    };
    match rustix::process::kill_process_group(pid, signal) {
        Ok(()) => Ok(true),
        Err(rustix::io::Errno::SRCH) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Pids of live (non-zombie) processes whose environment carries this task's marker.
pub(crate) fn marked_processes(task: &TaskId) -> Vec<i32> {
    let me = rustix::process::getpid().as_raw_nonzero().get();
    let marker = format!("{TASK_ENV}={task}");
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(environ) = fs::read(format!("/proc/{pid}/environ")) else {
            continue;
        };
        if !environ
            .split(|b| *b == 0)
            .any(|var| var == marker.as_bytes())
        {
            continue;
        }
        if proc_stat(pid).is_ok_and(|st| st.state != 'Z') {
            found.push(pid);
        }
    }
    found
}

/// The environment variable that tells the exec trampoline which cgroup to enter.
pub(crate) const CGROUP_ENV: &str = "CCMP_AGENT_CGROUP";

/// Kills (SIGKILL) every process of the task's tree: all of its cgroup, if it has one and the
/// agent ran in it; else every process that carries its marker, repeating until none is left or
/// a few rounds have passed (a process may fork while being swept). Returns how many marked ones
/// were killed.
///
/// The marker scan reads the environment of every process on the machine, so it runs only where
/// it must: with the cgroup killed and empty, every process of the tree was born in it and is
/// gone (only one with the privilege to move itself to another cgroup could have left).
pub(crate) fn sweep_task(task: &TaskId, cgroup: Option<&std::path::Path>) -> usize {
    if let Some(dir) = cgroup {
        let entered = super::cgroup::was_used(dir);
        if super::cgroup::kill(dir) && entered {
            return 0;
        }
    }
    let mut killed = 0;
    for round in 0..20 {
        let pids = marked_processes(task);
        if pids.is_empty() {
            break;
        }
        for pid in pids {
            if let Some(pid) = Pid::from_raw(pid)
                && rustix::process::kill_process(pid, Signal::KILL).is_ok()
            {
                killed += 1;
            }
        }
        reap_children();
        std::thread::sleep(Duration::from_millis(5 * (round + 1)));
    }
    killed
}

/// Reaps every exited child without blocking (the runner is a child subreaper, so orphans of
/// the agent's tree become its children).
pub(crate) fn reap_children() {
    while let Ok(Some(_)) = rustix::process::waitpid(None, WaitOptions::NOHANG) {}
}

/// Makes the calling process a child subreaper, so that descendants orphaned by the agent are
/// reparented here and can be swept and reaped.
pub(crate) fn become_subreaper() -> io::Result<()> {
    rustix::process::set_child_subreaper(Some(rustix::process::getpid())).map_err(Into::into)
}

/// Leaves the caller's session, so that closing the frontend's terminal does not reach the
/// runner.
pub(crate) fn leave_session() {
    // EPERM means we already lead a group; that is fine for our purpose.
    let _ = rustix::process::setsid();
}

/// Body of the `__ccmp-exec-agent <parent-pid> <program> [args…]` trampoline: arrange for
/// SIGKILL when the runner dies (even by kill -9), then become the agent.
pub(crate) fn exec_agent(mut args: impl Iterator<Item = OsString>) -> ExitCode {
    let parent = args
        .next()
        .and_then(|p| p.to_str().and_then(|p| p.parse::<i32>().ok()));
    let Some(program) = args.next() else {
        say(format_args!(
            "ccmp: {EXEC_AGENT_CMD} needs a parent pid and a program"
        ));
        return ExitCode::from(2);
    };
    if let Err(e) = rustix::process::set_parent_process_death_signal(Some(Signal::KILL)) {
        say(format_args!(
            "ccmp: cannot set the parent-death signal: {e}"
        ));
        return ExitCode::from(126);
    }
    // The parent may have died before the death signal was armed.
    let parent_now = rustix::process::getppid().map(|p| p.as_raw_nonzero().get());
    if parent.is_none() || parent_now != parent {
        say(format_args!(
            "ccmp: the task runner exited before the agent started"
        ));
        return ExitCode::from(126);
    }
    // Enter the task's cgroup before becoming the agent: everything it starts is born inside.
    let mut agent = Command::new(&program);
    if let Some(dir) = std::env::var_os(CGROUP_ENV) {
        agent.env_remove(CGROUP_ENV);
        if let Err(e) = super::cgroup::enter(std::path::Path::new(&dir), std::process::id()) {
            say(format_args!(
                "ccmp: cannot enter the task's cgroup ({e}); only the marker sweep applies"
            ));
        }
    }
    let err = agent.args(args).exec();
    say(format_args!(
        "ccmp: cannot run the agent `{}`: {err}",
        program.to_string_lossy()
    ));
    ExitCode::from(127)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agents_start_through_the_small_program_beside_the_runner_where_there_is_one() {
        let dir = tempfile::tempdir().unwrap();
        let runner = dir.path().join("ccmp");
        std::fs::write(&runner, "").unwrap();
        assert_eq!(agent_launcher(&runner), runner);
        std::fs::write(dir.path().join(EXEC_AGENT_PROGRAM), "").unwrap();
        assert_eq!(agent_launcher(&runner), dir.path().join(EXEC_AGENT_PROGRAM));
    }
}
