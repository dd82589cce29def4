//! Reading what a task wrote: its logs and its final result, in pages.

use crate::ccmp::Ccmp;
use crate::error::{Error, StoreError};
use crate::store::{LogChunk, LogRange, LogStream};

impl Ccmp {
    /// Reads part of a task's final result text, for results too long for one reply.
    pub fn result_page(&self, id: &str, range: LogRange) -> Result<LogChunk, Error> {
        let record = self.status(id)?;
        let text = record.outcome.and_then(|o| o.result).unwrap_or_default();
        let bytes = text.as_bytes();
        LogChunk::read(bytes.len() as u64, range, |offset, len| {
            Ok(bytes[offset as usize..offset as usize + len].to_vec())
        })
        .map_err(|e| Error::Store(StoreError::read("<result>", e)))
    }

    /// Reads part of a task's log.
    pub fn output(&self, id: &str, stream: LogStream, range: LogRange) -> Result<LogChunk, Error> {
        let id = self.resolve(id)?;
        Ok(self.store.read_log(&id, stream, range)?)
    }
}
