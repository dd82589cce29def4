//! Removing tasks, their logs, and the worktrees they ran in (keeping branches with work).

use std::time::Duration;

use chrono::Utc;
use serde::{Deserialize, Serialize};

use crate::ccmp::{Ccmp, ListQuery};
use crate::error::{Error, StoreError};
use crate::id::TaskId;
use crate::task::TaskRecord;
use crate::worktree::{self, WorktreeRemoval};

/// Which tasks [`Ccmp::cleanup`] removes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CleanupTarget {
    /// One task. An active task is refused unless `force`, which cancels it first.
    Task {
        /// The task.
        id: TaskId,
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

impl Ccmp {
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
                match self.status(&id) {
                    Ok(record) if !record.status.is_terminal() => {
                        if !force {
                            return Err(Error::TaskActive {
                                id: id.short(),
                                status: record.status,
                            });
                        }
                        let outcome = self.cancel(&id).await?;
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
                    group: None,
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
}
