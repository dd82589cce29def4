//! Following up on a task: a new task that resumes its session.
//!
//! Turns of one session never run at once: a follow-up of a task whose session has a queued or
//! running task (the task itself, or an earlier follow-up) runs after the newest of them and
//! resumes the session as that one left it. So every turn is in the history, in the order it
//! was asked, however many follow-ups arrive at once and from however many frontends.

use crate::ccmp::{Ccmp, ListQuery};
use crate::error::Error;
use crate::id::TaskId;
use crate::private_file;
use crate::spec::TaskRequest;
use crate::task::TaskRecord;

impl Ccmp {
    /// Starts a new task that resumes a task's session with `prompt`, in the same working dir
    /// and with the same settings. If a task of that session is queued or running, the new one
    /// runs after the newest of them (its `after` names it, and its `follows`); otherwise it
    /// follows `id` and starts now.
    pub fn follow_up(&self, id: &TaskId, prompt: impl Into<String>) -> Result<TaskRecord, Error> {
        // Held from the look for the newest turn until the new one is stored: a second
        // follow-up at the same moment then finds this one.
        let _in_process = self.follow_ups.lock().unwrap_or_else(|e| e.into_inner());
        let _across_processes = match self.layout() {
            Some(layout) => {
                let path = layout.follow_up_lock();
                let lock = private_file::open_lock(&path)
                    .map_err(|e| crate::error::StoreError::write(&path, e))?;
                lock.lock()
                    .map_err(|e| crate::error::StoreError::write(&path, e))?;
                Some(lock)
            }
            None => None,
        };
        let original = self.status(id)?;
        // A task that never reported a session has none to resume, unless it is still live
        // (then its session is taken when it ends).
        let session = original.session_id.clone();
        let newest = self.newest_live_turn(&original, session.as_deref())?;
        if newest.is_none() && session.is_none() {
            return Err(Error::NoSession {
                id: original.id.short(),
            });
        }
        let request = TaskRequest {
            prompt: prompt.into(),
            resume_session: session,
            after: newest.iter().map(|t| t.id).collect(),
            ..original.spec.to_request()
        };
        self.start_following(request, Some(newest.as_ref().unwrap_or(&original)))
    }

    /// The newest queued or running task of `original`'s session: `original` itself, a task
    /// that resumes the session, or one that follows such a task.
    fn newest_live_turn(
        &self,
        original: &TaskRecord,
        session: Option<&str>,
    ) -> Result<Option<TaskRecord>, Error> {
        let mut live = self
            .list(&ListQuery {
                limit: usize::MAX,
                ..ListQuery::active()
            })?
            .tasks;
        live.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        let mut turns = vec![original.id];
        let mut newest = (!original.status.is_terminal()).then(|| original.clone());
        for task in live {
            let in_session = session.is_some_and(|s| {
                task.session_id.as_deref() == Some(s)
                    || task.spec.resume_session.as_deref() == Some(s)
            });
            let follows_a_turn = task.follows.is_some_and(|f| turns.contains(&f));
            if task.id != original.id && (in_session || follows_a_turn) {
                turns.push(task.id);
                newest = Some(task);
            }
        }
        Ok(newest)
    }
}
