//! Approvals: tool uses a task holds back until a person answers (see `README.md`, Approvals).
//! The policy says which uses ([`policy`]); the hook (the `__ccmp-hook` subcommand) defers them; the answers are kept
//! with the task ([`answers`]).

pub mod answers;
pub(crate) mod hook;
pub mod policy;

pub use self::hook::HOOK_CMD;
