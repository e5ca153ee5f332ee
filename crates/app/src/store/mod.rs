//! The store's data: the catalog, orders across shards, the event log and analytics. Each
//! module owns its SQL (shared by both backends, see [`crate::db::sql`]).

pub mod analytics;
pub mod catalog;
pub mod events;
pub mod orders;
pub mod rebalance;
pub mod seed;
pub mod views;
