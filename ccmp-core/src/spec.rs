//! What a task runs: the caller's [`TaskRequest`] and the validated [`TaskSpec`].
//!
//! Validation happens once, before anything is written: a request that fails it leaves no trace
//! on disk. A spec is stored with its working dir canonicalised and its agent program resolved
//! to an absolute path, so a runner started later in another environment runs the same thing.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{SpecError, escape};
use crate::worktree::Isolation;

/// The largest prompt accepted, in bytes (1 MiB).
pub const MAX_PROMPT_BYTES: usize = 1024 * 1024;

/// The longest timeout accepted, in seconds (30 days).
pub const MAX_TIMEOUT_SECS: f64 = 30.0 * 24.0 * 3600.0;

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

/// A request to start a task, as a frontend receives it. Everything but the prompt is optional.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TaskRequest {
    /// What the agent should do. Required, non-empty, at most 1 MiB.
    pub prompt: String,
    /// Directory to run in. Defaults to the caller's current directory.
    pub working_dir: Option<PathBuf>,
    /// Model alias (`sonnet`, `opus`, `haiku`) or full model id.
    pub model: Option<String>,
    /// Pass `--dangerously-skip-permissions` (default true).
    pub skip_permissions: Option<bool>,
    /// `--permission-mode` value.
    pub permission_mode: Option<String>,
    /// Tools allowed without asking (`--allowedTools`), e.g. `Bash(git log:*)`.
    pub allowed_tools: Vec<String>,
    /// Stop the agent after this many seconds of running.
    pub timeout_secs: Option<f64>,
    /// `--max-turns` value.
    pub max_turns: Option<i64>,
    /// `--max-budget-usd` value.
    pub max_budget_usd: Option<f64>,
    /// `--append-system-prompt` value.
    pub append_system_prompt: Option<String>,
    /// Extra directories the agent may access (`--add-dir`).
    pub add_dirs: Vec<PathBuf>,
    /// Session id to resume (`--resume`), for follow-ups.
    pub resume_session: Option<String>,
    /// The agent program. Defaults to the configured one (`claude`, or `CCMP_CLAUDE_BIN`).
    pub agent: Option<PathBuf>,
    /// Extra environment variables for the agent.
    pub env: BTreeMap<String, String>,
    /// Run in the working dir, or in a new git worktree of its repository.
    pub isolation: Option<Isolation>,
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

    /// Validates the request into a spec. `default_agent` is used when the request names none.
    pub fn validate(self, default_agent: &OsString) -> Result<TaskSpec, SpecError> {
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
        let working_dir = match self.working_dir {
            Some(dir) => canonical_dir(&dir)?,
            None => std::env::current_dir().map_err(SpecError::NoCurrentDir)?,
        };
        let model = self
            .model
            .map(|m| {
                check_token(
                    "model",
                    m,
                    "use an alias (sonnet, opus, haiku) or a full model id",
                )
            })
            .transpose()?;
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
        if let Some(secs) = self.timeout_secs
            && !(secs.is_finite() && secs > 0.0 && secs <= MAX_TIMEOUT_SECS)
        {
            return Err(SpecError::OutOfRange {
                field: "timeout",
                expected: "a number of seconds above 0 and at most 30 days (2592000)",
                value: secs.to_string(),
            });
        }
        let max_turns = self
            .max_turns
            .map(|n| {
                u32::try_from(n)
                    .ok()
                    .filter(|n| *n >= 1)
                    .ok_or(SpecError::OutOfRange {
                        field: "max_turns",
                        expected: "a whole number of at least 1",
                        value: n.to_string(),
                    })
            })
            .transpose()?;
        if let Some(usd) = self.max_budget_usd
            && !(usd.is_finite() && usd > 0.0)
        {
            return Err(SpecError::OutOfRange {
                field: "max_budget_usd",
                expected: "an amount in USD above 0",
                value: usd.to_string(),
            });
        }
        let append_system_prompt = self
            .append_system_prompt
            .map(|text| {
                if text.contains('\0') {
                    Err(SpecError::InvalidField {
                        field: "append_system_prompt",
                        value: escape(&text),
                        reason: "it contains a NUL byte",
                    })
                } else {
                    Ok(text)
                }
            })
            .transpose()?;
        let add_dirs = self
            .add_dirs
            .iter()
            .map(|d| canonical_dir(d).map_err(|_| SpecError::BadAddDir { path: d.clone() }))
            .collect::<Result<Vec<_>, _>>()?;
        let resume_session = self
            .resume_session
            .map(|s| {
                uuid::Uuid::parse_str(&s)
                    .map(|u| u.hyphenated().to_string())
                    .map_err(|_| SpecError::InvalidField {
                        field: "resume_session",
                        value: escape(&s),
                        reason: "a Claude Code session id is a uuid",
                    })
            })
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
        let agent = resolve_agent(
            self.agent
                .map(PathBuf::into_os_string)
                .as_ref()
                .unwrap_or(default_agent),
            &working_dir,
        )?;
        Ok(TaskSpec {
            prompt: self.prompt,
            working_dir,
            model,
            skip_permissions: self.skip_permissions.unwrap_or(true),
            permission_mode,
            allowed_tools,
            timeout_secs: self.timeout_secs,
            max_turns,
            max_budget_usd: self.max_budget_usd,
            append_system_prompt,
            add_dirs,
            resume_session,
            agent,
            env: self.env,
            isolation: self.isolation.unwrap_or_default(),
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
    /// Model alias or id.
    #[serde(default)]
    pub model: Option<String>,
    /// Whether `--dangerously-skip-permissions` is passed.
    #[serde(default = "default_true")]
    pub skip_permissions: bool,
    /// `--permission-mode` value.
    #[serde(default)]
    pub permission_mode: Option<String>,
    /// `--allowedTools` values.
    #[serde(default)]
    pub allowed_tools: Vec<String>,
    /// Timeout in seconds, counted from the agent's start.
    #[serde(default)]
    pub timeout_secs: Option<f64>,
    /// `--max-turns` value.
    #[serde(default)]
    pub max_turns: Option<u32>,
    /// `--max-budget-usd` value.
    #[serde(default)]
    pub max_budget_usd: Option<f64>,
    /// `--append-system-prompt` value.
    #[serde(default)]
    pub append_system_prompt: Option<String>,
    /// `--add-dir` values, canonical.
    #[serde(default)]
    pub add_dirs: Vec<PathBuf>,
    /// `--resume` value.
    #[serde(default)]
    pub resume_session: Option<String>,
    /// Absolute path of the agent program.
    pub agent: PathBuf,
    /// Extra environment for the agent.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Whether the task runs in a worktree of its own.
    #[serde(default)]
    pub isolation: Isolation,
}

fn default_true() -> bool {
    true
}

impl TaskSpec {
    /// A request that reproduces this spec, for follow-ups that change only some fields.
    pub fn to_request(&self) -> TaskRequest {
        TaskRequest {
            prompt: self.prompt.clone(),
            working_dir: Some(self.working_dir.clone()),
            model: self.model.clone(),
            skip_permissions: Some(self.skip_permissions),
            permission_mode: self.permission_mode.clone(),
            allowed_tools: self.allowed_tools.clone(),
            timeout_secs: self.timeout_secs,
            max_turns: self.max_turns.map(i64::from),
            max_budget_usd: self.max_budget_usd,
            append_system_prompt: self.append_system_prompt.clone(),
            add_dirs: self.add_dirs.clone(),
            resume_session: self.resume_session.clone(),
            agent: Some(self.agent.clone()),
            env: self.env.clone(),
            isolation: Some(self.isolation),
        }
    }
}

fn canonical_dir(dir: &Path) -> Result<PathBuf, SpecError> {
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
fn check_token(
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
fn check_text(field: &'static str, value: String) -> Result<String, SpecError> {
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

/// Resolves the agent program to an absolute path: a bare name through PATH, a relative path
/// against the working dir.
fn resolve_agent(program: &OsString, working_dir: &Path) -> Result<PathBuf, SpecError> {
    let path = Path::new(program);
    let on_path = path.components().count() == 1 && !path.is_absolute();
    let found = if on_path {
        which::which(program).ok()
    } else {
        let full = working_dir.join(path);
        which::which(&full).ok()
    };
    found
        .and_then(|p| p.canonicalize().ok())
        .ok_or_else(|| SpecError::AgentNotFound {
            program: program.to_string_lossy().into_owned(),
            on_path,
        })
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
        assert!(spec.skip_permissions);
        assert_eq!(spec.working_dir, dir.path().canonicalize().unwrap());
        assert!(spec.agent.is_absolute());
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
        let e = err(TaskRequest {
            agent: Some("/nonexistent/claude".into()),
            ..TaskRequest::new("x")
        });
        assert!(e.contains("CCMP_CLAUDE_BIN"), "{e}");
        let e = TaskRequest::new("x")
            .validate(&OsString::from("no-such-claude-ccmp"))
            .unwrap_err();
        assert!(e.to_string().contains("on PATH"), "{e}");
        assert!(
            err(TaskRequest {
                max_turns: Some(0),
                ..TaskRequest::new("x")
            })
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
            err(TaskRequest {
                permission_mode: Some("yolo".into()),
                ..TaskRequest::new("x")
            })
            .contains("acceptEdits")
        );
    }
}
