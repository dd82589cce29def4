//! The core's hints ("what to do next"), said with this server's tools and parameters.

use ccmp_core::Hint;

/// An error for the model: the message with its causes, then what to do next, if the core knows.
pub fn error_text(err: &ccmp_core::Error) -> String {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    if let Some(hint) = err.hint() {
        text.push_str(". ");
        text.push_str(&render(&hint));
    }
    text
}

/// A hint in terms of this server's tools.
pub fn render(hint: &Hint) -> String {
    match hint {
        Hint::ListAllTasks => {
            "list_active_tasks(include_finished=true) shows every task id.".to_owned()
        }
        Hint::RemoveTask { id } => format!("cleanup_task(task_id=\"{id}\") removes it."),
        Hint::CancelOrForceRemove { id } => format!(
            "cancel_task(task_id=\"{id}\") stops it; cleanup_task(task_id=\"{id}\", force=true) stops and removes it."
        ),
    }
}
