//! Who runs a task's agent and stops it: the [`Supervisor`] trait, detached runner processes and
//! in-process tasks, and the machine-wide queue.
//!
//! [`DetachedSupervisor`] runs each task in a runner process that outlives the frontend;
//! [`InProcessSupervisor`] runs tasks on the host's tokio runtime. Both share one run loop.

mod agent_loop;
mod attempts;
mod cgroup;
mod dependencies;
mod detached;
mod in_process;
mod queue;
mod reaper;
mod runner;
mod slurm;
mod unix;

use std::fmt;

pub use self::detached::DetachedSupervisor;
pub use self::in_process::InProcessSupervisor;
pub(crate) use self::queue::{budget_block, poke as poke_queue, running_now};
pub(crate) use self::reaper::adopt as adopt_child;
pub use self::runner::RUNNER_CMD;
pub(crate) use self::runner::runner_main;
pub use self::slurm::SLURM_ATTEMPT_CMD;
pub(crate) use self::slurm::available as slurm_available;
pub(crate) use self::slurm::job::attempt_main as slurm_attempt_main;
pub use self::unix::EXEC_AGENT_PROGRAM;
pub(crate) use self::unix::{EXEC_AGENT_CMD, exec_agent};
use crate::error::SupervisorError;
use crate::task::TaskRecord;

/// Runs tasks. Methods return quickly; the work happens elsewhere (a runner process or a tokio
/// task) and is reported through the store.
pub trait Supervisor: Send + Sync + fmt::Debug {
    /// Starts running a task whose queued record is already in the store.
    fn launch(&self, record: &TaskRecord) -> Result<(), SupervisorError>;
    /// Asks a queued or running task to stop. The task records `cancelled` when it has.
    fn cancel(&self, record: &TaskRecord) -> Result<(), SupervisorError>;
    /// Checks a non-terminal record against reality: if whatever was running the task is gone,
    /// the task is marked `lost` (and its leftover processes stopped). Returns the current record.
    fn refresh(&self, record: TaskRecord) -> Result<TaskRecord, SupervisorError>;
}
