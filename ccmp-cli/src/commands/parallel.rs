//! `ccmp parallel`: show or set the machine-wide limit on agents running at once.

use std::process::ExitCode;

use ccmp_core::Ccmp;
use clap::Args;

use super::common::print_json;

/// Show or set how many agents may run at once, for every task on this machine (every frontend
/// and runner obeys it, at once).
#[derive(Debug, Args)]
pub struct ParallelArgs {
    /// The new limit, from 1 to 1024. Without it, show the limit and where it came from.
    pub limit: Option<usize>,
    /// Print the settings as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(ccmp: &Ccmp, args: ParallelArgs) -> anyhow::Result<ExitCode> {
    let settings = match args.limit {
        Some(limit) => ccmp.set_max_parallel(limit)?,
        None => ccmp.max_parallel()?,
    };
    if args.json {
        print_json(&settings)?;
    } else if args.limit.is_some() {
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
