//! [`InProcessSupervisor`]: tasks run on the host's tokio runtime and live as long as the host
//! process. For embedding, usually with a [`MemoryStore`](crate::MemoryStore).
//!
//! `max_parallel` is a semaphore shared by the tasks of this supervisor. Tasks join a line when
//! they are launched (not when tokio first polls them, which is in no particular order), and only
//! the head of the line waits for a permit, so tasks start first in, first out.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use tokio::runtime::Handle;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use super::Supervisor;
use super::agent_loop::{self, RunContext};
use super::dependencies::{self, Dependencies, DependencyWatch, Wake};
use crate::config::Config;
use crate::error::SupervisorError;
use crate::id::TaskId;
use crate::process_identity::ProcessIdentity;
use crate::store::TaskStore;
use crate::task::{Outcome, TaskRecord, TaskStatus};

/// Runs tasks as tokio tasks of the current process.
#[derive(Debug, Clone)]
pub struct InProcessSupervisor {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    ctx: RunContext,
    runtime: Handle,
    slots: Arc<Semaphore>,
    line: Mutex<VecDeque<TaskId>>,
    line_moved: Notify,
    tokens: Mutex<HashMap<TaskId, CancellationToken>>,
}

impl InProcessSupervisor {
    /// A supervisor that runs tasks of `store` on the current tokio runtime.
    pub fn new(store: Arc<dyn TaskStore>, config: &Config) -> Result<Self, SupervisorError> {
        let runtime = Handle::try_current().map_err(|_| SupervisorError::NoRuntime)?;
        Ok(Self {
            inner: Arc::new(Inner {
                ctx: RunContext {
                    store,
                    grace: config.grace,
                    trampoline: None,
                    launcher: None,
                    reap_orphans: false,
                    state_dir: None,
                    outside_stop: None,
                },
                runtime,
                slots: Arc::new(Semaphore::new(config.max_parallel)),
                line: Mutex::new(VecDeque::new()),
                line_moved: Notify::new(),
                tokens: Mutex::new(HashMap::new()),
            }),
        })
    }
}

impl Inner {
    fn tokens(&self) -> std::sync::MutexGuard<'_, HashMap<TaskId, CancellationToken>> {
        self.tokens.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn line(&self) -> std::sync::MutexGuard<'_, VecDeque<TaskId>> {
        self.line.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn leave_line(&self, id: &TaskId) {
        self.line().retain(|queued| queued != id);
        self.line_moved.notify_waiters();
    }

    /// Waits until `id` is first in line and a slot is free. `None` if cancelled first.
    async fn wait_turn(
        &self,
        id: &TaskId,
        cancel: &CancellationToken,
    ) -> Option<OwnedSemaphorePermit> {
        loop {
            let moved = self.line_moved.notified();
            tokio::pin!(moved);
            moved.as_mut().enable();
            if self.line().front() == Some(id) {
                let permit = tokio::select! {
                    permit = self.slots.clone().acquire_owned() => permit.ok(),
                    () = cancel.cancelled() => None,
                };
                self.leave_line(id);
                return permit;
            }
            tokio::select! {
                () = moved => {}
                () = cancel.cancelled() => {
                    self.leave_line(id);
                    return None;
                }
            }
        }
    }
}

impl Supervisor for InProcessSupervisor {
    fn launch(&self, record: &TaskRecord) -> Result<(), SupervisorError> {
        let mut record = record.clone();
        record.runner = ProcessIdentity::current().ok();
        self.inner.ctx.store.save(&record)?;
        let token = CancellationToken::new();
        self.inner.tokens().insert(record.id, token.clone());
        // A task with dependencies joins the line once they are met, so that it holds back
        // nobody while it waits for them.
        if record.spec.after.is_empty() {
            self.inner.line().push_back(record.id);
        }
        let inner = self.inner.clone();
        self.inner.runtime.spawn(async move {
            let id = record.id;
            let store = inner.ctx.store.clone();
            let record = if record.spec.after.is_empty() {
                record
            } else {
                let watch = InProcessDependencyWatch(InProcessSupervisor {
                    inner: inner.clone(),
                });
                let waited = dependencies::wait_for(store.as_ref(), &record, &token, &watch).await;
                let ready = match waited {
                    Dependencies::Met => {
                        let record = store.load(&id).unwrap_or(record);
                        dependencies::resume_after_followed(store.as_ref(), record.clone())
                            .map_err(|error| (record, TaskStatus::Failed, error))
                    }
                    Dependencies::Unmet(reason) => Err((record, TaskStatus::Skipped, reason)),
                    Dependencies::Cancelled => Err((
                        record,
                        TaskStatus::Cancelled,
                        "cancelled on request while waiting for its dependencies".to_owned(),
                    )),
                };
                match ready {
                    Ok(record) => {
                        inner.line().push_back(id);
                        record
                    }
                    Err((record, status, error)) => {
                        agent_loop::finish_early(store.as_ref(), record, status, error).await;
                        inner.tokens().remove(&id);
                        return;
                    }
                }
            };
            match inner.wait_turn(&id, &token).await {
                Some(_permit) => {
                    agent_loop::run_agent(&inner.ctx, record, &token, || {
                        "cancelled on request".to_owned()
                    })
                    .await;
                }
                None => {
                    let error = "cancelled on request while queued".to_owned();
                    agent_loop::finish_early(store.as_ref(), record, TaskStatus::Cancelled, error)
                        .await;
                }
            }
            inner.tokens().remove(&id);
        });
        Ok(())
    }

    fn cancel(&self, record: &TaskRecord) -> Result<(), SupervisorError> {
        if let Some(token) = self.inner.tokens().get(&record.id) {
            token.cancel();
        }
        Ok(())
    }

    fn refresh(&self, mut record: TaskRecord) -> Result<TaskRecord, SupervisorError> {
        if record.status.is_terminal() || self.inner.tokens().contains_key(&record.id) {
            return Ok(record);
        }
        // Not ours: it belongs to another process, or to an earlier life of this one.
        if record
            .runner
            .as_ref()
            .is_some_and(ProcessIdentity::is_alive)
        {
            return Ok(record);
        }
        // Look once more: the task may have finished between the read and the token check.
        record = self.inner.ctx.store.load(&record.id)?;
        if record.status.is_terminal() {
            return Ok(record);
        }
        record.finish(
            TaskStatus::Lost,
            Outcome::failure("the process that ran it exited before the task finished"),
        );
        self.inner.ctx.store.save(&record)?;
        Ok(record)
    }
}

/// An in-process task waits for a dependency by watching the store (and looking once a second,
/// for a dependency whose process died).
struct InProcessDependencyWatch(InProcessSupervisor);

impl DependencyWatch for InProcessDependencyWatch {
    fn refresh(&self, record: TaskRecord) -> TaskRecord {
        self.0.refresh(record.clone()).unwrap_or(record)
    }

    fn until_moved(&self, id: &TaskId) -> Wake {
        let mut watch = self.0.inner.ctx.store.watch(std::slice::from_ref(id));
        Box::pin(async move { watch.changed(std::time::Duration::from_secs(1)).await })
    }
}
