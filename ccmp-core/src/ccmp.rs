//! [`Ccmp`]: the one facade every frontend calls. Rules, defaults and state transitions live
//! here, not in the binaries.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::error::{Error, StoreError};
use crate::spec::TaskRequest;
use crate::store::{FsStore, LogChunk, LogRange, LogStream, MemoryStore, TaskStore};
use crate::supervisor::{DetachedSupervisor, InProcessSupervisor, Supervisor};
use crate::task::{DamagedTask, Outcome, TaskHeader, TaskId, TaskRecord, TaskStatus, TaskView};
use crate::worktree::{self, Isolation, Worktree, WorktreeRemoval};

/// The longest `wait` goes without looking at its tasks, even when told of no change.
const LOOK_AGAIN: Duration = Duration::from_secs(1);
/// The longest single wait.
pub const MAX_WAIT: Duration = Duration::from_secs(24 * 3600);

/// Which tasks [`Ccmp::list`] returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListQuery {
    /// Only tasks in these states; `None` for every state.
    pub states: Option<Vec<TaskStatus>>,
    /// At most this many tasks, newest first.
    pub limit: usize,
}

impl ListQuery {
    /// Queued and running tasks, up to 50.
    pub fn active() -> Self {
        Self {
            states: Some(vec![TaskStatus::Queued, TaskStatus::Running]),
            limit: 50,
        }
    }

    /// Every task, up to 50.
    pub fn all() -> Self {
        Self {
            states: None,
            limit: 50,
        }
    }
}

/// A page of tasks.
#[derive(Debug, Clone)]
pub struct TaskList {
    /// Matching tasks, newest first, at most `limit`.
    pub tasks: Vec<TaskRecord>,
    /// How many tasks matched before the limit.
    pub total: usize,
    /// Tasks whose records cannot be read (reported whatever the filter).
    pub damaged: Vec<DamagedTask>,
}

/// Whether [`Ccmp::wait`] returns when any or when all tasks have finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum WaitMode {
    /// Return as soon as one task has finished.
    Any,
    /// Return when every task has finished.
    #[default]
    All,
}

/// What [`Ccmp::wait`] saw.
#[derive(Debug, Clone)]
pub struct WaitOutcome {
    /// Tasks that have finished, in the order asked.
    pub finished: Vec<TaskRecord>,
    /// Tasks still queued or running.
    pub pending: Vec<TaskRecord>,
    /// Whether the wait ended by its timeout rather than by its condition.
    pub timed_out: bool,
}

/// What [`Ccmp::cancel`] did.
#[derive(Debug, Clone)]
pub struct CancelOutcome {
    /// The task as it is now.
    pub record: TaskRecord,
    /// Whether the task had already finished, so nothing was cancelled.
    pub already_finished: bool,
}

/// Which tasks [`Ccmp::cleanup`] removes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CleanupTarget {
    /// One task. An active task is refused unless `force`, which cancels it first.
    Task {
        /// Id or unique prefix.
        id: String,
        /// Cancel an active task, then remove it.
        force: bool,
    },
    /// Every finished task.
    Finished,
    /// Finished tasks that ended longer ago than this.
    OlderThan(Duration),
}

/// How [`Ccmp::cleanup_with`] treats what tasks leave behind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CleanupOptions {
    /// Delete the `ccmp/<id>` branches of removed worktrees even if they have commits.
    pub delete_branches: bool,
}

/// What [`Ccmp::cleanup`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CleanupReport {
    /// Short ids of the removed tasks.
    pub removed: Vec<String>,
    /// Tasks left in place, with the reason.
    pub skipped: Vec<SkippedTask>,
    /// Worktrees removed with their tasks, and what became of their branches.
    #[serde(default)]
    pub worktrees: Vec<WorktreeRemoval>,
    /// Anything else worth knowing, e.g. a worktree left alone because another task uses it.
    #[serde(default)]
    pub notes: Vec<String>,
}

/// A task cleanup left alone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkippedTask {
    /// Short id.
    pub short_id: String,
    /// Why it was kept.
    pub reason: String,
}

/// The ccmp facade: start, inspect, wait for, cancel, follow up on and clean up tasks.
#[derive(Debug, Clone)]
pub struct Ccmp {
    store: Arc<dyn TaskStore>,
    supervisor: Arc<dyn Supervisor>,
    config: Config,
    worktree_root: PathBuf,
}

impl Ccmp {
    /// A facade over any store and supervisor.
    pub fn new(store: Arc<dyn TaskStore>, supervisor: Arc<dyn Supervisor>, config: Config) -> Self {
        Self {
            store,
            supervisor,
            config,
            worktree_root: std::env::temp_dir().join("ccmp-worktrees"),
        }
    }

    /// Puts the worktrees of worktree-isolated tasks under `dir` (by default `<state>/worktrees`
    /// for a file store, a directory under the system temp dir otherwise).
    pub fn with_worktree_root(mut self, dir: impl Into<PathBuf>) -> Self {
        self.worktree_root = dir.into();
        self
    }

    /// The default setup: the file store at `state_dir` (or the default state dir), detached
    /// runners that re-execute this executable, and settings from the environment.
    ///
    /// The executable's `main` must call [`hidden_entry_point`](crate::hidden_entry_point) first.
    pub fn open(state_dir: Option<PathBuf>) -> Result<Self, Error> {
        let config = Config::from_env()?;
        let store = match state_dir {
            Some(dir) => FsStore::open(dir)?,
            None => FsStore::open_default()?,
        };
        let supervisor = DetachedSupervisor::new(store.clone(), config.clone())?;
        let worktrees = store.root().join("worktrees");
        Ok(Self::new(Arc::new(store), Arc::new(supervisor), config).with_worktree_root(worktrees))
    }

    /// Like [`open`](Self::open), with an explicit config and runner binary (which must dispatch
    /// [`hidden_entry_point`](crate::hidden_entry_point)).
    pub fn open_with_runner(
        store: FsStore,
        config: Config,
        runner_program: impl Into<PathBuf>,
    ) -> Self {
        let supervisor =
            DetachedSupervisor::with_runner_program(store.clone(), config.clone(), runner_program);
        let worktrees = store.root().join("worktrees");
        Self::new(Arc::new(store), Arc::new(supervisor), config).with_worktree_root(worktrees)
    }

    /// An in-memory store with in-process tasks. Must be called inside a tokio runtime.
    pub fn in_memory(config: Config) -> Result<Self, Error> {
        let store: Arc<dyn TaskStore> = Arc::new(MemoryStore::new());
        let supervisor = InProcessSupervisor::new(store.clone(), &config)?;
        Ok(Self::new(store, Arc::new(supervisor), config))
    }

    /// The store.
    pub fn store(&self) -> &dyn TaskStore {
        self.store.as_ref()
    }

    /// The settings in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The JSON view of a record, with its log path.
    pub fn view(&self, record: &TaskRecord) -> TaskView {
        record.view(self.store.log_path(&record.id, LogStream::Transcript))
    }

    /// Validates and starts a task. Bad input is rejected before anything is written.
    pub fn start(&self, request: TaskRequest) -> Result<TaskRecord, Error> {
        self.start_following(request, None)
    }

    fn start_following(
        &self,
        request: TaskRequest,
        follows: Option<&TaskRecord>,
    ) -> Result<TaskRecord, Error> {
        let spec = request.validate(&self.config.agent_program)?;
        let mut record = TaskRecord::new(spec);
        record.follows = follows.map(|f| f.id);
        let mut created_worktree = false;
        if let Some(worktree) = follows.and_then(|f| f.worktree.clone()) {
            // A follow-up runs in the same worktree as the task it follows.
            if !worktree.path.is_dir() {
                return Err(Error::InvalidArgument(format!(
                    "the worktree of task {} (`{}`) was removed; start a new task instead",
                    worktree.owner.short(),
                    worktree.path.display()
                )));
            }
            record.worktree = Some(Worktree {
                diff: None,
                ..worktree
            });
        } else if record.spec.isolation == Isolation::Worktree {
            record.worktree = Some(worktree::create(
                &record.spec.working_dir,
                &self.worktree_root,
                &record.id,
            )?);
            created_worktree = true;
        }
        if let Err(e) = self.store.create(&record) {
            if let (true, Some(w)) = (created_worktree, &record.worktree) {
                let _ = worktree::remove(w, &self.worktree_root, true);
            }
            return Err(e.into());
        }
        if let Err(e) = self.supervisor.launch(&record) {
            // The task exists now; record why it never ran so that it is not a mystery later.
            record.finish(
                TaskStatus::Failed,
                Outcome {
                    error: Some(format!("{e:#}")),
                    ..Outcome::default()
                },
            );
            let _ = self.store.save(&record);
            return Err(e.into());
        }
        Ok(self.store.load(&record.id).unwrap_or(record))
    }

    /// Resolves an id or unique prefix of 4 or more hex digits.
    pub fn resolve(&self, id: &str) -> Result<TaskId, Error> {
        Ok(self.store.resolve(id)?)
    }

    /// The current record of a task, checked against its processes.
    pub fn status(&self, id: &str) -> Result<TaskRecord, Error> {
        let id = self.resolve(id)?;
        self.status_of(&id)
    }

    fn status_of(&self, id: &TaskId) -> Result<TaskRecord, Error> {
        let record = self.store.load(id)?;
        Ok(self.supervisor.refresh(record)?)
    }

    /// Tasks matching `query`, newest first, with the total before the limit.
    pub fn list(&self, query: &ListQuery) -> Result<TaskList, Error> {
        if query.limit == 0 {
            return Err(Error::InvalidArgument("limit must be at least 1".into()));
        }
        let active_only = query
            .states
            .as_ref()
            .is_some_and(|states| states.iter().all(|s| !s.is_terminal()));
        let mut damaged = Vec::new();
        // Headers first; whole records only for live tasks (which must be checked against their
        // processes) and for the page returned.
        let mut entries: Vec<(TaskHeader, Option<TaskRecord>)> = Vec::new();
        for entry in self.store.headers(active_only)? {
            match entry {
                Ok(header) if header.status.is_terminal() => entries.push((header, None)),
                Ok(header) => match self.status_of(&header.id) {
                    Ok(record) => entries.push((TaskHeader::from(&record), Some(record))),
                    Err(Error::Store(StoreError::NotFound { .. })) => {}
                    Err(e) => return Err(e),
                },
                Err(d) => damaged.push(d),
            }
        }
        entries.retain(|(h, _)| query.states.as_ref().is_none_or(|s| s.contains(&h.status)));
        entries.sort_by(|(a, _), (b, _)| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
        let total = entries.len();
        let mut tasks = Vec::with_capacity(query.limit.min(total));
        for (header, record) in entries.into_iter().take(query.limit) {
            match record.map_or_else(|| self.store.load(&header.id), Ok) {
                Ok(record) => tasks.push(record),
                Err(StoreError::NotFound { .. }) => {}
                Err(StoreError::Damaged { path, reason, .. }) => damaged.push(DamagedTask {
                    id: header.id.to_string(),
                    short_id: header.id.short(),
                    path,
                    reason,
                }),
                Err(e) => return Err(e.into()),
            }
        }
        damaged.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(TaskList {
            tasks,
            total,
            damaged,
        })
    }

    /// Waits until any or all of `ids` have finished, or `timeout` passes.
    pub async fn wait(
        &self,
        ids: &[String],
        mode: WaitMode,
        timeout: Duration,
    ) -> Result<WaitOutcome, Error> {
        if ids.is_empty() {
            return Err(Error::InvalidArgument(
                "give at least one task id to wait for".into(),
            ));
        }
        let mut resolved = Vec::with_capacity(ids.len());
        let mut seen = HashSet::new();
        for id in ids {
            let id = self.resolve(id)?;
            if seen.insert(id) {
                resolved.push(id);
            }
        }
        let deadline = tokio::time::Instant::now() + timeout.min(MAX_WAIT);
        // Subscribe before looking, so that no change between a look and the wait is missed.
        let mut watch = self.store.watch(&resolved);
        loop {
            let mut finished = Vec::new();
            let mut pending = Vec::new();
            for id in &resolved {
                let record = self.status_of(id)?;
                if record.status.is_terminal() {
                    finished.push(record);
                } else {
                    pending.push(record);
                }
            }
            let done = match mode {
                WaitMode::Any => !finished.is_empty(),
                WaitMode::All => pending.is_empty(),
            };
            let now = tokio::time::Instant::now();
            if done || now >= deadline {
                return Ok(WaitOutcome {
                    finished,
                    pending,
                    timed_out: !done,
                });
            }
            // A runner that dies says nothing: look again at least every second to notice `lost`.
            watch.changed(LOOK_AGAIN.min(deadline - now)).await;
        }
    }

    /// Asks a queued or running task to stop and returns at once; the task records `cancelled`
    /// when it has stopped (within the grace period). A finished task is left as it is.
    pub fn request_cancel(&self, id: &str) -> Result<CancelOutcome, Error> {
        let record = self.status(id)?;
        let already_finished = record.status.is_terminal();
        if !already_finished {
            self.supervisor.cancel(&record)?;
        }
        Ok(CancelOutcome {
            record,
            already_finished,
        })
    }

    /// Cancels a queued or running task and waits (up to the grace period and a little more)
    /// for it to record `cancelled`.
    pub async fn cancel(&self, id: &str) -> Result<CancelOutcome, Error> {
        let CancelOutcome {
            record,
            already_finished,
        } = self.request_cancel(id)?;
        if already_finished {
            return Ok(CancelOutcome {
                record,
                already_finished,
            });
        }
        let outcome = self
            .wait(
                &[record.id.to_string()],
                WaitMode::All,
                self.config.grace + Duration::from_secs(5),
            )
            .await?;
        let record = outcome
            .finished
            .into_iter()
            .chain(outcome.pending)
            .next()
            .unwrap_or(record);
        Ok(CancelOutcome {
            record,
            already_finished: false,
        })
    }

    /// Removes tasks and their logs, and the worktrees they ran in (keeping branches that
    /// hold work).
    pub async fn cleanup(&self, target: CleanupTarget) -> Result<CleanupReport, Error> {
        self.cleanup_with(target, CleanupOptions::default()).await
    }

    /// Removes a task's worktree if it is the last task using it and ccmp created it.
    fn remove_worktree(
        &self,
        record: &TaskRecord,
        options: CleanupOptions,
        report: &mut CleanupReport,
    ) {
        let Some(worktree) = &record.worktree else {
            return;
        };
        let shared = self.store.list().map(|all| {
            all.into_iter().flatten().any(|other| {
                other.id != record.id
                    && other
                        .worktree
                        .as_ref()
                        .is_some_and(|w| w.path == worktree.path)
            })
        });
        if shared.unwrap_or(true) {
            report.notes.push(format!(
                "kept worktree {} of task {}: another task uses it",
                worktree.path.display(),
                record.id.short()
            ));
            return;
        }
        if !worktree.path.exists() {
            return;
        }
        if !worktree::is_ours(worktree, &self.worktree_root) {
            report.notes.push(format!(
                "left worktree {} alone: ccmp did not create it",
                worktree.path.display()
            ));
            return;
        }
        match worktree::remove(worktree, &self.worktree_root, options.delete_branches) {
            Ok(removal) => report.worktrees.push(removal),
            Err(e) => report.notes.push(format!(
                "could not remove worktree {}: {e}",
                worktree.path.display()
            )),
        }
    }

    /// Like [`cleanup`](Self::cleanup), with options.
    pub async fn cleanup_with(
        &self,
        target: CleanupTarget,
        options: CleanupOptions,
    ) -> Result<CleanupReport, Error> {
        let mut report = CleanupReport::default();
        match target {
            CleanupTarget::Task { id, force } => {
                let id = self.resolve(&id)?;
                match self.status_of(&id) {
                    Ok(record) if !record.status.is_terminal() => {
                        if !force {
                            return Err(Error::TaskActive {
                                id: id.short(),
                                status: record.status,
                            });
                        }
                        let outcome = self.cancel(&id.to_string()).await?;
                        if !outcome.record.status.is_terminal() {
                            return Err(Error::TaskActive {
                                id: id.short(),
                                status: outcome.record.status,
                            });
                        }
                    }
                    Ok(_) | Err(Error::Store(StoreError::Damaged { .. })) => {}
                    Err(e) => return Err(e),
                }
                if let Ok(record) = self.store.load(&id) {
                    self.remove_worktree(&record, options, &mut report);
                }
                self.store.remove(&id)?;
                report.removed.push(id.short());
            }
            CleanupTarget::Finished | CleanupTarget::OlderThan(_) => {
                let cutoff = match target {
                    CleanupTarget::OlderThan(age) => Some(
                        Utc::now()
                            - chrono::Duration::from_std(age).unwrap_or(chrono::Duration::MAX),
                    ),
                    _ => None,
                };
                let list = self.list(&ListQuery {
                    states: None,
                    limit: usize::MAX,
                })?;
                for record in list.tasks {
                    let short_id = record.id.short();
                    if !record.status.is_terminal() {
                        continue;
                    }
                    let ended = record.finished_at.unwrap_or(record.created_at);
                    if cutoff.is_some_and(|cutoff| ended > cutoff) {
                        continue;
                    }
                    self.remove_worktree(&record, options, &mut report);
                    match self.store.remove(&record.id) {
                        Ok(()) => report.removed.push(short_id),
                        Err(StoreError::NotFound { .. }) => {}
                        Err(e) => report.skipped.push(SkippedTask {
                            short_id,
                            reason: format!("{e:#}"),
                        }),
                    }
                }
                for damaged in list.damaged {
                    report.skipped.push(SkippedTask {
                        short_id: damaged.short_id.clone(),
                        reason: format!(
                            "its record is damaged ({}); remove it by id with cleanup {}",
                            damaged.reason, damaged.short_id
                        ),
                    });
                }
            }
        }
        Ok(report)
    }

    /// Reads part of a task's final result text, for results too long for one reply.
    pub fn result_page(&self, id: &str, range: LogRange) -> Result<LogChunk, Error> {
        let record = self.status(id)?;
        let text = record.outcome.and_then(|o| o.result).unwrap_or_default();
        let bytes = text.as_bytes();
        LogChunk::read(bytes.len() as u64, range, |offset, len| {
            Ok(bytes[offset as usize..offset as usize + len].to_vec())
        })
        .map_err(|e| Error::Store(StoreError::read("<result>", e)))
    }

    /// Reads part of a task's log.
    pub fn output(&self, id: &str, stream: LogStream, range: LogRange) -> Result<LogChunk, Error> {
        let id = self.resolve(id)?;
        Ok(self.store.read_log(&id, stream, range)?)
    }

    /// Starts a new task that resumes a finished task's session with `prompt`, in the same
    /// working dir and with the same settings. The new record names the task it follows.
    pub fn follow_up(&self, id: &str, prompt: impl Into<String>) -> Result<TaskRecord, Error> {
        let original = self.status(id)?;
        if !original.status.is_terminal() {
            return Err(Error::FollowUpActive {
                id: original.id.short(),
                status: original.status,
            });
        }
        let Some(session) = original.session_id.clone() else {
            return Err(Error::NoSession {
                id: original.id.short(),
            });
        };
        let request = TaskRequest {
            prompt: prompt.into(),
            resume_session: Some(session),
            ..original.spec.to_request()
        };
        self.start_following(request, Some(&original))
    }
}

/// Parses a human duration such as `7d`, `12h`, `90s` or `1h 30m`.
pub fn parse_duration(text: &str) -> Result<Duration, Error> {
    humantime::parse_duration(text.trim()).map_err(|e| {
        Error::InvalidArgument(format!(
            "`{}` is not a duration ({e}); write it like 30s, 15m, 12h or 7d",
            crate::error::escape(text)
        ))
    })
}
