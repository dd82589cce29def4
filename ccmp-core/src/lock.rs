//! Lock files: private (0600), never through a planted symlink, locked with `flock` so that the
//! kernel releases them when their holder dies, however it dies.

use std::fs::{File, OpenOptions, TryLockError};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

/// Opens (creating if needed) a lock file without locking it.
pub(crate) fn open_lock(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .mode(0o600)
        .custom_flags(crate::store::NOFOLLOW)
        .open(path)
}

/// Takes the exclusive lock of `path`, retrying while another process holds it. `Ok(None)` if it
/// is still held after `patience`.
pub(crate) fn lock_with_patience(path: &Path, patience: Duration) -> io::Result<Option<File>> {
    let file = open_lock(path)?;
    let start = Instant::now();
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(Some(file)),
            Err(TryLockError::WouldBlock) if start.elapsed() < patience => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(TryLockError::WouldBlock) => return Ok(None),
            Err(TryLockError::Error(e)) => return Err(e),
        }
    }
}
