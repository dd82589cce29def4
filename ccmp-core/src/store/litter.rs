//! Directories a killed create or removal leaves in `tasks/`, and taking them away safely.
//!
//! A task is created in a staging dir (`tasks/.new-*`) renamed into place, and removed by a
//! rename to `tasks/.trash-*` and a delete. A process killed halfway leaves the staging or
//! trash dir behind. Whoever works on such a dir holds an `flock` on it for as long as it does,
//! so a dir whose lock is free has been abandoned; a staging dir must also be a minute old,
//! since it exists for a moment before its creator has locked it.

use std::fs::{self, File, TryLockError};
use std::io;
use std::path::Path;
use std::time::{Duration, SystemTime};

use crate::private_file;

/// Name prefix of a task dir being created.
pub(crate) const STAGING: &str = ".new-";
/// Name prefix of a task dir being removed.
pub(crate) const TRASH: &str = ".trash-";

/// How old an unlocked staging dir must be to count as abandoned.
const STAGING_GRACE: Duration = Duration::from_secs(60);

/// Opens a directory (never through a symlink) and takes its lock, waiting for it.
pub(crate) fn lock_dir(dir: &Path) -> io::Result<File> {
    let file = private_file::open_dir(dir)?;
    file.lock()?;
    Ok(file)
}

/// Removes the abandoned staging and trash dirs in `tasks`; returns how many it removed.
/// Problems are logged, never returned: tidying must not fail the command that does it.
pub(crate) fn sweep(tasks: &Path) -> usize {
    let Ok(entries) = fs::read_dir(tasks) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let staging = name.starts_with(STAGING);
        if !staging && !name.starts_with(TRASH) {
            continue;
        }
        let path = entry.path();
        match remove_if_abandoned(&path, staging) {
            Ok(true) => {
                tracing::info!(path = %path.display(), "removed what a killed ccmp left behind");
                removed += 1;
            }
            Ok(false) => {}
            Err(e) => tracing::warn!(path = %path.display(), "cannot tidy: {e}"),
        }
    }
    removed
}

fn remove_if_abandoned(path: &Path, staging: bool) -> io::Result<bool> {
    // A symlink or a file with such a name is not ours: leave it.
    let file = match private_file::open_dir(path) {
        Ok(file) => file,
        Err(e)
            if e.kind() == io::ErrorKind::NotFound || e.kind() == io::ErrorKind::NotADirectory =>
        {
            return Ok(false);
        }
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) => {
            return Ok(false);
        }
        Err(e) => return Err(e),
    };
    if staging {
        let age = SystemTime::now()
            .duration_since(file.metadata()?.modified()?)
            .unwrap_or_default();
        if age < STAGING_GRACE {
            return Ok(false);
        }
    }
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => return Ok(false),
        Err(TryLockError::Error(e)) => return Err(e),
    }
    match fs::remove_dir_all(path) {
        Ok(()) => Ok(true),
        // Someone else tidied it first.
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}
