//! `fake-claude`: a test fixture that behaves like the real `claude -p` CLI (2.1.331) as the
//! recorded transcripts in `tests/fixtures/transcripts/` show, without a model.
//!
//! * Same flags, parsed the way commander parses them: a prompt that starts with `-` and is not
//!   after `--` is taken as options (`-rf please` is `--resume "f please"`), so injection bugs
//!   show up as they would with the real CLI.
//! * The prompt comes from the argument, from stdin, or both (`"<arg>\n<stdin>"`).
//! * `--output-format text|json|stream-json` (stream-json needs `--verbose`), printing the real
//!   line shapes with this run's session id, model, cwd, turns and cost patched in.
//! * API errors exit 1 with `is_error: true` and `subtype: "success"`; `--max-turns` exhaustion
//!   gives `error_max_turns`; SIGTERM exits 143 printing nothing more; SIGINT exits 0 (stream-json
//!   prints an `error_during_execution` result first); as root, `--dangerously-skip-permissions`
//!   is refused unless `IS_SANDBOX=1`; `--resume` of an unknown session fails; a nested run
//!   (`CLAUDECODE` set) is refused.
//! * Sessions persist under `$CLAUDE_CONFIG_DIR` (else `$HOME/.claude`), and cost adds up
//!   across `--resume`, as it does for the real CLI.
//!
//! Knobs, set in the environment or as words in the prompt (`FAKE_SLEEP=2`):
//! `FAKE_SLEEP=<secs>` (slow model reply), `FAKE_START_CPU_MS=<ms>` (spend that much CPU time
//! before anything else, as the real CLI's start-up does: about 20 ms of CPU per start), `FAKE_HANG` (never reply), `FAKE_FAIL=<status>`
//! (API error), `FAKE_TOOLS=<n>` (tool uses before the answer), `FAKE_TOOL_MS=<ms>` (how long each tool runs), `FAKE_WRITE=<file>` (a Write
//! tool use; denied without skip-permissions), `FAKE_IGNORE_TERM`, `FAKE_GRANDCHILD` (leave a
//! background process in a session of its own, and print `grandchild:<pid>` on stderr),
//! `FAKE_HUGE=<bytes>` (a long answer), `FAKE_BINARY[=<bytes>]` (non-JSON, non-UTF-8 lines on stdout),
//! `FAKE_EXIT=<code>` (crash with this code before the result), `FAKE_RECORD=<file>` (append
//! `start`/`end` lines with timestamps, to check `max_parallel`), `FAKE_BASH=<program>` (run a
//! program in a session of its own and wait for it, as the Bash tool runs a command),
//! `FAKE_REFORK` / `FAKE_REEXEC` (leave a background process that keeps re-forking or
//! re-exec'ing itself, to test the end-of-task sweep), `FAKE_FAIL_TIMES=<n>` (with `FAKE_FAIL`:
//! only the first n runs of the task fail, counted per `CCMP_TASK_ID`; put both in the task's
//! environment so that a resumed run sees them), `FAKE_USAGE_LIMIT=<secs>` (the login's 5-hour
//! limit is reached until that many seconds after the first run that saw the knob, kept in the
//! config dir: under an OAuth login, `CLAUDE_CODE_OAUTH_TOKEN` and no `ANTHROPIC_API_KEY`, the
//! run fails as Claude Code does on a usage limit, with `api_error: usage_limit_reached` and the
//! reset time; with an API key, as a plain 429).

use std::collections::HashMap;
use std::fs::{self, OpenOptions};
use std::io::{self, IsTerminal, Read, Write};
use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

const INIT: &str = include_str!("../../fixtures/transcripts/init.json");
const TEXT: &str = include_str!("../../fixtures/transcripts/assistant-text.json");
const TOOL_USE: &str = include_str!("../../fixtures/transcripts/assistant-tool-use.json");
const TOOL_RESULT: &str = include_str!("../../fixtures/transcripts/user-tool-result.json");
const API_ERROR_MSG: &str = include_str!("../../fixtures/transcripts/assistant-api-error.json");
const RESULT_OK: &str = include_str!("../../fixtures/transcripts/result-success.json");
const RESULT_API_ERROR: &str = include_str!("../../fixtures/transcripts/result-api-error.json");
const RESULT_MAX_TURNS: &str = include_str!("../../fixtures/transcripts/result-max-turns.json");
const RATE_LIMIT_EVENT: &str =
    include_str!("../../fixtures/transcripts/rate-limit-event-rejected.json");
const USAGE_LIMIT_MSG: &str = include_str!("../../fixtures/transcripts/assistant-usage-limit.json");
const RESULT_USAGE_LIMIT: &str = include_str!("../../fixtures/transcripts/result-usage-limit.json");

const COST_PER_TURN: f64 = 0.01044;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--fake-background-sleep") {
        // The grandchild: a process in a session of its own, like a Bash tool's `nohup … &`.
        let _ = rustix::process::setsid();
        std::thread::sleep(Duration::from_secs(3600));
        return ExitCode::SUCCESS;
    }
    if let Some(mode @ ("--fake-refork" | "--fake-reexec")) = args.first().map(String::as_str) {
        return hand_on(mode);
    }
    match run(args) {
        Ok(code) => code,
        Err(Failure { message, code }) => {
            eprintln!("{message}");
            ExitCode::from(code)
        }
    }
}

/// A background process that will not stay put, in a session of its own: `--fake-refork`
/// starts its successor and exits every few milliseconds (its pid keeps changing), and
/// `--fake-reexec` execs itself every few milliseconds (its environment reads empty while it
/// is inside `execve`). One is alive at a time, so the machine is never flooded.
fn hand_on(mode: &str) -> ExitCode {
    use std::os::unix::process::CommandExt;
    let _ = rustix::process::setsid();
    std::thread::sleep(Duration::from_millis(3));
    let Ok(exe) = std::env::current_exe() else {
        return ExitCode::FAILURE;
    };
    let mut next = Command::new(exe);
    next.arg(mode)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if mode == "--fake-reexec" {
        let _ = next.exec();
        return ExitCode::FAILURE;
    }
    let _ = next.spawn();
    ExitCode::SUCCESS
}

struct Failure {
    message: String,
    code: u8,
}

fn fail(message: impl Into<String>) -> Failure {
    Failure {
        message: message.into(),
        code: 1,
    }
}

#[derive(Default, Debug)]
struct Options {
    print: bool,
    verbose: bool,
    output_format: Option<String>,
    model: Option<String>,
    skip_permissions: bool,
    permission_mode: Option<String>,
    allowed_tools: Vec<String>,
    max_turns: Option<u32>,
    max_budget: Option<f64>,
    resume: Option<String>,
    add_dirs: Vec<String>,
    prompt_arg: Option<String>,
}

const BOOL_FLAGS: &[&str] = &[
    "print",
    "verbose",
    "dangerously-skip-permissions",
    "allow-dangerously-skip-permissions",
    "continue",
    "strict-mcp-config",
    "fork-session",
    "include-partial-messages",
    "no-session-persistence",
    "bare",
];
const VALUE_FLAGS: &[&str] = &[
    "output-format",
    "input-format",
    "model",
    "permission-mode",
    "max-turns",
    "max-budget-usd",
    "append-system-prompt",
    "system-prompt",
    "resume",
    "session-id",
    "mcp-config",
    "settings",
    "fallback-model",
    "effort",
];
const VARIADIC_FLAGS: &[&str] = &[
    "allowedTools",
    "allowed-tools",
    "disallowedTools",
    "disallowed-tools",
    "add-dir",
];

fn short_flag(c: char) -> Option<&'static str> {
    match c {
        'p' => Some("print"),
        'r' => Some("resume"),
        'c' => Some("continue"),
        'd' => Some("debug"),
        _ => None,
    }
}

fn parse(args: Vec<String>) -> Result<Options, Failure> {
    let mut o = Options::default();
    let mut i = 0;
    let mut positional = Vec::new();
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        if arg == "--" {
            positional.extend(args[i..].iter().cloned());
            break;
        }
        let (name, inline) = if let Some(long) = arg.strip_prefix("--") {
            match long.split_once('=') {
                Some((n, v)) => (n.to_owned(), Some(v.to_owned())),
                None => (long.to_owned(), None),
            }
        } else if let Some(short) = arg.strip_prefix('-').filter(|s| !s.is_empty()) {
            // Commander: `-rf please` is `-r` with the value `f please`.
            let mut chars = short.chars();
            let c = chars.next().unwrap_or('-');
            let Some(name) = short_flag(c) else {
                return Err(fail(format!("error: unknown option '-{c}'")));
            };
            let rest: String = chars.collect();
            if BOOL_FLAGS.contains(&name) || name == "debug" {
                apply_bool(&mut o, name);
                if !rest.is_empty() {
                    return Err(fail(format!("error: unknown option '-{}'", rest)));
                }
                continue;
            }
            (name.to_owned(), (!rest.is_empty()).then_some(rest))
        } else {
            positional.push(arg.clone());
            continue;
        };
        if BOOL_FLAGS.contains(&name.as_str()) {
            apply_bool(&mut o, &name);
        } else if VALUE_FLAGS.contains(&name.as_str()) {
            let value = match inline {
                Some(v) => v,
                None => {
                    let v = args.get(i).cloned().ok_or_else(|| {
                        fail(format!("error: option '--{name} <value>' argument missing"))
                    })?;
                    i += 1;
                    v
                }
            };
            apply_value(&mut o, &name, value)?;
        } else if VARIADIC_FLAGS.contains(&name.as_str()) {
            let mut values: Vec<String> = inline.into_iter().collect();
            if values.is_empty() {
                while i < args.len() && !args[i].starts_with('-') {
                    values.push(args[i].clone());
                    i += 1;
                }
            }
            if values.is_empty() {
                return Err(fail(format!(
                    "error: option '--{name} <values...>' argument missing"
                )));
            }
            if name.starts_with("add-dir") {
                o.add_dirs.extend(values);
            } else if name.starts_with("allowed") {
                o.allowed_tools.extend(values);
            }
        } else {
            return Err(fail(format!("error: unknown option '--{name}'")));
        }
    }
    if positional.len() > 1 {
        return Err(fail(format!(
            "error: too many arguments. Expected 1 argument but got {}.",
            positional.len()
        )));
    }
    o.prompt_arg = positional.pop();
    Ok(o)
}

fn apply_bool(o: &mut Options, name: &str) {
    match name {
        "print" => o.print = true,
        "verbose" => o.verbose = true,
        "dangerously-skip-permissions" => o.skip_permissions = true,
        _ => {}
    }
}

fn apply_value(o: &mut Options, name: &str, value: String) -> Result<(), Failure> {
    match name {
        "output-format" => {
            if !["text", "json", "stream-json"].contains(&value.as_str()) {
                return Err(fail(format!(
                    "error: option '--output-format <format>' argument '{value}' is invalid. Allowed choices are text, json, stream-json."
                )));
            }
            o.output_format = Some(value);
        }
        "model" => o.model = Some(value),
        "permission-mode" => {
            let modes = [
                "acceptEdits",
                "auto",
                "bypassPermissions",
                "default",
                "dontAsk",
                "manual",
                "plan",
            ];
            if !modes.contains(&value.as_str()) {
                return Err(fail(format!(
                    "error: option '--permission-mode <mode>' argument '{value}' is invalid."
                )));
            }
            o.permission_mode = Some(value);
        }
        "max-turns" => {
            o.max_turns = Some(
                value
                    .parse()
                    .map_err(|_| fail(format!("error: invalid --max-turns '{value}'")))?,
            )
        }
        "max-budget-usd" => {
            o.max_budget = Some(
                value
                    .parse()
                    .map_err(|_| fail(format!("error: invalid --max-budget-usd '{value}'")))?,
            )
        }
        "resume" => {
            if uuid::Uuid::parse_str(&value).is_err() {
                return Err(fail(format!(
                    "Error: --resume requires a valid session ID or session title when used with --print. Usage: claude -p --resume <session-id|title>. Provided value \"{value}\" is not a UUID and does not match any session title."
                )));
            }
            o.resume = Some(value);
        }
        _ => {}
    }
    Ok(())
}

/// Knobs from the environment, overridden by `FAKE_*` words in the prompt.
fn knobs(prompt: &str) -> HashMap<String, String> {
    let mut map: HashMap<String, String> = std::env::vars()
        .filter(|(k, _)| k.starts_with("FAKE_"))
        .collect();
    for word in prompt.split_whitespace() {
        if let Some(rest) = word.strip_prefix("FAKE_") {
            let (k, v) = rest.split_once('=').unwrap_or((rest, "1"));
            map.insert(format!("FAKE_{k}"), v.to_owned());
        }
    }
    map
}

/// Spends `cpu` of this process's CPU time (not wall time: under contention it takes longer),
/// as the real CLI spends loading and compiling its JavaScript before it does anything.
fn burn_cpu(cpu: Duration) {
    use rustix::time::{ClockId, clock_gettime};
    let used = || {
        let t = clock_gettime(ClockId::ProcessCPUTime);
        Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
    };
    let until = used() + cpu;
    let mut x: u64 = 1;
    while used() < until {
        for _ in 0..1000 {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
    }
}

fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

fn record_event(knobs: &HashMap<String, String>, what: &str) {
    if let Some(path) = knobs.get("FAKE_RECORD") {
        let who = std::env::var("CCMP_TASK_ID").unwrap_or_else(|_| std::process::id().to_string());
        if let Ok(mut f) = OpenOptions::new().create(true).append(true).open(path) {
            // One write per line: several agents append to the same file at once.
            let _ = f.write_all(format!("{what} {who} {}\n", now_ns()).as_bytes());
        }
    }
}

fn config_dir() -> PathBuf {
    match std::env::var_os("CLAUDE_CONFIG_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/tmp".into())).join(".claude")
        }
    }
}

fn full_model(alias: Option<&str>) -> String {
    match alias {
        None | Some("opus") => "claude-opus-5-5".into(),
        Some("sonnet") => "claude-sonnet-5-5".into(),
        Some("haiku") => "claude-haiku-5-5".into(),
        Some(other) => other.into(),
    }
}

fn template(text: &str) -> Value {
    serde_json::from_str(text).expect("fixture transcripts are valid JSON")
}

struct Run {
    session_id: String,
    model: String,
    stream: bool,
    format: String,
}

impl Run {
    fn emit(&self, mut line: Value) {
        if !self.stream {
            return;
        }
        if line.get("session_id").is_some() {
            line["session_id"] = json!(self.session_id);
        }
        if line.get("uuid").is_some() {
            line["uuid"] = json!(uuid::Uuid::new_v4().to_string());
        }
        if line["type"] == "assistant" && line["message"]["model"] != "<synthetic>" {
            line["message"]["model"] = json!(self.model);
            line["message"]["id"] = json!(format!("msg_fake_{}", uuid::Uuid::new_v4().simple()));
        }
        print_line(&line);
    }
}

fn print_line(value: &Value) {
    let mut out = io::stdout().lock();
    let _ = writeln!(out, "{value}");
    let _ = out.flush();
}

fn run(args: Vec<String>) -> Result<ExitCode, Failure> {
    let o = parse(args)?;
    if !o.print {
        return Err(fail("fake-claude: only print mode (-p) is supported"));
    }
    let format = o.output_format.clone().unwrap_or_else(|| "text".into());
    if format == "stream-json" && !o.verbose {
        return Err(fail(
            "Error: When using --print, --output-format=stream-json requires --verbose",
        ));
    }
    if std::env::var_os("CLAUDECODE").is_some() {
        return Err(fail(
            "Error: Claude Code cannot be launched inside another Claude Code session.\nNested sessions share runtime resources and will crash all active sessions.\nTo bypass this check, unset the CLAUDECODE environment variable.",
        ));
    }
    let bypass = o.skip_permissions || o.permission_mode.as_deref() == Some("bypassPermissions");
    if bypass
        && rustix::process::getuid().is_root()
        && std::env::var("IS_SANDBOX").as_deref() != Ok("1")
    {
        return Err(fail(
            "--dangerously-skip-permissions cannot be used with root/sudo privileges for security reasons",
        ));
    }
    let mut stdin_text = String::new();
    if !io::stdin().is_terminal() {
        let mut bytes = Vec::new();
        let _ = io::stdin().read_to_end(&mut bytes);
        stdin_text = String::from_utf8_lossy(&bytes).into_owned();
    }
    let prompt = match (o.prompt_arg.clone(), stdin_text.is_empty()) {
        (Some(arg), true) => arg,
        (Some(arg), false) => format!("{arg}\n{stdin_text}"),
        (None, false) => stdin_text,
        (None, true) => {
            return Err(fail(
                "Error: Input must be provided either through stdin or as a prompt argument when using --print",
            ));
        }
    };
    let knobs = knobs(&prompt);
    if let Some(ms) = knobs
        .get("FAKE_START_CPU_MS")
        .and_then(|s| s.parse::<u64>().ok())
    {
        burn_cpu(Duration::from_millis(ms));
    }
    let sessions = config_dir().join("fake-claude-sessions");
    let (session_id, mut history) = match &o.resume {
        Some(id) => {
            let path = sessions.join(format!("{id}.json"));
            let text = fs::read_to_string(&path)
                .map_err(|_| fail(format!("No conversation found with session ID: {id}")))?;
            (
                id.clone(),
                serde_json::from_str::<Value>(&text).unwrap_or_else(|_| json!({})),
            )
        }
        None => (
            uuid::Uuid::new_v4().to_string(),
            json!({"prompts": [], "cost": 0.0}),
        ),
    };
    let run = Run {
        session_id: session_id.clone(),
        model: full_model(o.model.as_deref()),
        stream: format == "stream-json",
        format: format.clone(),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| fail(e.to_string()))?;
    runtime.block_on(async {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).map_err(|e| fail(e.to_string()))?;
        let mut int = signal(SignalKind::interrupt()).map_err(|e| fail(e.to_string()))?;
        let ignore_term = knobs.contains_key("FAKE_IGNORE_TERM");
        record_event(&knobs, "start");
        let mut work = Box::pin(work(&run, &o, &prompt, &knobs, &mut history));
        let code = loop {
            tokio::select! {
                code = &mut work => break code,
                _ = term.recv() => {
                    if !ignore_term {
                        // Like the real CLI: exit 143 at once, no result line.
                        break Ok(ExitCode::from(143));
                    }
                }
                _ = int.recv() => {
                    if run.stream {
                        let mut line = template(RESULT_OK);
                        line["subtype"] = json!("error_during_execution");
                        line["is_error"] = json!(true);
                        line["result"] = Value::Null;
                        line["terminal_reason"] = json!("aborted_streaming");
                        line["errors"] = json!(["[ede_diagnostic] aborted by user"]);
                        run.emit(line);
                    }
                    break Ok(ExitCode::SUCCESS);
                }
            }
        };
        drop(work);
        record_event(&knobs, "end");
        let _ = fs::create_dir_all(&sessions);
        let _ = fs::write(
            sessions.join(format!("{session_id}.json")),
            history.to_string(),
        );
        code
    })
}

async fn work(
    run: &Run,
    o: &Options,
    prompt: &str,
    knobs: &HashMap<String, String>,
    history: &mut Value,
) -> Result<ExitCode, Failure> {
    let mut init = template(INIT);
    init["cwd"] = json!(
        std::env::current_dir()
            .map(|d| d.display().to_string())
            .unwrap_or_default()
    );
    init["model"] = json!(run.model);
    init["permissionMode"] = json!(if o.skip_permissions {
        "bypassPermissions".to_owned()
    } else {
        o.permission_mode
            .clone()
            .unwrap_or_else(|| "default".into())
    });
    init["additional_directories"] = json!(o.add_dirs);
    run.emit(init);

    if knobs.contains_key("FAKE_GRANDCHILD") {
        let exe = std::env::current_exe().map_err(|e| fail(e.to_string()))?;
        let child = Command::new(exe)
            .arg("--fake-background-sleep")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| fail(e.to_string()))?;
        eprintln!("grandchild:{}", child.id());
    }
    for (knob, mode) in [
        ("FAKE_REFORK", "--fake-refork"),
        ("FAKE_REEXEC", "--fake-reexec"),
    ] {
        if knobs.contains_key(knob) {
            let exe = std::env::current_exe().map_err(|e| fail(e.to_string()))?;
            Command::new(exe)
                .arg(mode)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| fail(e.to_string()))?;
        }
    }
    if let Some(program) = knobs.get("FAKE_BASH") {
        // Claude Code's Bash tool runs each command in a session of its own, with the agent's
        // environment (CCMP_TASK_ID included).
        use std::os::unix::process::CommandExt;
        let status = Command::new(program)
            .stdin(Stdio::null())
            .process_group(0)
            .status()
            .map_err(|e| fail(format!("FAKE_BASH: cannot run {program}: {e}")))?;
        eprintln!("bash:{program} exited with {status}");
    }
    if let Some(secs) = knobs.get("FAKE_SLEEP").and_then(|s| s.parse::<f64>().ok()) {
        tokio::time::sleep(Duration::from_secs_f64(secs)).await;
    }
    if knobs.contains_key("FAKE_HANG") {
        std::future::pending::<()>().await;
    }
    if let Some(size) = knobs.get("FAKE_BINARY") {
        let mut out = io::stdout().lock();
        let _ = out.write_all(b"plain text on stdout \xff\xfe not utf-8\n");
        // `FAKE_BINARY=<bytes>`: that many more bytes of every value (a fixed pseudo-random
        // sequence, as a program dumping a binary file would print).
        let mut state: u32 = 0x9e37_79b9;
        let noise: Vec<u8> = (0..size.parse::<usize>().unwrap_or(0))
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                state as u8
            })
            .collect();
        let _ = out.write_all(&noise);
        let _ = out.write_all(b"\n");
        let _ = out.flush();
    }
    if let Some(code) = knobs.get("FAKE_EXIT").and_then(|c| c.parse::<u8>().ok()) {
        eprintln!("fake-claude: crashing with exit code {code} as asked");
        return Ok(ExitCode::from(code));
    }
    let previous_cost = history["cost"].as_f64().unwrap_or(0.0);
    if let Some(secs) = knobs
        .get("FAKE_USAGE_LIMIT")
        .and_then(|s| s.parse::<u64>().ok())
        && let Some(resets_at) = usage_limit_until(secs)
    {
        // A refused request still leaves the prompt in the session, as with the real CLI.
        let mut prompts = history["prompts"].as_array().cloned().unwrap_or_default();
        prompts.push(json!(prompt));
        history["prompts"] = json!(prompts);
        return Ok(usage_limit(run, resets_at, previous_cost));
    }
    let fails_left = match knobs
        .get("FAKE_FAIL_TIMES")
        .and_then(|n| n.parse::<u64>().ok())
    {
        Some(times) => count_run() <= times,
        None => true,
    };
    if let Some(status) = knobs
        .get("FAKE_FAIL")
        .and_then(|s| s.parse::<i64>().ok())
        .filter(|_| fails_left)
    {
        let text = format!(
            "API Error: {status} Overloaded. This is a server-side issue, usually temporary — try again in a moment."
        );
        let mut msg = template(API_ERROR_MSG);
        msg["message"]["content"][0]["text"] = json!(text);
        msg["api_error_status"] = json!(status);
        run.emit(msg);
        let mut result = template(RESULT_API_ERROR);
        result["session_id"] = json!(run.session_id);
        result["result"] = json!(text);
        result["api_error_status"] = json!(status);
        result["total_cost_usd"] = json!(previous_cost);
        finish(run, result);
        return Ok(ExitCode::from(1));
    }

    let tools: u32 = knobs
        .get("FAKE_TOOLS")
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let writes = knobs.get("FAKE_WRITE").cloned();
    let tool_ms = knobs
        .get("FAKE_TOOL_MS")
        .and_then(|n| n.parse::<u64>().ok());
    let mut turns = 0u32;
    let mut denials = Vec::new();
    let tool_uses = tools + u32::from(writes.is_some());
    for n in 0..tool_uses {
        turns += 1;
        if o.max_turns.is_some_and(|max| turns > max) {
            let mut result = template(RESULT_MAX_TURNS);
            let max = o.max_turns.unwrap_or_default();
            result["session_id"] = json!(run.session_id);
            result["num_turns"] = json!(turns);
            result["errors"] = json!([format!("Reached maximum number of turns ({max})")]);
            result["total_cost_usd"] = json!(previous_cost + COST_PER_TURN * f64::from(turns));
            history["cost"] = json!(previous_cost + COST_PER_TURN * f64::from(turns));
            finish(run, result);
            return Ok(ExitCode::from(1));
        }
        let mut tool = template(TOOL_USE);
        let tool_id = format!("toolu_fake_{n}");
        tool["message"]["content"][0]["id"] = json!(tool_id);
        let mut tool_result = template(TOOL_RESULT);
        tool_result["message"]["content"][0]["tool_use_id"] = json!(tool_id);
        match (&writes, n == tool_uses - 1) {
            (Some(file), true) => {
                let input = json!({"file_path": file, "content": "written by fake-claude\n"});
                tool["message"]["content"][0]["name"] = json!("Write");
                tool["message"]["content"][0]["input"] = input.clone();
                run.emit(tool);
                if o.skip_permissions || o.permission_mode.as_deref() == Some("acceptEdits") {
                    let _ = fs::write(file, "written by fake-claude\n");
                    tool_result["message"]["content"][0]["content"] =
                        json!(format!("File created successfully at: {file}"));
                } else {
                    let message = format!(
                        "Claude requested permissions to write to {file}, but you haven't granted it yet."
                    );
                    denials.push(
                        json!({"tool_name": "Write", "tool_use_id": tool_id, "tool_input": input}),
                    );
                    run.emit(json!({"type": "system", "subtype": "permission_denied", "tool_name": "Write",
                        "tool_use_id": tool_id, "message": message, "session_id": run.session_id}));
                    tool_result["message"]["content"][0]["content"] = json!(message);
                    tool_result["message"]["content"][0]["is_error"] = json!(true);
                }
            }
            _ => {
                run.emit(tool);
                tool_result["message"]["content"][0]["content"] = json!("hi");
            }
        }
        if let Some(ms) = tool_ms {
            // The tool runs between its use and its result, as a quick Read or Grep does.
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        run.emit(tool_result);
    }
    turns += 1;
    let huge = knobs
        .get("FAKE_HUGE")
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap_or(0);
    let answer = if huge > 0 {
        "x".repeat(huge)
    } else {
        format!("FAKE-DONE after {tool_uses} tool uses")
    };
    let mut text = template(TEXT);
    text["message"]["content"][0]["text"] = json!(answer);
    run.emit(text);
    let cost = previous_cost + COST_PER_TURN * f64::from(turns);
    history["cost"] = json!(cost);
    history["prompts"] = json!(
        [
            history["prompts"].as_array().cloned().unwrap_or_default(),
            vec![json!(prompt)]
        ]
        .concat()
    );
    let mut result = template(RESULT_OK);
    result["result"] = json!(answer);
    result["num_turns"] = json!(turns);
    result["total_cost_usd"] = json!(cost);
    result["permission_denials"] = json!(denials);
    result["session_id"] = json!(run.session_id);
    result["uuid"] = json!(uuid::Uuid::new_v4().to_string());
    finish(run, result);
    Ok(ExitCode::SUCCESS)
}

/// Counts this run of the task (`CCMP_TASK_ID`) in the config dir; returns its number from 1.
fn count_run() -> u64 {
    let task = std::env::var("CCMP_TASK_ID").unwrap_or_else(|_| "no-task".into());
    let path = config_dir().join(format!("fake-claude-runs-{task}"));
    let runs = fs::read_to_string(&path)
        .ok()
        .and_then(|t| t.trim().parse::<u64>().ok())
        .unwrap_or(0)
        + 1;
    let _ = fs::create_dir_all(config_dir());
    let _ = fs::write(&path, runs.to_string());
    runs
}

/// The login's usage limit (`FAKE_USAGE_LIMIT=<secs>`): when it resets (epoch seconds), while
/// it holds; `None` once it has reset. The first run that sees the knob starts the window.
fn usage_limit_until(secs: u64) -> Option<u64> {
    let path = config_dir().join("fake-claude-usage-limit");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let until = match fs::read_to_string(&path)
        .ok()
        .and_then(|t| t.trim().parse::<u64>().ok())
    {
        Some(until) => until,
        None => {
            let _ = fs::create_dir_all(config_dir());
            let _ = fs::write(&path, (now + secs).to_string());
            now + secs
        }
    };
    (now < until).then_some(until)
}

/// A run refused by the login's usage limit, as Claude Code 2.1.331 reports it (see
/// `claude-limits-defer-channels.md`): under OAuth, a `rate_limit_event`, the synthetic
/// assistant message with `api_error: usage_limit_reached` and the reset time, and a result
/// whose text gives the reset in the local zone; with an API key, a plain 429. Exit 1.
fn usage_limit(run: &Run, resets_at: u64, previous_cost: f64) -> ExitCode {
    let oauth = std::env::var_os("CLAUDE_CODE_OAUTH_TOKEN").is_some()
        && std::env::var_os("ANTHROPIC_API_KEY").is_none();
    if !oauth {
        let text = "API Error: Request rejected (429) · This request would exceed your account's rate limit. Please try again later.";
        let mut msg = template(API_ERROR_MSG);
        msg["message"]["content"][0]["text"] = json!(text);
        msg["api_error_status"] = json!(429);
        msg["api_error_type"] = json!("rate_limit_error");
        msg["error"] = json!("rate_limit");
        run.emit(msg);
        let mut result = template(RESULT_API_ERROR);
        result["session_id"] = json!(run.session_id);
        result["result"] = json!(text);
        result["api_error_status"] = json!(429);
        result["api_error_type"] = json!("rate_limit_error");
        result["total_cost_usd"] = json!(previous_cost);
        finish(run, result);
        return ExitCode::from(1);
    }
    let mut event = template(RATE_LIMIT_EVENT);
    event["rate_limit_info"]["resetsAt"] = json!(resets_at);
    event["rate_limit_info"]["unifiedWindows"]["five_hour"]["resetsAt"] = json!(resets_at);
    run.emit(event);
    let text = format!(
        "You've hit your 5-hour limit · resets {} (UTC)",
        chrono::DateTime::from_timestamp(resets_at as i64, 0)
            .map(|t| t.format("%-I:%M%P").to_string())
            .unwrap_or_default()
    );
    let mut msg = template(USAGE_LIMIT_MSG);
    msg["message"]["content"][0]["text"] = json!(text);
    msg["api_error_params"]["rate_limit_info"]["resetsAt"] = json!(resets_at);
    run.emit(msg);
    let mut result = template(RESULT_USAGE_LIMIT);
    result["session_id"] = json!(run.session_id);
    result["result"] = json!(text);
    result["total_cost_usd"] = json!(previous_cost);
    finish(run, result);
    ExitCode::from(1)
}

fn finish(run: &Run, result: Value) {
    match run.format.as_str() {
        "stream-json" | "json" => print_line(&result),
        _ => {
            let text = result["result"].as_str().unwrap_or("Execution error");
            println!("{text}");
        }
    }
}
