//! Claude Code (`claude -p --output-format stream-json --verbose`) behind the agent seam: its
//! settings and flags, its `stream-json` output, and how its end is judged.
//!
//! Every value flag uses the `--flag=value` form, so a value can never be read as another flag.
//! Success is decided by `is_error` and the exit status, never by `subtype`: API errors come back
//! as `subtype: "success"`.

use std::ffi::OsString;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::long_line::LongResult;
use super::{Exit, Live, Parsed, clip, describe_exit, last_lines};
use crate::error::{SpecError, escape};
use crate::spec::{TaskSpec, canonical_dir, check_text};
use crate::task::{ApiFailure, Outcome};

/// Variables removed from the agent's environment: a nested Claude Code refuses to start when
/// it sees them.
pub const STRIPPED_ENV: [&str; 2] = ["CLAUDECODE", "CLAUDE_CODE_ENTRYPOINT"];

/// Permission modes the `claude` CLI accepts for `--permission-mode`.
pub const PERMISSION_MODES: [&str; 7] = [
    "default",
    "acceptEdits",
    "auto",
    "bypassPermissions",
    "manual",
    "dontAsk",
    "plan",
];

/// Settings only Claude Code understands. The same type is the request (as a caller gives it)
/// and, once validated, the stored setting: a new Claude Code flag is one
/// field here, its check in `validate`, and its flag in `args`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ClaudeOptions {
    /// Pass `--dangerously-skip-permissions` (default true, as the original tool did).
    pub skip_permissions: Option<bool>,
    /// `--permission-mode` value.
    pub permission_mode: Option<String>,
    /// Tools allowed without asking (`--allowedTools`), e.g. `Bash(git log:*)`.
    pub allowed_tools: Vec<String>,
    /// `--max-turns` value.
    pub max_turns: Option<i64>,
    /// `--max-budget-usd` value.
    pub max_budget_usd: Option<f64>,
    /// `--append-system-prompt` value.
    pub append_system_prompt: Option<String>,
    /// Extra directories the agent may access (`--add-dir`), canonical once validated.
    pub add_dirs: Vec<PathBuf>,
    /// Tool uses to ask a person about before they run, as permission rules (`Write`,
    /// `Bash(git push:*)`): the task then waits in `needs_approval` (see
    /// [`approval`](crate::approval)).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ask: Vec<String>,
    /// Ask about every tool use.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ask_all: bool,
}

impl ClaudeOptions {
    /// What the task asks about before a tool use runs.
    pub fn ask_policy(&self) -> crate::approval::policy::AskPolicy {
        crate::approval::policy::AskPolicy {
            rules: self.ask.iter().filter_map(|r| r.parse().ok()).collect(),
            all: self.ask_all,
        }
    }

    /// Refuses the settings only Claude Code has, for a task of `agent`, naming the first one
    /// set and what that agent takes `instead`.
    pub(crate) fn only_shared(
        &self,
        agent: &'static str,
        instead: &'static str,
    ) -> Result<(), SpecError> {
        let only_claude = [
            ("permission_mode", self.permission_mode.is_some()),
            ("allowed_tools", !self.allowed_tools.is_empty()),
            ("max_turns", self.max_turns.is_some()),
            ("max_budget_usd", self.max_budget_usd.is_some()),
            ("append_system_prompt", self.append_system_prompt.is_some()),
            ("add_dirs", !self.add_dirs.is_empty()),
            ("ask", !self.ask.is_empty() || self.ask_all),
        ];
        match only_claude.iter().find(|(_, set)| *set) {
            Some((field, _)) => Err(SpecError::NotForAgent {
                field,
                owner: "Claude Code",
                agent,
                instead,
            }),
            None => Ok(()),
        }
    }

    /// Whether `--dangerously-skip-permissions` is passed.
    pub fn skips_permissions(&self) -> bool {
        self.skip_permissions.unwrap_or(true)
    }

    /// Checks every setting, and makes directories canonical.
    pub(crate) fn validate(self) -> Result<Self, SpecError> {
        let skip_permissions = Some(self.skips_permissions());
        let permission_mode = self
            .permission_mode
            .map(|mode| {
                if PERMISSION_MODES.contains(&mode.as_str()) {
                    Ok(mode)
                } else {
                    Err(SpecError::InvalidField {
                        field: "permission_mode",
                        value: escape(&mode),
                        reason: "expected one of default, acceptEdits, auto, bypassPermissions, manual, dontAsk, plan",
                    })
                }
            })
            .transpose()?;
        let allowed_tools = self
            .allowed_tools
            .into_iter()
            .map(|t| check_text("allowed_tools", t))
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(n) = self.max_turns
            && !(1..=i64::from(u32::MAX)).contains(&n)
        {
            return Err(SpecError::OutOfRange {
                field: "max_turns",
                expected: "a whole number of at least 1",
                value: n.to_string(),
            });
        }
        if let Some(usd) = self.max_budget_usd
            && !(usd.is_finite() && usd > 0.0)
        {
            return Err(SpecError::OutOfRange {
                field: "max_budget_usd",
                expected: "an amount in USD above 0",
                value: usd.to_string(),
            });
        }
        if let Some(text) = &self.append_system_prompt
            && text.contains('\0')
        {
            return Err(SpecError::InvalidField {
                field: "append_system_prompt",
                value: escape(text),
                reason: "it contains a NUL byte",
            });
        }
        let add_dirs = self
            .add_dirs
            .iter()
            .map(|d| canonical_dir(d).map_err(|_| SpecError::BadAddDir { path: d.clone() }))
            .collect::<Result<Vec<_>, _>>()?;
        for rule in &self.ask {
            rule.parse::<crate::approval::policy::AskRule>()?;
        }
        Ok(Self {
            skip_permissions,
            permission_mode,
            allowed_tools,
            max_turns: self.max_turns,
            max_budget_usd: self.max_budget_usd,
            append_system_prompt: self.append_system_prompt,
            add_dirs,
            ask: self.ask,
            ask_all: self.ask_all,
        })
    }

    /// The command line for `spec` (whose agent these options are), without the prompt.
    pub(crate) fn args(&self, spec: &TaskSpec) -> Vec<OsString> {
        let mut args: Vec<OsString> = ["-p", "--output-format", "stream-json", "--verbose"]
            .map(OsString::from)
            .into();
        let mut flag = |name: &str, value: &dyn AsRef<std::ffi::OsStr>| {
            let mut arg = OsString::from(format!("--{name}="));
            arg.push(value.as_ref());
            args.push(arg);
        };
        if let Some(model) = &spec.model {
            flag("model", model);
        }
        if let Some(mode) = &self.permission_mode {
            flag("permission-mode", mode);
        }
        for tool in &self.allowed_tools {
            flag("allowedTools", tool);
        }
        if let Some(n) = self.max_turns {
            flag("max-turns", &n.to_string());
        }
        if let Some(usd) = self.max_budget_usd {
            flag("max-budget-usd", &usd.to_string());
        }
        if let Some(text) = &self.append_system_prompt {
            flag("append-system-prompt", text);
        }
        for dir in &self.add_dirs {
            flag("add-dir", dir);
        }
        if let Some(session) = &spec.resume_session {
            flag("resume", session);
        }
        if self.skips_permissions() {
            args.push("--dangerously-skip-permissions".into());
        }
        args
    }
}

/// A Claude Code session id is a uuid; returns it hyphenated.
pub(crate) fn check_session(session: &str) -> Result<String, SpecError> {
    uuid::Uuid::parse_str(session)
        .map(|u| u.hyphenated().to_string())
        .map_err(|_| SpecError::InvalidField {
            field: "resume_session",
            value: escape(session),
            reason: "a Claude Code session id is a uuid",
        })
}

/// What only Claude Code reports about a finished run, from its result line.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ClaudeOutcome {
    /// `is_error` from the result line.
    pub is_error: Option<bool>,
    /// `subtype` from the result line (informational only: API errors come back as `success`).
    pub subtype: Option<String>,
    /// `usage` from the result line, as the agent reported it.
    pub usage: Option<Value>,
    /// `permission_denials` from the result line.
    pub permission_denials: Vec<Value>,
    /// `api_error_status` from the result line.
    pub api_error_status: Option<i64>,
    /// `terminal_reason` from the result line.
    pub terminal_reason: Option<String>,
    /// `api_error` from the result line (`usage_limit_reached` for a plan's usage limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_error: Option<String>,
}

/// Live state parsed from Claude Code's `stream-json` stdout.
#[derive(Debug, Default, Clone)]
pub(crate) struct ClaudeStream {
    pub live: Live,
    pub turns: u64,
    last_message_id: Option<String>,
    pub result: Option<Value>,
    /// The length of the result text when it was too long to keep whole (only its head is in
    /// `result`; the whole is in the task's `result.txt`).
    pub result_bytes: Option<u64>,
    pub non_json_lines: u64,
    /// A fingerprint of the last text the agent wrote, so that a result that repeats it is not
    /// written to the transcript twice.
    last_text: Option<u64>,
    /// The usage limit a refusal named (`rate_limit_info`), from the assistant line that carried
    /// the API error or a `rate_limit_event` that said `rejected`: the result line's text
    /// follows the local time zone and is never parsed.
    rate_limit_info: Option<Value>,
}

impl ClaudeStream {
    /// Takes a line too long to parse whole (see `long_line`): a result line, with the head of
    /// its result, or another line, which is only in the stdout log.
    pub fn feed_long(&mut self, long: LongResult) -> Parsed {
        let Some(value) = long.value else {
            return Parsed {
                changed: false,
                transcript: Some(format!(
                    "[output] a line of {} bytes, too long to show here; it is in the stdout log",
                    long.line_bytes
                )),
            };
        };
        let is_result = value["type"] == "result";
        let line = serde_json::to_vec(&value).unwrap_or_default();
        let mut parsed = self.feed(&line);
        if is_result {
            self.result_bytes = Some(long.result_bytes);
            if !long.complete
                && let Some(text) = parsed.transcript.as_mut()
            {
                text.push_str("\n[result] (the whole result could not be kept; only its head is)");
            }
        }
        parsed
    }

    /// Feeds one line of stdout (with or without its newline).
    pub fn feed(&mut self, line: &[u8]) -> Parsed {
        let trimmed = line.trim_ascii();
        if trimmed.is_empty() {
            return Parsed::default();
        }
        let Ok(value) = serde_json::from_slice::<Value>(trimmed) else {
            self.non_json_lines += 1;
            return Parsed {
                changed: false,
                transcript: Some(format!("[output] {}", String::from_utf8_lossy(trimmed))),
            };
        };
        let changed = |transcript| Parsed {
            changed: true,
            transcript,
        };
        let unchanged = |transcript| Parsed {
            changed: false,
            transcript,
        };
        let kind = value["type"].as_str().unwrap_or_default();
        let subtype = value["subtype"].as_str().unwrap_or_default();
        match (kind, subtype) {
            ("system", "init") => {
                self.live.session_id = value["session_id"].as_str().map(str::to_owned);
                self.live.model = value["model"].as_str().map(str::to_owned);
                self.live.progress = Some("started".into());
                changed(Some(format!(
                    "[session] {} started (model {}, cwd {})",
                    self.live.session_id.as_deref().unwrap_or("?"),
                    self.live.model.as_deref().unwrap_or("?"),
                    value["cwd"].as_str().unwrap_or("?")
                )))
            }
            ("system", "api_retry") => {
                let line = retry_text(&value);
                self.live.progress = Some(format!("turn {}: {}", self.turns.max(1), line));
                changed(Some(format!("[retry] {line}")))
            }
            ("system", "permission_denied") => unchanged(Some(format!(
                "[denied] {}: {}",
                value["tool_name"].as_str().unwrap_or("?"),
                value["message"].as_str().unwrap_or("")
            ))),
            ("rate_limit_event", _) => {
                let info = &value["rate_limit_info"];
                if info["status"] == "rejected" {
                    self.rate_limit_info = Some(info.clone());
                }
                Parsed::default()
            }
            ("assistant", _) => {
                if value["api_error"] == "usage_limit_reached" {
                    let info = &value["api_error_params"]["rate_limit_info"];
                    if !info.is_null() {
                        self.rate_limit_info = Some(info.clone());
                    }
                }
                let message = &value["message"];
                let id = message["id"].as_str().map(str::to_owned);
                if id.is_none() || id != self.last_message_id {
                    self.turns += 1;
                    self.last_message_id = id;
                }
                let mut lines = Vec::new();
                for block in message["content"].as_array().into_iter().flatten() {
                    match block["type"].as_str() {
                        Some("tool_use") => {
                            let name = block["name"].as_str().unwrap_or("tool");
                            self.live.progress = Some(format!("turn {}: {name}", self.turns));
                            lines.push(format!(
                                "[turn {}] tool {name}: {}",
                                self.turns,
                                clip(&block["input"].to_string(), 300)
                            ));
                        }
                        Some("text") => {
                            self.live.progress = Some(format!("turn {}: writing", self.turns));
                            let text = block["text"].as_str().unwrap_or_default();
                            self.last_text = Some(fingerprint(text.trim()));
                            lines.push(indented(&format!("[turn {}] ", self.turns), text));
                        }
                        Some("thinking") => {
                            self.live.progress = Some(format!("turn {}: thinking", self.turns));
                        }
                        _ => {}
                    }
                }
                changed((!lines.is_empty()).then(|| lines.join("\n")))
            }
            ("user", _) => {
                let mut lines = Vec::new();
                for block in value["message"]["content"].as_array().into_iter().flatten() {
                    if block["type"] == "tool_result" {
                        let content = match &block["content"] {
                            Value::String(s) => s.clone(),
                            other => other.to_string(),
                        };
                        let tag = if block["is_error"] == true {
                            "tool error"
                        } else {
                            "tool result"
                        };
                        lines.push(indented(&format!("  [{tag}] "), &clip(&content, 300)));
                    }
                }
                unchanged((!lines.is_empty()).then(|| lines.join("\n")))
            }
            ("result", _) => {
                if let Some(session) = value["session_id"].as_str() {
                    self.live.session_id = Some(session.to_owned());
                }
                let line = result_lines(&value, self.last_text);
                self.result = Some(value);
                changed(Some(line))
            }
            _ => Parsed::default(),
        }
    }

    /// Judges a run ccmp did not stop: success needs a result line with `is_error: false` and
    /// exit 0.
    pub fn judge(&self, exit: Exit, stderr_tail: &str) -> (bool, Outcome) {
        let mut outcome = Outcome::default();
        let mut claude = ClaudeOutcome::default();
        if let Some(result) = &self.result {
            claude.is_error = result["is_error"].as_bool();
            claude.subtype = result["subtype"].as_str().map(str::to_owned);
            claude.usage = result.get("usage").filter(|u| !u.is_null()).cloned();
            claude.permission_denials = result["permission_denials"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            claude.api_error_status = result["api_error_status"].as_i64();
            claude.terminal_reason = result["terminal_reason"].as_str().map(str::to_owned);
            claude.api_error = result["api_error"].as_str().map(str::to_owned);
            outcome.api_failure = self.api_failure(result);
            // A deferral is told by `deferred_tool_use`, never by `terminal_reason` (a second
            // deferral on resume has none).
            let deferred = &result["deferred_tool_use"];
            if let (Some(id), Some(tool)) = (deferred["id"].as_str(), deferred["name"].as_str()) {
                let input = deferred["input"].clone();
                outcome.deferred = Some(crate::task::PendingApproval {
                    tool_use_id: id.to_owned(),
                    tool: tool.to_owned(),
                    summary: crate::approval::policy::summary(tool, &input),
                    input,
                    asked_at: chrono::Utc::now(),
                });
            }
            outcome.result = result_text(result);
            outcome.result_bytes = self.result_bytes;
            outcome.num_turns = result["num_turns"].as_u64();
            outcome.cost_usd = result["total_cost_usd"].as_f64();
            outcome.input_tokens = result["usage"]["input_tokens"].as_u64();
            outcome.output_tokens = result["usage"]["output_tokens"].as_u64();
        }
        let hint = stderr_hint(stderr_tail);
        let (succeeded, error) = match &self.result {
            Some(result) if result["is_error"] == false => {
                if exit.code == Some(0) {
                    (true, None)
                } else {
                    (
                        false,
                        Some(format!(
                            "the agent reported success but {}",
                            describe_exit(exit)
                        )),
                    )
                }
            }
            Some(result) => (false, Some(with_hint(result_error(result), hint))),
            None => {
                let mut text = format!(
                    "the agent {} without reporting a result",
                    describe_exit(exit)
                );
                if exit.code == Some(0) {
                    text.push_str(" (it may have been interrupted with SIGINT)");
                }
                if let Some(last) = last_lines(stderr_tail, 3) {
                    text.push_str(&format!("; its stderr ends: {last}"));
                }
                (false, Some(with_hint(text, hint)))
            }
        };
        outcome.error = error;
        outcome.agent = Some(super::AgentOutcome::Claude(claude));
        (succeeded, outcome)
    }
}

impl ClaudeStream {
    /// How the API failed the run, from its result line: a usage limit (`api_error:
    /// usage_limit_reached`, with the reset time from `rate_limit_info`), or a failure worth
    /// trying again (529, 500, 502, 503, or no connection at all).
    fn api_failure(&self, result: &Value) -> Option<ApiFailure> {
        if result["is_error"] != true {
            return None;
        }
        if result["api_error"] == "usage_limit_reached" {
            let info = self.rate_limit_info.as_ref();
            let resets_at = info
                .and_then(|i| i["resetsAt"].as_i64())
                .and_then(|secs| chrono::DateTime::from_timestamp(secs, 0));
            let limit = info
                .and_then(|i| i["rateLimitType"].as_str())
                .map(str::to_owned);
            return Some(ApiFailure::UsageLimit { resets_at, limit });
        }
        let unreachable = result["api_error_status"].is_null()
            && result["terminal_reason"] == "api_error"
            && result["result"]
                .as_str()
                .is_some_and(|t| t.starts_with("API Error: Connection"));
        match result["api_error_status"].as_i64() {
            Some(500 | 502 | 503 | 529) => Some(ApiFailure::Transient),
            _ if unreachable => Some(ApiFailure::Transient),
            _ => None,
        }
    }
}

/// A text's fingerprint (texts can be long; only equality matters).
fn fingerprint(text: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut hasher);
    hasher.finish()
}

/// `prefix` and `text`, with the text's further lines indented to sit under its first.
fn indented(prefix: &str, text: &str) -> String {
    let pad = " ".repeat(prefix.chars().count());
    let mut out = String::from(prefix);
    for (n, line) in text.trim_end().lines().enumerate() {
        if n > 0 {
            out.push('\n');
            if !line.is_empty() {
                out.push_str(&pad);
            }
        }
        out.push_str(line);
    }
    out
}

/// An `api_retry` line in words: `API retry 2/10 in 1.1s: overloaded (HTTP 529)`.
fn retry_text(value: &Value) -> String {
    let error = value["error"]
        .as_str()
        .filter(|e| !e.is_empty() && *e != "unknown");
    let why = match (error, value["error_status"].as_i64()) {
        (Some(error), Some(status)) => format!("{error} (HTTP {status})"),
        (Some(error), None) => error.to_owned(),
        (None, Some(status)) => format!("HTTP {status}"),
        (None, None) => "no answer from the API (a network error?)".to_owned(),
    };
    let delay = value["retry_delay_ms"]
        .as_f64()
        .map(|ms| format!(" in {:.1}s", ms / 1000.0))
        .unwrap_or_default();
    format!(
        "API retry {}/{}{delay}: {why}",
        value["attempt"]
            .as_u64()
            .map_or("?".into(), |n| n.to_string()),
        value["max_retries"]
            .as_u64()
            .map_or("?".into(), |n| n.to_string())
    )
}

/// The transcript's end: the result's text unless the agent's last message already said it,
/// then one line of how the run ended (last, so that a tail of the transcript shows it).
fn result_lines(value: &Value, last_text: Option<u64>) -> String {
    let text = result_text(value).unwrap_or_default();
    let mut outcome = if value["is_error"] == false {
        "succeeded".to_owned()
    } else {
        let mut failed = "failed".to_owned();
        if let Some(status) = value["api_error_status"].as_i64() {
            failed.push_str(&format!(" (HTTP {status})"));
        } else if let Some(subtype) = value["subtype"].as_str().filter(|s| *s != "success") {
            failed.push_str(&format!(" ({subtype})"));
        }
        failed
    };
    if let Some(turns) = value["num_turns"].as_u64() {
        outcome.push_str(&format!(
            " · {turns} turn{}",
            if turns == 1 { "" } else { "s" }
        ));
    }
    if let Some(cost) = value["total_cost_usd"].as_f64() {
        outcome.push_str(&format!(" · ${cost:.2}"));
    }
    let said = text.trim().is_empty() || last_text == Some(fingerprint(text.trim()));
    if said {
        format!("[result] {outcome}")
    } else {
        format!("{}\n[result] {outcome}", indented("[result text] ", &text))
    }
}

fn result_text(value: &Value) -> Option<String> {
    value["result"].as_str().map(str::to_owned)
}

fn result_error(result: &Value) -> String {
    let errors: Vec<&str> = result["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let text = result_text(result).filter(|t| !t.is_empty());
    let detail = text.clone().unwrap_or_else(|| errors.join("; "));
    if let Some(status) = result["api_error_status"].as_i64() {
        return format!("the model API failed with HTTP {status}: {detail}");
    }
    match result["subtype"].as_str() {
        Some("error_max_turns") => {
            format!("{detail}; raise max_turns, or follow up to let it continue")
        }
        Some("error_max_budget_usd") => {
            format!("{detail}; raise max_budget_usd, or follow up to let it continue")
        }
        Some("error_during_execution") => format!(
            "the agent was interrupted ({}){}",
            result["terminal_reason"]
                .as_str()
                .unwrap_or("during execution"),
            if detail.is_empty() {
                String::new()
            } else {
                format!(": {detail}")
            }
        ),
        _ if !detail.is_empty() => detail,
        _ => "the agent reported an error without details".to_owned(),
    }
}

fn stderr_hint(stderr: &str) -> Option<&'static str> {
    if stderr.contains("cannot be used with root/sudo privileges") {
        Some(
            "Claude Code refuses --dangerously-skip-permissions as root: run ccmp as a normal user, set IS_SANDBOX=1 in the task's env if this machine is a sandbox, or start the task with skip_permissions=false",
        )
    } else if stderr.contains("No conversation found with session ID") {
        Some(
            "the session to resume no longer exists (its transcript was deleted or belongs to another config dir)",
        )
    } else if stderr.contains("Not logged in") || stderr.contains("Invalid API key") {
        Some("Claude Code is not logged in: run `claude` once to log in, or set ANTHROPIC_API_KEY")
    } else {
        None
    }
}

fn with_hint(text: String, hint: Option<&str>) -> String {
    match hint {
        Some(hint) => format!("{text}; {hint}"),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::{OutputParser, Stop, conclude};
    use crate::task::TaskStatus;

    const INIT: &str = r#"{"type":"system","subtype":"init","cwd":"/w","session_id":"110dc75a-b7fc-47a7-a40c-63d2627fde90","model":"claude-opus-5-5"}"#;
    const TOOL: &str = r#"{"type":"assistant","message":{"id":"msg_1","content":[{"type":"tool_use","id":"t1","name":"Bash","input":{"command":"echo hi"}}]}}"#;
    const TEXT: &str = r#"{"type":"assistant","message":{"id":"msg_2","content":[{"type":"text","text":"BASH-DONE"}]}}"#;
    const OK: &str = r#"{"type":"result","subtype":"success","is_error":false,"num_turns":2,"result":"BASH-DONE","session_id":"110dc75a-b7fc-47a7-a40c-63d2627fde90","total_cost_usd":0.02172,"usage":{"input_tokens":5195},"permission_denials":[],"api_error_status":null}"#;
    const API_529: &str = r#"{"type":"result","subtype":"success","is_error":true,"num_turns":1,"result":"API Error: 529 Overloaded. This is a server-side issue","api_error_status":529,"total_cost_usd":0,"terminal_reason":"api_error"}"#;
    const MAX_TURNS: &str = r#"{"type":"result","subtype":"error_max_turns","is_error":true,"num_turns":2,"errors":["Reached maximum number of turns (1)"],"terminal_reason":"max_turns"}"#;

    fn run(lines: &[&str]) -> OutputParser {
        let mut parser = OutputParser::Claude(ClaudeStream::default());
        for line in lines {
            parser.feed(line.as_bytes());
        }
        parser
    }

    const EXIT_0: Exit = Exit {
        code: Some(0),
        signal: None,
    };

    /// The transcript lines the stream makes of `lines`.
    fn transcript(lines: &[&str]) -> Vec<String> {
        let mut stream = ClaudeStream::default();
        lines
            .iter()
            .filter_map(|line| stream.feed(line.as_bytes()).transcript)
            .collect()
    }

    #[test]
    fn the_transcript_reads_right() {
        // A result the agent just said is not written again; the outcome line comes last.
        let ok = transcript(&[INIT, TOOL, TEXT, OK]);
        assert_eq!(ok.last().unwrap(), "[result] succeeded · 2 turns · $0.02");
        assert_eq!(ok.iter().filter(|l| l.contains("BASH-DONE")).count(), 1);
        // A failure says failed, and why, before the outcome line.
        let failed = transcript(&[INIT, API_529]);
        assert_eq!(
            failed.last().unwrap(),
            "[result text] API Error: 529 Overloaded. This is a server-side issue\n[result] failed (HTTP 529) · 1 turn · $0.00"
        );
        let turns = transcript(&[INIT, MAX_TURNS]);
        assert_eq!(
            turns.last().unwrap(),
            "[result] failed (error_max_turns) · 2 turns"
        );
        // Retries in words, with or without a status.
        let retry = r#"{"type":"system","subtype":"api_retry","attempt":6,"max_retries":10,"retry_delay_ms":1072,"error_status":529,"error":"overloaded"}"#;
        let unknown = r#"{"type":"system","subtype":"api_retry","attempt":2,"max_retries":10,"retry_delay_ms":500,"error_status":null,"error":"unknown"}"#;
        assert_eq!(
            transcript(&[retry, unknown]),
            [
                "[retry] API retry 6/10 in 1.1s: overloaded (HTTP 529)",
                "[retry] API retry 2/10 in 0.5s: no answer from the API (a network error?)"
            ]
        );
        // Further lines of a message sit under its first.
        let multi = r#"{"type":"assistant","message":{"id":"m","content":[{"type":"text","text":"first\nsecond\n\nfourth"}]}}"#;
        assert_eq!(
            transcript(&[multi]),
            ["[turn 1] first\n         second\n\n         fourth"]
        );
    }
    const EXIT_1: Exit = Exit {
        code: Some(1),
        signal: None,
    };

    #[test]
    fn tracks_session_turns_and_progress() {
        let mut state = ClaudeStream::default();
        assert!(state.feed(INIT.as_bytes()).changed);
        state.feed(TOOL.as_bytes());
        assert_eq!(state.live.progress.as_deref(), Some("turn 1: Bash"));
        state.feed(TEXT.as_bytes());
        assert_eq!(state.turns, 2);
        let line = state.feed(b"not json \xff").transcript;
        assert!(line.unwrap().contains("not json"));
        assert_eq!(state.non_json_lines, 1);
        assert_eq!(
            state.live.session_id.as_deref(),
            Some("110dc75a-b7fc-47a7-a40c-63d2627fde90")
        );
    }

    #[test]
    fn success_needs_is_error_false_and_exit_zero() {
        let state = run(&[INIT, TOOL, TEXT, OK]);
        let (status, outcome) = conclude(&state, EXIT_0, None, "");
        assert_eq!(status, TaskStatus::Succeeded);
        assert_eq!(outcome.result.as_deref(), Some("BASH-DONE"));
        assert_eq!(outcome.num_turns, Some(2));
        assert_eq!(outcome.cost_usd, Some(0.02172));
        let (status, outcome) = conclude(&state, EXIT_1, None, "");
        assert_eq!(status, TaskStatus::Failed);
        assert!(outcome.error.unwrap().contains("code 1"));
    }

    #[test]
    fn api_errors_fail_despite_subtype_success() {
        let (status, outcome) = conclude(&run(&[INIT, API_529]), EXIT_1, None, "");
        assert_eq!(status, TaskStatus::Failed);
        let error = outcome.error.clone().unwrap();
        assert!(
            error.contains("529") && error.contains("Overloaded"),
            "{error}"
        );
        assert_eq!(outcome.claude().unwrap().api_error_status, Some(529));
    }

    #[test]
    fn max_turns_says_how_to_continue() {
        let (status, outcome) = conclude(&run(&[INIT, MAX_TURNS]), EXIT_1, None, "");
        assert_eq!(status, TaskStatus::Failed);
        assert!(outcome.error.unwrap().contains("max_turns"));
        assert_eq!(outcome.result, None);
    }

    #[test]
    fn no_result_line_is_never_success() {
        let (status, outcome) = conclude(&run(&[INIT]), EXIT_0, None, "");
        assert_eq!(status, TaskStatus::Failed);
        assert!(outcome.error.unwrap().contains("SIGINT"));
        let killed = Exit {
            code: None,
            signal: Some(9),
        };
        let (_, outcome) = conclude(&run(&[INIT]), killed, None, "");
        assert!(outcome.error.unwrap().contains("SIGKILL"));
    }

    #[test]
    fn root_refusal_mentions_is_sandbox() {
        let stderr = "--dangerously-skip-permissions cannot be used with root/sudo privileges for security reasons\n";
        let (status, outcome) = conclude(&run(&[]), EXIT_1, None, stderr);
        assert_eq!(status, TaskStatus::Failed);
        assert!(outcome.error.unwrap().contains("IS_SANDBOX=1"));
    }

    #[test]
    fn stops_take_precedence() {
        let state = run(&[INIT]);
        let term = Exit {
            code: Some(143),
            signal: None,
        };
        let (status, _) = conclude(&state, term, Some(Stop::Cancelled("cancelled".into())), "");
        assert_eq!(status, TaskStatus::Cancelled);
        let (status, outcome) = conclude(&state, term, Some(Stop::TimedOut(2.0)), "");
        assert_eq!(status, TaskStatus::TimedOut);
        assert!(outcome.error.unwrap().contains("2s"));
    }

    #[test]
    fn the_prompt_is_never_an_argument() {
        let dir = std::env::temp_dir();
        let spec = crate::TaskRequest {
            model: Some("sonnet".into()),
            ..crate::TaskRequest::new("--model=evil -rf please")
        }
        .claude(ClaudeOptions {
            allowed_tools: vec!["Bash(git log:*)".into()],
            ..ClaudeOptions::default()
        })
        .validate(&"sh".into())
        .map(|mut s| {
            s.working_dir = dir;
            s
        })
        .unwrap();
        let inv = crate::agent::invocation(&spec);
        let args: Vec<String> = inv
            .args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert!(!args.iter().any(|a| a.contains("evil")), "{args:?}");
        assert!(args.contains(&"--model=sonnet".to_owned()));
        assert!(args.contains(&"--allowedTools=Bash(git log:*)".to_owned()));
        assert!(args.contains(&"--dangerously-skip-permissions".to_owned()));
        assert_eq!(
            &args[..4],
            ["-p", "--output-format", "stream-json", "--verbose"]
        );
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;
    use crate::agent::{OutputParser, conclude};

    proptest! {
        #[test]
        fn any_bytes_never_panic_the_stream_parser(lines in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..20)) {
            let mut parser = OutputParser::Claude(ClaudeStream::default());
            for line in &lines {
                parser.feed(line);
            }
            let _ = conclude(&parser, Exit { code: Some(0), signal: None }, None, "");
        }

        #[test]
        fn json_shaped_lines_never_panic_the_stream_parser(kind in "(system|assistant|user|result|other)", sub in "[a-z_]{0,12}", body in "\\\\PC{0,200}") {
            let line = format!(r#"{{"type":"{kind}","subtype":"{sub}","message":{{"content":[{{"type":"tool_use","name":{body:?}}}]}},"result":{body:?}}}"#);
            let mut parser = OutputParser::Claude(ClaudeStream::default());
            parser.feed(line.as_bytes());
            let _ = conclude(&parser, Exit { code: Some(1), signal: None }, None, &body);
        }
    }
}
