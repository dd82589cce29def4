//! The MCP tools. Each is one thin call into [`Ccmp`]; the replies are built in `reply`.
//!
//! Errors the model can fix (a bad id, a missing directory, an empty prompt, `claude` not
//! installed) come back as tool results with `isError` and a message saying what to do; Claude
//! Code shows the model only the text of such results, so the whole message is in the text.

use std::time::Duration;

use ccmp_core::{Ccmp, CleanupTarget, ListQuery, LogRange, OutputSource, TaskStatus, WaitMode};
use rmcp::ErrorData;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{
    CallToolResponse, CancelTaskParams, CreateTaskResult, GetTaskParams, GetTaskResult,
    Implementation, ProgressNotificationParam, RequestMetaObject, ServerCapabilities, ServerConfig,
    UpdateTaskParams,
};
use rmcp::service::{Peer, RequestContext, RoleServer};
use rmcp::{Json, ServerHandler, tool, tool_handler, tool_router};
use tokio_util::sync::CancellationToken;

use crate::params::{
    AnswerParams, CleanupParams, ContinueParams, ExecuteParams, ListParams, OutputParams,
    TaskIdParams, TaskParams, WaitParams,
};
use crate::reply::{CleanupReply, ListReply, OutputReply, TaskReply, WaitReply};

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
/// Most tasks one list asks for (the reply is cut to its budget whatever this is).
const MAX_LIST_LIMIT: u32 = 1000;

/// An error for the model, with what to do next in terms of these tools.
fn fail(err: ccmp_core::Error) -> String {
    crate::hint::error_text(&err)
}

/// Tool definitions are context the model pays for on every turn, so the generated schemas are
/// trimmed of what tells a model nothing: the `$schema` dialect (2020-12 is the default),
/// schemars' non-standard `format`s (`uint32`, `double`), and, for inputs, the `null` alternative
/// of optional parameters (leaving one out is how a parameter is omitted).
fn compact_schema(schema: &mut serde_json::Map<String, serde_json::Value>, input: bool) {
    use serde_json::Value;
    schema.remove("$schema");
    schema.remove("format");
    if let Some(Value::String(text)) = schema.get_mut("description") {
        *text = text.replace('\n', " ");
    }
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
    /// What this session's tasks did since the model's last reply.
    news: std::sync::Arc<crate::news::SessionNews>,
}

impl Server {
    /// A server over `ccmp`.
    pub fn new(ccmp: Ccmp, input_closed: CancellationToken) -> Self {
        let mut tool_router = Self::tool_router();
        for route in tool_router.map.values_mut() {
            // Doc comments wrap at 100 columns; a description is one paragraph.
            if let Some(description) = &route.attr.description {
                route.attr.description = Some(description.replace('\n', " ").into());
            }
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
            news: std::sync::Arc::new(crate::news::SessionNews::new(&ccmp)),
            ccmp,
            input_closed,
            tool_router,
        }
    }

    /// Runs a synchronous core call (file I/O, starting a runner and waiting for its "ready")
    /// on tokio's blocking pool, so that a slow disk or a slow start never ties up the two
    /// workers that answer every other request.
    async fn blocking<T: Send + 'static>(
        &self,
        call: impl FnOnce(&Ccmp) -> Result<T, ccmp_core::Error> + Send + 'static,
    ) -> Result<T, String> {
        let ccmp = self.ccmp.clone();
        tokio::task::spawn_blocking(move || call(&ccmp))
            .await
            .map_err(|e| format!("internal error: {e}"))?
            .map_err(fail)
    }

    async fn start(&self, mut params: TaskParams) -> Result<ccmp_core::TaskRecord, String> {
        // One trip to the blocking pool for the whole start: each trip is a hand-off between
        // threads, and a start is on the path of every reply that says "started".
        let ccmp = self.ccmp.clone();
        tokio::task::spawn_blocking(move || {
            let after = params.after.take().unwrap_or_default();
            let after = ccmp
                .resolve_all(&after)
                .map_err(|e| format!("after: {}", fail(e)))?;
            let default_agent = ccmp.default_agent(params.group.as_deref()).map_err(fail)?;
            let request = params.into_request(after, default_agent)?;
            ccmp.start(request).map_err(fail)
        })
        .await
        .map_err(|e| format!("internal error: {e}"))?
    }

    async fn resolve(&self, id: &str) -> Result<ccmp_core::TaskId, String> {
        let id = id.to_owned();
        self.blocking(move |ccmp| ccmp.resolve(&id)).await
    }
}

#[tool_router]
impl Server {
    /// Run a coding-agent task and wait for its result (up to max_wait_s).
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
        let max_wait = params.max_wait_s.unwrap_or(600.0);
        if !(max_wait.is_finite() && max_wait > 0.0 && max_wait <= 86_400.0) {
            return Err(format!(
                "max_wait_s must be above 0 and at most 86400 seconds, got {max_wait}"
            ));
        }
        let record = self.start(params.task).await?;
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
        let token = meta.get_progress_token();
        let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(max_wait);
        let mut changes = self
            .ccmp
            .watch(&[record.id])
            .with_heartbeat(progress_every());
        let mut latest = record;
        let mut reports = 0u32;
        loop {
            let batch = tokio::select! {
                batch = changes.next() => batch,
                () = tokio::time::sleep_until(deadline) => {
                    let note = format!(
                        "Not done after max_wait_s={max_wait}; it keeps running in the background."
                    );
                    let reply = TaskReply::new(&self.ccmp, &latest).with_note(&note);
                    return Ok(crate::tasks::structured(&reply, false).into());
                }
                () = self.input_closed.cancelled() => {
                    return Err("the client went away; the task keeps running".to_owned());
                }
                () = cancel.cancelled() => {
                    // The client gave up on the call: stop the task it started. No reply is sent.
                    let _ = self.ccmp.cancel(&latest.id).await;
                    return Err("the request was cancelled, so the task was cancelled".to_owned());
                }
            };
            let Some(batch) = batch else {
                // The stream ends with the task's final record, already taken below.
                return Ok(
                    crate::tasks::structured(&TaskReply::new(&self.ccmp, &latest), false).into(),
                );
            };
            for current in batch.map_err(fail)? {
                latest = current;
            }
            if latest.status.is_terminal() {
                return Ok(
                    crate::tasks::structured(&TaskReply::new(&self.ccmp, &latest), false).into(),
                );
            }
            if let Some(token) = &token {
                reports += 1;
                let view = self.ccmp.view(&latest);
                let text = format!(
                    "{} {}s: {}",
                    view.status,
                    view.elapsed_s.unwrap_or(0.0).round(),
                    view.progress.as_deref().unwrap_or("starting")
                );
                let param = ProgressNotificationParam::new(token.clone(), f64::from(reports))
                    .with_message(text);
                if let Err(e) = peer.notify_progress(param).await {
                    tracing::debug!("could not send progress: {e}");
                }
            }
        }
    }

    /// Start a coding-agent task in the background and return its id at once. Tasks outlive
    /// this session.
    #[tool(annotations(
        read_only_hint = false,
        destructive_hint = false,
        open_world_hint = true
    ))]
    async fn start_cc_task_async(
        &self,
        Parameters(params): Parameters<TaskParams>,
    ) -> Result<Json<TaskReply>, String> {
        let record = self.start(params).await?;
        Ok(Json(TaskReply::new(&self.ccmp, &record)))
    }

    /// A task's status, result or error, and next step.
    #[tool(annotations(read_only_hint = true, open_world_hint = false))]
    async fn check_task_status(
        &self,
        Parameters(params): Parameters<TaskIdParams>,
    ) -> Result<Json<TaskReply>, String> {
        let id = self.resolve(&params.task_id).await?;
        let record = self.blocking(move |ccmp| ccmp.status(&id)).await?;
        Ok(Json(TaskReply::new(&self.ccmp, &record)))
    }

    /// List queued and running tasks, newest first (include_finished for all).
    #[tool(annotations(read_only_hint = true, open_world_hint = false))]
    async fn list_active_tasks(
        &self,
        Parameters(params): Parameters<ListParams>,
    ) -> Result<Json<ListReply>, String> {
        if let Some(limit) = params.limit
            && !(1..=MAX_LIST_LIMIT).contains(&limit)
        {
            return Err(format!(
                "limit must be from 1 to {MAX_LIST_LIMIT}, got {limit}"
            ));
        }
        let states = params
            .status
            .map(|status| status.parse::<TaskStatus>())
            .transpose()?
            .into_iter()
            .collect();
        let group = params
            .group
            .map(|g| g.parse::<ccmp_core::GroupName>())
            .transpose()
            .map_err(|e| e.to_string())?;
        let query = ListQuery::from_filters(
            states,
            params.include_finished.unwrap_or(false),
            params.limit.map(|n| n as usize),
        )
        .in_group(group);
        let list = self.blocking(move |ccmp| ccmp.list(&query)).await?;
        Ok(Json(ListReply::new(&self.ccmp, &list)))
    }

    /// Remove tasks and their logs.
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
                id: self.resolve(&id).await?,
                force: params.force.unwrap_or(false),
            },
            (None, true, None) => CleanupTarget::Finished,
            (None, false, Some(age)) => {
                CleanupTarget::OlderThan(ccmp_core::parse_duration(&age).map_err(fail)?)
            }
            _ => {
                return Err(
                    "give exactly one of task_id, finished=true or older_than (older_than already means finished tasks only)"
                        .to_owned(),
                );
            }
        };
        if params.force.is_some() && !matches!(target, CleanupTarget::Task { .. }) {
            return Err("force applies to one task: give it with task_id".to_owned());
        }
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

    /// Wait until all (or any) of the tasks finish, up to timeout_s, instead of polling.
    #[tool(annotations(read_only_hint = true, open_world_hint = false))]
    async fn wait_for_tasks(
        &self,
        Parameters(params): Parameters<WaitParams>,
        cancel: CancellationToken,
    ) -> Result<Json<WaitReply>, String> {
        let mode = params
            .mode
            .as_deref()
            .map(str::parse::<WaitMode>)
            .transpose()?
            .unwrap_or_default();
        let timeout = params.timeout_s.unwrap_or(50.0);
        if !(timeout.is_finite() && (0.0..=600.0).contains(&timeout)) {
            return Err(format!(
                "timeout_s must be from 0 to 600 seconds, got {timeout}"
            ));
        }
        if params.task_ids.len() > MAX_WAIT_IDS {
            return Err(format!("wait for at most {MAX_WAIT_IDS} tasks at a time"));
        }
        let given = params.task_ids;
        let ids = self.blocking(move |ccmp| ccmp.resolve_all(&given)).await?;
        let outcome = tokio::select! {
            outcome = self.ccmp.wait(&ids, mode, Duration::from_secs_f64(timeout)) => outcome.map_err(fail)?,
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
        let id = self.resolve(&params.task_id).await?;
        let outcome = self.ccmp.cancel(&id).await.map_err(fail)?;
        let reply = TaskReply::new(&self.ccmp, &outcome.record);
        Ok(Json(if outcome.already_finished {
            reply.with_note("It had already finished; nothing was cancelled.")
        } else {
            reply
        }))
    }

    /// Read a task's output by pages (offset, limit) or last lines (tail).
    #[tool(annotations(read_only_hint = true, open_world_hint = false))]
    async fn get_task_output(
        &self,
        Parameters(params): Parameters<OutputParams>,
    ) -> Result<Json<OutputReply>, String> {
        let source = params
            .stream
            .as_deref()
            .map(str::parse::<OutputSource>)
            .transpose()?
            .unwrap_or_default();
        let limit = params.limit.unwrap_or(OUTPUT_PAGE).min(OUTPUT_PAGE) as usize;
        let range = match params.tail {
            Some(lines) => LogRange::Tail {
                lines: lines as usize,
                limit,
            },
            None => LogRange::Bytes {
                offset: params.offset.unwrap_or(0),
                limit,
            },
        };
        let id = self.resolve(&params.task_id).await?;
        let chunk = self
            .blocking(move |ccmp| ccmp.output(&id, source, range))
            .await?;
        Ok(Json(OutputReply::new(id.short(), source, chunk)))
    }

    /// Follow up on a task in its session (after any turn still running). Returns at once.
    #[tool(annotations(
        read_only_hint = false,
        destructive_hint = false,
        open_world_hint = true
    ))]
    async fn continue_task(
        &self,
        Parameters(params): Parameters<ContinueParams>,
    ) -> Result<Json<TaskReply>, String> {
        let id = self.resolve(&params.task_id).await?;
        let prompt = params.prompt;
        let record = self
            .blocking(move |ccmp| ccmp.follow_up(&id, prompt))
            .await?;
        Ok(Json(TaskReply::new(&self.ccmp, &record)))
    }

    /// Run or refuse the pending tool use of a task in needs_approval.
    #[tool(annotations(
        read_only_hint = false,
        destructive_hint = false,
        open_world_hint = true
    ))]
    async fn answer_approval(
        &self,
        Parameters(params): Parameters<AnswerParams>,
    ) -> Result<Json<TaskReply>, String> {
        let id = self.resolve(&params.task_id).await?;
        let answer = if params.approve {
            ccmp_core::ApprovalAnswer::approve().always(params.always.unwrap_or(false))
        } else {
            ccmp_core::ApprovalAnswer::deny(params.reason)
        };
        let record = self
            .blocking(move |ccmp| ccmp.answer_approval(&id, answer))
            .await?;
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
            "Runs coding agents (Claude Code, or Codex with agent=codex) as background tasks, many in parallel. To hand off work: \
             start_cc_task_async(prompt, working_dir) once per job (returns an id at once), keep \
             working, then wait_for_tasks(task_ids) to collect the results; do not poll \
             check_task_status. execute_cc_task runs one task and waits for it. \
             get_task_output reads a transcript or a long result; continue_task follows up in \
             the same session; cancel_task stops one; cleanup_task removes finished ones. A task \
             in needs_approval waits for the user: show them its pending_approval, then \
             answer_approval. Tasks outlive this session; an id may be shortened to 4+ hex \
             digits.",
        )
    }

    async fn call_tool(
        &self,
        request: rmcp::model::CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let tool = request.name.clone();
        let call = rmcp::handler::server::tool::ToolCallContext::new(self, request, context);
        let mut response = self.tool_router.call(call).await?;
        match &mut response {
            CallToolResponse::Complete(result) => self.news.attach(&tool, result),
            CallToolResponse::Task(created) => self.news.own(&created.task.task_id),
            _ => {}
        }
        Ok(response)
    }

    async fn get_task(
        &self,
        request: GetTaskParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<GetTaskResult, ErrorData> {
        let record = self
            .ccmp
            .resolve(&request.task_id)
            .and_then(|id| self.ccmp.status(&id))
            .map_err(crate::tasks::not_found)?;
        Ok(GetTaskResult::new(crate::tasks::detailed(
            &self.ccmp, &record,
        )))
    }

    async fn update_task(
        &self,
        request: UpdateTaskParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        let responses = request.input_responses;
        let ccmp = self.ccmp.clone();
        // Answering launches the task's runner again: keep that off the async workers.
        tokio::task::spawn_blocking(move || {
            let id = ccmp
                .resolve(&request.task_id)
                .map_err(crate::tasks::not_found)?;
            let record = ccmp.status(&id).map_err(crate::tasks::not_found)?;
            match crate::tasks::answer_of(&record, &responses)? {
                Some(answer) => ccmp
                    .answer_approval(&id, answer)
                    .map(drop)
                    .map_err(crate::tasks::not_found),
                None => Ok(()),
            }
        })
        .await
        .map_err(|e| ErrorData::internal_error(e.to_string(), None))?
    }

    async fn cancel_task(
        &self,
        request: CancelTaskParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.ccmp
            .resolve(&request.task_id)
            .and_then(|id| self.ccmp.request_cancel(&id))
            .map_err(crate::tasks::not_found)?;
        Ok(())
    }
}
