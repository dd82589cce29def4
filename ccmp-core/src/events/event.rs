//! One event: a small JSON object saying what happened to a task (or a group, or a budget), and
//! what to do next.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::task::{TaskRecord, TaskStatus};

/// How many characters of the prompt an event carries.
const PROMPT_HEAD: usize = 80;
/// How many characters of the result or error an event carries.
const TEXT_HEAD: usize = 300;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A task ended and did what it was asked.
    Succeeded,
    /// A task ended any other way: failed, timed out, cancelled, lost or skipped (`status` says).
    Failed,
    /// A task stopped before a tool use that needs a person's approval.
    NeedsApproval,
    /// A task stopped on a usage limit and waits for the reset.
    Parked,
    /// A task that was parked or waited for an approval runs again.
    Resumed,
    /// Every task of a group has ended.
    GroupDrained,
    /// A budget was spent: tasks it covers wait until it has room again.
    BudgetSpent,
    /// Sent by `ccmp notify test`, to try a notifier.
    Test,
}

impl EventKind {
    /// Every kind, in the order a task lives them.
    pub const ALL: [EventKind; 8] = [
        Self::Succeeded,
        Self::Failed,
        Self::NeedsApproval,
        Self::Parked,
        Self::Resumed,
        Self::GroupDrained,
        Self::BudgetSpent,
        Self::Test,
    ];

    /// The kind's name as it appears in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::NeedsApproval => "needs_approval",
            Self::Parked => "parked",
            Self::Resumed => "resumed",
            Self::GroupDrained => "group_drained",
            Self::BudgetSpent => "budget_spent",
            Self::Test => "test",
        }
    }

    /// Whether this kind ends a task.
    pub fn ends_task(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed)
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EventKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown event kind {s:?}; the kinds are {}",
                    Self::ALL.map(EventKind::as_str).join(", ")
                )
            })
    }
}

/// One event, as appended to the event log and handed to notifiers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Its number in the log: one more than the event before it, never reused.
    pub seq: u64,
    /// When it happened.
    pub at: DateTime<Utc>,
    /// What happened.
    pub kind: EventKind,
    /// The task's full id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_id: Option<String>,
    /// The task's short id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub short_id: Option<String>,
    /// The task's state now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<TaskStatus>,
    /// The start of the task's prompt, on one line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_head: Option<String>,
    /// Where the task works.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<PathBuf>,
    /// The task's group (or the group that drained, or the budget's group).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Seconds from the task's start to now, once it has started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_secs: Option<f64>,
    /// What the task cost so far in USD, as its agent reported it (or a budget's spend).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
    /// The start of the result, the error, or what the task waits for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// One line for people: "3f9a1c2e succeeded in 2m 4s ($0.12): write tests for utils.py".
    pub summary: String,
    /// What to do next, as a command.
    pub next: String,
    /// The task asked for a one-off notification when it ends (`ccmp start --notify`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub notify: bool,
}

impl Event {
    /// An event of `kind` for a task, as its record says now. `seq` is set when it is appended.
    pub fn of_task(kind: EventKind, record: &TaskRecord) -> Self {
        let short = record.id.short();
        let now = Utc::now();
        let duration_secs = record.started_at.map(|started| {
            let end = record.finished_at.unwrap_or(now);
            ((end - started).num_milliseconds().max(0) as f64) / 1000.0
        });
        let cost_usd = record
            .outcome
            .as_ref()
            .and_then(|o| o.cost_usd)
            .or_else(|| {
                record
                    .attempts
                    .iter()
                    .filter_map(|a| a.cost_usd)
                    .reduce(|a, b| a + b)
            });
        let prompt_head = head(&record.spec.prompt, PROMPT_HEAD);
        let (text, next) = match kind {
            EventKind::Succeeded => (
                record.outcome.as_ref().and_then(|o| o.result.as_deref()),
                format!("ccmp status {short}"),
            ),
            EventKind::NeedsApproval => (
                record.pending_approval.as_ref().map(|p| p.summary.as_str()),
                format!("ccmp approve {short}  (or: ccmp deny {short} --reason \"...\")"),
            ),
            EventKind::Parked => (
                record.progress.as_deref(),
                format!("nothing: it resumes by itself; ccmp cancel {short} stops it"),
            ),
            EventKind::Resumed => (record.progress.as_deref(), format!("ccmp wait {short}")),
            _ => (record.error(), format!("ccmp status {short}")),
        };
        let status = record.status;
        let mut summary = format!("{short} {}", kind_words(kind, status));
        if kind.ends_task() {
            if let Some(secs) = duration_secs {
                summary.push_str(&format!(
                    " in {}",
                    crate::duration::format_duration(secs.round() as i64)
                ));
            }
            if let Some(cost) = cost_usd {
                summary.push_str(&format!(" (${cost:.2})"));
            }
        }
        if let Some(text) = text.filter(|_| kind == EventKind::NeedsApproval) {
            summary.push_str(&format!(" to run {}", head(text, 120)));
        }
        summary.push_str(": ");
        summary.push_str(&prompt_head);
        Self {
            seq: 0,
            at: now,
            kind,
            task_id: Some(record.id.to_string()),
            short_id: Some(short),
            status: Some(status),
            prompt_head: Some(prompt_head),
            working_dir: Some(record.spec.working_dir.clone()),
            group: Some(record.spec.group.to_string()),
            duration_secs,
            cost_usd,
            text: text.map(|t| head(t, TEXT_HEAD)),
            summary,
            next,
            notify: record.spec.notify.is_some(),
        }
    }

    /// An event that concerns no one task.
    pub fn general(kind: EventKind, group: Option<String>, summary: String, next: String) -> Self {
        Self {
            seq: 0,
            at: Utc::now(),
            kind,
            task_id: None,
            short_id: None,
            status: None,
            prompt_head: None,
            working_dir: None,
            group,
            duration_secs: None,
            cost_usd: None,
            text: None,
            summary,
            next,
            notify: false,
        }
    }

    /// The environment a command notifier gets: `CCMP_EVENT`, `CCMP_TASK_ID`, `CCMP_STATUS`, …
    /// (a variable for each field that is set; the whole event is on its stdin).
    pub fn env(&self) -> Vec<(&'static str, String)> {
        let mut env = vec![
            ("CCMP_EVENT", self.kind.to_string()),
            ("CCMP_EVENT_SEQ", self.seq.to_string()),
            ("CCMP_SUMMARY", self.summary.clone()),
            ("CCMP_NEXT", self.next.clone()),
        ];
        let optional = [
            ("CCMP_TASK_ID", self.task_id.clone()),
            ("CCMP_SHORT_ID", self.short_id.clone()),
            ("CCMP_STATUS", self.status.map(|s| s.to_string())),
            ("CCMP_PROMPT_HEAD", self.prompt_head.clone()),
            (
                "CCMP_WORKING_DIR",
                self.working_dir.as_ref().map(|d| d.display().to_string()),
            ),
            ("CCMP_GROUP", self.group.clone()),
            (
                "CCMP_DURATION_SECS",
                self.duration_secs.map(|d| d.to_string()),
            ),
            ("CCMP_COST_USD", self.cost_usd.map(|c| c.to_string())),
            ("CCMP_TEXT", self.text.clone()),
        ];
        env.extend(
            optional
                .into_iter()
                .filter_map(|(name, value)| value.map(|v| (name, v))),
        );
        env
    }

    /// The value of a field by its JSON name, as text: for webhook body templates.
    pub fn field(&self, name: &str) -> Option<String> {
        match serde_json::to_value(self).ok()?.get(name)? {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Null => None,
            other => Some(other.to_string()),
        }
    }
}

fn kind_words(kind: EventKind, status: TaskStatus) -> String {
    match kind {
        EventKind::Failed if status != TaskStatus::Failed => status.to_string().replace('_', " "),
        EventKind::NeedsApproval => "needs approval".to_owned(),
        EventKind::Parked => "parked on a usage limit".to_owned(),
        other => other.to_string(),
    }
}

/// The first `max` characters of `text` on one line, with "…" when cut.
pub(crate) fn head(text: &str, max: usize) -> String {
    let line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.chars().count() <= max {
        return line;
    }
    let mut cut: String = line.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_and_a_bad_one_names_them_all() {
        for kind in EventKind::ALL {
            assert_eq!(kind.as_str().parse::<EventKind>().unwrap(), kind);
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.as_str());
        }
        let error = "done".parse::<EventKind>().unwrap_err();
        assert!(
            error.contains("succeeded, failed, needs_approval"),
            "{error}"
        );
    }

    #[test]
    fn heads_are_one_line_and_cut_with_an_ellipsis() {
        assert_eq!(head("a\n b\tc", 10), "a b c");
        assert_eq!(head("abcdefghij", 5), "abcd…");
    }
}
