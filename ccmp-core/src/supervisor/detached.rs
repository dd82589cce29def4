//! [`DetachedSupervisor`]: one small runner process per task, outliving the frontend.
//!
//! `launch` re-executes a binary (by default the frontend's own) with the hidden subcommand
//! `__ccmp-runner`, and returns once the runner has taken the task (holds `runner.lock` and has
//! recorded its identity) and said so on its stdout. The frontend's child handle goes to a reaper
//! thread, so a long-lived frontend collects its exited runners instead of keeping zombies. The
//! runner leaves the frontend's session, makes itself a child subreaper, waits for a slot, and
//! runs the agent through the `__ccmp-exec-agent` trampoline so that the agent dies if the runner
//! is killed.
//!
//! A task whose runner is gone without having written an outcome becomes `lost`; this is decided
//! by the runner's lock being free *and* its recorded identity no longer matching a live process.

use std::ffi::OsString;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};
use std::sync::Arc;
use std::time::Duration;

use rustix::process::Signal;
use tokio_util::sync::CancellationToken;

use super::run::{self, RunContext};
use super::unix::say;
use super::{Supervisor, reaper, slots, unix};
use crate::config::Config;
use crate::error::{StoreError, SupervisorError};
use crate::process_identity::ProcessIdentity;
use crate::store::{FsStore, TaskStore};
use crate::task::{Outcome, TaskId, TaskRecord, TaskStatus};

/// Hidden subcommand that runs one task.
pub const RUNNER_CMD: &str = "__ccmp-runner";

const READY: &str = "ready";

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
            self.config.max_parallel.to_string().into(),
            self.config.grace.as_millis().to_string().into(),
        ]
    }
}

fn open_runner_log(store: &FsStore, id: &TaskId) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .custom_flags(crate::store::NOFOLLOW)
        .open(store.runner_log_path(id))
}

impl Supervisor for DetachedSupervisor {
    fn launch(&self, record: &TaskRecord) -> Result<(), SupervisorError> {
        let spawn_err = |source| SupervisorError::SpawnRunner {
            program: self.runner_program.clone(),
            source,
        };
        let log = open_runner_log(&self.store, &record.id).map_err(spawn_err)?;
        let mut child = Command::new(&self.runner_program)
            .arg(RUNNER_CMD)
            .args(self.runner_args(&record.id))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .map_err(spawn_err)?;
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
        let log_tail =
            std::fs::read_to_string(self.store.runner_log_path(&record.id)).unwrap_or_default();
        let reason = log_tail
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .map(str::to_owned)
            .unwrap_or_else(|| {
                format!(
                    "it exited with {status} without taking the task; is `{}` a ccmp binary?",
                    self.runner_program.display()
                )
            });
        Err(SupervisorError::RunnerFailed {
            program: self.runner_program.clone(),
            reason,
        })
    }

    fn cancel(&self, record: &TaskRecord) -> Result<(), SupervisorError> {
        let marker = self.store.cancel_path(&record.id);
        let dir = self.store.task_dir(&record.id);
        crate::store::write_atomic(&dir, "cancel", chrono::Utc::now().to_rfc3339().as_bytes())
            .map_err(|e| StoreError::write(marker, e))?;
        // A runner that has not registered yet sees the marker when it does.
        if let Some(runner) = &record.runner {
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
        if record.status.is_terminal() {
            return Ok(record);
        }
        let lock_path = self.store.runner_lock_path(&record.id);
        let lock = match crate::lock::open_lock(&lock_path) {
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
        let mut record = self.store.load(&record.id)?;
        if record.status.is_terminal() {
            return Ok(record);
        }
        let error = match (&record.runner, &record.creator) {
            (Some(runner), _) if runner.is_alive() => return Ok(record),
            (Some(runner), _) => format!(
                "its runner (pid {}) exited without recording an outcome: it was killed, crashed, or the machine rebooted; the agent's processes were stopped",
                runner.pid
            ),
            (None, Some(creator)) if creator.is_alive() => return Ok(record),
            (None, _) => {
                "the process that created it exited before a runner took the task".to_owned()
            }
        };
        let id = record.id;
        unix::sweep_task(&id);
        record.progress = Some("lost".into());
        record.finish(
            TaskStatus::Lost,
            Outcome {
                error: Some(error),
                ..Outcome::default()
            },
        );
        self.store.save(&record)?;
        drop(lock);
        Ok(record)
    }
}

/// Arguments of the runner subcommand.
#[derive(Debug)]
struct RunnerArgs {
    state_dir: PathBuf,
    id: TaskId,
    max_parallel: usize,
    grace: Duration,
}

fn parse_runner_args(args: Vec<OsString>) -> Option<RunnerArgs> {
    let [state_dir, id, max_parallel, grace_ms] = <[OsString; 4]>::try_from(args).ok()?;
    Some(RunnerArgs {
        state_dir: state_dir.into(),
        id: id.to_str()?.parse().ok()?,
        max_parallel: max_parallel.to_str()?.parse().ok().filter(|n| *n >= 1)?,
        grace: Duration::from_millis(grace_ms.to_str()?.parse().ok()?),
    })
}

/// Body of the `__ccmp-runner` subcommand.
pub(crate) fn runner_main(args: impl Iterator<Item = OsString>) -> ExitCode {
    let raw: Vec<OsString> = args.collect();
    let Some(args) = parse_runner_args(raw.clone()) else {
        say(format_args!("ccmp: {RUNNER_CMD}: bad arguments {raw:?}"));
        return ExitCode::from(2);
    };
    match run_task(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            say(format_args!("ccmp runner: {e}"));
            ExitCode::FAILURE
        }
    }
}

/// Takes the task's runner lock, waiting briefly in case a reader holds it for a moment.
fn lock_runner(store: &FsStore, id: &TaskId) -> Result<File, StoreError> {
    let path = store.runner_lock_path(id);
    match crate::lock::lock_with_patience(&path, Duration::from_secs(5)) {
        Ok(Some(file)) => Ok(file),
        Ok(None) => Err(StoreError::Locked { path, secs: 5 }),
        Err(e) => Err(StoreError::write(&path, e)),
    }
}

fn run_task(args: RunnerArgs) -> Result<(), SupervisorError> {
    unix::leave_session();
    if let Err(e) = unix::become_subreaper() {
        tracing::warn!("cannot become a child subreaper: {e}");
    }
    let store = FsStore::open(&args.state_dir)?;
    let _runner_lock = lock_runner(&store, &args.id)?;
    let mut record = store.load(&args.id)?;
    if !record.status.is_terminal() {
        record.runner =
            Some(ProcessIdentity::current().map_err(|e| StoreError::read("/proc/self/stat", e))?);
        // Not fsynced: after a crash the runner is gone either way, and the creator's identity
        // in the durable record decides `lost` just the same.
        store.save_progress(&record)?;
    }
    {
        let mut stdout = io::stdout().lock();
        let _ = writeln!(stdout, "{READY}");
        let _ = stdout.flush();
    }
    if record.status.is_terminal() {
        return Ok(());
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| SupervisorError::SpawnRunner {
            program: PathBuf::from("<tokio runtime>"),
            source: e,
        })?;
    runtime.block_on(supervise(store, record, args));
    Ok(())
}

async fn supervise(store: FsStore, record: TaskRecord, args: RunnerArgs) {
    use tokio::signal::unix::{SignalKind, signal};
    let cancel = CancellationToken::new();
    // The runner is a process of its own; it turns TERM, INT and HUP into a cancel.
    for kind in [
        SignalKind::terminate(),
        SignalKind::interrupt(),
        SignalKind::hangup(),
    ] {
        if let Ok(mut stream) = signal(kind) {
            let cancel = cancel.clone();
            tokio::spawn(async move {
                stream.recv().await;
                cancel.cancel();
            });
        }
    }
    let marker = store.cancel_path(&record.id);
    if marker.exists() {
        cancel.cancel();
    }
    let reason = move || {
        if marker.exists() {
            "cancelled on request".to_owned()
        } else {
            "the runner received a termination signal (system shutdown?)".to_owned()
        }
    };
    let shared: Arc<dyn TaskStore> = Arc::new(store.clone());
    let ctx = RunContext {
        store: shared.clone(),
        grace: args.grace,
        trampoline: std::env::current_exe().ok(),
        reap_orphans: true,
    };
    let slot = match slots::acquire(&store, &record, args.max_parallel, &cancel).await {
        Ok(Some(slot)) => slot,
        Ok(None) => {
            let error = format!("{} while queued", reason());
            run::finish_early(shared.as_ref(), record, TaskStatus::Cancelled, error).await;
            return;
        }
        Err(e) => {
            let error = format!("could not take a slot in the queue: {e}");
            run::finish_early(shared.as_ref(), record, TaskStatus::Failed, error).await;
            return;
        }
    };
    // The record may have changed while queued (progress is ours alone, but reload to be safe).
    let record = store.load(&record.id).unwrap_or(record);
    run::run_agent(&ctx, record, &cancel, reason).await;
    drop(slot);
}
