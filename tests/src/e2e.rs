//! What the end-to-end tiers share: where the pinned CLIs are installed (`tests/e2e`, by
//! `.ci/setup-e2e`), and a loopback mock API started from one of the Python scripts there.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::Value;

/// `tests/e2e`: the pinned CLIs' `node_modules` and the mock APIs.
pub fn e2e_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("e2e")
}

/// A pinned CLI (`claude`, `codex`, `gemini`); fails the test, saying how to install it, when
/// it is missing.
pub fn e2e_bin(name: &str) -> PathBuf {
    let path = e2e_dir().join("node_modules/.bin").join(name);
    assert!(
        path.exists(),
        "{} is missing: run .ci/setup-e2e (the CI script does) to install the pinned CLIs",
        path.display()
    );
    path
}

/// A mock API (`script` in `tests/e2e`) on a free loopback port, with its request log; stopped
/// when dropped.
#[expect(missing_debug_implementations, reason = "holds a child process")]
pub struct Mock {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    log: PathBuf,
}

impl Mock {
    /// Starts `script`, logging requests in `dir`.
    pub fn start(script: &str, dir: &Path) -> Self {
        let log = dir.join("mock-requests.jsonl");
        let mut child = Command::new("python3")
            .arg(e2e_dir().join(script))
            .env("MOCK_LOG", &log)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 runs the mock");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line.trim().rsplit(' ').next().unwrap().to_owned();
        assert!(url.starts_with("http://127.0.0.1:"), "mock said {line:?}");
        Self { child, url, log }
    }

    /// Every request the mock logged, in order.
    pub fn requests(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

impl Drop for Mock {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
