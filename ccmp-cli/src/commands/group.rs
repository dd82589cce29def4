//! `ccmp group`: make, list and remove groups of tasks with their own limit and pause.

use std::process::ExitCode;

use ccmp_core::{Ccmp, Executor, GroupName, SlurmOptions};
use clap::{Args, Subcommand};

use super::common::print_json;

/// Where a group's tasks run their agent, and the Slurm options of its jobs.
#[derive(Debug, Args)]
pub struct ExecutorArgs {
    /// Where its tasks run their agent: `local` (this machine, the default) or `slurm` (each
    /// run is a Slurm batch job, submitted with `sbatch` when the task's turn comes).
    #[arg(long, value_name = "EXECUTOR", value_parser = ["local", "slurm"], help_heading = "Executor")]
    executor: Option<String>,
    /// Slurm partition of its jobs (`sbatch --partition`).
    #[arg(long, value_name = "NAME", help_heading = "Executor")]
    partition: Option<String>,
    /// Slurm time limit of each job: minutes, HH:MM:SS or D-HH:MM:SS (`sbatch --time`).
    #[arg(long, value_name = "LIMIT", help_heading = "Executor")]
    time: Option<String>,
    /// CPUs per job (`sbatch --cpus-per-task`).
    #[arg(long, value_name = "N", help_heading = "Executor")]
    cpus: Option<u32>,
    /// Memory per job, such as 4G (`sbatch --mem`).
    #[arg(long, value_name = "SIZE", help_heading = "Executor")]
    mem: Option<String>,
    /// Slurm account to charge (`sbatch --account`).
    #[arg(long, value_name = "NAME", help_heading = "Executor")]
    account: Option<String>,
}

impl ExecutorArgs {
    /// The executor these flags ask for; Slurm options without `--executor slurm` are a
    /// mistake, said in terms of the flags.
    fn executor(self) -> Result<Option<Executor>, crate::exit_codes::UsageError> {
        let options = SlurmOptions {
            partition: self.partition,
            time_limit: self.time,
            cpus: self.cpus,
            memory: self.mem,
            account: self.account,
        };
        match self.executor.as_deref() {
            Some("slurm") => Ok(Some(Executor::Slurm(options))),
            _ if options != SlurmOptions::default() => Err(crate::exit_codes::UsageError(
                "--partition, --time, --cpus, --mem and --account are Slurm options: add `--executor slurm`".into(),
            )),
            Some(_) => Ok(Some(Executor::Local)),
            None => Ok(None),
        }
    }
}

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
        #[command(flatten)]
        executor: ExecutorArgs,
    },
    /// List the groups: limit, running, queued, paused.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Change where a group's tasks run their agent: `--executor` with its Slurm options, which
    /// replace the group's. Its tasks' next runs go there; running ones finish where they are.
    Set {
        /// The group's name.
        name: String,
        #[command(flatten)]
        executor: ExecutorArgs,
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
            executor,
        } => {
            let name: GroupName = name.parse()?;
            let agent = agent
                .as_deref()
                .map(str::parse::<ccmp_core::AgentKind>)
                .transpose()
                .map_err(|e| crate::exit_codes::UsageError(format!("--agent: {e}")))?;
            let executor = executor.executor()?;
            // Checked before the group is made: a refused option leaves nothing behind.
            if let Some(executor) = &executor {
                ccmp.check_executor(executor)?;
            }
            ccmp.add_group(&name, parallel)?;
            if agent.is_some() {
                ccmp.set_group_agent(&name, agent)?;
            }
            let runs = match executor {
                Some(executor @ Executor::Slurm(_)) => {
                    let said = format!("; its tasks run as Slurm jobs: {executor}");
                    ccmp.set_group_executor(&name, executor)?;
                    said
                }
                _ => String::new(),
            };
            match parallel {
                Some(n) => err!(
                    "group {name} made: at most {n} of its agents run at once{runs}; start tasks in it with `ccmp start --group {name} …`"
                ),
                None => {
                    err!(
                        "group {name} made{runs}; start tasks in it with `ccmp start --group {name} …`"
                    )
                }
            }
        }
        GroupCommand::Set { name, executor } => {
            let name: GroupName = name.parse()?;
            let Some(executor) = executor.executor()? else {
                return Err(crate::exit_codes::UsageError(
                    "say where the group's tasks run: `--executor local`, or `--executor slurm` with its options".into(),
                )
                .into());
            };
            ccmp.set_group_executor(&name, executor.clone())?;
            err!("group {name}: its tasks' next runs go to {executor}");
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
                "{:width$}  {:>5}  {:>7}  {:>6}  {:6}  EXECUTOR",
                "GROUP",
                "LIMIT",
                "RUNNING",
                "QUEUED",
                "STATE"
            );
            for group in &groups {
                let limit = group.max_parallel.map_or("-".to_owned(), |n| n.to_string());
                let state = if group.paused { "paused" } else { "" };
                out!(
                    "{:width$}  {:>5}  {:>7}  {:>6}  {state:6}  {}",
                    group.name.as_str(),
                    limit,
                    group.running,
                    group.queued,
                    group.executor
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
