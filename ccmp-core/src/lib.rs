//! ccmp-core: run Claude Code (`claude -p`) tasks in the background, in parallel, with every
//! task's state on disk.
//!
//! Start with [`Ccmp`]: [`Ccmp::open`] gives the default setup (the [`FsStore`] under the state
//! dir and a [`DetachedSupervisor`] whose runner processes outlive the caller);
//! [`Ccmp::in_memory`] gives a [`MemoryStore`] with an [`InProcessSupervisor`] for embedding.
//!
//! A program that uses detached runners re-executes itself as the runner, so its `main` must
//! begin with [`hidden_entry_point`] (before it installs its own logging):
//!
//! ```no_run
//! fn main() -> std::process::ExitCode {
//!     if let Some(code) = ccmp_core::hidden_entry_point() {
//!         return code;
//!     }
//!     // … the program's own work …
//!     std::process::ExitCode::SUCCESS
//! }
//! ```

#![warn(missing_docs)]

// ccmp relies on Linux: /proc for process identity and the task sweep, prctl for the
// parent-death signal and the child subreaper, inotify for waiting without polling.
#[cfg(not(target_os = "linux"))]
compile_error!("ccmp-core runs on Linux only (it relies on /proc, prctl and inotify)");

pub mod agent;
pub mod approval;
pub mod budget;
pub mod ccmp;
pub mod config;
pub mod duration;
pub mod error;
pub mod events;
pub mod executor;
pub mod group;
pub mod id;
pub mod layout;
mod private_file;
pub mod process_identity;
mod schema_v1;
pub mod settings;
pub mod spec;
pub mod store;
pub mod supervisor;
pub mod task;
pub mod usage_limit;
pub mod view;
pub mod worktree;

use std::process::ExitCode;

pub use crate::agent::{
    APPROVAL_MODES, AgentKind, AgentOptions, ClaudeOptions, ClaudeOutcome, CodexOptions,
    GeminiOptions, Invocation, PERMISSION_MODES, SANDBOX_MODES, STRIPPED_ENV, TASK_ENV, invocation,
    signal_name,
};
pub use crate::ccmp::{
    ApprovalAnswer, BudgetStatus, CancelOutcome, Ccmp, CleanupOptions, CleanupReport,
    CleanupTarget, DEFAULT_LIST_LIMIT, DaySpend, EventFollow, GroupStatus, ListQuery, MAX_WAIT,
    NotifierStatus, OutputFollow, OutputSource, SETTABLE, SkippedTask, SpendReport, StartOutlook,
    TaskChanges, TaskList, WaitMode, WaitOutcome,
};
pub use crate::config::{
    CLAUDE_BIN_ENV, CODEX_BIN_ENV, Config, DEFAULT_GRACE, DEFAULT_MAX_PARALLEL, GEMINI_BIN_ENV,
    GRACE_ENV, LaunchMode, MAX_PARALLEL_ENV,
};
pub use crate::duration::{format_duration, parse_duration};
pub use crate::error::{
    ConfigError, Error, Hint, SpecError, StoreError, SupervisorError, WorktreeError,
};
pub use crate::executor::{Executor, SlurmOptions};
pub use crate::group::{DEFAULT_GROUP, GroupName};
pub use crate::id::{IdPrefix, MIN_PREFIX_LEN, TaskId};
pub use crate::layout::{STATE_DIR_ENV, StateLayout, default_state_dir};
pub use crate::process_identity::ProcessIdentity;
pub use crate::spec::{
    MAX_DEPENDENCIES, MAX_PROMPT_BYTES, MAX_TIMEOUT_SECS, TaskRequest, TaskSpec,
};
pub use crate::store::{
    FsStore, Listed, LogChunk, LogRange, LogStream, MAX_LOG_READ, MemoryStore, TaskStore, TaskWatch,
};
pub use crate::supervisor::{
    DetachedSupervisor, EXEC_AGENT_PROGRAM, InProcessSupervisor, RUNNER_CMD, SLURM_ATTEMPT_CMD,
    Supervisor,
};
pub use crate::task::{
    AgentOutcome, AgentProcess, ApiFailure, Attempt, DamagedTask, Outcome, PendingApproval,
    SCHEMA_VERSION, SlurmJob, TaskHeader, TaskRecord, TaskStatus,
};
pub use crate::view::{TaskView, WorktreeView};
pub use crate::worktree::{DiffSummary, Isolation, Worktree, WorktreeRemoval};

/// The body of the small `ccmp-exec-agent` program: `ccmp-exec-agent __ccmp-exec-agent
/// <runner-pid> <program> [args…]` arms the parent-death signal (SIGKILL when the runner dies,
/// even by kill -9), checks the runner is still its parent, enters the task's cgroup, and execs
/// the agent, exactly as `ccmp __ccmp-exec-agent …` does, without loading the big binary.
pub fn exec_agent_main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    if args
        .next()
        .is_none_or(|first| first != supervisor::EXEC_AGENT_CMD)
    {
        let _ = std::io::Write::write_all(
            &mut std::io::stderr(),
            b"ccmp-exec-agent: ccmp's task runners start agents through this program; it is not run by hand\n",
        );
        return ExitCode::from(2);
    }
    supervisor::exec_agent(args)
}

/// Whether this process was started as one of ccmp's hidden subcommands (a task runner or the
/// agent trampoline) rather than as the program itself.
pub fn is_runner_process() -> bool {
    std::env::args_os().nth(1).is_some_and(|first| {
        first == supervisor::RUNNER_CMD
            || first == supervisor::SLURM_ATTEMPT_CMD
            || first == supervisor::EXEC_AGENT_CMD
            || first == approval::HOOK_CMD
            || first == events::deliver::DELIVER_CMD
    })
}

/// Runs ccmp's hidden subcommands (the task runner and the agent trampoline) when this process
/// was started as one, and returns its exit code; returns `None` otherwise.
///
/// Call it first in `main` of any binary that creates tasks with a [`DetachedSupervisor`],
/// before installing the program's own logging: a runner logs to its stderr, which is the task's
/// `runner.log`, and sets that up itself (unless a subscriber is already installed). The runner
/// is the only place in ccmp that handles signals: it is a process of its own, and turns TERM
/// into a cancel.
pub fn hidden_entry_point() -> Option<ExitCode> {
    // This executable dispatches the hidden subcommands: it may start deliverers.
    events::deliver::arm();
    if !is_runner_process() {
        return None;
    }
    let mut args = std::env::args_os().skip(1);
    let first = args.next()?;
    if first == supervisor::RUNNER_CMD || first == supervisor::SLURM_ATTEMPT_CMD {
        // Cheap to set up (no env filter): runners start often. Log write failures (a full
        // disk) are not reported, since reporting them would fail the same way.
        let _ = tracing_subscriber::fmt()
            .log_internal_errors(false)
            .with_max_level(tracing::Level::INFO)
            .with_ansi(false)
            .with_writer(std::io::stderr)
            .try_init();
        Some(if first == supervisor::RUNNER_CMD {
            supervisor::runner_main(args)
        } else {
            supervisor::slurm_attempt_main(args)
        })
    } else if first == approval::HOOK_CMD {
        Some(approval::hook::hook_main(args))
    } else if first == events::deliver::DELIVER_CMD {
        Some(events::deliver::deliver_main(args))
    } else {
        Some(supervisor::exec_agent(args))
    }
}
