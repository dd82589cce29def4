//! Embed ccmp in a program: an in-memory store and in-process tasks, gone when the program ends.
//!
//! ```sh
//! cargo run -p ccmp-examples --example in_memory -- -C ~/proj "Generate unit tests for utils.py" "Add type hints to api.py"
//! ```
//!
//! Runs each prompt as a Claude Code task (`claude` on PATH, or `CCMP_CLAUDE_BIN`) in `DIR`, at
//! most `CCMP_MAX_PARALLEL` (default 4) at once, and prints each result. Without `-C DIR` the
//! tasks work in a new scratch dir (printed), never in the directory you run the example from:
//! tasks run with permission prompts skipped.

use std::process::ExitCode;
use std::time::Duration;

use ccmp_core::{Ccmp, Config, TaskRequest, WaitMode};

#[tokio::main]
async fn main() -> ExitCode {
    let mut prompts: Vec<String> = std::env::args().skip(1).collect();
    let dir = if prompts.first().map(String::as_str) == Some("-C") && prompts.len() > 1 {
        let dir = std::path::PathBuf::from(prompts.remove(1));
        prompts.remove(0);
        dir
    } else {
        match tempfile::Builder::new().prefix("ccmp-example-").tempdir() {
            Ok(dir) => {
                let dir = dir.keep();
                eprintln!("working in {}", dir.display());
                dir
            }
            Err(e) => {
                eprintln!("error: cannot make a scratch dir: {e}");
                return ExitCode::FAILURE;
            }
        }
    };
    if prompts.is_empty() {
        eprintln!("usage: in_memory [-C DIR] PROMPT…");
        return ExitCode::from(2);
    }
    let ccmp = match Config::from_env()
        .map_err(Into::into)
        .and_then(Ccmp::in_memory)
    {
        Ok(ccmp) => ccmp,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut ids = Vec::new();
    for prompt in prompts {
        match ccmp.start(TaskRequest::new(prompt).working_dir(&dir)) {
            Ok(record) => {
                eprintln!("started {}", record.id.short());
                ids.push(record.id);
            }
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    let outcome = match ccmp
        .wait(&ids, WaitMode::All, Duration::from_secs(3600))
        .await
    {
        Ok(outcome) => outcome,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut code = ExitCode::SUCCESS;
    for record in outcome.finished {
        let view = ccmp.view(&record);
        println!(
            "{} {}: {}",
            view.short_id,
            view.status,
            view.result.or(view.error).unwrap_or_default()
        );
        if !view.status.is_success() {
            code = ExitCode::FAILURE;
        }
    }
    code
}
