//! `ccmp pause` and `ccmp resume`: hold new tasks back machine-wide, and let them start again.

use std::process::ExitCode;

use ccmp_core::Ccmp;
use clap::Args;

/// Stop new tasks from starting, on this machine (running tasks go on; queued ones wait).
#[derive(Debug, Args)]
pub struct PauseArgs {}

/// Let queued tasks start again after `ccmp pause`.
#[derive(Debug, Args)]
pub struct ResumeArgs {}

pub fn run(ccmp: &Ccmp, paused: bool) -> anyhow::Result<ExitCode> {
    let settings = ccmp.set_paused(paused)?;
    if settings.paused {
        err!(
            "paused: queued tasks wait and new ones queue; running tasks go on. `ccmp resume` lets them start"
        );
    } else {
        err!(
            "resumed: queued tasks start as slots free (at most {} at once)",
            settings.max_parallel
        );
    }
    Ok(ExitCode::SUCCESS)
}
