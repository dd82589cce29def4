//! A stdout line too long to hold in memory, read as it streams past.
//!
//! An agent's final line carries its whole answer, which can be tens of MiB. Parsing such a line
//! whole costs several times its size (the line, the parsed value, copies of the text), so a
//! line over [`LINE_CAP`] is not kept: its bytes are fed here as they arrive. The text of a
//! top-level `"result"` string is decoded piece by piece into a sink (the task's `result.txt`,
//! opened only then) and only its head is kept; every other field is kept as it was and parsed
//! at the end, if that rest fits in the cap (a long line of another kind, such as an assistant
//! message with a huge tool input, does not, and is only counted). Memory stays bounded by the
//! cap whatever the line's length. (Claude Code writes `"type"` after `"result"`, so which kind
//! of line it is is only known at its end.)

use std::io::Write;

use serde_json::Value;

/// The longest stdout line parsed whole (2 MiB); longer ones are streamed.
pub(crate) const LINE_CAP: usize = 2 * 1024 * 1024;
/// How much of a long result the record keeps (64 KiB); the rest is only in `result.txt`.
pub(crate) const RESULT_HEAD: usize = 64 * 1024;
/// Escaped result text decoded at a time.
const PIECE: usize = 64 * 1024;

/// Where the scanner is in the line's JSON, at the top level of its object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    /// Between tokens.
    Between,
    /// Inside a string that is a key of the top-level object.
    Key,
    /// Inside any other string.
    Text,
    /// Inside the top-level `"result"` string: its bytes go to the sink, not to `rest`.
    Result,
}

/// A long line's fields, collected as its bytes arrive.
pub(crate) struct LongResultLine {
    /// The line without the text of its result (`"result":""`), to parse at the end.
    rest: Vec<u8>,
    /// Whether `rest` outgrew the cap (a long field other than the result): it is not parsed.
    rest_too_long: bool,
    place: Place,
    /// After a backslash inside a string.
    escaped: bool,
    depth: usize,
    /// At depth 1, whether the next string is a key.
    expect_key: bool,
    /// The key being read, and the last one read (at depth 1).
    key: Vec<u8>,
    last_key: Vec<u8>,
    /// Escaped result text not decoded yet.
    pending: Vec<u8>,
    /// The decoded result: its head, its length, and where the whole goes.
    head: String,
    result_bytes: u64,
    /// Opens the sink, the first time a result string starts.
    open_sink: Option<OpenSink>,
    sink: Option<Box<dyn Write + Send>>,
    /// The line's length so far.
    line_bytes: u64,
    /// Whether decoding or writing the result failed (the head is then all there is).
    broken: bool,
}

/// Opens where a long result's text goes.
pub(crate) type OpenSink = Box<dyn FnOnce() -> Option<Box<dyn Write + Send>> + Send>;

/// What a long line held.
#[derive(Debug)]
pub(crate) struct LongResult {
    /// The line's fields, with `result` holding only the head of the text; `None` if the rest
    /// of the line was too long too, or not JSON.
    pub value: Option<Value>,
    /// The line's length in bytes.
    pub line_bytes: u64,
    /// The length of the whole result text, in bytes.
    pub result_bytes: u64,
    /// Whether all of it reached the sink.
    pub complete: bool,
}

impl LongResultLine {
    /// Starts a line; a result text in it goes to what `open_sink` opens.
    pub(crate) fn new(open_sink: OpenSink) -> Self {
        Self {
            rest: Vec::new(),
            rest_too_long: false,
            place: Place::Between,
            escaped: false,
            depth: 0,
            expect_key: false,
            key: Vec::new(),
            last_key: Vec::new(),
            pending: Vec::new(),
            head: String::new(),
            result_bytes: 0,
            open_sink: Some(open_sink),
            sink: None,
            line_bytes: 0,
            broken: false,
        }
    }

    /// Feeds the next bytes of the line (without its newline).
    pub(crate) fn feed(&mut self, bytes: &[u8]) {
        self.line_bytes += bytes.len() as u64;
        let mut kept_from = 0;
        for (i, &b) in bytes.iter().enumerate() {
            match self.place {
                Place::Result => {
                    if self.escaped {
                        self.escaped = false;
                    } else if b == b'\\' {
                        self.escaped = true;
                    } else if b == b'"' {
                        self.pending.extend_from_slice(&bytes[kept_from..i]);
                        self.decode(true);
                        self.place = Place::Between;
                        kept_from = i;
                    }
                }
                Place::Key | Place::Text => {
                    if self.escaped {
                        self.escaped = false;
                    } else if b == b'\\' {
                        self.escaped = true;
                    } else if b == b'"' {
                        if self.place == Place::Key {
                            self.last_key = std::mem::take(&mut self.key);
                        }
                        self.place = Place::Between;
                    } else if self.place == Place::Key && self.key.len() < 64 {
                        self.key.push(b);
                    }
                }
                Place::Between => match b {
                    b'"' if self.depth == 1 && self.expect_key => {
                        self.place = Place::Key;
                        self.expect_key = false;
                    }
                    b'"' if self.depth == 1 && self.last_key == b"result" => {
                        // The result's text starts after this quote.
                        self.last_key.clear();
                        self.keep(&bytes[kept_from..=i]);
                        kept_from = i + 1;
                        self.place = Place::Result;
                        if let Some(open) = self.open_sink.take() {
                            self.sink = open();
                            self.broken |= self.sink.is_none();
                        }
                    }
                    b'"' => self.place = Place::Text,
                    b'{' | b'[' => {
                        self.depth += 1;
                        self.expect_key = self.depth == 1 && b == b'{';
                    }
                    b'}' | b']' => self.depth = self.depth.saturating_sub(1),
                    b',' if self.depth == 1 => {
                        self.expect_key = true;
                        self.last_key.clear();
                    }
                    _ => {}
                },
            }
        }
        if self.place == Place::Result {
            self.pending.extend_from_slice(&bytes[kept_from..]);
            if self.pending.len() >= PIECE {
                self.decode(false);
            }
        } else {
            self.keep(&bytes[kept_from..]);
        }
    }

    fn keep(&mut self, bytes: &[u8]) {
        if self.rest.len() + bytes.len() > super::long_line::LINE_CAP {
            self.rest_too_long = true;
            self.rest = Vec::new();
        }
        if !self.rest_too_long {
            self.rest.extend_from_slice(bytes);
        }
    }

    /// Decodes the pending escaped text, all of it at the end of the string, else up to a
    /// point where no escape sequence, surrogate pair or UTF-8 character is cut.
    fn decode(&mut self, all: bool) {
        let cut = if all {
            self.pending.len()
        } else {
            safe_cut(&self.pending)
        };
        if cut == 0 {
            return;
        }
        let mut quoted = Vec::with_capacity(cut + 2);
        quoted.push(b'"');
        quoted.extend_from_slice(&self.pending[..cut]);
        quoted.push(b'"');
        self.pending.drain(..cut);
        let text: String = match serde_json::from_slice(&quoted) {
            Ok(text) => text,
            Err(e) => {
                tracing::warn!("cannot decode the agent's long result: {e}");
                self.broken = true;
                return;
            }
        };
        self.result_bytes += text.len() as u64;
        if self.head.len() < RESULT_HEAD {
            let mut end = (RESULT_HEAD - self.head.len()).min(text.len());
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            self.head.push_str(&text[..end]);
        }
        if let Some(sink) = self.sink.as_mut()
            && let Err(e) = sink.write_all(text.as_bytes())
        {
            tracing::warn!("cannot write the agent's long result: {e}");
            self.sink = None;
            self.broken = true;
        }
    }

    /// Ends the line: parses its other fields and puts the head of the result in.
    pub(crate) fn finish(mut self) -> LongResult {
        if let Some(sink) = self.sink.as_mut() {
            let _ = sink.flush();
        }
        let complete = !self.broken && self.place != Place::Result;
        let value = (!self.rest_too_long)
            .then(|| serde_json::from_slice::<Value>(&self.rest).ok())
            .flatten()
            .map(|mut value| {
                value["result"] = Value::String(std::mem::take(&mut self.head));
                value
            });
        LongResult {
            value,
            line_bytes: self.line_bytes,
            result_bytes: self.result_bytes,
            complete,
        }
    }
}

/// The longest prefix of escaped JSON string text that ends between characters: never inside
/// an escape, between the two escapes of a surrogate pair, or inside a UTF-8 character.
fn safe_cut(text: &[u8]) -> usize {
    let mut at = 0;
    while at < text.len() {
        let width = match text[at] {
            b'\\' if text.get(at + 1) == Some(&b'u') => {
                // A high surrogate (`\uD800`-`\uDBFF`) goes with the low one after it.
                let high = text
                    .get(at + 2..at + 6)
                    .and_then(|hex| std::str::from_utf8(hex).ok())
                    .and_then(|hex| u16::from_str_radix(hex, 16).ok())
                    .is_some_and(|unit| (0xD800..0xDC00).contains(&unit));
                if high { 12 } else { 6 }
            }
            b'\\' => 2,
            0xF0.. => 4,
            0xE0.. => 3,
            0xC0.. => 2,
            _ => 1,
        };
        if at + width > text.len() {
            break;
        }
        at += width;
    }
    at
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// Feeds `line` in pieces of `step` bytes; returns what was read and what reached the sink.
    fn scan(line: &[u8], step: usize) -> (LongResult, String) {
        let sink = Sink::default();
        let opened = sink.clone();
        let mut scanner = LongResultLine::new(Box::new(move || {
            Some(Box::new(opened) as Box<dyn Write + Send>)
        }));
        for piece in line.chunks(step) {
            scanner.feed(piece);
        }
        let read = scanner.finish();
        let written = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        (read, written)
    }

    #[test]
    fn a_result_split_anywhere_decodes_to_the_same_text() {
        let text = format!(
            "{}é😀 \"quoted\" back\\slash \u{1}\n{}",
            "x".repeat(70_000),
            "tail ".repeat(30_000)
        );
        // In Claude Code's order: "type" comes after "result".
        let line = format!(
            "{{\"session_id\":\"s-1\",\"usage\":{{\"input_tokens\":3,\"nested\":{{\"result\":\"not this one\"}}}},\"is_error\":false,\"result\":{},\"type\":\"result\",\"total_cost_usd\":0.5}}",
            serde_json::to_string(&text).unwrap()
        )
        .into_bytes();
        for step in [1, 7, 4096, 65_537, line.len()] {
            let (read, written) = scan(&line, step);
            assert_eq!(written, text, "step {step}");
            assert_eq!(read.result_bytes, text.len() as u64);
            assert!(read.complete);
            assert_eq!(read.line_bytes, line.len() as u64);
            let value = read.value.unwrap();
            assert_eq!(value["session_id"], "s-1");
            assert_eq!(value["usage"]["nested"]["result"], "not this one");
            assert_eq!(value["total_cost_usd"], 0.5);
            let head = value["result"].as_str().unwrap();
            assert!(head.len() <= RESULT_HEAD && text.starts_with(head));
            assert!(head.len() > RESULT_HEAD - 4);
        }
    }

    #[test]
    fn surrogate_pairs_and_escapes_are_never_cut() {
        // Escaped the way a JSON writer that escapes non-ASCII would write it.
        let text = "😀\\\"".repeat(40_000);
        let escaped = serde_json::to_string(&text)
            .unwrap()
            .replace('😀', "\\ud83d\\ude00");
        let line = format!("{{\"type\":\"result\",\"result\":{escaped},\"is_error\":false}}");
        for step in [1, 5, 11, 4096] {
            let (read, written) = scan(line.as_bytes(), step);
            assert_eq!(written, text, "step {step}");
            assert!(read.complete);
            assert_eq!(read.value.unwrap()["is_error"], false);
        }
    }

    #[test]
    fn a_long_line_of_another_kind_is_only_counted() {
        let message = serde_json::json!({"type": "assistant", "message": {"content": [{"type": "text", "text": "y".repeat(LINE_CAP)}]}});
        let line = serde_json::to_vec(&message).unwrap();
        let (read, written) = scan(&line, 65_536);
        assert!(read.value.is_none());
        assert_eq!((read.line_bytes, written.as_str()), (line.len() as u64, ""));
    }

    #[test]
    fn a_line_cut_short_is_incomplete_and_keeps_what_it_had() {
        let (read, written) = scan(b"{\"type\":\"result\",\"result\":\"abc", 2);
        assert_eq!(written, "");
        assert!(!read.complete);
        assert!(read.value.is_none());
    }
}
