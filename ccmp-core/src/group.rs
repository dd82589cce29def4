//! Groups: every task belongs to one, and a group may have a limit of its own and be paused
//! (see [`crate::settings`]). A group's name is checked once, here, so that it can go into file
//! names of the queue and into replies without escaping.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{SpecError, escape};

/// The group of a task that names none. It always exists and cannot be removed.
pub const DEFAULT_GROUP: &str = "default";

/// The longest group name, in bytes.
pub const MAX_GROUP_NAME: usize = 32;

/// A valid group name: 1 to 32 lowercase ASCII letters, digits, `-` or `_`, starting with a
/// letter or digit.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct GroupName(String);

impl GroupName {
    /// The `default` group.
    pub fn default_group() -> Self {
        Self(DEFAULT_GROUP.to_owned())
    }

    /// Whether this is the `default` group.
    pub fn is_default(&self) -> bool {
        self.0 == DEFAULT_GROUP
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for GroupName {
    fn default() -> Self {
        Self::default_group()
    }
}

impl fmt::Display for GroupName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for GroupName {
    type Err = SpecError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let ok = !s.is_empty()
            && s.len() <= MAX_GROUP_NAME
            && s.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(SpecError::InvalidField {
                field: "group",
                value: escape(s),
                reason: "a group name is 1 to 32 lowercase letters, digits, `-` or `_`, starting with a letter or digit",
            })
        }
    }
}

impl TryFrom<String> for GroupName {
    type Error = SpecError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<GroupName> for String {
    fn from(name: GroupName) -> Self {
        name.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        for good in ["default", "review", "a", "team-2_x", "9lives"] {
            assert_eq!(good.parse::<GroupName>().unwrap().as_str(), good);
        }
        for bad in [
            "",
            "Review",
            "-x",
            "_x",
            "a b",
            "a/b",
            "a.b",
            &"x".repeat(33),
        ] {
            let e = bad.parse::<GroupName>().unwrap_err().to_string();
            assert!(e.starts_with("group"), "{e}");
        }
        let e = serde_json::from_str::<GroupName>("\"../x\"").unwrap_err();
        assert!(e.to_string().contains("group"), "{e}");
    }
}
