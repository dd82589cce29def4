//! A change stream for tasks: every change of their records as it happens, without polling.
//!
//! Built on the store's subscriptions (inotify on record renames for the file store, a version
//! channel in memory). A runner that dies says nothing, so the stream also looks once a second,
//! which is how a task that became `lost` is noticed.

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

use crate::ccmp::Ccmp;
use crate::error::Error;
use crate::id::TaskId;
use crate::store::TaskWatch;
use crate::task::TaskRecord;

/// The longest the stream goes without looking at its tasks, even when told of no change.
const LOOK_AGAIN: Duration = Duration::from_secs(1);

/// Changes of some tasks, in batches. Made by [`Ccmp::watch`].
#[derive(Debug)]
pub struct TaskChanges {
    ccmp: Ccmp,
    ids: Vec<TaskId>,
    latest: HashMap<TaskId, TaskRecord>,
    watch: TaskWatch,
    heartbeat: Option<Duration>,
    last_batch: Instant,
    looked: bool,
}

impl Ccmp {
    /// A subscription told when any task starts, changes or ends (for a view of every task:
    /// look, then wait on it, then look again).
    pub fn watch_live(&self) -> crate::store::TaskWatch {
        self.store.watch_live()
    }

    /// Subscribes to changes of these tasks. The first batch is every task as it is now; each
    /// later batch holds the tasks whose records changed; the stream ends once every task has
    /// ended and its final record was in a batch.
    pub fn watch(&self, ids: &[TaskId]) -> TaskChanges {
        let mut unique = Vec::with_capacity(ids.len());
        for id in ids {
            if !unique.contains(id) {
                unique.push(*id);
            }
        }
        // Subscribe before the first look, so that no change between a look and a wait is lost.
        let watch = self.store.watch(&unique);
        TaskChanges {
            ccmp: self.clone(),
            ids: unique,
            latest: HashMap::new(),
            watch,
            heartbeat: None,
            last_batch: Instant::now(),
            looked: false,
        }
    }
}

impl TaskChanges {
    /// Also yields the unfinished tasks as they are whenever `every` passes without a change
    /// (for a display or a progress report that must show time passing).
    pub fn with_heartbeat(mut self, every: Duration) -> Self {
        self.heartbeat = Some(every);
        self
    }

    /// The next batch of changed records, in the order the tasks were given. `None` once every
    /// watched task has ended and was reported. A task that can no longer be read (removed, or
    /// its record damaged) is reported once as an error and then no longer watched.
    pub async fn next(&mut self) -> Option<Result<Vec<TaskRecord>, Error>> {
        loop {
            if self.looked && self.all_ended() {
                return None;
            }
            if self.looked {
                let until_heartbeat = self.heartbeat.map(|every| {
                    (self.last_batch + every).saturating_duration_since(Instant::now())
                });
                let pause = until_heartbeat.map_or(LOOK_AGAIN, |h| h.min(LOOK_AGAIN));
                self.watch.changed(pause).await;
            }
            self.looked = true;
            let mut batch = Vec::new();
            for id in self.ids.clone() {
                if self.latest.get(&id).is_some_and(|r| r.status.is_terminal()) {
                    continue;
                }
                match self.ccmp.status(&id) {
                    Ok(record) => {
                        if self.latest.get(&id) != Some(&record) {
                            batch.push(record.clone());
                            self.latest.insert(id, record);
                        }
                    }
                    Err(e) => {
                        self.ids.retain(|watched| *watched != id);
                        self.latest.remove(&id);
                        return Some(Err(e));
                    }
                }
            }
            let beat = self
                .heartbeat
                .is_some_and(|every| self.last_batch.elapsed() >= every);
            if batch.is_empty() && beat {
                batch = self
                    .ids
                    .iter()
                    .filter_map(|id| self.latest.get(id))
                    .filter(|r| !r.status.is_terminal())
                    .cloned()
                    .collect();
            }
            if !batch.is_empty() {
                self.last_batch = Instant::now();
                return Some(Ok(batch));
            }
        }
    }

    /// The latest record of each watched task, in the order given (tasks not yet looked at or
    /// no longer readable are left out).
    pub fn latest(&self) -> Vec<&TaskRecord> {
        self.ids
            .iter()
            .filter_map(|id| self.latest.get(id))
            .collect()
    }

    fn all_ended(&self) -> bool {
        self.ids
            .iter()
            .all(|id| self.latest.get(id).is_some_and(|r| r.status.is_terminal()))
    }
}
