//! The options of a new task (`start`, `run`): what every agent shares, then Claude Code's own.

use std::collections::BTreeMap;
use std::path::PathBuf;

use ccmp_core::{AgentKind, AgentOptions, Ccmp, ClaudeOptions, Isolation, TaskRequest};
use clap::Args;

use super::common::{parse_seconds, read_prompt};
use crate::exit_codes::UsageError;

/// Options for a new task (`start`, `run`).
#[derive(Debug, Args)]
pub struct TaskOptions {
    /// What Claude Code should do: quoted or as several words (`ccmp start fix the bug -C
    /// src`); `-` (or nothing, with a pipe) reads it from stdin.
    #[arg(value_name = "PROMPT", num_args = 0..)]
    pub prompt: Vec<String>,
    /// Directory to work in (default: the current directory).
    #[arg(short = 'C', long, value_name = "DIR")]
    pub working_dir: Option<PathBuf>,
    /// The coding agent: claude (Claude Code, the default), codex (OpenAI's Codex CLI) or gemini
    /// (Google's Gemini CLI).
    #[arg(short, long, value_name = "AGENT")]
    pub agent: Option<String>,
    /// Model: for Claude Code sonnet, opus, haiku or a full model id; for Codex its model id.
    #[arg(short, long)]
    pub model: Option<String>,
    /// Stop the task after this long: seconds, or a duration like 30m or 2h.
    #[arg(long, value_name = "DURATION", allow_negative_numbers = true)]
    pub timeout: Option<String>,
    #[command(flatten)]
    pub claude: ClaudeArgs,
    /// Run in a new git worktree of the repository, on branch ccmp/ID, leaving the checkout
    /// untouched.
    #[arg(long)]
    pub worktree: bool,
    /// An environment variable for the agent, as NAME=VALUE; repeat for more.
    #[arg(short, long = "env", value_name = "NAME=VALUE")]
    pub env: Vec<String>,
    /// The group to run in (default: default); it must exist (`ccmp group add NAME`).
    #[arg(short, long, value_name = "NAME")]
    pub group: Option<String>,
    /// Start only after this task has succeeded (id or prefix); repeat for more. If one does
    /// not succeed, this task ends `skipped` without running.
    #[arg(long, value_name = "ID")]
    pub after: Vec<String>,
    /// Run again up to N times (0 to 10) if the model API fails it for a while (overloaded,
    /// unavailable), resuming its session (default: `ccmp settings retries`).
    #[arg(long, value_name = "N")]
    pub retries: Option<u32>,
    /// Fail on a usage limit instead of parking until it resets and resuming.
    #[arg(long)]
    pub no_park: bool,
    /// Show a desktop notification when the task ends (or ring this terminal's bell when there
    /// is no notification daemon).
    #[arg(long)]
    pub notify: bool,
}

/// Claude Code's own settings: one flag per [`ClaudeOptions`] field.
#[derive(Debug, Args)]
pub struct ClaudeArgs {
    /// Do not pass --dangerously-skip-permissions (tools that need permission are denied).
    #[arg(long)]
    pub no_skip_permissions: bool,
    /// Permission mode: acceptEdits, plan, dontAsk, default, auto or bypassPermissions.
    #[arg(long, value_name = "MODE")]
    pub permission_mode: Option<String>,
    /// A tool allowed without asking, e.g. "Bash(git log:*)"; repeat for more.
    #[arg(long = "allowed-tools", value_name = "TOOL")]
    pub allowed_tools: Vec<String>,
    /// Stop after this many turns.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub max_turns: Option<i64>,
    /// Stop after spending this many US dollars.
    #[arg(long, value_name = "USD", allow_negative_numbers = true)]
    pub max_budget_usd: Option<f64>,
    /// Text appended to the system prompt.
    #[arg(long, value_name = "TEXT")]
    pub append_system_prompt: Option<String>,
    /// Ask a person before a tool use that matches this rule runs, e.g. "Bash(git push:*)" or
    /// Write; repeat for more. The task waits in `ccmp inbox` until `ccmp approve` or `deny`.
    #[arg(long, value_name = "RULE")]
    pub ask: Vec<String>,
    /// Ask before every tool use.
    #[arg(long)]
    pub ask_all: bool,
    /// Codex only: its sandbox (read-only, workspace-write or danger-full-access), with
    /// --no-skip-permissions.
    #[arg(long, value_name = "MODE")]
    pub sandbox: Option<String>,
}

impl From<ClaudeArgs> for ClaudeOptions {
    fn from(args: ClaudeArgs) -> Self {
        Self {
            // Only a "no" is said; otherwise the core's default stands.
            skip_permissions: args.no_skip_permissions.then_some(false),
            permission_mode: args.permission_mode,
            allowed_tools: args.allowed_tools,
            max_turns: args.max_turns,
            max_budget_usd: args.max_budget_usd,
            append_system_prompt: args.append_system_prompt,
            add_dirs: Vec::new(),
            ask: args.ask,
            ask_all: args.ask_all,
        }
    }
}

impl ClaudeArgs {
    /// The agent's options, refusing flags the agent does not have.
    fn for_agent(mut self, kind: AgentKind) -> anyhow::Result<AgentOptions> {
        let sandbox = self.sandbox.take();
        AgentOptions::for_agent(kind, self.into(), sandbox).map_err(|e| match e {
            // In the CLI's words: flags, not fields.
            ccmp_core::SpecError::NotForAgent {
                field,
                owner,
                agent,
                ..
            } => {
                let flag = if field == "ask" {
                    "--ask/--ask-all".to_owned()
                } else {
                    format!("--{}", field.replace('_', "-"))
                };
                let instead = match kind {
                    AgentKind::Codex => "a codex task takes --no-skip-permissions and --sandbox",
                    AgentKind::Gemini => "a gemini task takes --no-skip-permissions",
                    AgentKind::Claude => "use --permission-mode or --allowed-tools",
                };
                UsageError(format!(
                    "{flag} is an option of {owner}, not of {agent}; {instead}"
                ))
                .into()
            }
            other => anyhow::Error::new(other),
        })
    }
}

/// Words given as the prompt, joined with spaces as the shell split them; none is no prompt.
pub fn join_words(words: Vec<String>) -> Option<String> {
    (!words.is_empty()).then(|| words.join(" "))
}

impl TaskOptions {
    /// The core request.
    pub fn into_request(self, ccmp: &Ccmp) -> anyhow::Result<TaskRequest> {
        let after = ccmp
            .resolve_all(&self.after)
            .map_err(|e| anyhow::Error::new(e).context("--after"))?;
        let prompt = read_prompt(join_words(self.prompt))?;
        let mut env = BTreeMap::new();
        for pair in self.env {
            let (name, value) = pair
                .split_once('=')
                .ok_or_else(|| UsageError(format!("--env takes NAME=VALUE, got `{pair}`")))?;
            env.insert(name.to_owned(), value.to_owned());
        }
        let kind = match self.agent.as_deref() {
            None => ccmp.default_agent(self.group.as_deref())?,
            Some(name) => name
                .parse::<AgentKind>()
                .map_err(|e| UsageError(format!("--agent: {e}")))?,
        };
        Ok(TaskRequest {
            agent: self.claude.for_agent(kind)?,
            prompt,
            working_dir: self.working_dir,
            model: self.model,
            timeout_secs: self.timeout.as_deref().map(parse_seconds).transpose()?,
            env,
            isolation: self.worktree.then_some(Isolation::Worktree),
            group: self.group,
            after,
            retries: self.retries,
            park_on_usage_limit: self.no_park.then_some(false),
            notify: self.notify,
            ..TaskRequest::default()
        })
    }
}
