//! OpenAI's Codex CLI (`codex exec --json`), as 0.171 really behaves against a Responses API
//! (transcripts in `tests/fixtures/codex/`).
//!
//! * Invocation: `codex exec --json --skip-git-repo-check [-m MODEL] <sandbox flags>
//!   [resume THREAD] -`, the prompt on stdin (`-`). ccmp runs tasks outside git repositories too,
//!   so the repository check is skipped.
//! * Output: one JSON event per line: `thread.started {thread_id}`, `turn.started`,
//!   `item.started`/`item.completed {item}` (an `agent_message`, a `command_execution`, a
//!   `file_change`, `reasoning`, an `error`, …), `turn.completed {usage}`,
//!   `turn.failed {error}`, and `error {message}` (also for transient reconnects).
//! * The end: exit 0 with `turn.completed` is success, and the last `agent_message` is the
//!   result. `turn.failed` (exit 1) is failure with its message. A plan's usage limit reads
//!   "You've hit your usage limit. … try again at 9:38 PM." (local time).
//! * Follow-ups resume the thread: `codex exec resume <thread_id> -`.
//! * Codex reports tokens, never a cost: a task's cost stays absent.

use std::ffi::OsString;

use chrono::{DateTime, Local, NaiveDate, NaiveTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Exit, Live, Parsed, clip, describe_exit, last_lines};
use crate::error::{SpecError, escape};
use crate::spec::TaskSpec;
use crate::task::{ApiFailure, Outcome};

/// The sandbox modes `codex exec --sandbox` takes.
pub const SANDBOX_MODES: [&str; 3] = ["read-only", "workspace-write", "danger-full-access"];

/// Codex's own settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[serde(default)]
pub struct CodexOptions {
    /// Run commands without sandbox or approvals (`--dangerously-bypass-approvals-and-sandbox`),
    /// as ccmp runs Claude Code with `--dangerously-skip-permissions`. Default true; false
    /// runs in `--sandbox workspace-write` (or `sandbox`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skip_permissions: Option<bool>,
    /// `--sandbox` mode when permissions are not skipped: read-only, workspace-write or
    /// danger-full-access.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<String>,
}

impl CodexOptions {
    /// Whether the sandbox and approvals are bypassed.
    pub fn skips_permissions(&self) -> bool {
        self.skip_permissions.unwrap_or(self.sandbox.is_none())
    }

    pub(crate) fn validate(self) -> Result<Self, SpecError> {
        if let Some(mode) = &self.sandbox {
            if !SANDBOX_MODES.contains(&mode.as_str()) {
                return Err(SpecError::InvalidField {
                    field: "sandbox",
                    value: escape(mode),
                    reason: "Codex's sandbox is read-only, workspace-write or danger-full-access",
                });
            }
            if self.skip_permissions == Some(true) {
                return Err(SpecError::InvalidField {
                    field: "sandbox",
                    value: escape(mode),
                    reason: "a sandbox mode needs skip_permissions false (skipping means no sandbox)",
                });
            }
        }
        Ok(self)
    }

    pub(crate) fn args(&self, spec: &TaskSpec) -> Vec<OsString> {
        let mut args: Vec<OsString> = [
            "exec",
            "--json",
            "--skip-git-repo-check",
            "--color",
            "never",
        ]
        .map(OsString::from)
        .into();
        if let Some(model) = &spec.model {
            args.push("--model".into());
            args.push(model.into());
        }
        if self.skips_permissions() {
            args.push("--dangerously-bypass-approvals-and-sandbox".into());
        } else {
            args.push("--sandbox".into());
            args.push(self.sandbox.as_deref().unwrap_or("workspace-write").into());
        }
        if let Some(thread) = &spec.resume_session {
            args.push("resume".into());
            args.push(thread.into());
        }
        // The prompt comes on stdin.
        args.push("-".into());
        args
    }
}

/// A Codex thread id is a uuid (v7); returns it hyphenated.
pub(crate) fn check_session(session: &str) -> Result<String, SpecError> {
    super::uuid_session(session, "a Codex thread id is a uuid")
}

/// Live state parsed from `codex exec --json`.
#[derive(Debug, Default, Clone)]
pub(crate) struct CodexStream {
    pub live: Live,
    pub turns: u64,
    /// The last `agent_message`: the result, once the turn completes.
    last_message: Option<String>,
    completed: bool,
    failure: Option<String>,
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    pub non_json_lines: u64,
}

impl CodexStream {
    /// Whether the turn completed (Codex's end of a run).
    pub fn saw_result(&self) -> bool {
        self.completed || self.failure.is_some()
    }

    pub fn feed(&mut self, line: &[u8]) -> Parsed {
        let value = match super::json_line(line, &mut self.non_json_lines) {
            Ok(value) => value,
            Err(parsed) => return parsed,
        };
        let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
        match value["type"].as_str().unwrap_or_default() {
            "thread.started" => {
                self.live.session_id = value["thread_id"].as_str().map(str::to_owned);
                self.live.progress = Some("started".into());
                Parsed {
                    changed: true,
                    transcript: Some(format!(
                        "[session] {} started",
                        self.live.session_id.as_deref().unwrap_or("?")
                    )),
                }
            }
            "turn.started" => {
                self.turns += 1;
                self.live.progress = Some(format!("turn {}", self.turns));
                Parsed {
                    changed: true,
                    transcript: None,
                }
            }
            "item.started" | "item.completed" => {
                self.item(&value["item"], value["type"] == "item.completed")
            }
            "turn.completed" => {
                self.completed = true;
                let usage = &value["usage"];
                self.input_tokens = usage["input_tokens"].as_u64();
                self.output_tokens = usage["output_tokens"].as_u64();
                self.live.progress = Some("done".into());
                Parsed {
                    changed: true,
                    transcript: Some(format!(
                        "[result] turn completed · {} tokens in, {} out",
                        self.input_tokens.unwrap_or(0),
                        self.output_tokens.unwrap_or(0)
                    )),
                }
            }
            "turn.failed" => {
                let message = text(&value["error"]["message"]);
                self.failure = Some(message.clone());
                Parsed {
                    changed: false,
                    transcript: Some(format!("[error] {message}")),
                }
            }
            "error" => Parsed {
                changed: false,
                transcript: Some(format!("[error] {}", text(&value["message"]))),
            },
            _ => Parsed::default(),
        }
    }

    fn item(&mut self, item: &Value, done: bool) -> Parsed {
        let turn = self.turns;
        let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
        let (progress, transcript) = match item["type"].as_str().unwrap_or_default() {
            "agent_message" if done => {
                let message = text(&item["text"]);
                self.last_message = Some(message.clone());
                (
                    format!("turn {turn}: writing"),
                    Some(format!("[turn {turn}] {message}")),
                )
            }
            "command_execution" => {
                let command = text(&item["command"]);
                let shown = clip(&command, 200);
                if done {
                    let output = clip(text(&item["aggregated_output"]).trim_end(), 2000);
                    (
                        format!("turn {turn}: ran {}", clip(&command, 60)),
                        Some(format!(
                            "  [command] exit {}: {output}",
                            item["exit_code"]
                                .as_i64()
                                .map_or_else(|| "?".to_owned(), |c| c.to_string())
                        )),
                    )
                } else {
                    (
                        format!("turn {turn}: {}", clip(&command, 60)),
                        Some(format!("[turn {turn}] $ {shown}")),
                    )
                }
            }
            "file_change" if done => {
                let files: Vec<String> = item["changes"]
                    .as_array()
                    .map(|changes| {
                        changes
                            .iter()
                            .map(|c| format!("{} {}", text(&c["kind"]), text(&c["path"])))
                            .collect()
                    })
                    .unwrap_or_default();
                (
                    format!("turn {turn}: edited files"),
                    Some(format!("[turn {turn}] files: {}", files.join(", "))),
                )
            }
            "mcp_tool_call" if !done => (
                format!("turn {turn}: {}", text(&item["tool"])),
                Some(format!(
                    "[turn {turn}] tool {}.{}",
                    text(&item["server"]),
                    text(&item["tool"])
                )),
            ),
            "reasoning" if done => (
                format!("turn {turn}: thinking"),
                Some(format!(
                    "[turn {turn}] (thinking) {}",
                    clip(&text(&item["text"]), 300)
                )),
            ),
            "error" if done => (
                format!("turn {turn}"),
                Some(format!("[error] {}", text(&item["message"]))),
            ),
            _ => return Parsed::default(),
        };
        self.live.progress = Some(progress);
        Parsed {
            changed: true,
            transcript,
        }
    }

    /// Judges a run ccmp did not stop: success needs a completed turn and exit 0.
    pub fn judge(&self, exit: Exit, stderr_tail: &str) -> (bool, Outcome) {
        let mut outcome = Outcome {
            result: self.last_message.clone(),
            num_turns: (self.turns > 0).then_some(self.turns),
            input_tokens: self.input_tokens,
            output_tokens: self.output_tokens,
            ..Outcome::default()
        };
        let (succeeded, error) = match (&self.failure, self.completed) {
            (Some(message), _) => {
                outcome.api_failure = api_failure(message, Local::now());
                (false, Some(message.clone()))
            }
            (None, true) if exit.code == Some(0) => (true, None),
            (None, true) => (
                false,
                Some(format!(
                    "Codex completed its turn but {}",
                    describe_exit(exit)
                )),
            ),
            (None, false) => {
                let mut text = format!("Codex {} without completing its turn", describe_exit(exit));
                if let Some(last) = last_lines(stderr_tail, 3) {
                    text.push_str(&format!("; its stderr ends: {last}"));
                }
                (false, Some(text))
            }
        };
        outcome.error = error;
        (succeeded, outcome)
    }
}

/// What a failed turn's message says about the API: a usage limit (with its reset, when Codex
/// gives a time of day), or a transient failure worth a retry.
fn api_failure(message: &str, now: DateTime<Local>) -> Option<ApiFailure> {
    let lower = message.to_lowercase();
    if lower.contains("usage limit") {
        return Some(ApiFailure::UsageLimit {
            resets_at: reset_time(&lower, now),
            limit: None,
        });
    }
    let transient = [
        "high demand",
        "temporarily unavailable",
        "overloaded",
        "stream disconnected",
        "internal server error",
        "try again later",
    ];
    transient
        .iter()
        .any(|t| lower.contains(t))
        .then_some(ApiFailure::Transient)
}

/// "try again at 9:38 pm": the next such time of day, in the local zone, as UTC. When the reset
/// is not today, Codex names the date as well: "try again at dec 3rd, 2026 12:24 am".
fn reset_time(lower: &str, now: DateTime<Local>) -> Option<DateTime<Utc>> {
    let at = lower.find("try again at ")? + "try again at ".len();
    let words = lower[at..].trim_end_matches(['.', ' ']).trim();
    let local = |date: NaiveDate, time: NaiveTime| {
        Local.from_local_datetime(&date.and_time(time)).earliest()
    };
    if let Some(time) = time_of_day(words) {
        let mut day = now.date_naive();
        let mut when = local(day, time)?;
        if when <= now {
            day = day.succ_opt()?;
            when = local(day, time)?;
        }
        return Some(when.with_timezone(&Utc));
    }
    // "dec 3rd, 2026 12:24 am"
    let (month_day, year_time) = words.split_once(", ")?;
    let (month, day) = month_day.split_once(' ')?;
    let day = day.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let (year, time) = year_time.split_once(' ')?;
    let date = NaiveDate::parse_from_str(&format!("{month} {day} {year}"), "%b %d %Y").ok()?;
    Some(local(date, time_of_day(time)?)?.with_timezone(&Utc))
}

/// "9:38 pm" or "21:38".
fn time_of_day(words: &str) -> Option<NaiveTime> {
    NaiveTime::parse_from_str(words, "%I:%M %p")
        .or_else(|_| NaiveTime::parse_from_str(words, "%H:%M"))
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed_all(lines: &str) -> CodexStream {
        let mut stream = CodexStream::default();
        for line in lines.lines() {
            stream.feed(line.as_bytes());
        }
        stream
    }

    const SUCCESS: &str = include_str!("../../../tests/fixtures/codex/success.jsonl");
    const LIMIT: &str = include_str!("../../../tests/fixtures/codex/usage-limit.jsonl");
    const OVERLOADED: &str = include_str!("../../../tests/fixtures/codex/error-500.jsonl");

    #[test]
    fn a_completed_turn_is_success_with_the_last_message_and_the_thread() {
        let stream = feed_all(SUCCESS);
        let (ok, outcome) = stream.judge(
            Exit {
                code: Some(0),
                signal: None,
            },
            "",
        );
        assert!(ok);
        assert_eq!(outcome.result.as_deref(), Some("MOCK-CODEX-DONE turn 2"));
        assert_eq!(
            stream.live.session_id.as_deref(),
            Some("01a2387b-35e7-78b1-9022-ce51d4399b5b")
        );
        assert_eq!(outcome.input_tokens, Some(100));
        assert_eq!(
            outcome.cost_usd, None,
            "Codex reports no cost: absent, never zero"
        );
    }

    #[test]
    fn a_command_shows_in_progress_and_the_transcript() {
        let mut stream = CodexStream::default();
        let mut transcript = Vec::new();
        for line in include_str!("../../../tests/fixtures/codex/tool-use.jsonl").lines() {
            let parsed = stream.feed(line.as_bytes());
            if line.contains("item.started") {
                assert_eq!(
                    stream.live.progress.as_deref(),
                    Some("turn 1: /bin/bash -lc 'echo tool-ran'")
                );
            }
            transcript.extend(parsed.transcript);
        }
        let text = transcript.join("\n");
        assert!(text.contains("$ /bin/bash -lc 'echo tool-ran'"), "{text}");
        assert!(text.contains("[command] exit 0: tool-ran"), "{text}");
        let (ok, outcome) = stream.judge(
            Exit {
                code: Some(0),
                signal: None,
            },
            "",
        );
        assert!(ok);
        assert_eq!(outcome.result.as_deref(), Some("MOCK-CODEX-DONE turn 2"));
    }

    #[test]
    fn a_failed_turn_fails_with_its_message_and_names_the_api_failure() {
        let exit = Exit {
            code: Some(1),
            signal: None,
        };
        let (ok, outcome) = feed_all(OVERLOADED).judge(exit, "");
        assert!(!ok);
        assert!(outcome.error.unwrap().contains("high demand"));
        assert_eq!(outcome.api_failure, Some(ApiFailure::Transient));
        let (_, outcome) = feed_all(LIMIT).judge(exit, "");
        assert!(matches!(
            outcome.api_failure,
            Some(ApiFailure::UsageLimit { .. })
        ));
    }

    #[test]
    fn the_reset_time_of_day_is_the_next_one() {
        let now = Local.with_ymd_and_hms(2026, 12, 2, 20, 0, 0).unwrap();
        let at = reset_time("… or try again at 9:38 pm.", now).unwrap();
        assert_eq!(
            at.with_timezone(&Local).format("%d %H:%M").to_string(),
            "02 21:38"
        );
        let at = reset_time("try again at 7:05 pm.", now).unwrap();
        assert_eq!(
            at.with_timezone(&Local).format("%d %H:%M").to_string(),
            "03 19:05"
        );
        assert_eq!(reset_time("try again later.", now), None);
    }

    /// As the real CLI said it at 23:24 on Dec 2nd for a reset an hour later: a reset that is
    /// not today comes with its date (this failed the task instead of parking it).
    #[test]
    fn a_reset_on_another_day_is_read_with_its_date() {
        let now = Local.with_ymd_and_hms(2026, 12, 2, 23, 24, 0).unwrap();
        let message = "you’ve hit your usage limit. upgrade to pro (https://chatgpt.com/explore/pro), visit https://chatgpt.com/settings/usage to purchase more credits or try again at dec 3rd, 2026 12:24 am.";
        let at = reset_time(message, now).unwrap();
        assert_eq!(
            at.with_timezone(&Local)
                .format("%Y-%m-%d %H:%M")
                .to_string(),
            "2026-12-03 00:24"
        );
        for (words, day) in [
            ("jan 1st, 2027 9:05 pm", "2027-01-01 21:05"),
            ("dec 22nd, 2026 11:00 am", "2026-12-22 11:00"),
        ] {
            let at = reset_time(&format!("try again at {words}."), now).unwrap();
            assert_eq!(
                at.with_timezone(&Local)
                    .format("%Y-%m-%d %H:%M")
                    .to_string(),
                day
            );
        }
    }

    #[test]
    fn bad_sandboxes_are_refused() {
        let bad = CodexOptions {
            sandbox: Some("none".into()),
            skip_permissions: Some(false),
        };
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .contains("read-only")
        );
        let both = CodexOptions {
            sandbox: Some("read-only".into()),
            skip_permissions: Some(true),
        };
        assert!(both.validate().is_err());
    }
}
