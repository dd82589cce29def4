//! `ccmp list`: a table of tasks, newest first.

use std::process::ExitCode;

use ccmp_core::{Ccmp, ListQuery, TaskStatus};
use clap::Args;
use comfy_table::{ContentArrangement, Table, presets};
use serde::Serialize;

use super::common::print_json;
use crate::render::{age, head, short_path, state};

/// List tasks: queued and running ones, or all with --all.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Include finished tasks.
    #[arg(short, long)]
    pub all: bool,
    /// Only tasks in this state (queued, running, succeeded, failed, timed_out, cancelled, lost);
    /// repeat for more.
    #[arg(long = "state", value_name = "STATE")]
    pub states: Vec<TaskStatus>,
    /// Show at most this many tasks.
    #[arg(short = 'n', long, default_value_t = ccmp_core::DEFAULT_LIST_LIMIT)]
    pub limit: usize,
    /// Print JSON: the tasks' views, the total and damaged records.
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct ListJson {
    tasks: Vec<ccmp_core::TaskView>,
    total: usize,
    damaged: Vec<ccmp_core::DamagedTask>,
}

pub fn run(ccmp: &Ccmp, args: ListArgs) -> anyhow::Result<ExitCode> {
    let query = ListQuery::from_filters(args.states, args.all, Some(args.limit));
    let list = ccmp.list(&query)?;
    if args.json {
        return print_json(&ListJson {
            tasks: list.tasks.iter().map(|r| ccmp.view(r)).collect(),
            total: list.total,
            damaged: list.damaged,
        })
        .map(|()| ExitCode::SUCCESS);
    }
    if list.tasks.is_empty() && list.damaged.is_empty() {
        let hint = if query.is_live_only() {
            " (--all shows finished ones)"
        } else {
            ""
        };
        err!("no tasks{hint}");
        return Ok(ExitCode::SUCCESS);
    }
    let mut table = Table::new();
    table
        .load_style(presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(["ID", "STATE", "AGE", "MODEL", "DIR", "PROMPT"]);
    if let Some((width, _)) = terminal_size::terminal_size() {
        table.set_width(width.0);
    }
    for record in &list.tasks {
        let view = ccmp.view(record);
        table.add_row([
            view.short_id.clone(),
            state(view.status),
            age(view.created_at),
            view.model.clone().unwrap_or_else(|| "-".into()),
            short_path(&view.working_dir),
            head(&view.prompt, 60),
        ]);
    }
    for damaged in &list.damaged {
        table.add_row([
            damaged.short_id.clone(),
            "damaged".into(),
            "-".into(),
            "-".into(),
            "-".into(),
            head(&damaged.reason, 60),
        ]);
    }
    out!("{table}");
    if list.total > list.tasks.len() {
        err!(
            "showing {} of {} tasks; use --limit to see more",
            list.tasks.len(),
            list.total
        );
    }
    Ok(ExitCode::SUCCESS)
}
