//! Machine-wide settings, kept in the state dir: read by every frontend and runner, changed live.
//!
//! `<state>/settings.json` holds the limit on agents running at once, whether new tasks are
//! paused, and the groups with their own limits and pause. Every runner reads it each time it looks for a slot, so a change made by any frontend
//! (`ccmp parallel N`, `ccmp pause`) holds for every task at once, whatever the environment of
//! the frontend that started it. `CCMP_MAX_PARALLEL` only seeds the limit: the first frontend to
//! open a state dir without settings stores its value. Changes are read-modify-write under
//! `settings.lock`, so two at once do not lose one.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::budget::Budget;
use crate::error::StoreError;
use crate::group::GroupName;
use crate::private_file;

/// The most agents the limit allows.
pub const MAX_PARALLEL_LIMIT: usize = 1024;

/// Where the limit came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SettingSource {
    /// Stored by the first frontend to use the state dir: its `CCMP_MAX_PARALLEL`, else the
    /// default (or, for a library, its `Config::max_parallel`).
    Seeded,
    /// Set by a person or a program (`ccmp parallel N`, [`Ccmp::set_max_parallel`](crate::Ccmp::set_max_parallel)).
    Set,
}

impl SettingSource {
    /// In words, for `ccmp parallel`.
    pub fn describe(&self) -> &'static str {
        match self {
            Self::Seeded => {
                "seeded by the first frontend to use this state dir, from its CCMP_MAX_PARALLEL or the default; change it with `ccmp parallel N`"
            }
            Self::Set => "set with `ccmp parallel`",
        }
    }
}

/// The machine-wide settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    /// At most this many agents run at once across every process sharing the state dir.
    pub max_parallel: usize,
    /// Where `max_parallel` came from.
    pub max_parallel_source: SettingSource,
    /// When it was last changed.
    pub changed_at: DateTime<Utc>,
    /// Whether new tasks are held back (`ccmp pause`): queued tasks wait, running ones go on.
    #[serde(default)]
    pub paused: bool,
    /// The groups besides `default` (which is always there), and `default` too once it has a
    /// limit of its own or is paused.
    #[serde(default)]
    pub groups: BTreeMap<GroupName, GroupSettings>,
    /// Whether a task whose agent stops on a usage limit with a known reset time parks until
    /// the reset and resumes (the default), rather than failing. A task may say otherwise.
    #[serde(default = "yes")]
    pub park_on_usage_limit: bool,
    /// How many times a task is run again after the model API failed it for a while
    /// (overloaded, unavailable), unless the task says. Default 0.
    #[serde(default)]
    pub retries: u32,
    /// The first wait before a retry, in seconds; each next one doubles it (with jitter).
    #[serde(default = "default_retry_backoff")]
    pub retry_backoff_secs: f64,
    /// The machine-wide spend limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<Budget>,
    /// What a task without its own `max_budget_usd` reserves against a budget when it starts.
    #[serde(default = "default_reservation")]
    pub budget_reservation_usd: f64,
    /// The approval rules a task started without its own gets (see [`crate::approval`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ask: Vec<String>,
    /// The agent tasks run when they name none and their group has no default (None: Claude
    /// Code).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<crate::agent::AgentKind>,
    /// Where events are sent (see [`crate::events`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notifiers: Vec<crate::events::Notifier>,
}

fn default_reservation() -> f64 {
    DEFAULT_RESERVATION_USD
}

/// What a task reserves against a budget unless it or the settings say otherwise, in USD.
pub const DEFAULT_RESERVATION_USD: f64 = 1.0;

fn yes() -> bool {
    true
}

fn default_retry_backoff() -> f64 {
    DEFAULT_RETRY_BACKOFF_SECS
}

/// The first wait before a retry unless the settings say otherwise, in seconds.
pub const DEFAULT_RETRY_BACKOFF_SECS: f64 = 30.0;

/// The most retries a task or the settings may ask for.
pub const MAX_RETRIES: u32 = 10;

/// One group's settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GroupSettings {
    /// At most this many of the group's agents run at once (and never more than the
    /// machine-wide limit). `None`: only the machine-wide limit holds.
    #[serde(default)]
    pub max_parallel: Option<usize>,
    /// Whether the group's new tasks are held back (`ccmp pause --group G`).
    #[serde(default)]
    pub paused: bool,
    /// The group's spend limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<Budget>,
    /// The agent the group's tasks run when they name none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<crate::agent::AgentKind>,
    /// Where the group's tasks run their agent: here (the default) or as Slurm jobs.
    #[serde(default, skip_serializing_if = "crate::executor::Executor::is_local")]
    pub executor: crate::executor::Executor,
}

impl Settings {
    /// The settings of `group` (`default` has none stored until it is changed).
    pub fn group(&self, group: &GroupName) -> Option<&GroupSettings> {
        self.groups.get(group)
    }

    /// Whether `group` exists: `default` always does.
    pub fn has_group(&self, group: &GroupName) -> bool {
        group.is_default() || self.groups.contains_key(group)
    }

    /// Where the tasks of `group` run their agent now (`local` for a group removed since).
    pub fn executor(&self, group: &GroupName) -> &crate::executor::Executor {
        static LOCAL: crate::executor::Executor = crate::executor::Executor::Local;
        self.group(group).map_or(&LOCAL, |g| &g.executor)
    }

    /// Every group, `default` first, with its settings.
    pub fn all_groups(&self) -> Vec<(GroupName, GroupSettings)> {
        let default = GroupName::default();
        let mut all = vec![(
            default.clone(),
            self.groups.get(&default).cloned().unwrap_or_default(),
        )];
        all.extend(
            self.groups
                .iter()
                .filter(|(name, _)| !name.is_default())
                .map(|(name, settings)| (name.clone(), settings.clone())),
        );
        all
    }
}

impl Settings {
    /// Settings as first stored: this limit, nothing paused, no groups but `default`.
    pub(crate) fn seeded(max_parallel: usize) -> Self {
        Self {
            max_parallel,
            max_parallel_source: SettingSource::Seeded,
            changed_at: Utc::now(),
            paused: false,
            groups: BTreeMap::new(),
            park_on_usage_limit: true,
            retries: 0,
            retry_backoff_secs: DEFAULT_RETRY_BACKOFF_SECS,
            budget: None,
            budget_reservation_usd: DEFAULT_RESERVATION_USD,
            ask: Vec::new(),
            notifiers: Vec::new(),
            agent: None,
        }
    }

    /// The settings as stored now, or the defaults if none are stored or they cannot be read
    /// (what a runner goes by when it decides what to do next).
    pub(crate) fn current(path: &Path) -> Self {
        Self::load(path)
            .ok()
            .flatten()
            .unwrap_or_else(|| Self::seeded(crate::config::DEFAULT_MAX_PARALLEL))
    }

    /// Reads the settings; `None` when none are stored yet.
    pub(crate) fn load(path: &Path) -> Result<Option<Self>, StoreError> {
        let bytes = match private_file::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(StoreError::read(path, e)),
        };
        serde_json::from_slice::<Self>(&bytes)
            .map(Some)
            .map_err(|e| {
                StoreError::read(
                    path,
                    std::io::Error::new(std::io::ErrorKind::InvalidData, e),
                )
            })
    }

    /// Replaces the settings, atomically.
    pub(crate) fn save(&self, path: &Path) -> Result<(), StoreError> {
        let mut bytes = serde_json::to_vec_pretty(self).map_err(StoreError::Serialize)?;
        bytes.push(b'\n');
        crate::store::write_atomic(path, &bytes).map_err(|e| StoreError::write(path, e))
    }

    /// Changes the stored settings with `change`, under `lock` (an flock file), so that two
    /// changes at once both land. `seed` stands in when none are stored.
    pub(crate) fn update(
        path: &Path,
        lock: &Path,
        seed: Self,
        change: impl FnOnce(&mut Self),
    ) -> Result<Self, StoreError> {
        let guard = private_file::open_lock(lock).map_err(|e| StoreError::write(lock, e))?;
        guard.lock().map_err(|e| StoreError::write(lock, e))?;
        let mut settings = Self::load(path)?.unwrap_or(seed);
        change(&mut settings);
        settings.changed_at = Utc::now();
        settings.save(path)?;
        Ok(settings)
    }

    /// Stores these settings unless some are stored already (two frontends opening a new state
    /// dir at once: the first one's stay).
    pub(crate) fn seed(&self, path: &Path) -> Result<(), StoreError> {
        // Every frontend seeds when it opens the store: the common case costs one stat, not a
        // temp file and an fsync.
        if std::fs::symlink_metadata(path).is_ok() {
            return Ok(());
        }
        let mut bytes = serde_json::to_vec_pretty(self).map_err(StoreError::Serialize)?;
        bytes.push(b'\n');
        crate::store::write_new(path, &bytes).map_err(|e| StoreError::write(path, e))
    }
}
