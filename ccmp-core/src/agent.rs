//! The agent: how `claude -p` is invoked, how its `stream-json` output is read, and how its
//! run is judged.
//!
//! The prompt goes on stdin, never on the command line, so it can never reach the flag parser
//! (a prompt like `-rf please` is just text). Every value flag uses the `--flag=value` form for
//! the same reason. Success is decided by `is_error` and the exit status, never by `subtype`:
//! API errors come back as `subtype: "success"`.

use std::ffi::OsString;
use std::path::PathBuf;

use serde_json::Value;

use crate::spec::TaskSpec;
use crate::task::{Outcome, TaskStatus};

/// Environment variable that marks every process of a task's tree with the task id. Processes
/// that carry it are swept when the task ends, even those in a session of their own.
pub const TASK_ENV: &str = "CCMP_TASK_ID";

/// Variables removed from the agent's environment: a nested Claude Code refuses to start when
/// it sees them.
pub const STRIPPED_ENV: [&str; 2] = ["CLAUDECODE", "CLAUDE_CODE_ENTRYPOINT"];

/// A program and its arguments (no shell involved).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    /// The agent program.
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<OsString>,
}

/// The command line for `spec`. The prompt is not in it: it is written to the agent's stdin.
pub fn invocation(spec: &TaskSpec) -> Invocation {
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
    if let Some(mode) = &spec.permission_mode {
        flag("permission-mode", mode);
    }
    for tool in &spec.allowed_tools {
        flag("allowedTools", tool);
    }
    if let Some(n) = spec.max_turns {
        flag("max-turns", &n.to_string());
    }
    if let Some(usd) = spec.max_budget_usd {
        flag("max-budget-usd", &usd.to_string());
    }
    if let Some(text) = &spec.append_system_prompt {
        flag("append-system-prompt", text);
    }
    for dir in &spec.add_dirs {
        flag("add-dir", dir);
    }
    if let Some(session) = &spec.resume_session {
        flag("resume", session);
    }
    if spec.skip_permissions {
        args.push("--dangerously-skip-permissions".into());
    }
    Invocation {
        program: spec.agent.clone(),
        args,
    }
}

/// What a line of output changed, so the caller knows whether to persist the record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Change {
    /// Nothing worth saving.
    None,
    /// Session id, model or progress changed.
    Progress,
}

/// Live state parsed from the agent's `stream-json` stdout.
#[derive(Debug, Default, Clone)]
pub(crate) struct StreamState {
    pub session_id: Option<String>,
    pub model: Option<String>,
    pub turns: u64,
    last_message_id: Option<String>,
    pub progress: Option<String>,
    pub result: Option<Value>,
    pub non_json_lines: u64,
}

impl StreamState {
    /// Feeds one line of stdout (without its newline). Returns what changed and a line for the
    /// readable transcript.
    pub fn feed(&mut self, line: &[u8]) -> (Change, Option<String>) {
        let trimmed = line.trim_ascii();
        if trimmed.is_empty() {
            return (Change::None, None);
        }
        let Ok(value) = serde_json::from_slice::<Value>(trimmed) else {
            self.non_json_lines += 1;
            return (
                Change::None,
                Some(format!("[output] {}", String::from_utf8_lossy(trimmed))),
            );
        };
        let kind = value["type"].as_str().unwrap_or_default();
        let subtype = value["subtype"].as_str().unwrap_or_default();
        match (kind, subtype) {
            ("system", "init") => {
                self.session_id = value["session_id"].as_str().map(str::to_owned);
                self.model = value["model"].as_str().map(str::to_owned);
                self.progress = Some("started".into());
                let line = format!(
                    "[session] {} started (model {}, cwd {})",
                    self.session_id.as_deref().unwrap_or("?"),
                    self.model.as_deref().unwrap_or("?"),
                    value["cwd"].as_str().unwrap_or("?")
                );
                (Change::Progress, Some(line))
            }
            ("system", "api_retry") => {
                let line = format!(
                    "API retry {}/{} after error {} ({})",
                    value["attempt"],
                    value["max_retries"],
                    value["error_status"],
                    value["error"].as_str().unwrap_or("?")
                );
                self.progress = Some(format!("turn {}: {}", self.turns.max(1), line));
                (Change::Progress, Some(format!("[retry] {line}")))
            }
            ("system", "permission_denied") => (
                Change::None,
                Some(format!(
                    "[denied] {}: {}",
                    value["tool_name"].as_str().unwrap_or("?"),
                    value["message"].as_str().unwrap_or("")
                )),
            ),
            ("assistant", _) => {
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
                            self.progress = Some(format!("turn {}: {name}", self.turns));
                            lines.push(format!(
                                "[turn {}] tool {name}: {}",
                                self.turns,
                                clip(&block["input"].to_string(), 300)
                            ));
                        }
                        Some("text") => {
                            self.progress = Some(format!("turn {}: writing", self.turns));
                            lines.push(format!(
                                "[turn {}] {}",
                                self.turns,
                                block["text"].as_str().unwrap_or_default()
                            ));
                        }
                        Some("thinking") => {
                            self.progress = Some(format!("turn {}: thinking", self.turns));
                        }
                        _ => {}
                    }
                }
                let text = (!lines.is_empty()).then(|| lines.join("\n"));
                (Change::Progress, text)
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
                        lines.push(format!("  [{tag}] {}", clip(&content, 300)));
                    }
                }
                (Change::None, (!lines.is_empty()).then(|| lines.join("\n")))
            }
            ("result", _) => {
                if let Some(session) = value["session_id"].as_str() {
                    self.session_id = Some(session.to_owned());
                }
                let line = format!(
                    "[result] {} (is_error {}, turns {}, cost ${}): {}",
                    subtype,
                    value["is_error"],
                    value["num_turns"],
                    value["total_cost_usd"],
                    result_text(&value).unwrap_or_default()
                );
                self.result = Some(value);
                (Change::Progress, Some(line))
            }
            _ => (Change::None, None),
        }
    }
}

fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max).collect();
    out.push('…');
    out
}

fn result_text(value: &Value) -> Option<String> {
    value["result"].as_str().map(str::to_owned)
}

/// How the agent process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Exit {
    pub code: Option<i32>,
    pub signal: Option<i32>,
}

/// Why ccmp stopped the agent, if it did.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Stop {
    Cancelled(String),
    TimedOut(f64),
}

/// Judges a finished run: the terminal state and the outcome to record.
pub(crate) fn conclude(
    state: &StreamState,
    exit: Exit,
    stop: Option<Stop>,
    stderr_tail: &str,
) -> (TaskStatus, Outcome) {
    let mut outcome = Outcome {
        exit_code: exit.code,
        signal: exit.signal,
        ..Outcome::default()
    };
    if let Some(result) = &state.result {
        outcome.is_error = result["is_error"].as_bool();
        outcome.subtype = result["subtype"].as_str().map(str::to_owned);
        outcome.result = result_text(result);
        outcome.num_turns = result["num_turns"].as_u64();
        outcome.cost_usd = result["total_cost_usd"].as_f64();
        outcome.usage = result.get("usage").filter(|u| !u.is_null()).cloned();
        outcome.permission_denials = result["permission_denials"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        outcome.api_error_status = result["api_error_status"].as_i64();
        outcome.terminal_reason = result["terminal_reason"].as_str().map(str::to_owned);
    }
    let hint = stderr_hint(stderr_tail);
    let (status, error) = match (stop, &state.result) {
        (Some(Stop::Cancelled(reason)), _) => (TaskStatus::Cancelled, Some(reason)),
        (Some(Stop::TimedOut(secs)), _) => (
            TaskStatus::TimedOut,
            Some(format!(
                "timed out after {secs}s; the agent was stopped (raise the timeout to give it longer)"
            )),
        ),
        (None, Some(result)) if result["is_error"] == false => {
            if exit.code == Some(0) {
                (TaskStatus::Succeeded, None)
            } else {
                (
                    TaskStatus::Failed,
                    Some(format!(
                        "the agent reported success but {}",
                        describe_exit(exit)
                    )),
                )
            }
        }
        (None, Some(result)) => (
            TaskStatus::Failed,
            Some(with_hint(result_error(result), hint)),
        ),
        (None, None) => {
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
            (TaskStatus::Failed, Some(with_hint(text, hint)))
        }
    };
    outcome.error = error;
    (status, outcome)
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

fn describe_exit(exit: Exit) -> String {
    match (exit.code, exit.signal) {
        (_, Some(sig)) => format!("was killed by signal {sig} ({})", signal_name(sig)),
        (Some(143), _) => "was terminated (exit 143, SIGTERM)".to_owned(),
        (Some(code), _) => format!("exited with code {code}"),
        (None, None) => "ended".to_owned(),
    }
}

/// The usual name of a signal number.
pub fn signal_name(sig: i32) -> &'static str {
    match sig {
        1 => "SIGHUP",
        2 => "SIGINT",
        3 => "SIGQUIT",
        6 => "SIGABRT",
        9 => "SIGKILL",
        11 => "SIGSEGV",
        13 => "SIGPIPE",
        15 => "SIGTERM",
        _ => "signal",
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

fn last_lines(text: &str, n: usize) -> Option<String> {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    if lines.is_empty() {
        return None;
    }
    Some(clip(
        &lines[lines.len().saturating_sub(n)..].join(" | "),
        600,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const INIT: &str = r#"{"type":"system","subtype":"init","cwd":"/w","session_id":"110dc75a-b7fc-47a7-a40c-63d2627fde90","model":"claude-opus-5-5"}"#;
    const TOOL: &str = r#"{"type":"assistant","message":{"id":"msg_1","content":[{"type":"tool_use","id":"t1","name":"Bash","input":{"command":"echo hi"}}]}}"#;
    const TEXT: &str = r#"{"type":"assistant","message":{"id":"msg_2","content":[{"type":"text","text":"BASH-DONE"}]}}"#;
    const OK: &str = r#"{"type":"result","subtype":"success","is_error":false,"num_turns":2,"result":"BASH-DONE","session_id":"110dc75a-b7fc-47a7-a40c-63d2627fde90","total_cost_usd":0.02172,"usage":{"input_tokens":5195},"permission_denials":[],"api_error_status":null}"#;
    const API_529: &str = r#"{"type":"result","subtype":"success","is_error":true,"num_turns":1,"result":"API Error: 529 Overloaded. This is a server-side issue","api_error_status":529,"total_cost_usd":0,"terminal_reason":"api_error"}"#;
    const MAX_TURNS: &str = r#"{"type":"result","subtype":"error_max_turns","is_error":true,"num_turns":2,"errors":["Reached maximum number of turns (1)"],"terminal_reason":"max_turns"}"#;

    fn run(lines: &[&str]) -> StreamState {
        let mut state = StreamState::default();
        for line in lines {
            state.feed(line.as_bytes());
        }
        state
    }

    const EXIT_0: Exit = Exit {
        code: Some(0),
        signal: None,
    };
    const EXIT_1: Exit = Exit {
        code: Some(1),
        signal: None,
    };

    #[test]
    fn tracks_session_turns_and_progress() {
        let mut state = StreamState::default();
        assert_eq!(state.feed(INIT.as_bytes()).0, Change::Progress);
        state.feed(TOOL.as_bytes());
        assert_eq!(state.progress.as_deref(), Some("turn 1: Bash"));
        state.feed(TEXT.as_bytes());
        assert_eq!(state.turns, 2);
        let (_, line) = state.feed(b"not json \xff");
        assert!(line.unwrap().contains("not json"));
        assert_eq!(state.non_json_lines, 1);
        assert_eq!(
            state.session_id.as_deref(),
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
        let error = outcome.error.unwrap();
        assert!(
            error.contains("529") && error.contains("Overloaded"),
            "{error}"
        );
        assert_eq!(outcome.api_error_status, Some(529));
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
        let (status, outcome) = conclude(&StreamState::default(), EXIT_1, None, stderr);
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
            allowed_tools: vec!["Bash(git log:*)".into()],
            ..crate::TaskRequest::new("--model=evil -rf please")
        }
        .validate(&"sh".into())
        .map(|mut s| {
            s.working_dir = dir;
            s
        })
        .unwrap();
        let inv = invocation(&spec);
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

    proptest! {
        #[test]
        fn any_bytes_never_panic_the_stream_parser(lines in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..20)) {
            let mut state = StreamState::default();
            for line in &lines {
                state.feed(line);
            }
            let _ = conclude(&state, Exit { code: Some(0), signal: None }, None, "");
        }

        #[test]
        fn json_shaped_lines_never_panic_the_stream_parser(kind in "(system|assistant|user|result|other)", sub in "[a-z_]{0,12}", body in "\\\\PC{0,200}") {
            let line = format!(r#"{{"type":"{kind}","subtype":"{sub}","message":{{"content":[{{"type":"tool_use","name":{body:?}}}]}},"result":{body:?}}}"#);
            let mut state = StreamState::default();
            state.feed(line.as_bytes());
            let _ = conclude(&state, Exit { code: Some(1), signal: None }, None, &body);
        }
    }
}
