//! The `__ccmp-hook` subcommand: the `PreToolUse` hook a task with an approval policy runs its
//! agent with. Claude Code runs it before each tool use, with the use on stdin; it answers
//! `defer` for a use the policy holds back (the agent then stops, and the task waits for an
//! answer), the recorded answer when the agent asks again on resume, and nothing otherwise (the
//! agent's own permission settings decide). It defers at most one use at a time: a second use
//! asked while one waits is denied with a reason that says so, so that the model asks again
//! after the answer and no use is lost (Claude Code keeps only the last deferral of a message).

use std::ffi::OsString;
use std::io::Read;
use std::process::ExitCode;

use serde_json::{Value, json};

use super::answers::Locked;
use super::policy::AskRule;
use crate::agent::TASK_ENV;
use crate::id::TaskId;
use crate::store::{FsStore, TaskStore};

/// Hidden subcommand of the hook.
pub const HOOK_CMD: &str = "__ccmp-hook";

/// What the hook answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HookAnswer {
    /// Stop the agent; the task waits for an answer.
    Defer,
    Allow,
    Deny(String),
    /// No opinion: the agent's own permission settings decide.
    Pass,
}

impl HookAnswer {
    fn json(&self) -> Option<Value> {
        let (decision, reason) = match self {
            Self::Defer => ("defer", None),
            Self::Allow => ("allow", None),
            Self::Deny(reason) => ("deny", Some(reason.as_str())),
            Self::Pass => return None,
        };
        let mut out = json!({"hookEventName": "PreToolUse", "permissionDecision": decision});
        if let Some(reason) = reason {
            out["permissionDecisionReason"] = json!(reason);
        }
        Some(json!({ "hookSpecificOutput": out }))
    }
}

/// Body of `__ccmp-hook <state-dir>`.
pub(crate) fn hook_main(mut args: impl Iterator<Item = OsString>) -> ExitCode {
    let answer = match args.next() {
        Some(state_dir) => decide_from_stdin(state_dir.into()),
        None => HookAnswer::Deny("ccmp's hook was started without its state dir".into()),
    };
    if let Some(out) = answer.json() {
        println!("{out}");
    }
    ExitCode::SUCCESS
}

fn decide_from_stdin(state_dir: std::path::PathBuf) -> HookAnswer {
    let mut input = String::new();
    let _ = std::io::stdin().read_to_string(&mut input);
    match decide(&state_dir, &input) {
        Ok(answer) => answer,
        // Fail closed: a use ccmp cannot check does not run.
        Err(why) => HookAnswer::Deny(format!("ccmp could not check this tool use: {why}")),
    }
}

fn decide(state_dir: &std::path::Path, input: &str) -> Result<HookAnswer, String> {
    let call: Value = serde_json::from_str(input).map_err(|e| format!("bad hook input: {e}"))?;
    let tool = call["tool_name"].as_str().unwrap_or_default();
    let tool_input = &call["tool_input"];
    let use_id = call["tool_use_id"].as_str().unwrap_or_default();
    let id: TaskId = std::env::var(TASK_ENV)
        .map_err(|_| format!("{TASK_ENV} is not set"))?
        .parse()
        .map_err(|e| format!("{TASK_ENV}: {e}"))?;
    let store = FsStore::open(state_dir).map_err(|e| e.to_string())?;
    let record = store.load(&id).map_err(|e| e.to_string())?;
    let policy = record.spec.ask_policy();
    let mut locked = Locked::open(store.layout(), &id).map_err(|e| e.to_string())?;
    answer_for(&mut locked, &policy, tool, tool_input, use_id, |l| {
        l.save().map_err(|e| e.to_string())
    })
}

/// The answer for one tool use, given the task's policy and answers; records a deferral.
fn answer_for(
    locked: &mut Locked,
    policy: &super::policy::AskPolicy,
    tool: &str,
    input: &Value,
    use_id: &str,
    save: impl Fn(&Locked) -> Result<(), String>,
) -> Result<HookAnswer, String> {
    let answers = &mut locked.answers;
    if let Some(decision) = answers.decisions.get(use_id) {
        return Ok(if decision.allow {
            HookAnswer::Allow
        } else {
            HookAnswer::Deny(
                decision
                    .reason
                    .clone()
                    .unwrap_or_else(|| "a person denied this tool use".into()),
            )
        });
    }
    if policy.holding(tool, input).is_none() {
        return Ok(HookAnswer::Pass);
    }
    let always = answers
        .always
        .iter()
        .filter_map(|r| r.parse::<AskRule>().ok())
        .any(|r| r.matches(tool, input));
    if always {
        return Ok(HookAnswer::Allow);
    }
    if answers.pending.as_deref().is_some_and(|p| p != use_id) {
        return Ok(HookAnswer::Deny(
            "another action of this task is waiting for a person's approval; ask for this one again once that is answered".into(),
        ));
    }
    answers.pending = Some(use_id.to_owned());
    save(locked)?;
    Ok(HookAnswer::Defer)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::approval::answers::Decision;
    use crate::approval::policy::AskPolicy;
    use crate::layout::StateLayout;

    #[test]
    fn one_use_waits_at_a_time_answers_apply_to_their_use_and_always_allows_the_rule() {
        let dir = tempfile::tempdir().unwrap();
        let layout = StateLayout::new(dir.path());
        let id = TaskId::new();
        std::fs::create_dir_all(layout.task_dir(&id)).unwrap();
        let policy = AskPolicy {
            rules: vec!["Bash(git push:*)".parse().unwrap()],
            all: false,
        };
        let push = json!({"command": "git push origin main"});
        let ask = |use_id: &str, input: &Value| {
            let mut locked = Locked::open(&layout, &id).unwrap();
            answer_for(&mut locked, &policy, "Bash", input, use_id, |l| {
                l.save().map_err(|e| e.to_string())
            })
            .unwrap()
        };
        assert_eq!(ask("a", &json!({"command": "ls"})), HookAnswer::Pass);
        assert_eq!(ask("u1", &push), HookAnswer::Defer);
        // A sibling use of the same message waits its turn instead of being lost.
        let HookAnswer::Deny(why) = ask("u2", &push) else {
            panic!("a second deferral must be refused")
        };
        assert!(why.contains("waiting for a person's approval"), "{why}");
        // The answer applies to its use on resume.
        let mut locked = Locked::open(&layout, &id).unwrap();
        locked.answers.decisions.insert(
            "u1".into(),
            Decision {
                allow: false,
                reason: Some("not on main".into()),
            },
        );
        locked.answers.pending = None;
        locked.answers.always.push("Bash(git push:*)".into());
        locked.save().unwrap();
        drop(locked);
        assert_eq!(ask("u1", &push), HookAnswer::Deny("not on main".into()));
        assert_eq!(ask("u3", &push), HookAnswer::Allow);
    }
}
