//! Groups of tasks with their own limit and pause, machine-wide: made, changed, listed and
//! removed from any frontend, obeyed by every runner at its next look.

use serde::Serialize;

use super::parallel::check_limit;
use crate::ccmp::{Ccmp, ListQuery};
use crate::error::Error;
use crate::executor::Executor;
use crate::group::GroupName;
use crate::settings::{GroupSettings, Settings};
use crate::task::TaskStatus;

/// A group as it is now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupStatus {
    /// The group's name.
    pub name: GroupName,
    /// Its own limit on running agents; `None` when only the machine-wide limit holds.
    pub max_parallel: Option<usize>,
    /// Whether its new tasks are held back.
    pub paused: bool,
    /// Its tasks running now.
    pub running: usize,
    /// Its tasks not started yet (in the line, or waiting for their dependencies).
    pub queued: usize,
    /// Where its tasks run their agent: `local`, or Slurm jobs with these options.
    pub executor: Executor,
}

impl Ccmp {
    /// Every group, `default` first, with its limit, pause and how many of its tasks run and
    /// wait.
    pub fn groups(&self) -> Result<Vec<GroupStatus>, Error> {
        let settings = self.max_parallel()?;
        let live = self.list(&ListQuery {
            limit: usize::MAX,
            ..ListQuery::active()
        })?;
        Ok(settings
            .all_groups()
            .into_iter()
            .map(|(name, group)| {
                let count = |status: TaskStatus| {
                    live.tasks
                        .iter()
                        .filter(|t| t.spec.group == name && t.status == status)
                        .count()
                };
                GroupStatus {
                    running: count(TaskStatus::Running),
                    queued: count(TaskStatus::Queued),
                    max_parallel: group.max_parallel,
                    paused: group.paused,
                    executor: group.executor,
                    name,
                }
            })
            .collect())
    }

    /// Makes a group, with a limit of its own or none (then only the machine-wide limit holds).
    pub fn add_group(&self, name: &GroupName, max_parallel: Option<usize>) -> Result<(), Error> {
        if let Some(limit) = max_parallel {
            check_limit(limit)?;
        }
        let mut existed = false;
        self.change_settings(|settings| {
            if settings.has_group(name) {
                existed = true;
                return;
            }
            settings.groups.insert(
                name.clone(),
                GroupSettings {
                    max_parallel,
                    ..GroupSettings::default()
                },
            );
        })?;
        if existed {
            return Err(Error::InvalidArgument(format!(
                "group {name} exists already; change its limit with `ccmp parallel N --group {name}`"
            )));
        }
        Ok(())
    }

    /// Removes a group. Refused for `default` and while the group has queued or running
    /// tasks; its finished tasks keep its name.
    pub fn remove_group(&self, name: &GroupName) -> Result<(), Error> {
        if name.is_default() {
            return Err(Error::InvalidArgument(
                "the default group cannot be removed".into(),
            ));
        }
        self.check_group(name)?;
        let live = self
            .groups()?
            .into_iter()
            .find(|g| g.name == *name)
            .map_or(0, |g| g.running + g.queued);
        if live > 0 {
            return Err(Error::InvalidArgument(format!(
                "group {name} has {live} queued or running task(s); wait for them or cancel them, then remove it"
            )));
        }
        self.change_settings(|settings| {
            settings.groups.remove(name);
        })?;
        Ok(())
    }

    /// Sets a group's own limit (`None`: only the machine-wide limit holds), at once for its
    /// queued tasks; lowering it lets running tasks finish.
    pub fn set_group_limit(
        &self,
        name: &GroupName,
        max_parallel: Option<usize>,
    ) -> Result<Settings, Error> {
        if let Some(limit) = max_parallel {
            check_limit(limit)?;
        }
        self.check_group(name)?;
        self.change_settings(|settings| {
            settings
                .groups
                .entry(name.clone())
                .or_default()
                .max_parallel = max_parallel;
        })
    }

    /// Sets the agent a group's tasks run when they name none (`None`: the machine-wide default).
    pub fn set_group_agent(
        &self,
        name: &GroupName,
        agent: Option<crate::agent::AgentKind>,
    ) -> Result<Settings, Error> {
        self.check_group(name)?;
        self.change_settings(|settings| {
            settings.groups.entry(name.clone()).or_default().agent = agent;
        })
    }

    /// Sets where a group's tasks run their agent, from their next run on. Slurm options are
    /// checked, and `sbatch` must be on `PATH` (jobs are submitted from here).
    pub fn set_group_executor(
        &self,
        name: &GroupName,
        executor: Executor,
    ) -> Result<Settings, Error> {
        check_executor(&executor)?;
        self.check_group(name)?;
        self.change_settings(|settings| {
            settings.groups.entry(name.clone()).or_default().executor = executor;
        })
    }

    /// Holds a group's new tasks back, or lets them start again. Its running tasks go on.
    pub fn set_group_paused(&self, name: &GroupName, paused: bool) -> Result<Settings, Error> {
        self.check_group(name)?;
        self.change_settings(|settings| {
            settings.groups.entry(name.clone()).or_default().paused = paused;
        })
    }

    /// Checks an executor before a group is given it: its Slurm options, and that `sbatch` is
    /// here to submit with.
    pub fn check_executor(&self, executor: &Executor) -> Result<(), Error> {
        check_executor(executor)
    }

    /// An error naming the groups there are, unless `name` is one of them.
    pub fn check_group(&self, name: &GroupName) -> Result<(), Error> {
        let settings = self.max_parallel()?;
        if settings.has_group(name) {
            return Ok(());
        }
        let names: Vec<String> = settings
            .all_groups()
            .into_iter()
            .map(|(n, _)| n.to_string())
            .collect();
        Err(Error::InvalidArgument(format!(
            "group {name} does not exist (groups: {}); make it first with `ccmp group add {name}`",
            names.join(", ")
        )))
    }
}

fn check_executor(executor: &Executor) -> Result<(), Error> {
    let Executor::Slurm(options) = executor else {
        return Ok(());
    };
    options.check()?;
    if !crate::supervisor::slurm_available() {
        return Err(Error::InvalidArgument(
            "--executor slurm: `sbatch` is not on PATH here; ccmp submits Slurm jobs with Slurm's own commands, so run it on a machine that has them (a login node)".into(),
        ));
    }
    Ok(())
}
