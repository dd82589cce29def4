//! `ccmp inbox`, `ccmp approve`, `ccmp deny`: tool uses waiting for a person, and the answers.

use std::process::ExitCode;

use ccmp_core::{ApprovalAnswer, Ccmp};
use clap::Args;

use super::common::print_json;
use crate::render::{age, bold};

/// List the tool uses waiting for your approval, the longest waiting first.
#[derive(Debug, Args)]
pub struct InboxArgs {
    /// Print the waiting tasks' JSON views.
    #[arg(long)]
    pub json: bool,
}

/// Let a task's waiting tool use run; the task resumes.
#[derive(Debug, Args)]
pub struct ApproveArgs {
    /// The task's id or a unique prefix.
    pub id: String,
    /// Also allow, for the rest of this task, whatever the rule that held this use back matches.
    #[arg(long)]
    pub always: bool,
}

/// Refuse a task's waiting tool use; the agent is told the reason and goes on without it.
#[derive(Debug, Args)]
pub struct DenyArgs {
    /// The task's id or a unique prefix.
    pub id: String,
    /// Why, for the agent (it sees this as the tool's error).
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
}

pub fn inbox(ccmp: &Ccmp, args: InboxArgs) -> anyhow::Result<ExitCode> {
    let waiting = ccmp.inbox()?;
    if args.json {
        let views: Vec<_> = waiting.iter().map(|r| ccmp.view(r)).collect();
        print_json(&views)?;
        return Ok(ExitCode::SUCCESS);
    }
    if waiting.is_empty() {
        err!("nothing waits for approval");
        return Ok(ExitCode::SUCCESS);
    }
    for task in &waiting {
        let Some(pending) = &task.pending_approval else {
            continue;
        };
        out!(
            "{}  waiting {}  {}",
            bold(&task.id.short()),
            age(pending.asked_at),
            pending.summary
        );
        out!(
            "          task: {}",
            crate::render::head(&task.spec.prompt, 90)
        );
    }
    err!("`ccmp approve ID` lets it run; `ccmp deny ID --reason …` refuses it");
    Ok(ExitCode::SUCCESS)
}

pub fn answer(ccmp: &Ccmp, id: &str, answer: ApprovalAnswer) -> anyhow::Result<ExitCode> {
    let id = ccmp.resolve(id)?;
    let allow = answer.allow;
    let record = ccmp.answer_approval(&id, answer)?;
    err!(
        "{} {}: the task resumes{}",
        record.id.short(),
        if allow { "approved" } else { "denied" },
        if record.status == ccmp_core::TaskStatus::Queued {
            " when a slot is free"
        } else {
            ""
        }
    );
    Ok(ExitCode::SUCCESS)
}
