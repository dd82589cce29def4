//! Spend limits, machine-wide and per group, in all or per day: what tasks have spent and
//! reserved, and whether one more may start.
//!
//! The ledger is one small file per UTC day, `<state>/spend/<YYYY-MM-DD>.json`, mapping each task
//! that started that day to its group, its reservation and, once it ended, what it spent. A task
//! reserves when it takes a slot (its `max_budget_usd`, else the settings' default reservation),
//! under the queue lock, where every start is decided: so tasks started at once from several
//! frontends never reserve past a limit together. When it ends, what it spent replaces the
//! reservation. A task whose runner died before it ended keeps its reservation (spend that cannot
//! be known is counted at its ceiling).

use std::collections::BTreeMap;
use std::path::Path;

use chrono::{NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::group::GroupName;
use crate::id::TaskId;
use crate::layout::StateLayout;

/// A spend limit.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Budget {
    /// The most to spend, in USD.
    pub limit_usd: f64,
    /// Whether the limit is per UTC day (else in all).
    #[serde(default)]
    pub per_day: bool,
}

impl Budget {
    /// "$20.00/day" or "$20.00".
    pub fn describe(&self) -> String {
        let per = if self.per_day { "/day" } else { "" };
        format!("${:.2}{per}", self.limit_usd)
    }
}

/// One task's line in a day's ledger.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// The task's group.
    pub group: GroupName,
    /// What it reserved when it started, in USD.
    pub reserved_usd: f64,
    /// What it spent, once it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spent_usd: Option<f64>,
}

impl Entry {
    /// What counts against a budget: the spend once known, else the reservation.
    pub fn counted(&self) -> f64 {
        self.spent_usd.unwrap_or(self.reserved_usd)
    }
}

/// A day's ledger: task id → entry.
pub type Day = BTreeMap<TaskId, Entry>;

/// Every day's ledger, oldest first.
pub fn ledger(layout: &StateLayout) -> BTreeMap<NaiveDate, Day> {
    let Ok(entries) = std::fs::read_dir(layout.spend()) else {
        return BTreeMap::new();
    };
    entries
        .filter_map(|e| {
            let e = e.ok()?;
            let date = e
                .file_name()
                .to_str()?
                .strip_suffix(".json")?
                .parse()
                .ok()?;
            Some((date, read_day(&e.path())))
        })
        .collect()
}

fn read_day(path: &Path) -> Day {
    crate::private_file::read(path)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default()
}

fn write_day(layout: &StateLayout, date: NaiveDate, day: &Day) -> std::io::Result<()> {
    let bytes = serde_json::to_vec_pretty(day).map_err(std::io::Error::other)?;
    crate::store::write_atomic(&layout.spend_day(date), &bytes)
}

/// What counts against `budget` now: for `group` (or every group, machine-wide), today or in
/// all.
pub fn counted(
    ledger: &BTreeMap<NaiveDate, Day>,
    budget: &Budget,
    group: Option<&GroupName>,
) -> f64 {
    let today = Utc::now().date_naive();
    ledger
        .iter()
        .filter(|(date, _)| !budget.per_day || **date == today)
        .flat_map(|(_, day)| day.values())
        .filter(|entry| group.is_none_or(|g| entry.group == *g))
        .map(Entry::counted)
        .sum()
}

/// Whether `task` has a line in the ledger (it reserved when it first started; a later run, after
/// a usage limit or a retry, reserves nothing more).
pub(crate) fn has_reserved(ledger: &BTreeMap<NaiveDate, Day>, task: &TaskId) -> bool {
    ledger.values().any(|day| day.contains_key(task))
}

/// Reserves `amount` for `task` today. Call under the queue lock.
pub(crate) fn reserve(
    layout: &StateLayout,
    task: &TaskId,
    group: &GroupName,
    amount: f64,
) -> std::io::Result<()> {
    let today = Utc::now().date_naive();
    let mut day = read_day(&layout.spend_day(today));
    day.insert(
        *task,
        Entry {
            group: group.clone(),
            reserved_usd: amount,
            spent_usd: None,
        },
    );
    write_day(layout, today, &day)
}

/// Records what `task` spent in the end, in place of its reservation. Takes the queue lock, so
/// that no start is decided on a half-written ledger.
pub(crate) fn settle(
    layout: &StateLayout,
    task: &TaskId,
    spent: Option<f64>,
) -> std::io::Result<()> {
    let lock = crate::private_file::open_lock(&layout.queue_lock())?;
    lock.lock()?;
    for (date, mut day) in ledger(layout) {
        if let Some(entry) = day.get_mut(task) {
            // An agent that reports no cost leaves its reservation standing.
            let settled = spent.unwrap_or(entry.reserved_usd);
            entry.spent_usd = Some(settled);
            let group = entry.group.clone();
            write_day(layout, date, &day)?;
            // Spend below the reservation frees budget: waiters held by it look again now.
            crate::supervisor::poke_queue(layout);
            drop(lock);
            announce_spent(layout, &group, settled);
            return Ok(());
        }
    }
    Ok(())
}

/// What was spent (not reserved) against `budget`, for `group` or every group.
fn spent(ledger: &BTreeMap<NaiveDate, Day>, budget: &Budget, group: Option<&GroupName>) -> f64 {
    let today = Utc::now().date_naive();
    ledger
        .iter()
        .filter(|(date, _)| !budget.per_day || **date == today)
        .flat_map(|(_, day)| day.values())
        .filter(|entry| group.is_none_or(|g| entry.group == *g))
        .filter_map(|entry| entry.spent_usd)
        .sum()
}

/// A `budget_spent` event for each budget that the spend of `amount` by a task of `group` took
/// to its limit (the machine-wide one, the group's).
fn announce_spent(layout: &StateLayout, group: &GroupName, amount: f64) {
    let Ok(Some(settings)) = crate::settings::Settings::load(&layout.settings()) else {
        return;
    };
    let ledger = ledger(layout);
    let scopes = [
        (settings.budget, None),
        (settings.group(group).and_then(|g| g.budget), Some(group)),
    ];
    let mut events = Vec::new();
    for (budget, scope) in scopes {
        let Some(budget) = budget else { continue };
        let now = spent(&ledger, &budget, scope);
        if now >= budget.limit_usd && now - amount < budget.limit_usd {
            let whose =
                scope.map_or_else(|| "the machine-wide".to_owned(), |g| format!("group {g}'s"));
            let mut event = crate::events::Event::general(
                crate::events::EventKind::BudgetSpent,
                scope.map(ToString::to_string),
                format!(
                    "{whose} budget of {} is spent (${now:.2}): the tasks it covers wait",
                    budget.describe()
                ),
                match scope {
                    Some(g) => format!(
                        "ccmp budget set AMOUNT --group {g}  (or wait for a new day, for a daily budget)"
                    ),
                    None => "ccmp budget set AMOUNT  (or wait for a new day, for a daily budget)"
                        .to_owned(),
                },
            );
            event.cost_usd = Some(now);
            events.push(event);
        }
    }
    if !events.is_empty() {
        let log = crate::events::EventLog::new(layout);
        crate::events::emit::append(layout, &log, events);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(group: &str, reserved: f64, spent: Option<f64>) -> Entry {
        Entry {
            group: group.parse().unwrap(),
            reserved_usd: reserved,
            spent_usd: spent,
        }
    }

    #[test]
    fn what_counts_is_spend_else_reservation_in_the_budgets_period_and_scope() {
        let today = Utc::now().date_naive();
        let yesterday = today.pred_opt().unwrap();
        let mut ledger = BTreeMap::new();
        ledger.insert(
            yesterday,
            Day::from([(TaskId::new(), entry("review", 1.0, Some(4.0)))]),
        );
        ledger.insert(
            today,
            Day::from([
                (TaskId::new(), entry("review", 1.0, Some(0.25))),
                (TaskId::new(), entry("review", 2.0, None)),
                (TaskId::new(), entry("default", 1.0, Some(0.5))),
            ]),
        );
        let review: GroupName = "review".parse().unwrap();
        let per_day = Budget {
            limit_usd: 10.0,
            per_day: true,
        };
        let in_all = Budget {
            per_day: false,
            ..per_day
        };
        assert_eq!(counted(&ledger, &per_day, Some(&review)), 2.25);
        assert_eq!(counted(&ledger, &in_all, Some(&review)), 6.25);
        assert_eq!(counted(&ledger, &per_day, None), 2.75);
        assert_eq!(in_all.describe(), "$10.00");
        assert_eq!(per_day.describe(), "$10.00/day");
    }
}
