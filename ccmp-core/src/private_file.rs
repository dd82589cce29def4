//! Opening files in the state dir: private (0600), never through a planted symlink.
//!
//! Every file ccmp opens in the state dir, to write it or to read it, goes through here, so a
//! symlink someone planted in place of a record, a log or a lock is refused (`O_NOFOLLOW`) rather
//! than followed out of the state dir, and anything that is not a regular file (a FIFO, a
//! device, a directory) is refused rather than opened: files are opened `O_NONBLOCK`, so opening a
//! FIFO cannot hang, and checked with `fstat` before use. Lock files are locked with `flock`,
//! which the kernel releases when their holder dies, however it dies.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

/// `O_NOFOLLOW | O_NONBLOCK`, as the custom flags `OpenOptions` takes. (`O_NONBLOCK` changes
/// nothing for regular files; it only keeps a FIFO's open from waiting for the other end.)
const FLAGS: i32 =
    (rustix::fs::OFlags::NOFOLLOW.bits() | rustix::fs::OFlags::NONBLOCK.bits()) as i32;

fn options() -> OpenOptions {
    let mut options = OpenOptions::new();
    options.mode(0o600).custom_flags(FLAGS);
    options
}

/// The error for a path that is not a regular file (a symlink, a FIFO, a device, a directory).
fn not_regular(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!(
            "`{}` is not a regular file (a symlink, FIFO, device or directory was put there); ccmp does not open it",
            path.display()
        ),
    )
}

/// Whether an open failed because the path is not a regular file: a planted symlink (`ELOOP`
/// under `O_NOFOLLOW`), a FIFO with no reader (`ENXIO`), a directory, or anything else refused.
pub(crate) fn is_refused(error: &io::Error) -> bool {
    error.kind() == io::ErrorKind::InvalidData
        || matches!(
            error.raw_os_error(),
            Some(code) if code == rustix::io::Errno::LOOP.raw_os_error()
                || code == rustix::io::Errno::NXIO.raw_os_error()
                || code == rustix::io::Errno::ISDIR.raw_os_error()
        )
}

/// Opens with `options`, then refuses anything that is not a regular file.
fn open_regular(options: &OpenOptions, path: &Path) -> io::Result<File> {
    let file = options
        .open(path)
        .map_err(|e| if is_refused(&e) { not_regular(path) } else { e })?;
    if file.metadata()?.is_file() {
        Ok(file)
    } else {
        Err(not_regular(path))
    }
}

/// Opens a directory to lock it; a symlink (or anything not a directory) in its place is
/// refused with `ELOOP` or `ENOTDIR`.
pub(crate) fn open_dir(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(FLAGS | rustix::fs::OFlags::DIRECTORY.bits() as i32)
        .open(path)
}

/// Opens a file for reading.
pub(crate) fn open_read(path: &Path) -> io::Result<File> {
    open_regular(options().read(true), path)
}

/// Reads a whole file.
pub(crate) fn read(path: &Path) -> io::Result<Vec<u8>> {
    let mut file = open_read(path)?;
    // Sized up front, as `fs::read` does: records are read by the thousand when listing.
    let size = file.metadata().map_or(0, |m| m.len() as usize);
    let mut bytes = Vec::with_capacity(size + 1);
    file.read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Opens (creating if needed) a file to append to: logs.
pub(crate) fn open_append(path: &Path) -> io::Result<File> {
    open_regular(options().create(true).append(true), path)
}

/// Creates a new file for writing; fails if anything is at `path` already.
pub(crate) fn create_new(path: &Path) -> io::Result<File> {
    open_regular(options().create_new(true).write(true), path)
}

/// Creates a file if it does not exist, leaving any content: markers.
pub(crate) fn touch(path: &Path) -> io::Result<()> {
    open_regular(options().create(true).truncate(false).write(true), path).map(drop)
}

/// Creates or empties a file: a write that wakes inotify watchers (close-write).
pub(crate) fn poke(path: &Path) -> io::Result<()> {
    open_regular(options().create(true).truncate(true).write(true), path).map(drop)
}

/// Opens (creating if needed) a lock file without locking it.
pub(crate) fn open_lock(path: &Path) -> io::Result<File> {
    open_regular(
        options()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true),
        path,
    )
}

/// Whether some live process holds the lock of `path`. A missing file is not held.
pub(crate) fn is_locked(path: &Path) -> bool {
    match open_lock(path) {
        Ok(file) => matches!(file.try_lock(), Err(TryLockError::WouldBlock)),
        Err(_) => false,
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn planted_symlinks_are_refused_for_reads_and_writes() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        std::fs::write(&target, "secret").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(read(&link).is_err());
        assert!(open_append(&link).is_err());
        assert!(open_lock(&link).is_err());
        assert!(touch(&link).is_err());
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "secret");
        assert_eq!(read(&target).unwrap(), b"secret");
    }

    #[test]
    fn fifos_and_directories_are_refused_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        // Each of these would block forever on a plain open of a FIFO with no writer/reader.
        for result in [
            read(&fifo).map(drop),
            open_append(&fifo).map(drop),
            open_lock(&fifo).map(drop),
            touch(&fifo),
            read(dir.path()).map(drop),
        ] {
            let err = result.unwrap_err();
            assert!(is_refused(&err), "{err}");
            assert!(err.to_string().contains("not a regular file"), "{err}");
        }
    }

    #[test]
    fn new_files_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        open_append(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
