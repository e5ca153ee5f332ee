//! One way to write SQL for two backends: PostgreSQL (scaled) and SQLite (embedded).
//!
//! Every statement is a `const` [`Sql`], written once with PostgreSQL's `$n` placeholders;
//! SQLite reads the same numbered parameters as `?n`, so its text is the same statement with
//! the sigil swapped. Where the dialects really differ (`FOR UPDATE SKIP LOCKED`, full-text
//! search, `FILTER`, `json_each`, `FOR UPDATE OF`, …) the constant carries a second text for
//! SQLite ([`Sql::per_backend`]), written beside the first. No ORM, no query builder: the text
//! in the constant is exactly what runs (and what `scripts/explain-queries` explains).
//!
//! [`with_pool!`](crate::with_pool) runs one body against whichever pool a [`SqlPool`] holds,
//! with a function that gives each statement's text for that backend. The body is compiled once
//! per backend, so every bind and every decode is type-checked against both drivers.

pub use sqlx::SqlStr;
use sqlx::{PgPool, SqlitePool};

/// A pool on either backend.
#[derive(Debug, Clone)]
pub enum SqlPool {
    /// SQLite (the writer pool where writes happen, the reader pool for reads).
    Sqlite(SqlitePool),
    /// A PostgreSQL database.
    Postgres(PgPool),
}

/// One named SQL statement: its PostgreSQL text and, only where the dialects differ, its
/// SQLite text (both with `$n` placeholders).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sql {
    /// Stable name (`module.action`): what `scripts/explain-queries` looks the text up by.
    pub name: &'static str,
    postgres: &'static str,
    sqlite: &'static str,
}

impl Sql {
    /// A statement both backends run as written.
    pub const fn new(name: &'static str, text: &'static str) -> Self {
        Self {
            name,
            postgres: text,
            sqlite: text,
        }
    }

    /// A statement whose SQLite text differs; say why beside the constant.
    pub const fn per_backend(name: &'static str, postgres: &'static str, sqlite: &'static str) -> Self {
        Self {
            name,
            postgres,
            sqlite,
        }
    }

    /// The text PostgreSQL runs.
    pub const fn postgres(&self) -> &'static str {
        self.postgres
    }

    /// The text SQLite runs, before `$n` becomes `?n`.
    pub const fn sqlite(&self) -> &'static str {
        self.sqlite
    }
}

/// SQL text that can run on either backend: a [`Sql`] constant, or text assembled from
/// constants at run time (a list of placeholders, a set of optional filters) — never from input.
pub trait Statement {
    /// The text for PostgreSQL.
    fn for_postgres(self) -> SqlStr;
    /// The text for SQLite (`$n` → `?n`).
    fn for_sqlite(self) -> SqlStr;
}

impl Statement for &Sql {
    fn for_postgres(self) -> SqlStr {
        SqlStr::from_static(self.postgres)
    }

    fn for_sqlite(self) -> SqlStr {
        sqlite_placeholders(self.sqlite)
    }
}

impl Statement for Sql {
    fn for_postgres(self) -> SqlStr {
        (&self).for_postgres()
    }

    fn for_sqlite(self) -> SqlStr {
        (&self).for_sqlite()
    }
}

impl Statement for &str {
    fn for_postgres(self) -> SqlStr {
        sqlx::SqlSafeStr::into_sql_str(sqlx::AssertSqlSafe(self.to_owned()))
    }

    fn for_sqlite(self) -> SqlStr {
        sqlite_placeholders(self)
    }
}

impl Statement for &String {
    fn for_postgres(self) -> SqlStr {
        self.as_str().for_postgres()
    }

    fn for_sqlite(self) -> SqlStr {
        self.as_str().for_sqlite()
    }
}

/// `statement`'s text for SQLite (for code that runs one backend's statement by hand).
pub fn for_sqlite(statement: impl Statement) -> SqlStr {
    statement.for_sqlite()
}

/// `statement`'s text for PostgreSQL.
pub fn for_postgres(statement: impl Statement) -> SqlStr {
    statement.for_postgres()
}

/// `$1` → `?1`: SQLite's numbered parameters (SQLite would read `$1` as a *named* parameter,
/// numbered by first appearance, which breaks `$2 … $1`).
fn sqlite_placeholders(sql: &str) -> SqlStr {
    sqlx::SqlSafeStr::into_sql_str(sqlx::AssertSqlSafe(sql.replace('$', "?")))
}

/// Whether `error` is a unique (or primary-key) violation, on either backend: SQLSTATE 23505
/// on PostgreSQL, `SQLITE_CONSTRAINT_UNIQUE` (2067) or `_PRIMARYKEY` (1555) on SQLite.
pub fn is_unique_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(database) if database.is_unique_violation())
}

/// Declares a module's named statements, one `const` [`Sql`] each, and
/// its `STATEMENTS` list (what `scripts/explain-queries` reads), so that a statement is named
/// once and cannot be left out of the list:
///
/// ```ignore
/// statements! {
///     /// What it does.
///     STOCK_READ("orders.stock_read") = "SELECT stock FROM products WHERE id = $1";
///     /// Why SQLite's text differs.
///     HOURS("analytics.hours") = "… date_trunc(…) …", sqlite = "… substr(…) …";
/// }
/// ```
#[macro_export]
macro_rules! statements {
    ($($(#[$doc:meta])* $name:ident($key:literal) = $text:expr $(, sqlite = $sqlite:expr)?;)+) => {
        $($(#[$doc])* pub const $name: $crate::sql::Sql = $crate::statements!(@sql $key, $text $(, $sqlite)?);)+

        /// Every named statement of this module, for `scripts/explain-queries`.
        pub const STATEMENTS: &[$crate::sql::Sql] = &[$($name),+];
    };
    (@sql $key:literal, $text:expr) => {
        $crate::sql::Sql::new($key, $text)
    };
    (@sql $key:literal, $text:expr, $sqlite:expr) => {
        $crate::sql::Sql::per_backend($key, $text, $sqlite)
    };
}

/// Defines `$name(statement)`, the text of a [`Statement`] for one backend (used by
/// [`with_pool!`](crate::with_pool) and the application's routing macros).
#[doc(hidden)]
#[macro_export]
macro_rules! sql_text_fn {
    (sqlite $name:ident) => {
        #[allow(dead_code)]
        fn $name<S: $crate::sql::Statement>(statement: S) -> $crate::sql::SqlStr {
            statement.for_sqlite()
        }
    };
    (postgres $name:ident) => {
        #[allow(dead_code)]
        fn $name<S: $crate::sql::Statement>(statement: S) -> $crate::sql::SqlStr {
            statement.for_postgres()
        }
    };
}

/// Runs `$body` with `$pool` bound to the pool inside a [`SqlPool`] and `$sql(statement)`
/// giving a statement's text for that backend. The body is compiled once per backend.
///
/// ```ignore
/// let name: Option<String> = with_pool!(&pool, |pool, sql| {
///     sqlx::query_scalar(sql(PRODUCT_NAME)).bind(id).fetch_optional(pool).await?
/// });
/// ```
#[macro_export]
macro_rules! with_pool {
    ($store:expr, |$pool:ident, $sql:ident| $body:expr) => {
        match $store {
            $crate::sql::SqlPool::Sqlite($pool) => {
                $crate::sql_text_fn!(sqlite $sql);
                $body
            }
            $crate::sql::SqlPool::Postgres($pool) => {
                $crate::sql_text_fn!(postgres $sql);
                $body
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHARED: Sql = Sql::new("test.shared", "SELECT $1, $2, $1");
    const SPLIT: Sql = Sql::per_backend(
        "test.split",
        "SELECT 1 FROM t FOR UPDATE SKIP LOCKED",
        "SELECT 1 FROM t",
    );

    #[test]
    fn numbered_parameters_keep_their_numbers_on_sqlite() {
        assert_eq!((&SHARED).for_sqlite().as_str(), "SELECT ?1, ?2, ?1");
        assert_eq!((&SHARED).for_postgres().as_str(), "SELECT $1, $2, $1");
    }

    #[test]
    fn a_statement_split_by_backend_gives_each_its_own_text() {
        assert_eq!(
            SPLIT.for_postgres().as_str(),
            "SELECT 1 FROM t FOR UPDATE SKIP LOCKED"
        );
        assert_eq!(SPLIT.for_sqlite().as_str(), "SELECT 1 FROM t");
    }
}
