//! What a queued task waits for, told right after it is started: so that a frontend's reply
//! says truthfully whether it is starting now, and if not, why.

use crate::ccmp::{Ccmp, ListQuery};
use crate::error::Error;
use crate::group::GroupName;
use crate::task::{TaskRecord, TaskStatus};

/// Why a queued task has not started, as far as can be told now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartOutlook {
    /// Nothing holds it back: it is starting now.
    Starting,
    /// It runs after these tasks (short ids), once all have succeeded.
    AfterDependencies(Vec<String>),
    /// New tasks are paused machine-wide.
    Paused,
    /// Its group is paused.
    GroupPaused(GroupName),
    /// Its group runs as many agents as its own limit allows.
    GroupFull {
        /// The group.
        group: GroupName,
        /// Its limit.
        limit: usize,
    },
    /// A budget it falls under has no room for its reservation; the text says which.
    BudgetSpent(String),
    /// It was submitted to Slurm, which has not started it yet, for this reason (`Priority`,
    /// `Resources`).
    InSlurmQueue {
        /// The Slurm job.
        job_id: u64,
        /// Slurm's reason, if it gave one.
        reason: Option<String>,
    },
    /// The machine runs as many agents as its limit allows.
    MachineFull {
        /// The machine-wide limit.
        limit: usize,
    },
}

impl Ccmp {
    /// Why `record` (queued) has not started yet, or that it is starting now. `None` for a task
    /// that is no longer queued.
    pub fn start_outlook(&self, record: &TaskRecord) -> Result<Option<StartOutlook>, Error> {
        if record.status != TaskStatus::Queued {
            return Ok(None);
        }
        if let Some(job) = record.slurm.as_ref().filter(|job| job.waits()) {
            return Ok(Some(StartOutlook::InSlurmQueue {
                job_id: job.job_id,
                reason: job.reason.clone(),
            }));
        }
        let waiting_for: Vec<String> = record
            .spec
            .after
            .iter()
            .filter(|id| {
                self.store
                    .load(id)
                    .is_ok_and(|d| d.status != TaskStatus::Succeeded)
            })
            .map(|id| id.short())
            .collect();
        if !waiting_for.is_empty() {
            return Ok(Some(StartOutlook::AfterDependencies(waiting_for)));
        }
        let settings = self.max_parallel()?;
        if settings.paused {
            return Ok(Some(StartOutlook::Paused));
        }
        let group = &record.spec.group;
        let own = settings.group(group).cloned().unwrap_or_default();
        if own.paused {
            return Ok(Some(StartOutlook::GroupPaused(group.clone())));
        }
        if let Some(layout) = self.layout()
            && let Some(why) = crate::supervisor::budget_block(&layout, record)
        {
            return Ok(Some(StartOutlook::BudgetSpent(why)));
        }
        let (running, in_group) = self.running_besides(record)?;
        if let Some(limit) = own.max_parallel
            && in_group >= limit
        {
            return Ok(Some(StartOutlook::GroupFull {
                group: group.clone(),
                limit,
            }));
        }
        // A group whose agents run elsewhere (Slurm) takes none of the machine's slots.
        if running >= settings.max_parallel && settings.executor(group).is_local() {
            return Ok(Some(StartOutlook::MachineFull {
                limit: settings.max_parallel,
            }));
        }
        Ok(Some(StartOutlook::Starting))
    }

    /// Agents running now besides `record`'s, in all and in its group.
    fn running_besides(&self, record: &TaskRecord) -> Result<(usize, usize), Error> {
        if let Some(layout) = self.layout() {
            // The held slots name their tasks and groups: a few small reads, however many
            // tasks wait.
            let (total, by_group) = crate::supervisor::running_now(&layout, &record.id)
                .map_err(|e| crate::error::StoreError::read(layout.slots(), e))?;
            let in_group = by_group.get(&record.spec.group).copied().unwrap_or(0);
            return Ok((total, in_group));
        }
        let running = self.list(&ListQuery::from_filters(
            vec![TaskStatus::Running],
            false,
            Some(usize::MAX),
        ))?;
        let besides: Vec<&TaskRecord> =
            running.tasks.iter().filter(|t| t.id != record.id).collect();
        let in_group = besides
            .iter()
            .filter(|t| t.spec.group == record.spec.group)
            .count();
        Ok((besides.len(), in_group))
    }
}
