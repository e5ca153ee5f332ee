//! The store's data: the catalog, orders across shards, the event log and analytics. Each
//! module owns its SQL (shared by both backends, see [`crate::db::sql`]), declared with
//! [`statements!`](outgrow_platform::statements) and run with the few helpers below.

pub mod analytics;
pub mod catalog;
pub mod events;
pub mod orders;
pub mod rebalance;
pub mod seed;
pub mod views;

pub(crate) use outgrow_platform::statements;

/// Runs `statement` with `binds` on a [`SqlPool`](crate::db::sql::SqlPool) (or any pool or
/// connection both backends' arms accept) and evaluates to the number of rows it changed; a
/// failure returns from the enclosing function through `?`.
macro_rules! execute {
    ($pool:expr, $statement:expr $(, $bind:expr)* $(,)?) => {
        $crate::db::sql::with_pool!($pool, |pool, text| {
            sqlx::query(text($statement))
                $(.bind($bind))*
                .execute(pool)
                .await?
                .rows_affected()
        })
    };
}
pub(crate) use execute;

/// Binds each column of `rows` as one array, for a batch written by one `INSERT … SELECT FROM
/// UNNEST($1::uuid[], …)` on PostgreSQL: one bound value per column whatever the batch size.
/// Each column is a closure from a row to its value.
macro_rules! bind_columns {
    ($query:expr, $rows:expr, $($column:expr),+ $(,)?) => {
        $query $(.bind($rows.iter().map($column).collect::<Vec<_>>()))+
    };
}
pub(crate) use bind_columns;

/// `head` (an `INSERT INTO t (…) VALUES` constant) followed by `rows` tuples of `columns`
/// numbered placeholders: a batch in one statement where PostgreSQL would take arrays
/// (SQLite has no `UNNEST`). Built at run time because the row count varies; only the
/// placeholders are generated, never from input.
pub fn values_statement(head: &str, columns: usize, rows: usize) -> String {
    let tuples: Vec<String> = (0..rows)
        .map(|row| {
            let params: Vec<String> = (1..=columns)
                .map(|column| format!("${}", row * columns + column))
                .collect();
            format!("({})", params.join(", "))
        })
        .collect();
    format!("{head} {}", tuples.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_values_statement_numbers_its_placeholders_row_by_row() {
        assert_eq!(
            values_statement("INSERT INTO t (a, b) VALUES", 2, 3),
            "INSERT INTO t (a, b) VALUES ($1, $2), ($3, $4), ($5, $6)"
        );
    }
}
