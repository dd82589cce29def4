//! Reading records written with schema 1 (ccmp before the agent seam).
//!
//! Schema 1 kept Claude Code's flags in the spec and Claude Code's result line in the outcome.
//! These are frozen copies of those shapes, read and turned into today's [`TaskRecord`]; nothing
//! writes them. Schema 2 moved every Claude-only field under `agent`, so a ccmp that knows only
//! schema 1 reports a schema-2 record as "written by a newer ccmp" instead of rewriting it
//! without the fields it does not know (see `docs/design/storage.md`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::agent::{AgentOptions, ClaudeOptions, ClaudeOutcome};
use crate::id::TaskId;
use crate::process_identity::ProcessIdentity;
use crate::spec::TaskSpec;
use crate::task::{AgentOutcome, AgentProcess, Outcome, TaskRecord, TaskStatus};
use crate::worktree::{Isolation, Worktree};

/// Parses a schema-1 record into today's shape.
pub(crate) fn parse(bytes: &[u8]) -> Result<TaskRecord, serde_json::Error> {
    serde_json::from_slice::<RecordV1>(bytes).map(TaskRecord::from)
}

#[derive(Deserialize)]
struct RecordV1 {
    id: TaskId,
    spec: SpecV1,
    status: TaskStatus,
    created_at: DateTime<Utc>,
    #[serde(default)]
    started_at: Option<DateTime<Utc>>,
    #[serde(default)]
    finished_at: Option<DateTime<Utc>>,
    #[serde(default)]
    creator: Option<ProcessIdentity>,
    #[serde(default)]
    runner: Option<ProcessIdentity>,
    #[serde(default)]
    agent: Option<AgentProcess>,
    #[serde(default)]
    session_id: Option<String>,
    #[serde(default)]
    agent_model: Option<String>,
    #[serde(default)]
    progress: Option<String>,
    #[serde(default)]
    follows: Option<TaskId>,
    #[serde(default)]
    outcome: Option<OutcomeV1>,
    #[serde(default)]
    worktree: Option<Worktree>,
}

#[derive(Deserialize)]
struct SpecV1 {
    prompt: String,
    working_dir: PathBuf,
    #[serde(default)]
    model: Option<String>,
    #[serde(default = "default_true")]
    skip_permissions: bool,
    #[serde(default)]
    permission_mode: Option<String>,
    #[serde(default)]
    allowed_tools: Vec<String>,
    #[serde(default)]
    timeout_secs: Option<f64>,
    #[serde(default)]
    max_turns: Option<u32>,
    #[serde(default)]
    max_budget_usd: Option<f64>,
    #[serde(default)]
    append_system_prompt: Option<String>,
    #[serde(default)]
    add_dirs: Vec<PathBuf>,
    #[serde(default)]
    resume_session: Option<String>,
    agent: PathBuf,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    isolation: Isolation,
}

fn default_true() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(default)]
#[derive(Default)]
struct OutcomeV1 {
    exit_code: Option<i32>,
    signal: Option<i32>,
    is_error: Option<bool>,
    subtype: Option<String>,
    result: Option<String>,
    num_turns: Option<u64>,
    cost_usd: Option<f64>,
    usage: Option<serde_json::Value>,
    permission_denials: Vec<serde_json::Value>,
    api_error_status: Option<i64>,
    terminal_reason: Option<String>,
    error: Option<String>,
}

impl From<RecordV1> for TaskRecord {
    fn from(v1: RecordV1) -> Self {
        let spec = v1.spec;
        let claude = ClaudeOptions {
            skip_permissions: Some(spec.skip_permissions),
            permission_mode: spec.permission_mode,
            allowed_tools: spec.allowed_tools,
            max_turns: spec.max_turns.map(i64::from),
            max_budget_usd: spec.max_budget_usd,
            append_system_prompt: spec.append_system_prompt,
            add_dirs: spec.add_dirs,
            ask: Vec::new(),
            ask_all: false,
        };
        Self {
            // Upgraded to the version every build since the reshape reads.
            schema: 2,
            id: v1.id,
            spec: TaskSpec {
                prompt: spec.prompt,
                working_dir: spec.working_dir,
                model: spec.model,
                timeout_secs: spec.timeout_secs,
                env: spec.env,
                isolation: spec.isolation,
                resume_session: spec.resume_session,
                program: spec.agent,
                agent: AgentOptions::Claude(claude),
                group: crate::group::GroupName::default(),
                after: Vec::new(),
                retries: None,
                park_on_usage_limit: None,
                notify: None,
            },
            status: v1.status,
            created_at: v1.created_at,
            started_at: v1.started_at,
            finished_at: v1.finished_at,
            creator: v1.creator,
            runner: v1.runner,
            agent_process: v1.agent,
            session_id: v1.session_id,
            agent_model: v1.agent_model,
            progress: v1.progress,
            follows: v1.follows,
            outcome: v1.outcome.map(Outcome::from),
            attempts: Vec::new(),
            parked_until: None,
            pending_approval: None,
            resume_answered: false,
            slurm: None,
            worktree: v1.worktree,
        }
    }
}

impl From<OutcomeV1> for Outcome {
    fn from(v1: OutcomeV1) -> Self {
        let tokens = |key: &str| v1.usage.as_ref().and_then(|u| u[key].as_u64());
        Self {
            exit_code: v1.exit_code,
            signal: v1.signal,
            input_tokens: tokens("input_tokens"),
            output_tokens: tokens("output_tokens"),
            result: v1.result,
            result_bytes: None,
            error: v1.error,
            num_turns: v1.num_turns,
            cost_usd: v1.cost_usd,
            agent: Some(AgentOutcome::Claude(ClaudeOutcome {
                is_error: v1.is_error,
                subtype: v1.subtype,
                usage: v1.usage,
                permission_denials: v1.permission_denials,
                api_error_status: v1.api_error_status,
                terminal_reason: v1.terminal_reason,
                api_error: None,
            })),
            api_failure: None,
            deferred: None,
        }
    }
}
