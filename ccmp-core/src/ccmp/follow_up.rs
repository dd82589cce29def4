//! Following up on a finished task: a new task that resumes its session.

use crate::ccmp::Ccmp;
use crate::error::Error;
use crate::id::TaskId;
use crate::spec::TaskRequest;
use crate::task::TaskRecord;

impl Ccmp {
    /// Starts a new task that resumes a finished task's session with `prompt`, in the same
    /// working dir and with the same settings. The new record names the task it follows.
    pub fn follow_up(&self, id: &TaskId, prompt: impl Into<String>) -> Result<TaskRecord, Error> {
        let original = self.status(id)?;
        if !original.status.is_terminal() {
            return Err(Error::FollowUpActive {
                id: original.id.short(),
                status: original.status,
            });
        }
        let Some(session) = original.session_id.clone() else {
            return Err(Error::NoSession {
                id: original.id.short(),
            });
        };
        let request = TaskRequest {
            prompt: prompt.into(),
            resume_session: Some(session),
            ..original.spec.to_request()
        };
        self.start_following(request, Some(&original))
    }
}
