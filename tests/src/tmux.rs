//! A program in a real pseudo-terminal, driven through tmux (installed by `.ci/setup-tmux`):
//! what a person sees, and the keys they press.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::poll;

/// A tmux server of its own with one 160x40 window running a bash script; killed on drop, so
/// that no test leaves it (or what runs in it) behind.
#[derive(Debug)]
pub struct Tmux {
    socket: String,
}

impl Tmux {
    /// Runs `script` with bash (so that Ctrl-C reaches the program and bash goes on to print
    /// `exit=<code>`) in `dir`, with exactly `env` as its environment (plus `PATH` and `TERM`).
    pub fn run(dir: &Path, env: &[(&str, String)], script: &str) -> Self {
        let socket = format!("ccmp-test-{}", uuid::Uuid::new_v4().simple());
        let mut cmd = Command::new("tmux");
        cmd.args([
            "-L",
            &socket,
            "-f",
            "/dev/null",
            "new-session",
            "-d",
            "-x",
            "160",
            "-y",
            "40",
        ])
        .arg("-c")
        .arg(dir);
        let path = ("PATH", std::env::var("PATH").unwrap_or_default());
        for (name, value) in env.iter().chain(std::iter::once(&path)) {
            cmd.arg("-e").arg(format!("{name}={value}"));
        }
        cmd.args(["bash", "--norc", "--noprofile", "-c"])
            .arg(format!("{script}; echo \"exit=$?\"; sleep 600"));
        let status = cmd
            .status()
            .expect("tmux is needed for this test: run .ci/setup-tmux");
        assert!(status.success(), "tmux new-session failed");
        Self { socket }
    }

    /// What the terminal shows now.
    pub fn screen(&self) -> String {
        let out = Command::new("tmux")
            .args(["-L", &self.socket, "capture-pane", "-p"])
            .output()
            .expect("tmux capture-pane");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits (up to `limit`) until the screen shows `text`, and returns the screen.
    pub fn until(&self, text: &str, limit: Duration) -> String {
        poll(limit, &format!("the screen to show {text:?}"), || {
            let screen = self.screen();
            screen.contains(text).then_some(screen)
        })
    }

    /// Types `keys` (tmux key names, such as `C-c` or `Enter`, or literal text).
    pub fn keys(&self, keys: &[&str]) {
        Command::new("tmux")
            .args(["-L", &self.socket, "send-keys"])
            .args(keys)
            .status()
            .expect("tmux send-keys");
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .status();
    }
}
