//! Where everything lives under the state dir: every path ccmp uses is named here, once.
//!
//! The state dir is `$CCMP_STATE_DIR`, else the XDG state dir (`~/.local/state/ccmp`). Every
//! frontend on a machine that resolves the same state dir shares the same tasks, queue and slots.
//!
//! ```text
//! <state>/tasks/<2 hex>/<id>/   one dir per task (record, logs, runner.lock, cancel marker)
//! <state>/active/<id>           marker of a task that may be queued or running
//! <state>/queue/, queue.lock    the machine-wide queue; slots/<n>.lock, one per running agent
//! <state>/worktrees/<id>/       git worktrees of worktree-isolated tasks
//! <state>/events/                the event log (events.jsonl, events.1.jsonl) and notifiers' cursors
//! <state>/ccmp-mcp.log          the MCP server's log
//! ```

use std::path::{Path, PathBuf};

use etcetera::BaseStrategy;

use crate::error::StoreError;
use crate::id::TaskId;
use crate::store::LogStream;

/// The environment variable that overrides the state dir.
pub const STATE_DIR_ENV: &str = "CCMP_STATE_DIR";

/// The state dir: `$CCMP_STATE_DIR` if set and non-empty, else `$XDG_STATE_HOME/ccmp`, else
/// `~/.local/state/ccmp`.
pub fn default_state_dir() -> Result<PathBuf, StoreError> {
    if let Some(dir) = std::env::var_os(STATE_DIR_ENV).filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    let strategy = etcetera::choose_base_strategy().map_err(|_| StoreError::NoStateDir)?;
    strategy
        .state_dir()
        .map(|d| d.join("ccmp"))
        .ok_or(StoreError::NoStateDir)
}

/// The paths under one state dir.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateLayout {
    root: PathBuf,
    /// `<root>/tasks`, kept: task paths are built by the thousand when listing.
    tasks: PathBuf,
}

impl StateLayout {
    /// The layout under `root` (which should be canonical).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        let root = root.into();
        Self {
            tasks: root.join("tasks"),
            root,
        }
    }

    /// The state dir itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The dirs created when a store is opened.
    pub(crate) fn dirs(&self) -> [PathBuf; 9] {
        [
            self.events(),
            self.tasks(),
            self.active(),
            self.finished(),
            self.queue(),
            self.slots(),
            self.usage_limits(),
            self.parked(),
            self.spend(),
        ]
    }

    /// Where task dirs live (in shards).
    pub fn tasks(&self) -> PathBuf {
        self.tasks.clone()
    }

    /// The shard that holds a task's dir: tasks are spread over up to 256 dirs by the first two
    /// hex digits of their id, so that resolving a prefix reads one small dir.
    pub fn shard(&self, id_digits: &str) -> PathBuf {
        self.tasks.join(&id_digits[..2])
    }

    /// The dir that holds one task's record, logs and lock.
    pub fn task_dir(&self, id: &TaskId) -> PathBuf {
        self.in_task_dir(id, None)
    }

    /// A task's record.
    pub fn record(&self, id: &TaskId) -> PathBuf {
        self.in_task_dir(id, Some(RECORD))
    }

    /// `tasks/<xx>/<id>[/<file>]`, built in one allocation.
    fn in_task_dir(&self, id: &TaskId, file: Option<&str>) -> PathBuf {
        let name = id.simple();
        let mut path = PathBuf::with_capacity(self.tasks.as_os_str().len() + 64);
        path.push(&self.tasks);
        path.push(&name[..2]);
        path.push(&name);
        if let Some(file) = file {
            path.push(file);
        }
        path
    }

    /// One of a task's logs.
    pub fn log(&self, id: &TaskId, stream: LogStream) -> PathBuf {
        self.task_dir(id).join(stream.file_name())
    }

    /// The lock file a task's runner holds (flock) for as long as it lives.
    pub fn runner_lock(&self, id: &TaskId) -> PathBuf {
        self.task_dir(id).join("runner.lock")
    }

    /// The runner's own diagnostics (its stderr).
    pub fn runner_log(&self, id: &TaskId) -> PathBuf {
        self.task_dir(id).join("runner.log")
    }

    /// What a task's runner hands the Slurm job that runs its agent: the record and what to
    /// say to the agent (written before each submission).
    pub fn slurm_attempt(&self, id: &TaskId) -> PathBuf {
        self.task_dir(id).join("slurm-attempt.json")
    }

    /// How the agent's run in a Slurm job ended, written by the job for the task's runner.
    pub fn slurm_end(&self, id: &TaskId) -> PathBuf {
        self.task_dir(id).join("slurm-end.json")
    }

    /// The lock file the ccmp process inside a task's Slurm job holds (flock) while it runs.
    pub fn slurm_job_lock(&self, id: &TaskId) -> PathBuf {
        self.task_dir(id).join("slurm-job.lock")
    }

    /// The output of a task's Slurm jobs (what Slurm and ccmp's job-side process print).
    pub fn slurm_job_log(&self, id: &TaskId) -> PathBuf {
        self.task_dir(id).join("slurm-job.log")
    }

    /// The marker file that asks a task's runner to cancel.
    pub fn cancel_marker(&self, id: &TaskId) -> PathBuf {
        self.task_dir(id).join(CANCEL)
    }

    /// Where the markers of queued and running tasks live.
    pub fn active(&self) -> PathBuf {
        self.root.join("active")
    }

    /// The index of finished tasks: one empty file per task, named for its creation time, id,
    /// state and group.
    pub fn finished(&self) -> PathBuf {
        self.root.join("finished")
    }

    /// The marker that lists a task as queued or running.
    pub fn active_marker(&self, id: &TaskId) -> PathBuf {
        self.active().join(id.simple())
    }

    /// Where usage limits of logins are held until they reset (see
    /// [`usage_limit`](crate::usage_limit)).
    pub fn usage_limits(&self) -> PathBuf {
        self.root.join("usage-limits")
    }

    /// The hold of one login.
    pub fn usage_limit(&self, login: &str) -> PathBuf {
        self.usage_limits().join(format!("{login}.json"))
    }

    /// Markers of parked tasks, so that a frontend finds one whose runner died without reading
    /// every record.
    pub fn parked(&self) -> PathBuf {
        self.root.join("parked")
    }

    /// The marker of one parked task.
    pub fn parked_marker(&self, id: &TaskId) -> PathBuf {
        self.parked().join(&*id.simple().to_string())
    }

    /// The spend ledger, a file per day (see [`budget`](crate::budget)).
    pub fn spend(&self) -> PathBuf {
        self.root.join("spend")
    }

    /// One day's ledger.
    pub fn spend_day(&self, date: chrono::NaiveDate) -> PathBuf {
        self.spend().join(format!("{date}.json"))
    }

    /// Where waiting runners keep their places in line.
    pub fn queue(&self) -> PathBuf {
        self.root.join("queue")
    }

    /// The file a runner touches in the queue dir when it frees its slot, to wake the waiters.
    pub fn queue_poke(&self) -> PathBuf {
        self.queue().join(".poke")
    }

    /// The lock held while a runner looks at the line and takes a slot.
    pub fn queue_lock(&self) -> PathBuf {
        self.root.join("queue.lock")
    }

    /// The machine-wide settings (see [`Settings`](crate::settings::Settings)).
    pub fn settings(&self) -> PathBuf {
        self.root.join("settings.json")
    }

    /// The lock held while the settings are changed.
    pub fn settings_lock(&self) -> PathBuf {
        self.root.join("settings.lock")
    }

    /// The lock held while a follow-up finds the newest task of its session and joins after
    /// it, so that two follow-ups at once queue one behind the other.
    pub fn follow_up_lock(&self) -> PathBuf {
        self.root.join("follow-up.lock")
    }

    /// Where the slot locks live.
    pub fn slots(&self) -> PathBuf {
        self.root.join("slots")
    }

    /// Slot `n`: held (flock) by a runner while its agent runs.
    pub fn slot(&self, n: usize) -> PathBuf {
        self.slots().join(format!("{n}.lock"))
    }

    /// The slots of a group whose agents run elsewhere (a Slurm group): they count against the
    /// group's own limit only, not the machine's.
    pub fn group_slots(&self, group: &crate::group::GroupName) -> PathBuf {
        self.slots().join(group.as_str())
    }

    /// Slot `n` of a group whose agents run elsewhere.
    pub fn group_slot(&self, group: &crate::group::GroupName, n: usize) -> PathBuf {
        self.group_slots(group).join(format!("{n}.lock"))
    }

    /// Where the worktrees of worktree-isolated tasks live.
    pub fn worktrees(&self) -> PathBuf {
        self.root.join("worktrees")
    }

    /// Where the event log and the notifiers' state live (see [`events`](crate::events)).
    pub fn events(&self) -> PathBuf {
        self.root.join("events")
    }

    /// The event log, one JSON object per line.
    pub fn events_log(&self) -> PathBuf {
        self.events().join("events.jsonl")
    }

    /// The event log before its last rotation.
    pub fn events_rotated(&self) -> PathBuf {
        self.events().join("events.1.jsonl")
    }

    /// The lock held while an event is appended (and the log rotated).
    pub fn events_lock(&self) -> PathBuf {
        self.events().join("events.lock")
    }

    /// One notifier's delivery state (its cursor in the log, its last failure).
    pub fn notifier_state(&self, name: &str) -> PathBuf {
        self.events().join(format!("notifier-{name}.json"))
    }

    /// The lock held by the one process delivering to a notifier.
    pub fn notifier_lock(&self, name: &str) -> PathBuf {
        self.events().join(format!("notifier-{name}.lock"))
    }

    /// The deliverers' diagnostics: every failed delivery, with why.
    pub fn deliveries_log(&self) -> PathBuf {
        self.events().join("deliveries.log")
    }

    /// The MCP server's log.
    pub fn mcp_log(&self) -> PathBuf {
        self.root.join("ccmp-mcp.log")
    }
}

/// A task's record file, inside its dir.
pub(crate) const RECORD: &str = "record.json";
/// The cancel marker, inside a task dir.
const CANCEL: &str = "cancel";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_state_dir_is_private_to_the_user_not_a_shared_tmp() {
        // Only meaningful where the environment does not choose a dir itself.
        if std::env::var_os(STATE_DIR_ENV).is_some() || std::env::var_os("XDG_STATE_HOME").is_some()
        {
            return;
        }
        let dir = default_state_dir().unwrap();
        let home = std::path::PathBuf::from(std::env::var_os("HOME").unwrap());
        assert_eq!(dir, home.join(".local/state/ccmp"));
        assert!(!dir.starts_with("/tmp"));
    }
}
