//! Reading what a task wrote: its logs and its final result, in pages, and following them live.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::ccmp::Ccmp;
use crate::error::{Error, StoreError};
use crate::id::TaskId;
use crate::store::{LogChunk, LogRange, LogStream, MAX_LOG_READ, TaskWatch};

/// The longest a follower goes without looking, even when told of no change (a runner that
/// dies writes nothing more and tells no one).
const LOOK_AGAIN: Duration = Duration::from_secs(1);

/// What of a task's output to read: one of its logs, or its final result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum OutputSource {
    /// A readable account of the run: one line per turn, tool use and result.
    #[default]
    Transcript,
    /// The agent's final answer (empty until the task has ended).
    Result,
    /// The agent's raw stdout, byte for byte.
    Stdout,
    /// The agent's raw stderr.
    Stderr,
}

impl OutputSource {
    /// Every source, in the order help texts list them.
    pub const ALL: [OutputSource; 4] = [Self::Transcript, Self::Result, Self::Stdout, Self::Stderr];

    /// The name frontends use.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Transcript => "transcript",
            Self::Result => "result",
            Self::Stdout => "stdout",
            Self::Stderr => "stderr",
        }
    }

    /// The log this source is, if it is a log.
    pub fn log(self) -> Option<LogStream> {
        match self {
            Self::Transcript => Some(LogStream::Transcript),
            Self::Stdout => Some(LogStream::Stdout),
            Self::Stderr => Some(LogStream::Stderr),
            Self::Result => None,
        }
    }
}

impl fmt::Display for OutputSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for OutputSource {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        crate::error::parse_name(s, &Self::ALL, Self::as_str, "output")
    }
}

impl Ccmp {
    /// Reads part of a task's output.
    pub fn output(
        &self,
        id: &TaskId,
        source: OutputSource,
        range: LogRange,
    ) -> Result<LogChunk, Error> {
        match source.log() {
            Some(stream) => Ok(self.store.read_log(id, stream, range)?),
            None => {
                let record = self.status(id)?;
                if record
                    .outcome
                    .as_ref()
                    .is_some_and(|o| o.result_bytes.is_some())
                {
                    // Too long for the record: the whole result is in its own file.
                    return Ok(self.store.read_log(id, LogStream::Result, range)?);
                }
                let text = record.outcome.and_then(|o| o.result).unwrap_or_default();
                let bytes = text.as_bytes();
                LogChunk::read(bytes.len() as u64, range, |offset, len| {
                    Ok(bytes[offset as usize..offset as usize + len].to_vec())
                })
                .map_err(|e| Error::Store(StoreError::read("<result>", e)))
            }
        }
    }

    /// Follows a task's output from `start`: each piece as soon as it is written, ending once
    /// the task has ended and everything it wrote was returned.
    pub fn follow(&self, id: &TaskId, source: OutputSource, start: LogRange) -> OutputFollow {
        OutputFollow {
            ccmp: self.clone(),
            id: *id,
            source,
            // Subscribe before the first read, so that nothing written in between is missed.
            watch: self.store.watch_output(id),
            range: start,
            live: true,
            done: false,
        }
    }
}

/// A task's output as it is written. Made by [`Ccmp::follow`].
#[derive(Debug)]
pub struct OutputFollow {
    ccmp: Ccmp,
    id: TaskId,
    source: OutputSource,
    watch: TaskWatch,
    range: LogRange,
    live: bool,
    done: bool,
}

impl OutputFollow {
    /// Stops at the end of what is written now instead of waiting for the task to write more.
    pub fn up_to_now(mut self) -> Self {
        self.live = false;
        self
    }

    /// The next piece of output, as soon as there is one; `None` at the end.
    pub async fn next(&mut self) -> Option<Result<LogChunk, Error>> {
        loop {
            if self.done {
                return None;
            }
            let chunk = match self.read() {
                Ok(chunk) => chunk,
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            };
            if !chunk.text.is_empty() {
                return Some(Ok(chunk));
            }
            if !self.live {
                self.done = true;
                return None;
            }
            match self.ccmp.status(&self.id) {
                Ok(record) if record.status.is_terminal() => {
                    // The record is written after the last output: one more read takes the rest.
                    self.done = true;
                    return match self.read() {
                        Ok(rest) if !rest.text.is_empty() => Some(Ok(rest)),
                        Ok(_) => None,
                        Err(e) => Some(Err(e)),
                    };
                }
                Ok(_) => self.watch.changed(LOOK_AGAIN).await,
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
    }

    fn read(&mut self) -> Result<LogChunk, Error> {
        let chunk = self.ccmp.output(&self.id, self.source, self.range)?;
        self.range = LogRange::Bytes {
            offset: chunk.next_offset,
            limit: MAX_LOG_READ,
        };
        Ok(chunk)
    }
}
