//! `ccmp-test-host`: a minimal embedding program for the tests. It is the runner binary of the
//! detached supervisor in the tests (it dispatches the hidden subcommands), and a frontend that
//! can be killed while its tasks run:
//!
//! `ccmp-test-host start <state-dir> <count> <prompt>` starts `count` tasks with the fake agent
//! named by `CCMP_CLAUDE_BIN` (in the group `GROUP`, if set), prints their ids, and then waits
//! to be killed if `HOLD=1`.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    if let Some(code) = ccmp_core::hidden_entry_point() {
        return code;
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [cmd, state, count, prompt] = args.as_slice() else {
        eprintln!("usage: ccmp-test-host start <state-dir> <count> <prompt>");
        return ExitCode::from(2);
    };
    if cmd != "start" {
        eprintln!("unknown command {cmd}");
        return ExitCode::from(2);
    }
    let ccmp = match ccmp_core::Ccmp::open(Some(PathBuf::from(state))) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let count: usize = count.parse().unwrap_or(1);
    for _ in 0..count {
        let mut request = ccmp_core::TaskRequest::new(prompt.clone()).env("IS_SANDBOX", "1");
        if let Some(dir) = std::env::var_os("CLAUDE_CONFIG_DIR") {
            request = request.env("CLAUDE_CONFIG_DIR", dir.to_string_lossy());
        }
        request.group = std::env::var("GROUP").ok();
        match ccmp.start(request) {
            Ok(record) => println!("{}", record.id),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    if std::env::var_os("HOLD").is_some() {
        loop {
            std::thread::park();
        }
    }
    ExitCode::SUCCESS
}
