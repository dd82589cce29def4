//! Start tasks that outlive this program, then look at them from a later run.
//!
//! ```sh
//! cargo run -p ccmp-examples --example detached -- start -C ~/proj "Refactor database.py to async"
//! cargo run -p ccmp-examples --example detached -- list
//! ```
//!
//! Without `-C DIR` the task works in a new scratch dir (printed), never in the directory you
//! run the example from: tasks run with permission prompts skipped.
//!
//! Tasks live in the state dir (`CCMP_STATE_DIR`, else `~/.local/state/ccmp`), shared with the
//! `ccmp` command and the MCP server. This program is its own runner: `main` begins with
//! `hidden_entry_point`.

use std::path::PathBuf;
use std::process::ExitCode;

use ccmp_core::{Ccmp, ListQuery, TaskRequest};

fn main() -> ExitCode {
    if let Some(code) = ccmp_core::hidden_entry_point() {
        return code;
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let ccmp = match Ccmp::open(None) {
        Ok(ccmp) => ccmp,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["start", "-C", dir, prompt] => start(&ccmp, prompt, dir.into()),
        ["start", prompt] => match scratch_dir() {
            Ok(dir) => start(&ccmp, prompt, dir),
            Err(e) => {
                eprintln!("error: cannot make a scratch dir: {e}");
                return ExitCode::FAILURE;
            }
        },
        ["list"] => ccmp.list(&ListQuery::all()).map(|list| {
            for record in list.tasks {
                let view = ccmp.view(&record);
                println!(
                    "{} {:<9} {}",
                    view.short_id,
                    view.status,
                    view.prompt.lines().next().unwrap_or("")
                );
            }
            for damaged in list.damaged {
                println!("{} damaged   {}", damaged.short_id, damaged.reason);
            }
        }),
        _ => {
            eprintln!("usage: detached start [-C DIR] PROMPT | detached list");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Starts a task in `dir` and prints its short id.
fn start(ccmp: &Ccmp, prompt: &str, dir: PathBuf) -> Result<(), ccmp_core::Error> {
    let record = ccmp.start(TaskRequest::new(prompt).working_dir(dir))?;
    println!("{}", record.id.short());
    Ok(())
}

/// A new, empty directory for a task to work in, left in place for you to look at.
fn scratch_dir() -> std::io::Result<PathBuf> {
    let dir = tempfile::Builder::new()
        .prefix("ccmp-example-")
        .tempdir()?
        .keep();
    eprintln!("working in {}", dir.display());
    Ok(dir)
}
