//! The dashboard in a real headless Chromium, driven through chromedriver (WebDriver): the page
//! loads without console errors, a task started from the terminal appears without a reload and
//! its transcript streams, and cancel and follow-up work from the page. The run also takes the
//! screenshots the README shows (into `$CCMP_SCREENSHOTS_DIR`, else the temp dir).

use std::time::Duration;

use ccmp_tests::browser::{Browser, mark, still_marked};
use ccmp_tests::{Sandbox, poll};
use serde_json::{Value, json};

use crate::dashboard::Served;
use crate::{start, until_state};

const LONG: Duration = Duration::from_secs(30);

#[test]
fn the_dashboard_in_a_real_browser_is_live_and_its_actions_work() {
    let sandbox = Sandbox::new();
    let served = Served::start(crate::ccmp_std(&sandbox).arg("dashboard"));
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
