//! Running one agent to completion: the loop both supervisors share.
//!
//! The agent is its own process-group leader. Its stdout is parsed live and kept byte for byte
//! in the stdout log; its stderr is kept in the stderr log. Cancel and timeout send TERM to the
//! group, wait the grace period, then KILL the group. When the agent has exited, every process
//! of its tree is swept (see [`unix::sweep_task`]) before the outcome is recorded, so no
//! descendant outlives its task.

use std::io::Write;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use rustix::process::Signal;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};
use tokio::sync::watch;
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;

use super::cgroup;
use super::unix::{self, EXEC_AGENT_CMD};
use crate::agent::long_line::{LINE_CAP, LongResultLine};
use crate::agent::{self, Exit, Live, OutputParser, Stop, TASK_ENV};
use crate::process_identity::ProcessIdentity;
use crate::store::{LogStream, TaskStore};
use crate::task::{AgentProcess, Outcome, TaskRecord, TaskStatus};

/// How long to keep retrying the final record write (for example while a disk is full).
const FINAL_SAVE_ATTEMPTS: u32 = 600;
/// Progress (turns, tool uses) is saved at most this often; a change that comes sooner is saved
/// when the time is up, or by the final save. An agent reports in bursts (a tool use and its
/// result, the answer and the result line), and each save is a record rewrite.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);
/// Bytes of stderr kept in memory for error messages.
const STDERR_TAIL: usize = 4096;

/// What a run needs besides the record.
#[derive(Debug, Clone)]
pub(crate) struct RunContext {
    pub store: Arc<dyn TaskStore>,
    pub grace: Duration,
    /// This ccmp binary, for a detached runner: it understands [`EXEC_AGENT_CMD`] and runs the
    /// approval hook.
    pub trampoline: Option<PathBuf>,
    /// What the agent is started through so that it dies with its runner: the small
    /// `ccmp-exec-agent` beside the trampoline where there is one (one exec of a small program
    /// instead of the big one), else the trampoline itself. See [`unix::agent_launcher`].
    pub launcher: Option<PathBuf>,
    /// Whether this process is a child subreaper that must reap orphans.
    pub reap_orphans: bool,
    /// The state dir, for a detached runner: the approval hook finds its task there.
    pub state_dir: Option<PathBuf>,
    /// Who else may stop the agent (Slurm, for a run in a Slurm job), and why: asked when this
    /// process is told to stop, and when the agent died of a signal nobody here sent.
    pub outside_stop: Option<OutsideStop>,
}

/// Says whether, and why, something outside ccmp is stopping the agent (see
/// [`RunContext::outside_stop`]); `None` when nothing is.
#[derive(Clone)]
pub(crate) struct OutsideStop(pub Arc<dyn Fn() -> Option<Stop> + Send + Sync>);

impl std::fmt::Debug for OutsideStop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OutsideStop")
    }
}

impl RunContext {
    /// Why the run is being stopped, when this process is told to stop.
    fn stop_for_cancel(&self, cancel_reason: impl Fn() -> String) -> Stop {
        self.outside_stop
            .as_ref()
            .and_then(|f| (f.0)())
            .unwrap_or_else(|| Stop::Cancelled(cancel_reason()))
    }
}

/// Saves `record`, logging instead of failing: a progress update that cannot be written must not
/// stop the task.
fn save_soft(store: &dyn TaskStore, record: &TaskRecord) {
    if let Err(e) = store.save_progress(record) {
        tracing::warn!(task = %record.id.short(), "could not save progress: {e:#}");
    }
}

/// Saves the terminal record, retrying for a while: a full disk must not lose an outcome.
pub(crate) async fn save_final(store: &dyn TaskStore, record: &TaskRecord) {
    for attempt in 0..FINAL_SAVE_ATTEMPTS {
        match store.save(record) {
            Ok(()) => return,
            Err(e) if e.is_not_found() => return,
            Err(e) => {
                if attempt == 0 {
                    tracing::error!(task = %record.id.short(), "could not save the outcome, retrying: {e:#}");
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
    tracing::error!(task = %record.id.short(), "gave up saving the outcome");
}

/// Records a task that ends before its agent starts.
pub(crate) async fn finish_early(
    store: &dyn TaskStore,
    mut record: TaskRecord,
    status: TaskStatus,
    error: String,
) -> TaskRecord {
    record.finish(status, Outcome::failure(error));
    save_final(store, &record).await;
    record
}

/// What a later run of a task's agent is given instead of the task's prompt: the session to
/// resume and what to say to it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct Continuation {
    pub prompt: String,
    pub session: Option<String>,
}

/// How a run ended.
pub(crate) enum RunEnd {
    /// The task ended; its outcome is recorded.
    Ended(TaskRecord),
    /// The agent failed in a way the caller keeps the task open for (to park it until a usage
    /// limit resets, or to run it again): nothing is recorded as final.
    Open {
        record: TaskRecord,
        outcome: Box<Outcome>,
    },
}

impl RunEnd {
    /// The record as the run left it.
    pub(crate) fn record(&self) -> &TaskRecord {
        match self {
            Self::Ended(record) | Self::Open { record, .. } => record,
        }
    }
}

/// Runs the agent for `record` until it ends, is cancelled or times out, and records the
/// outcome, unless `keep_open` says a failure is not the end. `cancel_reason` is asked for the
/// error text when `cancel` fires. `input` continues an earlier run instead of starting with
/// the task's prompt.
pub(crate) async fn run_agent(
    ctx: &RunContext,
    record: TaskRecord,
    cancel: &CancellationToken,
    cancel_reason: impl Fn() -> String,
) -> TaskRecord {
    match run_attempt(ctx, record, cancel, cancel_reason, None, &|_| false).await {
        RunEnd::Ended(record) => record,
        RunEnd::Open { record, .. } => record,
    }
}

/// One run of the agent: see [`run_agent`].
pub(crate) async fn run_attempt(
    ctx: &RunContext,
    mut record: TaskRecord,
    cancel: &CancellationToken,
    cancel_reason: impl Fn() -> String,
    input: Option<&Continuation>,
    keep_open: &(dyn Fn(&Outcome) -> bool + Sync),
) -> RunEnd {
    let store = ctx.store.as_ref();
    if cancel.is_cancelled() {
        let record = finish_early(store, record, TaskStatus::Cancelled, cancel_reason()).await;
        return RunEnd::Ended(record);
    }
    let mut spec = record.spec.clone();
    if let Some(input) = input {
        spec.prompt = input.prompt.clone();
        spec.resume_session = input.session.clone();
    }
    let mut invocation = agent::invocation(&spec);
    let policy = spec.ask_policy();
    if !policy.is_empty() {
        match (&ctx.trampoline, &ctx.state_dir) {
            (Some(program), Some(state_dir)) => {
                invocation.args.push("--settings".into());
                invocation
                    .args
                    .push(hook_settings(program, state_dir).into());
            }
            _ => {
                let error = "an approval policy (ask) needs a detached runner: start the task through a file store (Ccmp::open), not in memory".to_owned();
                return RunEnd::Ended(finish_early(store, record, TaskStatus::Failed, error).await);
            }
        }
    }
    let kind = record.spec.agent_kind();
    let mut command = match &ctx.launcher {
        Some(launcher) => {
            let mut c = Command::new(launcher);
            c.arg(EXEC_AGENT_CMD)
                .arg(rustix::process::getpid().as_raw_nonzero().get().to_string())
                .arg(&invocation.program);
            c
        }
        None => Command::new(&invocation.program),
    };
    command
        .args(&invocation.args)
        .current_dir(record.agent_dir())
        .envs(&record.spec.env)
        .env(TASK_ENV, record.id.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    for var in kind.stripped_env() {
        command.env_remove(var);
    }
    // A working dir removed while the task waited must not be blamed on the agent: spawning
    // fails with the same "not found" either way.
    if !record.agent_dir().is_dir() {
        let error = format!(
            "the working dir `{}` no longer exists (it was removed after the task was started); start the task again in an existing directory",
            record.agent_dir().display()
        );
        return RunEnd::Ended(finish_early(store, record, TaskStatus::Failed, error).await);
    }
    // The agent's tree runs in a cgroup of its own where the machine allows one: the trampoline
    // enters it before it execs the agent (without one, the agent is moved just after it
    // starts, and what it forks in between escapes the cgroup but not the marker sweep).
    let cgroup = cgroup::create(&record.id);
    if let (Some(dir), true) = (&cgroup, ctx.launcher.is_some()) {
        command.env(unix::CGROUP_ENV, dir);
    }
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => {
            if let Some(dir) = &cgroup {
                cgroup::kill(dir);
            }
            let why = match e.kind() {
                std::io::ErrorKind::NotFound => "it is not there any more".to_owned(),
                std::io::ErrorKind::PermissionDenied => {
                    "it is not executable (`chmod +x` it)".to_owned()
                }
                _ => e.to_string(),
            };
            let error = format!(
                "could not start the agent `{}`: {why}; check that it is installed, or set {}",
                invocation.program.display(),
                kind.program_env()
            );
            return RunEnd::Ended(finish_early(store, record, TaskStatus::Failed, error).await);
        }
    };
    let pid = child.id().map(|p| p as i32).unwrap_or_default();
    record.set_live_status(TaskStatus::Running);
    // A later run keeps the first start: the task's time counts from there.
    record.started_at.get_or_insert_with(Utc::now);
    record.progress = Some("starting".into());
    if let (Some(dir), None) = (&cgroup, &ctx.trampoline) {
        let _ = cgroup::enter(dir, pid as u32);
    }
    record.agent_process = ProcessIdentity::of(pid).ok().map(|identity| AgentProcess {
        identity,
        pgid: pid,
        cgroup: cgroup.clone(),
    });
    save_soft(store, &record);

    // The prompt goes on stdin, which is then closed.
    if let Some(mut stdin) = child.stdin.take() {
        let prompt = spec.prompt.clone().into_bytes();
        tokio::spawn(async move {
            // A broken pipe means the agent exited early; its exit status tells why.
            let _ = stdin.write_all(&prompt).await;
            let _ = stdin.shutdown().await;
        });
    }
    let (live_tx, mut live_rx) = watch::channel(Live::default());
    let stdout_task = child.stdout.take().map(|stdout| {
        let logs = open_logs(&ctx.store, &record);
        tokio::spawn(read_stdout(stdout, logs, kind.parser(), live_tx))
    });
    let stderr_tail = Arc::new(Mutex::new(Vec::new()));
    let stderr_task = child.stderr.take().map(|stderr| {
        tokio::spawn(copy_stderr(
            stderr,
            ctx.store.clone(),
            record.id,
            stderr_tail.clone(),
        ))
    });

    let deadline = record
        .spec
        .timeout_secs
        .map(|secs| Instant::now() + Duration::from_secs_f64(secs));
    let mut stop: Option<Stop> = None;
    let mut kill_at: Option<Instant> = None;
    // When progress was last saved, and whether a change waits for the next save.
    let mut saved_at: Option<Instant> = None;
    let mut unsaved = false;
    let status = loop {
        let next_save = saved_at.map_or_else(Instant::now, |at| at + PROGRESS_EVERY);
        tokio::select! {
            status = child.wait() => break status,
            Ok(()) = live_rx.changed() => {
                let live = live_rx.borrow_and_update().clone();
                if update_progress(&mut record, &live) {
                    if Instant::now() >= next_save {
                        save_soft(store, &record);
                        saved_at = Some(Instant::now());
                        unsaved = false;
                    } else {
                        unsaved = true;
                    }
                }
            }
            () = sleep_until(next_save), if unsaved => {
                save_soft(store, &record);
                saved_at = Some(Instant::now());
                unsaved = false;
            }
            () = cancel.cancelled(), if stop.is_none() => {
                stop = Some(ctx.stop_for_cancel(&cancel_reason));
                record.progress = Some("cancelling".into());
                save_soft(store, &record);
                match terminate(&mut child, pid, Signal::TERM) {
                    Some(status) => break Ok(status),
                    None => kill_at = Some(Instant::now() + ctx.grace),
                }
            }
            () = sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() && stop.is_none() => {
                stop = Some(Stop::TimedOut(record.spec.timeout_secs.unwrap_or_default()));
                record.progress = Some("timed out, stopping".into());
                save_soft(store, &record);
                match terminate(&mut child, pid, Signal::TERM) {
                    Some(status) => break Ok(status),
                    None => kill_at = Some(Instant::now() + ctx.grace),
                }
            }
            () = sleep_until(kill_at.unwrap_or_else(Instant::now)), if kill_at.is_some() => {
                kill_at = None;
                if let Some(status) = terminate(&mut child, pid, Signal::KILL) {
                    break Ok(status);
                }
            }
        }
    };

    // Nothing of the task's tree may outlive it: sweep, then reap what was reparented to us.
    let id = record.id;
    let reap = ctx.reap_orphans;
    let _ = tokio::task::spawn_blocking(move || {
        let swept = unix::sweep_task(&id, cgroup.as_deref());
        if reap {
            unix::reap_children();
        }
        swept
    })
    .await;

    // With the tree gone, the pipes reach EOF; do not wait forever on a stray holder.
    let parser = match stdout_task {
        Some(task) => match tokio::time::timeout(Duration::from_secs(5), task).await {
            Ok(Ok(parser)) => Some(parser),
            _ => None,
        },
        None => None,
    };
    // A reader that did not finish leaves only what it had said so far to judge by.
    let parser = parser.unwrap_or_else(|| OutputParser::knowing(kind, live_rx.borrow().clone()));
    if let Some(task) = stderr_task {
        let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
    }
    update_progress(&mut record, parser.live());
    if let Some(worktree) = record.worktree.clone() {
        match tokio::task::spawn_blocking(move || crate::worktree::summarize(&worktree)).await {
            Ok(Ok(diff)) => {
                if let Some(w) = record.worktree.as_mut() {
                    w.diff = Some(diff);
                }
            }
            Ok(Err(e)) => {
                tracing::warn!(task = %record.id.short(), "could not measure the worktree's changes: {e}")
            }
            Err(e) => {
                tracing::warn!(task = %record.id.short(), "could not measure the worktree's changes: {e}")
            }
        }
    }
    let exit = match status {
        Ok(status) => exit_of(status),
        Err(e) => {
            tracing::warn!(task = %record.id.short(), "waiting for the agent failed: {e}");
            Exit {
                code: None,
                signal: None,
            }
        }
    };
    // Slurm signals every process of a job at once: the agent may die of it before this
    // process hears of the stop. Its exit is then Slurm's doing, not the agent's failure.
    if stop.is_none()
        && exit.code != Some(0)
        && let Some(outside) = &ctx.outside_stop
    {
        stop = (outside.0)();
    }
    let tail = String::from_utf8_lossy(&stderr_tail.lock().unwrap_or_else(|e| e.into_inner()))
        .into_owned();
    let (status, mut outcome) = agent::conclude(&parser, exit, stop, &tail);
    let deferred = status == TaskStatus::Succeeded && outcome.deferred.is_some();
    if deferred || (status == TaskStatus::Failed && keep_open(&outcome)) {
        return RunEnd::Open {
            record,
            outcome: Box::new(outcome),
        };
    }
    add_up_attempts(&record, &mut outcome);
    // The agent's own result line ends the transcript when it wrote one; otherwise say here
    // how the run ended (cancelled, timed out, crashed), so that the transcript never stops
    // without an ending.
    let ended_by_agent =
        parser.saw_result() && matches!(status, TaskStatus::Succeeded | TaskStatus::Failed);
    if !ended_by_agent && let Ok(mut log) = store.log_writer(&record.id, LogStream::Transcript) {
        let why = outcome.error.as_deref().unwrap_or("");
        let _ = writeln!(log, "[ccmp] the task {status}: {why}");
    }
    record.progress = Some(match status {
        TaskStatus::Succeeded => "done".to_owned(),
        other => other.to_string(),
    });
    record.finish(status, outcome);
    save_final(store, &record).await;
    RunEnd::Ended(record)
}

/// Claude Code settings that run ccmp's approval hook before every tool use. Claude Code runs a
/// hook command through a shell, so the paths are quoted for one.
fn hook_settings(program: &std::path::Path, state_dir: &std::path::Path) -> String {
    let quote =
        |p: &std::path::Path| format!("'{}'", p.display().to_string().replace('\'', "'\\''"));
    let command = format!(
        "{} {} {}",
        quote(program),
        crate::approval::HOOK_CMD,
        quote(state_dir)
    );
    serde_json::json!({"hooks": {"PreToolUse": [{"matcher": "*", "hooks": [{"type": "command", "command": command}]}]}})
        .to_string()
}

/// Adds the turns of earlier runs to the outcome, and their cost where the agent's own does not
/// include it (Claude Code's cost is cumulative over a resumed session; a run in another
/// session, or none, is added).
fn add_up_attempts(record: &TaskRecord, outcome: &mut Outcome) {
    if record.attempts.is_empty() {
        return;
    }
    let turns: u64 = record.attempts.iter().filter_map(|a| a.num_turns).sum();
    if turns > 0 {
        outcome.num_turns = Some(outcome.num_turns.unwrap_or(0) + turns);
    }
    let elsewhere: f64 = record
        .attempts
        .iter()
        .filter(|a| a.session_id.is_none() || a.session_id != record.session_id)
        .filter_map(|a| a.cost_usd)
        .sum();
    if elsewhere > 0.0 {
        outcome.cost_usd = Some(outcome.cost_usd.unwrap_or(0.0) + elsewhere);
    }
}

/// Signals the agent's group unless the agent has already exited (and was reaped), in which
/// case its status is returned. The group is only signalled while its leader is unreaped, so the
/// pgid cannot have been reused.
fn terminate(child: &mut Child, pgid: i32, signal: Signal) -> Option<ExitStatus> {
    match child.try_wait() {
        Ok(Some(status)) => Some(status),
        _ => {
            if let Err(e) = unix::signal_group(pgid, signal) {
                tracing::warn!("could not signal process group {pgid}: {e}");
            }
            None
        }
    }
}

fn exit_of(status: ExitStatus) -> Exit {
    use std::os::unix::process::ExitStatusExt;
    Exit {
        code: status.code(),
        signal: status.signal(),
    }
}

fn update_progress(record: &mut TaskRecord, state: &Live) -> bool {
    let before = (
        record.session_id.clone(),
        record.agent_model.clone(),
        record.progress.clone(),
    );
    if state.session_id.is_some() {
        record.session_id.clone_from(&state.session_id);
    }
    if state.model.is_some() {
        record.agent_model.clone_from(&state.model);
    }
    if state.progress.is_some() {
        record.progress.clone_from(&state.progress);
    }
    before
        != (
            record.session_id.clone(),
            record.agent_model.clone(),
            record.progress.clone(),
        )
}

struct Logs {
    stdout: Option<Box<dyn Write + Send>>,
    transcript: Option<Box<dyn Write + Send>>,
    /// To open the task's `result.txt`, only if a result too long for the record comes.
    store: Arc<dyn TaskStore>,
    id: crate::id::TaskId,
}

fn open_logs(store: &Arc<dyn TaskStore>, record: &TaskRecord) -> Logs {
    let open = |stream| match store.log_writer(&record.id, stream) {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::warn!(task = %record.id.short(), "cannot open the {stream} log: {e:#}");
            None
        }
    };
    Logs {
        stdout: open(LogStream::Stdout),
        transcript: open(LogStream::Transcript),
        store: store.clone(),
        id: record.id,
    }
}

/// Reads the agent's stdout: every byte goes to the stdout log as it comes, and each line to
/// the parser. Lines longer than [`LINE_CAP`] are not held whole but streamed through a
/// [`LongResultLine`], so memory does not grow with the agent's longest line.
async fn read_stdout(
    mut stdout: tokio::process::ChildStdout,
    mut logs: Logs,
    mut parser: OutputParser,
    live_tx: watch::Sender<Live>,
) -> OutputParser {
    let mut buf = vec![0; 64 * 1024];
    let mut line: Vec<u8> = Vec::new();
    let mut long: Option<LongResultLine> = None;
    loop {
        let n = match stdout.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if let Some(log) = logs.stdout.as_mut() {
            let _ = log.write_all(&buf[..n]);
        }
        let mut rest = &buf[..n];
        while !rest.is_empty() {
            let newline = rest.iter().position(|b| *b == b'\n');
            let piece = &rest[..newline.unwrap_or(rest.len())];
            rest = newline.map_or(&[][..], |i| &rest[i + 1..]);
            match &mut long {
                Some(scanner) => scanner.feed(piece),
                None if line.len() + piece.len() > LINE_CAP => {
                    let (store, id) = (logs.store.clone(), logs.id);
                    let mut scanner = LongResultLine::new(Box::new(move || {
                        store
                            .log_writer(&id, LogStream::Result)
                            .inspect_err(|e| {
                                tracing::warn!("cannot keep the agent's long result: {e:#}");
                            })
                            .ok()
                    }));
                    scanner.feed(&line);
                    scanner.feed(piece);
                    long = Some(scanner);
                    line = Vec::new();
                }
                None => line.extend_from_slice(piece),
            }
            if newline.is_some() {
                end_line(&mut parser, &mut line, long.take(), &mut logs, &live_tx);
            }
        }
    }
    if long.is_some() || !line.is_empty() {
        end_line(&mut parser, &mut line, long, &mut logs, &live_tx);
    }
    parser
}

/// Hands a whole line to the parser, and what it makes of it to the transcript and to `live`.
fn end_line(
    parser: &mut OutputParser,
    line: &mut Vec<u8>,
    long: Option<LongResultLine>,
    logs: &mut Logs,
    live_tx: &watch::Sender<Live>,
) {
    let parsed = match long {
        None => parser.feed(line),
        Some(scanner) => parser.feed_long(scanner.finish()),
    };
    line.clear();
    if let (Some(text), Some(log)) = (parsed.transcript, logs.transcript.as_mut()) {
        let _ = writeln!(log, "{text}");
    }
    if parsed.changed {
        live_tx.send_replace(parser.live().clone());
    }
}

async fn copy_stderr(
    mut stderr: tokio::process::ChildStderr,
    store: Arc<dyn TaskStore>,
    id: crate::id::TaskId,
    tail: Arc<Mutex<Vec<u8>>>,
) {
    let mut buf = vec![0; 16 * 1024];
    // Opened on the first bytes: most agents print nothing on stderr, and a log that would
    // stay empty is a file made for nothing (readers take a missing log as an empty one).
    let mut log: Option<Box<dyn Write + Send>> = None;
    let mut opened = false;
    loop {
        let n = match stderr.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if !opened {
            opened = true;
            log = store.log_writer(&id, LogStream::Stderr).ok();
        }
        if let Some(log) = log.as_mut() {
            let _ = log.write_all(&buf[..n]);
        }
        let mut tail = tail.lock().unwrap_or_else(|e| e.into_inner());
        tail.extend_from_slice(&buf[..n]);
        if tail.len() > STDERR_TAIL {
            let cut = tail.len() - STDERR_TAIL;
            tail.drain(..cut);
        }
    }
}
