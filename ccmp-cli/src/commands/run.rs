//! `ccmp run`: start a task, wait for it with progress on stderr, print its result on stdout.

use std::process::ExitCode;

use ccmp_core::{Ccmp, TaskStatus};
use clap::Args;

use super::common::{TaskOptions, print_json, wait_with_progress};
use crate::exit_codes;

/// Run a task and print its result (progress goes to stderr).
#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub task: TaskOptions,
    /// Print the finished task's JSON view instead of its result.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(ccmp: &Ccmp, args: RunArgs) -> anyhow::Result<ExitCode> {
    let record = ccmp.start(args.task.into_request()?)?;
    let done = wait_with_progress(ccmp, &record).await?;
    let view = ccmp.view(&done);
    if args.json {
        print_json(&view)?;
    } else if let Some(result) = &view.result {
        out!("{result}");
    }
    if done.status == TaskStatus::Succeeded {
        return Ok(ExitCode::SUCCESS);
    }
    err!(
        "{} {}: {}",
        view.short_id,
        crate::render::state(done.status),
        view.error.as_deref().unwrap_or("")
    );
    Ok(ExitCode::from(exit_codes::TASK_FAILED))
}
