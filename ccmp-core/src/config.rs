//! Settings of a [`Ccmp`](crate::Ccmp) (parallelism, grace period, agent programs), read from the
//! environment.

use std::ffi::OsString;
use std::time::Duration;

use crate::agent::AgentKind;
use crate::error::ConfigError;

/// The environment variable that sets `max_parallel`.
pub const MAX_PARALLEL_ENV: &str = "CCMP_MAX_PARALLEL";
/// The environment variable that names the Claude Code program.
pub const CLAUDE_BIN_ENV: &str = "CCMP_CLAUDE_BIN";
/// The environment variable that names the Codex CLI program.
pub const CODEX_BIN_ENV: &str = "CCMP_CODEX_BIN";
/// The environment variable that names the Gemini CLI program.
pub const GEMINI_BIN_ENV: &str = "CCMP_GEMINI_BIN";
/// The environment variable that sets the grace period between TERM and KILL, in seconds.
pub const GRACE_ENV: &str = "CCMP_GRACE_SECS";

/// Default for `max_parallel`.
pub const DEFAULT_MAX_PARALLEL: usize = 4;
/// Default grace period between TERM and KILL.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(10);

/// When [`Ccmp::start`](crate::Ccmp::start) returns, for tasks run by detached runners.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LaunchMode {
    /// Once the task's runner has taken it (holds its lock and has recorded itself), so a
    /// runner that cannot start is an error of `start`. For a frontend that exits right after
    /// starting, like the CLI: nobody would be left to notice a runner that died.
    #[default]
    AwaitReady,
    /// As soon as the record is durable and the runner is spawned. This process watches the
    /// runner and records the task `failed`, with the runner's log, if it exits before taking
    /// the task. For a frontend that lives on, like the MCP server.
    Watch,
}

/// How tasks are run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// At most this many agents run at once across every process sharing a state dir.
    pub max_parallel: usize,
    /// Time between TERM and KILL when stopping an agent.
    pub grace: Duration,
    /// The Claude Code program run when a request names none (a bare name is looked up on
    /// PATH).
    pub claude_program: OsString,
    /// The Codex CLI program, likewise.
    pub codex_program: OsString,
    /// The Gemini CLI program, likewise.
    pub gemini_program: OsString,
    /// When a start returns (detached runners only).
    pub launch: LaunchMode,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_parallel: DEFAULT_MAX_PARALLEL,
            grace: DEFAULT_GRACE,
            claude_program: OsString::from(AgentKind::Claude.default_program()),
            codex_program: OsString::from(AgentKind::Codex.default_program()),
            gemini_program: OsString::from(AgentKind::Gemini.default_program()),
            launch: LaunchMode::default(),
        }
    }
}

impl Config {
    /// The program run for `kind` when a request names none.
    pub fn program_for(&self, kind: AgentKind) -> &OsString {
        match kind {
            AgentKind::Claude => &self.claude_program,
            AgentKind::Codex => &self.codex_program,
            AgentKind::Gemini => &self.gemini_program,
        }
    }

    /// Defaults overridden by `CCMP_MAX_PARALLEL`, `CCMP_GRACE_SECS`, `CCMP_CLAUDE_BIN`,
    /// `CCMP_CODEX_BIN` and `CCMP_GEMINI_BIN`.
    pub fn from_env() -> Result<Self, ConfigError> {
        let mut config = Self::default();
        if let Some(value) = env_value(MAX_PARALLEL_ENV) {
            config.max_parallel = value
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=1024).contains(n))
                .ok_or(ConfigError::BadEnv {
                    var: MAX_PARALLEL_ENV,
                    value,
                    expected: "a whole number from 1 to 1024",
                })?;
        }
        if let Some(value) = env_value(GRACE_ENV) {
            config.grace = value
                .parse::<f64>()
                .ok()
                .filter(|s| s.is_finite() && (0.0..=3600.0).contains(s))
                .map(Duration::from_secs_f64)
                .ok_or(ConfigError::BadEnv {
                    var: GRACE_ENV,
                    value,
                    expected: "a number of seconds from 0 to 3600",
                })?;
        }
        if let Some(program) = std::env::var_os(CLAUDE_BIN_ENV).filter(|p| !p.is_empty()) {
            config.claude_program = program;
        }
        if let Some(program) = std::env::var_os(CODEX_BIN_ENV).filter(|p| !p.is_empty()) {
            config.codex_program = program;
        }
        if let Some(program) = std::env::var_os(GEMINI_BIN_ENV).filter(|p| !p.is_empty()) {
            config.gemini_program = program;
        }
        Ok(config)
    }
}

fn env_value(var: &str) -> Option<String> {
    std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map(|v| v.to_string_lossy().into_owned())
}
