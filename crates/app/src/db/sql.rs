//! The application's door to the one way of writing SQL for both backends, which lives in
//! the platform ([`outgrow_platform::sql`]): a `const` [`Sql`] per statement written once with
//! `$n` placeholders (a second text only where SQLite's dialect differs), run by
//! [`with_pool!`] on a [`SqlPool`], or by [`with_db!`](super::route::with_db) where the
//! application's routing (SQLite's reader pool, PostgreSQL's replicas and read-your-writes
//! markers) picks the pool.

pub(crate) use outgrow_platform::with_pool;
pub use outgrow_platform::{
    jobs::EnqueueJob,
    sql::{Sql, SqlPool, Statement, for_postgres, for_sqlite, is_unique_violation},
};
