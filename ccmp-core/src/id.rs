//! Task ids: the random id every task gets, and the prefixes people type to name one.
//!
//! Ids are uuid v4, shown as their first 8 hex digits. An [`IdPrefix`] is validated before it
//! can reach a file system path, so user input never escapes the state dir.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{StoreError, escape};

/// The shortest id prefix accepted when resolving a task.
pub const MIN_PREFIX_LEN: usize = 4;

/// A task's identity: a random (v4) uuid, shown as its first 8 hex characters.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TaskId(Uuid);

impl TaskId {
    /// A new random id.
    pub fn new() -> Self {
        Self(Uuid::new_v4())
    }

    /// The 8-hex-character short form used in listings.
    pub fn short(&self) -> String {
        let mut buf = Uuid::encode_buffer();
        self.0.simple().encode_lower(&mut buf)[..8].to_owned()
    }

    /// The full id without hyphens: the form used for file names and prefix matching.
    pub fn simple(&self) -> String {
        self.0.simple().to_string()
    }

    /// The underlying uuid.
    pub fn uuid(&self) -> Uuid {
        self.0
    }
}

impl Default for TaskId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

impl fmt::Debug for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TaskId({})", self.short())
    }
}

impl FromStr for TaskId {
    type Err = StoreError;

    /// Parses a full id, with or without hyphens.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // The form every name in the state dir has (32 lowercase hex digits), without the
        // general path's copy: listing every task parses one per task.
        if s.len() == 32
            && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
            && let Ok(uuid) = Uuid::try_parse(s)
        {
            return Ok(Self(uuid));
        }
        let prefix = IdPrefix::parse(s)?;
        if prefix.0.len() != 32 {
            return Err(StoreError::InvalidId {
                id: escape(s),
                reason: "a full task id has 32 hex digits",
            });
        }
        Uuid::parse_str(&prefix.0)
            .map(Self)
            .map_err(|_| StoreError::InvalidId {
                id: escape(s),
                reason: "not a uuid",
            })
    }
}

/// A validated id or id prefix: lowercase hex, hyphens removed, 4 to 32 digits.
///
/// Anything else is rejected before it can reach a file system path, so a "prefix" such as
/// `../../etc` never escapes the state dir.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdPrefix(String);

impl IdPrefix {
    /// Validates user input as an id prefix.
    pub fn parse(input: &str) -> Result<Self, StoreError> {
        let trimmed = input.trim();
        let invalid = |reason| StoreError::InvalidId {
            id: escape(input),
            reason,
        };
        if trimmed.is_empty() {
            return Err(invalid(
                "it is empty; give a task id or a prefix of 4 or more hex digits",
            ));
        }
        let mut digits = String::with_capacity(32);
        for c in trimmed.chars() {
            match c {
                '0'..='9' | 'a'..='f' => digits.push(c),
                'A'..='F' => digits.push(c.to_ascii_lowercase()),
                '-' => {}
                _ => return Err(invalid("task ids contain only hex digits (0-9, a-f)")),
            }
        }
        if digits.len() < MIN_PREFIX_LEN {
            return Err(invalid("give at least 4 hex digits of the task id"));
        }
        if digits.len() > 32 {
            return Err(invalid("task ids have 32 hex digits at most"));
        }
        Ok(Self(digits))
    }

    /// The prefix digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `id` starts with this prefix.
    pub fn matches(&self, id: &TaskId) -> bool {
        id.simple().starts_with(&self.0)
    }

    /// Picks the one id among `candidates` that this prefix names.
    pub fn resolve(
        &self,
        candidates: impl IntoIterator<Item = TaskId>,
    ) -> Result<TaskId, StoreError> {
        let mut found: Vec<TaskId> = candidates
            .into_iter()
            .filter(|id| self.matches(id))
            .collect();
        match found.len() {
            0 => Err(StoreError::NotFound { id: self.0.clone() }),
            1 => Ok(found.remove(0)),
            _ => {
                found.sort();
                Err(StoreError::Ambiguous {
                    prefix: self.0.clone(),
                    candidates: found
                        .iter()
                        .take(10)
                        .map(|id| id.simple()[..12].to_owned())
                        .collect(),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_id_is_first_eight_hex_digits() {
        let id = TaskId::new();
        assert_eq!(id.short().len(), 8);
        assert!(id.to_string().replace('-', "").starts_with(&id.short()));
        assert_eq!(id.short().parse::<TaskId>().ok(), None);
        assert_eq!(id.to_string().parse::<TaskId>().unwrap(), id);
        assert_eq!(id.simple().parse::<TaskId>().unwrap(), id);
    }

    #[test]
    fn prefixes_reject_anything_but_hex() {
        for bad in [
            "../../etc",
            "abc",
            "",
            "  ",
            "abcd/../x",
            "abcg",
            "abcd\u{0}",
            "é123",
        ] {
            assert!(
                matches!(IdPrefix::parse(bad), Err(StoreError::InvalidId { .. })),
                "{bad:?} was accepted"
            );
        }
        assert_eq!(IdPrefix::parse("AB-CD").unwrap().as_str(), "abcd");
    }

    #[test]
    fn resolve_finds_unique_and_reports_ambiguous() {
        let a: TaskId = "aaaa1111-0000-4000-8000-000000000000".parse().unwrap();
        let b: TaskId = "aaaa2222-0000-4000-8000-000000000000".parse().unwrap();
        let ids = [a, b];
        assert_eq!(IdPrefix::parse("aaaa1").unwrap().resolve(ids).unwrap(), a);
        let err = IdPrefix::parse("aaaa").unwrap().resolve(ids).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("ambiguous") && msg.contains("aaaa1111") && msg.contains("aaaa2222"),
            "{msg}"
        );
        assert!(
            IdPrefix::parse("bbbb")
                .unwrap()
                .resolve(ids)
                .unwrap_err()
                .is_not_found()
        );
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn id_parsing_never_panics_and_accepts_only_hex(input in "\\PC{0,64}") {
            if let Ok(prefix) = IdPrefix::parse(&input) {
                prop_assert!(prefix.as_str().len() >= MIN_PREFIX_LEN && prefix.as_str().len() <= 32);
                prop_assert!(prefix.as_str().bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
            }
            let _ = input.parse::<TaskId>();
        }

        #[test]
        fn any_bytes_never_panic_id_parsing(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            let input = String::from_utf8_lossy(&bytes);
            let _ = IdPrefix::parse(&input);
        }
    }
}
