//! Waiting for task records to change, without polling.

use std::io;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustix::fs::inotify::{self, CreateFlags, ReadFlags, WatchFlags};
use tokio::sync::watch;

/// How long a waiter sleeps between looks when nothing tells it about changes.
const POLL: Duration = Duration::from_millis(100);

/// A subscription to changes of some tasks' records. Created before a look at the records, it
/// reports every change after that look; without a way to be told, it is a plain sleep.
#[derive(Debug)]
pub struct TaskWatch {
    version: Option<watch::Receiver<u64>>,
    _dirs: Option<DirWatch>,
}

impl TaskWatch {
    /// A watch that is never told: [`changed`](Self::changed) sleeps a short while.
    pub fn poll() -> Self {
        Self {
            version: None,
            _dirs: None,
        }
    }

    pub(crate) fn versions(version: watch::Receiver<u64>) -> Self {
        Self {
            version: Some(version),
            _dirs: None,
        }
    }

    /// Watches directories for files renamed into place (inotify). Records are only ever
    /// replaced by rename; watching writes as well would wake a waiter on its own look, which
    /// opens the task's lock file.
    pub(crate) fn dirs<'a>(dirs: impl IntoIterator<Item = &'a Path>) -> io::Result<Self> {
        Self::dirs_with(dirs, WatchFlags::MOVED_TO)
    }

    /// Watches directories for the given events.
    pub(crate) fn dirs_with<'a>(
        dirs: impl IntoIterator<Item = &'a Path>,
        flags: WatchFlags,
    ) -> io::Result<Self> {
        let (tx, rx) = watch::channel(0);
        let dirs = DirWatch::new(dirs, flags, move || {
            tx.send_modify(|v| *v += 1);
        })?;
        Ok(Self {
            version: Some(rx),
            _dirs: Some(dirs),
        })
    }

    /// Waits until a watched record may have changed, or `max` has passed.
    pub async fn changed(&mut self, max: Duration) {
        match &mut self.version {
            Some(version) => {
                tokio::select! {
                    told = version.changed() => {
                        if told.is_err() {
                            // Nobody is left to tell (the watched dirs went away): poll from now on.
                            self.version = None;
                        }
                    }
                    () = tokio::time::sleep(max) => {}
                }
            }
            None => tokio::time::sleep(max.min(POLL)).await,
        }
    }
}

/// An inotify watch on some directories, read by a small thread that calls `on_change` for each
/// batch of events. Dropping it removes the watches, which ends the thread. (A thread, because
/// tokio's safe `AsyncFd::new` is deprecated as unsound, and this workspace forbids `unsafe`.)
#[derive(Debug)]
pub(crate) struct DirWatch {
    fd: Arc<OwnedFd>,
    wds: Vec<i32>,
}

impl DirWatch {
    pub(crate) fn new<'a>(
        dirs: impl IntoIterator<Item = &'a Path>,
        flags: WatchFlags,
        on_change: impl Fn() + Send + 'static,
    ) -> io::Result<Self> {
        let fd = Arc::new(inotify::init(CreateFlags::CLOEXEC)?);
        let mut wds = Vec::new();
        for dir in dirs {
            match inotify::add_watch(&*fd, dir, flags) {
                Ok(wd) => wds.push(wd),
                // A directory that went away (a removed task) has nothing more to say.
                Err(rustix::io::Errno::NOENT) => {}
                Err(e) => {
                    for wd in &wds {
                        let _ = inotify::remove_watch(&*fd, *wd);
                    }
                    return Err(e.into());
                }
            }
        }
        let reader = fd.clone();
        let mut live = wds.len();
        if live > 0 {
            std::thread::Builder::new()
                .name("ccmp-watch".into())
                .spawn(move || {
                    let mut buf = [std::mem::MaybeUninit::uninit(); 4096];
                    let mut events = inotify::Reader::new(&*reader, &mut buf);
                    while let Ok(event) = events.next() {
                        if event.events().contains(ReadFlags::IGNORED) {
                            live -= 1;
                            if live == 0 {
                                break;
                            }
                            continue;
                        }
                        on_change();
                    }
                })?;
        }
        Ok(Self { fd, wds })
    }
}

impl Drop for DirWatch {
    fn drop(&mut self) {
        for wd in &self.wds {
            let _ = inotify::remove_watch(&*self.fd, *wd);
        }
    }
}
