//! Outgrow, the store: its HTTP API, its storage, and the `outgrow` command.
//!
//! `state` builds the shared [`state::AppState`] from configuration; `http` turns it into an
//! axum router with the full middleware stack and the browser pages (`http::web`); `db` and `repo` hold storage; `auth` the
//! password, token and cookie primitives; `cli` the subcommands.

pub mod auth;
pub mod caches;
pub mod cli;
pub mod db;
pub mod demo;
pub mod exports;
#[doc(hidden)]
pub mod fuzzing;
pub mod http;
pub mod images;
pub mod jobs;
#[cfg(test)]
mod layering;
pub mod links;
pub mod mail;
pub mod objects;
pub mod repo;
pub mod server;
pub mod state;
pub mod store;
