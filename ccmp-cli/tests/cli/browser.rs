//! The dashboard in a real headless Chromium, driven through chromedriver (WebDriver): the page
//! loads without console errors, a task started from the terminal appears without a reload and
//! its transcript streams, and cancel and follow-up work from the page. The run also takes the
//! screenshots the README shows (into `$CCMP_SCREENSHOTS_DIR`, else `target/`).
//!
//! Chromium and chromedriver come from Debian's packages (`.ci/setup-browser`).

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use ccmp_tests::{Sandbox, poll};
use serde_json::{Value, json};

use crate::dashboard::Served;
use crate::{start, until_state};

const LONG: Duration = Duration::from_secs(30);

/// A chromedriver and one headless Chromium session, both ended when dropped.
struct Browser {
    driver: Child,
    base: String,
    session: String,
    http: ureq::Agent,
}

impl Browser {
    fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver (run .ci/setup-browser)");
        let base = format!("http://127.0.0.1:{port}");
        let http: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(LONG))
            .build()
            .into();
        poll(LONG, "chromedriver to be ready", || {
            let mut response = http.get(&format!("{base}/status")).call().ok()?;
            let text = response.body_mut().read_to_string().ok()?;
            let status: Value = serde_json::from_str(&text).ok()?;
            (status["value"]["ready"] == true).then_some(())
        });
        let mut browser = Self {
            driver,
            base,
            session: String::new(),
            http,
        };
        let created = browser.send(
            "POST",
            "/session",
            json!({"capabilities": {"alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {
                    "binary": which_chromium(),
                    "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                             "--disable-dev-shm-usage", "--window-size=1280,860"]
                },
                "goog:loggingPrefs": {"browser": "ALL"}
            }}}),
        );
        browser.session = created["sessionId"].as_str().expect("a session").to_owned();
        browser
    }

    fn send(&self, method: &str, path: &str, body: Value) -> Value {
        let url = format!("{}{path}", self.base);
        let mut response = match method {
            "GET" => self.http.get(&url).call(),
            "DELETE" => self.http.delete(&url).call(),
            _ => self
                .http
                .post(&url)
                .header("Content-Type", "application/json")
                .send(body.to_string().as_bytes()),
        }
        .unwrap();
        let text = response.body_mut().read_to_string().unwrap();
        let reply: Value = serde_json::from_str(&text).unwrap();
        reply["value"].clone()
    }

    fn session_path(&self, path: &str) -> String {
        format!("/session/{}{path}", self.session)
    }

    fn go(&self, url: &str) {
        self.send("POST", &self.session_path("/url"), json!({"url": url}));
    }

    fn script(&self, script: &str, args: Value) -> Value {
        self.send(
            "POST",
            &self.session_path("/execute/sync"),
            json!({"script": script, "args": args}),
        )
    }

    /// The text of the first element matching `css`, if there is one.
    fn text(&self, css: &str) -> Option<String> {
        let value = self.script(
            "const e = document.querySelector(arguments[0]); return e ? e.textContent : null;",
            json!([css]),
        );
        value.as_str().map(str::to_owned)
    }

    /// Severe messages of the page's console.
    fn console_errors(&self) -> Vec<Value> {
        let logs = self.send(
            "POST",
            &self.session_path("/se/log"),
            json!({"type": "browser"}),
        );
        logs.as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|entry| entry["level"] == "SEVERE")
            .collect()
    }

    fn screenshot(&self, name: &str) {
        use std::io::Write;
        let encoded = self.send("GET", &self.session_path("/screenshot"), Value::Null);
        let png = base64_decode(encoded.as_str().unwrap());
        let dir = std::env::var_os("CCMP_SCREENSHOTS_DIR").map_or_else(
            || std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")),
            std::path::PathBuf::from,
        );
        let mut file = std::fs::File::create(dir.join(name)).unwrap();
        file.write_all(&png).unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = self.send("DELETE", &self.session_path(""), Value::Null);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn which_chromium() -> String {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .unwrap_or("chromium")
        .to_owned()
}

/// Standard base64, as WebDriver sends screenshots.
fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        _ => 63,
    };
    let bytes: Vec<u8> = text
        .bytes()
        .filter(|c| *c != b'=' && !c.is_ascii_whitespace())
        .collect();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let n = chunk.iter().enumerate().fold(0u32, |acc, (i, c)| {
            acc | (u32::from(value(*c)) << (18 - 6 * i))
        });
        out.push((n >> 16) as u8);
        if chunk.len() > 2 {
            out.push((n >> 8) as u8);
        }
        if chunk.len() > 3 {
            out.push(n as u8);
        }
    }
    out
}

/// Marks the page, so that a reload (which would drop the mark) can be told.
fn mark(browser: &Browser) {
    browser.script("window.ccmpMark = 'unreloaded'; return null;", json!([]));
}

fn still_marked(browser: &Browser) -> bool {
    browser.script("return window.ccmpMark || null;", json!([])) == "unreloaded"
}

#[test]
fn the_dashboard_in_a_real_browser_is_live_and_its_actions_work() {
    let sandbox = Sandbox::new();
    let served = Served::start(&sandbox);
    let browser = Browser::start();
    // Some history, for the screenshot.
    let done = start(
        &sandbox,
        "FAKE_SLEEP=0 FAKE_TOOLS=1 Write unit tests for utils.py",
    );
    let failed = start(&sandbox, "FAKE_FAIL=529 Refactor database.py to async");
    until_state(&sandbox, &done, "succeeded");
    until_state(&sandbox, &failed, "failed");
    browser.go(&format!("http://{}/?token={}", served.addr, served.token));
    assert_eq!(browser.text("nav strong").as_deref(), Some("ccmp"));
    mark(&browser);
    // Started from the terminal: the row appears on the open page, with no reload.
    let live = start(
        &sandbox,
        "FAKE_SLEEP=3 FAKE_TOOLS=1 Add type hints to api.py",
    );
    let full = crate::full_id(&sandbox, &live);
    let dashed = format!(
        "{}-{}-{}-{}-{}",
        &full[..8],
        &full[8..12],
        &full[12..16],
        &full[16..20],
        &full[20..]
    );
    poll(LONG, "the new task's row", || {
        browser.text(&format!("a[href='/task/{dashed}']"))
    });
    assert!(still_marked(&browser), "the page was reloaded");
    browser.screenshot("dashboard-tasks.png");
    // Its page: the transcript streams in, then the result.
    browser.go(&format!("http://{}/task/{dashed}", served.addr));
    mark(&browser);
    let transcript = poll(LONG, "the transcript to stream to the end", || {
        browser
            .text("#transcript")
            .filter(|t| t.contains("[result] succeeded"))
    });
    assert!(transcript.contains("tool Bash"), "{transcript}");
    poll(LONG, "the result", || {
        browser.text("#result").filter(|t| t.contains("FAKE-DONE"))
    });
    assert_eq!(browser.text("#status").as_deref(), Some("succeeded"));
    assert!(still_marked(&browser), "the page was reloaded");
    browser.screenshot("dashboard-task.png");
    // A follow-up from the page: a new task, in the same session.
    browser.script(
        "const f = document.querySelector(\"form[action$='/reply']\"); f.prompt.value = 'FAKE_SLEEP=0 now run the tests'; f.submit(); return null;",
        json!([]),
    );
    let reply_status = poll(LONG, "the follow-up to succeed", || {
        let url = browser.send("GET", &browser.session_path("/url"), Value::Null);
        let url = url.as_str()?.to_owned();
        (!url.ends_with(&dashed)).then_some(())?;
        browser.text("#status").filter(|s| s == "succeeded")
    });
    assert_eq!(reply_status, "succeeded");
    // Cancel from the page.
    let hanging = start(&sandbox, "FAKE_HANG");
    until_state(&sandbox, &hanging, "running");
    browser.go(&format!("http://{}/task/{hanging}", served.addr));
    browser.script(
        "document.querySelector(\"form[action$='/cancel']\").submit(); return null;",
        json!([]),
    );
    until_state(&sandbox, &hanging, "cancelled");
    let errors = browser.console_errors();
    assert!(errors.is_empty(), "console errors: {errors:?}");
}
