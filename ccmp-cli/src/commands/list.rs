//! `ccmp list`: a table of tasks, newest first.

use std::process::ExitCode;

use ccmp_core::{Ccmp, GroupName, ListQuery, TaskStatus};
use clap::Args;
use comfy_table::{ColumnConstraint, ContentArrangement, Row, Table, presets};
use serde::Serialize;

use super::common::print_json;
use crate::render::{age, cost, duration, head, short_path, state, terminal_width};

/// List tasks: queued and running ones, or all with --all.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Include finished tasks.
    #[arg(short, long)]
    pub all: bool,
    /// Only tasks in this state (queued, running, succeeded, failed, timed_out, cancelled, lost,
    /// skipped);
    /// repeat for more.
    #[arg(long = "state", value_name = "STATE")]
    pub states: Vec<TaskStatus>,
    /// Only tasks of this group.
    #[arg(short, long, value_name = "NAME")]
    pub group: Option<String>,
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
    let group = args
        .group
        .as_deref()
        .map(str::parse::<GroupName>)
        .transpose()?;
    // Finished tasks keep the name of a group removed since, so any name may be listed; one
    // that matches nothing and is no group is likely a typo.
    let unknown_group = group.as_ref().and_then(|g| ccmp.check_group(g).err());
    let query = ListQuery::from_filters(args.states, args.all, Some(args.limit)).in_group(group);
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
        match unknown_group {
            Some(e) => err!("no tasks: {e}"),
            None => err!("no tasks{hint}"),
        }
        return Ok(ExitCode::SUCCESS);
    }
    let width = terminal_width();
    // Below 100 columns, the age and the dir give way, so that the prompt keeps some room.
    let wide = width.is_none_or(|w| w >= 100);
    // The group shows when some task is in one other than `default`.
    let grouped = list.tasks.iter().any(|t| !t.spec.group.is_default());
    let columns: Vec<Column> = Column::ALL
        .into_iter()
        .filter(|c| wide || !matches!(c, Column::Age | Column::Dir))
        .filter(|c| grouped || !matches!(c, Column::Group))
        .collect();
    let mut table = Table::new();
    table
        .load_style(presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_truncation_indicator("…");
    let mut header = Row::from(columns.iter().map(|c| c.title()));
    header.max_height(1);
    table.set_header(header);
    if let Some(width) = width {
        table.set_width(width);
    }
    // Everything but the prompt keeps its width; the prompt takes what is left, on one line.
    for index in 0..columns.len() - 1 {
        if let Some(column) = table.column_mut(index) {
            column.set_constraint(ColumnConstraint::ContentWidth);
        }
    }
    for record in &list.tasks {
        let view = ccmp.view(record);
        let mut row = Row::from(columns.iter().map(|c| c.cell(&view)));
        row.max_height(1);
        table.add_row(row);
    }
    for damaged in &list.damaged {
        let mut row = Row::from(columns.iter().map(|c| match c {
            Column::Id => damaged.short_id.clone(),
            Column::State => "damaged".into(),
            Column::Prompt => head(&damaged.reason, 200),
            _ => "-".into(),
        }));
        row.max_height(1);
        table.add_row(row);
    }
    out!("{table}");
    if ccmp.max_parallel().is_ok_and(|s| s.paused) {
        err!("new tasks are paused: queued ones wait until `ccmp resume`");
    }
    if list.total > list.tasks.len() {
        err!(
            "showing {} of {} tasks; use --limit to see more",
            list.tasks.len(),
            list.total
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// A column of the task table.
#[derive(Debug, Clone, Copy)]
enum Column {
    Id,
    State,
    Group,
    Age,
    Time,
    Cost,
    Model,
    Dir,
    Prompt,
}

impl Column {
    const ALL: [Column; 9] = [
        Self::Id,
        Self::State,
        Self::Group,
        Self::Age,
        Self::Time,
        Self::Cost,
        Self::Model,
        Self::Dir,
        Self::Prompt,
    ];

    fn title(self) -> &'static str {
        match self {
            Self::Id => "ID",
            Self::State => "STATE",
            Self::Group => "GROUP",
            Self::Age => "AGE",
            Self::Time => "TIME",
            Self::Cost => "COST",
            Self::Model => "MODEL",
            Self::Dir => "DIR",
            Self::Prompt => "PROMPT",
        }
    }

    fn cell(self, view: &ccmp_core::TaskView) -> String {
        match self {
            Self::Id => view.short_id.clone(),
            Self::State => state(view.status),
            // A Slurm task's job, where it runs: `cluster job 12@node3`.
            Self::Group => match &view.slurm {
                Some(job) => format!(
                    "{} job {}{}",
                    view.group,
                    job.job_id,
                    job.node
                        .as_deref()
                        .map_or(String::new(), |n| format!("@{n}"))
                ),
                None => view.group.clone(),
            },
            Self::Age => age(view.created_at),
            Self::Time => view
                .elapsed_s
                .map_or_else(|| "-".into(), |s| duration(s.round() as i64)),
            Self::Cost => view.cost_usd.map_or_else(|| "-".into(), cost),
            // Another agent than Claude Code is named before its model.
            Self::Model => match (view.agent, &view.model) {
                (ccmp_core::AgentKind::Claude, model) => {
                    model.clone().unwrap_or_else(|| "-".into())
                }
                (agent, Some(model)) => format!("{agent} {model}"),
                (agent, None) => agent.to_string(),
            },
            Self::Dir => {
                let dir = short_path(&view.working_dir);
                // A worktree task works on its own branch, not in the checkout shown.
                if view.worktree.is_some() {
                    format!("{dir} ⎇")
                } else {
                    dir
                }
            }
            Self::Prompt => {
                let prompt = head(&view.prompt, 200);
                match (&view.progress, view.status) {
                    (Some(progress), TaskStatus::Running) => {
                        format!("[{}] {prompt}", head(progress, 40))
                    }
                    // Why it waits: its place in line, a dependency, a pause.
                    (Some(progress), TaskStatus::Queued) => {
                        format!("[{}] {prompt}", head(progress, 60))
                    }
                    _ => prompt,
                }
            }
        }
    }
}
