//! Task identity, state and the persisted record.
//!
//! A [`TaskRecord`] is replaced as a whole on every transition, never edited in place, and a
//! terminal [`TaskStatus`] never changes again. [`TaskView`] is the stable JSON shape that
//! frontends print and scripts read.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{StoreError, escape};
use crate::process_identity::ProcessIdentity;
use crate::spec::TaskSpec;
use crate::worktree::Worktree;

/// The current record schema version. Readers accept this version and older ones.
pub const SCHEMA_VERSION: u32 = 1;

/// The shortest id prefix accepted when resolving a task.
pub const MIN_PREFIX_LEN: usize = 4;

/// A task's identity: a random (v4) uuid, shown as its first 8 hex characters.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TaskId(Uuid);

impl TaskId {
    /// A new random id.
    pub fn new() -> Self {
        Self(Uuid::new_v4())
    }

    /// The 8-hex-character short form used in listings.
    pub fn short(&self) -> String {
        let mut buf = Uuid::encode_buffer();
        self.0.simple().encode_lower(&mut buf)[..8].to_owned()
    }

    /// The full id without hyphens: the form used for file names and prefix matching.
    pub fn simple(&self) -> String {
        self.0.simple().to_string()
    }

    /// The underlying uuid.
    pub fn uuid(&self) -> Uuid {
        self.0
    }
}

impl Default for TaskId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

impl fmt::Debug for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TaskId({})", self.short())
    }
}

impl FromStr for TaskId {
    type Err = StoreError;

    /// Parses a full id, with or without hyphens.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let prefix = IdPrefix::parse(s)?;
        if prefix.0.len() != 32 {
            return Err(StoreError::InvalidId {
                id: escape(s),
                reason: "a full task id has 32 hex digits",
            });
        }
        Uuid::parse_str(&prefix.0)
            .map(Self)
            .map_err(|_| StoreError::InvalidId {
                id: escape(s),
                reason: "not a uuid",
            })
    }
}

/// A validated id or id prefix: lowercase hex, hyphens removed, 4 to 32 digits.
///
/// Anything else is rejected before it can reach a file system path, so a "prefix" such as
/// `../../etc` never escapes the state dir.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdPrefix(String);

impl IdPrefix {
    /// Validates user input as an id prefix.
    pub fn parse(input: &str) -> Result<Self, StoreError> {
        let trimmed = input.trim();
        let invalid = |reason| StoreError::InvalidId {
            id: escape(input),
            reason,
        };
        if trimmed.is_empty() {
            return Err(invalid(
                "it is empty; give a task id or a prefix of 4 or more hex digits",
            ));
        }
        let mut digits = String::with_capacity(32);
        for c in trimmed.chars() {
            match c {
                '0'..='9' | 'a'..='f' => digits.push(c),
                'A'..='F' => digits.push(c.to_ascii_lowercase()),
                '-' => {}
                _ => return Err(invalid("task ids contain only hex digits (0-9, a-f)")),
            }
        }
        if digits.len() < MIN_PREFIX_LEN {
            return Err(invalid("give at least 4 hex digits of the task id"));
        }
        if digits.len() > 32 {
            return Err(invalid("task ids have 32 hex digits at most"));
        }
        Ok(Self(digits))
    }

    /// The prefix digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `id` starts with this prefix.
    pub fn matches(&self, id: &TaskId) -> bool {
        id.simple().starts_with(&self.0)
    }

    /// Picks the one id among `candidates` that this prefix names.
    pub fn resolve(
        &self,
        candidates: impl IntoIterator<Item = TaskId>,
    ) -> Result<TaskId, StoreError> {
        let mut found: Vec<TaskId> = candidates
            .into_iter()
            .filter(|id| self.matches(id))
            .collect();
        match found.len() {
            0 => Err(StoreError::NotFound { id: self.0.clone() }),
            1 => Ok(found.remove(0)),
            _ => {
                found.sort();
                Err(StoreError::Ambiguous {
                    prefix: self.0.clone(),
                    candidates: found
                        .iter()
                        .take(10)
                        .map(|id| id.simple()[..12].to_owned())
                        .collect(),
                })
            }
        }
    }
}

/// Where a task is in its life. Terminal states never change again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
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
}

impl TaskStatus {
    /// All states, in lifecycle order.
    pub const ALL: [TaskStatus; 7] = [
        Self::Queued,
        Self::Running,
        Self::Succeeded,
        Self::Failed,
        Self::TimedOut,
        Self::Cancelled,
        Self::Lost,
    ];

    /// Whether this state is final.
    pub fn is_terminal(self) -> bool {
        !matches!(self, Self::Queued | Self::Running)
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
        Self::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown task state `{}`; expected one of: {}",
                    escape(s),
                    Self::ALL.map(Self::as_str).join(", ")
                )
            })
    }
}

/// The agent process of a running task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentProcess {
    /// Identity of the agent process (the leader of its process group).
    pub identity: ProcessIdentity,
    /// Its process group id (equal to its pid: it leads its own group).
    pub pgid: i32,
}

/// What the agent reported, as parsed from its `stream-json` output and exit status.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    /// The agent's exit code, if it exited normally.
    #[serde(default)]
    pub exit_code: Option<i32>,
    /// The signal that ended the agent, if one did.
    #[serde(default)]
    pub signal: Option<i32>,
    /// `is_error` from the result line.
    #[serde(default)]
    pub is_error: Option<bool>,
    /// `subtype` from the result line (informational only: API errors come back as `success`).
    #[serde(default)]
    pub subtype: Option<String>,
    /// The agent's final text.
    #[serde(default)]
    pub result: Option<String>,
    /// `num_turns` from the result line.
    #[serde(default)]
    pub num_turns: Option<u64>,
    /// `total_cost_usd` from the result line (cumulative over a resumed session).
    #[serde(default)]
    pub cost_usd: Option<f64>,
    /// `usage` from the result line, as the agent reported it.
    #[serde(default)]
    pub usage: Option<serde_json::Value>,
    /// `permission_denials` from the result line.
    #[serde(default)]
    pub permission_denials: Vec<serde_json::Value>,
    /// `api_error_status` from the result line.
    #[serde(default)]
    pub api_error_status: Option<i64>,
    /// `terminal_reason` from the result line.
    #[serde(default)]
    pub terminal_reason: Option<String>,
    /// A human-readable reason when the task did not succeed.
    #[serde(default)]
    pub error: Option<String>,
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
    /// The agent process, once started.
    #[serde(default)]
    pub agent: Option<AgentProcess>,
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
}

impl TaskRecord {
    /// A new queued record for `spec`.
    pub fn new(spec: TaskSpec) -> Self {
        Self {
            schema: SCHEMA_VERSION,
            id: TaskId::new(),
            spec,
            status: TaskStatus::Queued,
            created_at: Utc::now(),
            started_at: None,
            finished_at: None,
            creator: ProcessIdentity::current().ok(),
            runner: None,
            agent: None,
            session_id: None,
            agent_model: None,
            progress: None,
            follows: None,
            outcome: None,
            worktree: None,
        }
    }

    /// Where the agent runs: the task's worktree, else its working dir.
    pub fn run_dir(&self) -> &std::path::Path {
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
    }

    /// The error text of a terminal, unsuccessful task.
    pub fn error(&self) -> Option<&str> {
        self.outcome.as_ref().and_then(|o| o.error.as_deref())
    }

    /// The JSON view of this record. `log_path` is where the store keeps the task's log.
    pub fn view(&self, log_path: Option<PathBuf>) -> TaskView {
        let outcome = self.outcome.clone().unwrap_or_default();
        TaskView {
            id: self.id.to_string(),
            short_id: self.id.short(),
            status: self.status,
            prompt: self.spec.prompt.clone(),
            working_dir: self.spec.working_dir.clone(),
            model: self.spec.model.clone().or_else(|| self.agent_model.clone()),
            created_at: self.created_at,
            started_at: self.started_at,
            finished_at: self.finished_at,
            exit_code: outcome.exit_code,
            signal: outcome.signal,
            is_error: outcome.is_error,
            result: outcome.result,
            error: outcome.error,
            session_id: self.session_id.clone(),
            num_turns: outcome.num_turns,
            cost_usd: outcome.cost_usd,
            usage: outcome.usage,
            permission_denials: outcome.permission_denials,
            progress: self.progress.clone(),
            log_path,
            follows: self.follows.map(|id| id.to_string()),
            timeout_secs: self.spec.timeout_secs,
            env: self.spec.env.keys().cloned().collect(),
            worktree: self.worktree.clone(),
        }
    }
}

/// The stable JSON view of a task: what frontends print and scripts read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskView {
    /// Full uuid.
    pub id: String,
    /// First 8 hex digits of the id.
    pub short_id: String,
    /// One of `queued`, `running`, `succeeded`, `failed`, `timed_out`, `cancelled`, `lost`.
    pub status: TaskStatus,
    /// The prompt.
    pub prompt: String,
    /// The canonical working dir.
    pub working_dir: PathBuf,
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
    /// `is_error` as the agent reported it.
    pub is_error: Option<bool>,
    /// The agent's final text.
    pub result: Option<String>,
    /// Why the task did not succeed.
    pub error: Option<String>,
    /// The agent's session id (resume it with a follow-up).
    pub session_id: Option<String>,
    /// Turns taken.
    pub num_turns: Option<u64>,
    /// Cost in USD as the agent reported it (cumulative over a resumed session).
    pub cost_usd: Option<f64>,
    /// Token usage as the agent reported it.
    pub usage: Option<serde_json::Value>,
    /// Tool uses that were denied for lack of permission.
    pub permission_denials: Vec<serde_json::Value>,
    /// Latest activity, for example "turn 3: Bash".
    pub progress: Option<String>,
    /// Where the task's readable log is.
    pub log_path: Option<PathBuf>,
    /// The task this one follows up on.
    pub follows: Option<String>,
    /// Timeout in seconds, if any.
    pub timeout_secs: Option<f64>,
    /// Names (not values) of the extra environment variables given to the agent.
    pub env: Vec<String>,
    /// The task's worktree (path, branch, base commit, and what changed), with worktree isolation.
    #[serde(default)]
    pub worktree: Option<Worktree>,
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
}

impl From<&TaskRecord> for TaskHeader {
    fn from(record: &TaskRecord) -> Self {
        Self {
            id: record.id,
            status: record.status,
            created_at: record.created_at,
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
    fn short_id_is_first_eight_hex_digits() {
        let id = TaskId::new();
        assert_eq!(id.short().len(), 8);
        assert!(id.to_string().replace('-', "").starts_with(&id.short()));
        assert_eq!(id.short().parse::<TaskId>().ok(), None);
        assert_eq!(id.to_string().parse::<TaskId>().unwrap(), id);
        assert_eq!(id.simple().parse::<TaskId>().unwrap(), id);
    }

    #[test]
    fn prefixes_reject_anything_but_hex() {
        for bad in [
            "../../etc",
            "abc",
            "",
            "  ",
            "abcd/../x",
            "abcg",
            "abcd\u{0}",
            "é123",
        ] {
            assert!(
                matches!(IdPrefix::parse(bad), Err(StoreError::InvalidId { .. })),
                "{bad:?} was accepted"
            );
        }
        assert_eq!(IdPrefix::parse("AB-CD").unwrap().as_str(), "abcd");
    }

    #[test]
    fn resolve_finds_unique_and_reports_ambiguous() {
        let a: TaskId = "aaaa1111-0000-4000-8000-000000000000".parse().unwrap();
        let b: TaskId = "aaaa2222-0000-4000-8000-000000000000".parse().unwrap();
        let ids = [a, b];
        assert_eq!(IdPrefix::parse("aaaa1").unwrap().resolve(ids).unwrap(), a);
        let err = IdPrefix::parse("aaaa").unwrap().resolve(ids).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("ambiguous") && msg.contains("aaaa1111") && msg.contains("aaaa2222"),
            "{msg}"
        );
        assert!(
            IdPrefix::parse("bbbb")
                .unwrap()
                .resolve(ids)
                .unwrap_err()
                .is_not_found()
        );
    }

    #[test]
    fn status_names_round_trip() {
        for st in TaskStatus::ALL {
            assert_eq!(st.as_str().parse::<TaskStatus>().unwrap(), st);
            assert_eq!(serde_json::to_value(st).unwrap(), st.as_str());
        }
        assert!("done".parse::<TaskStatus>().is_err());
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn id_parsing_never_panics_and_accepts_only_hex(input in "\\PC{0,64}") {
            if let Ok(prefix) = IdPrefix::parse(&input) {
                prop_assert!(prefix.as_str().len() >= MIN_PREFIX_LEN && prefix.as_str().len() <= 32);
                prop_assert!(prefix.as_str().bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
            }
            let _ = input.parse::<TaskId>();
        }

        #[test]
        fn any_bytes_never_panic_id_parsing(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            let input = String::from_utf8_lossy(&bytes);
            let _ = IdPrefix::parse(&input);
        }
    }
}
