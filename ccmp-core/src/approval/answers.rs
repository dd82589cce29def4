//! A task's approvals on disk: which tool use is pending, the answers given, and what is allowed
//! for the rest of the task. Read and written by the hook (inside the agent) and by whoever
//! answers, always under `approvals.lock`, so that two answers at once give one decision.

use std::collections::BTreeMap;
use std::fs::File;

use serde::{Deserialize, Serialize};

use crate::id::TaskId;
use crate::layout::StateLayout;
use crate::private_file;

/// An answer to one tool use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// Whether it may run.
    pub allow: bool,
    /// Why not, for the agent (a denial's reason reaches the model as the tool's error).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// What `<task>/approvals.json` holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Answers {
    /// The tool use deferred and not answered yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<String>,
    /// Answers, by tool use id.
    #[serde(default)]
    pub decisions: BTreeMap<String, Decision>,
    /// Rules allowed for the rest of the task (`approve --always`).
    #[serde(default)]
    pub always: Vec<String>,
}

/// The answers of a task, locked while held.
pub(crate) struct Locked {
    pub answers: Answers,
    layout: StateLayout,
    id: TaskId,
    _lock: File,
}

impl Locked {
    /// Takes the task's approvals lock and reads its answers.
    pub fn open(layout: &StateLayout, id: &TaskId) -> std::io::Result<Self> {
        let lock = private_file::open_lock(&layout.task_dir(id).join("approvals.lock"))?;
        lock.lock()?;
        let answers = private_file::read(&layout.task_dir(id).join("approvals.json"))
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default();
        Ok(Self {
            answers,
            layout: layout.clone(),
            id: *id,
            _lock: lock,
        })
    }

    /// Writes the answers back, atomically.
    pub fn save(&self) -> std::io::Result<()> {
        let bytes = serde_json::to_vec_pretty(&self.answers).map_err(std::io::Error::other)?;
        crate::store::write_atomic(
            &self.layout.task_dir(&self.id).join("approvals.json"),
            &bytes,
        )
    }
}
