//! `ccmp start`: start a task in the background and print its short id.

use std::process::ExitCode;

use ccmp_core::Ccmp;
use clap::Args;

use super::common::{print_json, print_started, wait_with_progress};
use super::task_options::TaskOptions;
use crate::exit_codes;

/// Start a task in the background and print its short id.
#[derive(Debug, Args)]
pub struct StartArgs {
    #[command(flatten)]
    pub task: TaskOptions,
    /// Wait for the task to finish, showing its progress.
    #[arg(long)]
    pub wait: bool,
    /// Print the task's JSON view instead of its id.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(ccmp: &Ccmp, args: StartArgs) -> anyhow::Result<ExitCode> {
    let record = ccmp.start(args.task.into_request()?)?;
    if !args.wait {
        print_started(ccmp, &record, args.json)?;
        return Ok(ExitCode::SUCCESS);
    }
    if !args.json {
        out!("{}", record.id.short());
    }
    let done = wait_with_progress(ccmp, &record).await?;
    if args.json {
        print_json(&ccmp.view(&done))?;
    }
    if done.status.is_success() {
        Ok(ExitCode::SUCCESS)
    } else {
        err!(
            "{} {}: {}",
            done.id.short(),
            crate::render::state(done.status),
            done.error().unwrap_or("")
        );
        Ok(ExitCode::from(exit_codes::TASK_FAILED))
    }
}
