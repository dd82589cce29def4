//! The MCP tools. Each is one thin call into [`Ccmp`]; the replies are built in `reply`.
//!
//! Errors the model can fix (a bad id, a missing directory, an empty prompt, `claude` not
//! installed) come back as tool results with `isError` and a message saying what to do; Claude
//! Code shows the model only the text of such results, so the whole message is in the text.

use std::time::Duration;

use ccmp_core::{Ccmp, CleanupTarget, ListQuery, LogRange, LogStream, TaskStatus, WaitMode};
use rmcp::ErrorData;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{
    CallToolResponse, CancelTaskParams, CreateTaskResult, GetTaskParams, GetTaskResult,
    Implementation, ProgressNotificationParam, RequestMetaObject, ServerCapabilities, ServerConfig,
};
use rmcp::service::{Peer, RequestContext, RoleServer};
use rmcp::{Json, ServerHandler, tool, tool_handler, tool_router};
use tokio_util::sync::CancellationToken;

use crate::params::{
    CleanupParams, ContinueParams, ExecuteParams, ListParams, OutputParams, TaskIdParams,
    TaskParams, WaitParams,
};
use crate::reply::{CleanupReply, ListReply, OutputReply, REPLY_BUDGET, TaskReply, WaitReply};

/// How often `execute_cc_task` reports progress while it waits, unless `CCMP_MCP_PROGRESS_SECS`
/// says otherwise.
const PROGRESS_EVERY: Duration = Duration::from_secs(10);

fn progress_every() -> Duration {
    std::env::var("CCMP_MCP_PROGRESS_SECS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.1)
        .map_or(PROGRESS_EVERY, Duration::from_secs_f64)
}
/// Default and largest page of output.
const OUTPUT_PAGE: u64 = 6000;
/// Most task ids in one wait.
const MAX_WAIT_IDS: usize = 100;

/// Renders an error with its causes, for the model.
fn message(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn fail(err: ccmp_core::Error) -> String {
    message(&err)
}

/// Tool definitions are context the model pays for on every turn, so the generated schemas are
/// trimmed of what tells a model nothing: the `$schema` dialect (2020-12 is the default),
/// schemars' non-standard `format`s (`uint32`, `double`), and, for inputs, the `null` alternative
/// of optional parameters (leaving one out is how a parameter is omitted).
fn compact_schema(schema: &mut serde_json::Map<String, serde_json::Value>, input: bool) {
    use serde_json::Value;
    schema.remove("$schema");
    schema.remove("format");
    if input
        && let Some(Value::Array(types)) = schema.get("type")
        && types.len() == 2
        && types.contains(&Value::from("null"))
    {
        let kept = types.iter().find(|t| *t != "null").cloned();
        if let Some(kept) = kept {
            schema.insert("type".into(), kept);
        }
    }
    for value in schema.values_mut() {
        match value {
            Value::Object(child) => compact_schema(child, input),
            Value::Array(items) => {
                for item in items {
                    if let Value::Object(child) = item {
                        compact_schema(child, input);
                    }
                }
            }
            _ => {}
        }
    }
}

/// The ccmp MCP server.
#[derive(Debug, Clone)]
pub struct Server {
    ccmp: Ccmp,
    /// Fires when stdin closes: waiting handlers return at once (their tasks keep running), so
    /// the server exits promptly instead of waiting out rmcp's drain of in-flight calls.
    input_closed: CancellationToken,
    tool_router: ToolRouter<Self>,
}

impl Server {
    /// A server over `ccmp`.
    pub fn new(ccmp: Ccmp, input_closed: CancellationToken) -> Self {
        let mut tool_router = Self::tool_router();
        for route in tool_router.map.values_mut() {
            let mut input = route.attr.input_schema.as_ref().clone();
            compact_schema(&mut input, true);
            route.attr.input_schema = std::sync::Arc::new(input);
            if let Some(output) = &route.attr.output_schema {
                let mut output = output.as_ref().clone();
                compact_schema(&mut output, false);
                route.attr.output_schema = Some(std::sync::Arc::new(output));
            }
        }
        Self {
            ccmp,
            input_closed,
            tool_router,
        }
    }

    fn start(&self, params: TaskParams) -> Result<ccmp_core::TaskRecord, String> {
        self.ccmp.start(params.into_request()?).map_err(fail)
    }
}

#[tool_router]
impl Server {
    /// Run a Claude Code task and wait for its result; after max_wait_s, returns the task
    /// still running.
    #[tool(
        annotations(read_only_hint = false, destructive_hint = false, open_world_hint = true),
        output_schema = rmcp::handler::server::tool::schema_for_output::<TaskReply>()
    )]
    async fn execute_cc_task(
        &self,
        Parameters(params): Parameters<ExecuteParams>,
        meta: RequestMetaObject,
        peer: Peer<RoleServer>,
        cancel: CancellationToken,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, String> {
        let (task, max_wait) = params.split();
        let max_wait = max_wait.unwrap_or(600.0);
        if !(max_wait.is_finite() && max_wait > 0.0 && max_wait <= 86_400.0) {
            return Err(format!(
                "max_wait_s must be above 0 and at most 86400 seconds, got {max_wait}"
            ));
        }
        let record = self.start(task)?;
        // A client that speaks the tasks extension backgrounds the call itself and polls
        // tasks/get, which reads ccmp's store: answer with the task at once.
        // (The request's `_meta` is in `meta`; the extractor took it out of `context`, which still
        // knows the capabilities a 2025-11-25 session declared at initialize.)
        let declared = meta
            .client_capabilities()
            .or_else(|| context.client_capabilities())
            .is_some_and(|caps| caps.supports_tasks());
        if declared {
            let task = crate::tasks::task_of(&self.ccmp, &record);
            return Ok(CreateTaskResult::new(task).into());
        }
        let id = record.id.to_string();
        let token = meta.get_progress_token();
        let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(max_wait);
        let mut reports = 0u32;
        let every = progress_every();
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let step = left.min(every);
            let outcome = tokio::select! {
                outcome = self.ccmp.wait(std::slice::from_ref(&id), WaitMode::All, step) => outcome.map_err(fail)?,
                () = self.input_closed.cancelled() => {
                    return Err("the client went away; the task keeps running".to_owned());
                }
                () = cancel.cancelled() => {
                    // The client gave up on the call: stop the task it started. No reply is sent.
                    let _ = self.ccmp.cancel(&id).await;
                    return Err("the request was cancelled, so the task was cancelled".to_owned());
                }
            };
            let record = outcome
                .finished
                .into_iter()
                .chain(outcome.pending)
                .next()
                .unwrap_or(record.clone());
            if record.status.is_terminal() {
                return Ok(
                    crate::tasks::structured(&TaskReply::new(&self.ccmp, &record), false).into(),
                );
            }
            if tokio::time::Instant::now() >= deadline {
                let note = format!(
                    "Not done after max_wait_s={max_wait}; it keeps running in the background."
                );
                let reply = TaskReply::new(&self.ccmp, &record).with_note(&note);
                return Ok(crate::tasks::structured(&reply, false).into());
            }
            if let Some(token) = &token {
                reports += 1;
                let started = record.started_at.unwrap_or(record.created_at);
                let secs = (chrono::Utc::now() - started).num_seconds().max(0);
                let activity = record.progress.as_deref().unwrap_or("starting");
                let text = format!("{} {}s: {activity}", record.status, secs);
                let param = ProgressNotificationParam::new(token.clone(), f64::from(reports))
                    .with_message(text);
                if let Err(e) = peer.notify_progress(param).await {
                    tracing::debug!("could not send progress: {e}");
                }
            }
        }
    }

    /// Start a Claude Code task in the background and return its id at once. Tasks run in
    /// parallel and outlive this session.
    #[tool(annotations(
        read_only_hint = false,
        destructive_hint = false,
        open_world_hint = true
    ))]
    async fn start_cc_task_async(
        &self,
        Parameters(params): Parameters<TaskParams>,
    ) -> Result<Json<TaskReply>, String> {
        let record = self.start(params)?;
        Ok(Json(TaskReply::new(&self.ccmp, &record)))
    }

    /// A task's status, result or error, cost, and what to do next.
    #[tool(annotations(read_only_hint = true, open_world_hint = false))]
    async fn check_task_status(
        &self,
        Parameters(params): Parameters<TaskIdParams>,
    ) -> Result<Json<TaskReply>, String> {
        let record = self.ccmp.status(&params.task_id).map_err(fail)?;
        Ok(Json(TaskReply::new(&self.ccmp, &record)))
    }

    /// List queued and running tasks, newest first (include_finished for all).
    #[tool(annotations(read_only_hint = true, open_world_hint = false))]
    async fn list_active_tasks(
        &self,
        Parameters(params): Parameters<ListParams>,
    ) -> Result<Json<ListReply>, String> {
        let limit = params.limit.unwrap_or(50);
        if !(1..=1000).contains(&limit) {
            return Err(format!("limit must be from 1 to 1000, got {limit}"));
        }
        let states = match (params.status, params.include_finished.unwrap_or(false)) {
            (Some(status), _) => Some(vec![status.parse::<TaskStatus>()?]),
            (None, true) => None,
            (None, false) => Some(vec![TaskStatus::Queued, TaskStatus::Running]),
        };
        let list = self
            .ccmp
            .list(&ListQuery {
                states,
                limit: limit as usize,
            })
            .map_err(fail)?;
        Ok(Json(ListReply::new(&self.ccmp, &list)))
    }

    /// Remove a task and its logs (force: even if running), every finished task (finished=true),
    /// or those older than older_than.
    #[tool(annotations(
        read_only_hint = false,
        destructive_hint = true,
        idempotent_hint = true,
        open_world_hint = false
    ))]
    async fn cleanup_task(
        &self,
        Parameters(params): Parameters<CleanupParams>,
    ) -> Result<Json<CleanupReply>, String> {
        let target = match (
            params.task_id,
            params.finished.unwrap_or(false),
            params.older_than,
        ) {
            (Some(id), false, None) => CleanupTarget::Task {
                id,
                force: params.force.unwrap_or(false),
            },
            (None, true, None) => CleanupTarget::Finished,
            (None, _, Some(age)) => {
                CleanupTarget::OlderThan(ccmp_core::parse_duration(&age).map_err(fail)?)
            }
            _ => return Err("give exactly one of task_id, finished=true or older_than".to_owned()),
        };
        let options = ccmp_core::CleanupOptions {
            delete_branches: params.delete_branch.unwrap_or(false),
        };
        let report = self
            .ccmp
            .cleanup_with(target, options)
            .await
            .map_err(fail)?;
        Ok(Json(CleanupReply::new(&report)))
    }

    /// Wait until all (or any) of the tasks finish, up to timeout_s. Use this instead of
    /// polling check_task_status.
    #[tool(annotations(read_only_hint = true, open_world_hint = false))]
    async fn wait_for_tasks(
        &self,
        Parameters(params): Parameters<WaitParams>,
        cancel: CancellationToken,
    ) -> Result<Json<WaitReply>, String> {
        let mode = match params.mode.as_deref().unwrap_or("all") {
            "all" => WaitMode::All,
            "any" => WaitMode::Any,
            other => return Err(format!("mode must be \"all\" or \"any\", got {other:?}")),
        };
        let timeout = params.timeout_s.unwrap_or(50.0);
        if !(timeout.is_finite() && (0.0..=600.0).contains(&timeout)) {
            return Err(format!(
                "timeout_s must be from 0 to 600 seconds, got {timeout}"
            ));
        }
        if params.task_ids.len() > MAX_WAIT_IDS {
            return Err(format!("wait for at most {MAX_WAIT_IDS} tasks at a time"));
        }
        let outcome = tokio::select! {
            outcome = self.ccmp.wait(&params.task_ids, mode, Duration::from_secs_f64(timeout)) => outcome.map_err(fail)?,
            () = cancel.cancelled() => return Err("the wait was cancelled".to_owned()),
            () = self.input_closed.cancelled() => return Err("the client went away".to_owned()),
        };
        Ok(Json(WaitReply::new(&self.ccmp, &outcome)))
    }

    /// Cancel a queued or running task.
    #[tool(annotations(
        read_only_hint = false,
        destructive_hint = true,
        idempotent_hint = true,
        open_world_hint = false
    ))]
    async fn cancel_task(
        &self,
        Parameters(params): Parameters<TaskIdParams>,
    ) -> Result<Json<TaskReply>, String> {
        let outcome = self.ccmp.cancel(&params.task_id).await.map_err(fail)?;
        let reply = TaskReply::new(&self.ccmp, &outcome.record);
        Ok(Json(if outcome.already_finished {
            reply.with_note("It had already finished; nothing was cancelled.")
        } else {
            reply
        }))
    }

    /// Read a task's output in pages (offset, limit) or its last lines (tail).
    #[tool(annotations(read_only_hint = true, open_world_hint = false))]
    async fn get_task_output(
        &self,
        Parameters(params): Parameters<OutputParams>,
    ) -> Result<Json<OutputReply>, String> {
        let stream_name = params.stream.unwrap_or_else(|| "transcript".to_owned());
        let limit = params.limit.unwrap_or(OUTPUT_PAGE).min(OUTPUT_PAGE) as usize;
        let range = match params.tail {
            Some(lines) => LogRange::Tail {
                lines: lines as usize,
            },
            None => LogRange::Bytes {
                offset: params.offset.unwrap_or(0),
                limit,
            },
        };
        let mut chunk = if stream_name == "result" {
            self.ccmp.result_page(&params.task_id, range)
        } else {
            let stream: LogStream = stream_name
                .parse()
                .map_err(|e: String| format!("{e}, or result"))?;
            self.ccmp.output(&params.task_id, stream, range)
        }
        .map_err(fail)?;
        // A tail may be longer than a page: keep its end.
        if chunk.text.len() > limit {
            let mut cut = chunk.text.len() - limit;
            while !chunk.text.is_char_boundary(cut) {
                cut += 1;
            }
            chunk.offset += cut as u64;
            chunk.text.drain(..cut);
        }
        let short_id = self.ccmp.resolve(&params.task_id).map_err(fail)?.short();
        debug_assert!(chunk.text.len() < REPLY_BUDGET);
        Ok(Json(OutputReply::new(short_id, &stream_name, chunk)))
    }

    /// Follow up on a finished task: a new task resumes its Claude Code session, in the same
    /// directory, with this prompt. Returns at once.
    #[tool(annotations(
        read_only_hint = false,
        destructive_hint = false,
        open_world_hint = true
    ))]
    async fn continue_task(
        &self,
        Parameters(params): Parameters<ContinueParams>,
    ) -> Result<Json<TaskReply>, String> {
        let record = self
            .ccmp
            .follow_up(&params.task_id, params.prompt)
            .map_err(fail)?;
        Ok(Json(TaskReply::new(&self.ccmp, &record)))
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Server {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_tasks()
                .build(),
        )
        .with_server_info(Implementation::new("ccmp", env!("CARGO_PKG_VERSION")))
        .with_instructions(
            "ccmp runs Claude Code tasks in the background, in parallel. Start several with \
                 start_cc_task_async, keep working, then collect them with wait_for_tasks. Tasks \
                 outlive this session; ids accept any unique prefix.",
        )
    }

    async fn get_task(
        &self,
        request: GetTaskParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<GetTaskResult, ErrorData> {
        let record = self
            .ccmp
            .status(&request.task_id)
            .map_err(crate::tasks::not_found)?;
        Ok(GetTaskResult::new(crate::tasks::detailed(
            &self.ccmp, &record,
        )))
    }

    async fn cancel_task(
        &self,
        request: CancelTaskParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.ccmp
            .request_cancel(&request.task_id)
            .map_err(crate::tasks::not_found)?;
        Ok(())
    }
}
