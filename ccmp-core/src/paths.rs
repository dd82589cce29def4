//! Where state lives: `$CCMP_STATE_DIR`, else the XDG state dir (`~/.local/state/ccmp`).
//!
//! Every frontend on a machine that resolves the same state dir shares the same tasks, queue
//! and `max_parallel` slots.

use std::path::PathBuf;

use etcetera::BaseStrategy;

use crate::error::StoreError;

/// The environment variable that overrides the state dir.
pub const STATE_DIR_ENV: &str = "CCMP_STATE_DIR";

/// The state dir: `$CCMP_STATE_DIR` if set and non-empty, else `$XDG_STATE_HOME/ccmp`, else
/// `~/.local/state/ccmp`.
pub fn default_state_dir() -> Result<PathBuf, StoreError> {
    if let Some(dir) = std::env::var_os(STATE_DIR_ENV).filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    let strategy = etcetera::choose_base_strategy().map_err(|_| StoreError::NoStateDir)?;
    strategy
        .state_dir()
        .map(|d| d.join("ccmp"))
        .ok_or(StoreError::NoStateDir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_state_dir_is_private_to_the_user_not_a_shared_tmp() {
        // Only meaningful where the environment does not choose a dir itself.
        if std::env::var_os(STATE_DIR_ENV).is_some() || std::env::var_os("XDG_STATE_HOME").is_some()
        {
            return;
        }
        let dir = default_state_dir().unwrap();
        let home = std::path::PathBuf::from(std::env::var_os("HOME").unwrap());
        assert_eq!(dir, home.join(".local/state/ccmp"));
        assert!(!dir.starts_with("/tmp"));
    }
}
