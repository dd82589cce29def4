//! The JSON-RPC framing on stdin and stdout: one message per line.
//!
//! rmcp's own stdio transport drops a request it cannot parse (`params` that are an array, a
//! string or a number; a wrong `jsonrpc`), or answers it without its `id`, so the client waits
//! forever. This one answers every request that has an id: with the message rmcp would have
//! given, or with an error that says what is wrong with it. Input that is not JSON, or that has
//! no id, cannot be answered and is logged.

use std::future::Future;
use std::sync::Arc;

use rmcp::RoleServer;
use rmcp::model::{CallToolRequestParams, ClientRequest, JsonRpcMessage, JsonRpcRequest};
use rmcp::service::{RxJsonRpcMessage, TxJsonRpcMessage};
use rmcp::transport::Transport;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::Mutex;

/// The longest message read (16 MiB, as rmcp's own transport); longer lines are refused.
const MAX_LINE: usize = 16 * 1024 * 1024;

/// JSON-RPC "Invalid Request".
const INVALID_REQUEST: i64 = -32600;
/// JSON-RPC "Invalid params".
const INVALID_PARAMS: i64 = -32602;

/// Requests whose `params` object is required by MCP.
const NEEDS_PARAMS: &[&str] = &[
    "initialize",
    "tools/call",
    "prompts/get",
    "resources/read",
    "resources/subscribe",
    "resources/unsubscribe",
    "completion/complete",
    "logging/setLevel",
    "tasks/get",
    "tasks/update",
    "tasks/cancel",
];

/// Requests rmcp knows (as `ClientRequest` variants); it reads any other method, and any of
/// these whose params do not fit, as a custom request.
const STANDARD_REQUESTS: &[&str] = &[
    "ping",
    "initialize",
    "server/discover",
    "completion/complete",
    "logging/setLevel",
    "prompts/get",
    "prompts/list",
    "resources/list",
    "resources/templates/list",
    "resources/read",
    "subscriptions/listen",
    "resources/subscribe",
    "resources/unsubscribe",
    "tools/call",
    "tools/list",
    "tasks/get",
    "tasks/update",
    "tasks/cancel",
    "skills/list",
    "skills/get",
    "resources/directory/read",
];

/// Line-delimited JSON-RPC over a reader and a writer.
pub struct Stdio<R, W> {
    read: BufReader<R>,
    line: Vec<u8>,
    /// Dropping the rest of a line over [`MAX_LINE`].
    discarding: bool,
    write: Arc<Mutex<Option<W>>>,
}

impl<R: AsyncRead + Unpin, W: AsyncWrite + Unpin> Stdio<R, W> {
    pub fn new(read: R, write: W) -> Self {
        Self {
            read: BufReader::new(read),
            line: Vec::new(),
            discarding: false,
            write: Arc::new(Mutex::new(Some(write))),
        }
    }
}

/// What one line of input is.
#[derive(Debug)]
enum Line {
    /// A message for the server.
    Message(Box<RxJsonRpcMessage<RoleServer>>),
    /// An error to answer, with the request's id.
    Refuse(Value),
    /// Nothing to answer.
    Ignore(String),
}

/// What one read from the input gave.
enum Read {
    Line,
    TooLong,
    End,
}

/// An error response to the request `id`.
fn error(id: &Value, code: i64, message: String) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}})
}

/// Reads one line of input and decides what it is.
fn classify(line: &[u8]) -> Line {
    let line = line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line);
    let value: Value = match serde_json::from_slice(line) {
        Ok(value) => value,
        // No id to answer to; answering garbage can start an echo storm (rmcp issue #938).
        Err(e) => return Line::Ignore(format!("input that is not JSON: {e}")),
    };
    let Some(object) = value.as_object() else {
        return Line::Ignore("JSON that is not an object".to_owned());
    };
    let method = object.get("method");
    let id = match object.get("id") {
        Some(id @ (Value::String(_) | Value::Number(_))) => id.clone(),
        Some(_) if method.is_some() => {
            return Line::Refuse(error(
                &Value::Null,
                INVALID_REQUEST,
                "A request's id must be a string or a number.".to_owned(),
            ));
        }
        // A notification, or a response to a request of ours: nothing to answer.
        _ => {
            return match serde_json::from_value(value) {
                Ok(message) => Line::Message(Box::new(message)),
                Err(e) => Line::Ignore(format!("a message without a usable id: {e}")),
            };
        }
    };
    if object.get("jsonrpc") != Some(&json!("2.0")) {
        return Line::Refuse(error(
            &id,
            INVALID_REQUEST,
            "Not JSON-RPC 2.0: every message needs \"jsonrpc\": \"2.0\".".to_owned(),
        ));
    }
    let Some(method) = method.and_then(Value::as_str) else {
        // A response from the client (to a request of ours) has an id and no method.
        return match serde_json::from_value(value) {
            Ok(message) => Line::Message(Box::new(message)),
            Err(e) => Line::Ignore(format!("a response that does not parse: {e}")),
        };
    };
    match object.get("params") {
        None if NEEDS_PARAMS.contains(&method) => {
            return Line::Refuse(error(
                &id,
                INVALID_PARAMS,
                format!("{method} needs params: an object."),
            ));
        }
        Some(params) if !params.is_object() => {
            return Line::Refuse(error(
                &id,
                INVALID_PARAMS,
                format!("params of {method} must be an object, not {params}."),
            ));
        }
        _ => {}
    }
    let method = method.to_owned();
    let params = object.get("params").cloned().unwrap_or(Value::Null);
    match serde_json::from_value::<RxJsonRpcMessage<RoleServer>>(value) {
        // rmcp takes a standard request whose params do not fit for a custom one, and then
        // answers "method not found".
        Ok(JsonRpcMessage::Request(JsonRpcRequest {
            request: ClientRequest::CustomRequest(_),
            ..
        })) if STANDARD_REQUESTS.contains(&method.as_str()) => {
            Line::Refuse(error(&id, INVALID_PARAMS, invalid_params(&method, params)))
        }
        Ok(message) => Line::Message(Box::new(message)),
        Err(e) => Line::Refuse(error(
            &id,
            INVALID_PARAMS,
            format!("Invalid params for {method}: {e}."),
        )),
    }
}

/// What is wrong with the params of a standard request that did not parse.
fn invalid_params(method: &str, params: Value) -> String {
    let reason = match method {
        "tools/call" => serde_json::from_value::<CallToolRequestParams>(params)
            .err()
            .map(|e| e.to_string()),
        _ => None,
    };
    match reason {
        Some(reason) => format!("Invalid params for {method}: {reason}."),
        None => format!("Invalid params for {method}: they do not have the shape MCP gives it."),
    }
}

impl<R: AsyncRead + Unpin, W> Stdio<R, W> {
    /// Reads up to the next newline into `self.line`, never holding more than [`MAX_LINE`].
    ///
    /// Cancel-safe: the service polls `receive` inside a `select!`, so a read may be dropped
    /// at any await; what was read stays in `self.line` and the next call goes on from there.
    async fn read_line(&mut self) -> std::io::Result<Read> {
        loop {
            let available = self.read.fill_buf().await?;
            if available.is_empty() {
                return Ok(Read::End);
            }
            let newline = available.iter().position(|b| *b == b'\n');
            let take = newline.map_or(available.len(), |i| i + 1);
            let mut too_long = false;
            if self.discarding {
                self.discarding = newline.is_none();
            } else if self.line.len() + take > MAX_LINE {
                self.line.clear();
                self.discarding = newline.is_none();
                too_long = true;
            } else {
                self.line.extend_from_slice(&available[..take]);
            }
            self.read.consume(take);
            if too_long {
                return Ok(Read::TooLong);
            }
            if newline.is_some() && !self.discarding && !self.line.is_empty() {
                return Ok(Read::Line);
            }
        }
    }
}

/// Writes one message as a line, whole.
async fn write_line<W: AsyncWrite + Unpin>(
    write: &Mutex<Option<W>>,
    message: &impl serde::Serialize,
) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(message)?;
    line.push(b'\n');
    let mut guard = write.lock().await;
    let Some(write) = guard.as_mut() else {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotConnected,
            "the output is closed",
        ));
    };
    write.write_all(&line).await?;
    write.flush().await
}

impl<R, W> Transport<RoleServer> for Stdio<R, W>
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    type Error = std::io::Error;

    fn send(
        &mut self,
        item: TxJsonRpcMessage<RoleServer>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        let write = self.write.clone();
        async move { write_line(&write, &item).await }
    }

    async fn receive(&mut self) -> Option<RxJsonRpcMessage<RoleServer>> {
        loop {
            let refusal = match self.read_line().await {
                Ok(Read::Line) => {
                    let line = std::mem::take(&mut self.line);
                    let text = line.strip_suffix(b"\n").unwrap_or(&line);
                    let text = text.strip_suffix(b"\r").unwrap_or(text);
                    if text.is_empty() {
                        continue;
                    }
                    match classify(text) {
                        Line::Message(message) => return Some(*message),
                        Line::Ignore(what) => {
                            tracing::warn!("ignored {what}");
                            continue;
                        }
                        Line::Refuse(response) => response,
                    }
                }
                Ok(Read::TooLong) => error(
                    &Value::Null,
                    INVALID_REQUEST,
                    format!("A message over {MAX_LINE} bytes was dropped."),
                ),
                Ok(Read::End) => return None,
                Err(e) => {
                    tracing::error!("reading stdin failed: {e}");
                    return None;
                }
            };
            tracing::warn!(response = %refusal, "refused a request");
            // Written by a task of its own: this future may be dropped at any await, and a
            // reply cut halfway would corrupt the stream.
            let write = self.write.clone();
            tokio::spawn(async move {
                if let Err(e) = write_line(&write, &refusal).await {
                    tracing::warn!("could not answer a refused request: {e}");
                }
            });
        }
    }

    async fn close(&mut self) -> Result<(), Self::Error> {
        let mut guard = self.write.lock().await;
        if let Some(mut write) = guard.take() {
            write.shutdown().await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(line: &str) -> Value {
        match classify(line.as_bytes()) {
            Line::Refuse(response) => response,
            other => panic!("{line}: {other:?}"),
        }
    }

    #[test]
    fn every_bad_request_with_an_id_is_answered_with_that_id() {
        for (line, code, says) in [
            (
                r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":[1]}"#,
                INVALID_PARAMS,
                "must be an object",
            ),
            (
                r#"{"jsonrpc":"2.0","id":"s","method":"tools/call","params":"x"}"#,
                INVALID_PARAMS,
                "must be an object",
            ),
            (
                r#"{"jsonrpc":"2.0","id":4,"method":"tools/list","params":3}"#,
                INVALID_PARAMS,
                "not 3",
            ),
            (
                r#"{"jsonrpc":"2.0","id":5,"method":"tools/call"}"#,
                INVALID_PARAMS,
                "needs params",
            ),
            (
                r#"{"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"arguments":{}}}"#,
                INVALID_PARAMS,
                "name",
            ),
            (
                r#"{"jsonrpc":"1.0","id":7,"method":"ping"}"#,
                INVALID_REQUEST,
                "2.0",
            ),
            (r#"{"id":8,"method":"ping"}"#, INVALID_REQUEST, "2.0"),
        ] {
            let response = refusal(line);
            let id: Value = serde_json::from_str::<Value>(line).unwrap()["id"].clone();
            assert_eq!(response["id"], id, "{line}");
            assert_eq!(response["error"]["code"], code, "{line}");
            let message = response["error"]["message"].as_str().unwrap();
            assert!(message.contains(says), "{line}: {message}");
        }
    }

    #[test]
    fn good_messages_pass_and_unanswerable_ones_are_ignored() {
        for line in [
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#,
            r#"{"jsonrpc":"2.0","id":"x","method":"ping"}"#,
            r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"bogus/thing","params":{}}"#,
        ] {
            assert!(
                matches!(classify(line.as_bytes()), Line::Message(_)),
                "{line}"
            );
        }
        for line in [
            "not json",
            "[1,2]",
            r#"{"jsonrpc":"2.0","method":"notifications/made-up","params":[]}"#,
        ] {
            assert!(
                matches!(classify(line.as_bytes()), Line::Ignore(_)),
                "{line}"
            );
        }
    }
}
