//! `ccmp events`: what happened to tasks, from the state dir's event log, and as it happens.

use std::process::ExitCode;
use std::time::Duration;

use ccmp_core::Ccmp;
use ccmp_core::events::Event;
use chrono::{DateTime, Utc};
use clap::Args;

use crate::exit_codes::UsageError;

/// Show events: tasks that succeeded, failed, need approval, parked, resumed; groups drained;
/// budgets spent.
///
/// Every frontend and runner appends to one event log per state dir, so this shows events of
/// tasks started anywhere (the MCP server too). Programs should use --json (one event per line)
/// and resume with --since SEQ, the `seq` of the last event they read.
#[derive(Debug, Args)]
pub struct EventsArgs {
    /// Keep showing events as they happen, until Ctrl-C.
    #[arg(short, long)]
    pub follow: bool,
    /// Print each event as a line of JSON.
    #[arg(long)]
    pub json: bool,
    /// Only events after this: a duration back from now (10m, 2h), a time (RFC 3339), or an
    /// event number (the `seq` of the last event already read).
    #[arg(long, value_name = "WHEN")]
    pub since: Option<String>,
    /// Without --since, show only the last N events kept.
    #[arg(short = 'n', long, value_name = "N", default_value_t = 20)]
    pub last: usize,
}

enum Since {
    Seq(u64),
    Time(DateTime<Utc>),
}

fn parse_since(text: &str) -> anyhow::Result<Since> {
    if let Ok(seq) = text.trim().parse::<u64>() {
        return Ok(Since::Seq(seq));
    }
    if let Ok(time) = DateTime::parse_from_rfc3339(text.trim()) {
        return Ok(Since::Time(time.with_timezone(&Utc)));
    }
    match ccmp_core::parse_duration(text) {
        Ok(back) => Ok(Since::Time(
            Utc::now() - chrono::Duration::from_std(back).unwrap_or_default(),
        )),
        Err(_) => Err(UsageError(format!(
            "--since takes a duration back from now (10m, 2h), a time like 2026-12-02T10:00:00Z, or an event number; got `{text}`"
        ))
        .into()),
    }
}

pub async fn run(ccmp: &Ccmp, args: EventsArgs) -> anyhow::Result<ExitCode> {
    let since = args.since.as_deref().map(parse_since).transpose()?;
    let after = match &since {
        Some(Since::Seq(seq)) => *seq,
        _ => 0,
    };
    let mut follow = ccmp.follow_events(after)?;
    let mut backlog = follow.read();
    match &since {
        Some(Since::Time(time)) => backlog.retain(|e| e.at > *time),
        Some(Since::Seq(_)) => {}
        None => {
            let skip = backlog.len().saturating_sub(args.last);
            backlog.drain(..skip);
        }
    }
    for event in &backlog {
        show(event, args.json)?;
    }
    if !args.follow {
        return Ok(ExitCode::SUCCESS);
    }
    loop {
        tokio::select! {
            events = follow.next(Duration::from_secs(3600)) => {
                for event in &events {
                    show(event, args.json)?;
                }
            }
            _ = tokio::signal::ctrl_c() => return Ok(ExitCode::SUCCESS),
        }
    }
}

fn show(event: &Event, json: bool) -> anyhow::Result<()> {
    if json {
        out!("{}", serde_json::to_string(event)?);
    } else {
        out!(
            "{}  #{:<5} {:<14} {}",
            event.at.format("%Y-%m-%d %H:%M:%S"),
            event.seq,
            event.kind.as_str(),
            event.summary
        );
        out!(
            "{}",
            crate::render::dim(&format!("{:38}next: {}", "", event.next))
        );
    }
    Ok(())
}
