//! Budgets hold under three frontends starting at once: every start reserves under the queue
//! lock, so spend never passes the limit, and what waits says why.

use std::process::Command;
use std::time::Duration;

use ccmp_tests::{Sandbox, poll, workspace_bin};
use serde_json::{Value, json};

use crate::client::{Era, Mcp, ccmp_cli};

/// `ccmp` in the sandbox, which must succeed.
fn ccmp(sandbox: &Sandbox, args: &[&str]) -> std::process::Output {
    let output = ccmp_cli(sandbox, args);
    assert!(output.status.success(), "ccmp {args:?}: {output:?}");
    output
}

#[test]
fn a_group_budget_holds_under_three_frontends_and_says_why_tasks_wait() {
    let sandbox = Sandbox::new();
    ccmp(&sandbox, &["group", "add", "paid"]);
    ccmp(&sandbox, &["budget", "set", "0.05", "--group", "paid"]);
    ccmp(&sandbox, &["settings", "budget_reservation=0.02"]);
    let prompt = "FAKE_SLEEP=0.1 work";
    let mut mcp = Mcp::start(&sandbox, Era::Modern);
    // Five tasks from each frontend at once; each costs $0.01044 and reserves $0.02.
    let host = Command::new(workspace_bin("ccmp-test-host"))
        .args(["start", &sandbox.state().display().to_string(), "5", prompt])
        .env("CCMP_CLAUDE_BIN", workspace_bin("fake-claude"))
        .env("CLAUDE_CONFIG_DIR", sandbox.path("claude-config"))
        .env("GROUP", "paid")
        .current_dir(sandbox.work())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::scope(|scope| {
        let cli = scope.spawn(|| {
            for _ in 0..5 {
                ccmp(
                    &sandbox,
                    &["start", "-g", "paid", "--max-budget-usd", "0.02", prompt],
                );
            }
        });
        for _ in 0..5 {
            mcp.ok(
                "start_cc_task_async",
                json!({"prompt": prompt, "group": "paid", "max_budget_usd": 0.02}),
            );
        }
        cli.join().unwrap();
    });
    assert!(host.wait_with_output().unwrap().status.success());
    // Tasks start while the budget has room for their reservation; then the rest wait, and the
    // first in line says why (those behind it say so at their next look).
    let settled = poll(Duration::from_secs(60), "the budget to be spent", || {
        let list = mcp.ok("list_active_tasks", json!({"limit": 100}));
        let tasks = list["tasks"].as_array().unwrap().clone();
        let none_running = tasks.iter().all(|t| t["status"] == "queued");
        let first = tasks.last()?;
        let held = first["progress"]
            .as_str()
            .is_some_and(|p| p.starts_with("budget of $0.05 for group paid spent"));
        // Every task that ran has settled what it spent (no reservation left outstanding).
        let report: Value =
            serde_json::from_slice(&ccmp(&sandbox, &["budget", "--json"]).stdout).unwrap();
        let reserved: f64 = report["days"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|d| d["reserved_usd"].as_f64().unwrap_or(0.0))
            .sum();
        // And what is spent leaves no room for one more reservation.
        let counted = report["budgets"][0]["counted_usd"].as_f64().unwrap_or(0.0);
        let full = counted + 0.02 > 0.05;
        (none_running && held && reserved == 0.0 && full).then_some(tasks)
    });
    let report: Value =
        serde_json::from_slice(&ccmp(&sandbox, &["budget", "--json"]).stdout).unwrap();
    let counted = report["budgets"][0]["counted_usd"].as_f64().unwrap();
    assert!(
        counted <= 0.05 + 1e-9,
        "spent {counted} of a $0.05 budget: {report}"
    );
    let ran = 15 - settled.len();
    assert!((1..=4).contains(&ran), "{ran} ran");
    let spent: f64 = report["days"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["spent_usd"].as_f64().unwrap())
        .sum();
    assert!(spent <= 0.05 + 1e-9 && spent > 0.0, "{report}");
    // A start now is told why it waits.
    let late = mcp.ok(
        "start_cc_task_async",
        json!({"prompt": prompt, "group": "paid", "max_budget_usd": 0.02}),
    );
    let next = late["next"].as_str().unwrap();
    assert!(
        next.starts_with("Queued: the budget of $0.05 for group paid spent"),
        "{next}"
    );
    // A larger budget lets the rest start.
    ccmp(&sandbox, &["budget", "set", "1", "--group", "paid"]);
    poll(Duration::from_secs(60), "the rest to run", || {
        let list = mcp.ok("list_active_tasks", json!({"limit": 1}));
        (list["total"] == 0).then_some(())
    });
    let report: Value =
        serde_json::from_slice(&ccmp(&sandbox, &["budget", "--json"]).stdout).unwrap();
    assert_eq!(report["days"][0]["tasks"], 16, "{report}");
}
