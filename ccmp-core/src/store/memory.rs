//! [`MemoryStore`]: task state in memory, for embedding and tests. Gone when the process exits.

use std::collections::HashMap;
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use super::{Listed, LogChunk, LogRange, LogStream, TaskStore, TaskWatch};
use crate::error::StoreError;
use crate::id::TaskId;
use crate::task::TaskRecord;

type Log = Arc<Mutex<Vec<u8>>>;

#[derive(Debug, Default)]
struct Inner {
    records: HashMap<TaskId, TaskRecord>,
    logs: HashMap<(TaskId, LogStream), Log>,
}

/// An in-memory store. Cloning shares the same state.
#[derive(Debug, Clone)]
pub struct MemoryStore {
    inner: Arc<Mutex<Inner>>,
    /// Bumped on every change, for [`TaskStore::watch`].
    version: Arc<tokio::sync::watch::Sender<u64>>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self {
            inner: Arc::default(),
            version: Arc::new(tokio::sync::watch::channel(0).0),
        }
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn changed(&self) {
        self.version.send_modify(|v| *v += 1);
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave a half-updated record: every update is a
        // single insert, so the data is still consistent.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn not_found(id: &TaskId) -> StoreError {
    StoreError::NotFound { id: id.to_string() }
}

/// Appends to a log and tells watchers (so that followers of the log wake up).
struct LogWriter {
    log: Log,
    version: Arc<tokio::sync::watch::Sender<u64>>,
}

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(buf);
        self.version.send_modify(|v| *v += 1);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl TaskStore for MemoryStore {
    fn create(&self, record: &TaskRecord) -> Result<(), StoreError> {
        let mut inner = self.lock();
        if inner.records.contains_key(&record.id) {
            return Err(StoreError::AlreadyExists {
                id: record.id.short(),
            });
        }
        inner.records.insert(record.id, record.clone());
        drop(inner);
        self.changed();
        Ok(())
    }

    fn load(&self, id: &TaskId) -> Result<TaskRecord, StoreError> {
        self.lock()
            .records
            .get(id)
            .cloned()
            .ok_or_else(|| not_found(id))
    }

    fn save(&self, record: &TaskRecord) -> Result<(), StoreError> {
        let mut inner = self.lock();
        match inner.records.get_mut(&record.id) {
            Some(slot) => {
                *slot = record.clone();
                drop(inner);
                self.changed();
                Ok(())
            }
            None => Err(not_found(&record.id)),
        }
    }

    fn ids(&self) -> Result<Vec<TaskId>, StoreError> {
        Ok(self.lock().records.keys().copied().collect())
    }

    fn list(&self) -> Result<Vec<Listed>, StoreError> {
        Ok(self.lock().records.values().cloned().map(Ok).collect())
    }

    fn remove(&self, id: &TaskId) -> Result<(), StoreError> {
        let mut inner = self.lock();
        inner.records.remove(id).ok_or_else(|| not_found(id))?;
        inner.logs.retain(|(task, _), _| task != id);
        drop(inner);
        self.changed();
        Ok(())
    }

    fn log_writer(
        &self,
        id: &TaskId,
        stream: LogStream,
    ) -> Result<Box<dyn Write + Send>, StoreError> {
        let mut inner = self.lock();
        if !inner.records.contains_key(id) {
            return Err(not_found(id));
        }
        let log = inner.logs.entry((*id, stream)).or_default().clone();
        Ok(Box::new(LogWriter {
            log,
            version: self.version.clone(),
        }))
    }

    fn read_log(
        &self,
        id: &TaskId,
        stream: LogStream,
        range: LogRange,
    ) -> Result<LogChunk, StoreError> {
        let log = {
            let inner = self.lock();
            if !inner.records.contains_key(id) {
                return Err(not_found(id));
            }
            inner.logs.get(&(*id, stream)).cloned().unwrap_or_default()
        };
        let data = log.lock().unwrap_or_else(|e| e.into_inner());
        LogChunk::read(data.len() as u64, range, |offset, len| {
            Ok(data[offset as usize..offset as usize + len].to_vec())
        })
        .map_err(|e| StoreError::read("<memory>", e))
    }

    fn log_path(&self, _id: &TaskId, _stream: LogStream) -> Option<PathBuf> {
        None
    }

    fn watch(&self, _ids: &[TaskId]) -> TaskWatch {
        TaskWatch::versions(self.version.subscribe())
    }
}
