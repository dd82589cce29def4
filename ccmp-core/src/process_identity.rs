//! Process identity: a pid is only meaningful together with its start time and boot.
//!
//! Pids are reused. Before ccmp signals a process it recorded earlier, it checks that the pid
//! still names the same process: same boot id, same start time (field 22 of
//! `/proc/<pid>/stat`). A mismatch means the recorded process is gone, and nothing is signalled.
//! Signals go through a pidfd opened *before* the check, so the process cannot be swapped
//! between the check and the signal.

use std::fs;
use std::io;
use std::sync::OnceLock;

use rustix::process::{Pid, PidfdFlags, Signal};
use serde::{Deserialize, Serialize};

/// A process as it was when recorded: pid, start time in clock ticks since boot, and boot id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessIdentity {
    /// Process id.
    pub pid: i32,
    /// Start time in clock ticks after boot (`/proc/<pid>/stat` field 22).
    pub start_ticks: u64,
    /// `/proc/sys/kernel/random/boot_id` when recorded.
    pub boot_id: String,
}

/// What `/proc/<pid>/stat` says about a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProcStat {
    pub state: char,
    pub pgid: i32,
    pub start_ticks: u64,
}

impl ProcessIdentity {
    /// The identity of the calling process.
    pub fn current() -> io::Result<Self> {
        Self::of(rustix::process::getpid().as_raw_nonzero().get())
    }

    /// The identity of a live process.
    pub fn of(pid: i32) -> io::Result<Self> {
        let stat = proc_stat(pid)?;
        Ok(Self {
            pid,
            start_ticks: stat.start_ticks,
            boot_id: boot_id()?.to_owned(),
        })
    }

    /// Whether this identity was recorded before the machine last booted.
    pub fn from_an_earlier_boot(&self) -> bool {
        boot_id().is_ok_and(|now| now != self.boot_id)
    }

    /// Whether this process still exists, is the same process, and has not exited (a zombie
    /// counts as exited).
    pub fn is_alive(&self) -> bool {
        self.matches_live().unwrap_or(false)
    }

    fn matches_live(&self) -> io::Result<bool> {
        if boot_id()? != self.boot_id {
            return Ok(false);
        }
        match proc_stat(self.pid) {
            Ok(stat) => Ok(stat.start_ticks == self.start_ticks && stat.state != 'Z'),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Sends `signal` to this process if, and only if, it is still the same process.
    ///
    /// Returns `Ok(false)` when the process is gone or the pid now names another process; in
    /// that case nothing was signalled.
    pub fn signal(&self, signal: Signal) -> io::Result<bool> {
        let Some(pid) = Pid::from_raw(self.pid) else {
            return Ok(false);
        };
        let pidfd = match rustix::process::pidfd_open(pid, PidfdFlags::empty()) {
            Ok(fd) => fd,
            Err(rustix::io::Errno::SRCH) => return Ok(false),
            Err(e) => return Err(e.into()),
        };
        // The pidfd pins the process: if the identity matches now, the signal reaches it.
        if !self.matches_live()? {
            return Ok(false);
        }
        match rustix::process::pidfd_send_signal(&pidfd, signal) {
            Ok(()) => Ok(true),
            Err(rustix::io::Errno::SRCH) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }
}

/// Reads state, process group and start time from `/proc/<pid>/stat`.
pub(crate) fn proc_stat(pid: i32) -> io::Result<ProcStat> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    parse_stat(&text)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "unparsable /proc stat"))
}

fn parse_stat(text: &str) -> Option<ProcStat> {
    // The command name (field 2) is in parentheses and may contain spaces or ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_ascii_whitespace().collect();
    // `rest` starts at field 3 (state); field N is at index N - 3.
    Some(ProcStat {
        state: fields.first()?.chars().next()?,
        pgid: fields.get(2)?.parse().ok()?,
        start_ticks: fields.get(19)?.parse().ok()?,
    })
}

/// The kernel's boot id, read once.
pub(crate) fn boot_id() -> io::Result<&'static str> {
    static BOOT_ID: OnceLock<String> = OnceLock::new();
    if let Some(id) = BOOT_ID.get() {
        return Ok(id);
    }
    let id = fs::read_to_string("/proc/sys/kernel/random/boot_id")?
        .trim()
        .to_owned();
    Ok(BOOT_ID.get_or_init(|| id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_odd_command_names() {
        let line = "1234 (we ird) cmd)) S 1 1200 1200 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10";
        let stat = parse_stat(line).unwrap();
        assert_eq!(
            stat,
            ProcStat {
                state: 'S',
                pgid: 1200,
                start_ticks: 987654
            }
        );
    }

    #[test]
    fn current_process_is_alive_and_a_changed_start_time_is_not() {
        let me = ProcessIdentity::current().unwrap();
        assert!(me.is_alive());
        let reused = ProcessIdentity {
            start_ticks: me.start_ticks + 1,
            ..me.clone()
        };
        assert!(!reused.is_alive());
        // A mismatched identity is never signalled (SIGTERM would end this test process).
        assert!(!reused.signal(Signal::TERM).unwrap());
        let rebooted = ProcessIdentity {
            boot_id: "other".into(),
            ..me
        };
        assert!(!rebooted.is_alive());
    }
}
