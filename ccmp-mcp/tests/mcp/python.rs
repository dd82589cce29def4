//! A real MCP client from outside the project: the Python `mcp` SDK from PyPI, installed into
//! `target/py-mcp` by `.ci/setup-python-mcp` (which `.ci/run` calls).

use std::path::PathBuf;
use std::process::Command;

use ccmp_tests::{Sandbox, workspace_bin};

fn python() -> PathBuf {
    let target = workspace_bin("fake-claude")
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .to_owned();
    let python = target.join("py-mcp/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run .ci/setup-python-mcp (the CI script does) to install the Python MCP SDK",
        python.display()
    );
    python
}

const SCRIPT: &str = r#"
import asyncio, json, os, sys
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

async def main():
    params = StdioServerParameters(command=sys.argv[1], args=[], env=dict(os.environ), cwd=os.getcwd())
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            tools = await session.list_tools()
            names = sorted(t.name for t in tools.tools)
            result = await session.call_tool("execute_cc_task", {"prompt": "FAKE_TOOLS=1 from python"})
            bad = await session.call_tool("check_task_status", {"task_id": "../../etc"})
            print(json.dumps({
                "tools": names,
                "is_error": result.is_error,
                "structured": result.structured_content,
                "bad_is_error": bad.is_error,
                "bad_text": bad.content[0].text,
            }))

asyncio.run(main())
"#;

#[test]
fn the_python_mcp_sdk_lists_tools_and_runs_a_task() {
    let sandbox = Sandbox::new();
    let output = Command::new(python())
        .arg("-c")
        .arg(SCRIPT)
        .arg(env!("CARGO_BIN_EXE_ccmp-mcp"))
        .env("CCMP_STATE_DIR", sandbox.state())
        .env("CCMP_CLAUDE_BIN", workspace_bin("fake-claude"))
        .env("IS_SANDBOX", "1")
        .env("CLAUDE_CONFIG_DIR", sandbox.path("claude-config"))
        .current_dir(sandbox.work())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "python client failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let reply: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        reply["tools"].as_array().unwrap().len(),
        crate::TOOLS.len(),
        "{reply}"
    );
    assert_eq!(reply["is_error"], false, "{reply}");
    assert_eq!(reply["structured"]["status"], "succeeded", "{reply}");
    assert_eq!(reply["structured"]["num_turns"], 2);
    assert_eq!(reply["bad_is_error"], true);
    assert!(reply["bad_text"].as_str().unwrap().contains("hex digits"));
}
