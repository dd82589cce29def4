//! Usage limits of a login: when an agent stops on one, the limit holds every task of that
//! login until it resets, so that queued tasks wait instead of starting and failing one after
//! another.
//!
//! A hold is a small file, `<state>/usage-limits/<login>.json`, written by the runner whose
//! agent hit the limit and read by every runner when it looks for a slot; it needs no clean-up
//! (one past its reset holds nothing). A login is told apart by what picks it in the agent's
//! environment: for Claude Code, the config dir (where `/login` keeps its credentials) and the
//! token or key variables, hashed (the file names no secret).

use std::collections::HashMap;
use std::path::Path;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::layout::StateLayout;
use crate::spec::TaskSpec;
use crate::task::ApiFailure;

/// A login's usage limit, until it resets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hold {
    /// When the limit resets.
    pub resets_at: DateTime<Utc>,
    /// Which limit, in the agent's terms (`five_hour`, `seven_day`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<String>,
    /// The task whose agent hit it (short id).
    pub task: String,
}

impl Hold {
    /// "usage limit (5-hour) reached; resets at 12:01 UTC"
    pub fn describe(&self) -> String {
        describe(self.limit.as_deref(), self.resets_at)
    }
}

/// "usage limit (5-hour) reached; resets at 12:01 UTC" (with the date when not today).
pub fn describe(limit: Option<&str>, resets_at: DateTime<Utc>) -> String {
    let when = if resets_at.date_naive() == Utc::now().date_naive() {
        resets_at.format("%H:%M UTC").to_string()
    } else {
        resets_at.format("%b %-d %H:%M UTC").to_string()
    };
    format!(
        "usage limit ({}) reached; resets at {when}",
        ApiFailure::limit_name(limit)
    )
}

/// The environment variables that pick a Claude Code login.
const LOGIN_ENV: [&str; 5] = [
    "CLAUDE_CONFIG_DIR",
    "CLAUDE_CODE_OAUTH_TOKEN",
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_AUTH_TOKEN",
    "ANTHROPIC_BASE_URL",
];

/// The login a task runs under: a stable hash of what picks it (the task's environment over
/// the runner's, which the agent inherits).
pub(crate) fn login_key(spec: &TaskSpec) -> String {
    // FNV-1a: stable across builds and processes, which std's hasher does not promise.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |bytes: &[u8]| {
        for byte in bytes.iter().chain([&0u8]) {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    };
    feed(spec.agent_kind().as_str().as_bytes());
    for name in LOGIN_ENV {
        let value = spec
            .env
            .get(name)
            .cloned()
            .or_else(|| std::env::var(name).ok());
        feed(value.as_deref().unwrap_or("").as_bytes());
    }
    if !spec.env.contains_key("CLAUDE_CONFIG_DIR")
        && std::env::var_os("CLAUDE_CONFIG_DIR").is_none()
    {
        let home = spec
            .env
            .get("HOME")
            .cloned()
            .or_else(|| std::env::var("HOME").ok());
        feed(home.as_deref().unwrap_or("").as_bytes());
    }
    format!("{hash:016x}")
}

/// Holds `login` until `hold.resets_at` (a later hold already there wins).
pub(crate) fn hold(layout: &StateLayout, login: &str, hold: &Hold) -> std::io::Result<()> {
    let path = layout.usage_limit(login);
    if let Some(existing) = read(&path)
        && existing.resets_at >= hold.resets_at
    {
        return Ok(());
    }
    let mut bytes = serde_json::to_vec(hold).map_err(std::io::Error::other)?;
    bytes.push(b'\n');
    crate::store::write_atomic(&path, &bytes)
}

/// The holds in force now, by login.
pub(crate) fn holds(layout: &StateLayout) -> HashMap<String, Hold> {
    let Ok(entries) = std::fs::read_dir(layout.usage_limits()) else {
        return HashMap::new();
    };
    let now = Utc::now();
    entries
        .filter_map(|e| {
            let e = e.ok()?;
            let login = e.file_name().to_str()?.strip_suffix(".json")?.to_owned();
            let hold = read(&e.path())?;
            (hold.resets_at > now).then_some((login, hold))
        })
        .collect()
}

fn read(path: &Path) -> Option<Hold> {
    let bytes = crate::private_file::read(path).ok()?;
    serde_json::from_slice(&bytes).ok()
}
