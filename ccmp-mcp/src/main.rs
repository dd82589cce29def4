//! `ccmp-mcp`: the stdio MCP server that Claude Code loads (`claude mcp add ccmp -- ccmp-mcp`).
//!
//! stdout is the JSON-RPC channel: logs go to stderr and to `<state>/ccmp-mcp.log`, and agents
//! never inherit the server's stdin or stdout. The same binary is the runner of the tasks it
//! starts (`ccmp-mcp __ccmp-runner …`), so tasks keep running when the server exits.

// stdout is the JSON-RPC channel: nothing here may print to it.
#![warn(clippy::print_stdout)]

mod hint;
mod news;
mod params;
mod reply;
mod server;
mod stdin;
mod stdio;
mod tasks;

use std::fs::File;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use ccmp_core::{Ccmp, FsStore};
use clap::Parser;
use rmcp::ServiceExt;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::writer::MakeWriterExt;

/// The ccmp MCP server: Claude Code tasks in the background, over stdio.
///
/// Register it with Claude Code: `claude mcp add ccmp -- ccmp-mcp`. Tasks are shared with the
/// `ccmp` command through the state dir (CCMP_STATE_DIR, else ~/.local/state/ccmp).
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {}

fn main() -> ExitCode {
    // A task runner (the same binary, re-executed) logs to its own runner.log.
    if let Some(code) = ccmp_core::hidden_entry_point() {
        return code;
    }
    let _args = Args::parse();
    // The state dir's safety checks run when the store opens, before anything (the log
    // included) is written in it.
    let store = FsStore::open_default();
    let log = store.as_ref().ok().and_then(|s| s.open_mcp_log().ok());
    init_tracing(log);
    let result = store.context("failed to open the task store").and_then(run);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("{err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Logs go to stderr and to `<state>/ccmp-mcp.log`. `RUST_LOG` sets the level (default `warn`
/// for rmcp, `info` for ccmp).
fn init_tracing(log: Option<File>) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("warn,ccmp_mcp=info,ccmp_core=info"));
    let builder = tracing_subscriber::fmt()
        .log_internal_errors(false)
        .with_env_filter(filter)
        .with_ansi(false);
    match log {
        Some(file) => builder
            .with_writer(std::io::stderr.and(std::sync::Mutex::new(file)))
            .init(),
        None => builder.with_writer(std::io::stderr).init(),
    }
}

fn run(store: FsStore) -> anyhow::Result<()> {
    let state_dir = store.root().to_owned();
    // The server lives on, so a start replies once the record is durable and the runner is
    // spawned; the server's reaper records a runner that dies before taking its task.
    let mut config = ccmp_core::Config::from_env().context("bad settings in the environment")?;
    config.launch = ccmp_core::LaunchMode::Watch;
    let ccmp = Ccmp::open_store_with(store, config).context("failed to open the task store")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("failed to start the async runtime")?;
    let result = runtime.block_on(async {
        tracing::info!(state_dir = %state_dir.display(), "ccmp-mcp serving on stdio");
        let input_closed = tokio_util::sync::CancellationToken::new();
        let stdin = stdin::WatchEof::new(tokio::io::stdin(), input_closed.clone());
        let service = server::Server::new(ccmp, input_closed)
            .serve(stdio::Stdio::new(stdin, tokio::io::stdout()))
            .await
            .context("MCP handshake failed")?;
        service.waiting().await.context("MCP session failed")?;
        anyhow::Ok(())
    });
    // Tasks run in their own runner processes; do not linger on in-flight calls once stdin is gone.
    runtime.shutdown_timeout(Duration::from_millis(200));
    result
}
