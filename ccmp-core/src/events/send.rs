//! Sending one event to one notifier: run a command, POST a webhook, or (for `--notify`) show a
//! desktop notification. Each is bounded by the notifier's timeout; none uses a shell.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::Error;
use crate::events::event::Event;
use crate::events::notifier::{Notifier, NotifierKind};
use crate::spec::NotifyWhenDone;

/// How many times a webhook is tried.
const WEBHOOK_TRIES: u32 = 3;
/// The wait before the second try; it doubles after.
const WEBHOOK_BACKOFF: Duration = Duration::from_millis(500);
/// How much of a command's output is kept to say why it failed.
const OUTPUT_HEAD: usize = 300;

/// Sends `event` to `notifier`; the error says why it did not arrive.
pub(crate) fn send(notifier: &Notifier, event: &Event) -> Result<(), String> {
    let timeout = Duration::from_secs_f64(notifier.timeout_secs);
    match &notifier.kind {
        NotifierKind::Command { argv } => run_command(argv, event, timeout),
        NotifierKind::Webhook {
            url,
            headers,
            template,
        } => post(url, headers, template.as_deref(), event, timeout),
    }
}

/// Runs `argv` with the event on stdin and in the environment, in a process group of its own
/// that is killed whole if it outlives `timeout`.
fn run_command(argv: &[String], event: &Event, timeout: Duration) -> Result<(), String> {
    use std::os::unix::process::CommandExt;
    let (program, args) = argv.split_first().ok_or("no program")?;
    let json = serde_json::to_string(event).map_err(|e| e.to_string())?;
    let output = tempfile::tempfile().map_err(|e| format!("no temp file for its output: {e}"))?;
    let mut child = Command::new(program)
        .args(args)
        .envs(event.env())
        .env("CCMP_EVENT_JSON", &json)
        .env_remove(crate::agent::TASK_ENV)
        .stdin(Stdio::piped())
        .stdout(output.try_clone().map_err(|e| e.to_string())?)
        .stderr(output.try_clone().map_err(|e| e.to_string())?)
        .process_group(0)
        .spawn()
        .map_err(|e| format!("could not run `{program}`: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        // One line of JSON. A command that does not read its stdin is fine: a broken pipe is
        // not a failure.
        let _ = stdin.write_all(format!("{json}\n").as_bytes());
    }
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Ok(None) => {
                let pgid = rustix::process::Pid::from_raw(child.id() as i32);
                if let Some(pgid) = pgid {
                    let _ =
                        rustix::process::kill_process_group(pgid, rustix::process::Signal::KILL);
                }
                let _ = child.wait();
                return Err(format!(
                    "`{program}` did not finish within {}s and was killed",
                    timeout.as_secs_f64()
                ));
            }
            Err(e) => return Err(format!("could not wait for `{program}`: {e}")),
        }
    };
    if status.success() {
        return Ok(());
    }
    let mut said = String::new();
    let mut output = output;
    use std::io::Seek;
    let _ = output.seek(std::io::SeekFrom::Start(0));
    let _ = output
        .take(OUTPUT_HEAD as u64 * 4)
        .read_to_string(&mut said);
    let said = crate::events::event::head(&said, OUTPUT_HEAD);
    Err(if said.is_empty() {
        format!("`{program}` exited with {status}")
    } else {
        format!("`{program}` exited with {status}: {said}")
    })
}

/// POSTs the event (or its template) to `url`, trying a few times with backoff.
fn post(
    url: &str,
    headers: &[String],
    template: Option<&str>,
    event: &Event,
    timeout: Duration,
) -> Result<(), String> {
    let (body, content_type) = match template {
        Some(template) => {
            let json = is_json(template);
            (
                fill(template, event, json),
                if json {
                    "application/json"
                } else {
                    "text/plain; charset=utf-8"
                },
            )
        }
        None => (
            serde_json::to_string(event).map_err(|e| e.to_string())?,
            "application/json",
        ),
    };
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .user_agent(concat!("ccmp/", env!("CARGO_PKG_VERSION")))
        .build()
        .into();
    let mut wait = WEBHOOK_BACKOFF;
    let mut last = String::new();
    for attempt in 1..=WEBHOOK_TRIES {
        let mut request = agent.post(url).header("Content-Type", content_type);
        for header in headers {
            if let Some((name, value)) = header.split_once(':') {
                request = request.header(name.trim(), value.trim());
            }
        }
        match request.send(body.as_bytes()) {
            Ok(response) if response.status().is_success() => return Ok(()),
            Ok(response) => {
                let status = response.status();
                last = format!("the server answered {status}");
                // A request the server refuses will be refused again; only 429 and 5xx retry.
                if status.is_client_error() && status.as_u16() != 429 {
                    return Err(last);
                }
            }
            Err(e) => last = e.to_string(),
        }
        if attempt < WEBHOOK_TRIES {
            std::thread::sleep(wait);
            wait *= 2;
        }
    }
    Err(format!("{last} (tried {WEBHOOK_TRIES} times)"))
}

fn is_json(template: &str) -> bool {
    let start = template.trim_start();
    start.starts_with('{') || start.starts_with('[')
}

/// The template with each `{{field}}` replaced by the event's field (empty when unset).
pub(crate) fn fill(template: &str, event: &Event, json_escape: bool) -> String {
    let mut out = String::with_capacity(template.len() + 128);
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            out.push_str(&rest[start..]);
            return out;
        };
        let value = event.field(after[..end].trim()).unwrap_or_default();
        if json_escape {
            let quoted = serde_json::to_string(&value).unwrap_or_default();
            out.push_str(&quoted[1..quoted.len() - 1]);
        } else {
            out.push_str(&value);
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    out
}

/// The fields a template may name.
pub(crate) const TEMPLATE_FIELDS: [&str; 14] = [
    "seq",
    "at",
    "kind",
    "task_id",
    "short_id",
    "status",
    "prompt_head",
    "working_dir",
    "group",
    "duration_secs",
    "cost_usd",
    "text",
    "summary",
    "next",
];

/// Refuses a template that names a field events do not have.
pub(crate) fn check_template(template: &str) -> Result<(), Error> {
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            return Err(Error::InvalidArgument(
                "the template has a `{{` without its `}}`".into(),
            ));
        };
        let name = after[..end].trim();
        if !TEMPLATE_FIELDS.contains(&name) {
            return Err(Error::InvalidArgument(format!(
                "the template names `{{{{{}}}}}`, which events do not have; use {}",
                crate::error::escape(name),
                TEMPLATE_FIELDS.map(|f| format!("{{{{{f}}}}}")).join(", ")
            )));
        }
        rest = &after[end + 2..];
    }
    Ok(())
}

/// The variables a desktop notification needs to reach the person's session.
pub const DESKTOP_ENV: [&str; 4] = [
    "DBUS_SESSION_BUS_ADDRESS",
    "DISPLAY",
    "WAYLAND_DISPLAY",
    "XDG_RUNTIME_DIR",
];

/// The one-off notification of `ccmp start --notify`: a desktop notification through the
/// `notify-send` found when the task started, else the bell on the terminal it was started from.
pub(crate) fn desktop(event: &Event, how: Option<&NotifyWhenDone>) -> Result<(), String> {
    let title = format!(
        "ccmp: {} {}",
        event.short_id.as_deref().unwrap_or("task"),
        event
            .status
            .map_or_else(|| event.kind.to_string(), |s| s.to_string())
    );
    let body = event.prompt_head.clone().unwrap_or_default();
    let why_not = match how.and_then(|h| h.notify_send.as_ref()) {
        Some(program) => {
            let mut command = Command::new(program);
            command
                .args(["--app-name=ccmp", &title, &body])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            for (name, value) in how.map(|h| &h.desktop_env).into_iter().flatten() {
                command.env(name, value);
            }
            match command.status() {
                Ok(status) if status.success() => return Ok(()),
                Ok(status) => {
                    format!("notify-send exited with {status}: is a notification daemon running?")
                }
                Err(e) => format!("notify-send could not run: {e}"),
            }
        }
        None => "notify-send was not installed where the task was started".to_owned(),
    };
    match how.and_then(|h| h.tty.as_deref()) {
        Some(tty) => ring_bell(tty).map_err(|e| {
            format!(
                "no desktop notification ({why_not}), and the bell on {} failed: {e}",
                tty.display()
            )
        }),
        None => Err(format!(
            "no desktop notification ({why_not}), and the task was not started from a terminal"
        )),
    }
}

/// Rings the bell on a terminal, if it is one of this user's.
fn ring_bell(tty: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let meta = std::fs::metadata(tty)?;
    if !meta.file_type().is_char_device() || meta.uid() != rustix::process::geteuid().as_raw() {
        return Err(std::io::Error::other("not this user's terminal"));
    }
    let mut file = std::fs::OpenOptions::new().write(true).open(tty)?;
    file.write_all(b"\x07")
}

/// The terminal this process was started from (its controlling terminal), if any.
pub fn controlling_terminal() -> Option<PathBuf> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    // After the command name: state, ppid, pgrp, session, tty_nr.
    let tty_nr: u64 = fields.get(4)?.parse().ok()?;
    if tty_nr == 0 {
        return None;
    }
    let major = (tty_nr >> 8) & 0xfff;
    let minor = (tty_nr & 0xff) | ((tty_nr >> 12) & 0xfff00);
    let path = match major {
        136..=143 => PathBuf::from(format!("/dev/pts/{}", minor + (major - 136) * 256)),
        4 => PathBuf::from(format!("/dev/tty{minor}")),
        _ => return None,
    };
    path.exists().then_some(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::EventKind;

    fn event() -> Event {
        let mut event = Event::general(
            EventKind::Test,
            Some("review".into()),
            "said \"hi\"\nthere".into(),
            "nothing".into(),
        );
        event.seq = 7;
        event
    }

    #[test]
    fn templates_fill_fields_escaped_for_json_bodies_only() {
        let json = fill(
            r#"{"text": "{{summary}} ({{ group }}, #{{seq}})"}"#,
            &event(),
            true,
        );
        let parsed: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(parsed["text"], "said \"hi\"\nthere (review, #7)");
        let plain = fill("{{kind}}: {{summary}}{{task_id}}", &event(), false);
        assert_eq!(plain, "test: said \"hi\"\nthere");
    }

    #[test]
    fn templates_naming_unknown_fields_are_refused() {
        assert!(check_template("{{summary}} {{next}}").is_ok());
        let error = check_template("{{title}}").unwrap_err().to_string();
        assert!(
            error.contains("`{{title}}`") && error.contains("{{summary}}"),
            "{error}"
        );
        assert!(check_template("{{summary").is_err());
    }

    #[test]
    fn a_command_that_fails_or_hangs_says_so_and_is_killed_whole() {
        let notifier = |argv: &[&str], timeout_secs| Notifier {
            name: "n".into(),
            kind: NotifierKind::Command {
                argv: argv.iter().map(|s| (*s).to_owned()).collect(),
            },
            events: vec![],
            groups: vec![],
            timeout_secs,
        };
        let error = send(
            &notifier(&["sh", "-c", "echo nope >&2; exit 3"], 5.0),
            &event(),
        )
        .unwrap_err();
        assert!(
            error.contains("exit status: 3") && error.contains("nope"),
            "{error}"
        );
        let started = Instant::now();
        let error = send(&notifier(&["sleep", "30"], 0.3), &event()).unwrap_err();
        assert!(error.contains("did not finish within 0.3s"), "{error}");
        assert!(started.elapsed() < Duration::from_secs(10));
        let error = send(&notifier(&["/nonexistent/x"], 1.0), &event()).unwrap_err();
        assert!(error.contains("could not run"), "{error}");
    }
}
