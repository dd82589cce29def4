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
    /// The agent's final answer, when it was too long to keep in the record.
    Result,
}

impl LogStream {
    /// Every log of a task.
    pub const ALL: [LogStream; 4] = [Self::Transcript, Self::Stdout, Self::Stderr, Self::Result];

    /// File name inside a task dir.
    pub fn file_name(self) -> &'static str {
        match self {
            Self::Transcript => "transcript.log",
            Self::Stdout => "stdout.jsonl",
            Self::Stderr => "stderr.log",
            Self::Result => "result.txt",
        }
    }

    /// Name as used in JSON and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Transcript => "transcript",
            Self::Stdout => "stdout",
            Self::Stderr => "stderr",
            Self::Result => "result",
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
///
/// Every limit counts bytes of text *as shown*: the page's size once escaped as a JSON string,
/// with each run of bytes that are not UTF-8 shown as one U+FFFD (3 bytes). A page therefore
/// fits a reply of known size whatever the log holds, while its offsets stay byte offsets into
/// the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogRange {
    /// From byte `offset`, as much as `limit` bytes of shown text hold.
    Bytes {
        /// Start, in bytes of the log.
        offset: u64,
        /// Most bytes of shown text (capped at [`MAX_LOG_READ`]).
        limit: usize,
    },
    /// The last `lines` lines (within the last [`MAX_LOG_READ`] bytes), cut at the front to
    /// `limit` bytes of shown text.
    Tail {
        /// Number of lines.
        lines: usize,
        /// Most bytes of shown text (capped at [`MAX_LOG_READ`]).
        limit: usize,
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

    /// The last `lines` lines, as much of them as one read returns.
    pub fn tail(lines: usize) -> Self {
        Self::Tail {
            lines,
            limit: MAX_LOG_READ,
        }
    }
}

/// A page of a log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogChunk {
    /// The text; each run of bytes that are not UTF-8 is shown as one U+FFFD.
    pub text: String,
    /// Byte offset in the log of the first byte returned.
    pub offset: u64,
    /// Byte offset to pass to read the next page: the page is exactly the log's bytes from
    /// `offset` to here, so pages read one after another add up to the whole log.
    pub next_offset: u64,
    /// The log's size in bytes at the time of reading.
    pub total_bytes: u64,
    /// Whether this page reaches the end of the log as it is now.
    pub at_end: bool,
    /// Whether some bytes of this page were not UTF-8 (and show as U+FFFD).
    #[serde(default)]
    pub replaced_invalid_utf8: bool,
}

/// One unit a page is cut at: a character, or a run of bytes that are not UTF-8.
struct Piece {
    /// Its bytes in the log.
    raw: usize,
    /// Its bytes as shown (JSON-escaped; U+FFFD for invalid bytes).
    shown: usize,
}

/// The pieces of `bytes`, in order.
fn pieces(bytes: &[u8]) -> impl Iterator<Item = Piece> + '_ {
    bytes.utf8_chunks().flat_map(|chunk| {
        let chars = chunk.valid().chars().map(|c| Piece {
            raw: c.len_utf8(),
            shown: shown_len(c),
        });
        let invalid = (!chunk.invalid().is_empty()).then(|| Piece {
            raw: chunk.invalid().len(),
            shown: char::REPLACEMENT_CHARACTER.len_utf8(),
        });
        chars.chain(invalid)
    })
}

/// A character's size inside a JSON string, as serde_json writes it.
fn shown_len(c: char) -> usize {
    match c {
        '"' | '\\' | '\n' | '\r' | '\t' | '\u{8}' | '\u{c}' => 2,
        c if (c as u32) < 0x20 => 6,
        c => c.len_utf8(),
    }
}

/// How many bytes at the end of `bytes` are the start of a UTF-8 sequence that the next
/// bytes of the log may complete (0 if none).
fn split_sequence_at_end(bytes: &[u8]) -> usize {
    (1..=3.min(bytes.len()))
        .find(|&n| {
            let tail = &bytes[bytes.len() - n..];
            matches!(std::str::from_utf8(tail), Err(e) if e.valid_up_to() == 0 && e.error_len().is_none())
        })
        .unwrap_or(0)
}

/// How many bytes from the start of `bytes` show in at most `max` bytes.
fn fitting_prefix(bytes: &[u8], max: usize) -> usize {
    let (mut raw, mut shown) = (0, 0);
    for piece in pieces(bytes) {
        if shown + piece.shown > max {
            break;
        }
        raw += piece.raw;
        shown += piece.shown;
    }
    raw
}

/// How many bytes at the end of `bytes` show in at most `max` bytes.
fn fitting_suffix(bytes: &[u8], max: usize) -> usize {
    // Pieces are only found forwards: drop them from the front until the rest fits.
    let mut shown: usize = pieces(bytes).map(|p| p.shown).sum();
    let mut raw = bytes.len();
    for piece in pieces(bytes) {
        if shown <= max {
            break;
        }
        raw -= piece.raw;
        shown -= piece.shown;
    }
    raw
}

impl LogChunk {
    /// Builds a page from `total` (the log size) and a reader of byte ranges.
    pub(crate) fn read(
        total: u64,
        range: LogRange,
        read_at: impl FnOnce(u64, usize) -> std::io::Result<Vec<u8>>,
    ) -> std::io::Result<Self> {
        // Shown text is never smaller than the bytes it shows, so `limit` bytes are enough.
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
        match range {
            LogRange::Tail { lines, limit } => {
                // Keep only the last `lines` lines; a trailing newline does not start a new line.
                let body = bytes.strip_suffix(b"\n").unwrap_or(&bytes);
                let cut = body
                    .iter()
                    .enumerate()
                    .rev()
                    .filter(|(_, b)| **b == b'\n')
                    .nth(lines.saturating_sub(1))
                    .map(|(i, _)| i + 1);
                let cut = match cut {
                    _ if lines == 0 => bytes.len(),
                    Some(cut) => cut,
                    None => 0,
                };
                let cut = bytes.len() - fitting_suffix(&bytes[cut..], limit.min(MAX_LOG_READ));
                start += cut as u64;
                bytes.drain(..cut);
            }
            LogRange::Bytes { limit, .. } => {
                // Do not split a UTF-8 sequence at the end of a page that is not the end of
                // the log: the next page shows it whole.
                if start + (bytes.len() as u64) < total {
                    let split = split_sequence_at_end(&bytes);
                    if split < bytes.len() {
                        bytes.truncate(bytes.len() - split);
                    }
                }
                bytes.truncate(fitting_prefix(&bytes, limit.min(MAX_LOG_READ)));
            }
        }
        let end = start + bytes.len() as u64;
        let text = String::from_utf8_lossy(&bytes);
        let replaced_invalid_utf8 = matches!(text, std::borrow::Cow::Owned(_));
        Ok(Self {
            text: text.into_owned(),
            offset: start,
            next_offset: end,
            total_bytes: total,
            at_end: end >= total,
            replaced_invalid_utf8,
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
        assert_eq!(chunk(data, LogRange::tail(2)).text, "two\nthree\n");
        assert_eq!(chunk(data, LogRange::tail(10)).text, "one\ntwo\nthree\n");
        assert_eq!(chunk(data, LogRange::tail(0)).text, "");
    }

    #[test]
    fn a_tail_cut_to_its_limit_keeps_whole_characters_at_the_end() {
        let c = chunk("aé\nbé\n".as_bytes(), LogRange::Tail { lines: 2, limit: 5 });
        // "\n" shows as two bytes in JSON, so "bé\n" (4 bytes) shows as 5.
        assert_eq!(c.text, "bé\n");
        assert_eq!((c.offset, c.next_offset), (4, 8));
        let whole = chunk(b"abc", LogRange::tail(1));
        assert_eq!((whole.text.as_str(), whole.offset), ("abc", 0));
    }

    /// Reads `data` page after page with `limit`, checking that each page fits and starts
    /// where the last ended; returns the bytes the pages covered.
    fn read_in_pages(data: &[u8], limit: usize) -> Vec<u8> {
        let mut offset = 0;
        let mut covered = Vec::new();
        loop {
            let c = chunk(data, LogRange::Bytes { offset, limit });
            assert_eq!(c.offset, offset);
            assert!(
                c.next_offset > c.offset || c.at_end,
                "no progress at {offset}"
            );
            let shown = serde_json::to_string(&c.text).unwrap().len() - 2;
            assert!(
                shown <= limit,
                "page at {offset} shows {shown} > {limit} bytes"
            );
            covered.extend_from_slice(&data[c.offset as usize..c.next_offset as usize]);
            if c.at_end {
                return covered;
            }
            offset = c.next_offset;
        }
    }

    #[test]
    fn pages_of_any_bytes_fit_their_limit_and_add_up_to_the_whole_log() {
        // Every byte value, invalid sequences, split characters, and JSON escapes.
        let mut data: Vec<u8> = (0..=255).collect();
        data.extend_from_slice("é€😀\"\\\u{1b}[0m".repeat(50).as_bytes());
        data.extend(std::iter::repeat_n([0xff, 0xe2, 0x82], 200).flatten());
        for limit in [6, 7, 64, 1000, 6000] {
            assert_eq!(read_in_pages(&data, limit), data, "limit {limit}");
        }
        let c = chunk(&data, LogRange::tail(3));
        assert!(c.replaced_invalid_utf8);
        assert!(!chunk(b"plain", LogRange::from_start()).replaced_invalid_utf8);
    }

    #[test]
    fn a_tail_of_invalid_bytes_fits_its_limit_and_says_where_it_starts() {
        let data = vec![0xff; 10_000];
        let c = chunk(
            &data,
            LogRange::Tail {
                lines: 1,
                limit: 6000,
            },
        );
        // Each invalid byte here is its own run, shown as 3 bytes.
        assert_eq!(c.text.len(), 6000);
        assert_eq!((c.offset, c.next_offset), (8000, 10_000));
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
