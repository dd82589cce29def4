//! `ccmp reply`: follow up on a finished task in the same Claude Code session.

use std::process::ExitCode;

use ccmp_core::Ccmp;
use clap::Args;

use super::common::{print_started, read_prompt, wait_and_report};

/// Follow up on a finished task: a new task resumes its session in the same directory.
#[derive(Debug, Args)]
pub struct ReplyArgs {
    /// The finished task's id or a unique prefix.
    pub id: String,
    /// The follow-up, quoted or as several words; `-` (or nothing, with a pipe) reads it from
    /// stdin.
    #[arg(value_name = "PROMPT", num_args = 0..)]
    pub prompt: Vec<String>,
    /// Wait for the follow-up to finish and print its result.
    #[arg(long)]
    pub wait: bool,
    /// Print the new task's JSON view instead of its id.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(ccmp: &Ccmp, args: ReplyArgs) -> anyhow::Result<ExitCode> {
    let prompt = read_prompt(super::task_options::join_words(args.prompt))?;
    let id = ccmp.resolve(&args.id)?;
    let record = ccmp.follow_up(&id, prompt)?;
    if !args.wait {
        print_started(ccmp, &record, args.json)?;
        return Ok(ExitCode::SUCCESS);
    }
    wait_and_report(ccmp, &record, args.json).await
}
