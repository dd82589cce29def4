//! [`DetachedSupervisor`]: one small runner process per task, outliving the frontend.
//!
//! `launch` re-executes a binary (by default the frontend's own) with the hidden subcommand
//! `__ccmp-runner`. With [`LaunchMode::AwaitReady`] it returns once the runner has taken the task
//! (holds `runner.lock` and has recorded its identity) and said so on its stdout; with
//! [`LaunchMode::Watch`] it returns at once, and the reaper records the task `failed` if the
//! runner exits before taking it. The frontend's child handle goes to a reaper thread, so a
//! long-lived frontend collects its exited runners instead of keeping zombies. The
//! runner leaves the frontend's session, makes itself a child subreaper, waits for a slot, and
//! runs the agent through the `__ccmp-exec-agent` trampoline so that the agent dies if the runner
//! is killed.
//!
//! A task whose runner is gone without having written an outcome becomes `lost`; this is decided
//! by the runner's lock being free *and* its recorded identity no longer matching a live process.

use std::ffi::OsString;
use std::fs::TryLockError;
use std::io::{self, BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use rustix::process::Signal;

use super::runner::{READY, RUNNER_CMD};
use super::slurm::orphan::Orphan;
use super::{Supervisor, reaper, unix};
use crate::agent::TASK_ENV;
use crate::config::{Config, LaunchMode};
use crate::error::{StoreError, SupervisorError};
use crate::id::TaskId;
use crate::private_file;
use crate::store::{FsStore, TaskStore};
use crate::task::{Outcome, TaskRecord, TaskStatus};

/// Starts each task in its own detached runner process. Requires an [`FsStore`].
#[derive(Debug, Clone)]
pub struct DetachedSupervisor {
    store: FsStore,
    runner_program: PathBuf,
    config: Config,
}

impl DetachedSupervisor {
    /// A supervisor whose runners are this executable re-executed. The executable's `main` must
    /// call [`hidden_entry_point`](crate::hidden_entry_point) first.
    pub fn new(store: FsStore, config: Config) -> Result<Self, SupervisorError> {
        let exe = std::env::current_exe().map_err(|source| SupervisorError::SpawnRunner {
            program: PathBuf::from("<current executable>"),
            source,
        })?;
        Ok(Self::with_runner_program(store, config, exe))
    }

    /// A supervisor whose runners are `program`, which must dispatch the hidden subcommands
    /// through [`hidden_entry_point`](crate::hidden_entry_point).
    pub fn with_runner_program(
        store: FsStore,
        config: Config,
        program: impl Into<PathBuf>,
    ) -> Self {
        Self {
            store,
            runner_program: program.into(),
            config,
        }
    }

    /// The store this supervisor runs tasks from.
    pub fn store(&self) -> &FsStore {
        &self.store
    }

    fn runner_args(&self, id: &TaskId) -> Vec<OsString> {
        vec![
            self.store.root().as_os_str().to_owned(),
            id.simple().into(),
            // No limit: every runner obeys the machine-wide setting in the state dir.
            self.config.grace.as_millis().to_string().into(),
        ]
    }
}

impl Supervisor for DetachedSupervisor {
    fn launch(&self, record: &TaskRecord) -> Result<(), SupervisorError> {
        let spawn_err = |source| SupervisorError::SpawnRunner {
            program: self.runner_program.clone(),
            source,
        };
        let log = private_file::open_append(&self.store.layout().runner_log(&record.id))
            .map_err(spawn_err)?;
        let watch = self.config.launch == LaunchMode::Watch;
        let mut child = Command::new(&self.runner_program)
            .arg(RUNNER_CMD)
            .args(self.runner_args(&record.id))
            // A frontend running inside a task (an agent's `ccmp start`, a ccmp-mcp loaded by a
            // task's Claude Code) carries that task's marker; its runner belongs to its own task
            // and must not be swept when the outer one ends. Its agent gets its own marker.
            .env_remove(TASK_ENV)
            .stdin(Stdio::null())
            .stdout(if watch { Stdio::null() } else { Stdio::piped() })
            .stderr(log)
            .spawn()
            .map_err(spawn_err)?;
        if watch {
            let (store, id, program) = (self.store.clone(), record.id, self.runner_program.clone());
            reaper::adopt_watched(child, move |status| {
                runner_exited(&store, &id, &program, status);
            });
            return Ok(());
        }
        // The runner says "ready" once it holds the task's lock and has recorded itself.
        let mut line = String::new();
        let ready = child
            .stdout
            .take()
            .map(|out| BufReader::new(out).read_line(&mut line))
            .is_some_and(|r| r.is_ok() && line.trim() == READY);
        if ready {
            reaper::adopt(child);
            return Ok(());
        }
        let status = child.wait().map_err(spawn_err)?;
        Err(SupervisorError::RunnerFailed {
            program: self.runner_program.clone(),
            reason: failure_reason(&self.store, &record.id, &self.runner_program, status),
        })
    }

    fn cancel(&self, record: &TaskRecord) -> Result<(), SupervisorError> {
        let marker = self.store.layout().cancel_marker(&record.id);
        crate::store::write_atomic(&marker, chrono::Utc::now().to_rfc3339().as_bytes())
            .map_err(|e| StoreError::write(marker, e))?;
        // A runner that records itself after this sees the marker (it looks once it has). One
        // that recorded itself since `record` was read would not look again: read it anew, now
        // that the marker is there. (A watched start returns before its runner records itself,
        // so a cancel right after one lands here.)
        let runner = match &record.runner {
            Some(runner) => Some(runner.clone()),
            None => self.store.load(&record.id).ok().and_then(|r| r.runner),
        };
        if let Some(runner) = &runner
            && record.slurm.is_some()
            && !runner.is_alive()
        {
            // A Slurm task whose runner is gone: its job may still run on the cluster.
            let record = self.store.load(&record.id)?;
            return super::slurm::orphan::cancel(&record);
        }
        if let Some(runner) = &runner {
            runner
                .signal(Signal::TERM)
                .map_err(|source| SupervisorError::Signal {
                    pid: runner.pid,
                    source,
                })?;
        }
        Ok(())
    }

    fn refresh(&self, record: TaskRecord) -> Result<TaskRecord, SupervisorError> {
        let record = refresh(&self.store, record)?;
        if record.status == TaskStatus::Parked {
            return self.take_up(record);
        }
        Ok(record)
    }
}

impl DetachedSupervisor {
    /// Starts a new runner for a parked task whose runner died (killed, or the machine
    /// rebooted): a task that waits for a usage limit to reset is not lost for waiting. The
    /// runner lock, and the record naming this process as the new runner's creator, make sure
    /// that of several frontends looking at once only one takes it up.
    fn take_up(&self, record: TaskRecord) -> Result<TaskRecord, SupervisorError> {
        let lock_path = self.store.layout().runner_lock(&record.id);
        let lock =
            private_file::open_lock(&lock_path).map_err(|e| StoreError::read(&lock_path, e))?;
        if lock.try_lock().is_err() {
            return Ok(record);
        }
        let mut record = self.store.load(&record.id)?;
        let orphaned = record.status == TaskStatus::Parked
            && record.runner.as_ref().is_none_or(|r| !r.is_alive())
            && (record.runner.is_some() || record.creator.as_ref().is_none_or(|c| !c.is_alive()));
        if !orphaned {
            return Ok(record);
        }
        record.runner = None;
        record.creator = crate::process_identity::ProcessIdentity::current().ok();
        record.progress = Some(match record.parked_until {
            Some(until) => format!(
                "parked on a usage limit until {} UTC; its runner was gone and a new one took it up",
                until.format("%H:%M")
            ),
            None => "parked; its runner was gone and a new one took it up".to_owned(),
        });
        self.store.save(&record)?;
        drop(lock);
        self.launch(&record)?;
        Ok(self.store.load(&record.id)?)
    }

    /// Takes up every parked task whose runner died (starts a new runner for it); each is
    /// found by its marker in `<state>/parked/`, so this costs one directory read when there
    /// are none.
    pub fn take_up_parked(&self) {
        let Ok(entries) = std::fs::read_dir(self.store.layout().parked()) else {
            return;
        };
        for entry in entries.flatten() {
            let Some(id) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<TaskId>().ok())
            else {
                continue;
            };
            let live = match self.store.load(&id) {
                Ok(record) => match self.refresh(record) {
                    Ok(record) => !record.status.is_terminal(),
                    Err(e) => {
                        tracing::warn!(task = %id.short(), "could not take up a parked task: {e:#}");
                        true
                    }
                },
                Err(_) => false,
            };
            if !live {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
}

/// How long the reaper waits for a task's runner lock held by someone else before it leaves the
/// task to them.
const RUNNER_LOCK_PATIENCE: std::time::Duration = std::time::Duration::from_secs(2);

/// Why a runner exited without taking its task: the last line of its log, or its exit status.
fn failure_reason(
    store: &FsStore,
    id: &TaskId,
    program: &std::path::Path,
    status: std::process::ExitStatus,
) -> String {
    let log = private_file::read(&store.layout().runner_log(id))
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .unwrap_or_default();
    log.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .map(str::to_owned)
        .unwrap_or_else(|| {
            format!(
                "it exited with {status} without taking the task; is `{}` a ccmp binary?",
                program.display()
            )
        })
}

/// Called by the reaper when a runner launched with [`LaunchMode::Watch`] has exited. A runner
/// that exits 0 did its part (the task ended, or waits for an approval or a usage limit with no
/// runner). One that failed or was killed while the task is still queued with no runner
/// recorded never took it: the task is `failed` with the last line of its log. One that had
/// taken it is judged as any other runner (its outcome is recorded, or it is `lost`).
fn runner_exited(
    store: &FsStore,
    id: &TaskId,
    program: &std::path::Path,
    status: std::process::ExitStatus,
) {
    if status.success() {
        return;
    }
    let settle = || -> Result<(), SupervisorError> {
        let lock_path = store.layout().runner_lock(id);
        // A reader checking the task holds the lock for a moment: wait it out. One that holds
        // it longer is a runner that took the task up: not ours to judge.
        let Some(lock) = private_file::lock_with_patience(&lock_path, RUNNER_LOCK_PATIENCE)
            .map_err(|e| StoreError::read(&lock_path, e))?
        else {
            return Ok(());
        };
        let mut record = store.load(id)?;
        if record.status.is_terminal() {
            return Ok(());
        }
        if record.runner.is_some() || record.status != TaskStatus::Queued {
            drop(lock);
            refresh(store, record)?;
            return Ok(());
        }
        let reason = failure_reason(store, id, program, status);
        record.finish(
            TaskStatus::Failed,
            Outcome::failure(format!("its runner could not start: {reason}")),
        );
        store.save(&record)?;
        Ok(())
    };
    if let Err(e) = settle() {
        tracing::warn!(task = %id.short(), "could not record how its runner exited: {e:#}");
    }
}

/// Checks a non-terminal record of a detached task against reality: a task whose runner is gone
/// without an outcome becomes `lost`, and its leftover processes are stopped.
pub(crate) fn refresh(store: &FsStore, record: TaskRecord) -> Result<TaskRecord, SupervisorError> {
    if record.status.is_terminal() {
        return Ok(record);
    }
    let lock_path = store.layout().runner_lock(&record.id);
    let lock = match private_file::open_lock(&lock_path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(StoreError::NotFound {
                id: record.id.to_string(),
            }
            .into());
        }
        Err(e) => return Err(StoreError::read(lock_path, e).into()),
    };
    match lock.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => return Ok(record),
        Err(TryLockError::Error(e)) => return Err(StoreError::read(lock_path, e).into()),
    }
    // The runner is not running (or has not started yet). Holding its lock, look again.
    let mut record = store.load(&record.id)?;
    if record.status.is_terminal() {
        return Ok(record);
    }
    if matches!(
        record.status,
        TaskStatus::Parked | TaskStatus::NeedsApproval
    ) {
        // Waiting for a usage limit is no reason to be lost: a frontend takes it up. A task
        // that needs approval has no runner at all until it is answered.
        return Ok(record);
    }
    if record.slurm.is_some() && record.runner.as_ref().is_some_and(|r| !r.is_alive()) {
        match super::slurm::orphan::judge(store, &record) {
            Orphan::JobLives => return Ok(record),
            Orphan::JobEnded(status, error) => {
                record.progress = Some(status.to_string());
                record.finish(status, Outcome::failure(error));
                store.save(&record)?;
                return Ok(record);
            }
            Orphan::RunnerLost => {}
        }
    }
    let error = match (&record.runner, &record.creator) {
        (Some(runner), _) if runner.is_alive() => return Ok(record),
        // Nothing of a task survives a reboot, and nothing starts it again by itself: say so.
        (Some(runner), _) if runner.from_an_earlier_boot() => {
            let state = match record.status {
                TaskStatus::Queued => "queued; it never started",
                _ => "running; its agent was stopped with it",
            };
            format!("the machine restarted while the task was {state}. Start it again")
        }
        (Some(runner), _) => format!(
            "its runner (pid {}) exited without recording an outcome: it was killed, crashed, or the machine rebooted; the agent's processes were stopped",
            runner.pid
        ),
        (None, Some(creator)) if creator.is_alive() => return Ok(record),
        (None, _) => "the process that created it exited before a runner took the task".to_owned(),
    };
    let id = record.id;
    // A Slurm task's agent ran on a node, with its own tree there: nothing here is its.
    if record.slurm.is_none() {
        let cgroup = record.agent_process.as_ref().and_then(|a| a.cgroup.clone());
        unix::sweep_task(&id, cgroup.as_deref());
    }
    record.progress = Some("lost".into());
    record.finish(TaskStatus::Lost, Outcome::failure(error));
    store.save(&record)?;
    drop(lock);
    Ok(record)
}
