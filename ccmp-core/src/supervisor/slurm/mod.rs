//! The Slurm executor: each run of a task's agent is a Slurm batch job.
//!
//! The task's runner stays on the machine that started it and does everything a runner does
//! (the queue, dependencies, parking, retries, approvals); only the agent's run moves. For each
//! run, [`attempt::run_attempt`] hands the job the record through the task dir, submits it with
//! `sbatch`, and follows it; in the job, [`job`]'s `__ccmp-slurm-attempt` runs the agent through
//! the same loop as a local runner and hands back how it ended. Slurm's view of the job decides
//! how the task ended when nothing in the job could say (killed, timed out, node failure): see
//! [`ending`]. See `docs/design/executors.md`.

pub(crate) mod attempt;
mod client;
mod ending;
mod handoff;
pub(crate) mod job;
pub(crate) mod orphan;
pub(crate) use self::client::available;
pub use self::job::SLURM_ATTEMPT_CMD;
