//! Helpers of the MCP server's tests; the client itself is `ccmp_tests::mcp_client`.

use std::process::{Child, Command, Stdio};

use ccmp_tests::{Sandbox, workspace_bin};

pub use ccmp_tests::mcp_client::{Era, LONG, Mcp, server_command};

/// An embedding program (`ccmp-test-host`) that starts `count` tasks with `prompt` in the
/// sandbox and prints their ids, with `CCMP_MAX_PARALLEL` as given.
pub fn start_from_test_host(
    sandbox: &Sandbox,
    count: usize,
    prompt: &str,
    env_limit: &str,
) -> Child {
    Command::new(workspace_bin("ccmp-test-host"))
        .args([
            "start",
            &sandbox.state().display().to_string(),
            &count.to_string(),
            prompt,
        ])
        .env("CCMP_CLAUDE_BIN", workspace_bin("fake-claude"))
        .env("CCMP_MAX_PARALLEL", env_limit)
        .env("CLAUDE_CONFIG_DIR", sandbox.path("claude-config"))
        .current_dir(sandbox.work())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Runs the `ccmp` CLI in the sandbox with the environment tasks need; returns its output.
pub fn ccmp_cli(sandbox: &Sandbox, args: &[&str]) -> std::process::Output {
    Command::new(workspace_bin("ccmp"))
        .args(args)
        .env("CCMP_STATE_DIR", sandbox.state())
        .env("CCMP_CLAUDE_BIN", workspace_bin("fake-claude"))
        .env("IS_SANDBOX", "1")
        .env("CLAUDE_CONFIG_DIR", sandbox.path("claude-config"))
        .current_dir(sandbox.work())
        .output()
        .unwrap()
}
