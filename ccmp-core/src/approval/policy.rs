//! Which tool uses a task asks about before they run: rules in Claude Code's permission-rule
//! syntax. `Write` matches every use of a tool; `Bash(git push:*)` a Bash command that starts
//! with `git push`; `Bash(make test)` that command exactly; `Edit(src/*)` an edit of a path that
//! matches the pattern (`*` matches anything).

use std::fmt;
use std::str::FromStr;

use serde_json::Value;

use crate::error::{SpecError, escape};

/// One rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AskRule {
    tool: String,
    /// What the tool's main input must match: `None` matches every use.
    pattern: Option<String>,
}

impl AskRule {
    /// Whether this rule matches a use of `tool` with `input`.
    pub fn matches(&self, tool: &str, input: &Value) -> bool {
        if self.tool != tool {
            return false;
        }
        let Some(pattern) = &self.pattern else {
            return true;
        };
        let Some(subject) = main_input(tool, input) else {
            return false;
        };
        if tool == "Bash" {
            return match pattern.strip_suffix(":*") {
                Some(prefix) => subject.trim_start().starts_with(prefix),
                None => subject.trim() == pattern,
            };
        }
        wildcard(pattern, &subject)
    }
}

/// What a task asks about: some rules, or every tool use.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AskPolicy {
    /// The rules.
    pub rules: Vec<AskRule>,
    /// Ask about every tool use.
    pub all: bool,
}

impl AskPolicy {
    /// Whether the policy asks about anything.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty() && !self.all
    }

    /// The rule that holds this use back, if one does: the rule itself, or for `all` a rule
    /// for the whole tool. `--always` then allows what this rule matches.
    pub fn holding(&self, tool: &str, input: &Value) -> Option<AskRule> {
        if let Some(rule) = self.rules.iter().find(|r| r.matches(tool, input)) {
            return Some(rule.clone());
        }
        self.all.then(|| AskRule {
            tool: tool.to_owned(),
            pattern: None,
        })
    }
}

/// The input a rule's pattern is matched against: a Bash command, a file path, a URL, …
pub fn main_input(tool: &str, input: &Value) -> Option<String> {
    let key = match tool {
        "Bash" => "command",
        "WebFetch" => "url",
        "WebSearch" => "query",
        "NotebookEdit" => "notebook_path",
        "Glob" | "Grep" => "pattern",
        _ => "file_path",
    };
    input[key].as_str().map(str::to_owned)
}

/// A line saying what a tool use wants to do, for the inbox.
pub fn summary(tool: &str, input: &Value) -> String {
    match main_input(tool, input) {
        Some(text) => {
            let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
            let mut cut: String = one_line.chars().take(200).collect();
            if cut.len() < one_line.len() {
                cut.push('…');
            }
            format!("{tool}: {cut}")
        }
        None => format!("{tool} {}", crate::agent::clip(&input.to_string(), 200)),
    }
}

/// `*` matches any run of characters; everything else itself.
fn wildcard(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let mut rest = text;
    for (n, part) in parts.iter().enumerate() {
        if n == 0 {
            let Some(after) = rest.strip_prefix(part) else {
                return false;
            };
            rest = after;
        } else if n == parts.len() - 1 {
            return rest.ends_with(part);
        } else {
            match rest.find(part) {
                Some(at) => rest = &rest[at + part.len()..],
                None => return false,
            }
        }
    }
    true
}

impl FromStr for AskRule {
    type Err = SpecError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || SpecError::InvalidField {
            field: "ask",
            value: escape(s),
            reason: "a rule is a tool name, optionally with a pattern: Write, Bash(git push:*), Edit(src/*)",
        };
        let (tool, pattern) = match s.split_once('(') {
            Some((tool, rest)) => {
                let pattern = rest.strip_suffix(')').ok_or_else(bad)?;
                if pattern.is_empty() {
                    return Err(bad());
                }
                (tool, Some(pattern.to_owned()))
            }
            None => (s, None),
        };
        let tool_ok = !tool.is_empty()
            && tool.len() <= 100
            && tool.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !tool_ok || s.chars().any(char::is_control) {
            return Err(bad());
        }
        Ok(Self {
            tool: tool.to_owned(),
            pattern,
        })
    }
}

impl fmt::Display for AskRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.pattern {
            Some(p) => write!(f, "{}({p})", self.tool),
            None => f.write_str(&self.tool),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn rule(s: &str) -> AskRule {
        s.parse().unwrap()
    }

    #[test]
    fn rules_match_as_claude_code_permission_rules_do() {
        let push = json!({"command": "git push origin main"});
        assert!(rule("Bash").matches("Bash", &push));
        assert!(rule("Bash(git push:*)").matches("Bash", &push));
        assert!(!rule("Bash(git pull:*)").matches("Bash", &push));
        assert!(rule("Bash(make test)").matches("Bash", &json!({"command": "make test"})));
        assert!(!rule("Bash(make test)").matches("Bash", &json!({"command": "make test2"})));
        assert!(!rule("Write").matches("Bash", &push));
        let edit = json!({"file_path": "/repo/src/main.rs"});
        assert!(rule("Edit(/repo/src/*)").matches("Edit", &edit));
        assert!(rule("Edit(*.rs)").matches("Edit", &edit));
        assert!(!rule("Edit(*.py)").matches("Edit", &edit));
        assert_eq!(rule("Bash(git push:*)").to_string(), "Bash(git push:*)");
        for bad in ["", "Bash(", "Bash()", "Ba sh", "Bash(x", "a\nb"] {
            assert!(bad.parse::<AskRule>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_rule_that_holds_a_use_back_is_what_always_allows() {
        let policy = AskPolicy {
            rules: vec![rule("Bash(git push:*)")],
            all: false,
        };
        let push = json!({"command": "git push origin main"});
        assert_eq!(
            policy.holding("Bash", &push),
            Some(rule("Bash(git push:*)"))
        );
        assert_eq!(policy.holding("Bash", &json!({"command": "ls"})), None);
        let all = AskPolicy {
            all: true,
            ..policy
        };
        assert_eq!(
            all.holding("Read", &json!({"file_path": "/x"})),
            Some(rule("Read"))
        );
        assert_eq!(
            summary("Bash", &json!({"command": "git  push\n origin"})),
            "Bash: git push origin"
        );
    }
}
