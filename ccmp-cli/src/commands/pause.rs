//! `ccmp pause` and `ccmp resume`: hold new tasks back, machine-wide or in one group, and let
//! them start again.

use std::process::ExitCode;

use ccmp_core::{Ccmp, GroupName};
use clap::Args;

/// Stop new tasks from starting, on this machine or in one group (running tasks go on; queued
/// ones wait).
#[derive(Debug, Args)]
pub struct PauseArgs {
    /// Pause only this group.
    #[arg(short, long, value_name = "NAME")]
    pub group: Option<String>,
}

/// Let queued tasks start again after `ccmp pause`.
#[derive(Debug, Args)]
pub struct ResumeArgs {
    /// Resume only this group.
    #[arg(short, long, value_name = "NAME")]
    pub group: Option<String>,
}

pub fn run(ccmp: &Ccmp, group: Option<String>, paused: bool) -> anyhow::Result<ExitCode> {
    if let Some(group) = group {
        let group: GroupName = group.parse()?;
        ccmp.set_group_paused(&group, paused)?;
        if paused {
            err!(
                "group {group} paused: its queued tasks wait and new ones queue; running ones go on. `ccmp resume --group {group}` lets them start"
            );
        } else {
            err!("group {group} resumed: its queued tasks start as slots free");
        }
        return Ok(ExitCode::SUCCESS);
    }
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
