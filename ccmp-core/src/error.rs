//! Error types, one enum per area, and the [`Hint`]s that say what to do next.
//!
//! Messages are lowercase fragments without a trailing period and never repeat their source, so
//! that a `{:#}` chain reads cleanly. A message says what was wrong in ccmp's own terms and never
//! names one frontend's commands; where the fix is a ccmp action (list, cancel, remove), the
//! error also carries a [`Hint`] as data, which each frontend renders in its own language (CLI
//! flags for people, tool calls for a model).

use std::io;
use std::path::PathBuf;

use crate::task::TaskStatus;

/// A task request that cannot become a [`TaskSpec`](crate::TaskSpec). Nothing is written when
/// this is returned.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SpecError {
    /// The prompt is empty or only whitespace.
    #[error("the prompt is empty; give the task something to do")]
    EmptyPrompt,
    /// The prompt is larger than [`MAX_PROMPT_BYTES`](crate::MAX_PROMPT_BYTES).
    #[error(
        "the prompt is {len} bytes, over the limit of {max} bytes; put long material in a file in the working dir and refer to it"
    )]
    PromptTooLarge {
        /// The prompt's size in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The working directory does not exist or cannot be read.
    #[error("working dir `{path}` does not exist or cannot be read; pass an existing directory")]
    MissingWorkingDir {
        /// The directory as given.
        path: PathBuf,
        /// Why it could not be resolved.
        #[source]
        source: io::Error,
    },
    /// The working directory is a file or something else that is not a directory.
    #[error("working dir `{path}` is not a directory; pass a directory")]
    WorkingDirNotDir {
        /// The path as given.
        path: PathBuf,
    },
    /// The current directory could not be read to default the working dir.
    #[error("cannot read the current directory to use as the working dir; pass one explicitly")]
    NoCurrentDir(#[source] io::Error),
    /// A directory given in `add_dirs` does not exist.
    #[error("additional dir `{path}` does not exist or is not a directory")]
    BadAddDir {
        /// The directory as given.
        path: PathBuf,
    },
    /// A setting the task's agent does not have.
    #[error("{field} is a setting of {owner}, not of {agent}; {instead}")]
    NotForAgent {
        /// The setting.
        field: &'static str,
        /// The agent that has it.
        owner: &'static str,
        /// The task's agent.
        agent: &'static str,
        /// What that agent takes instead.
        instead: &'static str,
    },
    /// A text field holds characters the agent cannot take.
    #[error("{field} `{value}` is not valid: {reason}")]
    InvalidField {
        /// Which field.
        field: &'static str,
        /// The value, with control characters escaped.
        value: String,
        /// What is wrong and what is allowed.
        reason: &'static str,
    },
    /// A number is out of range.
    #[error("{field} must be {expected}, got {value}")]
    OutOfRange {
        /// Which field.
        field: &'static str,
        /// What is allowed.
        expected: &'static str,
        /// The value given.
        value: String,
    },
    /// The agent program exists but cannot be run.
    #[error("agent program `{path}` cannot be run: {reason}; {hint}")]
    AgentNotExecutable {
        /// What is there.
        path: PathBuf,
        /// Why it cannot be run.
        reason: &'static str,
        /// How to install the agent or point ccmp at it.
        hint: String,
    },
    /// The agent program could not be found.
    #[error("agent program `{program}` was not found{}; {hint}", if *.on_path { " on PATH" } else { "" })]
    AgentNotFound {
        /// The program as configured.
        program: String,
        /// Whether it was looked up on PATH (a bare name) rather than as a path.
        on_path: bool,
        /// How to install the agent or point ccmp at it.
        hint: String,
    },
}

/// A failure reading or writing task state.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// No task has this id or prefix.
    #[error("no task matches `{id}`")]
    NotFound {
        /// The id or prefix as given.
        id: String,
    },
    /// The prefix matches more than one task.
    #[error("task id prefix `{prefix}` is ambiguous: it matches {}; give more characters", .candidates.join(", "))]
    Ambiguous {
        /// The prefix as given.
        prefix: String,
        /// Short ids of the matching tasks (at most ten).
        candidates: Vec<String>,
    },
    /// The id is not a hex id or prefix.
    #[error("`{id}` is not a task id: {reason}")]
    InvalidId {
        /// The input, with control characters escaped.
        id: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// The state directory path exists but is not a directory.
    #[error("state dir `{path}` is not a directory; point CCMP_STATE_DIR at a directory")]
    StateDirNotDir {
        /// The state dir.
        path: PathBuf,
    },
    /// The state directory cannot be created or written.
    #[error(
        "state dir `{path}` cannot be created or written; check its permissions or set CCMP_STATE_DIR to a writable directory"
    )]
    StateDirUnwritable {
        /// The state dir.
        path: PathBuf,
        /// The underlying failure.
        #[source]
        source: io::Error,
    },
    /// The state directory could be tampered with by another user.
    #[error(
        "state dir `{path}` is not safe to use: {reason}; use a private directory (owned by you, mode 700) or set CCMP_STATE_DIR"
    )]
    StateDirInsecure {
        /// The state dir.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// No state directory was given and none could be derived from the environment.
    #[error("cannot find a home directory for the default state dir; set CCMP_STATE_DIR")]
    NoStateDir,
    /// A task record exists but cannot be parsed.
    #[error("task record `{path}` is damaged ({reason}); cleanup removes the task")]
    Damaged {
        /// Short id of the task.
        id: String,
        /// The record's path.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A task with this id already exists.
    #[error("task `{id}` already exists")]
    AlreadyExists {
        /// The id.
        id: String,
    },
    /// Reading a file failed.
    #[error("failed to read `{path}`")]
    Read {
        /// The file.
        path: PathBuf,
        /// The underlying failure.
        #[source]
        source: io::Error,
    },
    /// Writing a file failed.
    #[error("failed to write `{path}`")]
    Write {
        /// The file.
        path: PathBuf,
        /// The underlying failure.
        #[source]
        source: io::Error,
    },
    /// A lock is held by another live process (a `flock` is released when its holder exits, so
    /// it is never stale and must not be deleted).
    #[error(
        "`{path}` is held by another live ccmp process (waited {secs}s); it is released when that process exits"
    )]
    LockHeld {
        /// The lock file.
        path: PathBuf,
        /// How long we waited.
        secs: u64,
    },
    /// Serialising a record failed (a bug).
    #[error("failed to serialise task record")]
    Serialize(#[source] serde_json::Error),
}

impl StoreError {
    pub(crate) fn read(path: impl Into<PathBuf>, source: io::Error) -> Self {
        Self::Read {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn write(path: impl Into<PathBuf>, source: io::Error) -> Self {
        Self::Write {
            path: path.into(),
            source,
        }
    }

    /// Whether this error means the task does not exist (as opposed to a damaged store).
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::NotFound { .. })
    }

    /// What the caller can do next, if a ccmp action helps.
    pub fn hint(&self) -> Option<Hint> {
        match self {
            Self::NotFound { .. } => Some(Hint::ListAllTasks),
            Self::Damaged { id, .. } => Some(Hint::RemoveTask { id: id.clone() }),
            _ => None,
        }
    }
}

/// A failure starting, signalling or inspecting a task's processes.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SupervisorError {
    /// The runner process could not be started.
    #[error("failed to start the task runner `{program}`")]
    SpawnRunner {
        /// The runner binary.
        program: PathBuf,
        /// The underlying failure.
        #[source]
        source: io::Error,
    },
    /// The runner started but failed before taking the task.
    #[error("the task runner `{program}` failed to take the task: {reason}")]
    RunnerFailed {
        /// The runner binary.
        program: PathBuf,
        /// What the runner said.
        reason: String,
    },
    /// Sending a signal failed for a reason other than the process being gone.
    #[error("failed to signal process {pid}")]
    Signal {
        /// The target.
        pid: i32,
        /// The underlying failure.
        #[source]
        source: io::Error,
    },
    /// A Slurm job could not be cancelled (`scancel` failed).
    #[error("could not cancel Slurm job {job_id}; try `scancel {job_id}`")]
    Scancel {
        /// The job.
        job_id: u64,
        /// What `scancel` said.
        #[source]
        source: io::Error,
    },
    /// The in-process supervisor needs a tokio runtime.
    #[error("the in-process supervisor must be created inside a tokio runtime")]
    NoRuntime,
    /// A store operation failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A worktree could not be created or removed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WorktreeError {
    /// The working dir is not in a git repository.
    #[error(
        "working dir `{path}` is not in a git repository; worktree isolation needs one (run `git init` and commit, or start without worktree isolation)"
    )]
    NotARepo {
        /// The working dir.
        path: PathBuf,
    },
    /// The repository has no commits to branch from.
    #[error(
        "repository `{path}` has no commits yet; commit something first, so the task's branch has a base"
    )]
    NoCommits {
        /// The repository.
        path: PathBuf,
    },
    /// HEAD is detached.
    #[error(
        "repository `{path}` has a detached HEAD; check out a branch first, so the task's branch has a clear base"
    )]
    Detached {
        /// The repository.
        path: PathBuf,
    },
    /// The repository is bare.
    #[error("`{path}` is a bare repository (no checkout); give the working dir of a checkout")]
    Bare {
        /// The path.
        path: PathBuf,
    },
    /// The task's branch name exists already.
    #[error(
        "branch `{branch}` already exists in `{repo}`; delete or rename it (`git branch -m {branch} <new>`), then start again"
    )]
    BranchTaken {
        /// The branch.
        branch: String,
        /// The repository.
        repo: PathBuf,
    },
    /// The `git` program could not be run.
    #[error("cannot run `git`; install git to use worktree isolation")]
    GitMissing {
        /// The underlying failure.
        #[source]
        source: io::Error,
    },
    /// A git command failed.
    #[error("`{command}` failed: {stderr}")]
    Git {
        /// The command.
        command: String,
        /// What git said.
        stderr: String,
    },
    /// A lock or directory for worktrees could not be used.
    #[error("cannot use `{path}` for worktrees")]
    Io {
        /// The path.
        path: PathBuf,
        /// The underlying failure.
        #[source]
        source: io::Error,
    },
}

impl WorktreeError {
    /// Whether the user can fix this by changing the repository or the request.
    pub fn is_invalid_input(&self) -> bool {
        matches!(
            self,
            Self::NotARepo { .. }
                | Self::NoCommits { .. }
                | Self::Detached { .. }
                | Self::Bare { .. }
                | Self::BranchTaken { .. }
        )
    }
}

/// A bad configuration value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// An environment variable has a value that cannot be used.
    #[error("environment variable {var}={value:?} is not valid: {expected}")]
    BadEnv {
        /// The variable.
        var: &'static str,
        /// Its value.
        value: String,
        /// What is expected.
        expected: &'static str,
    },
}

/// Any error from the [`Ccmp`](crate::Ccmp) facade.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The task request is invalid.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// Reading or writing state failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Starting or signalling processes failed.
    #[error(transparent)]
    Supervisor(#[from] SupervisorError),
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A worktree could not be created or removed.
    #[error(transparent)]
    Worktree(#[from] WorktreeError),
    /// The task is still queued or running.
    #[error(
        "task {id} is still {status}; cancel it first, or remove it with force (which cancels it)"
    )]
    TaskActive {
        /// Short id.
        id: String,
        /// Its state.
        status: TaskStatus,
    },
    /// A follow-up needs a session to resume.
    #[error(
        "task {id} has no session to resume (the agent never started a session); start a new task instead"
    )]
    NoSession {
        /// Short id.
        id: String,
    },
    /// A wait or list argument is invalid.
    #[error("{0}")]
    InvalidArgument(String),
}

impl Error {
    /// Whether this error is a missing or ambiguous task id, so frontends can map it to their
    /// "not found" exit code.
    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            Self::Store(
                StoreError::NotFound { .. }
                    | StoreError::Ambiguous { .. }
                    | StoreError::InvalidId { .. }
            )
        )
    }

    /// What the caller can do next, if a ccmp action helps. Frontends render it in their own
    /// terms after the message.
    pub fn hint(&self) -> Option<Hint> {
        match self {
            Self::Store(e) => e.hint(),
            Self::Supervisor(SupervisorError::Store(e)) => e.hint(),
            Self::TaskActive { id, .. } => Some(Hint::CancelOrForceRemove { id: id.clone() }),
            _ => None,
        }
    }

    /// Whether this error comes from how the machine is set up rather than from the request:
    /// the agent program is missing or cannot run. (It is still refused before anything is
    /// written, like bad input.)
    pub fn is_setup_problem(&self) -> bool {
        matches!(
            self,
            Self::Spec(SpecError::AgentNotFound { .. } | SpecError::AgentNotExecutable { .. })
        )
    }

    /// Whether this error is bad input that the caller can fix (as opposed to a system fault).
    pub fn is_invalid_input(&self) -> bool {
        if let Self::Worktree(e) = self {
            return e.is_invalid_input();
        }
        matches!(
            self,
            Self::Spec(_)
                | Self::InvalidArgument(_)
                | Self::TaskActive { .. }
                | Self::NoSession { .. }
        )
    }
}

/// What the caller can do next, as data. The CLI says it with its commands and flags, the MCP
/// server with its tools and parameters; the core never names either.
///
/// Not `non_exhaustive` on purpose: a new hint must be said by every frontend before it builds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hint {
    /// List every task, finished ones included, to find the right id.
    ListAllTasks,
    /// Remove this task (by its short id).
    RemoveTask {
        /// Short id.
        id: String,
    },
    /// Cancel this task, or remove it with force (which cancels it first).
    CancelOrForceRemove {
        /// Short id.
        id: String,
    },
}

/// The value among `all` whose name is `input`, or an error naming the choices: how every
/// enum that users spell by name (states, agents, outputs, wait modes) is parsed.
pub(crate) fn parse_name<T: Copy>(
    input: &str,
    all: &[T],
    name: fn(T) -> &'static str,
    what: &str,
) -> Result<T, String> {
    all.iter()
        .copied()
        .find(|v| name(*v) == input)
        .ok_or_else(|| {
            let names: Vec<&str> = all.iter().map(|v| name(*v)).collect();
            format!(
                "unknown {what} `{}`; expected one of: {}",
                escape(input),
                names.join(", ")
            )
        })
}

/// Escapes control characters so that a value can be quoted in an error message.
pub(crate) fn escape(value: &str) -> String {
    const MAX: usize = 80;
    let mut out: String = value
        .chars()
        .flat_map(char::escape_debug)
        .take(MAX)
        .collect();
    if value.chars().count() > MAX {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Core messages speak ccmp's own terms; what a frontend's user types is the frontend's to
    /// say (from the hint). No message names a `ccmp` command, a CLI flag, or an MCP tool.
    #[test]
    fn no_message_names_a_frontends_commands() {
        let id = "3f9a1c2e".to_owned();
        let errors: Vec<(Error, Option<Hint>)> = vec![
            (
                StoreError::NotFound { id: id.clone() }.into(),
                Some(Hint::ListAllTasks),
            ),
            (
                StoreError::Damaged {
                    id: id.clone(),
                    path: "/s/record.json".into(),
                    reason: "empty".into(),
                }
                .into(),
                Some(Hint::RemoveTask { id: id.clone() }),
            ),
            (
                StoreError::LockHeld {
                    path: "/s/runner.lock".into(),
                    secs: 5,
                }
                .into(),
                None,
            ),
            (
                Error::TaskActive {
                    id: id.clone(),
                    status: TaskStatus::Running,
                },
                Some(Hint::CancelOrForceRemove { id: id.clone() }),
            ),
            (Error::NoSession { id: id.clone() }, None),
            (
                SupervisorError::Store(StoreError::NotFound { id: id.clone() }).into(),
                Some(Hint::ListAllTasks),
            ),
        ];
        for (error, hint) in errors {
            let text = error.to_string();
            for frontend_word in ["`ccmp ", "--", "_task", "_tasks("] {
                assert!(
                    !text.contains(frontend_word),
                    "{text:?} names {frontend_word:?}"
                );
            }
            assert_eq!(error.hint(), hint, "{text}");
        }
        let lock = StoreError::LockHeld {
            path: "/s/runner.lock".into(),
            secs: 5,
        }
        .to_string();
        assert!(!lock.contains("remove"), "{lock}");
    }
}
