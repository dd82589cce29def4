//! The exit codes of `ccmp`, documented in `--help` and the README.

use std::process::ExitCode;

/// Everything asked for was done (and, for `run`/`wait`, every task succeeded).
pub const OK: u8 = 0;
/// A task did not succeed (`run`, `wait`, `start --wait`, `reply --wait`).
pub const TASK_FAILED: u8 = 1;
/// Bad usage or input: unknown flag, empty prompt, missing directory, bad duration.
pub const USAGE: u8 = 2;
/// No task matches the id, or the prefix is ambiguous or not an id.
pub const NOT_FOUND: u8 = 3;
/// `wait --timeout` ran out with tasks still running.
pub const TIMED_OUT: u8 = 4;
/// The task is still queued or running (`cleanup` without `--force`).
pub const TASK_ACTIVE: u8 = 5;
/// A task waited for needs a person's approval (`wait`, `run`): it goes on once answered.
pub const NEEDS_APPROVAL: u8 = 7;
/// ccmp itself failed: the state dir, a runner, the agent program.
pub const FAILURE: u8 = 6;
/// Ctrl-C stopped the wait (`run`, `start --wait`, `reply --wait`, `wait`); the tasks go on.
pub const INTERRUPTED: u8 = 130;

/// The text for `--help`.
pub const HELP: &str = "\
Exit codes:
  0  ok
  1  a task failed (run, wait, start --wait, reply --wait)
  2  usage error or invalid input
  3  task not found, or the id is ambiguous
  4  wait timed out with tasks still running
  5  the task is still running (cleanup without --force)
  6  ccmp failed (state dir, runner, agent program)
  7  a task waits for your approval (`ccmp inbox`)
  130  Ctrl-C stopped the wait; the task keeps running (`ccmp cancel ID` stops it)";

/// The exit code for an error.
pub fn for_error(err: &anyhow::Error) -> ExitCode {
    let code = match err.downcast_ref::<ccmp_core::Error>() {
        Some(e) if e.is_not_found() => NOT_FOUND,
        Some(ccmp_core::Error::TaskActive { .. }) => TASK_ACTIVE,
        Some(e) if e.is_setup_problem() => FAILURE,
        Some(e) if e.is_invalid_input() => USAGE,
        Some(ccmp_core::Error::Config(_)) => USAGE,
        Some(_) => FAILURE,
        None if err.downcast_ref::<UsageError>().is_some() => USAGE,
        None => FAILURE,
    };
    ExitCode::from(code)
}

/// A usage problem found after argument parsing (for example an empty prompt on stdin).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);
