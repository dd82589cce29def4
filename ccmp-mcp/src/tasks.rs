//! The MCP tasks extension (`io.modelcontextprotocol/tasks`, SEP-2663) over ccmp's own store.
//!
//! A client that declares the extension gets `execute_cc_task` back as a task whose id is the
//! ccmp task's id, and polls `tasks/get`, which reads the store: so a task survives a server
//! restart, has no TTL (`ttlMs: null`), and is never failed by a timer. rmcp's in-memory
//! `TaskManager` is not used for exactly those reasons.
//!
//! States: `queued`/`running` are `working` (with the task's progress as `statusMessage`);
//! `succeeded` is `completed` with the same result `execute_cc_task` returns; `failed`,
//! `timed_out` and `lost` are `completed` with an `isError` result, the way a tool error is
//! reported; `cancelled` is `cancelled`. `failed` is left for protocol failures.
//!
//! A task waiting for an approval (`needs_approval`) is `input_required`, with one form
//! elicitation per pending tool use, keyed by that tool use; `tasks/update` answers it exactly as
//! `answer_approval` does (see [`answer_of`]).

use ccmp_core::{ApprovalAnswer, Ccmp, PendingApproval, TaskRecord, TaskStatus};
use rmcp::ErrorData;
use rmcp::model::TaskStatus as McpTaskStatus;
use rmcp::model::{
    CallToolResult, DetailedTask, ElicitRequest, ElicitRequestParams, ElicitResult,
    ElicitationAction, ElicitationSchema, EnumSchema, InputRequest, InputRequests, InputResponses,
    JsonObject, Task, TaskPayload,
};

use crate::reply::TaskReply;

/// How often clients should poll: a Claude Code task takes seconds to hours.
const POLL_INTERVAL_MS: u64 = 2_000;

/// A tool result carrying `reply` as structured content (and as text, for clients that read only
/// text, as Claude Code does for error results).
pub fn structured(reply: &TaskReply, is_error: bool) -> CallToolResult {
    let value = serde_json::to_value(reply).unwrap_or_default();
    if is_error {
        CallToolResult::structured_error(value)
    } else {
        CallToolResult::structured(value)
    }
}

/// The task header for a record.
pub fn task_of(ccmp: &Ccmp, record: &TaskRecord) -> Task {
    let updated = record
        .finished_at
        .or(record.started_at)
        .unwrap_or(record.created_at);
    // Parked and waiting-for-approval tasks are live: never `completed` until they end.
    let status = match record.status {
        TaskStatus::Queued | TaskStatus::Running | TaskStatus::Parked => McpTaskStatus::Working,
        TaskStatus::NeedsApproval if record.pending_approval.is_some() => {
            McpTaskStatus::InputRequired
        }
        TaskStatus::NeedsApproval => McpTaskStatus::Working,
        TaskStatus::Cancelled => McpTaskStatus::Cancelled,
        _ => McpTaskStatus::Completed,
    };
    let mut task = Task::new(
        record.id.to_string(),
        status,
        record.created_at.to_rfc3339(),
        updated.to_rfc3339(),
    )
    .with_poll_interval_ms(POLL_INTERVAL_MS);
    let message = match record.status {
        TaskStatus::Queued => Some("queued: waiting for a free slot".to_owned()),
        TaskStatus::Running | TaskStatus::Parked => record
            .progress
            .clone()
            .or_else(|| Some(record.status.to_string())),
        TaskStatus::NeedsApproval => Some(format!(
            "needs approval: {}; answer with answer_approval",
            record
                .pending_approval
                .as_ref()
                .map_or("a tool use", |p| p.summary.as_str())
        )),
        _ => ccmp.view(record).error,
    };
    if let Some(message) = message {
        task = task.with_status_message(message);
    }
    task
}

/// The full state of a task for `tasks/get`.
pub fn detailed(ccmp: &Ccmp, record: &TaskRecord) -> DetailedTask {
    let task = task_of(ccmp, record);
    let payload = match (&record.status, &record.pending_approval) {
        (TaskStatus::NeedsApproval, Some(pending)) => TaskPayload::InputRequired {
            input_requests: input_requests(record, pending),
        },
        (TaskStatus::Queued | TaskStatus::Running | TaskStatus::Parked, _)
        | (TaskStatus::NeedsApproval, None) => TaskPayload::Working,
        (TaskStatus::Cancelled, _) => TaskPayload::Cancelled,
        (status, _) => {
            let result = structured(&TaskReply::new(ccmp, record), !status.is_success());
            let result = match serde_json::to_value(result) {
                Ok(serde_json::Value::Object(object)) => object,
                _ => JsonObject::new(),
            };
            TaskPayload::Completed { result }
        }
    };
    DetailedTask::new(task, payload)
}

/// The key of the input request for a pending tool use: unique over the task's life, as the
/// extension requires, because the agent's tool use ids are.
fn request_key(pending: &PendingApproval) -> String {
    format!("approval:{}", pending.tool_use_id)
}

/// One form elicitation asking the user to approve or deny the pending tool use.
fn input_requests(record: &TaskRecord, pending: &PendingApproval) -> InputRequests {
    let decision = EnumSchema::builder(vec!["approve".into(), "deny".into()])
        .enum_titles(vec!["Approve: run it".into(), "Deny: refuse it".into()])
        .map(|b| b.title("Decision").build())
        .unwrap_or_else(|_| EnumSchema::builder(vec!["approve".into(), "deny".into()]).build());
    let schema = ElicitationSchema::builder()
        .required_enum_schema("decision", decision)
        .optional_bool_with("always", |b| {
            b.title("Always")
                .description("Approve, and also allow what the same rule holds back for the rest of this task")
                .with_default(false)
        })
        .optional_string_with("reason", |s| {
            s.title("Reason").description("When denying: why, told to the agent as the tool's error")
        })
        .build()
        .unwrap_or_else(|_| ElicitationSchema::new(Default::default()));
    let prompt: String = record.spec.prompt.chars().take(80).collect();
    let message = format!(
        "ccmp task {} (\"{}\") wants to run {}. Approve it?",
        record.id.short(),
        prompt.replace('\n', " "),
        pending.summary
    );
    let request = ElicitRequest::new(ElicitRequestParams::FormElicitationParams {
        meta: None,
        message,
        requested_schema: schema,
    });
    InputRequests::from([(request_key(pending), InputRequest::Elicitation(request))])
}

/// The answer a `tasks/update` gives to a task's pending tool use, or `None` when the user
/// dismissed the form (the task keeps waiting). Declining the form denies the tool use.
pub fn answer_of(
    record: &TaskRecord,
    responses: &InputResponses,
) -> Result<Option<ApprovalAnswer>, ErrorData> {
    let short = record.id.short();
    let Some(pending) = record
        .pending_approval
        .as_ref()
        .filter(|_| record.status == TaskStatus::NeedsApproval)
    else {
        return Err(ErrorData::invalid_params(
            format!(
                "task {short} has no input request outstanding: it is {} (an approval may already have been answered)",
                record.status
            ),
            None,
        ));
    };
    let key = request_key(pending);
    if let Some(other) = responses.keys().find(|k| **k != key) {
        return Err(ErrorData::invalid_params(
            format!("task {short} has no input request {other:?}; the outstanding one is {key:?}"),
            None,
        ));
    }
    let Some(response) = responses.get(&key) else {
        return Err(ErrorData::invalid_params(
            format!("inputResponses must answer {key:?}, task {short}'s outstanding request"),
            None,
        ));
    };
    let result: ElicitResult = serde_json::from_value(response.clone()).map_err(|e| {
        ErrorData::invalid_params(
            format!("the response to {key:?} must be an elicitation result ({e})"),
            None,
        )
    })?;
    let answer = match result.action {
        ElicitationAction::Cancel => return Ok(None),
        ElicitationAction::Decline => ApprovalAnswer::deny(None),
        ElicitationAction::Accept => {
            let content = result.content.unwrap_or_default();
            let text = |field: &str| content.get(field).and_then(|v| v.as_str());
            let reason = text("reason")
                .map(str::trim)
                .filter(|r| !r.is_empty())
                .map(str::to_owned);
            match text("decision") {
                Some("approve") => ApprovalAnswer::approve().always(
                    content.get("always").and_then(serde_json::Value::as_bool) == Some(true),
                ),
                Some("deny") => ApprovalAnswer::deny(reason),
                _ => {
                    return Err(ErrorData::invalid_params(
                        format!(
                            "the accepted form for {key:?} must have decision \"approve\" or \"deny\""
                        ),
                        None,
                    ));
                }
            }
        }
        _ => return Ok(None),
    };
    Ok(Some(answer.for_tool_use(&pending.tool_use_id)))
}

/// `tasks/*` on an unknown or malformed id: invalid params (-32602), with ccmp's explanation.
pub fn not_found(err: ccmp_core::Error) -> ErrorData {
    ErrorData::invalid_params(err.to_string(), None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn waiting() -> TaskRecord {
        let spec = ccmp_core::TaskRequest::new("push the fix")
            .working_dir(std::env::temp_dir())
            .validate(&"/bin/true".into())
            .unwrap();
        let mut record = TaskRecord::new(spec);
        record.status = TaskStatus::NeedsApproval;
        record.pending_approval = Some(PendingApproval {
            tool_use_id: "toolu_01".into(),
            tool: "Bash".into(),
            summary: "Bash: git push".into(),
            input: json!({"command": "git push"}),
            asked_at: chrono::Utc::now(),
        });
        record
    }

    fn responses(response: serde_json::Value) -> InputResponses {
        InputResponses::from([("approval:toolu_01".to_owned(), response)])
    }

    #[test]
    fn the_form_answers_map_to_approval_answers() {
        let record = waiting();
        let approve = answer_of(
            &record,
            &responses(
                json!({"action": "accept", "content": {"decision": "approve", "always": true}}),
            ),
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            approve,
            ApprovalAnswer::approve()
                .always(true)
                .for_tool_use("toolu_01")
        );
        let deny = answer_of(
            &record,
            &responses(json!({"action": "accept", "content": {"decision": "deny", "reason": " use a fork "}})),
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            deny,
            ApprovalAnswer::deny(Some("use a fork".into())).for_tool_use("toolu_01")
        );
        let declined = answer_of(&record, &responses(json!({"action": "decline"})))
            .unwrap()
            .unwrap();
        assert_eq!(
            declined,
            ApprovalAnswer::deny(None).for_tool_use("toolu_01")
        );
        let dismissed = answer_of(&record, &responses(json!({"action": "cancel"}))).unwrap();
        assert_eq!(dismissed, None, "a dismissed form leaves the task waiting");
    }

    #[test]
    fn malformed_or_stale_responses_are_invalid_params_that_say_what_to_send() {
        let record = waiting();
        let stale = InputResponses::from([(
            "approval:toolu_00".to_owned(),
            json!({"action": "accept", "content": {"decision": "approve"}}),
        )]);
        let error = answer_of(&record, &stale).unwrap_err();
        assert!(error.message.contains("\"approval:toolu_01\""), "{error:?}");
        let error = answer_of(&record, &InputResponses::new()).unwrap_err();
        assert!(error.message.contains("must answer"), "{error:?}");
        let error = answer_of(
            &record,
            &responses(json!({"action": "accept", "content": {}})),
        )
        .unwrap_err();
        assert!(error.message.contains("decision"), "{error:?}");
        let error = answer_of(&record, &responses(json!("yes"))).unwrap_err();
        assert!(error.message.contains("elicitation result"), "{error:?}");
    }
}
