//! `ccmp parallel`: show or set the machine-wide limit on agents running at once, or a group's.

use std::process::ExitCode;

use ccmp_core::{Ccmp, GroupName};
use clap::Args;

use super::common::print_json;
use crate::exit_codes::UsageError;

/// Show or set how many agents may run at once, for every task on this machine (every frontend
/// and runner obeys it, at once), or for one group with --group.
#[derive(Debug, Args)]
pub struct ParallelArgs {
    /// The new limit, from 1 to 1024 (with --group, `none` leaves only the machine-wide
    /// limit). Without it, show the limit and where it came from.
    pub limit: Option<String>,
    /// Show or set this group's own limit instead.
    #[arg(short, long, value_name = "NAME")]
    pub group: Option<String>,
    /// Print the settings as JSON.
    #[arg(long)]
    pub json: bool,
}

/// A limit as typed: a number, or `none` for a group.
fn parse_limit(text: &str, group: bool) -> anyhow::Result<Option<usize>> {
    if group && text == "none" {
        return Ok(None);
    }
    text.parse::<usize>().map(Some).map_err(|_| {
        let none = if group { ", or `none`" } else { "" };
        UsageError(format!(
            "the limit must be a whole number from 1 to 1024{none}, got `{text}`"
        ))
        .into()
    })
}

pub fn run(ccmp: &Ccmp, args: ParallelArgs) -> anyhow::Result<ExitCode> {
    if let Some(group) = &args.group {
        return run_group(ccmp, &group.parse::<GroupName>()?, args);
    }
    let limit = args
        .limit
        .as_deref()
        .map(|l| parse_limit(l, false))
        .transpose()?
        .flatten();
    let settings = match limit {
        Some(limit) => ccmp.set_max_parallel(limit)?,
        None => ccmp.max_parallel()?,
    };
    if args.json {
        print_json(&settings)?;
    } else if limit.is_some() {
        out!("{}", settings.max_parallel);
        err!(
            "at most {} agents now run at once on this machine; queued tasks start as slots free, running ones go on",
            settings.max_parallel
        );
    } else {
        out!("{}", settings.max_parallel);
        err!("{}", settings.max_parallel_source.describe());
        if settings.paused {
            err!("new tasks are paused: `ccmp resume` lets them start");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn run_group(ccmp: &Ccmp, group: &GroupName, args: ParallelArgs) -> anyhow::Result<ExitCode> {
    let settings = match &args.limit {
        Some(limit) => ccmp.set_group_limit(group, parse_limit(limit, true)?)?,
        None => {
            ccmp.check_group(group)?;
            ccmp.max_parallel()?
        }
    };
    let own = settings.group(group).and_then(|g| g.max_parallel);
    if args.json {
        print_json(&serde_json::json!({ "group": group, "max_parallel": own }))?;
        return Ok(ExitCode::SUCCESS);
    }
    match own {
        Some(limit) => out!("{limit}"),
        None => out!("none"),
    }
    let machine = settings.max_parallel;
    match (own, args.limit.is_some()) {
        (Some(limit), true) => err!(
            "at most {limit} agents of group {group} now run at once (and at most {machine} in all)"
        ),
        (None, true) => {
            err!("group {group} has no limit of its own now: at most {machine} run at once in all")
        }
        (Some(_), false) => err!("group {group}'s own limit; at most {machine} run at once in all"),
        (None, false) => {
            err!("group {group} has no limit of its own: at most {machine} run at once in all")
        }
    }
    Ok(ExitCode::SUCCESS)
}
