//! Notifiers: where events are sent (a command, or an HTTP webhook), which ones, and how each
//! has fared. Configured in the settings; their delivery state is kept beside the event log.

use std::path::Path;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, StoreError, escape};
use crate::events::event::{Event, EventKind};
use crate::layout::StateLayout;
use crate::private_file;

/// The name of the built-in notifier behind `ccmp start --notify`.
pub const ONE_OFF: &str = "one-off";

/// How long a command notifier may run, unless it says.
pub const DEFAULT_COMMAND_TIMEOUT_SECS: f64 = 30.0;
/// How long one webhook request may take, unless it says.
pub const DEFAULT_WEBHOOK_TIMEOUT_SECS: f64 = 10.0;
/// The most a notifier may be given.
pub const MAX_TIMEOUT_SECS: f64 = 600.0;

/// One notifier, as stored in the settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notifier {
    /// Its name: letters, digits, `-` and `_`.
    pub name: String,
    /// Where events go.
    pub kind: NotifierKind,
    /// Only events of these kinds; none means every kind.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<EventKind>,
    /// Only events of tasks in these groups; none means every group.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// How long a delivery may take (each try, for a webhook), in seconds.
    pub timeout_secs: f64,
}

/// Where a notifier sends events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotifierKind {
    /// A program, run without a shell, with the event as JSON on stdin and in `CCMP_*`
    /// variables.
    Command {
        /// The program and its arguments.
        argv: Vec<String>,
    },
    /// An HTTP(S) POST of the event's JSON, or of a body made from a template.
    Webhook {
        /// Where to.
        url: String,
        /// Extra headers, as `Name: value` (a token, a title for ntfy).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        headers: Vec<String>,
        /// The body, with `{{field}}` replaced by the event's fields (JSON-escaped when the
        /// template is a JSON object or array). None: the event's JSON.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        template: Option<String>,
    },
}

impl Notifier {
    /// Whether this notifier wants `event`.
    pub fn wants(&self, event: &Event) -> bool {
        (self.events.is_empty() || self.events.contains(&event.kind))
            && (self.groups.is_empty()
                || event
                    .group
                    .as_ref()
                    .is_some_and(|g| self.groups.contains(g)))
    }

    /// Where it sends, in a line, with header values hidden (they often hold tokens).
    pub fn target(&self) -> String {
        match &self.kind {
            NotifierKind::Command { argv } => argv.join(" "),
            NotifierKind::Webhook { url, headers, .. } => {
                let mut line = format!("POST {url}");
                for header in headers {
                    let name = header.split(':').next().unwrap_or_default().trim();
                    line.push_str(&format!(" [{name}: …]"));
                }
                line
            }
        }
    }

    /// Checks a notifier before it is stored: a clear error for each thing that is wrong.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |what: String| Err(Error::InvalidArgument(what));
        if self.name.is_empty()
            || self.name.len() > 40
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return bad(format!(
                "notifier name `{}` must be 1-40 letters, digits, '-' or '_'",
                escape(&self.name)
            ));
        }
        if self.name == ONE_OFF {
            return bad(format!(
                "`{ONE_OFF}` is the name of the notifier behind `start --notify`; pick another"
            ));
        }
        if !(self.timeout_secs > 0.0 && self.timeout_secs <= MAX_TIMEOUT_SECS) {
            return bad(format!(
                "the timeout must be more than 0 and at most {MAX_TIMEOUT_SECS} seconds"
            ));
        }
        match &self.kind {
            NotifierKind::Command { argv } => {
                if argv.first().is_none_or(|p| p.trim().is_empty()) {
                    return bad("a command notifier needs a program to run".into());
                }
                if argv.iter().any(|a| a.contains('\0')) {
                    return bad("a command's arguments cannot contain NUL bytes".into());
                }
            }
            NotifierKind::Webhook {
                url,
                headers,
                template,
            } => {
                if !(url.starts_with("http://") || url.starts_with("https://"))
                    || url.chars().any(char::is_whitespace)
                {
                    return bad(format!(
                        "webhook URL `{}` must start with http:// or https:// and have no spaces",
                        escape(url)
                    ));
                }
                for header in headers {
                    let valid = header.split_once(':').is_some_and(|(name, value)| {
                        !name.trim().is_empty()
                            && name
                                .trim()
                                .chars()
                                .all(|c| c.is_ascii_alphanumeric() || c == '-')
                            && !value.chars().any(|c| c == '\r' || c == '\n')
                    });
                    if !valid {
                        return bad(format!(
                            "header `{}` must be `Name: value` (a name of letters, digits and '-')",
                            escape(header)
                        ));
                    }
                }
                if let Some(template) = template {
                    crate::events::send::check_template(template)?;
                }
            }
        }
        Ok(())
    }
}

/// How a notifier has fared: its place in the event log and its last failure.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NotifierState {
    /// The number of the last event it was given (or passed over).
    pub cursor: u64,
    /// Events delivered.
    #[serde(default)]
    pub delivered: u64,
    /// Events whose delivery failed.
    #[serde(default)]
    pub failed: u64,
    /// The last failure, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// When it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error_at: Option<DateTime<Utc>>,
    /// When the last event was delivered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_delivered_at: Option<DateTime<Utc>>,
}

impl NotifierState {
    /// The state of notifier `name`; `None` if it has none yet.
    pub fn load(layout: &StateLayout, name: &str) -> Option<Self> {
        let bytes = private_file::read(&layout.notifier_state(name)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Replaces it, atomically.
    pub fn save(&self, layout: &StateLayout, name: &str) -> Result<(), StoreError> {
        let path = layout.notifier_state(name);
        let bytes = serde_json::to_vec(self).map_err(StoreError::Serialize)?;
        crate::store::write_atomic(&path, &bytes).map_err(|e| StoreError::write(path, e))
    }

    /// Makes the state of a new notifier (or the one-off one) start at the log's end, so it is
    /// given events from now on, not the log's history. Leaves an existing state alone.
    pub fn start_at_end(layout: &StateLayout, name: &str) -> Result<(), StoreError> {
        if layout.notifier_state(name).exists() {
            return Ok(());
        }
        Self {
            cursor: crate::events::EventLog::new(layout).last_seq(),
            ..Self::default()
        }
        .save(layout, name)
    }

    /// Forgets a removed notifier.
    pub fn remove(layout: &StateLayout, name: &str) {
        let _ = std::fs::remove_file(layout.notifier_state(name));
        let _ = std::fs::remove_file(layout.notifier_lock(name));
    }
}

/// Appends a line to the deliveries log (failures, with why), keeping it bounded.
pub(crate) fn log_delivery(layout: &StateLayout, line: &str) {
    let path = layout.deliveries_log();
    rotate_if_big(&path);
    if let Ok(mut file) = private_file::open_append(&path) {
        use std::io::Write;
        let _ = writeln!(file, "{} {line}", Utc::now().to_rfc3339());
    }
}

fn rotate_if_big(path: &Path) {
    if std::fs::metadata(path).is_ok_and(|m| m.len() > crate::events::MAX_LOG_BYTES) {
        let _ = std::fs::rename(path, path.with_extension("log.1"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn command(name: &str, argv: &[&str]) -> Notifier {
        Notifier {
            name: name.into(),
            kind: NotifierKind::Command {
                argv: argv.iter().map(|s| (*s).to_owned()).collect(),
            },
            events: Vec::new(),
            groups: Vec::new(),
            timeout_secs: DEFAULT_COMMAND_TIMEOUT_SECS,
        }
    }

    #[test]
    fn filters_by_kind_and_group() {
        let mut notifier = command("n", &["true"]);
        let mut event = Event::general(
            EventKind::Succeeded,
            Some("review".into()),
            "s".into(),
            "n".into(),
        );
        assert!(notifier.wants(&event));
        notifier.events = vec![EventKind::Failed];
        assert!(!notifier.wants(&event));
        event.kind = EventKind::Failed;
        assert!(notifier.wants(&event));
        notifier.groups = vec!["default".into()];
        assert!(!notifier.wants(&event));
    }

    #[test]
    fn bad_notifiers_are_refused_with_what_to_fix() {
        let cases = [
            (command("a b", &["true"]), "must be 1-40 letters"),
            (command(ONE_OFF, &["true"]), "start --notify"),
            (command("n", &[]), "needs a program"),
            (
                Notifier {
                    kind: NotifierKind::Webhook {
                        url: "ftp://x".into(),
                        headers: vec![],
                        template: None,
                    },
                    ..command("n", &["true"])
                },
                "must start with http://",
            ),
            (
                Notifier {
                    kind: NotifierKind::Webhook {
                        url: "http://x".into(),
                        headers: vec!["Bad Header".into()],
                        template: None,
                    },
                    ..command("n", &["true"])
                },
                "must be `Name: value`",
            ),
            (
                Notifier {
                    timeout_secs: 0.0,
                    ..command("n", &["true"])
                },
                "timeout",
            ),
        ];
        for (notifier, expected) in cases {
            let error = notifier.validate().unwrap_err().to_string();
            assert!(error.contains(expected), "{error}");
        }
    }

    #[test]
    fn header_values_are_hidden_in_the_target() {
        let notifier = Notifier {
            kind: NotifierKind::Webhook {
                url: "https://ntfy.sh/t".into(),
                headers: vec!["Authorization: Bearer tk_secret".into()],
                template: None,
            },
            ..command("n", &["true"])
        };
        let target = notifier.target();
        assert!(!target.contains("tk_secret"), "{target}");
        assert!(target.contains("Authorization"), "{target}");
    }
}
