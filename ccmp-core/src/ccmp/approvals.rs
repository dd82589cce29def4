//! The inbox: tool uses waiting for a person's answer, across tasks, and the answers.

use crate::approval::answers::{Decision, Locked};
use crate::ccmp::{Ccmp, ListQuery};
use crate::error::Error;
use crate::id::TaskId;
use crate::task::{TaskRecord, TaskStatus};

/// An answer to a task's pending tool use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalAnswer {
    /// Run it (else deny it).
    pub allow: bool,
    /// Why not: the agent is told this as the tool's error.
    pub reason: Option<String>,
    /// Also allow, for the rest of the task, what the rule that held this use back matches.
    pub always: bool,
    /// The tool use this answers, when the frontend showed one: the answer is refused if the
    /// task now waits for another (someone answered the one shown, and the agent asked again).
    pub tool_use_id: Option<String>,
}

impl ApprovalAnswer {
    /// Run the pending tool use.
    pub fn approve() -> Self {
        Self {
            allow: true,
            reason: None,
            always: false,
            tool_use_id: None,
        }
    }

    /// Refuse it; the agent is told `reason` (or that the user refused) as the tool's error.
    pub fn deny(reason: Option<String>) -> Self {
        Self {
            allow: false,
            reason,
            always: false,
            tool_use_id: None,
        }
    }

    /// Approve, and also allow what the rule that held it back matches, for the rest of the task.
    #[must_use]
    pub fn always(mut self, always: bool) -> Self {
        self.always = always;
        self
    }

    /// Answer only this tool use (see [`ApprovalAnswer::tool_use_id`]).
    #[must_use]
    pub fn for_tool_use(mut self, tool_use_id: impl Into<String>) -> Self {
        self.tool_use_id = Some(tool_use_id.into());
        self
    }
}

impl Ccmp {
    /// Every task waiting for an approval, the longest waiting first.
    pub fn inbox(&self) -> Result<Vec<TaskRecord>, Error> {
        let mut waiting = self
            .list(&ListQuery {
                states: Some(vec![TaskStatus::NeedsApproval]),
                limit: usize::MAX,
                group: None,
            })?
            .tasks;
        waiting.sort_by_key(|t| t.pending_approval.as_ref().map(|p| p.asked_at));
        Ok(waiting)
    }

    /// Answers a task's pending tool use, and queues the task again: it resumes its session,
    /// and its hook applies this answer to that exact tool use. Two answers at once give one
    /// decision; the other is told it was already answered.
    pub fn answer_approval(
        &self,
        id: &TaskId,
        answer: ApprovalAnswer,
    ) -> Result<TaskRecord, Error> {
        let Some(layout) = self.layout() else {
            return Err(Error::InvalidArgument(
                "approvals need a file store: tasks in memory never wait for one".into(),
            ));
        };
        if let Some(reason) = &answer.reason
            && (reason.trim().is_empty() || reason.chars().any(|c| c.is_control() && c != '\n'))
        {
            return Err(Error::InvalidArgument(
                "the reason must be text (no control characters)".into(),
            ));
        }
        let mut locked = Locked::open(&layout, id)
            .map_err(|e| crate::error::StoreError::write(layout.task_dir(id), e))?;
        let mut record = self.status(id)?;
        let short = record.id.short();
        let pending = match (&record.status, record.pending_approval.clone()) {
            (TaskStatus::NeedsApproval, Some(pending)) => pending,
            // Answered, and resuming (or resumed): the other frontend's answer won.
            (status, _)
                if record.resume_answered
                    || (status == &TaskStatus::Running && !locked.answers.decisions.is_empty()) =>
            {
                return Err(Error::InvalidArgument(format!(
                    "task {short}'s approval was already answered; it is {status} now"
                )));
            }
            (status, _) => {
                return Err(Error::InvalidArgument(format!(
                    "task {short} is not waiting for an approval: it is {status}"
                )));
            }
        };
        if let Some(shown) = &answer.tool_use_id
            && shown != &pending.tool_use_id
        {
            return Err(Error::InvalidArgument(format!(
                "task {short}'s approval of that tool use was already answered; it now waits for another: {}",
                pending.summary
            )));
        }
        if locked.answers.decisions.contains_key(&pending.tool_use_id) {
            return Err(Error::InvalidArgument(format!(
                "task {short}'s approval was already answered"
            )));
        }
        locked.answers.decisions.insert(
            pending.tool_use_id.clone(),
            Decision {
                allow: answer.allow,
                reason: answer.reason.clone(),
            },
        );
        if answer.allow && answer.always {
            let policy = record.spec.ask_policy();
            // The rule that held this use back; failing that (the policy changed), the tool.
            let rule = policy
                .holding(&pending.tool, &pending.input)
                .map_or_else(|| pending.tool.clone(), |rule| rule.to_string());
            locked.answers.always.push(rule);
        }
        locked.answers.pending = None;
        locked
            .save()
            .map_err(|e| crate::error::StoreError::write(layout.task_dir(id), e))?;
        record.pending_approval = None;
        record.resume_answered = true;
        record.set_live_status(TaskStatus::Queued);
        record.runner = None;
        record.creator = crate::process_identity::ProcessIdentity::current().ok();
        record.progress = Some(if answer.allow {
            format!("approved {}; resuming", pending.summary)
        } else {
            format!("denied {}; resuming", pending.summary)
        });
        self.store.save(&record)?;
        drop(locked);
        self.supervisor.launch(&record)?;
        Ok(self.store.load(id).unwrap_or(record))
    }
}
