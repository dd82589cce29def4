//! The machine-wide queue: at most `max_parallel` agents run at once across every process that
//! shares a state dir, and waiting tasks start first in, first out. The limit is the setting in
//! the state dir (see [`crate::settings`]), read at every look, so a change holds at once.
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
//!
//! Waiting costs no CPU and no inotify instance per waiter, however long the line: a waiter
//! holds an `flock` on its own entry, and the one behind it sleeps in a blocking `flock` on
//! that entry, which the kernel grants the moment the waiter ahead leaves the line (it took a
//! slot, gave up, or died). Only the head of the line watches the slots (inotify on the queue
//! dir, where a freed slot is announced; a one-second look as well, since a runner killed with
//! kill -9 announces nothing). Each waiter that wakes either takes a slot or becomes the head.

use std::fs::{self, File, TryLockError};
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::config::DEFAULT_MAX_PARALLEL;
use crate::id::TaskId;
use crate::layout::StateLayout;
use crate::private_file::{self, open_lock};
use crate::settings::Settings;
use crate::store::{DirWatch, FsStore};
use crate::task::TaskRecord;

/// How soon to try again when another waiter holds the queue lock for a moment.
const RETRY: Duration = Duration::from_millis(5);
/// How often the head of the line looks without being woken: a runner killed with kill -9 frees
/// its slot without telling anyone.
const FALLBACK: Duration = Duration::from_millis(1000);
/// How often the head of the line looks when inotify is not available.
const POLL: Duration = Duration::from_millis(50);

/// How often a waiter behind others looks anyway, in case the one it waits on is alive but
/// never moves (a stopped runner): soon near the head, rarely far back.
const NEAR_HEAD_CHECK: Duration = Duration::from_secs(2);
const FAR_BACK_CHECK: Duration = Duration::from_secs(30);

/// What one attempt found.
enum Turn {
    /// A slot, taken.
    Taken(Slot),
    /// Another waiter holds the queue lock for a moment.
    Busy,
    /// No slot yet: this many waiters are ahead, the nearest being `next_ahead`; `why` says
    /// why in words (for the task's progress).
    Wait {
        ahead: usize,
        next_ahead: Option<String>,
        why: String,
    },
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
    /// Held while this runner waits: the waiter behind sleeps on it.
    _entry_lock: File,
}

impl Queue {
    fn join(store: &FsStore, record: &TaskRecord) -> io::Result<Self> {
        let layout = store.layout().clone();
        let dir = layout.queue();
        let nanos = record
            .created_at
            .timestamp_nanos_opt()
            .unwrap_or_default()
            .max(0);
        let entry = format!("{nanos:020}-{}", record.id.simple());
        // Locked before it is renamed into the line, so that every entry there is locked by a
        // live waiter: one whose lock is free belongs to a runner that died.
        let joining = dir.join(format!(".join-{entry}"));
        let entry_lock = open_lock(&joining)?;
        entry_lock.lock()?;
        fs::rename(&joining, dir.join(&entry)).inspect_err(|_| {
            let _ = fs::remove_file(&joining);
        })?;
        Ok(Self {
            lock: open_lock(&layout.queue_lock())?,
            layout,
            dir,
            entry,
            _entry_lock: entry_lock,
        })
    }

    /// Leaves the line. The entry goes before its lock is freed (when `self` drops), so the
    /// waiter behind, woken by the lock, finds it gone.
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
            Err(TryLockError::WouldBlock) => return Ok(Turn::Busy),
            Err(TryLockError::Error(e)) => return Err(e),
        }
        let result = self.take_locked(store);
        let _ = self.lock.unlock();
        result
    }

    /// The machine-wide limit and pause as they are now (the defaults if none are stored or
    /// they cannot be read).
    fn settings(&self) -> (usize, bool) {
        match Settings::load(&self.layout.settings()) {
            Ok(Some(settings)) => (settings.max_parallel.max(1), settings.paused),
            Ok(None) => (DEFAULT_MAX_PARALLEL, false),
            Err(e) => {
                tracing::warn!("cannot read the settings, using the default limit: {e}");
                (DEFAULT_MAX_PARALLEL, false)
            }
        }
    }

    /// The machine-wide limit as it is now.
    fn limit(&self) -> usize {
        self.settings().0
    }

    fn take_locked(&self, store: &FsStore) -> io::Result<Turn> {
        let (limit, paused) = self.settings();
        let mut entries: Vec<String> = fs::read_dir(&self.dir)?
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|name| !name.starts_with('.') && *name < self.entry)
            .collect();
        entries.sort();
        if paused {
            return Ok(Self::wait(
                entries,
                "paused: new tasks start after `ccmp resume`".to_owned(),
            ));
        }
        if entries.len() >= limit {
            // Far back in the line: no slot can be ours yet, unless those at the head died.
            // Clear dead entries there (nobody else may be alive to do it), then look again.
            let head: Vec<String> = entries.iter().take(limit).cloned().collect();
            let dead = self.clear_dead(store, &head);
            if dead == 0 {
                return Ok(Self::wait_for_slot(entries, limit));
            }
            entries.retain(|name| !head.contains(name) || self.dir.join(name).exists());
        }
        // Slots in use: every held slot lock, including ones past a limit lowered since.
        let (busy, mut free) = self.slots(limit)?;
        let room = limit.saturating_sub(busy);
        free.truncate(room);
        if free.is_empty() {
            return Ok(Self::wait_for_slot(entries, limit));
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
        Ok(Self::wait_for_slot(entries, limit))
    }

    /// How many slots are held now, and the free ones below `limit`, locked.
    fn slots(&self, limit: usize) -> io::Result<(usize, Vec<File>)> {
        let existing = fs::read_dir(self.layout.slots())?
            .filter_map(|e| {
                let name = e.ok()?.file_name().into_string().ok()?;
                name.strip_suffix(".lock")?.parse::<usize>().ok()
            })
            .max()
            .map_or(0, |n| n + 1);
        let mut busy = 0;
        let mut free = Vec::new();
        for n in 0..existing.max(limit) {
            let file = open_lock(&self.layout.slot(n))?;
            match file.try_lock() {
                Ok(()) if n < limit => free.push(file),
                Ok(()) => {}
                Err(TryLockError::WouldBlock) => busy += 1,
                Err(TryLockError::Error(e)) => return Err(e),
            }
        }
        Ok((busy, free))
    }

    /// Not yet: `ahead` are the entries before this one, in order.
    fn wait(mut ahead: Vec<String>, why: String) -> Turn {
        Turn::Wait {
            ahead: ahead.len(),
            next_ahead: ahead.pop(),
            why,
        }
    }

    /// Not yet, for want of a slot.
    fn wait_for_slot(ahead: Vec<String>, limit: usize) -> Turn {
        let why = match ahead.len() {
            0 => format!("queued: next in line; all {limit} slots are busy"),
            n => format!("queued: {n} ahead in line for {limit} slots"),
        };
        Self::wait(ahead, why)
    }

    /// Resolves once the waiter whose entry is `name` has left the line (its lock is free).
    /// The blocking `flock` runs on a thread of its own, which the process's exit ends if the
    /// wait is abandoned.
    fn left(&self, name: &str) -> tokio::sync::oneshot::Receiver<()> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let path = self.dir.join(name);
        let spawned = std::thread::Builder::new()
            .name("ccmp-queue".into())
            .spawn(move || {
                if let Ok(entry) = private_file::open_read(&path)
                    && entry.lock_shared().is_ok()
                    && path.exists()
                {
                    // Still in the line with its lock free: its runner died. Waiters leave
                    // the line before they let go of the lock.
                    let _ = fs::remove_file(&path);
                }
                let _ = tx.send(());
            });
        if let Err(e) = spawned {
            tracing::warn!("cannot wait on the queue without polling: {e}");
        }
        rx
    }
}

/// Waits for a slot in FIFO order. Returns `Ok(None)` if `cancel` fires first.
pub(crate) async fn acquire(
    store: &FsStore,
    record: &TaskRecord,
    cancel: &CancellationToken,
) -> io::Result<Option<Slot>> {
    let queue = Queue::join(store, record)?;
    // Made when this waiter first finds itself at the head of the line, before it looks again,
    // so that no freed slot between a look and a wait is missed.
    let mut watch: Option<Option<Watch>> = None;
    // The entry this waiter sleeps behind, and word of its leaving (kept across looks: a
    // waiter far back looks many times behind the same one).
    let mut behind: Option<(String, tokio::sync::oneshot::Receiver<()>)> = None;
    let mut last_why: Option<String> = None;
    loop {
        let wake: Pin<Box<dyn Future<Output = ()> + Send>> = match queue.try_take(store) {
            Ok(Turn::Taken(slot)) => return Ok(Some(slot)),
            Ok(Turn::Busy) => Box::pin(tokio::time::sleep(RETRY)),
            Ok(Turn::Wait {
                ahead,
                next_ahead: Some(next),
                why,
            }) => {
                say_why(store, record, &mut last_why, why);
                // A word already received cannot be awaited again: wait anew.
                let stale = |(name, left): &mut (String, tokio::sync::oneshot::Receiver<()>)| {
                    *name != next
                        || left.try_recv() != Err(tokio::sync::oneshot::error::TryRecvError::Empty)
                };
                if behind.as_mut().is_none_or(stale) {
                    behind = Some((next.clone(), queue.left(&next)));
                }
                let left = behind.as_mut().map(|(_, left)| left);
                let check = if ahead < 2 * queue.limit() {
                    NEAR_HEAD_CHECK
                } else {
                    FAR_BACK_CHECK
                };
                Box::pin(async move {
                    let Some(left) = left else { return };
                    tokio::select! {
                        _ = left => {}
                        () = tokio::time::sleep(check) => {}
                    }
                })
            }
            Ok(Turn::Wait {
                next_ahead: None,
                why,
                ..
            }) => match &watch {
                None => {
                    watch = Some(
                        Watch::new(&queue.dir)
                            .inspect_err(|e| {
                                tracing::warn!("cannot watch the queue, polling instead: {e}")
                            })
                            .ok(),
                    );
                    continue;
                }
                Some(Some(watch)) => {
                    say_why(store, record, &mut last_why, why);
                    Box::pin(async move {
                        tokio::select! {
                            () = watch.changed() => {}
                            () = tokio::time::sleep(FALLBACK) => {}
                        }
                    })
                }
                Some(None) => {
                    say_why(store, record, &mut last_why, why);
                    Box::pin(tokio::time::sleep(POLL))
                }
            },
            Err(e) => {
                queue.leave();
                return Err(e);
            }
        };
        tokio::select! {
            () = wake => {}
            () = cancel.cancelled() => {
                queue.leave();
                return Ok(None);
            }
        }
    }
}

/// Records why the task waits as its progress, when that changed since it last said.
fn say_why(store: &FsStore, record: &TaskRecord, last: &mut Option<String>, why: String) {
    use crate::store::TaskStore;
    if last.as_ref() == Some(&why) {
        return;
    }
    if let Ok(mut current) = store.load(&record.id)
        && !current.status.is_terminal()
    {
        current.progress = Some(why.clone());
        let _ = store.save_progress(&current);
    }
    *last = Some(why);
}
