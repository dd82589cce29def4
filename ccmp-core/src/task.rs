//! Where a task is in its life, and the record that says so.
//!
//! A [`TaskRecord`] is replaced as a whole on every transition, never edited in place, and a
//! terminal [`TaskStatus`] never changes again.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::agent::ClaudeOutcome;
use crate::id::TaskId;
use crate::process_identity::ProcessIdentity;
use crate::spec::TaskSpec;
use crate::worktree::Worktree;

/// The newest record schema version. Readers accept this version and older ones.
///
/// Version 3 only adds the `skipped` and `parked` states, so a record is written as version 3
/// only while it is in one of them: every other record stays readable by ccmp builds that know
/// version 2 (they ignore fields they do not know).
pub const SCHEMA_VERSION: u32 = 3;

/// The version of records that do not use what version 3 added.
const SCHEMA_WITHOUT_NEW_STATES: u32 = 2;

/// Where a task is in its life. Terminal states never change again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    /// Waiting for a free slot (see `max_parallel`).
    Queued,
    /// The agent is running.
    Running,
    /// The agent finished and reported success.
    Succeeded,
    /// The agent reported an error or exited without a result.
    Failed,
    /// The task ran past its timeout and was stopped.
    TimedOut,
    /// The task was cancelled on request.
    Cancelled,
    /// The runner vanished without recording an outcome (killed, crashed, machine rebooted).
    Lost,
    /// The task never ran: a task it depends on did not succeed (or was cleaned up first).
    Skipped,
    /// The agent stopped on a usage limit; the task waits, holding no slot, until the limit
    /// resets (`parked_until`), then resumes its session.
    Parked,
    /// The agent asked to use a tool the task's approval policy holds back: the task waits,
    /// holding no slot and no process, until someone approves or denies it (`pending_approval`).
    NeedsApproval,
}

impl TaskStatus {
    /// All states, in lifecycle order.
    pub const ALL: [TaskStatus; 10] = [
        Self::Queued,
        Self::Running,
        Self::Parked,
        Self::NeedsApproval,
        Self::Succeeded,
        Self::Failed,
        Self::TimedOut,
        Self::Cancelled,
        Self::Lost,
        Self::Skipped,
    ];

    /// Whether this state is final.
    pub fn is_terminal(self) -> bool {
        !matches!(
            self,
            Self::Queued | Self::Running | Self::Parked | Self::NeedsApproval
        )
    }

    /// Whether the task ended and did what it was asked (the only state a frontend reports as
    /// success).
    pub fn is_success(self) -> bool {
        self == Self::Succeeded
    }

    /// The state's name as it appears in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::TimedOut => "timed_out",
            Self::Cancelled => "cancelled",
            Self::Lost => "lost",
            Self::Skipped => "skipped",
            Self::Parked => "parked",
            Self::NeedsApproval => "needs_approval",
        }
    }
}

impl fmt::Display for TaskStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TaskStatus {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        crate::error::parse_name(s, &Self::ALL, Self::as_str, "task state")
    }
}

/// The agent process of a running task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentProcess {
    /// Identity of the agent process (the leader of its process group).
    pub identity: ProcessIdentity,
    /// Its process group id (equal to its pid: it leads its own group).
    pub pgid: i32,
    /// The cgroup (v2) its whole tree runs in, where the machine allowed one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup: Option<std::path::PathBuf>,
}

/// How a task ended, in terms every agent shares, plus what only its agent reports.
///
/// What an agent cannot report stays `None` (absent), never zero.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Outcome {
    /// The agent's exit code, if it exited normally.
    pub exit_code: Option<i32>,
    /// The signal that ended the agent, if one did.
    pub signal: Option<i32>,
    /// The agent's final text; only its head when `result_bytes` is set.
    pub result: Option<String>,
    /// The size of the whole result when it was too long to keep in the record (over 2 MiB):
    /// `result` holds its first 64 KiB and the task's `result.txt` all of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_bytes: Option<u64>,
    /// Why the task did not succeed, in words, with what to do about it.
    pub error: Option<String>,
    /// Turns (model calls) the agent took.
    pub num_turns: Option<u64>,
    /// Cost in USD as the agent reported it (for Claude Code, cumulative over a resumed session).
    pub cost_usd: Option<f64>,
    /// Input tokens of this run.
    pub input_tokens: Option<u64>,
    /// Output tokens of this run.
    pub output_tokens: Option<u64>,
    /// What only this task's agent reports.
    pub agent: Option<AgentOutcome>,
    /// How the model API failed, when that is why the run ended: what decides whether the task
    /// parks until a usage limit resets or is tried again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_failure: Option<ApiFailure>,
    /// The tool use the agent stopped to have approved (it deferred it), if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deferred: Option<PendingApproval>,
}

/// How the model API failed a run, in terms every agent shares.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ApiFailure {
    /// The account's usage limit is reached (a plan limit, not a throttle).
    UsageLimit {
        /// When it resets, if the agent said.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        resets_at: Option<DateTime<Utc>>,
        /// Which limit, in the agent's terms (for Claude Code `five_hour`, `seven_day`, …).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<String>,
    },
    /// The API was overloaded or unavailable (529, 500, 502, 503, no connection): trying again
    /// later may work.
    Transient,
}

impl ApiFailure {
    /// A usage limit's name in words: "5-hour", "weekly", …
    pub fn limit_name(limit: Option<&str>) -> String {
        match limit {
            Some("five_hour") => "5-hour".into(),
            Some("seven_day") => "weekly".into(),
            Some("seven_day_opus") => "weekly Opus".into(),
            Some("seven_day_sonnet") => "weekly Sonnet".into(),
            Some("overage") => "usage-credits".into(),
            Some(other) => other.replace('_', " "),
            None => "usage".into(),
        }
    }
}

impl Outcome {
    /// An outcome that is only an error: the task ended before its agent reported anything.
    pub fn failure(text: impl Into<String>) -> Self {
        Self {
            error: Some(text.into()),
            ..Self::default()
        }
    }

    /// What Claude Code reported, if the agent was Claude Code.
    pub fn claude(&self) -> Option<&ClaudeOutcome> {
        match &self.agent {
            Some(AgentOutcome::Claude(claude)) => Some(claude),
            None => None,
        }
    }
}

/// The part of an [`Outcome`] only one agent reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentOutcome {
    /// Claude Code's result line.
    Claude(ClaudeOutcome),
}

/// Everything known about one task. This is what a [`TaskStore`](crate::TaskStore) persists.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskRecord {
    /// Record schema version ([`SCHEMA_VERSION`]).
    pub schema: u32,
    /// The task's id.
    pub id: TaskId,
    /// What to run.
    pub spec: TaskSpec,
    /// Where the task is in its life.
    pub status: TaskStatus,
    /// When the task was created.
    pub created_at: DateTime<Utc>,
    /// When the agent was started.
    #[serde(default)]
    pub started_at: Option<DateTime<Utc>>,
    /// When the task reached a terminal state.
    #[serde(default)]
    pub finished_at: Option<DateTime<Utc>>,
    /// The process that created the task (to tell "starting" from "lost" before a runner exists).
    #[serde(default)]
    pub creator: Option<ProcessIdentity>,
    /// The runner process that owns the task (detached supervisor only).
    #[serde(default)]
    pub runner: Option<ProcessIdentity>,
    /// The agent's process, once started.
    #[serde(default)]
    pub agent_process: Option<AgentProcess>,
    /// The session id the agent reported (known from its first line).
    #[serde(default)]
    pub session_id: Option<String>,
    /// The model the agent reported using.
    #[serde(default)]
    pub agent_model: Option<String>,
    /// Latest activity, for example "turn 3: Bash".
    #[serde(default)]
    pub progress: Option<String>,
    /// The task this one follows up on.
    #[serde(default)]
    pub follows: Option<TaskId>,
    /// The outcome, once terminal.
    #[serde(default)]
    pub outcome: Option<Outcome>,
    /// The worktree the task runs in, with worktree isolation.
    #[serde(default)]
    pub worktree: Option<Worktree>,
    /// Earlier runs of the agent that did not end the task (a usage limit it parked on, an API
    /// failure it was retried after), oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attempts: Vec<Attempt>,
    /// While `parked`: when the usage limit resets and the task resumes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parked_until: Option<DateTime<Utc>>,
    /// While `needs_approval`: the tool use waiting for an answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_approval: Option<PendingApproval>,
    /// Set when an approval was answered: the next run resumes the session with no prompt, so
    /// that the agent asks its hook again about the same tool use.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub resume_answered: bool,
    /// The Slurm job running (or that last ran) the agent, for a task of a group whose executor
    /// is `slurm`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slurm: Option<SlurmJob>,
}

/// A task's Slurm job, as ccmp last saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
pub struct SlurmJob {
    /// The job id `sbatch` gave.
    pub job_id: u64,
    /// The node it runs on, once it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Slurm's state of the job (`PENDING`, `RUNNING`, `COMPLETED`, `TIMEOUT`, …).
    pub state: String,
    /// Why it waits, while Slurm holds it back (`Priority`, `Resources`, `Dependency`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When it was submitted.
    pub submitted_at: DateTime<Utc>,
}

impl SlurmJob {
    /// The job and where it runs, briefly: `12@node3`, or `12` while it waits.
    pub fn short(&self) -> String {
        match &self.node {
            Some(node) => format!("{}@{node}", self.job_id),
            None => self.job_id.to_string(),
        }
    }

    /// Whether Slurm has not started the job yet (as ccmp last saw it).
    pub fn waits(&self) -> bool {
        Self::is_waiting_state(&self.state)
    }

    /// Whether `state` is one of Slurm's states of a job not started yet.
    pub(crate) fn is_waiting_state(state: &str) -> bool {
        matches!(
            state,
            "PENDING" | "REQUEUED" | "REQUEUE_HOLD" | "REQUEUE_FED" | "RESV_DEL_HOLD"
        )
    }

    /// The job in words: `job 12 on node3, RUNNING` or `job 12, PENDING (Resources)`.
    pub fn describe(&self) -> String {
        let node = self
            .node
            .as_deref()
            .map_or(String::new(), |n| format!(" on {n}"));
        let reason = self
            .reason
            .as_deref()
            .map_or(String::new(), |r| format!(" ({r})"));
        format!("job {}{node}, {}{reason}", self.job_id, self.state)
    }
}

/// A tool use the agent deferred for approval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
pub struct PendingApproval {
    /// The agent's id of the tool use.
    pub tool_use_id: String,
    /// The tool.
    pub tool: String,
    /// What it wants to do, in a line: a Bash command, a file path, …
    pub summary: String,
    /// The tool's whole input.
    pub input: serde_json::Value,
    /// When it was asked.
    pub asked_at: DateTime<Utc>,
}

/// One run of the agent that did not end its task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
pub struct Attempt {
    /// When the agent started.
    pub started_at: Option<DateTime<Utc>>,
    /// When it ended.
    pub ended_at: DateTime<Utc>,
    /// Why it ended, in words.
    pub why: String,
    /// The session it ran in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// Its cost in USD as the agent reported it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
    /// Its turns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_turns: Option<u64>,
    /// Whether the task parked on a usage limit after it (else it was retried).
    #[serde(default)]
    pub parked: bool,
    /// Whether it stopped to have a tool use approved.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub asked: bool,
}

impl TaskRecord {
    /// A new queued record for `spec`.
    pub fn new(spec: TaskSpec) -> Self {
        let mut record = Self {
            schema: SCHEMA_WITHOUT_NEW_STATES,
            id: TaskId::new(),
            spec,
            status: TaskStatus::Queued,
            created_at: Utc::now(),
            started_at: None,
            finished_at: None,
            creator: ProcessIdentity::current().ok(),
            runner: None,
            agent_process: None,
            session_id: None,
            agent_model: None,
            progress: None,
            follows: None,
            outcome: None,
            worktree: None,
            attempts: Vec::new(),
            parked_until: None,
            pending_approval: None,
            resume_answered: false,
            slurm: None,
        };
        record.stamp_schema();
        record
    }

    /// Moves a live record to another live state (`queued`, `running`, `parked`), keeping the
    /// schema version in step: only a record in a state version 3 added is written as 3.
    pub fn set_live_status(&mut self, status: TaskStatus) {
        debug_assert!(!status.is_terminal());
        if self.status.is_terminal() {
            return;
        }
        self.status = status;
        self.stamp_schema();
    }

    fn stamp_schema(&mut self) {
        // Older builds cannot read a state or an agent they do not know: such a record is
        // written as the newer schema, which they report as newer instead of misreading.
        let newer = matches!(
            self.status,
            TaskStatus::Skipped | TaskStatus::Parked | TaskStatus::NeedsApproval
        ) || self.spec.agent_kind() != crate::agent::AgentKind::Claude;
        self.schema = if newer {
            SCHEMA_VERSION
        } else {
            SCHEMA_WITHOUT_NEW_STATES
        };
    }

    /// Where the agent runs: the task's worktree, else its working dir.
    pub fn agent_dir(&self) -> &std::path::Path {
        self.worktree
            .as_ref()
            .map_or(&self.spec.working_dir, |w| &w.path)
    }

    /// Moves the record to a terminal state with `outcome`. A record that is already terminal
    /// is left unchanged: terminal states never change again.
    pub fn finish(&mut self, status: TaskStatus, outcome: Outcome) {
        debug_assert!(status.is_terminal());
        if self.status.is_terminal() {
            return;
        }
        self.status = status;
        self.finished_at = Some(Utc::now());
        self.outcome = Some(outcome);
        self.parked_until = None;
        self.stamp_schema();
    }

    /// The error text of a terminal, unsuccessful task.
    pub fn error(&self) -> Option<&str> {
        self.outcome.as_ref().and_then(|o| o.error.as_deref())
    }
}

/// What listing needs to know of a task before reading all of it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct TaskHeader {
    /// The task's id.
    pub id: TaskId,
    /// Its state as recorded.
    pub status: TaskStatus,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// Its group, where known without reading the whole record (from the index of finished
    /// tasks, or a record at hand); `None` when it must be read.
    #[serde(skip)]
    pub group: Option<crate::group::GroupName>,
}

impl From<&TaskRecord> for TaskHeader {
    fn from(record: &TaskRecord) -> Self {
        Self {
            id: record.id,
            status: record.status,
            created_at: record.created_at,
            group: Some(record.spec.group.clone()),
        }
    }
}

/// A task whose record could not be read. It is reported on its own; other tasks are unaffected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DamagedTask {
    /// The task id (from its directory name).
    pub id: String,
    /// Short form of the id.
    pub short_id: String,
    /// The record's path.
    pub path: PathBuf,
    /// What is wrong.
    pub reason: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_names_round_trip() {
        for st in TaskStatus::ALL {
            assert_eq!(st.as_str().parse::<TaskStatus>().unwrap(), st);
            assert_eq!(serde_json::to_value(st).unwrap(), st.as_str());
        }
        assert!("done".parse::<TaskStatus>().is_err());
    }
}
