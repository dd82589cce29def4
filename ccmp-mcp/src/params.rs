//! Tool parameters. The doc comments are the tool documentation the model reads (they become
//! the schema descriptions), so they are short, concrete, and say what happens by default.
//! All tool definitions together must stay within 6 KB.

use std::path::PathBuf;

use ccmp_core::TaskRequest;
use schemars::JsonSchema;
use serde::Deserialize;

/// What to run. Shared by `execute_cc_task` and `start_cc_task_async`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskParams {
    /// What to do.
    pub prompt: String,
    pub working_dir: Option<String>,
    /// claude, codex or gemini.
    pub agent: Option<String>,
    /// sonnet, opus, haiku or full id.
    pub model: Option<String>,
    /// Default true.
    pub skip_permissions: Option<bool>,
    /// Seconds.
    pub timeout: Option<f64>,
    /// claude's --permission-mode.
    pub permission_mode: Option<String>,
    pub allowed_tools: Option<Vec<String>>,
    /// Most turns.
    pub max_turns: Option<i64>,
    /// USD limit.
    pub max_budget_usd: Option<f64>,
    pub append_system_prompt: Option<String>,
    /// "worktree"
    pub isolation: Option<String>,
    /// Queue group.
    pub group: Option<String>,
    /// Task ids to succeed first.
    pub after: Option<Vec<String>>,
    /// 0-10, on API overload.
    pub retries: Option<u32>,
    /// Approve first, e.g. "Bash(git push:*)"; "*" = all.
    pub ask: Option<Vec<String>>,
    /// Desktop notification at the end.
    pub notify: Option<bool>,
}

impl TaskParams {
    /// The core request for these parameters, running after `after` (the `after` ids,
    /// resolved by the caller).
    pub fn into_request(
        self,
        after: Vec<ccmp_core::TaskId>,
        default_agent: ccmp_core::AgentKind,
    ) -> Result<TaskRequest, String> {
        let isolation = match self.isolation.as_deref() {
            None | Some("none") => None,
            Some("worktree") => Some(ccmp_core::Isolation::Worktree),
            Some(other) => {
                return Err(format!(
                    "isolation must be \"none\" or \"worktree\", got {other:?}"
                ));
            }
        };
        // "*" asks about every tool use (the CLI's --ask-all); other rules are then moot.
        let mut ask = self.ask.unwrap_or_default();
        let ask_all = ask.iter().any(|rule| rule == "*");
        if ask_all {
            ask.clear();
        }
        let kind = match self.agent.as_deref() {
            None => default_agent,
            Some(name) => name.parse::<ccmp_core::AgentKind>()?,
        };
        let agent = ccmp_core::AgentOptions::for_agent(
            kind,
            ccmp_core::ClaudeOptions {
                skip_permissions: self.skip_permissions,
                permission_mode: self.permission_mode,
                allowed_tools: self.allowed_tools.unwrap_or_default(),
                max_turns: self.max_turns,
                max_budget_usd: self.max_budget_usd,
                append_system_prompt: self.append_system_prompt,
                ask,
                ask_all,
                ..ccmp_core::ClaudeOptions::default()
            },
            None,
        )
        .map_err(|e| e.to_string())?;
        Ok(TaskRequest {
            prompt: self.prompt,
            working_dir: self.working_dir.map(PathBuf::from),
            model: self.model,
            timeout_secs: self.timeout,
            isolation,
            group: self.group,
            after,
            retries: self.retries,
            notify: self.notify.unwrap_or(false),
            agent,
            ..TaskRequest::default()
        })
    }
}

/// `execute_cc_task` parameters: the task's ([`TaskParams`]), plus how long to wait.
///
/// Not a copy of `TaskParams`: serde cannot combine `flatten` with `deny_unknown_fields`, so this
/// takes `max_wait_s` out of the arguments and hands the rest to `TaskParams`, which refuses
/// what it does not know; its schema is `TaskParams`' with `max_wait_s` added.
#[derive(Debug)]
pub struct ExecuteParams {
    /// The task.
    pub task: TaskParams,
    /// Stop waiting after this many seconds.
    pub max_wait_s: Option<f64>,
}

const MAX_WAIT_S: &str = "max_wait_s";
const MAX_WAIT_S_DOC: &str = "Seconds to wait. Default 600.";

impl<'de> Deserialize<'de> for ExecuteParams {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let mut arguments =
            serde_json::Map::<String, serde_json::Value>::deserialize(deserializer)?;
        let max_wait_s = arguments
            .remove(MAX_WAIT_S)
            .map(|v| Option::<f64>::deserialize(v).map_err(D::Error::custom))
            .transpose()?
            .flatten();
        let task = TaskParams::deserialize(serde_json::Value::Object(arguments))
            .map_err(D::Error::custom)?;
        Ok(Self { task, max_wait_s })
    }
}

impl JsonSchema for ExecuteParams {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "ExecuteParams".into()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let mut schema = TaskParams::json_schema(generator);
        if let Some(properties) = schema
            .get_mut("properties")
            .and_then(serde_json::Value::as_object_mut)
        {
            properties.insert(
                MAX_WAIT_S.to_owned(),
                serde_json::json!({"type": "number", "description": MAX_WAIT_S_DOC}),
            );
        }
        schema
    }
}

/// A task id.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskIdParams {
    /// Task id or 4+ char prefix.
    pub task_id: String,
}

/// `list_active_tasks` parameters.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    /// Default false.
    pub include_finished: Option<bool>,
    /// Only this status, e.g. failed or needs_approval.
    pub status: Option<String>,
    /// Default 50.
    pub limit: Option<u32>,
    /// Only this group.
    pub group: Option<String>,
}

/// `cleanup_task` parameters.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CleanupParams {
    pub task_id: Option<String>,
    /// Cancel it first if running.
    pub force: Option<bool>,
    /// Every finished task.
    pub finished: Option<bool>,
    /// Only finished tasks older than this, e.g. "7d".
    pub older_than: Option<String>,
    /// Also delete worktree branches.
    pub delete_branch: Option<bool>,
}

/// `wait_for_tasks` parameters.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WaitParams {
    pub task_ids: Vec<String>,
    /// "all" (default) or "any" (first to finish).
    pub mode: Option<String>,
    /// Default 50, max 600.
    pub timeout_s: Option<f64>,
}

/// `get_task_output` parameters.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OutputParams {
    pub task_id: String,
    /// transcript (default), result, stdout or stderr.
    pub stream: Option<String>,
    /// next_offset of the previous page.
    pub offset: Option<u64>,
    /// Bytes. Default and max 6000.
    pub limit: Option<u64>,
    /// The last N lines instead.
    pub tail: Option<u32>,
}

/// `answer_approval` parameters.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AnswerParams {
    pub task_id: String,
    pub approve: bool,
    /// Why not.
    pub reason: Option<String>,
    /// Also allow its rule for the rest of the task.
    pub always: Option<bool>,
}

/// `continue_task` parameters.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ContinueParams {
    pub task_id: String,
    /// What to do next.
    pub prompt: String,
}
