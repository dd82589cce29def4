//! Turning a saved change of a task's state into events: called by the file store each time a
//! record is written in a new state, in whichever process wrote it.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use crate::events::deliver;
use crate::events::event::{Event, EventKind};
use crate::events::log::EventLog;
use crate::layout::StateLayout;
use crate::private_file;
use crate::store::{FsStore, TaskStore};
use crate::task::{TaskRecord, TaskStatus};

/// The event a change from `before` to the record's state is, if any.
fn kind_of(before: TaskStatus, record: &TaskRecord) -> Option<EventKind> {
    match record.status {
        status if status.is_terminal() => (!before.is_terminal()).then(|| {
            if status.is_success() {
                EventKind::Succeeded
            } else {
                EventKind::Failed
            }
        }),
        TaskStatus::NeedsApproval => Some(EventKind::NeedsApproval),
        TaskStatus::Parked => Some(EventKind::Parked),
        // Running again after waiting for a reset or an answer (not after a retry's backoff).
        TaskStatus::Running => record
            .attempts
            .last()
            .is_some_and(|a| a.parked || a.asked)
            .then_some(EventKind::Resumed),
        _ => None,
    }
}

/// Appends the events of a task's change of state, and starts a deliverer if a notifier wants
/// them. Never fails the save it follows: a lost event is logged, not an error.
pub(crate) fn changed(store: &FsStore, before: TaskStatus, record: &TaskRecord) {
    let Some(kind) = kind_of(before, record) else {
        return;
    };
    let layout = store.layout();
    let log = EventLog::new(layout);
    let mut events = vec![Event::of_task(kind, record)];
    if kind.ends_task()
        && let Some(drained) = group_drained(store, record)
    {
        events.push(drained);
    }
    append(layout, &log, events);
}

/// Appends events and starts a deliverer if one is wanted.
pub(crate) fn append(layout: &StateLayout, log: &EventLog, events: Vec<Event>) {
    match log.append(events) {
        Ok(appended) => {
            if deliver::wanted(layout, &appended) {
                deliver::kick(layout);
            }
        }
        Err(e) => tracing::warn!("could not append to the event log: {e}"),
    }
}

/// The `group_drained` event, when `record` was the group's last live task. Decided under
/// `drained.lock`, against the time of the group's last such event: a task created before it
/// was counted then, so two tasks ending at once give one event, not two.
fn group_drained(store: &FsStore, record: &TaskRecord) -> Option<Event> {
    let layout = store.layout();
    let lock = private_file::open_lock(&layout.events().join("drained.lock")).ok()?;
    lock.lock().ok()?;
    let group = &record.spec.group;
    let headers = store.headers(true).ok()?;
    for header in headers.into_iter().flatten() {
        if header.id == record.id || header.status.is_terminal() {
            continue;
        }
        match store.load(&header.id) {
            Ok(other) if !other.status.is_terminal() && &other.spec.group == group => return None,
            _ => {}
        }
    }
    let path = layout.events().join("drained.json");
    let mut marks: BTreeMap<String, DateTime<Utc>> = private_file::read(&path)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default();
    if marks
        .get(group.as_str())
        .is_some_and(|at| record.created_at <= *at)
    {
        return None;
    }
    marks.insert(group.to_string(), Utc::now());
    let bytes = serde_json::to_vec(&marks).ok()?;
    // Not fsynced: after a crash the worst is one `group_drained` told twice. Fsyncing it cost
    // two disk flushes at the end of every task that emptied its group.
    crate::store::write_replacing(&path, &bytes).ok()?;
    Some(Event::general(
        EventKind::GroupDrained,
        Some(group.to_string()),
        format!("group {group} drained: every task in it has ended"),
        format!("ccmp list --all --group {group}"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_changes_that_are_events() {
        let spec = crate::spec::TaskRequest::new("p")
            .working_dir(std::env::temp_dir())
            .validate(&"/bin/true".into())
            .unwrap();
        let mut record = TaskRecord::new(spec);
        record.status = TaskStatus::Running;
        assert_eq!(kind_of(TaskStatus::Queued, &record), None);
        record.status = TaskStatus::Succeeded;
        assert_eq!(
            kind_of(TaskStatus::Running, &record),
            Some(EventKind::Succeeded)
        );
        record.status = TaskStatus::Lost;
        assert_eq!(
            kind_of(TaskStatus::Running, &record),
            Some(EventKind::Failed)
        );
        assert_eq!(kind_of(TaskStatus::Cancelled, &record), None);
        record.status = TaskStatus::NeedsApproval;
        assert_eq!(
            kind_of(TaskStatus::Running, &record),
            Some(EventKind::NeedsApproval)
        );
        record.status = TaskStatus::Running;
        record.attempts.push(crate::task::Attempt {
            started_at: None,
            ended_at: Utc::now(),
            why: "asked".into(),
            session_id: None,
            cost_usd: None,
            num_turns: None,
            parked: false,
            asked: true,
        });
        assert_eq!(
            kind_of(TaskStatus::Queued, &record),
            Some(EventKind::Resumed)
        );
    }
}
