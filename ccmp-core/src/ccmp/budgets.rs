//! Spend limits: set, cleared and reported from any frontend, obeyed by every runner when it
//! decides to start.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::Serialize;

use crate::budget::{self, Budget};
use crate::ccmp::Ccmp;
use crate::error::Error;
use crate::group::GroupName;
use crate::settings::Settings;

/// A budget and what counts against it now.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BudgetStatus {
    /// The group it limits; `None` machine-wide.
    pub group: Option<GroupName>,
    /// The limit.
    pub budget: Budget,
    /// Spent and reserved against it now (today, for a budget per day).
    pub counted_usd: f64,
}

/// What tasks spent (and reserved, while running) on one day in one group.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DaySpend {
    /// The UTC day.
    pub date: NaiveDate,
    /// The group.
    pub group: GroupName,
    /// What ended tasks spent.
    pub spent_usd: f64,
    /// What running tasks reserved.
    pub reserved_usd: f64,
    /// How many tasks started that day.
    pub tasks: usize,
}

/// Budgets and spend, for `ccmp budget`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SpendReport {
    /// Every budget set, machine-wide first.
    pub budgets: Vec<BudgetStatus>,
    /// Spend by day and group, oldest first.
    pub days: Vec<DaySpend>,
}

impl Ccmp {
    /// Sets (or with `None` clears) the spend limit of `group`, or the machine-wide one.
    pub fn set_budget(
        &self,
        group: Option<&GroupName>,
        budget: Option<Budget>,
    ) -> Result<Settings, Error> {
        if let Some(b) = budget
            && !(b.limit_usd.is_finite() && b.limit_usd >= 0.0)
        {
            return Err(Error::InvalidArgument(format!(
                "a budget is an amount in USD of 0 or more, got {}",
                b.limit_usd
            )));
        }
        if let Some(group) = group {
            self.check_group(group)?;
        }
        self.change_settings(|settings| match group {
            Some(group) => settings.groups.entry(group.clone()).or_default().budget = budget,
            None => settings.budget = budget,
        })
    }

    /// Every budget with what counts against it, and spend by day and group.
    pub fn spend(&self) -> Result<SpendReport, Error> {
        let settings = self.max_parallel()?;
        let ledger = match &self.settings {
            Some(path) => budget::ledger(&crate::layout::StateLayout::new(
                path.parent().unwrap_or(path),
            )),
            None => BTreeMap::new(),
        };
        let mut budgets = Vec::new();
        if let Some(b) = settings.budget {
            budgets.push(BudgetStatus {
                group: None,
                counted_usd: budget::counted(&ledger, &b, None),
                budget: b,
            });
        }
        for (name, group) in &settings.groups {
            if let Some(b) = group.budget {
                budgets.push(BudgetStatus {
                    group: Some(name.clone()),
                    counted_usd: budget::counted(&ledger, &b, Some(name)),
                    budget: b,
                });
            }
        }
        let mut days = Vec::new();
        for (date, day) in &ledger {
            let mut by_group: BTreeMap<&GroupName, DaySpend> = BTreeMap::new();
            for entry in day.values() {
                let line = by_group.entry(&entry.group).or_insert_with(|| DaySpend {
                    date: *date,
                    group: entry.group.clone(),
                    spent_usd: 0.0,
                    reserved_usd: 0.0,
                    tasks: 0,
                });
                line.tasks += 1;
                match entry.spent_usd {
                    Some(spent) => line.spent_usd += spent,
                    None => line.reserved_usd += entry.reserved_usd,
                }
            }
            days.extend(by_group.into_values());
        }
        Ok(SpendReport { budgets, days })
    }
}
