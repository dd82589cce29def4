//! `ccmp dashboard` over real HTTP: the token, the `Host` check and the CSRF token guard every
//! request; pages show tasks started elsewhere, escaped; the live stream sends a task started
//! from the CLI; actions call the core.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use ccmp_tests::Sandbox;
pub use ccmp_tests::dashboard::Served;

use crate::{start, until_state};

/// The CSRF token a page embeds in its forms.
fn csrf(page: &str) -> String {
    let at = page
        .find("name=\"csrf\" value=\"")
        .expect("a form with the CSRF token");
    let rest = &page[at + "name=\"csrf\" value=\"".len()..];
    rest[..rest.find('"').unwrap()].to_owned()
}

#[test]
fn every_request_needs_the_token_the_right_host_and_posts_the_csrf_token() {
    let sandbox = Sandbox::new();
    let served = Served::start(crate::ccmp_std(&sandbox).arg("dashboard"));
    let id = start(&sandbox, "FAKE_HANG");
    // No token: refused.
    let (status, head, _) = served.request("GET", "/", &[], "");
    assert_eq!(status, 401, "{head}");
    let (status, _, _) = served.request("GET", "/?token=not-it", &[], "");
    assert_eq!(status, 401);
    // The token once: kept in a cookie, and out of the address.
    let (status, head, _) = served.request("GET", &format!("/?token={}", served.token), &[], "");
    assert_eq!(status, 303, "{head}");
    let lower = head.to_ascii_lowercase();
    assert!(lower.contains("location: /\r\n"), "{head}");
    assert!(
        lower.contains("httponly") && lower.contains("samesite=strict"),
        "{head}"
    );
    // A foreign Host (DNS rebinding): refused, token or not.
    let (status, _, _) = served.request(
        "GET",
        "/",
        &[("Host", "evil.example".into()), ("Cookie", served.cookie())],
        "",
    );
    assert_eq!(status, 421);
    // With the cookie: the page, with a strict CSP.
    let (status, head, page) = served.get("/");
    assert_eq!(status, 200, "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-security-policy: default-src 'none'; script-src 'self'"),
        "{head}"
    );
    assert!(page.contains(&id), "{page}");
    // POSTs need the CSRF token of the page.
    let (status, _, _) = served.post(&format!("/task/{id}/cancel"), "csrf=wrong");
    assert_eq!(status, 403);
    let (status, _, _) = served.post(&format!("/task/{id}/cancel"), "");
    assert!(matches!(status, 400 | 415 | 422), "{status}");
    assert_eq!(crate::status_json(&sandbox, &id)["status"], "running");
    let (status, _, _) = served.post(
        &format!("/task/{id}/cancel"),
        &format!("csrf={}", csrf(&page)),
    );
    assert_eq!(status, 303);
    until_state(&sandbox, &id, "cancelled");
}

#[test]
fn pages_escape_agent_text_and_the_live_stream_shows_a_task_started_elsewhere() {
    let sandbox = Sandbox::new();
    let served = Served::start(crate::ccmp_std(&sandbox).arg("dashboard"));
    let hostile = start(&sandbox, "FAKE_SLEEP=0 <script>alert(1)</script>");
    until_state(&sandbox, &hostile, "succeeded");
    let (_, _, page) = served.get("/");
    assert!(
        page.contains("&#60;script&#62;alert(1)&#60;/script&#62;"),
        "{page}"
    );
    assert!(!page.contains("<script>alert(1)"), "{page}");
    let (status, _, task_page) = served.get(&format!("/task/{hostile}"));
    assert_eq!(status, 200);
    assert!(task_page.contains("FAKE-DONE"), "the result: {task_page}");
    // The live stream: a task started from the CLI after it opened arrives as new rows.
    let mut stream = TcpStream::connect(&served.addr).unwrap();
    write!(
        stream,
        "GET /live/tasks HTTP/1.1\r\nHost: {}\r\nCookie: {}\r\nAccept: text/event-stream\r\n\r\n",
        served.addr,
        served.cookie()
    )
    .unwrap();
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut reader = BufReader::new(stream);
    let mut seen = String::new();
    let mut read_until = |what: &str, seen: &mut String| {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            let mut line = String::new();
            match reader.read_line(&mut line) {
                Ok(0) => panic!("the stream ended: {seen}"),
                Ok(_) => seen.push_str(&line),
                Err(_) => {}
            }
            if seen.contains(what) {
                return;
            }
        }
        panic!("no {what:?} in the stream: {seen}");
    };
    read_until(&hostile, &mut seen);
    let later = start(&sandbox, "FAKE_SLEEP=0 started from the terminal");
    read_until(&later, &mut seen);
    assert!(seen.contains("event: rows"), "{seen}");
    // Filters that name no state are refused, saying why.
    let (status, _, body) = served.get("/?state=done");
    assert_eq!(status, 400);
    assert!(body.contains("done"), "{body}");
}

#[test]
fn a_worktree_tasks_page_shows_its_changes_file_by_file() {
    let sandbox = Sandbox::new();
    let dir = sandbox.work();
    let git = |args: &[&str]| ccmp_tests::git(&dir, args);
    git(&["init", "-q", "-b", "main"]);
    std::fs::write(dir.join("api.py"), "def f(x):\n    return x\n").unwrap();
    git(&["add", "."]);
    git(&["commit", "-q", "-m", "init"]);
    let out = crate::ccmp(&sandbox)
        .args([
            "start",
            "--worktree",
            "--wait",
            "FAKE_WRITE=api.py type hints",
        ])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let id = String::from_utf8(out).unwrap().trim().to_owned();
    // A file the agent made and git does not track yet counts too.
    let worktree = crate::status_json(&sandbox, &id)["worktree"]["path"]
        .as_str()
        .unwrap()
        .to_owned();
    std::fs::write(
        std::path::Path::new(&worktree).join("NOTES.md"),
        "# <b>notes</b>\n",
    )
    .unwrap();
    let served = Served::start(crate::ccmp_std(&sandbox).arg("dashboard"));
    let (status, _, page) = served.get(&format!("/task/{id}"));
    assert_eq!(status, 200);
    assert!(page.contains("Changes against the base commit"), "{page}");
    assert!(page.contains("<summary>NOTES.md</summary>"), "{page}");
    assert!(
        page.contains("+# &#60;b&#62;notes&#60;/b&#62;"),
        "escaped: {page}"
    );
    assert!(page.contains("<summary>api.py</summary>"), "{page}");
    assert!(page.contains("diff --git a/api.py b/api.py"), "{page}");
    // The row says it runs in a worktree.
    let (_, _, tasks) = served.get("/");
    assert!(tasks.contains("⎇"), "{tasks}");
}

#[test]
fn a_long_transcript_is_paged_from_its_end_back_to_its_start() {
    let sandbox = Sandbox::new();
    let id = start(&sandbox, "FAKE_SLEEP=0 FAKE_TOOLS=1500 many tools");
    until_state(&sandbox, &id, "succeeded");
    let served = Served::start(crate::ccmp_std(&sandbox).arg("dashboard"));
    let (_, _, mut page) = served.get(&format!("/task/{id}"));
    assert!(
        page.contains("[result] succeeded"),
        "the latest page ends the transcript"
    );
    assert!(
        !page.contains("[session]"),
        "the start is on an earlier page"
    );
    let mut pages = 1;
    while let Some(at) = page.find("?before=") {
        let rest = &page[at + "?before=".len()..];
        let before: u64 = rest[..rest.find('"').unwrap()].parse().unwrap();
        let (status, _, earlier) = served.get(&format!("/task/{id}?before={before}"));
        assert_eq!(status, 200);
        assert!(earlier.contains("Latest (live)"), "{earlier}");
        assert!(
            !earlier.contains("data-live=\"/live"),
            "an earlier page does not follow"
        );
        page = earlier;
        pages += 1;
        assert!(pages < 20, "paging must reach the start");
    }
    assert!(pages >= 3, "{pages} pages");
    assert!(
        page.contains("[session]"),
        "the first page starts the transcript"
    );
}
