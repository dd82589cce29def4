//! From the task's runner: one attempt of the agent run as a Slurm job. The runner has taken its
//! slot in ccmp's queue (so a group's limit counts Slurm jobs submitted and not ended); this
//! submits the job, follows it to its end while holding that slot, and hands back how the run
//! ended, just as a local run would.
//!
//! Following costs little: while the job waits in Slurm's queue, `squeue` is asked with a
//! backoff (250 ms doubling to 5 s), and its reason (`Priority`, `Resources`) becomes the task's
//! progress; while ccmp's process in the job runs, the runner sleeps in a blocking `flock` on
//! `slurm-job.lock`, which the kernel (or the shared filesystem's lock manager) grants when that
//! process exits.

use std::ffi::OsString;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::client::{self, JobInfo, Submission};
use super::ending;
use super::handoff::{self, AttemptEnd, AttemptInput};
use super::job::SLURM_ATTEMPT_CMD;
use crate::executor::SlurmOptions;
use crate::private_file;
use crate::store::{FsStore, TaskStore};
use crate::supervisor::agent_loop::{self, Continuation, RunContext, RunEnd};
use crate::task::{SlurmJob, TaskRecord, TaskStatus};

/// The longest wait between two looks at a job waiting in Slurm's queue.
const LONGEST_LOOK: Duration = Duration::from_secs(5);
/// How long to wait for Slurm to see a job end after ccmp's process in it has exited.
const ENDING_PATIENCE: Duration = Duration::from_secs(120);

/// Runs one attempt of `record`'s agent in a Slurm job with `options`. The job runs the ccmp
/// binary this runner is (`ctx.trampoline`: the same path must work on the nodes), with the
/// runner's grace period.
pub(crate) async fn run_attempt(
    ctx: &RunContext,
    store: &FsStore,
    record: TaskRecord,
    options: &SlurmOptions,
    cancel: &CancellationToken,
    cancel_reason: &(dyn Fn() -> String + Sync),
    input: Option<&Continuation>,
) -> RunEnd {
    if cancel.is_cancelled() {
        let record =
            agent_loop::finish_early(store, record, TaskStatus::Cancelled, cancel_reason()).await;
        return RunEnd::Ended(record);
    }
    let id = record.id;
    let (program, grace) = (ctx.trampoline.clone().unwrap_or_default(), ctx.grace);
    let layout = store.layout().clone();
    let end_path = layout.slurm_end(&id);
    let _ = std::fs::remove_file(&end_path);
    let handed = AttemptInput {
        record: record.clone(),
        input: input.cloned(),
    };
    if let Err(e) = handoff::write(&layout.slurm_attempt(&id), &handed) {
        let error = format!("could not write what the Slurm job is to run: {e}");
        return RunEnd::Ended(
            agent_loop::finish_early(store, record, TaskStatus::Failed, error).await,
        );
    }
    let job_name = format!("ccmp-{}", id.short());
    let output = layout.slurm_job_log(&id);
    let working_dir = record.agent_dir().to_owned();
    let env: Vec<(&'static str, OsString)> = vec![
        ("CCMP_SLURM_PROGRAM", program.as_os_str().to_owned()),
        ("CCMP_SLURM_CMD", SLURM_ATTEMPT_CMD.into()),
        ("CCMP_SLURM_STATE", store.root().as_os_str().to_owned()),
        ("CCMP_SLURM_TASK", id.simple().to_string().into()),
        ("CCMP_SLURM_GRACE_MS", grace.as_millis().to_string().into()),
    ];
    let sbatch_options = options.sbatch_args();
    let submitted = tokio::task::spawn_blocking(move || {
        client::submit(&Submission {
            job_name,
            working_dir: &working_dir,
            output: &output,
            options: sbatch_options,
            env,
        })
    })
    .await
    .unwrap_or_else(|e| Err(std::io::Error::other(e)));
    let job_id = match submitted {
        Ok(job_id) => job_id,
        Err(e) => {
            let error = format!(
                "could not submit the task to Slurm: {e}; check that `sbatch` works here and the group's options (`ccmp group list`)"
            );
            return RunEnd::Ended(
                agent_loop::finish_early(store, record, TaskStatus::Failed, error).await,
            );
        }
    };
    let mut job = SlurmJob {
        job_id,
        node: None,
        state: "PENDING".to_owned(),
        reason: None,
        submitted_at: chrono::Utc::now(),
    };
    note_pending(store, &id, &job);

    let mut scancelled = false;
    let mut wait = Duration::from_millis(250);
    let last = loop {
        if cancel.is_cancelled() && !scancelled {
            scancelled = true;
            stop_job(job_id).await;
        }
        if end_path.exists() {
            break None;
        }
        // ccmp's process in the job holds the job lock while it runs: sleep until it lets go.
        let lock_path = layout.slurm_job_lock(&id);
        if private_file::is_locked(&lock_path) {
            tokio::select! {
                () = until_unlocked(lock_path) => {}
                () = cancel.cancelled(), if !scancelled => {}
            }
            wait = Duration::from_millis(250);
            continue;
        }
        match ask(job_id).await {
            Ok(Some(info)) if info.ended() => break Some(info),
            Ok(None) => break None,
            Ok(Some(info)) => {
                if info.pending() && (info.state != job.state || info.reason != job.reason) {
                    job.state.clone_from(&info.state);
                    job.reason.clone_from(&info.reason);
                    note_pending(store, &id, &job);
                }
            }
            Err(e) => tracing::warn!("could not ask Slurm about job {job_id}: {e}"),
        }
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = cancel.cancelled(), if !scancelled => {}
        }
        wait = (wait * 2).min(LONGEST_LOOK);
    };
    // The group's limit counts the job until Slurm has ended it, not only ccmp's process in it.
    let last = match last {
        Some(info) => Some(info),
        None => until_ended(job_id).await,
    };
    let end = finish(store, record, job, last).await;
    // What the run told in the job (it ended, it asks) is delivered from here.
    crate::events::deliver::kick_for(store.layout(), end.record());
    end
}

/// Reads how the run ended: from the job's hand-back, from the record (the job recorded an
/// outcome but could not hand back), or else from Slurm's view of the job.
async fn finish(
    store: &FsStore,
    record: TaskRecord,
    job: SlurmJob,
    last: Option<JobInfo>,
) -> RunEnd {
    let layout = store.layout();
    let id = record.id;
    // What the job wrote of itself (its node) stays; Slurm's last word on it is added.
    let settle = |written: Option<&SlurmJob>| {
        let mut job = written
            .filter(|j| j.job_id == job.job_id)
            .cloned()
            .unwrap_or_else(|| job.clone());
        if let Some(info) = &last {
            job.state.clone_from(&info.state);
            job.node = job.node.take().or_else(|| info.node.clone());
            job.reason = None;
        }
        job
    };
    match handoff::read::<AttemptEnd>(&layout.slurm_end(&id)) {
        Ok(Some(AttemptEnd::Open { record, outcome })) => {
            let mut record = *record;
            record.slurm = Some(settle(record.slurm.as_ref()));
            return RunEnd::Open { record, outcome };
        }
        Ok(Some(AttemptEnd::Ended)) | Ok(None) => {}
        Err(e) => tracing::warn!("could not read how the Slurm job ended: {e}"),
    }
    let mut stored = store.load(&id).unwrap_or(record);
    let job = settle(stored.slurm.as_ref());
    if stored.status.is_terminal() {
        if stored.slurm.as_ref() != Some(&job) {
            stored.slurm = Some(job);
            let _ = store.save(&stored);
        }
        return RunEnd::Ended(stored);
    }
    let asked = layout.cancel_marker(&id).exists();
    let (status, error) =
        ending::judge(job.job_id, last.as_ref(), asked, &layout.slurm_job_log(&id));
    stored.slurm = Some(job);
    stored.progress = Some(status.to_string());
    RunEnd::Ended(agent_loop::finish_early(store, stored, status, error).await)
}

/// Records a job waiting in Slurm's queue, and why, as the task's progress. The job lock is held
/// while doing so: ccmp's process in the job takes it before it writes the record, so this never
/// overwrites what the job wrote.
fn note_pending(store: &FsStore, id: &crate::id::TaskId, job: &SlurmJob) {
    let lock_path = store.layout().slurm_job_lock(id);
    let Ok(lock) = private_file::open_lock(&lock_path) else {
        return;
    };
    if lock.try_lock().is_err() {
        return;
    }
    let Ok(mut record) = store.load(id) else {
        return;
    };
    // Once the job's agent has started (or the run ended), the record is the job's to write.
    if record.status != TaskStatus::Queued || store.layout().slurm_end(id).exists() {
        return;
    }
    record.progress = Some(match &job.reason {
        Some(reason) => format!("waiting in Slurm's queue as job {} ({reason})", job.job_id),
        None => format!("submitted to Slurm as job {}", job.job_id),
    });
    record.slurm = Some(job.clone());
    if let Err(e) = store.save_progress(&record) {
        tracing::warn!("could not record the Slurm job: {e}");
    }
}

/// Stops the job: its ccmp process gets `TERM` (and stops the agent with the grace period) if it
/// runs; a job still waiting is cancelled outright. (Signalling a waiting job is refused only
/// after `scancel` has retried for a minute or more, so the state is asked first. A job that
/// starts in between is cancelled outright: its ccmp process finds the cancel marker.)
async fn stop_job(job_id: u64) {
    let done = tokio::task::spawn_blocking(move || match client::query(job_id) {
        Ok(Some(info)) if info.pending() => client::cancel(job_id),
        Ok(Some(info)) if info.ended() => Ok(()),
        _ => client::signal_job_runner(job_id).or_else(|_| client::cancel(job_id)),
    })
    .await;
    if let Ok(Err(e)) = done {
        tracing::warn!("could not cancel Slurm job {job_id}: {e}");
    }
}

async fn ask(job_id: u64) -> std::io::Result<Option<JobInfo>> {
    tokio::task::spawn_blocking(move || client::query(job_id))
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e)))
}

/// Waits until Slurm has ended the job (its process in the job has exited, but Slurm may still
/// be completing it); gives up after [`ENDING_PATIENCE`].
async fn until_ended(job_id: u64) -> Option<JobInfo> {
    let started = tokio::time::Instant::now();
    let mut wait = Duration::from_millis(50);
    loop {
        match ask(job_id).await {
            Ok(Some(info)) if info.ended() => return Some(info),
            Ok(None) => return None,
            Ok(Some(_)) | Err(_) if started.elapsed() > ENDING_PATIENCE => return None,
            _ => {}
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(Duration::from_secs(1));
    }
}

/// Sleeps in a blocking shared `flock` on `path` (on a small thread) until its holder lets go.
async fn until_unlocked(path: std::path::PathBuf) {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let spawned = std::thread::Builder::new()
        .name("ccmp-slurm-job".into())
        .spawn(move || {
            if let Ok(lock) = private_file::open_read(&path) {
                let _ = lock.lock_shared();
            }
            let _ = tx.send(());
        });
    if spawned.is_err() {
        tokio::time::sleep(Duration::from_secs(1)).await;
        return;
    }
    let _ = rx.await;
}
