//! Listing tasks: which ones, newest first, a page at a time.

use crate::ccmp::Ccmp;
use crate::error::{Error, StoreError};
use crate::task::{DamagedTask, TaskHeader, TaskRecord, TaskStatus};

/// Which tasks [`Ccmp::list`] returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListQuery {
    /// Only tasks in these states; `None` for every state.
    pub states: Option<Vec<TaskStatus>>,
    /// At most this many tasks, newest first.
    pub limit: usize,
}

impl ListQuery {
    /// Queued and running tasks, up to 50.
    pub fn active() -> Self {
        Self {
            states: Some(vec![TaskStatus::Queued, TaskStatus::Running]),
            limit: 50,
        }
    }

    /// Every task, up to 50.
    pub fn all() -> Self {
        Self {
            states: None,
            limit: 50,
        }
    }
}

/// A page of tasks.
#[derive(Debug, Clone)]
pub struct TaskList {
    /// Matching tasks, newest first, at most `limit`.
    pub tasks: Vec<TaskRecord>,
    /// How many tasks matched before the limit.
    pub total: usize,
    /// Tasks whose records cannot be read (reported whatever the filter).
    pub damaged: Vec<DamagedTask>,
}

impl Ccmp {
    /// Tasks matching `query`, newest first, with the total before the limit.
    pub fn list(&self, query: &ListQuery) -> Result<TaskList, Error> {
        if query.limit == 0 {
            return Err(Error::InvalidArgument("limit must be at least 1".into()));
        }
        let active_only = query
            .states
            .as_ref()
            .is_some_and(|states| states.iter().all(|s| !s.is_terminal()));
        let mut damaged = Vec::new();
        // Headers first; whole records only for live tasks (which must be checked against their
        // processes) and for the page returned.
        let mut entries: Vec<(TaskHeader, Option<TaskRecord>)> = Vec::new();
        for entry in self.store.headers(active_only)? {
            match entry {
                Ok(header) if header.status.is_terminal() => entries.push((header, None)),
                Ok(header) => match self.status_of(&header.id) {
                    Ok(record) => entries.push((TaskHeader::from(&record), Some(record))),
                    Err(Error::Store(StoreError::NotFound { .. })) => {}
                    Err(e) => return Err(e),
                },
                Err(d) => damaged.push(d),
            }
        }
        entries.retain(|(h, _)| query.states.as_ref().is_none_or(|s| s.contains(&h.status)));
        entries.sort_by(|(a, _), (b, _)| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
        let total = entries.len();
        let mut tasks = Vec::with_capacity(query.limit.min(total));
        for (header, record) in entries.into_iter().take(query.limit) {
            match record.map_or_else(|| self.store.load(&header.id), Ok) {
                Ok(record) => tasks.push(record),
                Err(StoreError::NotFound { .. }) => {}
                Err(StoreError::Damaged { path, reason, .. }) => damaged.push(DamagedTask {
                    id: header.id.to_string(),
                    short_id: header.id.short(),
                    path,
                    reason,
                }),
                Err(e) => return Err(e.into()),
            }
        }
        damaged.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(TaskList {
            tasks,
            total,
            damaged,
        })
    }
}
