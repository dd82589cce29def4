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

use std::fs::{self, File, TryLockError};
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::id::TaskId;
use crate::layout::StateLayout;
use crate::private_file::{self, open_lock};
use crate::store::{DirWatch, FsStore};
use crate::task::TaskRecord;

/// How soon to try again when another waiter holds the queue lock for a moment.
const RETRY: Duration = Duration::from_millis(5);
/// How often a waiting runner looks without being woken: a runner killed with kill -9 frees its
/// slot without telling anyone. (Without inotify, this is the only way.)
const FALLBACK: Duration = Duration::from_millis(1000);
/// Polling interval when inotify is not available.
const POLL: Duration = Duration::from_millis(50);

/// What one attempt found.
enum Turn {
    /// A slot, taken.
    Taken(Slot),
    /// No slot yet; this many waiters are ahead (None if unknown).
    Wait(Option<usize>),
}

/// A held slot. Dropping it frees the slot and wakes the waiting runners.
#[derive(Debug)]
pub(crate) struct Slot {
    lock: File,
    layout: StateLayout,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let _ = self.lock.unlock();
        poke(&self.layout);
    }
}

/// Wakes the runners waiting in `queue_dir` (an inotify close-write event on `.poke`).
pub(crate) fn poke(layout: &StateLayout) {
    let _ = private_file::poke(&layout.queue_poke());
}

/// Tells a waiting runner that the queue changed: an entry left (a runner took a slot or gave
/// up) or a slot was freed (a poke).
struct Watch {
    changed: std::sync::Arc<tokio::sync::Notify>,
    _dir: DirWatch,
}

impl Watch {
    fn new(dir: &Path) -> io::Result<Self> {
        use rustix::fs::inotify::WatchFlags;
        let changed = std::sync::Arc::new(tokio::sync::Notify::new());
        let notify = changed.clone();
        let flags = WatchFlags::DELETE | WatchFlags::CLOSE_WRITE | WatchFlags::MOVED_TO;
        // notify_one stores a permit when nobody waits yet: no change is missed.
        let dir = DirWatch::new([dir], flags, move || notify.notify_one())?;
        Ok(Self { changed, _dir: dir })
    }

    async fn changed(&self) {
        self.changed.notified().await;
    }
}

/// Whether the runner of `id` is alive, judged by its `runner.lock`.
pub(crate) fn runner_alive(store: &FsStore, id: &TaskId) -> bool {
    private_file::is_locked(&store.layout().runner_lock(id))
}

#[derive(Debug)]
struct Queue {
    dir: PathBuf,
    layout: StateLayout,
    lock: File,
    entry: String,
    max_parallel: usize,
}

impl Queue {
    fn join(store: &FsStore, record: &TaskRecord, max_parallel: usize) -> io::Result<Self> {
        let layout = store.layout().clone();
        let dir = layout.queue();
        let nanos = record
            .created_at
            .timestamp_nanos_opt()
            .unwrap_or_default()
            .max(0);
        let entry = format!("{nanos:020}-{}", record.id.simple());
        open_lock(&dir.join(&entry))?;
        Ok(Self {
            lock: open_lock(&layout.queue_lock())?,
            layout,
            dir,
            entry,
            max_parallel,
        })
    }

    fn leave(&self) {
        let _ = fs::remove_file(self.dir.join(&self.entry));
    }

    /// Removes the entries of runners that died; returns how many.
    fn clear_dead(&self, store: &FsStore, names: &[String]) -> usize {
        let mut dead = 0;
        for name in names {
            let alive = name
                .rsplit('-')
                .next()
                .and_then(|id| id.parse::<TaskId>().ok())
                .is_some_and(|id| runner_alive(store, &id));
            if !alive {
                let _ = fs::remove_file(self.dir.join(name));
                dead += 1;
            }
        }
        dead
    }

    /// One attempt: takes a slot if this runner's turn has come.
    fn try_take(&self, store: &FsStore) -> io::Result<Turn> {
        match self.lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => return Ok(Turn::Wait(None)),
            Err(TryLockError::Error(e)) => return Err(e),
        }
        let result = self.take_locked(store);
        let _ = self.lock.unlock();
        result
    }

    fn take_locked(&self, store: &FsStore) -> io::Result<Turn> {
        let mut entries: Vec<String> = fs::read_dir(&self.dir)?
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|name| !name.starts_with('.') && *name < self.entry)
            .collect();
        entries.sort();
        if entries.len() >= self.max_parallel {
            // Far back in the line: no slot can be ours yet, unless those at the head died.
            // Clear dead entries there (nobody else may be alive to do it), then look again.
            let head: Vec<String> = entries.iter().take(self.max_parallel).cloned().collect();
            let dead = self.clear_dead(store, &head);
            if dead == 0 {
                return Ok(Turn::Wait(Some(entries.len())));
            }
            entries.retain(|name| !head.contains(name) || self.dir.join(name).exists());
        }
        let mut free = Vec::new();
        for n in 0..self.max_parallel {
            let file = open_lock(&self.layout.slot(n))?;
            match file.try_lock() {
                Ok(()) => free.push(file),
                Err(TryLockError::WouldBlock) => {}
                Err(TryLockError::Error(e)) => return Err(e),
            }
        }
        if free.is_empty() {
            return Ok(Turn::Wait(Some(entries.len())));
        }
        if entries.len() >= free.len() {
            // Not our turn, unless some of those ahead belong to runners that died.
            self.clear_dead(store, &entries);
            entries.retain(|name| self.dir.join(name).exists());
        }
        if entries.len() < free.len() {
            let lock = free.swap_remove(0);
            self.leave();
            return Ok(Turn::Taken(Slot {
                lock,
                layout: self.layout.clone(),
            }));
        }
        Ok(Turn::Wait(Some(entries.len())))
    }
}

/// Waits for a slot in FIFO order. Returns `Ok(None)` if `cancel` fires first.
///
/// A waiter sleeps until the queue dir changes (inotify) and looks again; it polls only as a
/// fallback, so a queue of hundreds of waiting runners costs no CPU.
pub(crate) async fn acquire(
    store: &FsStore,
    record: &TaskRecord,
    max_parallel: usize,
    cancel: &CancellationToken,
) -> io::Result<Option<Slot>> {
    let queue = Queue::join(store, record, max_parallel)?;
    // Watch before the first look, so that no change between a look and a wait is missed.
    let watch = Watch::new(&queue.dir)
        .inspect_err(|e| tracing::warn!("cannot watch the queue, polling instead: {e}"))
        .ok();
    loop {
        let pause = match queue.try_take(store) {
            Ok(Turn::Taken(slot)) => return Ok(Some(slot)),
            Ok(Turn::Wait(None)) => RETRY,
            Ok(Turn::Wait(Some(_))) if watch.is_some() => FALLBACK,
            Ok(Turn::Wait(Some(_))) => POLL,
            Err(e) => {
                queue.leave();
                return Err(e);
            }
        };
        let changed = async {
            match &watch {
                Some(watch) if pause == FALLBACK => watch.changed().await,
                _ => std::future::pending().await,
            }
        };
        tokio::select! {
            () = changed => {}
            () = tokio::time::sleep(pause) => {}
            () = cancel.cancelled() => {
                queue.leave();
                return Ok(None);
            }
        }
    }
}
