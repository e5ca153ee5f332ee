//! The scale building blocks of Outgrow, generic and free of store logic.
//!
//! Each module is one concern that a second instance of the service must agree on:
//! configuration ([`config`]), caching ([`cache`]), rate limiting ([`ratelimit`]), the shared
//! Redis connection, one server or a cluster ([`redis_client`], [`redis_cluster`]), logs and metrics ([`telemetry`]), SQL on two backends ([`sql`]) and the shutdown
//! sequence ([`shutdown`]). Each stateful concern is a
//! trait or an enum whose embedded implementation lives here beside the distributed one, so
//! the application chooses between them from configuration and its handlers never know which
//! one runs.

pub mod cache;
pub mod config;
pub mod jobs;
pub mod ratelimit;
pub mod redis_client;
pub mod redis_cluster;
pub mod shard;
pub mod shutdown;
pub mod sql;
pub mod storage;
pub mod telemetry;
pub mod throttle;
