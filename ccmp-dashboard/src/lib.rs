//! `ccmp dashboard`: a frontend in a browser, like the CLI and the MCP server.
//!
//! It serves while it runs (no daemon) on 127.0.0.1 and a free port by default, and calls the
//! same core as the other frontends: every page reads the store, every action is a core call.
//! Pages update live over server-sent events, driven by the store's change watch, so an idle
//! dashboard does nothing. Every request needs the token printed with the URL ([`security`]).

#![warn(missing_docs)]

mod actions;
mod live;
mod markdown;
mod pages;
pub mod security;
mod server;
mod views;

pub use server::{Dashboard, DashboardOptions};
