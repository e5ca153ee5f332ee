//! SQL text shared by both backends, and the pool type it runs on.
//!
//! Queries are written once with PostgreSQL's `$n` placeholders; SQLite reads the same
//! numbered parameters as `?n`, so [`for_sqlite`] only swaps the sigil. [`with_pool!`] runs one
//! body against whichever pool a [`SqlPool`] holds: the body is compiled once per backend, so
//! every bind and decode is type-checked against both drivers.

use outgrow_platform::jobs::{NewJob, enqueue_postgres, enqueue_sqlite};
use sqlx::{PgConnection, PgPool, SqliteConnection, SqlitePool};

/// A pool on either backend.
#[derive(Debug, Clone)]
pub enum SqlPool {
    /// SQLite (the writer pool where writes happen).
    Sqlite(SqlitePool),
    /// A PostgreSQL database.
    Postgres(PgPool),
}

/// `$1` → `?1`: SQLite's numbered parameters.
pub fn for_sqlite(sql: &str) -> sqlx::AssertSqlSafe<String> {
    sqlx::AssertSqlSafe(sql.replace('$', "?"))
}

/// `sql` as PostgreSQL runs it.
pub fn for_postgres(sql: &str) -> sqlx::AssertSqlSafe<String> {
    sqlx::AssertSqlSafe(sql.to_owned())
}

/// Runs `$body` with `$pool` bound to the pool inside `$store`, and a function `$sql` that
/// converts SQL text for it (for bodies with several statements).
macro_rules! with_pool {
    ($store:expr, |$pool:ident, $sql:ident| $body:expr) => {
        match $store {
            $crate::db::sql::SqlPool::Sqlite($pool) => {
                let $sql = $crate::db::sql::for_sqlite;
                $body
            }
            $crate::db::sql::SqlPool::Postgres($pool) => {
                let $sql = $crate::db::sql::for_postgres;
                $body
            }
        }
    };
}
pub(crate) use with_pool;

/// Enqueues a job on a transaction of either backend (the job commits with it).
pub trait EnqueueJob {
    /// See [`enqueue_postgres`]; false when a job with its dedup key is already queued.
    fn enqueue(&mut self, job: &NewJob) -> impl Future<Output = Result<bool, sqlx::Error>> + Send;
}

impl EnqueueJob for SqliteConnection {
    fn enqueue(&mut self, job: &NewJob) -> impl Future<Output = Result<bool, sqlx::Error>> + Send {
        enqueue_sqlite(self, job)
    }
}

impl EnqueueJob for PgConnection {
    fn enqueue(&mut self, job: &NewJob) -> impl Future<Output = Result<bool, sqlx::Error>> + Send {
        enqueue_postgres(self, job)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbered_parameters_keep_their_numbers() {
        assert_eq!(for_sqlite("SELECT $1, $2, $1").0, "SELECT ?1, ?2, ?1");
    }
}
