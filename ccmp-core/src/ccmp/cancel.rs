//! Cancelling tasks: asking the runner to stop, and waiting until it has.

use std::time::Duration;

use crate::ccmp::{Ccmp, WaitMode};
use crate::error::Error;
use crate::id::TaskId;
use crate::task::{TaskRecord, TaskStatus};

/// What [`Ccmp::cancel`] did.
#[derive(Debug, Clone)]
pub struct CancelOutcome {
    /// The task as it is now.
    pub record: TaskRecord,
    /// Whether the task had already finished, so nothing was cancelled.
    pub already_finished: bool,
}

impl Ccmp {
    /// Asks a queued or running task to stop and returns at once; the task records `cancelled`
    /// when it has stopped (within the grace period). A finished task is left as it is.
    pub fn request_cancel(&self, id: &TaskId) -> Result<CancelOutcome, Error> {
        let record = self.status(id)?;
        if record.status == TaskStatus::NeedsApproval
            && let Some(layout) = self.layout()
        {
            // No runner waits with it: end it here, under the lock an answer takes.
            let _locked = crate::approval::answers::Locked::open(&layout, id)
                .map_err(|e| crate::error::StoreError::write(layout.task_dir(id), e))?;
            let mut record = self.status(id)?;
            if record.status == TaskStatus::NeedsApproval {
                record.pending_approval = None;
                record.progress = Some("cancelled".into());
                record.finish(
                    TaskStatus::Cancelled,
                    crate::task::Outcome::failure(
                        "cancelled on request while waiting for an approval",
                    ),
                );
                self.store.save(&record)?;
                return Ok(CancelOutcome {
                    record,
                    already_finished: false,
                });
            }
        }
        let already_finished = record.status.is_terminal();
        if !already_finished {
            self.supervisor.cancel(&record)?;
        }
        Ok(CancelOutcome {
            record,
            already_finished,
        })
    }

    /// Cancels a queued or running task and waits (up to the grace period and a little more)
    /// for it to record `cancelled`.
    pub async fn cancel(&self, id: &TaskId) -> Result<CancelOutcome, Error> {
        let CancelOutcome {
            record,
            already_finished,
        } = self.request_cancel(id)?;
        if already_finished {
            return Ok(CancelOutcome {
                record,
                already_finished,
            });
        }
        let outcome = self
            .wait(
                &[record.id],
                WaitMode::All,
                self.config.grace + Duration::from_secs(5),
            )
            .await?;
        let record = outcome
            .finished
            .into_iter()
            .chain(outcome.pending)
            .next()
            .unwrap_or(record);
        Ok(CancelOutcome {
            record,
            already_finished: false,
        })
    }
}
