//! Where a statement runs, on either backend: [`with_db!`] picks the connection from the
//! statement's routing class and compiles the body once per backend (binds and decodes are
//! type-checked against both drivers).
//!
//! | class | SQLite | PostgreSQL |
//! |---|---|---|
//! | `read(subject)` | the reader pool | a replica, or the primary while `subject` (an `Option<`[`Subject`](super::markers::Subject)`>`) was written recently ([`PgDatabase::read`](super::postgres::PgDatabase::read)) |
//! | `current` (must see every commit: logins, session checks) | the reader pool (WAL readers see every commit) | the primary |
//! | `write` | the writer pool | the primary |
//! | `transaction` | a transaction on the writer pool | a transaction on the primary |
//!
//! The body of `read`, `current` and `write` is one statement's `Result<T, sqlx::Error>`;
//! a `transaction` body returns `Result<T, StoreError>` and commits itself. Marking a write
//! for read-your-writes ([`Database::wrote`](super::Database::wrote)) stays with the caller,
//! which knows the subject.

/// Runs `$body` with `$conn` (or `$tx`) bound to the connection the routing class gives, and
/// `$sql(statement)` giving a statement's text for that backend; see the module docs.
macro_rules! with_db {
    ($db:expr, read($subject:expr), |$conn:ident, $sql:ident| $body:expr) => {
        match $db {
            $crate::db::Database::Sqlite(sqlite) => {
                outgrow_platform::sql_text_fn!(sqlite $sql);
                let $conn = sqlite.reader();
                $body
            }
            $crate::db::Database::Postgres(pg) => {
                pg.read($subject, |mut connection| async move {
                    outgrow_platform::sql_text_fn!(postgres $sql);
                    let $conn = &mut *connection;
                    $body
                })
                .await
            }
        }
    };
    ($db:expr, current, |$conn:ident, $sql:ident| $body:expr) => {
        $crate::db::route::with_db!(@sqlite_or_primary $db, reader, |$conn, $sql| $body)
    };
    ($db:expr, write, |$conn:ident, $sql:ident| $body:expr) => {
        $crate::db::route::with_db!(@sqlite_or_primary $db, writer, |$conn, $sql| $body)
    };
    ($db:expr, transaction, |$tx:ident, $sql:ident| $body:expr) => {
        match $db {
            $crate::db::Database::Sqlite(sqlite) => {
                outgrow_platform::sql_text_fn!(sqlite $sql);
                let outcome: Result<_, $crate::repo::StoreError> = async {
                    #[allow(unused_mut)]
                    let mut $tx = sqlite.writer().begin().await?;
                    $body
                }
                .await;
                outcome
            }
            $crate::db::Database::Postgres(pg) => {
                outgrow_platform::sql_text_fn!(postgres $sql);
                let outcome: Result<_, $crate::repo::StoreError> = async {
                    #[allow(unused_mut)]
                    let mut $tx = pg.primary().begin().await?;
                    metrics::counter!("db_queries_total", "pool" => "primary").increment(1);
                    $body
                }
                .await;
                outcome
            }
        }
    };
    // `current` and `write`: SQLite's `$pool` (reader or writer), PostgreSQL's primary.
    (@sqlite_or_primary $db:expr, $pool:ident, |$conn:ident, $sql:ident| $body:expr) => {
        match $db {
            $crate::db::Database::Sqlite(sqlite) => {
                outgrow_platform::sql_text_fn!(sqlite $sql);
                let $conn = sqlite.$pool();
                $body
            }
            $crate::db::Database::Postgres(pg) => $crate::db::route::with_db!(@primary pg, |$conn, $sql| $body),
        }
    };
    (@primary $pg:ident, |$conn:ident, $sql:ident| $body:expr) => {{
        outgrow_platform::sql_text_fn!(postgres $sql);
        let outcome: Result<_, sqlx::Error> = async {
            let mut connection = $pg.write().await?;
            let $conn = &mut *connection;
            $body
        }
        .await;
        outcome
    }};
}
pub(crate) use with_db;
