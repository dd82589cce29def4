//! The agent seam: which program a task runs, how it is invoked, how its output is read, and how
//! its end is judged.
//!
//! Everything above this module (the store, the queue, the supervisors, the frontends) speaks of
//! tasks, sessions, results, turns, costs and tokens; everything that depends on one agent's
//! flags, output format or quirks lives in that agent's file (`claude.rs`). Agents are an enum,
//! not a public trait: each new agent is a variant here and a file beside `claude.rs`, and the
//! compiler lists every place that must learn about it.
//!
//! The prompt never meets a shell or the agent's flag parser: it is written to the agent's stdin.

mod claude;
mod codex;
mod gemini;
pub(crate) mod long_line;

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

pub use self::claude::{ClaudeOptions, ClaudeOutcome, PERMISSION_MODES, STRIPPED_ENV};
pub use self::codex::{CodexOptions, SANDBOX_MODES};
pub use self::gemini::{APPROVAL_MODES, GeminiOptions};
use crate::error::SpecError;
use crate::spec::TaskSpec;
pub use crate::task::AgentOutcome;
use crate::task::{Outcome, TaskStatus};

/// Environment variable that marks every process of a task's tree with the task id. Processes
/// that carry it are swept when the task ends, even those in a session of their own.
pub const TASK_ENV: &str = "CCMP_TASK_ID";

/// Which agent program a task runs.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default,
)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum AgentKind {
    /// Claude Code (`claude -p`).
    #[default]
    Claude,
    /// OpenAI's Codex CLI (`codex exec --json`).
    Codex,
    /// Google's Gemini CLI (`gemini -p`).
    Gemini,
}

impl AgentKind {
    /// Every agent ccmp can run.
    pub const ALL: [AgentKind; 3] = [Self::Claude, Self::Codex, Self::Gemini];

    /// The agent's name, as frontends and records spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Claude => "claude",
            Self::Codex => "codex",
            Self::Gemini => "gemini",
        }
    }

    /// The program run when nothing else is configured (looked up on PATH).
    pub fn default_program(self) -> &'static str {
        match self {
            Self::Claude => "claude",
            Self::Codex => "codex",
            Self::Gemini => "gemini",
        }
    }

    /// The environment variable that names the agent's program.
    pub fn program_env(self) -> &'static str {
        match self {
            Self::Claude => crate::config::CLAUDE_BIN_ENV,
            Self::Codex => crate::config::CODEX_BIN_ENV,
            Self::Gemini => crate::config::GEMINI_BIN_ENV,
        }
    }

    /// How to install the agent, for errors about a missing program.
    pub fn install_hint(self) -> String {
        match self {
            Self::Claude => format!(
                "install Claude Code (`npm install -g @anthropic-ai/claude-code`) or set {} to the path of the `claude` binary",
                self.program_env()
            ),
            Self::Codex => format!(
                "install the Codex CLI (`npm install -g @openai/codex`) or set {} to the path of the `codex` binary",
                self.program_env()
            ),
            Self::Gemini => format!(
                "install the Gemini CLI (`npm install -g @google/gemini-cli`) or set {} to the path of the `gemini` binary",
                self.program_env()
            ),
        }
    }

    /// What a model name looks like for this agent, for errors about a bad one.
    pub(crate) fn model_hint(self) -> &'static str {
        match self {
            Self::Claude => "use an alias (sonnet, opus, haiku) or a full model id",
            Self::Codex => "use a model id Codex knows, such as gpt-5-codex",
            Self::Gemini => "use a model id Gemini knows, such as gemini-2.5-pro",
        }
    }

    /// Checks a session id to resume, returning it in the agent's canonical form.
    pub(crate) fn check_session(self, session: &str) -> Result<String, SpecError> {
        match self {
            Self::Claude => claude::check_session(session),
            Self::Codex => codex::check_session(session),
            Self::Gemini => gemini::check_session(session),
        }
    }

    /// Variables removed from the agent's environment.
    pub(crate) fn stripped_env(self) -> &'static [&'static str] {
        match self {
            Self::Claude => &STRIPPED_ENV,
            // A Codex run inside a Claude Code task is fine; nothing of Codex's own leaks.
            Self::Codex | Self::Gemini => &[],
        }
    }

    /// A parser for this agent's output.
    pub(crate) fn parser(self) -> OutputParser {
        match self {
            Self::Claude => OutputParser::Claude(claude::ClaudeStream::default()),
            Self::Codex => OutputParser::Codex(codex::CodexStream::default()),
            Self::Gemini => OutputParser::Gemini(gemini::GeminiStream::default()),
        }
    }
}

impl fmt::Display for AgentKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AgentKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        crate::error::parse_name(s, &Self::ALL, Self::as_str, "agent")
    }
}

/// The agent a task runs, with the settings only that agent understands.
///
/// What every agent shares (prompt, working dir, model, timeout, environment, the session to
/// resume) is in [`TaskSpec`]; this holds the rest, validated by the agent itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentOptions {
    /// Claude Code.
    Claude(ClaudeOptions),
    /// OpenAI's Codex CLI.
    Codex(CodexOptions),
    /// Google's Gemini CLI.
    Gemini(GeminiOptions),
}

impl Default for AgentOptions {
    fn default() -> Self {
        Self::Claude(ClaudeOptions::default())
    }
}

impl From<ClaudeOptions> for AgentOptions {
    fn from(options: ClaudeOptions) -> Self {
        Self::Claude(options)
    }
}

impl AgentOptions {
    /// Which agent.
    pub fn kind(&self) -> AgentKind {
        match self {
            Self::Claude(_) => AgentKind::Claude,
            Self::Codex(_) => AgentKind::Codex,
            Self::Gemini(_) => AgentKind::Gemini,
        }
    }

    /// The options of a task run by `kind`, from the settings frontends take for every agent:
    /// Claude Code's (`claude`) and Codex's `sandbox`. A setting the agent does not have is an
    /// error that names it, so nothing is silently ignored.
    pub fn for_agent(
        kind: AgentKind,
        claude: ClaudeOptions,
        sandbox: Option<String>,
    ) -> Result<Self, SpecError> {
        match kind {
            AgentKind::Claude => {
                if sandbox.is_some() {
                    return Err(SpecError::NotForAgent {
                        field: "sandbox",
                        owner: "Codex",
                        agent: "Claude Code",
                        instead: "use permission_mode or allowed_tools",
                    });
                }
                Ok(Self::Claude(claude))
            }
            AgentKind::Codex => {
                claude.only_shared("Codex", "a Codex task takes skip_permissions and sandbox")?;
                Ok(Self::Codex(CodexOptions {
                    skip_permissions: claude.skip_permissions,
                    sandbox,
                }))
            }
            AgentKind::Gemini => {
                if sandbox.is_some() {
                    return Err(SpecError::NotForAgent {
                        field: "sandbox",
                        owner: "Codex",
                        agent: "Gemini CLI",
                        instead: "a Gemini task takes skip_permissions",
                    });
                }
                claude.only_shared("Gemini CLI", "a Gemini task takes skip_permissions")?;
                Ok(Self::Gemini(GeminiOptions {
                    skip_permissions: claude.skip_permissions,
                    approval_mode: None,
                }))
            }
        }
    }

    /// The Claude Code settings, if the agent is Claude Code.
    pub fn claude(&self) -> Option<&ClaudeOptions> {
        match self {
            Self::Claude(options) => Some(options),
            Self::Codex(_) | Self::Gemini(_) => None,
        }
    }

    /// Validates the agent's own settings (nothing is written when this fails).
    pub(crate) fn validate(self) -> Result<Self, SpecError> {
        match self {
            Self::Claude(options) => options.validate().map(Self::Claude),
            Self::Codex(options) => options.validate().map(Self::Codex),
            Self::Gemini(options) => options.validate().map(Self::Gemini),
        }
    }

    /// The command line for `spec`, without the prompt (which goes on stdin).
    pub(crate) fn args(&self, spec: &TaskSpec) -> Vec<OsString> {
        match self {
            Self::Claude(options) => options.args(spec),
            Self::Codex(options) => options.args(spec),
            Self::Gemini(options) => options.args(spec),
        }
    }
}

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
    Invocation {
        program: spec.program.clone(),
        args: spec.agent.args(spec),
    }
}

/// What the runner keeps in the record while the agent runs: it is saved whenever it changes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Live {
    /// The session (or thread) the agent reported.
    pub session_id: Option<String>,
    /// The model the agent reported using.
    pub model: Option<String>,
    /// Latest activity, for example "turn 3: Bash".
    pub progress: Option<String>,
}

/// What one line of output gave.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Parsed {
    /// Whether [`Live`] changed.
    pub changed: bool,
    /// A line for the readable transcript.
    pub transcript: Option<String>,
}

/// Reads an agent's stdout, line by line.
#[derive(Debug, Clone)]
pub(crate) enum OutputParser {
    Claude(claude::ClaudeStream),
    Codex(codex::CodexStream),
    Gemini(gemini::GeminiStream),
}

impl OutputParser {
    /// A parser that knows only `live`: for a run whose output could not be read to the end.
    pub fn knowing(kind: AgentKind, live: Live) -> Self {
        let mut parser = kind.parser();
        match &mut parser {
            Self::Claude(stream) => stream.live = live,
            Self::Codex(stream) => stream.live = live,
            Self::Gemini(stream) => stream.live = live,
        }
        parser
    }

    /// Feeds one line of stdout (with or without its newline).
    pub fn feed(&mut self, line: &[u8]) -> Parsed {
        match self {
            Self::Claude(stream) => stream.feed(line),
            Self::Codex(stream) => stream.feed(line),
            Self::Gemini(stream) => stream.feed(line),
        }
    }

    /// Takes a line too long to parse whole, as [`long_line::LongResultLine`] read it.
    pub fn feed_long(&mut self, long: long_line::LongResult) -> Parsed {
        match self {
            Self::Claude(stream) => stream.feed_long(long),
            // Their events are small; a huge line is only in the stdout log.
            Self::Codex(_) | Self::Gemini(_) => Parsed {
                changed: false,
                transcript: Some(format!(
                    "[output] a line of {} bytes, too long to show here; it is in the stdout log",
                    long.line_bytes
                )),
            },
        }
    }

    /// Whether the agent wrote its result line.
    pub fn saw_result(&self) -> bool {
        match self {
            Self::Claude(stream) => stream.result.is_some(),
            Self::Codex(stream) => stream.saw_result(),
            Self::Gemini(stream) => stream.saw_result(),
        }
    }

    /// What the agent has said about itself so far.
    pub fn live(&self) -> &Live {
        match self {
            Self::Claude(stream) => &stream.live,
            Self::Codex(stream) => &stream.live,
            Self::Gemini(stream) => &stream.live,
        }
    }

    /// Judges a finished run that ccmp did not stop: whether it succeeded, and what it reported.
    fn judge(&self, exit: Exit, stderr_tail: &str) -> (bool, Outcome) {
        match self {
            Self::Claude(stream) => stream.judge(exit, stderr_tail),
            Self::Codex(stream) => stream.judge(exit, stderr_tail),
            Self::Gemini(stream) => stream.judge(exit, stderr_tail),
        }
    }
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
    /// A time limit ccmp did not set ran out (a Slurm job's): the error says which.
    TimeLimit(String),
}

/// Judges a finished run: the terminal state and the outcome to record. A stop by ccmp decides
/// the state whatever the agent said; otherwise the agent's own judgement does.
pub(crate) fn conclude(
    parser: &OutputParser,
    exit: Exit,
    stop: Option<Stop>,
    stderr_tail: &str,
) -> (TaskStatus, Outcome) {
    let (succeeded, mut outcome) = parser.judge(exit, stderr_tail);
    outcome.exit_code = exit.code;
    outcome.signal = exit.signal;
    let status = match stop {
        Some(Stop::Cancelled(reason)) => {
            outcome.error = Some(reason);
            TaskStatus::Cancelled
        }
        Some(Stop::TimedOut(secs)) => {
            outcome.error = Some(format!(
                "timed out after {secs}s; the agent was stopped (raise the timeout to give it longer)"
            ));
            TaskStatus::TimedOut
        }
        Some(Stop::TimeLimit(reason)) => {
            outcome.error = Some(reason);
            TaskStatus::TimedOut
        }
        None if succeeded => {
            outcome.error = None;
            TaskStatus::Succeeded
        }
        None => TaskStatus::Failed,
    };
    (status, outcome)
}

/// Resolves the agent program to an absolute path: a bare name through PATH, a relative path
/// against the working dir.
pub(crate) fn resolve_program(
    kind: AgentKind,
    program: &OsString,
    working_dir: &Path,
) -> Result<PathBuf, SpecError> {
    let path = Path::new(program);
    let on_path = path.components().count() == 1 && !path.is_absolute();
    let found = if on_path {
        which::which(program).ok()
    } else {
        which::which(working_dir.join(path)).ok()
    };
    if let Some(found) = found.and_then(|p| p.canonicalize().ok()) {
        return Ok(found);
    }
    // Not runnable: say why, if something by that name is there.
    let candidates: Vec<PathBuf> = if on_path {
        std::env::var_os("PATH")
            .map(|paths| {
                std::env::split_paths(&paths)
                    .map(|dir| dir.join(path))
                    .collect()
            })
            .unwrap_or_default()
    } else {
        vec![working_dir.join(path)]
    };
    if let Some(there) = candidates.into_iter().find(|c| c.exists()) {
        let reason = if there.is_dir() {
            "it is a directory"
        } else {
            "it is not executable (`chmod +x` it)"
        };
        return Err(SpecError::AgentNotExecutable {
            path: there,
            reason,
            hint: kind.install_hint(),
        });
    }
    Err(SpecError::AgentNotFound {
        program: program.to_string_lossy().into_owned(),
        on_path,
        hint: kind.install_hint(),
    })
}

/// A line of an agent's JSON-lines stdout: its value, or what to record for a line that is
/// not JSON (counted in `non_json_lines`; shown in the transcript as output).
pub(crate) fn json_line(
    line: &[u8],
    non_json_lines: &mut u64,
) -> Result<serde_json::Value, Parsed> {
    let trimmed = line.trim_ascii();
    if trimmed.is_empty() {
        return Err(Parsed::default());
    }
    serde_json::from_slice(trimmed).map_err(|_| {
        *non_json_lines += 1;
        Parsed {
            changed: false,
            transcript: Some(format!("[output] {}", String::from_utf8_lossy(trimmed))),
        }
    })
}

/// A session id that is a uuid, hyphenated; else an error saying what the agent's ids are.
pub(crate) fn uuid_session(session: &str, reason: &'static str) -> Result<String, SpecError> {
    uuid::Uuid::parse_str(session)
        .map(|u| u.hyphenated().to_string())
        .map_err(|_| SpecError::InvalidField {
            field: "resume_session",
            value: crate::error::escape(session),
            reason,
        })
}

/// How an exit reads in an error message.
pub(crate) fn describe_exit(exit: Exit) -> String {
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

/// The last `n` non-blank lines of `text`, joined, at most 600 characters.
pub(crate) fn last_lines(text: &str, n: usize) -> Option<String> {
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

/// At most `max` characters of `text`, with `…` if cut.
pub(crate) fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max).collect();
    out.push('…');
    out
}
