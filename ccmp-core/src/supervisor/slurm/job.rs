//! Inside a Slurm job: the `__ccmp-slurm-attempt` process that `sbatch`'s script execs on the
//! node. It runs one attempt of the task's agent exactly as a local runner would (same loop,
//! same logs, same sweep of the agent's tree), writes the record to the shared state dir, and
//! tells the task's runner how the run ended through `slurm-end.json`.
//!
//! It holds `slurm-job.lock` while it runs, so the task's runner can wait for it in a blocking
//! `flock` instead of asking Slurm over and over.

use std::ffi::OsString;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::client;
use super::ending;
use super::handoff::{self, AttemptEnd, AttemptInput};
use crate::agent::Stop;
use crate::error::{StoreError, SupervisorError};
use crate::settings::Settings;
use crate::store::{FsStore, TaskStore};
use crate::supervisor::agent_loop::{self, OutsideStop, RunContext, RunEnd};
use crate::supervisor::attempts;
use crate::supervisor::runner::{self, RunnerArgs};
use crate::supervisor::unix;
use crate::task::{Outcome, SlurmJob, TaskStatus};

/// Hidden subcommand a task's Slurm job runs.
pub const SLURM_ATTEMPT_CMD: &str = "__ccmp-slurm-attempt";

/// How long the job waits for the task's runner to let go of `slurm-job.lock` (it holds it only
/// while it writes the record of a pending job).
const LOCK_PATIENCE: Duration = Duration::from_secs(60);

/// Body of the `__ccmp-slurm-attempt` subcommand.
pub(crate) fn attempt_main(args: impl Iterator<Item = OsString>) -> ExitCode {
    runner::run_subcommand(SLURM_ATTEMPT_CMD, "ccmp in Slurm job", args, run)
}

fn run(args: RunnerArgs) -> Result<(), SupervisorError> {
    // Events of the run are delivered by the task's runner once the job has ended.
    crate::events::deliver::disarm();
    if let Err(e) = unix::become_subreaper() {
        tracing::warn!("cannot become a child subreaper: {e}");
    }
    let runtime = runner::runtime()?;
    let signals = {
        let _entered = runtime.enter();
        runner::termination_signals()
    };
    let store = FsStore::open(&args.state_dir)?;
    let layout = store.layout().clone();
    let lock_path = layout.slurm_job_lock(&args.id);
    let _lock = crate::private_file::lock_with_patience(&lock_path, LOCK_PATIENCE)
        .map_err(|e| StoreError::write(&lock_path, e))?
        .ok_or_else(|| StoreError::LockHeld {
            path: lock_path.clone(),
            secs: LOCK_PATIENCE.as_secs(),
        })?;
    let input_path = layout.slurm_attempt(&args.id);
    let AttemptInput { mut record, input } = handoff::read(&input_path)
        .map_err(|e| StoreError::read(&input_path, e))?
        .ok_or_else(|| {
            StoreError::read(
                &input_path,
                std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "the task's runner left nothing to run",
                ),
            )
        })?;
    let end_path = layout.slurm_end(&args.id);
    let stored = store.load(&args.id)?;
    if stored.status.is_terminal() {
        return handoff::write(&end_path, &AttemptEnd::Ended)
            .map_err(|e| StoreError::write(&end_path, e).into());
    }
    let job_id = std::env::var("SLURM_JOB_ID")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .or(stored.slurm.as_ref().map(|j| j.job_id))
        .unwrap_or_default();
    let node = std::env::var("SLURMD_NODENAME").ok().or_else(|| {
        rustix::system::uname()
            .nodename()
            .to_str()
            .ok()
            .map(str::to_owned)
    });
    record.slurm = Some(SlurmJob {
        job_id,
        node,
        state: "RUNNING".to_owned(),
        reason: None,
        submitted_at: stored
            .slurm
            .as_ref()
            .map_or_else(chrono::Utc::now, |j| j.submitted_at),
    });
    record.progress = Some(format!("running in Slurm job {job_id}"));

    let marker = layout.cancel_marker(&args.id);
    let log = layout.slurm_job_log(&args.id);
    let trampoline = std::env::current_exe().ok();
    let ctx = RunContext {
        store: Arc::new(store.clone()),
        grace: args.grace,
        launcher: trampoline.as_deref().map(unix::agent_launcher),
        trampoline,
        reap_orphans: true,
        state_dir: Some(store.root().to_owned()),
        outside_stop: Some(OutsideStop(Arc::new(move || {
            stopped_by(&marker, job_id, &log)
        }))),
    };
    let settings = Settings::current(&layout.settings());
    let before = record.clone();
    let keep_open = |outcome: &Outcome| attempts::decide(&before, outcome, &settings).is_some();
    let end = runtime.block_on(async {
        let cancel = CancellationToken::new();
        for mut stream in signals {
            let cancel = cancel.clone();
            tokio::spawn(async move {
                stream.recv().await;
                cancel.cancel();
            });
        }
        agent_loop::run_attempt(
            &ctx,
            record,
            &cancel,
            || "cancelled on request".to_owned(),
            input.as_ref(),
            &keep_open,
        )
        .await
    });
    let end = match end {
        RunEnd::Ended(_) => AttemptEnd::Ended,
        RunEnd::Open { record, outcome } => AttemptEnd::Open {
            record: Box::new(record),
            outcome,
        },
    };
    handoff::write(&end_path, &end).map_err(|e| StoreError::write(&end_path, e).into())
}

/// Who is stopping the agent, asked when this process gets `TERM` or the agent dies of a signal:
/// a ccmp cancel (its marker is there), or Slurm, which marks a job it ends `COMPLETING`, with
/// the reason `TimeLimit` for a time limit. `None`: nobody; the agent ended on its own.
fn stopped_by(marker: &Path, job_id: u64, log: &Path) -> Option<Stop> {
    if marker.exists() {
        return Some(Stop::Cancelled("cancelled on request".to_owned()));
    }
    let mut info = client::query(job_id).ok().flatten()?;
    let time_limit = info.reason.as_deref() == Some("TimeLimit");
    match info.state.as_str() {
        "COMPLETING" | "CANCELLED" | "TIMEOUT" | "DEADLINE" | "PREEMPTED" | "NODE_FAIL" => {}
        _ => return None,
    }
    if info.state == "COMPLETING" {
        info.state = if time_limit { "TIMEOUT" } else { "CANCELLED" }.to_owned();
    }
    let (status, why) = ending::judge(job_id, Some(&info), false, log);
    Some(match status {
        TaskStatus::TimedOut => Stop::TimeLimit(why),
        _ => Stop::Cancelled(why),
    })
}
