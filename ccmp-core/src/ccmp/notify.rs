//! Events and notifiers through the facade: read and follow the event log, add, list, remove
//! and try notifiers. (What events are and how they are delivered: [`crate::events`].)

use serde::Serialize;

use crate::ccmp::Ccmp;
use crate::error::Error;
use crate::events::{Event, EventKind, EventLog, EventTail, Notifier, NotifierState};
use crate::layout::StateLayout;
use crate::store::TaskWatch;

/// A notifier with how it has fared.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NotifierStatus {
    /// Its configuration.
    #[serde(flatten)]
    pub notifier: Notifier,
    /// Where it sends, in a line, with header values hidden.
    pub target: String,
    /// Its delivery state: counts and the last failure.
    pub state: NotifierState,
}

/// Follows the event log: each [`next`](EventFollow::next) waits for new events.
#[derive(Debug)]
pub struct EventFollow {
    tail: EventTail,
    watch: TaskWatch,
}

impl EventFollow {
    /// The next events, once there are any (at most `max` from now: then maybe none).
    pub async fn next(&mut self, max: std::time::Duration) -> Vec<Event> {
        let deadline = tokio::time::Instant::now() + max;
        loop {
            let events = self.tail.read();
            if !events.is_empty() {
                return events;
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return events;
            }
            self.watch.changed(left).await;
        }
    }

    /// The events appended since the last look, without waiting.
    pub fn read(&mut self) -> Vec<Event> {
        self.tail.read()
    }
}

impl Ccmp {
    fn events_layout(&self) -> Result<StateLayout, Error> {
        self.layout().ok_or_else(|| {
            Error::InvalidArgument("events need a file store: tasks in memory have none".into())
        })
    }

    /// The event log.
    pub fn event_log(&self) -> Result<EventLog, Error> {
        Ok(EventLog::new(&self.events_layout()?))
    }

    /// Events after number `after` (0: all that are kept), and from then on as they come.
    pub fn follow_events(&self, after: u64) -> Result<EventFollow, Error> {
        let layout = self.events_layout()?;
        let events_dir = layout.events();
        // Watch first, then read: nothing appended in between is missed.
        let watch = TaskWatch::dirs_with(
            [events_dir.as_path()],
            rustix::fs::inotify::WatchFlags::MODIFY | rustix::fs::inotify::WatchFlags::MOVED_TO,
        )
        .unwrap_or_else(|_| TaskWatch::poll());
        Ok(EventFollow {
            tail: EventLog::new(&layout).tail_after(after),
            watch,
        })
    }

    /// Events from now on only (the MCP server's view of what happened since its last reply).
    pub fn event_tail(&self) -> Result<EventTail, Error> {
        Ok(EventLog::new(&self.events_layout()?).tail_from_end())
    }

    /// Every notifier, with how it has fared.
    pub fn notifiers(&self) -> Result<Vec<NotifierStatus>, Error> {
        let layout = self.events_layout()?;
        Ok(self
            .max_parallel()?
            .notifiers
            .into_iter()
            .map(|notifier| NotifierStatus {
                target: notifier.target(),
                state: NotifierState::load(&layout, &notifier.name).unwrap_or_default(),
                notifier,
            })
            .collect())
    }

    /// Adds a notifier; it is given events from now on. Refused if its name is taken.
    pub fn add_notifier(&self, notifier: Notifier) -> Result<(), Error> {
        let layout = self.events_layout()?;
        notifier.validate()?;
        let name = notifier.name.clone();
        let mut taken = false;
        self.change_settings(|settings| {
            if settings.notifiers.iter().any(|n| n.name == name) {
                taken = true;
            } else {
                settings.notifiers.push(notifier);
            }
        })?;
        if taken {
            return Err(Error::InvalidArgument(format!(
                "there is a notifier named {name} already; remove it first with `ccmp notify remove {name}`"
            )));
        }
        // A state left by a removed notifier of the same name is not this one's.
        NotifierState::remove(&layout, &name);
        NotifierState::start_at_end(&layout, &name)?;
        Ok(())
    }

    /// Removes a notifier.
    pub fn remove_notifier(&self, name: &str) -> Result<(), Error> {
        let layout = self.events_layout()?;
        let mut found = false;
        let mut names = Vec::new();
        self.change_settings(|settings| {
            names = settings.notifiers.iter().map(|n| n.name.clone()).collect();
            let before = settings.notifiers.len();
            settings.notifiers.retain(|n| n.name != name);
            found = settings.notifiers.len() < before;
        })?;
        if !found {
            return Err(no_such_notifier(name, &names));
        }
        NotifierState::remove(&layout, name);
        Ok(())
    }

    /// Sends a test event to a notifier now and says whether it arrived.
    pub fn test_notifier(&self, name: &str) -> Result<Result<(), String>, Error> {
        let notifiers = self.max_parallel()?.notifiers;
        let Some(notifier) = notifiers.iter().find(|n| n.name == name) else {
            let names: Vec<String> = notifiers.iter().map(|n| n.name.clone()).collect();
            return Err(no_such_notifier(name, &names));
        };
        let event = Event::general(
            EventKind::Test,
            None,
            format!("a test of notifier {name} from ccmp"),
            "nothing: this was only a test".into(),
        );
        Ok(crate::events::deliver::send_now(notifier, &event))
    }
}

fn no_such_notifier(name: &str, names: &[String]) -> Error {
    Error::InvalidArgument(if names.is_empty() {
        format!(
            "there is no notifier named {}; there are none (add one with `ccmp notify add`)",
            crate::error::escape(name)
        )
    } else {
        format!(
            "there is no notifier named {}; there are: {}",
            crate::error::escape(name),
            names.join(", ")
        )
    })
}
