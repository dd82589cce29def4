//! `ccmp logs`: print a task's log, or follow it until the task ends.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use ccmp_core::{Ccmp, LogRange, LogStream};
use clap::Args;

use super::common::print_json;

/// Print a task's log: the readable transcript, or the agent's raw stdout or stderr.
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
    /// Which log: transcript (readable), stdout (raw stream-json) or stderr.
    #[arg(long, default_value = "transcript")]
    pub stream: LogStream,
    /// Print one page as JSON (text, offsets, total size) instead.
    #[arg(long, conflicts_with = "follow")]
    pub json: bool,
}

const PAGE: usize = 256 * 1024;

pub async fn run(ccmp: &Ccmp, args: LogsArgs) -> anyhow::Result<ExitCode> {
    let id = ccmp.resolve(&args.id)?.to_string();
    let first = match args.tail {
        Some(lines) => LogRange::Tail { lines },
        None => LogRange::Bytes {
            offset: 0,
            limit: PAGE,
        },
    };
    if args.json {
        print_json(&ccmp.output(&id, args.stream, first)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut range = first;
    loop {
        let chunk = ccmp.output(&id, args.stream, range)?;
        {
            let mut out = std::io::stdout().lock();
            out.write_all(chunk.text.as_bytes())?;
            out.flush()?;
        }
        range = LogRange::Bytes {
            offset: chunk.next_offset,
            limit: PAGE,
        };
        if !chunk.at_end {
            continue;
        }
        if !args.follow {
            break;
        }
        // At the end of what is written so far: stop once the task has ended and all is read.
        if ccmp.status(&id)?.status.is_terminal() {
            let rest = ccmp.output(&id, args.stream, range)?;
            if rest.text.is_empty() {
                break;
            }
            continue;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(ExitCode::SUCCESS)
}
