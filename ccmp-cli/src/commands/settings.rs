//! `ccmp settings`: show the machine-wide settings, or set some by name.

use std::process::ExitCode;

use ccmp_core::Ccmp;
use clap::Args;

use super::common::print_json;
use crate::exit_codes::UsageError;

/// Show the machine-wide settings, or set some: park_on_usage_limit=true|false, retries=N,
/// retry_backoff=30s, budget_reservation=1.00, ask=RULE,RULE (approval rules for tasks started
/// without their own; none clears them), agent=claude|codex (the agent of tasks that name none).
#[derive(Debug, Args)]
pub struct SettingsArgs {
    /// Settings to change, as KEY=VALUE.
    #[arg(value_name = "KEY=VALUE")]
    pub changes: Vec<String>,
    /// Print the settings as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(ccmp: &Ccmp, args: SettingsArgs) -> anyhow::Result<ExitCode> {
    let mut settings = ccmp.max_parallel()?;
    for change in &args.changes {
        let (key, value) = change.split_once('=').ok_or_else(|| {
            UsageError(format!(
                "settings are changed as KEY=VALUE, got `{change}`; the keys are {}",
                ccmp_core::SETTABLE.join(", ")
            ))
        })?;
        settings = ccmp.set_setting(key.trim(), value.trim())?;
    }
    if args.json {
        print_json(&settings)?;
        return Ok(ExitCode::SUCCESS);
    }
    out!("max_parallel         {}", settings.max_parallel);
    out!("paused               {}", settings.paused);
    out!("park_on_usage_limit  {}", settings.park_on_usage_limit);
    out!("retries              {}", settings.retries);
    out!("retry_backoff        {}s", settings.retry_backoff_secs);
    out!(
        "budget_reservation   ${:.2}",
        settings.budget_reservation_usd
    );
    out!(
        "ask                  {}",
        if settings.ask.is_empty() {
            "none".to_owned()
        } else {
            settings.ask.join(",")
        }
    );
    out!(
        "agent                {}",
        settings.agent.unwrap_or_default().as_str()
    );
    out!(
        "groups               {}",
        settings.groups.len() + usize::from(!settings.groups.keys().any(|g| g.is_default()))
    );
    Ok(ExitCode::SUCCESS)
}
