//! One file per subcommand: parse, call the core, render.

pub mod budget;
pub mod cancel;
pub mod cleanup;
pub mod common;
pub mod completions;
pub mod dashboard;
pub mod events;
pub mod group;
pub mod inbox;
pub mod list;
pub mod logs;
pub mod notify;
pub mod parallel;
pub mod pause;
pub mod reply;
pub mod run;
pub mod settings;
pub mod start;
pub mod status;
pub mod task_options;
pub mod wait;
