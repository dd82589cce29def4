//! The two files a task's runner and its Slurm job hand each other through the task dir (on the
//! shared filesystem): what to run, and how the run ended.

use std::io;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::supervisor::agent_loop::Continuation;
use crate::task::{Outcome, TaskRecord};

/// What the job runs: the record as the runner would run it (a follow-up's session decided, an
/// approval's resume taken), and what to say instead of the prompt on a later run.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct AttemptInput {
    pub record: TaskRecord,
    pub input: Option<Continuation>,
}

/// How the run in the job ended.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "end", rename_all = "snake_case")]
pub(crate) enum AttemptEnd {
    /// The task ended; its outcome is in the record.
    Ended,
    /// The agent stopped in a way the runner decides on (a usage limit to park on, a failure to
    /// retry, a tool use to approve): nothing final is recorded.
    Open {
        record: Box<TaskRecord>,
        outcome: Box<Outcome>,
    },
}

/// Writes `value` to `path` atomically (a reader on another node sees all of it or none).
pub(crate) fn write<T: Serialize>(path: &Path, value: &T) -> io::Result<()> {
    let bytes = serde_json::to_vec(value).map_err(io::Error::other)?;
    crate::store::write_atomic(path, &bytes)
}

/// Reads what [`write`] wrote; `Ok(None)` if nothing is there.
pub(crate) fn read<T: for<'de> Deserialize<'de>>(path: &Path) -> io::Result<Option<T>> {
    match crate::private_file::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}
