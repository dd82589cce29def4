//! The core's hints ("what to do next"), said with `ccmp` commands and flags.

use ccmp_core::Hint;

/// The hint for an error, if the core gave one.
pub fn for_error(err: &anyhow::Error) -> Option<String> {
    let hint = err.downcast_ref::<ccmp_core::Error>()?.hint()?;
    Some(render(&hint))
}

/// A hint in the terms of this command.
pub fn render(hint: &Hint) -> String {
    match hint {
        Hint::ListAllTasks => "`ccmp list --all` shows every task id".to_owned(),
        Hint::RemoveTask { id } => format!("`ccmp cleanup {id}` removes it"),
        Hint::CancelOrForceRemove { id } => {
            format!("`ccmp cancel {id}` stops it; `ccmp cleanup --force {id}` stops and removes it")
        }
    }
}
