//! `ccmp-mcp`: the stdio MCP server that Claude Code loads (`claude mcp add ccmp -- ccmp-mcp`).
//!
//! stdout is the JSON-RPC channel: logs go to stderr and to `<state>/ccmp-mcp.log`, and agents
//! never inherit the server's stdin or stdout. The same binary is the runner of the tasks it
//! starts (`ccmp-mcp __ccmp-runner …`), so tasks keep running when the server exits.

// stdout is the JSON-RPC channel: nothing here may print to it.
#![warn(clippy::print_stdout)]

mod params;
mod reply;
mod server;
mod stdin;
mod tasks;

use std::fs::OpenOptions;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
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
    let runner = std::env::args_os()
        .nth(1)
        .is_some_and(|a| a.as_encoded_bytes().starts_with(b"__ccmp-"));
    init_tracing(!runner);
    if let Some(code) = ccmp_core::hidden_entry_point() {
        return code;
    }
    let _args = Args::parse();
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Logs go to stderr and, for the server, to `<state>/ccmp-mcp.log`. `RUST_LOG` sets the level
/// (default `warn` for rmcp, `info` for ccmp).
fn init_tracing(server: bool) {
    if !server {
        // A task runner: its stderr is the task's runner.log. Keep start-up cheap.
        tracing_subscriber::fmt()
            .log_internal_errors(false)
            .with_max_level(tracing::Level::INFO)
            .with_ansi(false)
            .with_writer(std::io::stderr)
            .init();
        return;
    }
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("warn,ccmp_mcp=info,ccmp_core=info"));
    let file = ccmp_core::default_state_dir().ok().and_then(|dir| {
        // The state dir is private (0700) and so is the log (0600).
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .ok()?;
        OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(dir.join("ccmp-mcp.log"))
            .ok()
    });
    let builder = tracing_subscriber::fmt()
        .log_internal_errors(false)
        .with_env_filter(filter)
        .with_ansi(false);
    match file {
        Some(file) => builder
            .with_writer(std::io::stderr.and(std::sync::Mutex::new(file)))
            .init(),
        None => builder.with_writer(std::io::stderr).init(),
    }
}

fn run() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("failed to start the async runtime")?;
    let result = runtime.block_on(async {
        let ccmp = ccmp_core::Ccmp::open(None).context("failed to open the task store")?;
        tracing::info!(state_dir = ?ccmp_core::default_state_dir().ok(), "ccmp-mcp serving on stdio");
        let input_closed = tokio_util::sync::CancellationToken::new();
        let stdin = stdin::WatchEof::new(tokio::io::stdin(), input_closed.clone());
        let service = server::Server::new(ccmp, input_closed)
            .serve((stdin, tokio::io::stdout()))
            .await
            .context("MCP handshake failed")?;
        service.waiting().await.context("MCP session failed")?;
        anyhow::Ok(())
    });
    // Tasks run in their own runner processes; do not linger on in-flight calls once stdin is gone.
    runtime.shutdown_timeout(Duration::from_millis(200));
    result
}
