//! The runner: the `__ccmp-runner` process that owns one task from start to outcome.
//!
//! It is started by [`DetachedSupervisor`](super::DetachedSupervisor), leaves the frontend's
//! session, makes itself a child subreaper, takes the task's `runner.lock` (held for its whole
//! life: that is how others know it lives), records its identity, says `ready` on its stdout,
//! waits for a slot in the queue, and runs the agent through the `__ccmp-exec-agent` trampoline.
//! It is the only place in ccmp that handles signals: TERM, INT and HUP become a cancel.

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::agent_loop::{self, RunContext, RunEnd};
use super::attempts;
use super::dependencies::{self, Dependencies, DependencyWatch, Wake};
use super::unix::say;
use super::{queue, unix};
use crate::error::{StoreError, SupervisorError};
use crate::executor::Executor;
use crate::id::TaskId;
use crate::process_identity::ProcessIdentity;
use crate::store::{FsStore, TaskStore};
use crate::task::{Outcome, TaskRecord, TaskStatus};
use crate::usage_limit;

/// Hidden subcommand that runs one task.
pub const RUNNER_CMD: &str = "__ccmp-runner";

pub(crate) const READY: &str = "ready";

/// Arguments of the runner subcommand (and of a Slurm job's, which takes the same three).
#[derive(Debug)]
pub(crate) struct RunnerArgs {
    pub state_dir: PathBuf,
    pub id: TaskId,
    pub grace: Duration,
}

pub(crate) fn parse_runner_args(args: Vec<OsString>) -> Option<RunnerArgs> {
    let [state_dir, id, grace_ms] = <[OsString; 3]>::try_from(args).ok()?;
    Some(RunnerArgs {
        state_dir: state_dir.into(),
        id: id.to_str()?.parse().ok()?,
        grace: Duration::from_millis(grace_ms.to_str()?.parse().ok()?),
    })
}

/// Body of the `__ccmp-runner` subcommand.
pub(crate) fn runner_main(args: impl Iterator<Item = OsString>) -> ExitCode {
    run_subcommand(RUNNER_CMD, "ccmp runner", args, run_task)
}

/// Runs a hidden subcommand that takes the runner's three arguments: bad arguments exit 2, a
/// failure is said on stderr (the task's log) with `who` and exits 1.
pub(crate) fn run_subcommand(
    cmd: &str,
    who: &str,
    args: impl Iterator<Item = OsString>,
    run: impl FnOnce(RunnerArgs) -> Result<(), SupervisorError>,
) -> ExitCode {
    let raw: Vec<OsString> = args.collect();
    let Some(args) = parse_runner_args(raw.clone()) else {
        say(format_args!("ccmp: {cmd}: bad arguments {raw:?}"));
        return ExitCode::from(2);
    };
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            say(format_args!("{who}: {e}"));
            ExitCode::FAILURE
        }
    }
}

/// Takes the task's runner lock, waiting briefly in case a reader holds it for a moment.
fn lock_runner(store: &FsStore, id: &TaskId) -> Result<File, StoreError> {
    let path = store.layout().runner_lock(id);
    match crate::private_file::lock_with_patience(&path, Duration::from_secs(5)) {
        Ok(Some(file)) => Ok(file),
        Ok(None) => Err(StoreError::LockHeld { path, secs: 5 }),
        Err(e) => Err(StoreError::write(&path, e)),
    }
}

fn run_task(args: RunnerArgs) -> Result<(), SupervisorError> {
    unix::leave_session();
    super::cgroup::leave_task_cgroup();
    if let Err(e) = unix::become_subreaper() {
        tracing::warn!("cannot become a child subreaper: {e}");
    }
    let runtime = runtime()?;
    // TERM, INT and HUP become a cancel from before this runner records itself: whoever sees it
    // recorded may signal it at once, and the default action would kill it (the task `lost`).
    let signals = {
        let _entered = runtime.enter();
        termination_signals()
    };
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
    // A queued task with nothing to wait for joins the line before the frontend hears that it
    // is ready, so tasks started one after another start in that order.
    let place = if record.status == TaskStatus::Queued && record.spec.after.is_empty() {
        match queue::join(&store, &record) {
            Ok(place) => Some(place),
            Err(e) => {
                tracing::warn!("could not join the queue yet: {e}");
                None
            }
        }
    } else {
        None
    };
    {
        let mut stdout = io::stdout().lock();
        let _ = writeln!(stdout, "{READY}");
        let _ = stdout.flush();
    }
    if record.status.is_terminal() {
        return Ok(());
    }
    runtime.block_on(supervise(store, record, args, place, signals));
    Ok(())
}

/// The single-threaded runtime a runner (or a Slurm job's process) runs on.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, SupervisorError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| SupervisorError::SpawnRunner {
            program: PathBuf::from("<tokio runtime>"),
            source: e,
        })
}

/// Handlers for TERM, INT and HUP (the runner is a process of its own; it turns them into a
/// cancel). Installed when this is called, inside the runtime; a signal that comes before
/// anyone waits on a stream is kept for it.
pub(crate) fn termination_signals() -> Vec<tokio::signal::unix::Signal> {
    use tokio::signal::unix::{SignalKind, signal};
    [
        SignalKind::terminate(),
        SignalKind::interrupt(),
        SignalKind::hangup(),
    ]
    .into_iter()
    .filter_map(|kind| signal(kind).ok())
    .collect()
}

async fn supervise(
    store: FsStore,
    record: TaskRecord,
    args: RunnerArgs,
    place: Option<queue::Place>,
    signals: Vec<tokio::signal::unix::Signal>,
) {
    let cancel = CancellationToken::new();
    for mut stream in signals {
        let cancel = cancel.clone();
        tokio::spawn(async move {
            stream.recv().await;
            cancel.cancel();
        });
    }
    let marker = store.layout().cancel_marker(&record.id);
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
    let trampoline = std::env::current_exe().ok();
    let ctx = RunContext {
        store: shared.clone(),
        grace: args.grace,
        launcher: trampoline.as_deref().map(unix::agent_launcher),
        trampoline,
        reap_orphans: true,
        state_dir: Some(store.root().to_owned()),
        outside_stop: None,
    };
    let record = if record.spec.after.is_empty() {
        record
    } else {
        let watch = RunnerDependencyWatch::new(store.clone());
        match dependencies::wait_for(shared.as_ref(), &record, &cancel, &watch).await {
            Dependencies::Met => {}
            Dependencies::Unmet(reason) => {
                agent_loop::finish_early(shared.as_ref(), record, TaskStatus::Skipped, reason)
                    .await;
                return;
            }
            Dependencies::Cancelled => {
                let error = format!("{} while waiting for its dependencies", reason());
                agent_loop::finish_early(shared.as_ref(), record, TaskStatus::Cancelled, error)
                    .await;
                return;
            }
        }
        let record = store.load(&record.id).unwrap_or(record);
        match dependencies::resume_after_followed(shared.as_ref(), record.clone()) {
            Ok(record) => record,
            Err(error) => {
                agent_loop::finish_early(shared.as_ref(), record, TaskStatus::Failed, error).await;
                return;
            }
        }
    };
    let id = record.id;
    run_until_done(&ctx, &store, record, &cancel, &reason, place).await;
    // What it spent replaces what it reserved against a budget.
    if let Ok(done) = store.load(&id)
        && done.status.is_terminal()
    {
        let spent = done.outcome.as_ref().and_then(|o| o.cost_usd);
        if let Err(e) = crate::budget::settle(store.layout(), &id, spent) {
            tracing::warn!("could not record what the task spent: {e}");
        }
    }
}

/// Runs the agent, again after a usage limit resets or after an API failure worth a retry,
/// taking a slot for each run and holding none in between, until the task ends.
async fn run_until_done(
    ctx: &RunContext,
    store: &FsStore,
    mut record: TaskRecord,
    cancel: &CancellationToken,
    reason: &(dyn Fn() -> String + Sync),
    mut place: Option<queue::Place>,
) {
    let shared = ctx.store.as_ref();
    let mut input = None;
    if record.resume_answered {
        // An approval was answered: resume with no prompt, so that the agent asks its hook
        // again about the deferred tool use (a prompt now would lose it).
        input = Some(agent_loop::Continuation {
            prompt: String::new(),
            session: record.session_id.clone(),
        });
        record.resume_answered = false;
    }
    if record.status == TaskStatus::Parked {
        // Taken up after the runner that parked it died: wait out the rest of the limit.
        match park(store, record, cancel, reason).await {
            Some(resumed) => record = resumed,
            None => return,
        }
        input = Some(attempts::continuation(&record));
    }
    loop {
        let slot = match queue::acquire(store, &record, cancel, place.take()).await {
            Ok(Some(slot)) => slot,
            Ok(None) => {
                let error = format!("{} while queued", reason());
                agent_loop::finish_early(shared, record, TaskStatus::Cancelled, error).await;
                return;
            }
            Err(e) => {
                let error = format!("could not take a slot in the queue: {e}");
                agent_loop::finish_early(shared, record, TaskStatus::Failed, error).await;
                return;
            }
        };
        // The record may have changed while queued (progress is ours alone, but reload to be
        // safe; the session a follow-up resumes is decided above and kept).
        record = match store.load(&record.id) {
            Ok(loaded) => TaskRecord {
                spec: record.spec,
                ..loaded
            },
            Err(_) => record,
        };
        let settings = crate::settings::Settings::current(&store.layout().settings());
        let before = record.clone();
        let keep_open = |outcome: &Outcome| attempts::decide(&before, outcome, &settings).is_some();
        let end = match settings.executor(&record.spec.group) {
            Executor::Local => {
                agent_loop::run_attempt(ctx, record, cancel, reason, input.as_ref(), &keep_open)
                    .await
            }
            Executor::Slurm(options) => {
                super::slurm::attempt::run_attempt(
                    ctx,
                    store,
                    record,
                    options,
                    cancel,
                    reason,
                    input.as_ref(),
                )
                .await
            }
        };
        drop(slot);
        let (mut open, outcome) = match end {
            RunEnd::Ended(_) => return,
            RunEnd::Open { record, outcome } => (record, *outcome),
        };
        if let Some(pending) = outcome.deferred.clone() {
            // The agent stopped for approval: the task waits with no slot and no process (this
            // runner exits); an answer starts a new runner.
            let mut attempt = attempts::attempt(&open, &outcome, false);
            attempt.asked = true;
            attempt.why = format!("asked to approve {}", pending.summary);
            open.attempts.push(attempt);
            open.set_live_status(TaskStatus::NeedsApproval);
            open.progress = Some(format!("needs approval: {}", pending.summary));
            open.pending_approval = Some(pending);
            if let Err(e) = store.save(&open) {
                tracing::warn!("could not record the task's approval request: {e}");
            }
            return;
        }
        let Some(next) = attempts::decide(&open, &outcome, &settings) else {
            open.finish(TaskStatus::Failed, outcome);
            agent_loop::save_final(shared, &open).await;
            return;
        };
        let parks = matches!(next, attempts::Next::Park { .. });
        open.attempts
            .push(attempts::attempt(&open, &outcome, parks));
        match next {
            attempts::Next::Park { until, limit } => {
                let hold = usage_limit::Hold {
                    resets_at: until,
                    limit: limit.clone(),
                    task: open.id.short(),
                };
                let login = usage_limit::login_key(&open.spec);
                if let Err(e) = usage_limit::hold(store.layout(), &login, &hold) {
                    tracing::warn!("could not hold the queue for the usage limit: {e}");
                }
                open.set_live_status(TaskStatus::Parked);
                open.parked_until = Some(until);
                open.progress = Some(format!("{}; resumes then", hold.describe()));
                // Durable: a parked task must be found and taken up even after a crash.
                if let Err(e) = store.save(&open) {
                    tracing::warn!("could not record the parked task: {e}");
                }
                match park(store, open, cancel, reason).await {
                    Some(resumed) => record = resumed,
                    None => return,
                }
            }
            attempts::Next::Retry { delay, number, of } => {
                open.set_live_status(TaskStatus::Queued);
                let at = chrono::Utc::now() + chrono::Duration::from_std(delay).unwrap_or_default();
                open.progress = Some(format!(
                    "{}; retry {number} of {of} at {} UTC",
                    short_why(&outcome),
                    at.format("%H:%M:%S")
                ));
                let _ = store.save_progress(&open);
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = cancel.cancelled() => {
                        open.progress = Some("cancelled".to_owned());
                        let error = format!("{} while waiting to try again", reason());
                        agent_loop::finish_early(shared, open, TaskStatus::Cancelled, error).await;
                        return;
                    }
                }
                record = open;
            }
        }
        input = Some(attempts::continuation(&record));
    }
}

/// The head of a failure, for a retry's progress: "the model API failed with HTTP 529".
fn short_why(outcome: &Outcome) -> String {
    let error = outcome.error.as_deref().unwrap_or("the model API failed");
    error.split(':').next().unwrap_or(error).trim().to_owned()
}

/// Waits, holding no slot, until a parked task's usage limit resets (its marker lets a frontend
/// take it up if this runner dies), then queues it again. `None` if it was cancelled meanwhile
/// (then its outcome is recorded).
async fn park(
    store: &FsStore,
    record: TaskRecord,
    cancel: &CancellationToken,
    reason: &(dyn Fn() -> String + Sync),
) -> Option<TaskRecord> {
    let marker = store.layout().parked_marker(&record.id);
    if let Err(e) = crate::private_file::poke(&marker) {
        tracing::warn!("could not mark the task parked: {e}");
    }
    let until = record.parked_until.unwrap_or_else(chrono::Utc::now);
    let wait = (until - chrono::Utc::now()).to_std().unwrap_or_default() + attempts::RESET_MARGIN;
    let woke = tokio::select! {
        () = tokio::time::sleep(wait) => true,
        () = cancel.cancelled() => false,
    };
    let _ = std::fs::remove_file(&marker);
    let mut record = store.load(&record.id).unwrap_or(record);
    if !woke {
        record.parked_until = None;
        record.progress = Some("cancelled".to_owned());
        let error = format!("{} while parked on a usage limit", reason());
        agent_loop::finish_early(store, record, TaskStatus::Cancelled, error).await;
        return None;
    }
    record.parked_until = None;
    record.set_live_status(TaskStatus::Queued);
    record.progress = Some("the usage limit has reset; resuming".to_owned());
    let _ = store.save_progress(&record);
    Some(record)
}

/// A detached runner waits for a dependency in a blocking `flock` on its `runner.lock`, which
/// the kernel grants when that runner exits, however it exits.
struct RunnerDependencyWatch {
    store: FsStore,
    /// Looks in a row that found the dependency's lock free at once while it had not ended
    /// (its runner had not started yet): each waits longer, so a slow start is no busy loop.
    early_looks: Arc<AtomicU32>,
}

impl RunnerDependencyWatch {
    fn new(store: FsStore) -> Self {
        Self {
            store,
            early_looks: Arc::new(AtomicU32::new(0)),
        }
    }
}

impl DependencyWatch for RunnerDependencyWatch {
    fn refresh(&self, record: TaskRecord) -> TaskRecord {
        super::detached::refresh(&self.store, record.clone()).unwrap_or(record)
    }

    fn until_moved(&self, id: &TaskId) -> Wake {
        let path = self.store.layout().runner_lock(id);
        let (tx, rx) = tokio::sync::oneshot::channel();
        let spawned = std::thread::Builder::new()
            .name("ccmp-after".into())
            .spawn(move || {
                // A missing lock file: the task was cleaned up, which the next read shows.
                if let Ok(lock) = crate::private_file::open_read(&path) {
                    let _ = lock.lock_shared();
                }
                let _ = tx.send(());
            });
        if let Err(e) = spawned {
            tracing::warn!("cannot wait for a dependency without polling: {e}");
        }
        let early_looks = self.early_looks.clone();
        let started = std::time::Instant::now();
        Box::pin(async move {
            let _ = rx.await;
            if started.elapsed() < Duration::from_millis(20) {
                let early = early_looks.fetch_add(1, Ordering::Relaxed).min(5);
                tokio::time::sleep(Duration::from_millis(50 << early)).await;
            } else {
                early_looks.store(0, Ordering::Relaxed);
            }
        })
    }
}
