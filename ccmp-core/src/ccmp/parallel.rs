//! The machine-wide limit on running agents: read and changed live, from any frontend.

use std::path::PathBuf;

use crate::ccmp::Ccmp;
use crate::error::Error;
use crate::settings::{MAX_PARALLEL_LIMIT, SettingSource, Settings};

impl Ccmp {
    /// Keeps machine-wide settings in `path` (a file store's `settings.json`), storing this
    /// frontend's limit there if none is stored yet (`CCMP_MAX_PARALLEL` only seeds it).
    pub(crate) fn with_settings(mut self, path: PathBuf) -> Self {
        if let Err(e) = self.seed_settings().seed(&path) {
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
        Ok(stored.unwrap_or_else(|| self.seed_settings()))
    }

    fn seed_settings(&self) -> Settings {
        Settings::seeded(self.config.max_parallel)
    }

    /// Changes the machine-wide settings and wakes the head of the line to look again.
    pub(super) fn change_settings(
        &self,
        change: impl FnOnce(&mut Settings),
    ) -> Result<Settings, Error> {
        let Some(path) = &self.settings else {
            return Err(Error::InvalidArgument(
                "tasks in memory have no machine-wide settings; set Config::max_parallel instead"
                    .into(),
            ));
        };
        let layout = crate::layout::StateLayout::new(path.parent().unwrap_or(path));
        let settings =
            Settings::update(path, &layout.settings_lock(), self.seed_settings(), change)?;
        crate::supervisor::poke_queue(&layout);
        Ok(settings)
    }

    /// Holds new tasks back (`paused`) or lets them start again, machine-wide. Running tasks
    /// go on either way.
    pub fn set_paused(&self, paused: bool) -> Result<Settings, Error> {
        self.change_settings(|settings| settings.paused = paused)
    }

    /// Sets the machine-wide limit, at once for every task: raising it starts queued tasks
    /// now; lowering it lets running tasks finish and starts no new one until fewer run.
    pub fn set_max_parallel(&self, limit: usize) -> Result<Settings, Error> {
        check_limit(limit)?;
        self.change_settings(|settings| {
            settings.max_parallel = limit;
            settings.max_parallel_source = SettingSource::Set;
        })
    }
}

/// An error unless `limit` is a limit on running agents ccmp accepts.
pub(super) fn check_limit(limit: usize) -> Result<(), Error> {
    if (1..=MAX_PARALLEL_LIMIT).contains(&limit) {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!(
            "the limit must be a whole number from 1 to {MAX_PARALLEL_LIMIT}, got {limit}"
        )))
    }
}

/// The settings a person may set by name (`ccmp settings KEY=VALUE`), besides the limit, the
/// pause and the groups, which have their own commands.
pub const SETTABLE: [&str; 6] = [
    "park_on_usage_limit",
    "retries",
    "retry_backoff",
    "budget_reservation",
    "ask",
    "agent",
];

impl Ccmp {
    /// The agent a task in `group` runs when its request names none: the group's default, else
    /// the machine-wide one (`ccmp settings agent=codex`), else Claude Code.
    pub fn default_agent(&self, group: Option<&str>) -> Result<crate::agent::AgentKind, Error> {
        let settings = self.max_parallel()?;
        let group: Option<crate::group::GroupName> = group.and_then(|g| g.parse().ok());
        Ok(group
            .as_ref()
            .and_then(|g| settings.group(g))
            .and_then(|g| g.agent)
            .or(settings.agent)
            .unwrap_or_default())
    }

    /// Sets one of the [`SETTABLE`] settings from its text: `park_on_usage_limit=true|false`,
    /// `retries=N` (0 to 10), `retry_backoff=30s` (a duration: the first wait before a retry).
    pub fn set_setting(&self, key: &str, value: &str) -> Result<Settings, Error> {
        let bad = |expected: &str| {
            Error::InvalidArgument(format!("{key} takes {expected}, got `{value}`"))
        };
        match key {
            "park_on_usage_limit" => {
                let park = match value {
                    "true" | "on" | "yes" => true,
                    "false" | "off" | "no" => false,
                    _ => return Err(bad("true or false")),
                };
                self.change_settings(|s| s.park_on_usage_limit = park)
            }
            "retries" => {
                let retries = value
                    .parse::<u32>()
                    .ok()
                    .filter(|n| *n <= crate::settings::MAX_RETRIES)
                    .ok_or_else(|| bad("a whole number from 0 to 10"))?;
                self.change_settings(|s| s.retries = retries)
            }
            "retry_backoff" => {
                let secs = crate::duration::parse_duration(value)
                    .ok()
                    .map(|d| d.as_secs_f64())
                    .filter(|s| *s <= 3600.0)
                    .ok_or_else(|| bad("a duration up to 1h, such as 30s or 2m"))?;
                self.change_settings(|s| s.retry_backoff_secs = secs)
            }
            "ask" => {
                let rules = if value == "none" {
                    Vec::new()
                } else {
                    split_rules(value)
                };
                for rule in &rules {
                    rule.parse::<crate::approval::policy::AskRule>()?;
                }
                if rules.is_empty() && value != "none" {
                    return Err(bad(
                        "rules separated by commas, such as Bash(git push:*),Write, or none",
                    ));
                }
                self.change_settings(|s| s.ask = rules)
            }
            "agent" => {
                let agent = value
                    .parse::<crate::agent::AgentKind>()
                    .map_err(Error::InvalidArgument)?;
                self.change_settings(|s| s.agent = Some(agent).filter(|a| *a != Default::default()))
            }
            "budget_reservation" => {
                let usd = value
                    .trim_start_matches('$')
                    .parse::<f64>()
                    .ok()
                    .filter(|n| n.is_finite() && *n >= 0.0)
                    .ok_or_else(|| bad("an amount in USD, such as 1.50"))?;
                self.change_settings(|s| s.budget_reservation_usd = usd)
            }
            _ => Err(Error::InvalidArgument(format!(
                "there is no setting `{key}`; the settings are {}",
                SETTABLE.join(", ")
            ))),
        }
    }
}

/// Rules separated by commas, where a comma inside a rule's parentheses is part of the rule.
fn split_rules(text: &str) -> Vec<String> {
    let mut rules = Vec::new();
    let (mut depth, mut current) = (0usize, String::new());
    for c in text.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                rules.push(std::mem::take(&mut current));
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    rules.push(current);
    rules
        .into_iter()
        .map(|r| r.trim().to_owned())
        .filter(|r| !r.is_empty())
        .collect()
}
