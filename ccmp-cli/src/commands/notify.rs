//! `ccmp notify`: add, list, remove and try the notifiers that events are sent to.

use std::process::ExitCode;

use ccmp_core::Ccmp;
use ccmp_core::events::notifier::{DEFAULT_COMMAND_TIMEOUT_SECS, DEFAULT_WEBHOOK_TIMEOUT_SECS};
use ccmp_core::events::{EventKind, Notifier, NotifierKind};
use clap::{Args, Subcommand};

use super::common::{parse_seconds, print_json};
use crate::exit_codes::UsageError;

/// Send events to a command or a webhook: when a task succeeds, fails, needs approval, parks or
/// resumes, a group drains, or a budget is spent.
///
/// Delivery never delays a task: the process that sees an event starts a small deliverer and
/// goes on. Each event reaches each notifier at most once, even with many frontends running,
/// and events of tasks that end while no frontend runs are delivered by their runners.
#[derive(Debug, Args)]
pub struct NotifyArgs {
    #[command(subcommand)]
    pub command: NotifyCommand,
}

#[derive(Debug, Subcommand)]
pub enum NotifyCommand {
    /// Add a notifier: a command after `--`, or --webhook URL.
    ///
    /// A command runs without a shell, with the event as JSON on stdin and in CCMP_EVENT,
    /// CCMP_TASK_ID, CCMP_SHORT_ID, CCMP_STATUS, CCMP_SUMMARY, CCMP_NEXT, … A webhook gets the
    /// event's JSON in a POST, or the --template with {{field}} filled in.
    #[command(
        after_help = "Examples:\n  ccmp notify add desktop --event succeeded --event failed -- notify-send ccmp\n  ccmp notify add phone --webhook https://ntfy.sh/my-topic --template '{{summary}}' --header 'Title: ccmp'"
    )]
    Add(AddArgs),
    /// List the notifiers, with what each has delivered and its last failure.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove a notifier.
    Remove {
        /// Its name.
        name: String,
    },
    /// Send a test event to a notifier now, and say whether it arrived.
    Test {
        /// Its name.
        name: String,
    },
}

#[derive(Debug, Args)]
pub struct AddArgs {
    /// Its name: letters, digits, '-' and '_'.
    pub name: String,
    /// POST events to this http:// or https:// URL.
    #[arg(long, value_name = "URL")]
    pub webhook: Option<String>,
    /// A header for the webhook, as 'Name: value' (a token, a title); repeat for more.
    #[arg(long, value_name = "HEADER", requires = "webhook")]
    pub header: Vec<String>,
    /// The webhook's body, with {{summary}}, {{kind}}, {{short_id}}, {{status}}, {{text}},
    /// {{next}}, … filled in (JSON-escaped when the template is a JSON object); default: the
    /// event's JSON.
    #[arg(long, value_name = "TEXT", requires = "webhook")]
    pub template: Option<String>,
    /// Only events of this kind: succeeded, failed, needs_approval, parked, resumed,
    /// group_drained or budget_spent; repeat for more (default: every kind).
    #[arg(long = "event", value_name = "KIND")]
    pub events: Vec<String>,
    /// Only events of tasks in this group; repeat for more (default: every group).
    #[arg(short, long = "group", value_name = "NAME")]
    pub groups: Vec<String>,
    /// How long a delivery may take: seconds or a duration like 1m (default: 30s for a
    /// command, 10s per try for a webhook).
    #[arg(long, value_name = "DURATION")]
    pub timeout: Option<String>,
    /// The command to run and its arguments, after `--`.
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

pub fn run(ccmp: &Ccmp, args: NotifyArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        NotifyCommand::Add(add) => {
            let name = add.name.clone();
            let notifier = notifier_of(ccmp, add)?;
            let target = notifier.target();
            ccmp.add_notifier(notifier)?;
            err!(
                "notifier {name} added: events go to {target}; try it with `ccmp notify test {name}`"
            );
        }
        NotifyCommand::Remove { name } => {
            ccmp.remove_notifier(&name)?;
            err!("notifier {name} removed");
        }
        NotifyCommand::Test { name } => match ccmp.test_notifier(&name)? {
            Ok(()) => err!("notifier {name}: the test event was delivered"),
            Err(why) => {
                err!("notifier {name}: the test event was not delivered: {why}");
                return Ok(ExitCode::FAILURE);
            }
        },
        NotifyCommand::List { json } => {
            let notifiers = ccmp.notifiers()?;
            if json {
                print_json(&notifiers)?;
                return Ok(ExitCode::SUCCESS);
            }
            if notifiers.is_empty() {
                err!(
                    "no notifiers; add one with `ccmp notify add NAME -- COMMAND …` or `--webhook URL`"
                );
                return Ok(ExitCode::SUCCESS);
            }
            for n in notifiers {
                let events = if n.notifier.events.is_empty() {
                    "every event".to_owned()
                } else {
                    n.notifier
                        .events
                        .iter()
                        .map(|k| k.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                let groups = if n.notifier.groups.is_empty() {
                    String::new()
                } else {
                    format!(" in group {}", n.notifier.groups.join(", "))
                };
                out!("{}  {}", n.notifier.name, n.target);
                out!(
                    "    {events}{groups}; delivered {}, failed {}",
                    n.state.delivered,
                    n.state.failed
                );
                if let (Some(error), Some(at)) = (&n.state.last_error, n.state.last_error_at) {
                    out!("    last failure {} ago: {error}", crate::render::age(at));
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn notifier_of(ccmp: &Ccmp, add: AddArgs) -> anyhow::Result<Notifier> {
    let kind = match (add.webhook, add.command.is_empty()) {
        (Some(_), false) => {
            return Err(UsageError(
                "give either --webhook URL or a command after `--`, not both".into(),
            )
            .into());
        }
        (None, true) => {
            return Err(UsageError(
                "give a command after `--` (`ccmp notify add NAME -- notify-send ccmp`) or --webhook URL".into(),
            )
            .into());
        }
        (Some(url), true) => NotifierKind::Webhook {
            url,
            headers: add.header,
            template: add.template,
        },
        (None, false) => NotifierKind::Command { argv: add.command },
    };
    let events = add
        .events
        .iter()
        .map(|e| e.parse::<EventKind>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| UsageError(format!("--event: {e}")))?;
    for group in &add.groups {
        let name: ccmp_core::GroupName = group.parse()?;
        ccmp.check_group(&name)?;
    }
    let default_timeout = match kind {
        NotifierKind::Command { .. } => DEFAULT_COMMAND_TIMEOUT_SECS,
        NotifierKind::Webhook { .. } => DEFAULT_WEBHOOK_TIMEOUT_SECS,
    };
    Ok(Notifier {
        name: add.name,
        kind,
        events,
        groups: add.groups,
        timeout_secs: add
            .timeout
            .as_deref()
            .map(parse_seconds)
            .transpose()?
            .unwrap_or(default_timeout),
    })
}
