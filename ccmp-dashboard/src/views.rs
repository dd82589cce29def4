//! What the templates show: tasks, groups and approvals, formatted once, in Rust.

use ccmp_core::{Ccmp, TaskRecord, TaskStatus};

/// One row of the tasks table.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    pub id: String,
    pub short_id: String,
    pub status: String,
    pub group: String,
    pub prompt: String,
    pub progress: String,
    pub age: String,
    pub duration: String,
    pub cost: String,
    pub worktree: bool,
}

impl Row {
    pub fn of(ccmp: &Ccmp, record: &TaskRecord) -> Self {
        let view = ccmp.view(record);
        Self {
            id: view.id.clone(),
            short_id: view.short_id.clone(),
            status: view.status.to_string(),
            // A Slurm task's job, where it runs: `cluster · job 12@node3`.
            group: match &view.slurm {
                Some(job) => format!("{} · job {}", view.group, job.short()),
                None => view.group.clone(),
            },
            prompt: head(&view.prompt, 120),
            progress: match record.status {
                TaskStatus::Running | TaskStatus::Queued | TaskStatus::Parked => {
                    view.progress.clone().unwrap_or_default()
                }
                TaskStatus::NeedsApproval => view
                    .pending_approval
                    .as_ref()
                    .map(|p| format!("asks: {}", p.summary))
                    .unwrap_or_default(),
                _ => view
                    .error
                    .as_deref()
                    .map(|e| head(e, 120))
                    .unwrap_or_default(),
            },
            age: age(view.created_at),
            duration: view
                .elapsed_s
                .map(|s| ccmp_core::format_duration(s.round() as i64))
                .unwrap_or_default(),
            cost: cost(view.cost_usd),
            worktree: view.worktree.is_some(),
        }
    }
}

/// A pending approval in the inbox.
#[derive(Debug, Clone)]
pub(crate) struct Asking {
    pub id: String,
    pub short_id: String,
    pub prompt: String,
    pub summary: String,
    pub input: String,
    pub waited: String,
}

impl Asking {
    pub fn of(record: &TaskRecord) -> Option<Self> {
        let pending = record.pending_approval.as_ref()?;
        Some(Self {
            id: record.id.to_string(),
            short_id: record.id.short(),
            prompt: head(&record.spec.prompt, 120),
            summary: pending.summary.clone(),
            input: serde_json::to_string_pretty(&pending.input).unwrap_or_default(),
            waited: age(pending.asked_at),
        })
    }
}

pub(crate) fn cost(cost: Option<f64>) -> String {
    cost.map(|c| format!("${c:.2}")).unwrap_or_default()
}

pub(crate) fn age(time: chrono::DateTime<chrono::Utc>) -> String {
    let secs = (chrono::Utc::now() - time).num_seconds().max(0);
    ccmp_core::format_duration(secs)
}

pub(crate) fn head(text: &str, max: usize) -> String {
    let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.chars().count() <= max {
        return line;
    }
    let mut cut: String = line.chars().take(max - 1).collect();
    cut.push('…');
    cut
}
