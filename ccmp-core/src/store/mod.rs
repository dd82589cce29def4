//! Where task records and logs live: the [`TaskStore`] trait, the file store and the memory store.
//!
//! Two implementations pass one contract suite: [`FsStore`] (durable, shared by every process
//! on the machine) and [`MemoryStore`] (for embedding and tests).

mod finished_index;
mod fs;
mod litter;
mod log;
mod memory;
mod watch;

use std::fmt;
use std::io::Write;
use std::path::PathBuf;

pub use self::fs::FsStore;
pub(crate) use self::fs::{write_atomic, write_new, write_replacing};
pub use self::log::{LogChunk, LogRange, LogStream, MAX_LOG_READ};
pub use self::memory::MemoryStore;
pub(crate) use self::watch::DirWatch;
pub use self::watch::TaskWatch;
use crate::error::StoreError;
use crate::id::{IdPrefix, TaskId};
use crate::task::{DamagedTask, TaskHeader, TaskRecord};

/// One entry of [`TaskStore::list`]: a record, or a task whose record cannot be read.
pub type Listed = Result<TaskRecord, DamagedTask>;

/// Durable task state. Synchronous on purpose: each call is a few small file operations.
///
/// Records are replaced whole, never edited in place; a reader never sees a half-written one.
pub trait TaskStore: Send + Sync + fmt::Debug {
    /// Stores a new record. Fails with [`StoreError::AlreadyExists`] if the id is taken.
    fn create(&self, record: &TaskRecord) -> Result<(), StoreError>;
    /// Reads a record.
    fn load(&self, id: &TaskId) -> Result<TaskRecord, StoreError>;
    /// Replaces a record, durably. Fails with [`StoreError::NotFound`] if the task was removed.
    fn save(&self, record: &TaskRecord) -> Result<(), StoreError>;
    /// Replaces a record with progress of a live task: as atomic as [`save`](Self::save), but it
    /// need not survive a crash (a crash ends the task's runner, so the task is `lost` whichever
    /// progress was last on disk). Creation and terminal records always use `save`.
    fn save_progress(&self, record: &TaskRecord) -> Result<(), StoreError> {
        self.save(record)
    }
    /// Every task id in the store, in no particular order.
    fn ids(&self) -> Result<Vec<TaskId>, StoreError>;
    /// Every task, in no particular order; damaged records are reported as such.
    fn list(&self) -> Result<Vec<Listed>, StoreError>;
    /// Removes a task and its logs.
    fn remove(&self, id: &TaskId) -> Result<(), StoreError>;
    /// A writer that appends to one of the task's logs.
    fn log_writer(
        &self,
        id: &TaskId,
        stream: LogStream,
    ) -> Result<Box<dyn Write + Send>, StoreError>;
    /// Reads part of one of the task's logs.
    fn read_log(
        &self,
        id: &TaskId,
        stream: LogStream,
        range: LogRange,
    ) -> Result<LogChunk, StoreError>;
    /// Where a log lives on disk, if it does.
    fn log_path(&self, id: &TaskId, stream: LogStream) -> Option<PathBuf>;

    /// Headers (id, state, creation time) of every task, or only of those that may be queued or
    /// running; damaged records are reported as such. Cheaper than [`list`](Self::list) where a
    /// store can read less than whole records.
    fn headers(
        &self,
        active_only: bool,
    ) -> Result<Vec<Result<TaskHeader, DamagedTask>>, StoreError> {
        Ok(self
            .list()?
            .into_iter()
            .map(|entry| entry.map(|record| TaskHeader::from(&record)))
            .filter(|entry| {
                !active_only || entry.as_ref().map_or(true, |h| !h.status.is_terminal())
            })
            .collect())
    }

    /// A subscription to changes of these tasks' records, to wait without polling. Create it
    /// before looking at the records. The default is told nothing and just sleeps.
    fn watch(&self, ids: &[TaskId]) -> TaskWatch {
        let _ = ids;
        TaskWatch::poll()
    }

    /// A subscription to every queued and running task: told when one starts, changes or ends.
    /// The default polls.
    fn watch_live(&self) -> TaskWatch {
        TaskWatch::poll()
    }

    /// A subscription to a task's output and record: told when a log grows as well as when the
    /// record changes. The default is [`watch`](Self::watch) of that task.
    fn watch_output(&self, id: &TaskId) -> TaskWatch {
        self.watch(std::slice::from_ref(id))
    }

    /// Resolves a full id or a unique prefix of 4 or more hex digits.
    fn resolve(&self, input: &str) -> Result<TaskId, StoreError> {
        IdPrefix::parse(input)?.resolve(self.ids()?)
    }
}
