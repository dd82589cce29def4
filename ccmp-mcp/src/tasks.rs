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

use ccmp_core::{Ccmp, TaskRecord, TaskStatus};
use rmcp::ErrorData;
use rmcp::model::TaskStatus as McpTaskStatus;
use rmcp::model::{CallToolResult, DetailedTask, JsonObject, Task, TaskPayload};

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
        TaskStatus::Queued
        | TaskStatus::Running
        | TaskStatus::Parked
        | TaskStatus::NeedsApproval => McpTaskStatus::Working,
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
    let payload = match record.status {
        TaskStatus::Queued
        | TaskStatus::Running
        | TaskStatus::Parked
        | TaskStatus::NeedsApproval => TaskPayload::Working,
        TaskStatus::Cancelled => TaskPayload::Cancelled,
        status => {
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

/// `tasks/*` on an unknown or malformed id: invalid params (-32602), with ccmp's explanation.
pub fn not_found(err: ccmp_core::Error) -> ErrorData {
    ErrorData::invalid_params(err.to_string(), None)
}
