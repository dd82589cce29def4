//! Waiting for tasks to finish, without polling.

use std::collections::HashSet;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::ccmp::Ccmp;
use crate::error::Error;
use crate::task::TaskRecord;

/// The longest `wait` goes without looking at its tasks, even when told of no change.
const LOOK_AGAIN: Duration = Duration::from_secs(1);
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

impl Ccmp {
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
}
