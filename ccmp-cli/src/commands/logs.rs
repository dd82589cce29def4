//! `ccmp logs`: print a task's output, or follow it until the task ends.

use std::io::Write;
use std::process::ExitCode;

use ccmp_core::{Ccmp, LogRange, OutputSource};
use clap::Args;

use super::common::print_json;

/// Print a task's output: its transcript or result, or the agent's raw stdout or stderr.
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Task id or a unique prefix.
    pub id: String,
    /// Keep printing as the task writes, until it ends.
    #[arg(short, long)]
    pub follow: bool,
    /// Start with only the last N lines.
    #[arg(short = 'n', long, value_name = "N")]
    pub tail: Option<usize>,
    /// Which output: transcript (readable), result, stdout (raw stream-json) or stderr.
    #[arg(long, default_value = "transcript")]
    pub stream: OutputSource,
    /// Print one page as JSON (text, offsets, total size) instead.
    #[arg(long, conflicts_with = "follow")]
    pub json: bool,
}

pub async fn run(ccmp: &Ccmp, args: LogsArgs) -> anyhow::Result<ExitCode> {
    let id = ccmp.resolve(&args.id)?;
    let start = match args.tail {
        Some(lines) => LogRange::tail(lines),
        None => LogRange::from_start(),
    };
    if args.json {
        print_json(&ccmp.output(&id, args.stream, start)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    let output = ccmp.follow(&id, args.stream, start);
    let mut output = if args.follow {
        output
    } else {
        output.up_to_now()
    };
    while let Some(chunk) = output.next().await {
        let mut out = std::io::stdout().lock();
        out.write_all(chunk?.text.as_bytes())?;
        out.flush()?;
    }
    Ok(ExitCode::SUCCESS)
}
