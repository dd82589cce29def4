//! Waiting for the tasks a task runs after (`after`), before it joins the queue.
//!
//! A task with dependencies waits outside the line, so it holds back no task behind it. Each
//! dependency is waited for in turn until it ends: if it succeeded, the next; if it ended any
//! other way (or its record is gone: cleaned up before it ended), the task ends `skipped`
//! without running, and says which dependency and why. Dependencies name tasks that existed
//! when the task was made, so there are no cycles.
//!
//! How a waiter learns that a dependency moved is the supervisor's business: a detached runner
//! sleeps in a blocking `flock` on the dependency's `runner.lock`, which the kernel grants when
//! that runner exits (however it exits), so waiting costs no CPU and no inotify instance; an
//! in-process task watches the store.

use std::future::Future;
use std::pin::Pin;

use tokio_util::sync::CancellationToken;

use super::queue::say_why;
use crate::id::TaskId;
use crate::store::TaskStore;
use crate::task::{TaskRecord, TaskStatus};

/// A future that resolves when a dependency may have moved.
pub(crate) type Wake = Pin<Box<dyn Future<Output = ()> + Send>>;

/// How a supervisor waits for another task.
pub(crate) trait DependencyWatch: Send + Sync {
    /// Checks a non-terminal record against reality (a task whose runner died becomes `lost`).
    fn refresh(&self, record: TaskRecord) -> TaskRecord;
    /// A wake-up for when `id` may have moved. Made before its record is read, so that no
    /// change between the read and the wait is missed.
    fn until_moved(&self, id: &TaskId) -> Wake;
}

/// How the wait ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Dependencies {
    /// Every dependency succeeded: the task may join the queue.
    Met,
    /// One did not: the task ends `skipped` with this reason.
    Unmet(String),
    /// The task was cancelled while it waited.
    Cancelled,
}

/// Waits until every task `record` runs after has ended, and says whether all succeeded.
pub(crate) async fn wait_for(
    store: &dyn TaskStore,
    record: &TaskRecord,
    cancel: &CancellationToken,
    watch: &dyn DependencyWatch,
) -> Dependencies {
    let mut last_why = None;
    for dependency in &record.spec.after {
        loop {
            let wake = watch.until_moved(dependency);
            let current = match store.load(dependency) {
                Ok(current) => watch.refresh(current),
                Err(e) if e.is_not_found() => {
                    return Dependencies::Unmet(format!(
                        "dependency {} was cleaned up before it ended",
                        dependency.short()
                    ));
                }
                Err(e) => {
                    return Dependencies::Unmet(format!(
                        "dependency {} could not be read: {e}",
                        dependency.short()
                    ));
                }
            };
            if current.status.is_success() {
                break;
            }
            if current.status.is_terminal() {
                return Dependencies::Unmet(unmet_reason(&current));
            }
            let why = format!("waiting for {} ({})", dependency.short(), current.status);
            say_why(store, record, &mut last_why, why);
            tokio::select! {
                () = wake => {}
                () = cancel.cancelled() => return Dependencies::Cancelled,
            }
        }
    }
    Dependencies::Met
}

/// Readies a follow-up that waited for the task it follows: it resumes the session that task
/// ended with (Claude Code keeps a session's id when it resumes it). `Err` says why it cannot.
pub(crate) fn resume_after_followed(
    store: &dyn TaskStore,
    mut record: TaskRecord,
) -> Result<TaskRecord, String> {
    let Some(followed) = record.follows.filter(|f| record.spec.after.contains(f)) else {
        return Ok(record);
    };
    match store.load(&followed).map(|f| f.session_id) {
        Ok(Some(session)) => {
            record.spec.resume_session = Some(session);
            Ok(record)
        }
        _ if record.spec.resume_session.is_some() => Ok(record),
        _ => Err(format!(
            "the task it follows, {}, ended without a session to resume; start a new task instead",
            followed.short()
        )),
    }
}

/// Why a task is skipped because of `dependency`, which ended without success. A skipped
/// dependency passes on its own first cause, so a long chain names the task that failed.
fn unmet_reason(dependency: &TaskRecord) -> String {
    let short = dependency.id.short();
    match dependency.status {
        TaskStatus::Skipped => {
            let cause = dependency
                .error()
                .map(root_cause)
                .unwrap_or("no reason recorded");
            format!("dependency {short} was skipped ({cause})")
        }
        TaskStatus::Failed => format!("dependency {short} failed"),
        TaskStatus::TimedOut => format!("dependency {short} timed out"),
        TaskStatus::Cancelled => format!("dependency {short} was cancelled"),
        TaskStatus::Lost => format!("dependency {short} was lost (its runner died)"),
        TaskStatus::Queued
        | TaskStatus::Running
        | TaskStatus::Parked
        | TaskStatus::NeedsApproval
        | TaskStatus::Succeeded => {
            format!("dependency {short} is {}", dependency.status)
        }
    }
}

/// The first cause in a skipped task's reason: `dependency b was skipped (dependency a
/// failed)` gives `dependency a failed`.
fn root_cause(reason: &str) -> &str {
    match reason.split_once(" was skipped (") {
        Some((_, inner)) => root_cause(inner.strip_suffix(')').unwrap_or(inner)),
        None => reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chain_names_its_first_cause() {
        assert_eq!(
            root_cause("dependency 1234 failed"),
            "dependency 1234 failed"
        );
        assert_eq!(
            root_cause("dependency 2222 was skipped (dependency 1111 timed out)"),
            "dependency 1111 timed out"
        );
    }
}
