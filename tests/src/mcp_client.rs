//! A raw JSON-RPC client for the real `ccmp-mcp` binary over stdio, in either protocol era,
//! shared by the MCP server's tests and the end-to-end tier.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use crate::{Sandbox, workspace_bin};
use serde_json::{Value, json};

/// How long a request may take before the test fails.
pub const LONG: Duration = Duration::from_secs(60);

/// Which handshake the client speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Era {
    /// 2025-11-25: `initialize`, then `notifications/initialized`.
    Legacy,
    /// 2026-07-28: `server/discover`, and every request carries its `_meta`.
    Modern,
}

/// A running `ccmp-mcp`, killed when dropped.
#[expect(
    missing_debug_implementations,
    reason = "holds a child process and a channel"
)]
pub struct Mcp {
    pub child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<Value>,
    next_id: u64,
    era: Era,
    /// Client capabilities sent with every request (2026-07-28) or at initialize (2025-11-25).
    caps: Value,
    /// Notifications received while waiting for responses.
    pub notifications: Vec<Value>,
}

/// `ccmp-mcp` in the sandbox, with the fake agent and a hermetic environment.
pub fn server_command(sandbox: &Sandbox) -> Command {
    let mut cmd = Command::new(workspace_bin("ccmp-mcp"));
    cmd.env("CCMP_STATE_DIR", sandbox.state())
        .env("CCMP_CLAUDE_BIN", workspace_bin("fake-claude"))
        .env("CCMP_CODEX_BIN", workspace_bin("fake-codex"))
        .env("CODEX_HOME", sandbox.path("codex-home"))
        .env("CCMP_MAX_PARALLEL", "4")
        .env("CCMP_GRACE_SECS", "1.5")
        .env("IS_SANDBOX", "1")
        .env("CLAUDE_CONFIG_DIR", sandbox.path("claude-config"))
        .env("RUST_LOG", "warn")
        .current_dir(sandbox.work())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    cmd
}

impl Mcp {
    pub fn start(sandbox: &Sandbox, era: Era) -> Self {
        Self::spawn(server_command(sandbox), era)
    }

    pub fn spawn(cmd: Command, era: Era) -> Self {
        Self::spawn_with_caps(cmd, era, json!({}))
    }

    pub fn spawn_with_caps(mut cmd: Command, era: Era, caps: Value) -> Self {
        let mut child = cmd.spawn().expect("start ccmp-mcp");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let value: Value = serde_json::from_str(&line).unwrap_or_else(|e| {
                    panic!("ccmp-mcp wrote a non-JSON line to stdout ({e}): {line}")
                });
                if tx.send(value).is_err() {
                    break;
                }
            }
        });
        let mut mcp = Self {
            stdin: child.stdin.take(),
            child,
            lines: rx,
            next_id: 0,
            era,
            caps: caps.clone(),
            notifications: Vec::new(),
        };
        match era {
            Era::Legacy => {
                let init = mcp.request(
                    "initialize",
                    json!({"protocolVersion": "2025-11-25", "capabilities": caps, "clientInfo": {"name": "test", "version": "1"}}),
                );
                assert_eq!(init["result"]["serverInfo"]["name"], "ccmp", "{init}");
                mcp.notify("notifications/initialized", json!({}));
            }
            Era::Modern => {
                let discover = mcp.request("server/discover", json!({}));
                assert!(
                    discover["result"]["supportedVersions"]
                        .to_string()
                        .contains("2026-07-28"),
                    "{discover}"
                );
            }
        }
        mcp
    }

    fn with_meta(&self, mut params: Value, extra_meta: Option<Value>) -> Value {
        let mut meta = match self.era {
            Era::Legacy => json!({}),
            Era::Modern => json!({
                "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                "io.modelcontextprotocol/clientInfo": {"name": "test", "version": "1"},
                "io.modelcontextprotocol/clientCapabilities": self.caps,
            }),
        };
        if let Some(Value::Object(extra)) = extra_meta {
            for (k, v) in extra {
                meta[k] = v;
            }
        }
        if meta.as_object().is_some_and(|m| !m.is_empty()) {
            params["_meta"] = meta;
        }
        params
    }

    pub fn send(&mut self, message: &Value) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{message}").unwrap();
        stdin.flush().unwrap();
    }

    /// Writes one raw line, valid JSON-RPC or not.
    pub fn send_raw(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }

    pub fn notify(&mut self, method: &str, params: Value) {
        self.send(&json!({"jsonrpc": "2.0", "method": method, "params": params}));
    }

    /// Sends a request and returns its id without waiting.
    pub fn send_request(&mut self, method: &str, params: Value, extra_meta: Option<Value>) -> u64 {
        self.next_id += 1;
        let id = self.next_id;
        let params = self.with_meta(params, extra_meta);
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        id
    }

    /// Waits for the response to `id`, keeping notifications and other responses aside.
    pub fn response(&mut self, id: u64, limit: Duration) -> Value {
        // Replies to concurrent requests come in any order; one may already be set aside.
        if let Some(index) = self.notifications.iter().position(|m| m["id"] == id) {
            return self.notifications.remove(index);
        }
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(msg) if msg["id"] == id => return msg,
                Ok(msg) => self.notifications.push(msg),
                Err(RecvTimeoutError::Timeout) => {
                    panic!("no response to request {id} within {limit:?}")
                }
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("ccmp-mcp closed stdout before answering {id}")
                }
            }
        }
    }

    pub fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.send_request(method, params, None);
        self.response(id, LONG)
    }

    /// Calls a tool and returns the `result` object (panics on a JSON-RPC error).
    pub fn call(&mut self, tool: &str, args: Value) -> Value {
        let response = self.request("tools/call", json!({"name": tool, "arguments": args}));
        assert!(
            response.get("error").is_none(),
            "{tool} gave a JSON-RPC error: {response}"
        );
        response["result"].clone()
    }

    /// Calls a tool that must succeed and returns its structured content.
    pub fn ok(&mut self, tool: &str, args: Value) -> Value {
        let result = self.call(tool, args);
        assert_ne!(result["isError"], true, "{tool} failed: {result}");
        let structured = result["structuredContent"].clone();
        assert!(
            structured.is_object(),
            "{tool} returned no structured content: {result}"
        );
        structured
    }

    /// Calls a tool that must fail with a tool error and returns its text.
    pub fn err(&mut self, tool: &str, args: Value) -> String {
        let result = self.call(tool, args);
        assert_eq!(
            result["isError"], true,
            "{tool} should have failed: {result}"
        );
        result["content"][0]["text"].as_str().unwrap().to_owned()
    }

    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Any message that arrives within `limit`.
    pub fn next_message(&mut self, limit: Duration) -> Option<Value> {
        self.lines.recv_timeout(limit).ok()
    }
}

impl Drop for Mcp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
