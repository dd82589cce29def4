//! [`FsStore`]: one directory per task under the state dir, every write atomic.
//!
//! Directories are 0700 and files 0600 (paths: [`StateLayout`]). A record is replaced by temp
//! file + fsync + rename + fsync dir; `transcript.log` is the readable log, `stdout.jsonl` and
//! `stderr.log` the raw streams.
//!
//! A task directory appears whole: it is built under a hidden temporary name and renamed into
//! place, and removal renames it away before deleting. Names starting with `.` are ignored.

use std::fs::{self, DirBuilder, File};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::finished_index::FinishedIndex;
use super::{Listed, LogChunk, LogRange, LogStream, TaskStore, TaskWatch, litter};
use crate::error::StoreError;
use crate::id::{IdPrefix, TaskId};
use crate::layout::StateLayout;
use crate::private_file;
use crate::task::{DamagedTask, SCHEMA_VERSION, TaskHeader, TaskRecord, TaskStatus};

/// How young an active marker of a task not (yet) on disk is left alone.
const ORPHAN_MARKER_GRACE: std::time::Duration = std::time::Duration::from_secs(60);

/// The durable store: shared by every process that opens the same state dir.
#[derive(Debug, Clone)]
pub struct FsStore {
    layout: StateLayout,
}

impl FsStore {
    /// Opens (creating if needed) the store at `root`.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let root = root.into();
        if root.exists() && !root.is_dir() {
            return Err(StoreError::StateDirNotDir { path: root });
        }
        let me = rustix::process::geteuid().as_raw();
        let insecure = |path: &Path, reason: String| StoreError::StateDirInsecure {
            path: path.to_owned(),
            reason,
        };
        // Someone else's symlink could point the state dir (prompts, logs) anywhere.
        if let Ok(meta) = fs::symlink_metadata(&root)
            && meta.file_type().is_symlink()
            && meta.uid() != me
        {
            return Err(insecure(
                &root,
                format!("it is a symlink owned by another user (uid {})", meta.uid()),
            ));
        }
        let unwritable = |source| StoreError::StateDirUnwritable {
            path: root.clone(),
            source,
        };
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&root)
            .map_err(unwritable)?;
        let root = root.canonicalize().map_err(unwritable)?;
        let meta = fs::metadata(&root).map_err(unwritable)?;
        if meta.uid() != me {
            return Err(insecure(
                &root,
                format!("it is owned by another user (uid {})", meta.uid()),
            ));
        }
        if meta.mode() & 0o022 != 0 {
            // A shared dir (sticky, like /tmp) must stay writable by others: never advise to
            // chmod it, only to use a dir of ccmp's own.
            let advice = if meta.mode() & 0o1000 != 0 || root == Path::new("/") {
                "it is a shared directory: point CCMP_STATE_DIR at a directory of ccmp's own (made with `mkdir -m 700`), or unset it to use ~/.local/state/ccmp"
            } else {
                "run `chmod 700` on it, or point CCMP_STATE_DIR at a directory only you can write"
            };
            return Err(insecure(
                &root,
                format!(
                    "other users can write to it (mode {:o}); {advice}",
                    meta.mode() & 0o7777
                ),
            ));
        }
        let layout = StateLayout::new(root);
        for sub in layout.dirs() {
            DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(sub)
                .map_err(|source| StoreError::StateDirUnwritable {
                    path: layout.root().to_owned(),
                    source,
                })?;
        }
        Ok(Self { layout })
    }

    /// Opens the store at the default state dir (see [`default_state_dir`](crate::default_state_dir)).
    pub fn open_default() -> Result<Self, StoreError> {
        Self::open(crate::layout::default_state_dir()?)
    }

    /// The state dir.
    pub fn root(&self) -> &Path {
        self.layout.root()
    }

    /// Where everything lives under the state dir.
    pub fn layout(&self) -> &StateLayout {
        &self.layout
    }

    /// Opens (creating if needed) the MCP server's log, private and never through a planted
    /// symlink. The state dir's safety checks ran when the store was opened.
    pub fn open_mcp_log(&self) -> Result<File, StoreError> {
        let path = self.layout.mcp_log();
        private_file::open_append(&path).map_err(|e| StoreError::write(&path, e))
    }

    /// The directory that holds one task's record and logs.
    pub fn task_dir(&self, id: &TaskId) -> PathBuf {
        self.layout.task_dir(id)
    }

    fn shard_dir(&self, id: &TaskId) -> PathBuf {
        self.layout.shard(&id.simple())
    }

    fn active_marker(&self, id: &TaskId) -> PathBuf {
        self.layout.active_marker(id)
    }

    fn finished_index(&self) -> FinishedIndex {
        FinishedIndex::new(self.layout.finished())
    }

    /// Keeps the active marker and the index of finished tasks in step with the record's state
    /// (`before`: its state on disk before this save, if known). A finished task's entry is
    /// added before its marker goes, so it is never in neither. A stale marker is harmless
    /// (readers check the record); a missing one is restored by the next save, and a missing
    /// index entry by the next listing of every task.
    fn mark_active(&self, record: &TaskRecord, before: Option<TaskStatus>) {
        let marker = self.active_marker(&record.id);
        if record.status.is_terminal() {
            if let Err(e) = self.finished_index().add(record, before) {
                tracing::debug!(
                    "could not index a finished task (the next full listing will): {e}"
                );
            }
            let _ = fs::remove_file(marker);
        } else if !marker.exists() {
            let _ = private_file::touch(&marker);
        }
    }

    /// Removes the active marker of a task that does not exist, unless it is young: a task is
    /// marked active a moment before its dir appears.
    fn remove_orphan_marker(&self, id: &TaskId) {
        let marker = self.active_marker(id);
        let young = fs::symlink_metadata(&marker)
            .and_then(|m| m.modified())
            .is_ok_and(|at| at.elapsed().unwrap_or_default() < ORPHAN_MARKER_GRACE);
        if !young {
            let _ = fs::remove_file(marker);
        }
    }

    fn shards(&self) -> Result<Vec<PathBuf>, StoreError> {
        let tasks = self.layout.tasks();
        let entries = fs::read_dir(&tasks).map_err(|e| StoreError::read(&tasks, e))?;
        let mut shards = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| StoreError::read(&tasks, e))?;
            let name = entry.file_name();
            let is_shard = name
                .to_str()
                .is_some_and(|n| n.len() == 2 && n.bytes().all(|b| b.is_ascii_hexdigit()));
            if is_shard {
                shards.push(entry.path());
            }
        }
        Ok(shards)
    }

    fn record_path(&self, id: &TaskId) -> PathBuf {
        self.layout.record(id)
    }

    fn read_record(&self, id: &TaskId) -> Result<TaskRecord, StoreError> {
        let path = self.record_path(id);
        let bytes = match private_file::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return if self.task_dir(id).is_dir() {
                    Err(damaged(id, path, "the record file is missing".into()))
                } else {
                    Err(StoreError::NotFound { id: id.to_string() })
                };
            }
            Err(e) => return Err(read_error(id, path, e)),
        };
        parse_record(id, &path, &bytes)
    }
}

impl FsStore {
    /// The headers of `ids`, read from their records; for `active` markers, a marker of a
    /// finished task is tidied away (after indexing the task) and one of a task not on disk is
    /// removed once it is old.
    fn read_headers(&self, ids: Vec<TaskId>, active: bool) -> Vec<Result<TaskHeader, DamagedTask>> {
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let path = self.record_path(&id);
            let header = match private_file::read(&path) {
                Ok(bytes) => serde_json::from_slice::<TaskHeader>(&bytes)
                    .ok()
                    .filter(|h| h.id == id)
                    .map(Ok)
                    // Not a plain header: read it in full to say what is wrong.
                    .unwrap_or_else(|| {
                        parse_record(&id, &path, &bytes).map(|r| TaskHeader::from(&r))
                    }),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    self.read_record(&id).map(|r| TaskHeader::from(&r))
                }
                Err(e) => Err(read_error(&id, path.clone(), e)),
            };
            match header {
                Ok(header) => {
                    if active && header.status.is_terminal() {
                        // A marker left behind by a crash: index the task, then tidy the marker.
                        if let Ok(record) = self.read_record(&id) {
                            self.mark_active(&record, None);
                        }
                        continue;
                    }
                    out.push(Ok(header));
                }
                Err(StoreError::NotFound { .. }) => {
                    if active {
                        self.remove_orphan_marker(&id);
                    }
                }
                Err(e) => out.push(Err(self.damaged_entry(&id, e))),
            }
        }
        out
    }

    /// How a listing reports a task whose record cannot be read.
    fn damaged_entry(&self, id: &TaskId, error: StoreError) -> DamagedTask {
        let (path, reason) = match error {
            StoreError::Damaged { path, reason, .. } => (path, reason),
            other => (self.record_path(id), other.to_string()),
        };
        DamagedTask {
            id: id.to_string(),
            short_id: id.short(),
            path,
            reason,
        }
    }

    fn replace(&self, record: &TaskRecord, durable: bool) -> Result<(), StoreError> {
        let path = self.record_path(&record.id);
        let bytes = serialize(record)?;
        // The state on disk before this write: a change of state is an event (see `events`).
        let before = self.status_on_disk(&path);
        write_replace(&path, &bytes, durable).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                StoreError::NotFound {
                    id: record.id.to_string(),
                }
            } else {
                StoreError::write(&path, e)
            }
        })?;
        self.mark_active(record, before);
        if let Some(before) = before
            && before != record.status
        {
            crate::events::emit::changed(self, before, record);
        }
        Ok(())
    }

    /// The state a record file holds, read as a header (cheap); `None` if it cannot be read.
    fn status_on_disk(&self, path: &Path) -> Option<TaskStatus> {
        let bytes = private_file::read(path).ok()?;
        serde_json::from_slice::<TaskHeader>(&bytes)
            .ok()
            .map(|h| h.status)
    }
}

/// A record that cannot be read: damaged if something other than a regular file is in its
/// place (reported for that task alone), else a read failure.
fn read_error(id: &TaskId, path: PathBuf, error: io::Error) -> StoreError {
    if private_file::is_refused(&error) {
        damaged(
            id,
            path,
            "it is not a regular file (a symlink, FIFO, device or directory was put in its place), so it was not opened".into(),
        )
    } else {
        StoreError::read(path, error)
    }
}

fn damaged(id: &TaskId, path: PathBuf, reason: String) -> StoreError {
    StoreError::Damaged {
        id: id.short(),
        path,
        reason,
    }
}

fn parse_record(id: &TaskId, path: &Path, bytes: &[u8]) -> Result<TaskRecord, StoreError> {
    if bytes.is_empty() {
        return Err(damaged(
            id,
            path.to_owned(),
            "the record file is empty".into(),
        ));
    }
    #[derive(serde::Deserialize)]
    struct Version {
        schema: u32,
    }
    let schema = match serde_json::from_slice::<Version>(bytes) {
        Ok(v) if v.schema > SCHEMA_VERSION => {
            return Err(damaged(
                id,
                path.to_owned(),
                format!(
                    "written by a newer ccmp (schema {}); upgrade ccmp to read it",
                    v.schema
                ),
            ));
        }
        Ok(v) => v.schema,
        Err(e) => {
            return Err(damaged(
                id,
                path.to_owned(),
                format!("not a task record: {e}"),
            ));
        }
    };
    let record = if schema == 1 {
        crate::schema_v1::parse(bytes)
    } else {
        serde_json::from_slice::<TaskRecord>(bytes)
    }
    .map_err(|e| damaged(id, path.to_owned(), format!("not a task record: {e}")))?;
    if record.id != *id {
        return Err(damaged(
            id,
            path.to_owned(),
            format!("it names task {} instead", record.id),
        ));
    }
    Ok(record)
}

/// Writes `bytes` to `path` atomically: temp file beside it, fsync, rename, fsync the dir.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_replace(path, bytes, true)
}

/// Writes `bytes` to `path` atomically but not durably (no fsync): for files whose loss in a
/// crash costs nothing worse than a repeated notice.
pub(crate) fn write_replacing(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_replace(path, bytes, false)
}

/// Writes `bytes` to `path` by temp file and rename: readers see the old or the new content,
/// never a mix. With `durable`, the file and the directory are fsynced too.
fn write_replace(path: &Path, bytes: &[u8], durable: bool) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new().prefix(".tmp-").tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    if durable {
        tmp.as_file().sync_all()?;
    }
    tmp.persist(path).map_err(|e| e.error)?;
    if durable {
        sync_dir(dir)?;
    }
    Ok(())
}

/// Writes `bytes` to `path` only if nothing is there yet (atomically: a reader sees no file or
/// the whole file); `Ok` either way.
pub(crate) fn write_new(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new().prefix(".tmp-").tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    match tmp.persist_noclobber(path) {
        Ok(_) => sync_dir(dir),
        Err(e) if e.error.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e.error),
    }
}

/// Creates `path` (which must not exist) with `bytes`, fsynced.
fn write_new_durably(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = private_file::create_new(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn serialize(record: &TaskRecord) -> Result<Vec<u8>, StoreError> {
    let mut bytes = serde_json::to_vec_pretty(record).map_err(StoreError::Serialize)?;
    bytes.push(b'\n');
    Ok(bytes)
}

fn dir_ids(dir: &Path) -> Result<Vec<TaskId>, StoreError> {
    let entries = fs::read_dir(dir).map_err(|e| StoreError::read(dir, e))?;
    let mut ids = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| StoreError::read(dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.starts_with('.') {
            continue;
        }
        if let Ok(id) = name.parse::<TaskId>() {
            ids.push(id);
        }
    }
    Ok(ids)
}

impl TaskStore for FsStore {
    fn create(&self, record: &TaskRecord) -> Result<(), StoreError> {
        let unwritable = |source| StoreError::StateDirUnwritable {
            path: self.root().to_owned(),
            source,
        };
        let tasks = self.layout.tasks();
        let staging = tempfile::Builder::new()
            .prefix(litter::STAGING)
            .permissions(fs::Permissions::from_mode(0o700))
            .tempdir_in(&tasks)
            .map_err(unwritable)?;
        // Held until the task dir is in place: a staging dir whose lock is free was abandoned.
        let _working = litter::lock_dir(staging.path()).map_err(unwritable)?;
        let bytes = serialize(record)?;
        // Straight into the staging dir, which no reader looks into: no temp file and rename.
        // Durable before the dir is renamed into place: the record, then its dir.
        write_new_durably(&staging.path().join(crate::layout::RECORD), &bytes)
            .and_then(|()| sync_dir(staging.path()))
            .map_err(|e| StoreError::write(staging.path(), e))?;
        let final_dir = self.task_dir(&record.id);
        if final_dir.exists() {
            return Err(StoreError::AlreadyExists {
                id: record.id.short(),
            });
        }
        let shard = self.shard_dir(&record.id);
        match DirBuilder::new().mode(0o700).create(&shard) {
            Ok(()) => sync_dir(&tasks).map_err(|e| StoreError::write(&tasks, e))?,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(StoreError::write(&shard, e)),
        }
        // The active marker goes first: a task dir never exists without one, even if this
        // process is killed right after the rename. (A marker without a task dir is tidied.)
        self.mark_active(record, None);
        if let Err(e) = fs::rename(staging.path(), &final_dir) {
            let _ = fs::remove_file(self.active_marker(&record.id));
            return Err(StoreError::write(&final_dir, e));
        }
        // The staging dir is now the task dir; do not let the guard delete anything.
        let _ = staging.keep();
        sync_dir(&shard).map_err(|e| StoreError::write(&shard, e))?;
        // In case a listing took the marker away in between, as one of a task not yet there.
        self.mark_active(record, None);
        Ok(())
    }

    fn load(&self, id: &TaskId) -> Result<TaskRecord, StoreError> {
        self.read_record(id)
    }

    fn save(&self, record: &TaskRecord) -> Result<(), StoreError> {
        self.replace(record, true)
    }

    fn save_progress(&self, record: &TaskRecord) -> Result<(), StoreError> {
        self.replace(record, false)
    }

    fn headers(
        &self,
        active_only: bool,
    ) -> Result<Vec<Result<TaskHeader, DamagedTask>>, StoreError> {
        litter::sweep(&self.layout.tasks());
        if active_only {
            let ids = dir_ids(&self.layout.active())?;
            return Ok(self.read_headers(ids, true));
        }
        // Every task: finished ones from the index (names only), checked against the task dirs
        // on disk (names only); the headers of the rest (live tasks, and any the index lacks)
        // are read from their records.
        let index = self.finished_index();
        // The two directory reads are independent: the shards on a second thread.
        let (on_disk, finished) = std::thread::scope(|scope| {
            let shards = scope.spawn(|| self.ids());
            let finished = index.entries();
            let on_disk = shards.join().unwrap_or_else(|_| self.ids());
            (on_disk, finished)
        });
        let on_disk: std::collections::HashSet<TaskId> = on_disk?.into_iter().collect();
        let finished = finished.map_err(|e| StoreError::read(self.layout.finished(), e))?;
        let mut out = Vec::with_capacity(on_disk.len());
        let mut indexed = std::collections::HashSet::with_capacity(finished.len());
        let mut twice = Vec::new();
        for entry in finished {
            let id = entry.header.id;
            if !on_disk.contains(&id) {
                // Removed (a cleanup cut short between its two steps): not a task any more.
                index.remove_name(&entry.name);
            } else if indexed.insert(id) {
                out.push(Ok(entry.header));
            } else {
                twice.push(id);
            }
        }
        if !twice.is_empty() {
            // Two entries for one task (a crash while its terminal state changed): the record
            // says which holds; read it, and let the index be rebuilt for it below.
            out.retain(|h| h.as_ref().is_ok_and(|h| !twice.contains(&h.id)));
            for id in &twice {
                indexed.remove(id);
            }
        }
        let rest: Vec<TaskId> = on_disk
            .into_iter()
            .filter(|id| !indexed.contains(id))
            .collect();
        for header in self.read_headers(rest, false) {
            if let Ok(header) = &header
                && header.status.is_terminal()
                && let Ok(record) = self.read_record(&header.id)
            {
                if twice.contains(&header.id) {
                    for entry in index.entries().unwrap_or_default() {
                        if entry.header.id == header.id && entry.header.status != record.status {
                            index.remove_name(&entry.name);
                        }
                    }
                }
                let _ = index.add(&record, None);
            }
            out.push(header);
        }
        Ok(out)
    }

    fn ids(&self) -> Result<Vec<TaskId>, StoreError> {
        let mut ids = Vec::new();
        for shard in self.shards()? {
            ids.extend(dir_ids(&shard)?);
        }
        Ok(ids)
    }

    fn list(&self) -> Result<Vec<Listed>, StoreError> {
        let mut out = Vec::new();
        for id in self.ids()? {
            match self.read_record(&id) {
                Ok(record) => out.push(Ok(record)),
                Err(StoreError::NotFound { .. }) => {}
                Err(e) => out.push(Err(self.damaged_entry(&id, e))),
            }
        }
        Ok(out)
    }

    fn remove(&self, id: &TaskId) -> Result<(), StoreError> {
        litter::sweep(&self.layout.tasks());
        let dir = self.task_dir(id);
        // Held until the delete is done: a trash dir whose lock is free was abandoned.
        let _working = match litter::lock_dir(&dir) {
            Ok(lock) => lock,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(StoreError::NotFound { id: id.to_string() });
            }
            Err(e) => return Err(StoreError::write(&dir, e)),
        };
        let _ = fs::remove_file(self.active_marker(id));
        // Its index entry goes after the dir (a listing removes an entry whose task is gone,
        // never the other way round).
        let indexed = self.read_record(id).ok();
        let trash = self.layout.tasks().join(format!(
            "{}{}-{}",
            litter::TRASH,
            id.simple(),
            TaskId::new().short()
        ));
        match fs::rename(&dir, &trash) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(StoreError::NotFound { id: id.to_string() });
            }
            Err(e) => return Err(StoreError::write(&dir, e)),
        }
        if let Some(record) = &indexed {
            self.finished_index().remove(record);
        }
        let shard = self.shard_dir(id);
        sync_dir(&shard).map_err(|e| StoreError::write(&shard, e))?;
        fs::remove_dir_all(&trash).map_err(|e| StoreError::write(&trash, e))
    }

    fn log_writer(
        &self,
        id: &TaskId,
        stream: LogStream,
    ) -> Result<Box<dyn Write + Send>, StoreError> {
        let path = self.layout.log(id, stream);
        let file = private_file::open_append(&path).map_err(|e| StoreError::write(&path, e))?;
        Ok(Box::new(file))
    }

    fn read_log(
        &self,
        id: &TaskId,
        stream: LogStream,
        range: LogRange,
    ) -> Result<LogChunk, StoreError> {
        let path = self.layout.log(id, stream);
        let mut file = match private_file::open_read(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if !self.task_dir(id).is_dir() {
                    return Err(StoreError::NotFound { id: id.to_string() });
                }
                return Ok(LogChunk::read(0, range, |_, _| Ok(Vec::new())).expect("empty read"));
            }
            Err(e) => return Err(StoreError::read(&path, e)),
        };
        let total = file
            .metadata()
            .map_err(|e| StoreError::read(&path, e))?
            .len();
        LogChunk::read(total, range, |offset, len| {
            let mut buf = vec![0; len];
            file.seek(SeekFrom::Start(offset))?;
            let mut filled = 0;
            while filled < len {
                match file.read(&mut buf[filled..])? {
                    0 => break,
                    n => filled += n,
                }
            }
            buf.truncate(filled);
            Ok(buf)
        })
        .map_err(|e| StoreError::read(&path, e))
    }

    fn log_path(&self, id: &TaskId, stream: LogStream) -> Option<PathBuf> {
        Some(self.layout.log(id, stream))
    }

    fn watch(&self, ids: &[TaskId]) -> TaskWatch {
        let dirs: Vec<PathBuf> = ids.iter().map(|id| self.task_dir(id)).collect();
        TaskWatch::dirs(dirs.iter().map(PathBuf::as_path)).unwrap_or_else(|e| {
            tracing::debug!("cannot watch task records, polling instead: {e}");
            TaskWatch::poll()
        })
    }

    fn watch_live(&self) -> TaskWatch {
        // Markers come and go as tasks start and end; a live task's record is renamed into its
        // dir as it changes. Watching each live task's dir costs one watch per live task.
        use rustix::fs::inotify::WatchFlags;
        let mut dirs = vec![self.layout.active()];
        if let Ok(ids) = dir_ids(&self.layout.active()) {
            dirs.extend(ids.iter().map(|id| self.task_dir(id)));
        }
        TaskWatch::dirs_with(
            dirs.iter().map(PathBuf::as_path),
            WatchFlags::CREATE | WatchFlags::DELETE | WatchFlags::MOVED_TO,
        )
        .unwrap_or_else(|e| {
            tracing::debug!("cannot watch live tasks, polling instead: {e}");
            TaskWatch::poll()
        })
    }

    fn watch_output(&self, id: &TaskId) -> TaskWatch {
        // Logs are appended (MODIFY), records renamed into place (MOVED_TO). Reading a log or
        // opening the lock file raises neither, so a follower is never woken by its own looks.
        use rustix::fs::inotify::WatchFlags;
        TaskWatch::dirs_with(
            [self.task_dir(id).as_path()],
            WatchFlags::MODIFY | WatchFlags::MOVED_TO,
        )
        .unwrap_or_else(|e| {
            tracing::debug!("cannot watch the task's output, polling instead: {e}");
            TaskWatch::poll()
        })
    }

    fn resolve(&self, input: &str) -> Result<TaskId, StoreError> {
        let prefix = IdPrefix::parse(input)?;
        if prefix.as_str().len() == 32
            && let Ok(id) = prefix.as_str().parse::<TaskId>()
        {
            return if self.task_dir(&id).is_dir() {
                Ok(id)
            } else {
                Err(StoreError::NotFound {
                    id: input.to_owned(),
                })
            };
        }
        // Every prefix has at least 4 digits, so it names one shard.
        let shard = self.layout.shard(prefix.as_str());
        let ids = match dir_ids(&shard) {
            Ok(ids) => ids,
            Err(StoreError::Read { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                Vec::new()
            }
            Err(e) => return Err(e),
        };
        prefix.resolve(ids)
    }
}
