//! What a task runs: the caller's [`TaskRequest`] and the validated [`TaskSpec`].
//!
//! Validation happens once, before anything is written: a request that fails it leaves no trace
//! on disk. A spec is stored with its working dir canonicalised and its agent program resolved
//! to an absolute path, so a runner started later in another environment runs the same thing.
//! What every agent shares is here; what one agent alone understands is in its
//! [`AgentOptions`], which validates itself.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::agent::{AgentKind, AgentOptions, ClaudeOptions, resolve_program};
use crate::error::{SpecError, escape};
use crate::group::GroupName;
use crate::id::TaskId;
use crate::worktree::Isolation;

/// The largest prompt accepted, in bytes (1 MiB).
pub const MAX_PROMPT_BYTES: usize = 1024 * 1024;

/// The most dependencies one task may have.
pub const MAX_DEPENDENCIES: usize = 100;

/// The longest timeout accepted, in seconds (30 days).
pub const MAX_TIMEOUT_SECS: f64 = 30.0 * 24.0 * 3600.0;

/// A request to start a task, as a frontend receives it. Everything but the prompt is optional.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TaskRequest {
    /// What the agent should do. Required, non-empty, at most 1 MiB.
    pub prompt: String,
    /// Directory to run in. Defaults to the caller's current directory.
    pub working_dir: Option<PathBuf>,
    /// The model, in the agent's own terms (for Claude Code: `sonnet`, `opus`, `haiku` or a full
    /// model id).
    pub model: Option<String>,
    /// Stop the agent after this many seconds of running.
    pub timeout_secs: Option<f64>,
    /// Extra environment variables for the agent.
    pub env: BTreeMap<String, String>,
    /// Run in the working dir, or in a new git worktree of its repository.
    pub isolation: Option<Isolation>,
    /// The agent's session to resume, for follow-ups.
    pub resume_session: Option<String>,
    /// The agent program. Defaults to the configured one (for Claude Code: `claude`, or
    /// `CCMP_CLAUDE_BIN`).
    pub program: Option<PathBuf>,
    /// The agent, with the settings only it understands (default: Claude Code).
    pub agent: AgentOptions,
    /// The group the task belongs to (default `default`). It must exist: see
    /// [`Ccmp::add_group`](crate::Ccmp::add_group).
    pub group: Option<String>,
    /// Tasks that must succeed before this one starts. If one ends any other way, this task
    /// ends `skipped` without running. They must exist.
    pub after: Vec<TaskId>,
    /// Run the task again this many times if the model API fails it for a while (overloaded,
    /// unavailable); default: the settings' `retries`. At most 10.
    pub retries: Option<u32>,
    /// Park on a usage limit until it resets (true) or fail (false); default: the settings'.
    pub park_on_usage_limit: Option<bool>,
    /// Show a desktop notification when the task ends (or ring the bell of the terminal it was
    /// started from, when there is no notification daemon).
    pub notify: bool,
}

impl TaskRequest {
    /// A request with just a prompt.
    pub fn new(prompt: impl Into<String>) -> Self {
        Self {
            prompt: prompt.into(),
            ..Self::default()
        }
    }

    /// Sets the working dir.
    pub fn working_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.working_dir = Some(dir.into());
        self
    }

    /// Sets the timeout in seconds.
    pub fn timeout_secs(mut self, secs: f64) -> Self {
        self.timeout_secs = Some(secs);
        self
    }

    /// Adds an environment variable for the agent.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.insert(key.into(), value.into());
        self
    }

    /// Sets the agent program.
    pub fn program(mut self, program: impl Into<PathBuf>) -> Self {
        self.program = Some(program.into());
        self
    }

    /// Runs Claude Code with these settings.
    pub fn claude(mut self, options: ClaudeOptions) -> Self {
        self.agent = AgentOptions::Claude(options);
        self
    }

    /// Validates the request into a spec. `default_program` is run when the request names none.
    pub fn validate(self, default_program: &OsString) -> Result<TaskSpec, SpecError> {
        if self.prompt.trim().is_empty() {
            return Err(SpecError::EmptyPrompt);
        }
        if self.prompt.contains('\0') {
            return Err(SpecError::InvalidField {
                field: "prompt",
                value: escape(&self.prompt),
                reason: "it contains NUL bytes; send text",
            });
        }
        if self.prompt.len() > MAX_PROMPT_BYTES {
            return Err(SpecError::PromptTooLarge {
                len: self.prompt.len(),
                max: MAX_PROMPT_BYTES,
            });
        }
        let kind = self.agent.kind();
        let working_dir = match self.working_dir {
            Some(dir) => canonical_dir(&dir)?,
            None => std::env::current_dir().map_err(SpecError::NoCurrentDir)?,
        };
        let model = self
            .model
            .map(|m| check_token("model", m, kind.model_hint()))
            .transpose()?;
        if let Some(secs) = self.timeout_secs
            && !(secs.is_finite() && secs > 0.0 && secs <= MAX_TIMEOUT_SECS)
        {
            return Err(SpecError::OutOfRange {
                field: "timeout",
                expected: "a number of seconds above 0 and at most 30 days (2592000)",
                value: secs.to_string(),
            });
        }
        let agent = self.agent.validate()?;
        let resume_session = self
            .resume_session
            .map(|s| kind.check_session(&s))
            .transpose()?;
        for (key, value) in &self.env {
            if key.is_empty() || key.contains(['=', '\0']) {
                return Err(SpecError::InvalidField {
                    field: "env name",
                    value: escape(key),
                    reason: "names must be non-empty and contain no `=` or NUL",
                });
            }
            if value.contains('\0') {
                return Err(SpecError::InvalidField {
                    field: "env value",
                    value: escape(key),
                    reason: "values must not contain NUL",
                });
            }
        }
        let group = match self.group {
            Some(name) => name.parse::<GroupName>()?,
            None => GroupName::default(),
        };
        let mut after: Vec<TaskId> = Vec::with_capacity(self.after.len());
        for id in self.after {
            if !after.contains(&id) {
                after.push(id);
            }
        }
        if after.len() > MAX_DEPENDENCIES {
            return Err(SpecError::OutOfRange {
                field: "after",
                expected: "at most 100 tasks",
                value: after.len().to_string(),
            });
        }
        if let Some(retries) = self.retries
            && retries > crate::settings::MAX_RETRIES
        {
            return Err(SpecError::OutOfRange {
                field: "retries",
                expected: "a whole number from 0 to 10",
                value: retries.to_string(),
            });
        }
        let program = resolve_program(
            kind,
            self.program
                .map(PathBuf::into_os_string)
                .as_ref()
                .unwrap_or(default_program),
            &working_dir,
        )?;
        Ok(TaskSpec {
            prompt: self.prompt,
            working_dir,
            model,
            timeout_secs: self.timeout_secs,
            env: self.env,
            isolation: self.isolation.unwrap_or_default(),
            resume_session,
            program,
            agent,
            group,
            after,
            retries: self.retries,
            park_on_usage_limit: self.park_on_usage_limit,
            notify: self.notify.then(NotifyWhenDone::here),
        })
    }
}

/// A validated task: what the runner executes. Stored inside the [`TaskRecord`](crate::TaskRecord).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskSpec {
    /// What the agent should do.
    pub prompt: String,
    /// Canonical working dir.
    pub working_dir: PathBuf,
    /// The model, in the agent's terms.
    #[serde(default)]
    pub model: Option<String>,
    /// Timeout in seconds, counted from the agent's start.
    #[serde(default)]
    pub timeout_secs: Option<f64>,
    /// Extra environment for the agent.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Whether the task runs in a worktree of its own.
    #[serde(default)]
    pub isolation: Isolation,
    /// The agent session this task resumes (follow-ups).
    #[serde(default)]
    pub resume_session: Option<String>,
    /// Absolute path of the agent program.
    pub program: PathBuf,
    /// The agent and its own settings.
    pub agent: AgentOptions,
    /// The group the task belongs to. Not written when `default`, so that records of tasks that
    /// use no group read the same in builds from before groups.
    #[serde(default, skip_serializing_if = "GroupName::is_default")]
    pub group: GroupName,
    /// Tasks that must succeed before this one starts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub after: Vec<TaskId>,
    /// Retries after API failures; `None`: the settings'.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
    /// Whether to park on a usage limit; `None`: the settings'.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub park_on_usage_limit: Option<bool>,
    /// A one-off notification when the task ends (`ccmp start --notify`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify: Option<NotifyWhenDone>,
}

/// How to tell a person that a task ended, when they asked at its start: found where they
/// asked, since the process that delivers the notice may have another environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotifyWhenDone {
    /// `notify-send`, as found on the PATH of the frontend that started the task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify_send: Option<PathBuf>,
    /// The variables that reach the person's desktop session (`DBUS_SESSION_BUS_ADDRESS`,
    /// `DISPLAY`, `WAYLAND_DISPLAY`, `XDG_RUNTIME_DIR`), as that frontend had them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub desktop_env: BTreeMap<String, String>,
    /// The terminal the task was started from: its bell rings when there is no desktop
    /// notification daemon.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tty: Option<PathBuf>,
}

impl NotifyWhenDone {
    /// How to reach the person running this process.
    pub fn here() -> Self {
        Self {
            notify_send: which::which("notify-send").ok(),
            desktop_env: crate::events::DESKTOP_ENV
                .iter()
                .filter_map(|name| Some(((*name).to_owned(), std::env::var(name).ok()?)))
                .collect(),
            tty: crate::events::controlling_terminal(),
        }
    }
}

impl TaskSpec {
    /// Which agent the task runs.
    pub fn agent_kind(&self) -> AgentKind {
        self.agent.kind()
    }

    /// What the task asks a person about before a tool use runs (nothing, for agents without
    /// approvals).
    pub fn ask_policy(&self) -> crate::approval::policy::AskPolicy {
        self.agent
            .claude()
            .map(|c| c.ask_policy())
            .unwrap_or_default()
    }

    /// What the task may spend, if it says (its `max_budget_usd`).
    pub fn max_budget_usd(&self) -> Option<f64> {
        self.agent.claude().and_then(|c| c.max_budget_usd)
    }

    /// A request that reproduces this spec, for follow-ups that change only some fields.
    pub fn to_request(&self) -> TaskRequest {
        TaskRequest {
            prompt: self.prompt.clone(),
            working_dir: Some(self.working_dir.clone()),
            model: self.model.clone(),
            timeout_secs: self.timeout_secs,
            env: self.env.clone(),
            isolation: Some(self.isolation),
            resume_session: self.resume_session.clone(),
            program: Some(self.program.clone()),
            agent: self.agent.clone(),
            group: Some(self.group.to_string()),
            after: Vec::new(),
            retries: self.retries,
            park_on_usage_limit: self.park_on_usage_limit,
            // A follow-up of a task someone asked to hear about is heard about too.
            notify: self.notify.is_some(),
        }
    }
}

/// A directory as given, made canonical; an error if it is missing or not a directory.
pub(crate) fn canonical_dir(dir: &Path) -> Result<PathBuf, SpecError> {
    let canonical = dir
        .canonicalize()
        .map_err(|source| SpecError::MissingWorkingDir {
            path: dir.to_owned(),
            source,
        })?;
    if !canonical.is_dir() {
        return Err(SpecError::WorkingDirNotDir {
            path: dir.to_owned(),
        });
    }
    Ok(canonical)
}

/// A single flag value: printable, no whitespace, no leading `-`, at most 200 bytes.
pub(crate) fn check_token(
    field: &'static str,
    value: String,
    reason: &'static str,
) -> Result<String, SpecError> {
    let ok = !value.is_empty()
        && value.len() <= 200
        && !value.starts_with('-')
        && value.chars().all(|c| c.is_ascii_graphic());
    if ok {
        Ok(value)
    } else {
        Err(SpecError::InvalidField {
            field,
            value: escape(&value),
            reason,
        })
    }
}

/// A free-text flag value: no control characters, no leading `-`, non-empty.
pub(crate) fn check_text(field: &'static str, value: String) -> Result<String, SpecError> {
    let ok =
        !value.trim().is_empty() && !value.starts_with('-') && !value.chars().any(char::is_control);
    if ok {
        Ok(value)
    } else {
        Err(SpecError::InvalidField {
            field,
            value: escape(&value),
            reason: "must be non-empty, not start with `-`, and have no control characters",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh() -> OsString {
        OsString::from("sh")
    }

    fn err(req: TaskRequest) -> String {
        req.validate(&sh()).unwrap_err().to_string()
    }

    #[test]
    fn defaults_and_canonical_paths() {
        let dir = tempfile::tempdir().unwrap();
        let spec = TaskRequest::new("hi")
            .working_dir(dir.path().join("."))
            .validate(&sh())
            .unwrap();
        assert!(spec.agent.claude().unwrap().skips_permissions());
        assert_eq!(spec.working_dir, dir.path().canonicalize().unwrap());
        assert!(spec.program.is_absolute());
    }

    #[test]
    fn bad_requests_say_what_is_wrong() {
        assert!(err(TaskRequest::new("  \n")).contains("empty"));
        assert!(err(TaskRequest::new("x".repeat(MAX_PROMPT_BYTES + 1))).contains("over the limit"));
        assert!(
            err(TaskRequest::new("x").working_dir("/nonexistent/ccmp")).contains("does not exist")
        );
        assert!(
            err(TaskRequest::new("x").working_dir("/etc/hostname")).contains("not a directory")
        );
        for model in ["son\nnet", "-x", "", "a b"] {
            let e = err(TaskRequest {
                model: Some(model.into()),
                ..TaskRequest::new("x")
            });
            assert!(e.starts_with("model"), "{e}");
        }
        for t in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            assert!(err(TaskRequest::new("x").timeout_secs(t)).contains("timeout"));
        }
        let e = err(TaskRequest::new("x").program("/nonexistent/claude"));
        assert!(e.contains("CCMP_CLAUDE_BIN"), "{e}");
        let e = TaskRequest::new("x")
            .validate(&OsString::from("no-such-claude-ccmp"))
            .unwrap_err();
        assert!(e.to_string().contains("on PATH"), "{e}");
        assert!(
            err(TaskRequest::new("x").claude(ClaudeOptions {
                max_turns: Some(0),
                ..ClaudeOptions::default()
            }))
            .contains("max_turns")
        );
        assert!(
            err(TaskRequest {
                resume_session: Some("../x".into()),
                ..TaskRequest::new("x")
            })
            .contains("uuid")
        );
        assert!(err(TaskRequest::new("x").env("A=B", "c")).contains("env"));
        assert!(
            err(TaskRequest::new("x").claude(ClaudeOptions {
                permission_mode: Some("yolo".into()),
                ..ClaudeOptions::default()
            }))
            .contains("acceptEdits")
        );
    }
}
