//! Google's Gemini CLI (`gemini -p "" --output-format stream-json`), as 0.61 really behaves
//! against the Gemini API (transcripts in `tests/fixtures/gemini/`).
//!
//! * Invocation: `gemini --output-format stream-json --skip-trust --approval-mode MODE
//!   [--model MODEL] [--resume SESSION] -p ""`, the prompt on stdin (`-p` appends its own text,
//!   empty here, to stdin). `--skip-trust` because ccmp's working dirs are the user's choice.
//! * Output: one JSON event per line: `init {session_id, model}`, `message {role, content,
//!   delta}`, `tool_use {tool_name, tool_id, parameters}`, `tool_result {tool_id, status,
//!   output}`, `result {status, error?, stats}`.
//! * The end: `result` with `status: success` and exit 0 is success; the result is what the
//!   model wrote after its last tool use. `status: error` carries the API's message.
//! * Follow-ups resume the session by id (`--resume <uuid>`), in the same directory.
//! * Gemini reports tokens, never a cost: a task's cost stays absent.

use std::ffi::OsString;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Exit, Live, Parsed, clip, describe_exit, last_lines};
use crate::error::{SpecError, escape};
use crate::spec::TaskSpec;
use crate::task::{ApiFailure, Outcome};

/// The approval modes `gemini --approval-mode` takes.
pub const APPROVAL_MODES: [&str; 4] = ["default", "auto_edit", "yolo", "plan"];

/// Gemini CLI's own settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[serde(default)]
pub struct GeminiOptions {
    /// Approve every tool use (`--approval-mode yolo`), as ccmp runs Claude Code with
    /// `--dangerously-skip-permissions`. Default true; false uses `approval_mode` (default
    /// `default`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skip_permissions: Option<bool>,
    /// `--approval-mode` when permissions are not skipped: default, auto_edit or plan.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approval_mode: Option<String>,
}

impl GeminiOptions {
    /// Whether every tool use is approved.
    pub fn skips_permissions(&self) -> bool {
        self.skip_permissions
            .unwrap_or(self.approval_mode.is_none())
    }

    pub(crate) fn validate(self) -> Result<Self, SpecError> {
        if let Some(mode) = &self.approval_mode
            && !APPROVAL_MODES.contains(&mode.as_str())
        {
            return Err(SpecError::InvalidField {
                field: "approval_mode",
                value: escape(mode),
                reason: "Gemini's approval mode is default, auto_edit, yolo or plan",
            });
        }
        Ok(self)
    }

    pub(crate) fn args(&self, spec: &TaskSpec) -> Vec<OsString> {
        let mut args: Vec<OsString> = ["--output-format", "stream-json", "--skip-trust"]
            .map(OsString::from)
            .into();
        args.push("--approval-mode".into());
        args.push(if self.skips_permissions() {
            "yolo".into()
        } else {
            self.approval_mode.as_deref().unwrap_or("default").into()
        });
        if let Some(model) = &spec.model {
            args.push("--model".into());
            args.push(model.into());
        }
        if let Some(session) = &spec.resume_session {
            args.push("--resume".into());
            args.push(session.into());
        }
        // Headless, with the prompt from stdin (and nothing appended to it).
        args.push("-p".into());
        args.push("".into());
        args
    }
}

/// A Gemini CLI session id is a uuid; returns it hyphenated.
pub(crate) fn check_session(session: &str) -> Result<String, SpecError> {
    super::uuid_session(session, "a Gemini CLI session id is a uuid")
}

/// Live state parsed from `gemini --output-format stream-json`.
#[derive(Debug, Default, Clone)]
pub(crate) struct GeminiStream {
    pub live: Live,
    turns: u64,
    /// What the model wrote since its last tool use (or the user's message).
    text: String,
    /// Whether the last event was the model writing (a new turn starts otherwise).
    writing: bool,
    result: Option<Value>,
    pub non_json_lines: u64,
}

impl GeminiStream {
    pub fn saw_result(&self) -> bool {
        self.result.is_some()
    }

    pub fn feed(&mut self, line: &[u8]) -> Parsed {
        let value = match super::json_line(line, &mut self.non_json_lines) {
            Ok(value) => value,
            Err(parsed) => return parsed,
        };
        let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
        let changed = |transcript| Parsed {
            changed: true,
            transcript,
        };
        match value["type"].as_str().unwrap_or_default() {
            "init" => {
                self.live.session_id = value["session_id"].as_str().map(str::to_owned);
                self.live.model = value["model"].as_str().map(str::to_owned);
                self.live.progress = Some("started".into());
                changed(Some(format!(
                    "[session] {} started (model {})",
                    self.live.session_id.as_deref().unwrap_or("?"),
                    self.live.model.as_deref().unwrap_or("?")
                )))
            }
            "message" if value["role"] == "assistant" => {
                if !self.writing {
                    self.turns += 1;
                    self.text.clear();
                    self.writing = true;
                }
                let content = text(&value["content"]);
                self.text.push_str(&content);
                self.live.progress = Some(format!("turn {}: writing", self.turns));
                changed(Some(format!("[turn {}] {content}", self.turns)))
            }
            "message" => {
                self.writing = false;
                Parsed::default()
            }
            "tool_use" => {
                self.writing = false;
                let tool = text(&value["tool_name"]);
                self.live.progress = Some(format!("turn {}: {tool}", self.turns.max(1)));
                changed(Some(format!(
                    "[turn {}] tool {tool}: {}",
                    self.turns.max(1),
                    clip(&value["parameters"].to_string(), 300)
                )))
            }
            "tool_result" => Parsed {
                changed: false,
                transcript: Some(format!(
                    "  [tool result] {}: {}",
                    text(&value["status"]),
                    clip(text(&value["output"]).trim_end(), 2000)
                )),
            },
            "result" => {
                self.result = Some(value.clone());
                self.live.progress = Some("done".into());
                let line = if value["status"] == "success" {
                    format!(
                        "[result] succeeded · {} tokens in, {} out",
                        value["stats"]["input_tokens"].as_u64().unwrap_or(0),
                        value["stats"]["output_tokens"].as_u64().unwrap_or(0)
                    )
                } else {
                    format!("[error] {}", error_message(&value))
                };
                changed(Some(line))
            }
            _ => Parsed::default(),
        }
    }

    /// Judges a run ccmp did not stop: success needs `result` with `status: success`, exit 0.
    pub fn judge(&self, exit: Exit, stderr_tail: &str) -> (bool, Outcome) {
        let mut outcome = Outcome {
            num_turns: (self.turns > 0).then_some(self.turns),
            ..Outcome::default()
        };
        let (succeeded, error) = match &self.result {
            Some(result) => {
                outcome.input_tokens = result["stats"]["input_tokens"].as_u64();
                outcome.output_tokens = result["stats"]["output_tokens"].as_u64();
                if result["status"] == "success" {
                    outcome.result = Some(self.text.clone());
                    if exit.code == Some(0) {
                        (true, None)
                    } else {
                        (
                            false,
                            Some(format!(
                                "Gemini reported success but {}",
                                describe_exit(exit)
                            )),
                        )
                    }
                } else {
                    let message = error_message(result);
                    outcome.api_failure = api_failure(&message);
                    (false, Some(message))
                }
            }
            None => {
                let mut text = format!("Gemini {} without a result", describe_exit(exit));
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

/// The error of a `result` line, with the API's own message when Gemini wrapped it.
fn error_message(result: &Value) -> String {
    let message = result["error"]["message"]
        .as_str()
        .unwrap_or("Gemini failed");
    // "[API Error: {\"error\":{\"code\":400,\"message\":\"…\"}}]": the inner message says it.
    message
        .strip_prefix("[API Error: ")
        .and_then(|rest| rest.strip_suffix(']'))
        .and_then(|json| serde_json::from_str::<Value>(json).ok())
        .and_then(|inner| {
            let error = &inner["error"];
            Some(format!(
                "the Gemini API failed with HTTP {}: {}",
                error["code"].as_i64()?,
                error["message"].as_str()?
            ))
        })
        .unwrap_or_else(|| message.to_owned())
}

/// 429 and 5xx replies are worth a retry; Gemini names no reset time to park until.
fn api_failure(message: &str) -> Option<ApiFailure> {
    [
        "HTTP 429",
        "HTTP 500",
        "HTTP 502",
        "HTTP 503",
        "RESOURCE_EXHAUSTED",
    ]
    .iter()
    .any(|code| message.contains(code))
    .then_some(ApiFailure::Transient)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed_all(lines: &str) -> GeminiStream {
        let mut stream = GeminiStream::default();
        for line in lines.lines() {
            stream.feed(line.as_bytes());
        }
        stream
    }

    const OK: Exit = Exit {
        code: Some(0),
        signal: None,
    };

    #[test]
    fn a_successful_run_has_the_models_text_after_its_last_tool_use() {
        let stream = feed_all(include_str!(
            "../../../tests/fixtures/gemini/tool-use.jsonl"
        ));
        let (ok, outcome) = stream.judge(OK, "");
        assert!(ok);
        assert_eq!(outcome.result.as_deref(), Some("MOCK-GEMINI-DONE"));
        assert_eq!(outcome.input_tokens, Some(200));
        assert_eq!(
            outcome.cost_usd, None,
            "Gemini reports no cost: absent, never zero"
        );
        assert_eq!(
            stream.live.session_id.as_deref(),
            Some("64ef7fcf-e0af-4f7c-8387-51cf2b6ce603")
        );
    }

    #[test]
    fn an_api_error_fails_with_the_apis_own_message() {
        let stream = feed_all(include_str!(
            "../../../tests/fixtures/gemini/error-400.jsonl"
        ));
        let (ok, outcome) = stream.judge(
            Exit {
                code: Some(144),
                signal: None,
            },
            "",
        );
        assert!(!ok);
        assert_eq!(
            outcome.error.as_deref(),
            Some(
                "the Gemini API failed with HTTP 400: API key not valid. Please pass a valid API key."
            )
        );
        assert_eq!(outcome.api_failure, None);
    }

    #[test]
    fn bad_approval_modes_are_refused() {
        let bad = GeminiOptions {
            approval_mode: Some("always".into()),
            skip_permissions: Some(false),
        };
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .contains("auto_edit")
        );
    }
}
