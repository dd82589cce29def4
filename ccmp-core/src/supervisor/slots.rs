//! The machine-wide queue: at most `max_parallel` agents run at once across every process that
//! shares a state dir, and waiting tasks start first in, first out.
//!
//! There is no daemon to hand out turns, so the queue lives in the file system:
//!
//! * a slot is an exclusive `flock` on `<state>/slots/<n>.lock`, held by a runner while its
//!   agent runs; the kernel drops it when the runner exits, even by kill -9;
//! * a waiting runner owns an entry `<state>/queue/<created-at-ns>-<id>`; entries sort in
//!   creation order;
//! * slots are only taken while holding `<state>/queue.lock`, by the waiter whose position in
//!   the queue is below the number of free slots. Entries of runners that died are removed by
//!   whoever finds them (a live runner holds its task's `runner.lock`).

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::store::FsStore;
use crate::task::{TaskId, TaskRecord};

/// How often a waiting runner looks for a free slot.
const POLL: Duration = Duration::from_millis(50);

/// A held slot. Dropping it frees the slot.
#[derive(Debug)]
pub(crate) struct Slot {
    _lock: File,
}

fn open_lock(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .mode(0o600)
        .open(path)
}

/// Whether the runner of `id` is alive, judged by its `runner.lock`.
pub(crate) fn runner_alive(store: &FsStore, id: &TaskId) -> bool {
    match open_lock(&store.runner_lock_path(id)) {
        Ok(file) => matches!(file.try_lock(), Err(TryLockError::WouldBlock)),
        Err(_) => false,
    }
}

#[derive(Debug)]
struct Queue {
    dir: PathBuf,
    slots: PathBuf,
    lock: File,
    entry: String,
    max_parallel: usize,
}

impl Queue {
    fn join(store: &FsStore, record: &TaskRecord, max_parallel: usize) -> io::Result<Self> {
        let root = store.root();
        let dir = root.join("queue");
        let nanos = record
            .created_at
            .timestamp_nanos_opt()
            .unwrap_or_default()
            .max(0);
        let entry = format!("{nanos:020}-{}", record.id.simple());
        open_lock(&dir.join(&entry))?;
        Ok(Self {
            lock: open_lock(&root.join("queue.lock"))?,
            slots: root.join("slots"),
            dir,
            entry,
            max_parallel,
        })
    }

    fn leave(&self) {
        let _ = fs::remove_file(self.dir.join(&self.entry));
    }

    /// One attempt: takes a slot if this runner's turn has come.
    fn try_take(&self, store: &FsStore) -> io::Result<Option<Slot>> {
        match self.lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => return Ok(None),
            Err(TryLockError::Error(e)) => return Err(e),
        }
        let result = self.take_locked(store);
        let _ = self.lock.unlock();
        result
    }

    fn take_locked(&self, store: &FsStore) -> io::Result<Option<Slot>> {
        let mut free = Vec::new();
        for n in 0..self.max_parallel {
            let file = open_lock(&self.slots.join(format!("{n}.lock")))?;
            match file.try_lock() {
                Ok(()) => free.push(file),
                Err(TryLockError::WouldBlock) => {}
                Err(TryLockError::Error(e)) => return Err(e),
            }
        }
        if free.is_empty() {
            return Ok(None);
        }
        let mut entries: Vec<String> = fs::read_dir(&self.dir)?
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|name| *name < self.entry)
            .collect();
        if entries.len() >= free.len() {
            // Not our turn, unless some of those ahead belong to runners that died.
            entries.sort();
            entries.retain(|name| {
                let alive = name
                    .rsplit('-')
                    .next()
                    .and_then(|id| id.parse::<TaskId>().ok())
                    .is_some_and(|id| runner_alive(store, &id));
                if !alive {
                    let _ = fs::remove_file(self.dir.join(name));
                }
                alive
            });
        }
        if entries.len() < free.len() {
            let lock = free.swap_remove(0);
            self.leave();
            return Ok(Some(Slot { _lock: lock }));
        }
        Ok(None)
    }
}

/// Waits for a slot in FIFO order. Returns `Ok(None)` if `cancel` fires first.
pub(crate) async fn acquire(
    store: &FsStore,
    record: &TaskRecord,
    max_parallel: usize,
    cancel: &CancellationToken,
) -> io::Result<Option<Slot>> {
    let queue = Queue::join(store, record, max_parallel)?;
    loop {
        match queue.try_take(store) {
            Ok(Some(slot)) => return Ok(Some(slot)),
            Ok(None) => {}
            Err(e) => {
                queue.leave();
                return Err(e);
            }
        }
        tokio::select! {
            () = tokio::time::sleep(POLL) => {}
            () = cancel.cancelled() => {
                queue.leave();
                return Ok(None);
            }
        }
    }
}
