//! The deliverer: the `__ccmp-deliver` process that hands pending events to notifiers.
//!
//! Started (detached, and not waited for) by whichever process appended events a notifier
//! wants. It takes each notifier's lock without waiting: if another deliverer holds it, that
//! one will see the new events. Under the lock it moves the notifier's cursor past an event
//! *before* sending it, so a crash loses a delivery rather than repeating it (at most once).
//! After letting go of the lock it looks at the log once more, so an event appended while it
//! held the lock (whose own deliverer found the lock taken) is never stranded. Notifiers are
//! served by threads of their own: a slow one delays only itself.

use std::ffi::OsString;
use std::fs::TryLockError;
use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::Utc;

use crate::events::event::{Event, EventKind};
use crate::events::log::EventLog;
use crate::events::notifier::{
    DEFAULT_COMMAND_TIMEOUT_SECS, Notifier, NotifierKind, NotifierState, ONE_OFF, log_delivery,
};
use crate::id::TaskId;
use crate::layout::StateLayout;
use crate::private_file;
use crate::settings::Settings;

/// The hidden subcommand that delivers events.
pub const DELIVER_CMD: &str = "__ccmp-deliver";

/// Set once this executable is known to dispatch ccmp's hidden subcommands (its `main` called
/// [`hidden_entry_point`](crate::hidden_entry_point)), so it can be started as a deliverer.
static DISPATCHES_HIDDEN: AtomicBool = AtomicBool::new(false);

/// Records that this executable dispatches the hidden subcommands.
pub(crate) fn arm() {
    DISPATCHES_HIDDEN.store(true, Ordering::Relaxed);
}

/// Body of `__ccmp-deliver <state-dir>`.
pub fn deliver_main(mut args: impl Iterator<Item = OsString>) -> ExitCode {
    let Some(state) = args.next() else {
        eprintln!("usage: {DELIVER_CMD} <state-dir>");
        return ExitCode::from(2);
    };
    deliver_pending(&StateLayout::new(PathBuf::from(state)));
    ExitCode::SUCCESS
}

/// Stops this process from starting deliverers: it runs inside a Slurm job, where a deliverer
/// would run on the job's node, away from the starting session (a desktop notification needs
/// it), and die with the job where Slurm tracks jobs by cgroup. The task's runner starts one
/// once the job has ended (see [`kick_for`]).
pub(crate) fn disarm() {
    DISPATCHES_HIDDEN.store(false, Ordering::Relaxed);
}

/// Starts a deliverer for what `record`'s run appended elsewhere (in a Slurm job), if any
/// notifier could want it.
pub(crate) fn kick_for(layout: &StateLayout, record: &crate::task::TaskRecord) {
    let any = record.spec.notify.is_some()
        || Settings::load(&layout.settings())
            .ok()
            .flatten()
            .is_some_and(|s| !s.notifiers.is_empty());
    if any {
        kick(layout);
    }
}

/// Whether any notifier wants one of `events`.
pub(crate) fn wanted(layout: &StateLayout, events: &[Event]) -> bool {
    events.iter().any(|e| e.notify && e.kind.ends_task())
        || Settings::load(&layout.settings())
            .ok()
            .flatten()
            .is_some_and(|s| {
                s.notifiers
                    .iter()
                    .any(|n| events.iter().any(|e| n.wants(e)))
            })
}

/// Starts a deliverer for the state dir, detached, if this executable can be one; otherwise
/// the events wait for the next deliverer (a runner's, which can always start one).
pub(crate) fn kick(layout: &StateLayout) {
    if !DISPATCHES_HIDDEN.load(Ordering::Relaxed) {
        return;
    }
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let log = private_file::open_append(&layout.deliveries_log());
    let mut command = Command::new(exe);
    use std::os::unix::process::CommandExt;
    command
        .arg(DELIVER_CMD)
        .arg(layout.root())
        .env_remove(crate::agent::TASK_ENV)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        // Its own group: a Ctrl-C meant for the frontend that started it does not stop it.
        .process_group(0);
    match log {
        Ok(log) => command.stderr(log),
        Err(_) => command.stderr(Stdio::null()),
    };
    match command.spawn() {
        Ok(child) => crate::supervisor::adopt_child(child),
        Err(e) => log_delivery(layout, &format!("could not start a deliverer: {e}")),
    }
}

/// Delivers every pending event to every notifier (the one-off one too), each in a thread.
pub fn deliver_pending(layout: &StateLayout) {
    let mut notifiers: Vec<Notifier> = Settings::load(&layout.settings())
        .ok()
        .flatten()
        .map(|s| s.notifiers)
        .unwrap_or_default();
    notifiers.push(one_off());
    std::thread::scope(|scope| {
        for notifier in &notifiers {
            scope.spawn(|| serve(layout, notifier));
        }
    });
}

/// The notifier behind `ccmp start --notify`: it wants the end of tasks that asked for it.
fn one_off() -> Notifier {
    Notifier {
        name: ONE_OFF.into(),
        kind: NotifierKind::Command { argv: Vec::new() },
        events: vec![EventKind::Succeeded, EventKind::Failed],
        groups: Vec::new(),
        timeout_secs: DEFAULT_COMMAND_TIMEOUT_SECS,
    }
}

/// Serves one notifier until no event is pending for it, unless another deliverer already is.
fn serve(layout: &StateLayout, notifier: &Notifier) {
    let log = EventLog::new(layout);
    loop {
        let Ok(lock) = private_file::open_lock(&layout.notifier_lock(&notifier.name)) else {
            return;
        };
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => return,
            Err(TryLockError::Error(_)) => return,
        }
        let Some(mut state) = NotifierState::load(layout, &notifier.name) else {
            // A notifier without a state (its file removed by hand) starts from now on.
            let _ = NotifierState::start_at_end(layout, &notifier.name);
            return;
        };
        loop {
            let pending = log.after(state.cursor);
            if pending.is_empty() {
                break;
            }
            for event in pending {
                state.cursor = event.seq;
                let wanted = notifier.wants(&event) && (notifier.name != ONE_OFF || event.notify);
                if !wanted {
                    continue;
                }
                // Moved past before sending: at most once, even if this process dies now.
                if state.save(layout, &notifier.name).is_err() {
                    return;
                }
                let sent = if notifier.name == ONE_OFF {
                    super::send::desktop(&event, one_off_of(layout, &event).as_ref())
                } else {
                    super::send::send(notifier, &event)
                };
                match sent {
                    Ok(()) => {
                        state.delivered += 1;
                        state.last_delivered_at = Some(Utc::now());
                    }
                    Err(why) => {
                        log_delivery(
                            layout,
                            &format!(
                                "notifier {}: event {} ({} {}) not delivered: {why}",
                                notifier.name,
                                event.seq,
                                event.kind,
                                event.short_id.as_deref().unwrap_or("-")
                            ),
                        );
                        state.failed += 1;
                        state.last_error = Some(why);
                        state.last_error_at = Some(Utc::now());
                    }
                }
            }
            if state.save(layout, &notifier.name).is_err() {
                return;
            }
        }
        drop(lock);
        // An event appended while the lock was held may have found it taken: look again.
        if log.last_seq() <= state.cursor {
            return;
        }
    }
}

/// How to reach the person who started the task of `event`, as its record says.
fn one_off_of(layout: &StateLayout, event: &Event) -> Option<crate::spec::NotifyWhenDone> {
    let id: TaskId = event.task_id.as_deref()?.parse().ok()?;
    let bytes = private_file::read(&layout.record(&id)).ok()?;
    let record: crate::task::TaskRecord = serde_json::from_slice(&bytes).ok()?;
    record.spec.notify
}

/// Sends `event` to `notifier` now, in this process: `ccmp notify test`.
pub fn send_now(notifier: &Notifier, event: &Event) -> Result<(), String> {
    super::send::send(notifier, event)
}
