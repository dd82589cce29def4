//! A headless Chromium driven through chromedriver (WebDriver), for the tests that use the
//! dashboard in a real browser. Chromium and chromedriver come from Debian's packages
//! (`.ci/setup-browser`).

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::poll;

const LONG: Duration = Duration::from_secs(30);

/// A chromedriver and one headless Chromium session, both ended when dropped.
#[expect(
    missing_debug_implementations,
    reason = "holds a child process and an HTTP agent"
)]
pub struct Browser {
    driver: Child,
    base: String,
    session: String,
    http: ureq::Agent,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session.
    pub fn start() -> Self {
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

    /// A WebDriver command; returns its `value`.
    pub fn send(&self, method: &str, path: &str, body: Value) -> Value {
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

    /// A path under this session.
    pub fn session_path(&self, path: &str) -> String {
        format!("/session/{}{path}", self.session)
    }

    /// Navigates to `url`.
    pub fn go(&self, url: &str) {
        self.send("POST", &self.session_path("/url"), json!({"url": url}));
    }

    /// Runs a script in the page; returns its value.
    pub fn script(&self, script: &str, args: Value) -> Value {
        self.send(
            "POST",
            &self.session_path("/execute/sync"),
            json!({"script": script, "args": args}),
        )
    }

    /// The text of the first element matching `css`, if there is one.
    pub fn text(&self, css: &str) -> Option<String> {
        let value = self.script(
            "const e = document.querySelector(arguments[0]); return e ? e.textContent : null;",
            json!([css]),
        );
        value.as_str().map(str::to_owned)
    }

    /// Severe messages of the page's console.
    pub fn console_errors(&self) -> Vec<Value> {
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

    /// Saves a PNG of the page as `name` in `$CCMP_SCREENSHOTS_DIR` (else the temp dir).
    pub fn screenshot(&self, name: &str) {
        use std::io::Write;
        let encoded = self.send("GET", &self.session_path("/screenshot"), Value::Null);
        let png = base64_decode(encoded.as_str().unwrap());
        let dir = std::env::var_os("CCMP_SCREENSHOTS_DIR")
            .map_or_else(std::env::temp_dir, std::path::PathBuf::from);
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
pub fn mark(browser: &Browser) {
    browser.script("window.ccmpMark = 'unreloaded'; return null;", json!([]));
}

pub fn still_marked(browser: &Browser) -> bool {
    browser.script("return window.ccmpMark || null;", json!([])) == "unreloaded"
}
