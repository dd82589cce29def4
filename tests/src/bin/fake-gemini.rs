//! `fake-gemini`: a stand-in for Google's Gemini CLI 0.61 (`gemini --output-format stream-json
//! -p ""`) for fast tests. It takes the same flags, reads the prompt from stdin, and prints the
//! event shapes the recorded transcripts in `tests/fixtures/gemini/` show, with the same exit
//! codes: `init`, the user message, the model's text and a `result` (exit 0), or a `result` with
//! `status: error` wrapping the API's JSON (exit 144). Sessions persist under `$HOME/.gemini`, so
//! `--resume <id>` continues one and resuming an unknown one fails as the real CLI does (exit 42).
//!
//! Knobs, as words in the prompt: `FAKE_SLEEP=<secs>`, `FAKE_HANG`, `FAKE_FAIL=400`, and
//! `FAKE_TOOL` (a `run_shell_command` tool use and its result before the text).

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut stream_json = false;
    let mut headless = false;
    let mut model = "auto".to_owned();
    let mut resume = None;
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "--output-format" | "-o" => {
                stream_json = rest.next().map(String::as_str) == Some("stream-json")
            }
            "--skip-trust" | "--yolo" | "-y" => {}
            "--approval-mode" => {
                rest.next();
            }
            "--model" | "-m" => model = rest.next().cloned().unwrap_or_default(),
            "--resume" | "-r" => resume = rest.next().cloned(),
            "--prompt" | "-p" => {
                headless = true;
                rest.next();
            }
            other => {
                eprintln!("Unknown argument: {other}");
                return ExitCode::from(1);
            }
        }
    }
    if !stream_json || !headless {
        eprintln!("fake-gemini: ccmp runs `gemini --output-format stream-json … -p \"\"`");
        return ExitCode::from(2);
    }
    let mut prompt = String::new();
    let _ = std::io::stdin().read_to_string(&mut prompt);
    let chats = PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
        .join(".gemini/fake-gemini-chats");
    let _ = std::fs::create_dir_all(&chats);
    let session = match resume {
        Some(id) if chats.join(&id).exists() => id,
        Some(id) => {
            eprintln!("Error resuming session: Invalid session identifier \"{id}\".");
            return ExitCode::from(42);
        }
        None => uuid::Uuid::new_v4().hyphenated().to_string(),
    };
    let turns: u64 = std::fs::read_to_string(chats.join(&session))
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(0)
        + 1;
    let _ = std::fs::write(chats.join(&session), turns.to_string());
    let now = || chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let out = |line: serde_json::Value| println!("{line}");
    out(
        serde_json::json!({"type": "init", "timestamp": now(), "session_id": session, "model": model}),
    );
    out(
        serde_json::json!({"type": "message", "timestamp": now(), "role": "user", "content": prompt}),
    );
    let word = |name: &str| {
        prompt
            .split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{name}=")).map(str::to_owned))
    };
    if prompt.split_whitespace().any(|w| w == "FAKE_HANG") {
        loop {
            std::thread::sleep(Duration::from_secs(3600));
        }
    }
    if let Some(secs) = word("FAKE_SLEEP").and_then(|s| s.parse::<f64>().ok()) {
        std::thread::sleep(Duration::from_secs_f64(secs));
    }
    let stats = |tokens: u64| {
        serde_json::json!({"total_tokens": tokens + tokens / 20, "input_tokens": tokens, "output_tokens": tokens / 20,
                           "cached": 0, "input": tokens, "duration_ms": 10, "tool_calls": 0})
    };
    if word("FAKE_FAIL").is_some() {
        let message = "[API Error: {\"error\":{\"code\":400,\"message\":\"API key not valid. Please pass a valid API key.\",\"status\":\"INVALID_ARGUMENT\"}}]";
        out(
            serde_json::json!({"type": "result", "timestamp": now(), "status": "error",
                               "error": {"type": "unknown", "message": message}, "stats": stats(0)}),
        );
        return ExitCode::from(144);
    }
    if prompt.split_whitespace().any(|w| w == "FAKE_TOOL") {
        let id = "run_shell_command__run_shell_command_1_0";
        out(
            serde_json::json!({"type": "tool_use", "timestamp": now(), "tool_name": "run_shell_command", "tool_id": id,
                               "parameters": {"command": "echo tool-ran", "description": "say it"}}),
        );
        out(
            serde_json::json!({"type": "tool_result", "timestamp": now(), "tool_id": id, "status": "success", "output": "tool-ran"}),
        );
    }
    out(
        serde_json::json!({"type": "message", "timestamp": now(), "role": "assistant",
                           "content": format!("FAKE-GEMINI-DONE turn {turns}"), "delta": true}),
    );
    out(
        serde_json::json!({"type": "result", "timestamp": now(), "status": "success", "stats": stats(100 * turns)}),
    );
    ExitCode::SUCCESS
}
