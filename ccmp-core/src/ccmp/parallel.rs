//! The machine-wide limit on running agents: read and changed live, from any frontend.

use std::path::PathBuf;

use chrono::Utc;

use crate::ccmp::Ccmp;
use crate::error::Error;
use crate::settings::{MAX_PARALLEL_LIMIT, SettingSource, Settings};

impl Ccmp {
    /// Keeps machine-wide settings in `path` (a file store's `settings.json`), storing this
    /// frontend's limit there if none is stored yet (`CCMP_MAX_PARALLEL` only seeds it).
    pub(crate) fn with_settings(mut self, path: PathBuf) -> Self {
        let seed = Settings {
            max_parallel: self.config.max_parallel,
            max_parallel_source: SettingSource::Seeded,
            changed_at: Utc::now(),
        };
        if let Err(e) = seed.seed(&path) {
            tracing::warn!("cannot store the machine-wide settings: {e}");
        }
        self.settings = Some(path);
        self
    }

    /// The limit on agents running at once, and where it came from. With a file store it is
    /// the machine-wide setting every runner obeys; in memory it is this facade's config.
    pub fn max_parallel(&self) -> Result<Settings, Error> {
        let stored = match &self.settings {
            Some(path) => Settings::load(path)?,
            None => None,
        };
        Ok(stored.unwrap_or_else(|| Settings {
            max_parallel: self.config.max_parallel,
            max_parallel_source: SettingSource::Seeded,
            changed_at: Utc::now(),
        }))
    }

    /// Sets the machine-wide limit, at once for every task: raising it starts queued tasks
    /// now; lowering it lets running tasks finish and starts no new one until fewer run.
    pub fn set_max_parallel(&self, limit: usize) -> Result<Settings, Error> {
        if !(1..=MAX_PARALLEL_LIMIT).contains(&limit) {
            return Err(Error::InvalidArgument(format!(
                "the limit must be a whole number from 1 to {MAX_PARALLEL_LIMIT}, got {limit}"
            )));
        }
        let Some(path) = &self.settings else {
            return Err(Error::InvalidArgument(
                "tasks in memory have no machine-wide limit; set Config::max_parallel instead"
                    .into(),
            ));
        };
        let settings = Settings {
            max_parallel: limit,
            max_parallel_source: SettingSource::Set,
            changed_at: Utc::now(),
        };
        settings.save(path)?;
        // Wake the head of the line: a raised limit may have a slot for it now.
        if let Some(layout) = path.parent().map(crate::layout::StateLayout::new) {
            crate::supervisor::poke_queue(&layout);
        }
        Ok(settings)
    }
}
