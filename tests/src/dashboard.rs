//! `ccmp dashboard` over real HTTP, for the tests of the CLI's dashboard and of what it shows.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};

/// A running dashboard, stopped when dropped.
#[expect(missing_debug_implementations, reason = "holds a child process")]
pub struct Served {
    child: Child,
    /// host:port
    pub addr: String,
    pub token: String,
}

impl Served {
    /// Starts `command` (a `ccmp dashboard` set up for the test) and reads the address it
    /// prints.
    pub fn start(command: &mut Command) -> Self {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line.trim();
        let rest = url.strip_prefix("http://").expect(url);
        let (addr, query) = rest.split_once("/?token=").expect(url);
        Self {
            child,
            addr: addr.to_owned(),
            token: query.to_owned(),
        }
    }

    /// The cookie that carries the token.
    pub fn cookie(&self) -> String {
        let port = self.addr.rsplit(':').next().unwrap();
        format!("ccmp_dashboard_{port}={}", self.token)
    }

    /// One request; returns the status, the head and the body.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, String)],
        body: &str,
    ) -> (u16, String, String) {
        let mut stream = TcpStream::connect(&self.addr).unwrap();
        let mut request = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
        if !headers.iter().any(|(name, _)| *name == "Host") {
            request.push_str(&format!("Host: {}\r\n", self.addr));
        }
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        if !body.is_empty() {
            request.push_str("Content-Type: application/x-www-form-urlencoded\r\n");
        }
        request.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
        stream.write_all(request.as_bytes()).unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        (status, head.to_owned(), body.to_owned())
    }

    /// A GET with the token's cookie.
    pub fn get(&self, path: &str) -> (u16, String, String) {
        self.request("GET", path, &[("Cookie", self.cookie())], "")
    }

    /// A POST with the token's cookie.
    pub fn post(&self, path: &str, body: &str) -> (u16, String, String) {
        self.request("POST", path, &[("Cookie", self.cookie())], body)
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
