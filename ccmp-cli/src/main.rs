//! `ccmp`: the command for people at a terminal.
//!
//! This build hosts the task runner (`ccmp __ccmp-runner …`, started by ccmp-core's detached
//! supervisor); the subcommands for people arrive with the CLI issue.

use std::process::ExitCode;

fn main() -> ExitCode {
    if let Some(code) = ccmp_core::hidden_entry_point() {
        return code;
    }
    eprintln!(
        "ccmp {}: the command-line subcommands are not in this build yet; this binary currently only hosts task runners",
        env!("CARGO_PKG_VERSION")
    );
    ExitCode::from(2)
}
