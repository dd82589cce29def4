//! `ccmp run`: start a task, wait for it with progress on stderr, print its result on stdout.

use std::process::ExitCode;

use ccmp_core::Ccmp;
use clap::Args;

use super::common::wait_and_report;
use super::task_options::TaskOptions;

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
    let record = ccmp.start(args.task.into_request(ccmp)?)?;
    wait_and_report(ccmp, &record, args.json).await
}
