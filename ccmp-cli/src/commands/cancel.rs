//! `ccmp cancel`: stop queued or running tasks.

use std::process::ExitCode;

use ccmp_core::Ccmp;
use clap::Args;

use super::common::print_json;
use crate::render::state;

/// Cancel tasks: TERM to the agent's process group, a grace period, then KILL.
#[derive(Debug, Args)]
pub struct CancelArgs {
    /// Task ids or unique prefixes.
    #[arg(required = true)]
    pub ids: Vec<String>,
    /// Print the tasks' JSON views.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(ccmp: &Ccmp, args: CancelArgs) -> anyhow::Result<ExitCode> {
    let mut views = Vec::new();
    // Every id is checked before anything is cancelled.
    for id in ccmp.resolve_all(&args.ids)? {
        let outcome = ccmp.cancel(&id).await?;
        let view = ccmp.view(&outcome.record);
        if !args.json {
            if outcome.already_finished {
                out!(
                    "{}  already {}; nothing to cancel",
                    view.short_id,
                    state(view.status)
                );
            } else {
                out!("{}  {}", view.short_id, state(view.status));
            }
        }
        views.push(view);
    }
    if args.json {
        print_json(&views)?;
    }
    Ok(ExitCode::SUCCESS)
}
