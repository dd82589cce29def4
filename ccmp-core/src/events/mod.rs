//! Events and notifications: what happened to tasks, told to people and programs.
//!
//! A change of a task's state that someone may want to hear of (it ended, needs approval,
//! parked on a usage limit, resumed), a group whose tasks have all ended, and a budget spent
//! are [`Event`]s. The process that records the change appends the event to the state dir's
//! event log ([`EventLog`]) as it saves the record, whichever process that is (a runner, or
//! a frontend that finds a runner gone), so no event depends on a frontend running. Then, if
//! a notifier wants it, that process starts a deliverer (`__ccmp-deliver`, a hidden subcommand
//! like the runner) and goes on: delivery never delays a task or its outcome. A deliverer holds
//! each notifier's lock while it sends, and moves the notifier's cursor past an event before
//! sending it, so each event reaches each notifier at most once however many run at once.

pub mod deliver;
pub(crate) mod emit;
mod event;
mod log;
pub mod notifier;
mod send;

pub use self::event::{Event, EventKind};
pub use self::log::{EventLog, EventTail, MAX_LOG_BYTES};
pub use self::notifier::{Notifier, NotifierKind, NotifierState};
pub use self::send::{DESKTOP_ENV, controlling_terminal};
