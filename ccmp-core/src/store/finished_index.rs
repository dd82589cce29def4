//! The index of finished tasks: one empty file per finished task in `<state>/finished/`, named
//! `<created-at-ns>-<id>.<state>.<group>`, so that listing every task sorts and counts names
//! instead of opening and parsing every record, and loads whole records only for the page shown.
//!
//! It is kept like the active markers: the store adds a task's entry when it saves the task's
//! terminal record, before it takes the active marker away, so a finished task is always in one
//! of the two. It is only a cache of what the records say: a listing compares it with the task
//! dirs on disk (a directory read of each shard, no record opened), removes entries of tasks
//! that are gone, and reads the header of any task in neither place, adding its entry if it has
//! finished. So a crash between two steps, a store written by an older ccmp, or a cleanup that
//! was cut short all heal on the next listing, and counts stay exact.

use std::fs;
use std::io;
#[cfg(test)]
use std::path::Path;
use std::path::PathBuf;

use chrono::{DateTime, Utc};

use crate::group::GroupName;
use crate::id::TaskId;
use crate::private_file;
use crate::task::{TaskHeader, TaskRecord, TaskStatus};

/// The index in one state dir.
#[derive(Debug, Clone)]
pub(crate) struct FinishedIndex {
    dir: PathBuf,
}

/// One entry: its file name and what the name says.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub name: String,
    pub header: TaskHeader,
}

impl FinishedIndex {
    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    /// The entry name of `record` as if it were in `status`.
    fn name(record: &TaskRecord, status: TaskStatus) -> String {
        let nanos = record
            .created_at
            .timestamp_nanos_opt()
            .unwrap_or_default()
            .max(0);
        format!(
            "{nanos:020}-{}.{}.{}",
            record.id.simple(),
            status.as_str(),
            record.spec.group
        )
    }

    /// Adds the entry of a finished task (nothing if it is there already). `before`, a different
    /// terminal state the record was in, has its entry removed.
    pub fn add(&self, record: &TaskRecord, before: Option<TaskStatus>) -> io::Result<()> {
        let path = self.dir.join(Self::name(record, record.status));
        if !path.exists() {
            private_file::touch(&path)?;
        }
        if let Some(before) = before.filter(|b| b.is_terminal() && *b != record.status) {
            let _ = fs::remove_file(self.dir.join(Self::name(record, before)));
        }
        Ok(())
    }

    /// Removes the entry of `record` (a task being removed), if there is one.
    pub fn remove(&self, record: &TaskRecord) {
        if record.status.is_terminal() {
            self.remove_name(&Self::name(record, record.status));
        }
    }

    /// Removes one entry by name.
    pub fn remove_name(&self, name: &str) {
        let _ = fs::remove_file(self.dir.join(name));
    }

    /// Every entry (names that do not parse are left out).
    pub fn entries(&self) -> io::Result<Vec<Entry>> {
        let mut entries = Vec::new();
        for entry in fs::read_dir(&self.dir)? {
            let entry = entry?;
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            if let Some(header) = parse(&name) {
                entries.push(Entry { name, header });
            }
        }
        Ok(entries)
    }

    /// The directory, for tests.
    #[cfg(test)]
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// Reads an entry's name: `<created-at-ns>-<id>.<state>.<group>`.
fn parse(name: &str) -> Option<TaskHeader> {
    let (nanos, rest) = name.split_once('-')?;
    let (id, rest) = rest.split_once('.')?;
    let (status, group) = rest.split_once('.')?;
    let status: TaskStatus = status.parse().ok()?;
    if !status.is_terminal() {
        return None;
    }
    Some(TaskHeader {
        id: id.parse::<TaskId>().ok()?,
        status,
        created_at: DateTime::<Utc>::from_timestamp_nanos(nanos.parse().ok()?),
        group: Some(group.parse::<GroupName>().ok()?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_what_a_listing_needs_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let index = FinishedIndex::new(dir.path().to_owned());
        let mut request = crate::spec::TaskRequest::new("x").working_dir(dir.path());
        request.group = Some("nightly".into());
        let spec = request.validate(&"true".into()).unwrap();
        let mut record = TaskRecord::new(spec);
        record.finish(TaskStatus::Failed, crate::task::Outcome::failure("no"));
        index.add(&record, Some(TaskStatus::Running)).unwrap();
        let entries = index.entries().unwrap();
        assert_eq!(entries.len(), 1);
        let header = &entries[0].header;
        assert_eq!(header.id, record.id);
        assert_eq!(header.status, TaskStatus::Failed);
        assert_eq!(header.created_at, record.created_at);
        assert_eq!(header.group.as_ref().unwrap().as_str(), "nightly");
        // A terminal state that changes moves the entry; it is never in two.
        record.status = TaskStatus::Lost;
        index.add(&record, Some(TaskStatus::Failed)).unwrap();
        let names: Vec<String> = index
            .entries()
            .unwrap()
            .into_iter()
            .map(|e| e.name)
            .collect();
        assert_eq!(names.len(), 1);
        assert!(names[0].contains(".lost.nightly"), "{names:?}");
        index.remove(&record);
        assert!(index.entries().unwrap().is_empty());
        assert!(index.dir().is_dir());
        // Names that are not entries are not read as tasks.
        for junk in [
            ".tmp-x",
            "12-nothex.failed.default",
            "1-0123.running.default",
        ] {
            assert!(parse(junk).is_none(), "{junk}");
        }
    }
}
