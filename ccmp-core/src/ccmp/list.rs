//! Listing tasks: which ones, newest first, a page at a time.

use crate::ccmp::Ccmp;
use crate::error::{Error, StoreError};
use crate::group::GroupName;
use crate::task::{DamagedTask, TaskHeader, TaskRecord, TaskStatus};

/// How many tasks a list shows unless told otherwise.
pub const DEFAULT_LIST_LIMIT: usize = 50;

/// Which tasks [`Ccmp::list`] returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListQuery {
    /// Only tasks in these states; `None` for every state.
    pub states: Option<Vec<TaskStatus>>,
    /// At most this many tasks, newest first.
    pub limit: usize,
    /// Only tasks of this group; `None` for every group.
    pub group: Option<GroupName>,
}

impl ListQuery {
    /// Queued and running tasks, the newest [`DEFAULT_LIST_LIMIT`].
    pub fn active() -> Self {
        Self {
            states: Some(
                TaskStatus::ALL
                    .into_iter()
                    .filter(|s| !s.is_terminal())
                    .collect(),
            ),
            limit: DEFAULT_LIST_LIMIT,
            group: None,
        }
    }

    /// Every task, the newest [`DEFAULT_LIST_LIMIT`].
    pub fn all() -> Self {
        Self {
            states: None,
            limit: DEFAULT_LIST_LIMIT,
            group: None,
        }
    }

    /// The query every frontend builds from its filters: the states asked for, if any; else
    /// every task with `include_finished`; else the live ones. `limit` defaults to
    /// [`DEFAULT_LIST_LIMIT`].
    pub fn from_filters(
        states: Vec<TaskStatus>,
        include_finished: bool,
        limit: Option<usize>,
    ) -> Self {
        let base = if !states.is_empty() {
            Self {
                states: Some(states),
                ..Self::all()
            }
        } else if include_finished {
            Self::all()
        } else {
            Self::active()
        };
        Self {
            limit: limit.unwrap_or(DEFAULT_LIST_LIMIT),
            ..base
        }
    }

    /// Only tasks of `group`.
    pub fn in_group(self, group: Option<GroupName>) -> Self {
        Self { group, ..self }
    }

    /// Whether this query shows only live tasks (so an empty answer may mean "look at finished
    /// ones too").
    pub fn is_live_only(&self) -> bool {
        self.states
            .as_ref()
            .is_some_and(|states| states.iter().all(|s| !s.is_terminal()))
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
        let active_only = query.is_live_only();
        let mut damaged = Vec::new();
        // Headers first; whole records only for live tasks (which must be checked against their
        // processes) and for the page returned.
        // Boxed: a record is large, and most entries (finished tasks) have none; inline, every
        // entry would take a record's size and the sort would move them all.
        let mut entries: Vec<(TaskHeader, Option<Box<TaskRecord>>)> = Vec::new();
        for entry in self.store.headers(active_only)? {
            match entry {
                // The group is not in this header: with a group filter, read the record.
                Ok(header)
                    if header.status.is_terminal()
                        && query.group.is_some()
                        && header.group.is_none() =>
                {
                    match self.store.load(&header.id) {
                        Ok(record) => entries.push((header, Some(Box::new(record)))),
                        Err(StoreError::NotFound { .. }) => {}
                        Err(StoreError::Damaged { path, reason, .. }) => {
                            damaged.push(DamagedTask {
                                id: header.id.to_string(),
                                short_id: header.id.short(),
                                path,
                                reason,
                            })
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
                Ok(header) if header.status.is_terminal() => entries.push((header, None)),
                Ok(header) => match self.status(&header.id) {
                    Ok(record) => entries.push((TaskHeader::from(&record), Some(Box::new(record)))),
                    Err(Error::Store(StoreError::NotFound { .. })) => {}
                    Err(e) => return Err(e),
                },
                Err(d) => damaged.push(d),
            }
        }
        entries.retain(|(h, record)| {
            query.states.as_ref().is_none_or(|s| s.contains(&h.status))
                && query
                    .group
                    .as_ref()
                    .is_none_or(|group| match (&h.group, record) {
                        (Some(known), _) => known == group,
                        (None, Some(r)) => r.spec.group == *group,
                        (None, None) => false,
                    })
        });
        entries.sort_by(|(a, _), (b, _)| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
        let total = entries.len();
        let mut tasks = Vec::with_capacity(query.limit.min(total));
        for (header, record) in entries.into_iter().take(query.limit) {
            match record.map_or_else(|| self.store.load(&header.id), |r| Ok(*r)) {
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
