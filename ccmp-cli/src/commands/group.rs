//! `ccmp group`: make, list and remove groups of tasks with their own limit and pause.

use std::process::ExitCode;

use ccmp_core::{Ccmp, GroupName};
use clap::{Args, Subcommand};

use super::common::print_json;

/// Make, list and remove groups of tasks, each with its own limit and pause.
///
/// Every task is in one group: `default` unless started with --group. A task starts when both
/// its group and the machine have a free slot, first in, first out within its group.
#[derive(Debug, Args)]
pub struct GroupArgs {
    #[command(subcommand)]
    pub command: GroupCommand,
}

#[derive(Debug, Subcommand)]
pub enum GroupCommand {
    /// Make a group.
    Add {
        /// Its name: lowercase letters, digits, `-` and `_`, up to 32.
        name: String,
        /// At most this many of its agents run at once (default: only the machine-wide limit).
        #[arg(short, long, value_name = "N")]
        parallel: Option<usize>,
        /// The agent its tasks run when they name none: claude or codex (default: the
        /// machine-wide `ccmp settings agent`).
        #[arg(long, value_name = "AGENT")]
        agent: Option<String>,
    },
    /// List the groups: limit, running, queued, paused.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove a group with no queued or running tasks.
    Remove {
        /// The group's name.
        name: String,
    },
}

pub fn run(ccmp: &Ccmp, args: GroupArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        GroupCommand::Add {
            name,
            parallel,
            agent,
        } => {
            let name: GroupName = name.parse()?;
            let agent = agent
                .as_deref()
                .map(str::parse::<ccmp_core::AgentKind>)
                .transpose()
                .map_err(|e| crate::exit_codes::UsageError(format!("--agent: {e}")))?;
            ccmp.add_group(&name, parallel)?;
            if agent.is_some() {
                ccmp.set_group_agent(&name, agent)?;
            }
            match parallel {
                Some(n) => err!(
                    "group {name} made: at most {n} of its agents run at once; start tasks in it with `ccmp start --group {name} …`"
                ),
                None => {
                    err!("group {name} made; start tasks in it with `ccmp start --group {name} …`")
                }
            }
        }
        GroupCommand::Remove { name } => {
            let name: GroupName = name.parse()?;
            ccmp.remove_group(&name)?;
            err!("group {name} removed");
        }
        GroupCommand::List { json } => {
            let groups = ccmp.groups()?;
            if json {
                print_json(&groups)?;
                return Ok(ExitCode::SUCCESS);
            }
            let machine = ccmp.max_parallel()?;
            let width = groups
                .iter()
                .map(|g| g.name.as_str().len())
                .max()
                .unwrap_or(5)
                .max(5);
            out!(
                "{:width$}  {:>5}  {:>7}  {:>6}  STATE",
                "GROUP",
                "LIMIT",
                "RUNNING",
                "QUEUED"
            );
            for group in &groups {
                let limit = group.max_parallel.map_or("-".to_owned(), |n| n.to_string());
                let state = if group.paused { "paused" } else { "" };
                out!(
                    "{:width$}  {:>5}  {:>7}  {:>6}  {state}",
                    group.name.as_str(),
                    limit,
                    group.running,
                    group.queued
                );
            }
            let paused = if machine.paused {
                "; new tasks are paused machine-wide (`ccmp resume`)"
            } else {
                ""
            };
            err!(
                "at most {} agents run at once in all{paused}",
                machine.max_parallel
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
