//! [`TaskView`]: the stable JSON shape of a task that frontends print and scripts read (and the
//! MCP server's replies embed).

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::agent::AgentKind;
use crate::id::TaskId;
use crate::task::{SlurmJob, TaskRecord, TaskStatus};
use crate::worktree::Worktree;

#[cfg(feature = "schemars")]
use schemars::JsonSchema;

impl TaskRecord {
    /// The JSON view of this record. `log_path` is where the store keeps the task's log.
    pub fn view(&self, log_path: Option<PathBuf>) -> TaskView {
        let outcome = self.outcome.clone().unwrap_or_default();
        let claude = outcome.claude().cloned().unwrap_or_default();
        TaskView {
            id: self.id.to_string(),
            short_id: self.id.short(),
            status: self.status,
            prompt: self.spec.prompt.clone(),
            working_dir: self.spec.working_dir.clone(),
            agent: self.spec.agent_kind(),
            model: self.spec.model.clone().or_else(|| self.agent_model.clone()),
            created_at: self.created_at,
            started_at: self.started_at,
            finished_at: self.finished_at,
            exit_code: outcome.exit_code,
            signal: outcome.signal,
            is_error: claude.is_error,
            result: outcome.result,
            result_bytes: outcome.result_bytes,
            error: outcome.error,
            session_id: self.session_id.clone(),
            num_turns: outcome.num_turns,
            cost_usd: outcome.cost_usd,
            input_tokens: outcome.input_tokens,
            output_tokens: outcome.output_tokens,
            usage: claude.usage,
            permission_denials: claude.permission_denials,
            progress: self.progress.clone(),
            log_path,
            follows: self.follows.map(|id| id.to_string()),
            group: self.spec.group.to_string(),
            attempts: self.attempts.clone(),
            parked_until: self.parked_until,
            pending_approval: self.pending_approval.clone(),
            after: self.spec.after.iter().map(TaskId::short).collect(),
            timeout_secs: self.spec.timeout_secs,
            env: self.spec.env.keys().cloned().collect(),
            worktree: self.worktree.as_ref().map(WorktreeView::from),
            slurm: self.slurm.clone(),
            elapsed_s: self.started_at.map(|start| {
                let end = self.finished_at.unwrap_or_else(Utc::now);
                ((end - start).num_milliseconds() as f64 / 1000.0).max(0.0)
            }),
        }
    }
}

fn default_group() -> String {
    crate::group::DEFAULT_GROUP.to_owned()
}

/// The stable JSON view of a task: what frontends print and scripts read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(JsonSchema))]
pub struct TaskView {
    /// Full uuid.
    pub id: String,
    /// First 8 hex digits of the id.
    pub short_id: String,
    /// One of `queued`, `running`, `succeeded`, `failed`, `timed_out`, `cancelled`, `lost`,
    /// `skipped`.
    pub status: TaskStatus,
    /// The prompt.
    pub prompt: String,
    /// The canonical working dir.
    pub working_dir: PathBuf,
    /// The agent that runs it (`claude`).
    #[serde(default)]
    pub agent: AgentKind,
    /// The model asked for, else the one the agent reported.
    pub model: Option<String>,
    /// Creation time (RFC 3339, UTC).
    pub created_at: DateTime<Utc>,
    /// Agent start time.
    pub started_at: Option<DateTime<Utc>>,
    /// Time the task reached its terminal state.
    pub finished_at: Option<DateTime<Utc>>,
    /// Agent exit code.
    pub exit_code: Option<i32>,
    /// Signal that ended the agent.
    pub signal: Option<i32>,
    /// `is_error` as Claude Code reported it.
    pub is_error: Option<bool>,
    /// The agent's final text (its first 64 KiB when `result_bytes` is set).
    pub result: Option<String>,
    /// Size of the whole result when it is over 2 MiB; read it all as the `result` output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_bytes: Option<u64>,
    /// Why the task did not succeed.
    pub error: Option<String>,
    /// The agent's session id (resume it with a follow-up).
    pub session_id: Option<String>,
    /// Turns taken.
    pub num_turns: Option<u64>,
    /// Cost in USD as the agent reported it (cumulative over a resumed session).
    pub cost_usd: Option<f64>,
    /// Input tokens of this run, if the agent reports them.
    #[serde(default)]
    pub input_tokens: Option<u64>,
    /// Output tokens of this run, if the agent reports them.
    #[serde(default)]
    pub output_tokens: Option<u64>,
    /// Token usage as Claude Code reported it, in full.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<serde_json::Value>,
    /// Tool uses Claude Code denied for lack of permission.
    pub permission_denials: Vec<serde_json::Value>,
    /// Latest activity, for example "turn 3: Bash".
    pub progress: Option<String>,
    /// Where the task's readable log is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_path: Option<PathBuf>,
    /// The task this one follows up on.
    pub follows: Option<String>,
    /// The group it belongs to.
    #[serde(default = "default_group")]
    pub group: String,
    /// The tasks it runs after (short ids); it starts once all have succeeded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub after: Vec<String>,
    /// Earlier runs that did not end it (it parked on a usage limit, or was tried again).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attempts: Vec<crate::task::Attempt>,
    /// While parked: when the usage limit resets and it resumes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parked_until: Option<DateTime<Utc>>,
    /// While it needs approval: the tool use that waits for an answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_approval: Option<crate::task::PendingApproval>,
    /// Timeout in seconds, if any.
    pub timeout_secs: Option<f64>,
    /// Names (not values) of the extra environment variables given to the agent.
    pub env: Vec<String>,
    /// The task's git worktree and what the task changed there, with worktree isolation.
    #[serde(default)]
    pub worktree: Option<WorktreeView>,
    /// The Slurm job that runs (or last ran) the agent, for a task of a `slurm` group: its id,
    /// node and Slurm's state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slurm: Option<SlurmJob>,
    /// Seconds the agent has run so far, or ran in all.
    #[serde(default)]
    pub elapsed_s: Option<f64>,
}

/// A task's git worktree, and what the task changed in it once it has ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(JsonSchema))]
pub struct WorktreeView {
    /// The worktree's directory, where the agent runs.
    pub path: PathBuf,
    /// Its branch, `ccmp/<short id>`.
    pub branch: String,
    /// The commit the branch started from.
    pub base_commit: String,
    /// Files changed against the base commit (committed or not), once the task has ended.
    pub files_changed: Option<u64>,
    /// Lines added.
    pub insertions: Option<u64>,
    /// Lines removed.
    pub deletions: Option<u64>,
    /// Commits on the branch.
    pub commits: Option<u64>,
    /// Whether changes are uncommitted.
    pub dirty: Option<bool>,
}

impl From<&Worktree> for WorktreeView {
    fn from(w: &Worktree) -> Self {
        Self {
            path: w.path.clone(),
            branch: w.branch.clone(),
            base_commit: w.base_commit.clone(),
            files_changed: w.diff.map(|d| d.files_changed),
            insertions: w.diff.map(|d| d.insertions),
            deletions: w.diff.map(|d| d.deletions),
            commits: w.diff.map(|d| d.commits),
            dirty: w.diff.map(|d| d.dirty),
        }
    }
}
