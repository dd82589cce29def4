//! Tool replies: what the model reads. Claude Code shows the model only `structuredContent`, so
//! each reply carries the status, the result, the error and what to do next. Every reply fits
//! in [`REPLY_BUDGET`] bytes of JSON whatever the number of tasks or the size of their output:
//! long texts are cut (with `truncated: true` and a pointer to the next page) and lists stop
//! early (with the total count).

use ccmp_core::{
    Ccmp, CleanupReport, DamagedTask, LogChunk, OutputSource, StartOutlook, TaskList, TaskRecord,
    TaskStatus, TaskView, WaitOutcome,
};
use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::Serialize;

/// The most bytes of JSON in one reply.
pub const REPLY_BUDGET: usize = 8 * 1024;

/// One task, in full: the core's task view (its texts cut to fit), how long it ran, and what to
/// do next. The shared reply of every tool that answers about a single task.
#[derive(Debug, Serialize, JsonSchema)]
pub struct TaskReply {
    /// The task.
    #[serde(flatten)]
    pub task: TaskView,
    /// Whether `result` was cut to fit this reply.
    pub truncated: bool,
    /// What to do next.
    pub next: String,
}

/// One task, briefly: an entry of a list or a wait.
#[derive(Debug, Serialize, JsonSchema)]
pub struct TaskBrief {
    /// Full task id.
    pub id: String,
    /// Short id.
    pub short_id: String,
    /// queued, running, succeeded, failed, timed_out, cancelled, lost or skipped.
    pub status: String,
    /// Start of the prompt.
    pub prompt: String,
    /// Latest activity.
    pub progress: Option<String>,
    /// Start of the final answer (finished tasks).
    pub result: Option<String>,
    /// Start of the error.
    pub error: Option<String>,
    /// Whether `result` or `error` was cut.
    pub truncated: bool,
    /// Cost in USD.
    pub cost_usd: Option<f64>,
    /// When the task was created.
    pub created_at: DateTime<Utc>,
    /// Its Slurm job: `12@node3`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slurm_job: Option<String>,
}

/// A page of tasks.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ListReply {
    /// Tasks, newest first.
    pub tasks: Vec<TaskBrief>,
    /// How many tasks matched.
    pub total: usize,
    /// Whether fewer tasks are shown than matched (by the limit, or to fit the reply).
    pub truncated: bool,
    /// Tasks whose record is damaged.
    pub damaged: Vec<Damaged>,
    /// What to do next.
    pub next: String,
}

/// A task whose record cannot be read.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Damaged {
    /// Short id.
    pub short_id: String,
    /// What is wrong.
    pub reason: String,
}

/// What a wait saw.
#[derive(Debug, Serialize, JsonSchema)]
pub struct WaitReply {
    /// Tasks that have finished.
    pub finished: Vec<TaskBrief>,
    /// Tasks still queued or running.
    pub pending: Vec<TaskBrief>,
    /// Whether the wait ended by its timeout.
    pub timed_out: bool,
    /// Whether results were cut to fit (check_task_status shows one in full).
    pub truncated: bool,
    /// What to do next.
    pub next: String,
}

/// What a cleanup removed.
#[derive(Debug, Serialize, JsonSchema)]
pub struct CleanupReply {
    /// Short ids removed.
    pub removed: Vec<String>,
    /// Worktree branches kept because they hold work (uncommitted changes are committed first).
    pub branches_kept: Vec<String>,
    /// Worktree branches deleted.
    pub branches_deleted: Vec<String>,
    /// Tasks kept, with why.
    pub skipped: Vec<Damaged>,
    /// What happened.
    pub next: String,
}

/// A page of a task's output.
#[derive(Debug, Serialize, JsonSchema)]
pub struct OutputReply {
    /// Short id.
    pub short_id: String,
    /// Which output.
    pub stream: String,
    /// The text.
    pub text: String,
    /// Byte offset of `text`.
    pub offset: u64,
    /// Offset of the next page.
    pub next_offset: u64,
    /// Size of the whole output so far.
    pub total_bytes: u64,
    /// Whether this page reaches the end.
    pub at_end: bool,
    /// What to do next.
    pub next: String,
}

/// A cost to a tenth of a cent: `0.0473`, not `0.047299999999999995`.
fn round_cost(usd: f64) -> f64 {
    (usd * 10_000.0).round() / 10_000.0
}

fn size<T: Serialize>(value: &T) -> usize {
    serde_json::to_vec(value).map_or(usize::MAX, |v| v.len())
}

/// Cuts `text` to at most `max` bytes, at a character boundary.
pub fn clip(text: &str, max: usize) -> (String, bool) {
    if text.len() <= max {
        return (text.to_owned(), false);
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    (format!("{}…", &text[..end]), true)
}

fn clip_opt(text: Option<&str>, max: usize) -> (Option<String>, bool) {
    match text {
        Some(t) => {
            let (t, cut) = clip(t, max);
            (Some(t), cut)
        }
        None => (None, false),
    }
}

/// What the model should do next with a task in this state.
pub fn next_step(view: &TaskView, truncated: bool, outlook: Option<&StartOutlook>) -> String {
    let id = &view.short_id;
    let queued = match outlook {
        Some(StartOutlook::Paused) => {
            "Queued: new tasks are paused (a person ran `ccmp pause`); it starts after `ccmp resume`.".to_owned()
        }
        Some(StartOutlook::GroupPaused(group)) => format!(
            "Queued: group {group} is paused (a person ran `ccmp pause --group {group}`); it starts after `ccmp resume --group {group}`."
        ),
        Some(StartOutlook::GroupFull { group, limit: 1 }) => format!(
            "Queued: group {group} runs one task at a time, so it starts when the group's running task ends."
        ),
        Some(StartOutlook::GroupFull { group, limit }) => format!(
            "Queued: group {group} runs {limit} tasks at once, all busy, so it starts when one of them ends."
        ),
        Some(StartOutlook::BudgetSpent(why)) => format!(
            "Queued: the {why}. A person can raise it with `ccmp budget set`."
        ),
        Some(StartOutlook::MachineFull { limit: 1 }) => {
            "Queued: the one slot (max_parallel 1) is busy, so it starts when the running task ends.".to_owned()
        }
        Some(StartOutlook::MachineFull { limit }) => format!(
            "Queued: all {limit} slots are busy, so it starts when a running task ends."
        ),
        Some(StartOutlook::Starting) => "Queued: a slot is free, so it is starting now.".to_owned(),
        Some(StartOutlook::InSlurmQueue { job_id, reason }) => format!(
            "Queued in Slurm as job {job_id}{}: Slurm starts it when the cluster has room.",
            reason.as_deref().map_or(String::new(), |r| format!(" ({r})"))
        ),
        Some(StartOutlook::AfterDependencies(_)) | None => "Queued.".to_owned(),
    };
    let mut next = match view.status {
        TaskStatus::Queued if !view.after.is_empty() => format!(
            "Queued behind {}: it starts once {} succeeded, and is skipped if not. Wait with wait_for_tasks(task_ids=[\"{id}\"]) instead of polling; cancel_task stops it.",
            view.after.join(", "),
            if view.after.len() == 1 { "that task has" } else { "those tasks have" }
        ),
        TaskStatus::Queued => format!(
            "{queued} Wait with wait_for_tasks(task_ids=[\"{id}\"]) instead of polling; cancel_task stops it."
        ),
        TaskStatus::NeedsApproval => format!(
            "Needs approval: the agent wants to use a tool its approval policy holds back (see pending_approval). Ask the user, then answer_approval(task_id=\"{id}\", approve=true|false, reason=…); it then resumes."
        ),
        TaskStatus::Parked => format!(
            "Parked on a usage limit: it resumes its session by itself when the limit resets (see progress). wait_for_tasks(task_ids=[\"{id}\"]) waits through it; cancel_task stops it."
        ),
        TaskStatus::Running => format!(
            "Running. Wait with wait_for_tasks(task_ids=[\"{id}\"]) instead of polling; cancel_task stops it."
        ),
        TaskStatus::Succeeded => {
            "Done. continue_task follows up in the same session; cleanup_task removes it."
                .to_owned()
        }
        TaskStatus::Failed | TaskStatus::TimedOut | TaskStatus::Lost => format!(
            "See error. get_task_output(task_id=\"{id}\") shows what it did; continue_task resumes its session."
        ),
        TaskStatus::Cancelled => {
            "Cancelled. continue_task resumes its session, if it had one.".to_owned()
        }
        TaskStatus::Skipped => {
            "Never ran: see error for the dependency that did not succeed. Start it again once that is fixed.".to_owned()
        }
    };
    if truncated {
        next.push_str(&format!(
            " The result was cut to fit: read it all with get_task_output(task_id=\"{id}\", stream=\"result\")."
        ));
    }
    next
}

impl TaskReply {
    /// The reply for one task, its texts cut to fit the budget.
    pub fn new(ccmp: &Ccmp, record: &TaskRecord) -> Self {
        let mut view = ccmp.view(record);
        let result = view.result.take();
        // What a model never needs: the whole usage object (tokens in and out stay) and the
        // log's path (get_task_output reads it).
        view.usage = None;
        view.log_path = None;
        view.cost_usd = view.cost_usd.map(round_cost);
        view.prompt = clip(&view.prompt, 300).0;
        view.error = clip_opt(view.error.as_deref(), 1500).0;
        view.permission_denials = view
            .permission_denials
            .iter()
            .take(5)
            .map(|d| {
                let (input, _) = clip(&d["tool_input"].to_string(), 200);
                serde_json::json!({"tool_name": d["tool_name"], "tool_input": input})
            })
            .collect();
        let outlook = ccmp.start_outlook(record).ok().flatten();
        let mut reply = Self {
            next: next_step(&view, true, outlook.as_ref()),
            task: view,
            truncated: false,
        };
        // Room left for the result, with the longest `next`; JSON escaping may grow the text,
        // so shrink until it fits.
        let mut room = REPLY_BUDGET.saturating_sub(size(&reply) + 16);
        if let Some(result) = result.as_deref() {
            loop {
                let (text, cut) = clip(result, room);
                reply.task.result = Some(text);
                reply.truncated = cut;
                if size(&reply) <= REPLY_BUDGET || room == 0 {
                    break;
                }
                room = room.saturating_sub(size(&reply) - REPLY_BUDGET + 64);
            }
        }
        reply.next = next_step(&reply.task, reply.truncated, outlook.as_ref());
        reply
    }

    /// Replaces `next` with a note followed by the usual advice.
    pub fn with_note(mut self, note: &str) -> Self {
        self.next = format!("{note} {}", self.next);
        self
    }
}

impl TaskBrief {
    fn new(ccmp: &Ccmp, record: &TaskRecord, text_max: usize) -> Self {
        let view = ccmp.view(record);
        let (result, cut_result) = clip_opt(view.result.as_deref(), text_max);
        let (error, cut_error) = clip_opt(view.error.as_deref(), text_max.max(200));
        Self {
            prompt: clip(&view.prompt, 80).0,
            id: view.id,
            short_id: view.short_id,
            status: view.status.to_string(),
            progress: view.progress,
            result,
            error,
            truncated: cut_result || cut_error,
            cost_usd: view.cost_usd.map(round_cost),
            created_at: view.created_at,
            slurm_job: view.slurm.as_ref().map(ccmp_core::SlurmJob::short),
        }
    }
}

fn damaged(list: &[DamagedTask]) -> Vec<Damaged> {
    list.iter()
        .take(10)
        .map(|d| Damaged {
            short_id: d.short_id.clone(),
            reason: clip(&d.reason, 200).0,
        })
        .collect()
}

impl ListReply {
    /// A page of tasks that fits the budget.
    pub fn new(ccmp: &Ccmp, list: &TaskList) -> Self {
        let mut reply = Self {
            tasks: Vec::new(),
            total: list.total,
            truncated: false,
            damaged: damaged(&list.damaged),
            next: String::new(),
        };
        for record in &list.tasks {
            let brief = TaskBrief::new(ccmp, record, 120);
            reply.tasks.push(brief);
            if size(&reply) > REPLY_BUDGET - 300 {
                reply.tasks.pop();
                break;
            }
        }
        reply.truncated = reply.tasks.len() < reply.total;
        reply.next = if reply.tasks.len() < reply.total {
            format!(
                "Showing the newest {} of {}. Narrow with status, or check_task_status for one task.",
                reply.tasks.len(),
                reply.total
            )
        } else if reply.total == 0 {
            "No tasks match. include_finished=true shows finished ones.".to_owned()
        } else {
            "check_task_status shows a task in full; wait_for_tasks waits for several.".to_owned()
        };
        if ccmp.max_parallel().is_ok_and(|s| s.paused) {
            reply.next = format!(
                "New tasks are paused (a person ran `ccmp pause`): queued ones start after `ccmp resume`. {}",
                reply.next
            );
        }
        reply
    }
}

impl WaitReply {
    /// What the wait saw, results cut to share the budget.
    pub fn new(ccmp: &Ccmp, outcome: &WaitOutcome) -> Self {
        let mut text_max = 1500;
        loop {
            let mut reply = Self {
                finished: outcome
                    .finished
                    .iter()
                    .map(|r| TaskBrief::new(ccmp, r, text_max))
                    .collect(),
                pending: outcome
                    .pending
                    .iter()
                    .map(|r| TaskBrief::new(ccmp, r, text_max))
                    .collect(),
                timed_out: outcome.timed_out,
                truncated: false,
                next: String::new(),
            };
            reply.truncated = reply
                .finished
                .iter()
                .chain(&reply.pending)
                .any(|b| b.truncated);
            let ids: Vec<String> = reply
                .pending
                .iter()
                .map(|b| format!("\"{}\"", b.short_id))
                .collect();
            let queued = reply
                .pending
                .iter()
                .filter(|b| b.status == "queued")
                .count();
            let asking: Vec<String> = reply
                .pending
                .iter()
                .filter(|b| b.status == "needs_approval")
                .map(|b| b.short_id.clone())
                .collect();
            reply.next = match (reply.pending.is_empty(), reply.timed_out) {
                _ if !asking.is_empty() => format!(
                    "{} needs the user's approval before it can go on (check_task_status shows pending_approval): ask them, answer with answer_approval, then wait_for_tasks(task_ids=[{}]) again.",
                    asking.join(", "),
                    ids.join(",")
                ),
                (true, _) => "All done. check_task_status shows a full result.".to_owned(),
                (false, true) if queued == reply.pending.len() => format!(
                    "None of them has started yet: they are queued (progress says why). Call wait_for_tasks(task_ids=[{}]) again to keep waiting.",
                    ids.join(",")
                ),
                (false, true) if queued > 0 => format!(
                    "Still running, and {queued} not started yet (queued; progress says why): call wait_for_tasks(task_ids=[{}]) again to keep waiting.",
                    ids.join(",")
                ),
                (false, true) => format!(
                    "Still running: call wait_for_tasks(task_ids=[{}]) again to keep waiting.",
                    ids.join(",")
                ),
                (false, false) => format!(
                    "One finished. Others still run: wait_for_tasks(task_ids=[{}]).",
                    ids.join(",")
                ),
            };
            if size(&reply) <= REPLY_BUDGET || text_max == 0 {
                return reply;
            }
            text_max /= 3;
        }
    }
}

impl CleanupReply {
    /// The cleanup report.
    pub fn new(report: &CleanupReport) -> Self {
        let removed: Vec<String> = report.removed.iter().take(200).cloned().collect();
        let mut next = match report.removed.len() {
            0 => "Nothing was removed.".to_owned(),
            n if n > removed.len() => format!(
                "Removed {n} tasks (the first {} are listed).",
                removed.len()
            ),
            n => format!("Removed {n} task(s) and their logs."),
        };
        for note in report.notes.iter().take(5) {
            next.push(' ');
            next.push_str(&clip(note, 200).0);
        }
        let branches = |kept: bool| -> Vec<String> {
            report
                .worktrees
                .iter()
                .filter(|w| w.branch_kept == kept)
                .take(100)
                .map(|w| w.branch.clone())
                .collect()
        };
        Self {
            removed,
            branches_kept: branches(true),
            branches_deleted: branches(false),
            skipped: report
                .skipped
                .iter()
                .take(10)
                .map(|s| Damaged {
                    short_id: s.short_id.clone(),
                    reason: clip(&s.reason, 200).0,
                })
                .collect(),
            next,
        }
    }
}

impl OutputReply {
    /// A page of output.
    pub fn new(short_id: String, stream: OutputSource, chunk: LogChunk) -> Self {
        let mut next = if chunk.at_end {
            "This is the end of the output so far.".to_owned()
        } else {
            format!(
                "More follows: get_task_output(task_id=\"{short_id}\", stream=\"{stream}\", offset={}).",
                chunk.next_offset
            )
        };
        if chunk.replaced_invalid_utf8 {
            next.push_str(
                " Bytes that are not UTF-8 show as \u{fffd}; offsets count bytes of the output.",
            );
        }
        Self {
            short_id,
            stream: stream.to_string(),
            text: chunk.text,
            offset: chunk.offset,
            next_offset: chunk.next_offset,
            total_bytes: chunk.total_bytes,
            at_end: chunk.at_end,
            next,
        }
    }
}
