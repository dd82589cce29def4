//! Start tasks that outlive this program, then look at them from a later run.
//!
//! ```sh
//! cargo run -p ccmp-examples --example detached -- start "Refactor database.py to async"
//! cargo run -p ccmp-examples --example detached -- list
//! ```
//!
//! Tasks live in the state dir (`CCMP_STATE_DIR`, else `~/.local/state/ccmp`), shared with the
//! `ccmp` command and the MCP server. This program is its own runner: `main` begins with
//! `hidden_entry_point`.

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
    let result = match args.first().map(String::as_str) {
        Some("start") if args.len() == 2 => {
            ccmp.start(TaskRequest::new(args[1].clone())).map(|record| {
                println!("{}", record.id.short());
            })
        }
        Some("list") => ccmp.list(&ListQuery::all()).map(|list| {
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
            eprintln!("usage: detached start PROMPT | detached list");
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
