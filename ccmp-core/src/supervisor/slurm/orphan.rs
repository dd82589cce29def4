//! A Slurm task whose runner on the starting machine is gone (killed, or that machine
//! restarted): its job may still be running on the cluster, and records its own outcome there.
//! Such a task is not lost while Slurm still runs its job, and is cancelled with `scancel`.

use super::{client, ending};
use crate::error::SupervisorError;
use crate::store::FsStore;
use crate::task::{TaskRecord, TaskStatus};

/// What became of the job of a task whose runner is gone.
pub(crate) enum Orphan {
    /// Slurm still has the job queued or running: the task is not lost.
    JobLives,
    /// The job ended without recording an outcome: the task ends so, for this reason.
    JobEnded(TaskStatus, String),
    /// The job had ended and handed its run back (or there is none): the runner's death is the
    /// story.
    RunnerLost,
}

/// Asks Slurm about the job of `record`, whose runner is gone.
pub(crate) fn judge(store: &FsStore, record: &TaskRecord) -> Orphan {
    let Some(job) = &record.slurm else {
        return Orphan::RunnerLost;
    };
    let layout = store.layout();
    if layout.slurm_end(&record.id).exists() {
        return Orphan::RunnerLost;
    }
    match client::query(job.job_id) {
        Ok(Some(info)) if !info.ended() => Orphan::JobLives,
        Ok(info) => {
            let asked = layout.cancel_marker(&record.id).exists();
            let log = layout.slurm_job_log(&record.id);
            let (status, why) = ending::judge(job.job_id, info.as_ref(), asked, &log);
            Orphan::JobEnded(status, why)
        }
        // Slurm cannot be asked now: calling the task lost could be wrong; look again later.
        Err(e) => {
            tracing::warn!("could not ask Slurm about job {}: {e}", job.job_id);
            Orphan::JobLives
        }
    }
}

/// Cancels the job of a task whose runner is gone, if Slurm still has it.
pub(crate) fn cancel(record: &TaskRecord) -> Result<(), SupervisorError> {
    let Some(job) = &record.slurm else {
        return Ok(());
    };
    // A job that has ended needs nothing (and `scancel` would refuse it).
    if client::query(job.job_id).is_ok_and(|info| info.is_none_or(|i| i.ended())) {
        return Ok(());
    }
    client::cancel(job.job_id).map_err(|source| SupervisorError::Scancel {
        job_id: job.job_id,
        source,
    })
}
