//! The facade every frontend calls, [`Ccmp`]: start, status, list, watch, wait, follow output,
//! cancel, follow up, clean up. Rules, defaults and state transitions live here, not in the
//! binaries; each verb is a file under `ccmp/`.

use std::path::PathBuf;
use std::sync::Arc;

use crate::config::Config;
use crate::error::Error;
use crate::id::TaskId;
use crate::spec::TaskRequest;
use crate::store::{FsStore, LogStream, MemoryStore, TaskStore};
use crate::supervisor::{DetachedSupervisor, InProcessSupervisor, Supervisor};
use crate::task::{Outcome, TaskRecord, TaskStatus};
use crate::view::TaskView;
use crate::worktree::{self, Isolation, Worktree};

mod approvals;
mod budgets;
mod cancel;
mod cleanup;
mod follow_up;
mod groups;
mod list;
mod notify;
mod outlook;
mod output;
mod parallel;
mod wait;
mod watch;

pub use self::approvals::ApprovalAnswer;
pub use self::budgets::{BudgetStatus, DaySpend, SpendReport};
pub use self::cancel::CancelOutcome;
pub use self::cleanup::{CleanupOptions, CleanupReport, CleanupTarget, SkippedTask};
pub use self::groups::GroupStatus;
pub use self::list::{DEFAULT_LIST_LIMIT, ListQuery, TaskList};
pub use self::notify::{EventFollow, NotifierStatus};
pub use self::outlook::StartOutlook;
pub use self::output::{OutputFollow, OutputSource};
pub use self::parallel::SETTABLE;
pub use self::wait::{MAX_WAIT, WaitMode, WaitOutcome};
pub use self::watch::TaskChanges;

/// The ccmp facade: start, inspect, wait for, cancel, follow up on and clean up tasks.
#[derive(Debug, Clone)]
pub struct Ccmp {
    store: Arc<dyn TaskStore>,
    supervisor: Arc<dyn Supervisor>,
    config: Config,
    worktree_root: PathBuf,
    /// The machine-wide settings file, for a file store (see [`crate::settings`]).
    settings: Option<PathBuf>,
    /// Held while a follow-up joins its session's turns (see [`Ccmp::follow_up`]).
    follow_ups: Arc<std::sync::Mutex<()>>,
}

impl Ccmp {
    /// A facade over any store and supervisor.
    pub fn new(store: Arc<dyn TaskStore>, supervisor: Arc<dyn Supervisor>, config: Config) -> Self {
        Self {
            store,
            supervisor,
            config,
            worktree_root: std::env::temp_dir().join("ccmp-worktrees"),
            settings: None,
            follow_ups: Arc::default(),
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
        let store = match state_dir {
            Some(dir) => FsStore::open(dir)?,
            None => FsStore::open_default()?,
        };
        Self::open_store(store)
    }

    /// Like [`open`](Self::open), over a file store the caller has opened already.
    pub fn open_store(store: FsStore) -> Result<Self, Error> {
        Self::open_store_with(store, Config::from_env()?)
    }

    /// Like [`open_store`](Self::open_store), with an explicit config (a long-lived frontend
    /// sets [`LaunchMode::Watch`](crate::LaunchMode::Watch) there).
    pub fn open_store_with(store: FsStore, config: Config) -> Result<Self, Error> {
        let supervisor = DetachedSupervisor::new(store.clone(), config.clone())?;
        supervisor.take_up_parked();
        let worktrees = store.layout().worktrees();
        let settings = store.layout().settings();
        Ok(Self::new(Arc::new(store), Arc::new(supervisor), config)
            .with_worktree_root(worktrees)
            .with_settings(settings))
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
        let worktrees = store.layout().worktrees();
        let settings = store.layout().settings();
        Self::new(Arc::new(store), Arc::new(supervisor), config)
            .with_worktree_root(worktrees)
            .with_settings(settings)
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
        let program = self.config.program_for(request.agent.kind()).clone();
        let mut spec = request.validate(&program)?;
        self.check_group(&spec.group)?;
        // A task that says nothing of approvals gets the machine-wide rules, as they are now.
        if let crate::agent::AgentOptions::Claude(claude) = &mut spec.agent
            && claude.ask.is_empty()
            && !claude.ask_all
        {
            claude.ask = self.max_parallel()?.ask;
        }
        for dependency in &spec.after {
            match self.store.load(dependency) {
                Ok(_) => {}
                Err(e) if e.is_not_found() => {
                    return Err(Error::InvalidArgument(format!(
                        "cannot run after task {}: there is no such task; name existing tasks",
                        dependency.short()
                    )));
                }
                Err(e) => return Err(e.into()),
            }
        }
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
        if record.spec.notify.is_some()
            && let Some(layout) = self.layout()
        {
            // The one-off notifier hears of events from here on (see `events::deliver`).
            crate::events::NotifierState::start_at_end(&layout, crate::events::notifier::ONE_OFF)?;
        }
        if let Err(e) = self.store.create(&record) {
            if let (true, Some(w)) = (created_worktree, &record.worktree) {
                let _ = worktree::remove(w, &self.worktree_root, true);
            }
            return Err(e.into());
        }
        if let Err(e) = self.supervisor.launch(&record) {
            // The task exists now; record why it never ran so that it is not a mystery later.
            record.finish(TaskStatus::Failed, Outcome::failure(format!("{e:#}")));
            let _ = self.store.save(&record);
            return Err(e.into());
        }
        Ok(self.store.load(&record.id).unwrap_or(record))
    }

    /// The state dir's layout, for a file store.
    pub(crate) fn layout(&self) -> Option<crate::layout::StateLayout> {
        self.settings
            .as_ref()
            .map(|settings| crate::layout::StateLayout::new(settings.parent().unwrap_or(settings)))
    }

    /// Resolves an id or unique prefix of 4 or more hex digits: the one place where what a
    /// caller typed becomes a [`TaskId`].
    pub fn resolve(&self, id: &str) -> Result<TaskId, Error> {
        Ok(self.store.resolve(id)?)
    }

    /// Resolves several ids or prefixes, in order, each once.
    pub fn resolve_all<S: AsRef<str>>(&self, ids: &[S]) -> Result<Vec<TaskId>, Error> {
        let mut resolved = Vec::with_capacity(ids.len());
        for id in ids {
            let id = self.resolve(id.as_ref())?;
            if !resolved.contains(&id) {
                resolved.push(id);
            }
        }
        Ok(resolved)
    }

    /// The current record of a task, checked against its processes (a task whose runner died
    /// is marked `lost` here).
    pub fn status(&self, id: &TaskId) -> Result<TaskRecord, Error> {
        let record = self.store.load(id)?;
        Ok(self.supervisor.refresh(record)?)
    }
}
