//! `ccmp-mcp`: the stdio MCP server that Claude Code loads.
//!
//! This build hosts the task runner (`ccmp-mcp __ccmp-runner …`, started by ccmp-core's
//! detached supervisor); the MCP tools arrive with the MCP server issue. stdout is reserved for
//! the protocol, so nothing here writes to it.

use std::process::ExitCode;

fn main() -> ExitCode {
    if let Some(code) = ccmp_core::hidden_entry_point() {
        return code;
    }
    eprintln!(
        "ccmp-mcp {}: the MCP server is not in this build yet; this binary currently only hosts task runners",
        env!("CARGO_PKG_VERSION")
    );
    ExitCode::from(2)
}
