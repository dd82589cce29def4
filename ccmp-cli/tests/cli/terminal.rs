//! `ccmp` in a real pseudo-terminal, driven through tmux (installed by `.ci/setup-tmux`): what a
//! person sees while a task runs, when it ends, and when they press Ctrl-C.

use std::process::Command;
use std::time::Duration;

use ccmp_tests::{Sandbox, poll, workspace_bin};

use crate::status_json;

/// A tmux server of its own, with one window running a command in a 100x20 terminal; killed on
/// drop, so that no test leaves it behind.
struct Tmux {
    socket: String,
}

impl Tmux {
    /// Runs `script` in bash (so that Ctrl-C reaches `ccmp` and bash goes on to print the exit
    /// code) in a new terminal, with ccmp's sandbox environment.
    fn run(sandbox: &Sandbox, script: &str) -> Self {
        let socket = format!("ccmp-test-{}", ccmp_core::TaskId::new().simple());
        let env = [
            ("CCMP_STATE_DIR", sandbox.state().display().to_string()),
            (
                "CCMP_CLAUDE_BIN",
                workspace_bin("fake-claude").display().to_string(),
            ),
            ("CCMP_GRACE_SECS", "1.5".into()),
            ("IS_SANDBOX", "1".into()),
            (
                "CLAUDE_CONFIG_DIR",
                sandbox.path("claude-config").display().to_string(),
            ),
            ("HOME", sandbox.root().display().to_string()),
            ("NO_COLOR", "1".into()),
            ("PATH", std::env::var("PATH").unwrap_or_default()),
        ];
        let ccmp = assert_cmd::cargo::cargo_bin!("ccmp").display().to_string();
        let mut cmd = Command::new("tmux");
        cmd.args([
            "-L",
            &socket,
            "-f",
            "/dev/null",
            "new-session",
            "-d",
            "-x",
            "100",
            "-y",
            "20",
        ])
        .arg("-c")
        .arg(sandbox.work());
        for (name, value) in &env {
            cmd.arg("-e").arg(format!("{name}={value}"));
        }
        cmd.args(["bash", "--norc", "--noprofile", "-c"])
            .arg(format!(
                "ccmp() {{ '{ccmp}' \"$@\"; }}; {script}; echo \"exit=$?\"; sleep 600"
            ));
        let status = cmd
            .status()
            .expect("tmux is needed for this test: run .ci/setup-tmux");
        assert!(status.success(), "tmux new-session failed");
        Self { socket }
    }

    /// What the terminal shows now.
    fn screen(&self) -> String {
        let out = Command::new("tmux")
            .args(["-L", &self.socket, "capture-pane", "-p"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits until the screen shows `text`, and returns the screen.
    fn until(&self, text: &str) -> String {
        poll(
            Duration::from_secs(30),
            &format!("the screen to show {text:?}"),
            || {
                let screen = self.screen();
                screen.contains(text).then_some(screen)
            },
        )
    }

    fn keys(&self, keys: &str) {
        Command::new("tmux")
            .args(["-L", &self.socket, "send-keys", keys])
            .status()
            .unwrap();
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .status();
    }
}

#[test]
fn start_wait_shows_progress_then_ends_with_the_outcome() {
    let sandbox = Sandbox::new();
    let tmux = Tmux::run(&sandbox, "ccmp start --wait FAKE_SLEEP=1 FAKE_TOOLS=2");
    // While it runs: the id, then a live line with the id, the state, the time it has run and
    // what the agent does.
    let running = tmux.until(" running ");
    let id = running.lines().next().unwrap().trim().to_owned();
    let live = running.lines().find(|l| l.contains(" running ")).unwrap();
    assert!(
        live.contains(&format!("{id} running ")) && live.contains("s: "),
        "{running}"
    );
    let done = tmux.until("exit=0");
    let lines: Vec<&str> = done.lines().filter(|l| !l.trim().is_empty()).collect();
    // The id stays on screen; the spinner is gone; the outcome line says how it ended.
    assert_eq!(lines.len(), 3, "{done}");
    assert_eq!(lines[0].trim(), id, "{done}");
    assert!(
        lines[1].starts_with(&format!("{id} succeeded in "))
            && lines[1].ends_with(" · 3 turns · $0.03"),
        "{done}"
    );
}

#[test]
fn ctrl_c_ends_the_wait_and_says_the_task_keeps_running() {
    let sandbox = Sandbox::new();
    let tmux = Tmux::run(&sandbox, "ccmp run FAKE_HANG");
    tmux.until("running");
    tmux.keys("C-c");
    let screen = tmux.until("exit=130");
    let line = screen
        .lines()
        .find(|l| l.contains("keeps running"))
        .unwrap_or_else(|| panic!("{screen}"));
    let id = line.split_whitespace().next().unwrap();
    assert!(
        line.contains(&format!("`ccmp cancel {id}` stops it")),
        "{screen}"
    );
    assert_eq!(status_json(&sandbox, id)["status"], "running");
    crate::ccmp(&sandbox)
        .args(["cancel", id])
        .assert()
        .success();
}
