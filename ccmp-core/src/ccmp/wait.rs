//! Waiting for tasks to finish, without polling.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::ccmp::Ccmp;
use crate::error::Error;
use crate::id::TaskId;
use crate::task::{TaskRecord, TaskStatus};

/// The longest single wait.
pub const MAX_WAIT: Duration = Duration::from_secs(24 * 3600);

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

impl WaitMode {
    /// Both modes.
    pub const ALL: [WaitMode; 2] = [Self::All, Self::Any];

    /// The name frontends use.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Any => "any",
            Self::All => "all",
        }
    }
}

impl std::str::FromStr for WaitMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        crate::error::parse_name(s, &Self::ALL, Self::as_str, "wait mode")
    }
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

impl WaitOutcome {
    /// Whether any task the wait saw finish did not succeed.
    pub fn any_failed(&self) -> bool {
        self.finished.iter().any(|r| !r.status.is_success())
    }
}

impl Ccmp {
    /// Waits until any or all of `ids` have finished, or `timeout` passes (at most
    /// [`MAX_WAIT`]). A timeout of zero looks once. It also returns as soon as one of them
    /// needs a person's approval: it cannot go on until someone answers.
    pub async fn wait(
        &self,
        ids: &[TaskId],
        mode: WaitMode,
        timeout: Duration,
    ) -> Result<WaitOutcome, Error> {
        if ids.is_empty() {
            return Err(Error::InvalidArgument(
                "give at least one task id to wait for".into(),
            ));
        }
        let deadline = tokio::time::Instant::now() + timeout.min(MAX_WAIT);
        let mut changes = self.watch(ids);
        let mut timed_out = false;
        loop {
            match tokio::time::timeout_at(deadline, changes.next()).await {
                Ok(Some(Ok(_))) => {}
                Ok(Some(Err(e))) => return Err(e),
                Ok(None) => break,
                Err(_) => {
                    timed_out = true;
                    break;
                }
            }
            let latest = changes.latest();
            let done = match mode {
                WaitMode::Any => latest.iter().any(|r| r.status.is_terminal()),
                WaitMode::All => latest.iter().all(|r| r.status.is_terminal()),
            };
            if done || latest.iter().any(|r| r.status == TaskStatus::NeedsApproval) {
                break;
            }
        }
        let (finished, pending): (Vec<TaskRecord>, Vec<TaskRecord>) = changes
            .latest()
            .into_iter()
            .cloned()
            .partition(|r| r.status.is_terminal());
        let done = match mode {
            WaitMode::Any => !finished.is_empty(),
            WaitMode::All => pending.is_empty(),
        } || pending
            .iter()
            .any(|r| r.status == TaskStatus::NeedsApproval);
        Ok(WaitOutcome {
            finished,
            pending,
            timed_out: timed_out && !done,
        })
    }
}
