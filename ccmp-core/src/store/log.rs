//! Task logs: which streams exist and how they are read in bounded pages.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The most bytes one log read returns (1 MiB).
pub const MAX_LOG_READ: usize = 1024 * 1024;

/// One of a task's logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum LogStream {
    /// A readable account of the run: one line per turn, tool use and result.
    #[default]
    Transcript,
    /// The agent's raw stdout (`stream-json` lines, kept byte for byte).
    Stdout,
    /// The agent's raw stderr.
    Stderr,
}

impl LogStream {
    /// Every log of a task.
    pub const ALL: [LogStream; 3] = [Self::Transcript, Self::Stdout, Self::Stderr];

    /// File name inside a task dir.
    pub fn file_name(self) -> &'static str {
        match self {
            Self::Transcript => "transcript.log",
            Self::Stdout => "stdout.jsonl",
            Self::Stderr => "stderr.log",
        }
    }

    /// Name as used in JSON and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Transcript => "transcript",
            Self::Stdout => "stdout",
            Self::Stderr => "stderr",
        }
    }
}

impl fmt::Display for LogStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for LogStream {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        crate::error::parse_name(s, &Self::ALL, Self::as_str, "log")
    }
}

/// Which part of a log to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogRange {
    /// Up to `limit` bytes from byte `offset`.
    Bytes {
        /// Start, in bytes.
        offset: u64,
        /// Most bytes to return (capped at [`MAX_LOG_READ`]).
        limit: usize,
    },
    /// The last `lines` lines (within the last [`MAX_LOG_READ`] bytes).
    Tail {
        /// Number of lines.
        lines: usize,
    },
}

impl LogRange {
    /// From the first byte, as much as one read returns.
    pub fn from_start() -> Self {
        Self::Bytes {
            offset: 0,
            limit: MAX_LOG_READ,
        }
    }
}

/// A page of a log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogChunk {
    /// The text (invalid UTF-8 shown as U+FFFD).
    pub text: String,
    /// Byte offset of the first byte returned.
    pub offset: u64,
    /// Byte offset to pass to read the next page.
    pub next_offset: u64,
    /// The log's size in bytes at the time of reading.
    pub total_bytes: u64,
    /// Whether this page reaches the end of the log as it is now.
    pub at_end: bool,
}

impl LogChunk {
    /// Keeps at most the last `max` bytes of the page (at a character boundary), moving its
    /// offset to match: a tail of many lines cut to fit a reply keeps its end.
    pub fn keep_end(mut self, max: usize) -> Self {
        if self.text.len() > max {
            let mut cut = self.text.len() - max;
            while !self.text.is_char_boundary(cut) {
                cut += 1;
            }
            self.offset += cut as u64;
            self.text.drain(..cut);
        }
        self
    }

    /// Builds a page from `total` (the log size) and a reader of byte ranges.
    pub(crate) fn read(
        total: u64,
        range: LogRange,
        read_at: impl FnOnce(u64, usize) -> std::io::Result<Vec<u8>>,
    ) -> std::io::Result<Self> {
        let (start, len) = match range {
            LogRange::Bytes { offset, limit } => {
                let start = offset.min(total);
                (
                    start,
                    (limit.min(MAX_LOG_READ) as u64).min(total - start) as usize,
                )
            }
            LogRange::Tail { .. } => {
                let len = (MAX_LOG_READ as u64).min(total);
                (total - len, len as usize)
            }
        };
        let mut bytes = read_at(start, len)?;
        let mut start = start;
        if let LogRange::Tail { lines } = range {
            // Keep only the last `lines` lines; a trailing newline does not start a new line.
            let body = bytes.strip_suffix(b"\n").unwrap_or(&bytes);
            let cut = body
                .iter()
                .enumerate()
                .rev()
                .filter(|(_, b)| **b == b'\n')
                .nth(lines.saturating_sub(1))
                .map(|(i, _)| i + 1);
            if lines == 0 {
                start += bytes.len() as u64;
                bytes.clear();
            } else if let Some(cut) = cut {
                start += cut as u64;
                bytes.drain(..cut);
            }
        }
        // Do not split a UTF-8 sequence at the end of a page that is not the end of the log.
        let mut end = start + bytes.len() as u64;
        if end < total
            && let Err(e) = std::str::from_utf8(&bytes)
            && e.error_len().is_none()
            && e.valid_up_to() > 0
        {
            bytes.truncate(e.valid_up_to());
            end = start + bytes.len() as u64;
        }
        Ok(Self {
            text: String::from_utf8_lossy(&bytes).into_owned(),
            offset: start,
            next_offset: end,
            total_bytes: total,
            at_end: end >= total,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(data: &[u8], range: LogRange) -> LogChunk {
        LogChunk::read(data.len() as u64, range, |off, len| {
            Ok(data[off as usize..off as usize + len].to_vec())
        })
        .unwrap()
    }

    #[test]
    fn pages_and_tails() {
        let data = b"one\ntwo\nthree\n";
        let c = chunk(
            data,
            LogRange::Bytes {
                offset: 4,
                limit: 3,
            },
        );
        assert_eq!(
            (c.text.as_str(), c.next_offset, c.at_end),
            ("two", 7, false)
        );
        let c = chunk(
            data,
            LogRange::Bytes {
                offset: 100,
                limit: 3,
            },
        );
        assert_eq!((c.text.as_str(), c.at_end), ("", true));
        assert_eq!(
            chunk(data, LogRange::Tail { lines: 2 }).text,
            "two\nthree\n"
        );
        assert_eq!(
            chunk(data, LogRange::Tail { lines: 10 }).text,
            "one\ntwo\nthree\n"
        );
        assert_eq!(chunk(data, LogRange::Tail { lines: 0 }).text, "");
    }

    #[test]
    fn keep_end_keeps_whole_characters_at_the_end() {
        let c = chunk("aé\nbé\n".as_bytes(), LogRange::Tail { lines: 2 }).keep_end(4);
        assert_eq!(c.text, "bé\n");
        assert_eq!(c.offset, 4);
        assert_eq!(c.next_offset, 8);
        let whole = chunk(b"abc", LogRange::Tail { lines: 1 }).keep_end(10);
        assert_eq!((whole.text.as_str(), whole.offset), ("abc", 0));
    }

    #[test]
    fn never_splits_utf8_mid_page_and_shows_bad_bytes() {
        let data = "aé".as_bytes();
        let c = chunk(
            data,
            LogRange::Bytes {
                offset: 0,
                limit: 2,
            },
        );
        assert_eq!((c.text.as_str(), c.next_offset), ("a", 1));
        let c = chunk(
            b"a\xffb",
            LogRange::Bytes {
                offset: 0,
                limit: 10,
            },
        );
        assert_eq!(c.text, "a\u{fffd}b");
    }
}
