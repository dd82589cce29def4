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

struct Reaper {
    children: Mutex<Vec<Child>>,
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
        children.retain_mut(|child| matches!(child.try_wait(), Ok(None)));
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
    let reaper = reaper();
    reaper
        .children
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(child);
    reaper.wake.notify_one();
}
