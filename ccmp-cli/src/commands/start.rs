//! `ccmp start`: start a task in the background and print its short id.

use std::process::ExitCode;

use ccmp_core::Ccmp;
use clap::Args;

use super::common::{Waited, print_json, print_started, report_interrupted, wait_with_progress};
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
    let record = ccmp.start(args.task.into_request(ccmp)?)?;
    if !args.wait {
        print_started(ccmp, &record, args.json)?;
        return Ok(ExitCode::SUCCESS);
    }
    if !args.json {
        out!("{}", record.id.short());
    }
    let done = match wait_with_progress(ccmp, &record).await? {
        Waited::Ended(done) => done,
        Waited::Interrupted(last) => return Ok(report_interrupted(&last)),
        Waited::NeedsApproval(last) => return Ok(super::common::report_needs_approval(&last)),
    };
    let view = ccmp.view(&done);
    if args.json {
        print_json(&view)?;
    }
    if !args.json || !done.status.is_success() {
        err!("{}", crate::render::outcome_line(&view));
    }
    Ok(if done.status.is_success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(exit_codes::TASK_FAILED)
    })
}
