//! `ccmp budget`: spend limits, machine-wide and per group, and what was spent.

use std::process::ExitCode;

use ccmp_core::budget::Budget;
use ccmp_core::{Ccmp, GroupName};
use clap::{Args, Subcommand, ValueEnum};

use super::common::print_json;
use crate::exit_codes::UsageError;

/// Show spend limits and what tasks spent by day and group, or set or clear a limit.
///
/// A task starts only if every budget it falls under has room for its reservation (its
/// --max-budget-usd, else `ccmp settings budget_reservation`, default $1.00); what it spent
/// replaces the reservation when it ends.
#[derive(Debug, Args)]
pub struct BudgetArgs {
    #[command(subcommand)]
    pub command: Option<BudgetCommand>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum BudgetCommand {
    /// Set a spend limit in USD, machine-wide or for a group, in all or per day.
    Set {
        /// The limit in USD, e.g. 20 or 7.50.
        amount: String,
        /// Limit this group only.
        #[arg(short, long, value_name = "NAME")]
        group: Option<String>,
        /// The period: the limit holds per UTC day (default: in all).
        #[arg(long, value_enum)]
        per: Option<Period>,
    },
    /// Remove a spend limit, machine-wide or for a group.
    Clear {
        /// The group's limit.
        #[arg(short, long, value_name = "NAME")]
        group: Option<String>,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Period {
    /// Per UTC day.
    Day,
}

pub fn run(ccmp: &Ccmp, args: BudgetArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        Some(BudgetCommand::Set { amount, group, per }) => {
            let limit_usd = amount
                .trim_start_matches('$')
                .parse::<f64>()
                .ok()
                .filter(|n| n.is_finite() && *n >= 0.0)
                .ok_or_else(|| {
                    UsageError(format!(
                        "the amount must be in USD, such as 20 or 7.50, got `{amount}`"
                    ))
                })?;
            let group = group.map(|g| g.parse::<GroupName>()).transpose()?;
            let budget = Budget {
                limit_usd,
                per_day: per.is_some(),
            };
            ccmp.set_budget(group.as_ref(), Some(budget))?;
            match &group {
                Some(g) => err!(
                    "group {g} may spend {}; tasks wait when it is spent",
                    budget.describe()
                ),
                None => err!(
                    "tasks on this machine may spend {}; tasks wait when it is spent",
                    budget.describe()
                ),
            }
        }
        Some(BudgetCommand::Clear { group }) => {
            let group = group.map(|g| g.parse::<GroupName>()).transpose()?;
            ccmp.set_budget(group.as_ref(), None)?;
            err!("budget removed");
        }
        None => {
            let report = ccmp.spend()?;
            if args.json {
                print_json(&report)?;
                return Ok(ExitCode::SUCCESS);
            }
            if report.budgets.is_empty() {
                err!("no budgets set (`ccmp budget set 20 --per day` sets one)");
            }
            for status in &report.budgets {
                let scope = match &status.group {
                    Some(g) => format!("group {g}"),
                    None => "machine-wide".to_owned(),
                };
                out!(
                    "{scope}: {} — ${:.2} spent or reserved",
                    status.budget.describe(),
                    status.counted_usd
                );
            }
            if !report.days.is_empty() {
                out!(
                    "{:<10}  {:<12}  {:>5}  {:>9}  {:>9}",
                    "DAY",
                    "GROUP",
                    "TASKS",
                    "SPENT",
                    "RESERVED"
                );
                for day in &report.days {
                    out!(
                        "{:<10}  {:<12}  {:>5}  {:>9}  {:>9}",
                        day.date.to_string(),
                        day.group.as_str(),
                        day.tasks,
                        format!("${:.2}", day.spent_usd),
                        format!("${:.2}", day.reserved_usd)
                    );
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
