//! Integration tests: each test spawns the real `outgrow` binary on port 0 with its own data
//! directory and talks to it over HTTP, exactly as a client would.

mod auth;
mod bad_input;
mod cli;
mod database;
mod error_tracking;
mod helpers;
mod http_stack;
mod inventory;
mod job_claims;
mod jobs;
mod media;
mod operations;
mod redis_cluster;
mod revocation;
mod scaled;
mod services;
mod shutdown;
mod store_cancel;
mod store_catalog;
mod store_events;
mod store_maintenance;
mod store_orders;
mod store_seed;
mod store_sharding;
mod tls;
mod tokens;
mod users;
mod views;
mod web_account;
mod web_admin;
mod web_cart;
mod web_catalog;
mod web_dashboard;
