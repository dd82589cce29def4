//! `ccmp`: run Claude Code tasks in the background from a terminal.
//!
//! Each subcommand is one file in `commands/`: parse, call ccmp-core, render. stdout carries
//! data and stderr messages. The same binary is the runner of the tasks it starts
//! (`ccmp __ccmp-runner …`).

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Writes a line to stdout, returning the error (so a closed pipe ends the command cleanly).
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(anstream::stdout(), $($arg)*)?;
    }};
}

/// Writes a message line to stderr.
macro_rules! err {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(anstream::stderr(), $($arg)*);
    }};
}

mod commands;
mod exit_codes;
mod hint;
mod render;

use commands::{
    budget, cancel, cleanup, completions, dashboard, events, group, inbox, list, logs, notify,
    parallel, pause, reply, run, settings, start, status, wait,
};

/// Run Claude Code tasks in the background, many at once, and collect the results later.
///
/// Tasks live in the state dir (CCMP_STATE_DIR, else ~/.local/state/ccmp), shared with the
/// ccmp-mcp server that Claude Code loads. An id is the short id or any unique prefix of 4 or
/// more characters.
#[derive(Debug, Parser)]
#[command(name = "ccmp", version, after_help = exit_codes::HELP)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Start(start::StartArgs),
    Run(run::RunArgs),
    Status(status::StatusArgs),
    List(list::ListArgs),
    Wait(wait::WaitArgs),
    Logs(logs::LogsArgs),
    Cancel(cancel::CancelArgs),
    Reply(reply::ReplyArgs),
    Cleanup(cleanup::CleanupArgs),
    Parallel(parallel::ParallelArgs),
    Pause(pause::PauseArgs),
    Resume(pause::ResumeArgs),
    Group(group::GroupArgs),
    Settings(settings::SettingsArgs),
    Budget(budget::BudgetArgs),
    Inbox(inbox::InboxArgs),
    Approve(inbox::ApproveArgs),
    Deny(inbox::DenyArgs),
    Events(events::EventsArgs),
    Notify(notify::NotifyArgs),
    Dashboard(dashboard::DashboardArgs),
    Completions(completions::CompletionsArgs),
}

fn main() -> ExitCode {
    // A task runner (the same binary, re-executed) logs to its own runner.log.
    if let Some(code) = ccmp_core::hidden_entry_point() {
        return code;
    }
    tracing_subscriber::fmt()
        .log_internal_errors(false)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(err) => {
            if is_broken_pipe(&err) {
                return ExitCode::SUCCESS;
            }
            let style = anstyle::Style::new()
                .bold()
                .fg_color(Some(anstyle::AnsiColor::Red.into()));
            err!("{style}error:{style:#} {err:#}");
            if let Some(hint) = hint::for_error(&err) {
                let style = anstyle::Style::new().bold();
                err!("{style}hint:{style:#} {hint}");
            }
            exit_codes::for_error(&err)
        }
    }
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain()
        .filter_map(|e| e.downcast_ref::<std::io::Error>())
        .any(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    if let Command::Completions(args) = cli.command {
        return completions::run(args);
    }
    let ccmp = ccmp_core::Ccmp::open(None)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        match cli.command {
            Command::Start(args) => start::run(&ccmp, args).await,
            Command::Run(args) => run::run(&ccmp, args).await,
            Command::Status(args) => status::run(&ccmp, args),
            Command::List(args) => list::run(&ccmp, args),
            Command::Wait(args) => wait::run(&ccmp, args).await,
            Command::Logs(args) => logs::run(&ccmp, args).await,
            Command::Cancel(args) => cancel::run(&ccmp, args).await,
            Command::Reply(args) => reply::run(&ccmp, args).await,
            Command::Cleanup(args) => cleanup::run(&ccmp, args).await,
            Command::Parallel(args) => parallel::run(&ccmp, args),
            Command::Pause(args) => pause::run(&ccmp, args.group, true),
            Command::Resume(args) => pause::run(&ccmp, args.group, false),
            Command::Group(args) => group::run(&ccmp, args),
            Command::Settings(args) => settings::run(&ccmp, args),
            Command::Budget(args) => budget::run(&ccmp, args),
            Command::Inbox(args) => inbox::inbox(&ccmp, args),
            Command::Approve(args) => inbox::answer(
                &ccmp,
                &args.id,
                ccmp_core::ApprovalAnswer::approve().always(args.always),
            ),
            Command::Deny(args) => inbox::answer(
                &ccmp,
                &args.id,
                ccmp_core::ApprovalAnswer::deny(args.reason),
            ),
            Command::Events(args) => events::run(&ccmp, args).await,
            Command::Notify(args) => notify::run(&ccmp, args),
            Command::Dashboard(args) => dashboard::run(&ccmp, args).await,
            Command::Completions(_) => unreachable!("handled above"),
        }
    })
}
