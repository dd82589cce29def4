//! "also: 3f9a1c2e succeeded, b71d09aa needs approval": every reply tells the model which of
//! this session's tasks ended or need an answer since its previous reply.
//!
//! Claude Code shows a server's pushed messages to the model only in interactive sessions behind
//! a research-preview flag, so news rides on the replies the model asks for. The server follows
//! the event log from its start; a task is this session's once a tool started, continued or
//! answered it here. A task the reply already shows (its short id is in it) is not repeated.

use std::collections::HashSet;
use std::sync::Mutex;

use ccmp_core::Ccmp;
use ccmp_core::events::{EventKind, EventTail};
use rmcp::model::{CallToolResult, ContentBlock};

/// At most this many tasks are named; the rest are counted.
const MOST_NAMED: usize = 5;

/// The tools whose reply names a task this session now owns.
const OWNING_TOOLS: [&str; 4] = [
    "execute_cc_task",
    "start_cc_task_async",
    "continue_task",
    "answer_approval",
];

/// What this session's model has not been told yet.
#[derive(Debug)]
pub struct SessionNews {
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// The event log from the server's start (none for a store without one).
    tail: Option<EventTail>,
    /// Full ids of this session's tasks.
    mine: HashSet<String>,
    /// (full id, short id, what happened), oldest first, one per task.
    untold: Vec<(String, String, String)>,
}

impl SessionNews {
    /// News from now on.
    pub fn new(ccmp: &Ccmp) -> Self {
        Self {
            inner: Mutex::new(Inner {
                tail: ccmp.event_tail().ok(),
                mine: HashSet::new(),
                untold: Vec::new(),
            }),
        }
    }

    /// Makes a task this session's (one started as an MCP task, whose reply is not a result).
    pub fn own(&self, id: &str) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.mine.insert(id.to_owned());
    }

    /// Adds what the model has not been told to the reply of `tool`, as `also`, and takes note
    /// of the task the reply is about if the tool made it this session's.
    pub fn attach(&self, tool: &str, result: &mut CallToolResult) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        // First: the events of a task that ended before its start was even answered count.
        if OWNING_TOOLS.contains(&tool)
            && result.is_error != Some(true)
            && let Some(id) = result
                .structured_content
                .as_ref()
                .and_then(|s| s.get("id"))
                .and_then(|id| id.as_str())
        {
            inner.mine.insert(id.to_owned());
        }
        let events = inner.tail.as_mut().map(EventTail::read).unwrap_or_default();
        for event in events {
            let (Some(id), Some(short)) = (event.task_id, event.short_id) else {
                continue;
            };
            if !inner.mine.contains(&id) {
                continue;
            }
            let what = match event.kind {
                EventKind::Succeeded => "succeeded".to_owned(),
                EventKind::Failed => event
                    .status
                    .map_or_else(|| "failed".to_owned(), |s| s.to_string()),
                EventKind::NeedsApproval => "needs approval".to_owned(),
                _ => continue,
            };
            inner.untold.retain(|(other, _, _)| *other != id);
            inner.untold.push((id, short, what));
        }
        let shown = reply_text(result);
        // A task the reply shows is told already.
        inner
            .untold
            .retain(|(_, short, _)| !shown.contains(short.as_str()));
        if inner.untold.is_empty() {
            return;
        }
        let untold = std::mem::take(&mut inner.untold);
        drop(inner);
        let mut line = untold
            .iter()
            .take(MOST_NAMED)
            .map(|(_, short, what)| format!("{short} {what}"))
            .collect::<Vec<_>>()
            .join(", ");
        if untold.len() > MOST_NAMED {
            line.push_str(&format!(
                ", and {} more (list_active_tasks)",
                untold.len() - MOST_NAMED
            ));
        }
        add_also(result, &line);
    }
}

fn reply_text(result: &CallToolResult) -> String {
    match &result.structured_content {
        Some(value) => value.to_string(),
        None => result
            .content
            .iter()
            .filter_map(|c| match c {
                ContentBlock::Text(text) => Some(text.text.as_str()),
                _ => None,
            })
            .collect::<Vec<_>>()
            .join("\n"),
    }
}

/// Puts `line` in the reply: as the `also` field of a structured reply (and its text copy), or
/// on a line of its own after a text one.
fn add_also(result: &mut CallToolResult, line: &str) {
    if let Some(serde_json::Value::Object(object)) = &mut result.structured_content {
        object.insert("also".into(), line.into());
        let text = serde_json::Value::Object(object.clone()).to_string();
        match result.content.first_mut() {
            Some(ContentBlock::Text(first)) => first.text = text,
            _ => result.content.insert(0, ContentBlock::text(text)),
        }
        return;
    }
    match result.content.first_mut() {
        Some(ContentBlock::Text(first)) => {
            first.text.push_str(&format!("\n\nalso: {line}"));
        }
        _ => result
            .content
            .push(ContentBlock::text(format!("also: {line}"))),
    }
}
