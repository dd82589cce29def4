//! The event log: `<state>/events/events.jsonl`, one JSON object per line, numbered.
//!
//! Every process that sees an event appends it under `events.lock`, in one `write` to a file
//! opened with `O_APPEND`, so lines never interleave and a reader sees whole lines or nothing
//! new (a line cut short by a crash is skipped). The number (`seq`) is one more than the last
//! line's, read back from the file's tail under the same lock. When the file passes
//! [`MAX_LOG_BYTES`] it is renamed to `events.1.jsonl` (replacing the one before), so the log
//! never takes more than twice that. It is not fsynced: an event is a notice, and the task's
//! record, which is, stays the truth.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use crate::events::event::Event;
use crate::layout::StateLayout;
use crate::private_file;

/// When the log passes this size it is rotated.
pub const MAX_LOG_BYTES: u64 = 1024 * 1024;
/// How much of a file's end is read to find its last event.
const TAIL_WINDOW: u64 = 64 * 1024;

/// The event log of one state dir.
#[derive(Debug, Clone)]
pub struct EventLog {
    current: PathBuf,
    rotated: PathBuf,
    lock: PathBuf,
}

impl EventLog {
    /// The log under `layout`.
    pub fn new(layout: &StateLayout) -> Self {
        Self {
            current: layout.events_log(),
            rotated: layout.events_rotated(),
            lock: layout.events_lock(),
        }
    }

    /// Appends `events` in order, numbering them; returns them as appended.
    pub fn append(&self, mut events: Vec<Event>) -> io::Result<Vec<Event>> {
        if events.is_empty() {
            return Ok(events);
        }
        let lock = private_file::open_lock(&self.lock)?;
        lock.lock()?;
        let mut seq = self.last_seq();
        let mut text = String::new();
        if !ends_with_newline(&self.current) {
            // A line cut short by a crash: start afresh on the next line.
            text.push('\n');
        }
        for event in &mut events {
            seq += 1;
            event.seq = seq;
            let line = serde_json::to_string(&event).map_err(io::Error::other)?;
            text.push_str(&line);
            text.push('\n');
        }
        let size = std::fs::metadata(&self.current).map_or(0, |m| m.len());
        if size > 0 && size + text.len() as u64 > MAX_LOG_BYTES {
            std::fs::rename(&self.current, &self.rotated)?;
            text = text.trim_start_matches('\n').to_owned();
        }
        let mut file = private_file::open_append(&self.current)?;
        file.write_all(text.as_bytes())?;
        drop(lock);
        Ok(events)
    }

    /// The number of the last event, 0 when there is none.
    pub fn last_seq(&self) -> u64 {
        last_event(&self.current)
            .or_else(|| last_event(&self.rotated))
            .map_or(0, |e| e.seq)
    }

    /// Every event after number `after`, oldest first.
    pub fn after(&self, after: u64) -> Vec<Event> {
        let mut events = read_events(&self.rotated);
        events.extend(read_events(&self.current));
        events.retain(|e| e.seq > after);
        events
    }

    /// A reader that returns, each time it is asked, the events appended since it last was:
    /// from the first event after `after` on.
    pub fn tail_after(&self, after: u64) -> EventTail {
        let backlog = self.after(after);
        let mut tail = self.tail_from_end();
        // Events appended between the two reads are read twice; numbers weed them out.
        tail.last_seq = after;
        tail.backlog = backlog;
        tail
    }

    /// A reader that returns only events appended from now on.
    pub fn tail_from_end(&self) -> EventTail {
        let (inode, offset) = match std::fs::metadata(&self.current) {
            Ok(meta) => (Some(meta.ino()), meta.len()),
            Err(_) => (None, 0),
        };
        EventTail {
            log: self.clone(),
            inode,
            offset,
            last_seq: self.last_seq(),
            backlog: Vec::new(),
        }
    }
}

/// Reads a log as it grows, across rotations (see [`EventLog::tail_after`]).
#[derive(Debug)]
pub struct EventTail {
    log: EventLog,
    /// The file being read, by inode: a new inode at the log's path means it was rotated.
    inode: Option<u64>,
    /// How far into it whole lines were read.
    offset: u64,
    /// The number of the last event returned.
    last_seq: u64,
    /// Events read when the tail was made, not yet returned.
    backlog: Vec<Event>,
}

impl EventTail {
    /// The events appended since the last call (or the backlog, first).
    pub fn read(&mut self) -> Vec<Event> {
        let mut events = std::mem::take(&mut self.backlog);
        let current = std::fs::metadata(&self.log.current).ok();
        let inode = current.as_ref().map(MetadataExt::ino);
        if inode != self.inode {
            // Rotated (or made): finish the file read so far, now the rotated one.
            if let Some(old) = self.inode
                && std::fs::metadata(&self.log.rotated).is_ok_and(|m| m.ino() == old)
            {
                events.extend(read_from(&self.log.rotated, &mut self.offset));
            }
            self.inode = inode;
            self.offset = 0;
        }
        if inode.is_some() {
            events.extend(read_from(&self.log.current, &mut self.offset));
        }
        events.retain(|e| e.seq > self.last_seq);
        if let Some(last) = events.last() {
            self.last_seq = last.seq;
        }
        events
    }

    /// The number of the last event read.
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }
}

/// The whole events of a file from `offset`, moving `offset` past the last whole line.
fn read_from(path: &std::path::Path, offset: &mut u64) -> Vec<Event> {
    let Ok(mut file) = private_file::open_read(path) else {
        return Vec::new();
    };
    if file.seek(SeekFrom::Start(*offset)).is_err() {
        return Vec::new();
    }
    let mut bytes = Vec::new();
    if file.read_to_end(&mut bytes).is_err() {
        return Vec::new();
    }
    let whole = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    *offset += whole as u64;
    parse_lines(&bytes[..whole])
}

fn read_events(path: &std::path::Path) -> Vec<Event> {
    let mut offset = 0;
    read_from(path, &mut offset)
}

fn parse_lines(bytes: &[u8]) -> Vec<Event> {
    bytes
        .split(|b| *b == b'\n')
        .filter(|line| !line.is_empty())
        .filter_map(|line| serde_json::from_slice(line).ok())
        .collect()
}

/// The last whole event of a file.
fn last_event(path: &std::path::Path) -> Option<Event> {
    let mut file: File = private_file::open_read(path).ok()?;
    let len = file.metadata().ok()?.len();
    let start = len.saturating_sub(TAIL_WINDOW);
    file.seek(SeekFrom::Start(start)).ok()?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).ok()?;
    bytes
        .split(|b| *b == b'\n')
        .rev()
        .find_map(|line| serde_json::from_slice::<Event>(line).ok())
}

fn ends_with_newline(path: &std::path::Path) -> bool {
    let Ok(mut file) = private_file::open_read(path) else {
        return true;
    };
    let Ok(len) = file.metadata().map(|m| m.len()) else {
        return true;
    };
    if len == 0 {
        return true;
    }
    let mut last = [0u8];
    file.seek(SeekFrom::Start(len - 1)).is_ok()
        && file.read_exact(&mut last).is_ok()
        && last[0] == b'\n'
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::event::EventKind;

    fn event(summary: &str) -> Event {
        Event::general(EventKind::Test, None, summary.into(), "nothing".into())
    }

    fn log() -> (tempfile::TempDir, EventLog) {
        let dir = tempfile::tempdir().unwrap();
        let layout = StateLayout::new(dir.path());
        std::fs::create_dir(layout.events()).unwrap();
        let log = EventLog::new(&layout);
        (dir, log)
    }

    #[test]
    fn events_are_numbered_in_order_and_read_back_after_a_number() {
        let (_dir, log) = log();
        assert_eq!(log.last_seq(), 0);
        let appended = log.append(vec![event("a"), event("b")]).unwrap();
        assert_eq!(appended.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2]);
        log.append(vec![event("c")]).unwrap();
        assert_eq!(log.last_seq(), 3);
        let after = log.after(1);
        assert_eq!(
            after.iter().map(|e| e.summary.as_str()).collect::<Vec<_>>(),
            ["b", "c"]
        );
    }

    #[test]
    fn a_line_cut_short_is_skipped_and_the_next_event_starts_on_its_own_line() {
        let (_dir, log) = log();
        log.append(vec![event("a")]).unwrap();
        let mut file = private_file::open_append(&log.current).unwrap();
        file.write_all(b"{\"seq\":2,\"at\":\"2026").unwrap();
        let appended = log.append(vec![event("b")]).unwrap();
        assert_eq!(appended[0].seq, 2);
        let all = log.after(0);
        assert_eq!(
            all.iter().map(|e| e.summary.as_str()).collect::<Vec<_>>(),
            ["a", "b"]
        );
    }

    #[test]
    fn the_log_rotates_past_its_size_and_a_tail_reads_across_the_rotation() {
        let (_dir, log) = log();
        let mut tail = log.tail_after(0);
        let big = "x".repeat(10_000);
        let mut seen = Vec::new();
        for _ in 0..250 {
            log.append(vec![event(&big)]).unwrap();
            seen.extend(tail.read().into_iter().map(|e| e.seq));
        }
        assert!(log.rotated.exists(), "rotated past 1 MiB");
        let total = std::fs::metadata(&log.current).unwrap().len()
            + std::fs::metadata(&log.rotated).unwrap().len();
        assert!(total <= 2 * MAX_LOG_BYTES, "bounded: {total}");
        assert_eq!(seen, (1..=250).collect::<Vec<_>>());
        assert_eq!(log.last_seq(), 250);
        // A tail that falls behind a rotation still reads every event it can.
        let mut slow = log.tail_from_end();
        for _ in 0..120 {
            log.append(vec![event(&big)]).unwrap();
        }
        let read = slow.read();
        assert_eq!(read.first().map(|e| e.seq), Some(251));
        assert_eq!(read.last().map(|e| e.seq), Some(370));
    }
}
