//! Collecting exited runner processes for a long-lived frontend.
//!
//! A runner is the frontend's child until one of them exits. If the runner exits first, it stays
//! a zombie until the frontend reaps it. One background thread holds the handles of live runners
//! and reaps them as they exit; it sleeps when there are none. (A frontend that exits first, like
//! the CLI, leaves its runners to be reparented and reaped by init.)

use std::process::Child;
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::Duration;

/// How often exited runners are collected.
const EVERY: Duration = Duration::from_millis(250);

/// What to do once a watched child has exited (it is called on the reaper's thread).
type OnExit = Box<dyn FnOnce(std::process::ExitStatus) + Send>;

struct Reaper {
    children: Mutex<Vec<(Child, Option<OnExit>)>>,
    wake: Condvar,
}

fn reaper() -> &'static Reaper {
    static REAPER: OnceLock<Reaper> = OnceLock::new();
    REAPER.get_or_init(|| {
        let spawned = std::thread::Builder::new().name("ccmp-reaper".into()).spawn(run);
        if let Err(e) = spawned {
            tracing::warn!("cannot start the runner reaper; exited runners stay zombies until this process exits: {e}");
        }
        Reaper {
            children: Mutex::new(Vec::new()),
            wake: Condvar::new(),
        }
    })
}

fn run() {
    let reaper = reaper();
    let mut children = reaper.children.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let mut exited = Vec::new();
        children.retain_mut(|(child, on_exit)| match child.try_wait() {
            Ok(None) => true,
            Ok(Some(status)) => {
                if let Some(on_exit) = on_exit.take() {
                    exited.push((on_exit, status));
                }
                false
            }
            Err(_) => false,
        });
        if !exited.is_empty() {
            // Not under the lock: judging an exit reads and writes the store.
            drop(children);
            for (on_exit, status) in exited {
                on_exit(status);
            }
            children = reaper.children.lock().unwrap_or_else(|e| e.into_inner());
            continue;
        }
        let wait = if children.is_empty() {
            Duration::from_secs(3600)
        } else {
            EVERY
        };
        children = reaper
            .wake
            .wait_timeout(children, wait)
            .unwrap_or_else(|e| e.into_inner())
            .0;
    }
}

/// Hands a live runner to the reaper.
pub(crate) fn adopt(child: Child) {
    push(child, None);
}

/// Hands a live runner to the reaper, which calls `on_exit` with its status once it exits.
pub(crate) fn adopt_watched(
    child: Child,
    on_exit: impl FnOnce(std::process::ExitStatus) + Send + 'static,
) {
    push(child, Some(Box::new(on_exit)));
}

fn push(child: Child, on_exit: Option<OnExit>) {
    let reaper = reaper();
    reaper
        .children
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push((child, on_exit));
    reaper.wake.notify_one();
}
