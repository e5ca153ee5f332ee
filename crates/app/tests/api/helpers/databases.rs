//! Reaching the server's databases from the test, beside the server: the primary (accounts,
//! the job queue), the store's shard tables (the SQLite file, or every shard database on the
//! scaled pass), and counting rows where the store keeps them.

use super::TestApp;

/// The value of backend setting `name` (scaled pass only).
pub fn backend_setting<'a>(app: &'a TestApp, name: &str) -> Option<&'a str> {
    app.backend
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
}

/// The shard databases' URLs (scaled pass only).
pub fn shard_urls(app: &TestApp) -> Vec<String> {
    backend_setting(app, "OUTGROW_DATABASE_SHARD_URLS")
        .expect("shards")
        .split(',')
        .map(str::to_owned)
        .collect()
}

/// A connection to one of the server's databases, opened by the test beside the server: the
/// SQLite file, or one PostgreSQL database (the primary or a shard).
pub enum DbConnection {
    Postgres(sqlx::PgConnection),
    Sqlite(sqlx::SqliteConnection),
}

/// A connection to the database that holds accounts and the job queue: the primary on the scaled
/// pass, the SQLite file otherwise.
pub async fn primary_connection(app: &TestApp) -> DbConnection {
    use sqlx::Connection;
    match backend_setting(app, "OUTGROW_DATABASE_URL") {
        Some(url) => DbConnection::Postgres(
            sqlx::PgConnection::connect(url)
                .await
                .expect("connect to the primary"),
        ),
        None => shard_connections(app).await.pop().expect("the SQLite file"),
    }
}

/// One connection to every database that holds the store's shard tables.
pub async fn shard_connections(app: &TestApp) -> Vec<DbConnection> {
    use sqlx::Connection;
    match backend_setting(app, "OUTGROW_DATABASE_SHARD_URLS") {
        Some(urls) => {
            let mut connections = Vec::new();
            for url in urls.split(',') {
                let connection = sqlx::PgConnection::connect(url)
                    .await
                    .expect("connect to a shard");
                connections.push(DbConnection::Postgres(connection));
            }
            connections
        }
        None => {
            let connection = sqlx::SqliteConnection::connect(&sqlite_url(app))
                .await
                .expect("open the SQLite file");
            vec![DbConnection::Sqlite(connection)]
        }
    }
}

impl DbConnection {
    /// Runs `postgres` or `sqlite` (the same statement where the dialects differ); returns
    /// the rows it changed.
    pub async fn execute(&mut self, postgres: &str, sqlite: &str) -> u64 {
        let sql = match self {
            Self::Postgres(_) => postgres,
            Self::Sqlite(_) => sqlite,
        };
        let statement = sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()));
        match self {
            Self::Postgres(connection) => statement
                .execute(connection)
                .await
                .map(|done| done.rows_affected()),
            Self::Sqlite(connection) => statement
                .execute(connection)
                .await
                .map(|done| done.rows_affected()),
        }
        .unwrap_or_else(|error| panic!("{sql}: {error}"))
    }

    /// The integer that `sql` selects.
    pub async fn fetch_i64(&mut self, sql: &str) -> i64 {
        let sql = sqlx::AssertSqlSafe(sql.to_owned());
        match self {
            Self::Postgres(connection) => sqlx::query_scalar(sql).fetch_one(connection).await,
            Self::Sqlite(connection) => sqlx::query_scalar(sql).fetch_one(connection).await,
        }
        .expect("select")
    }
}

/// Rows of `table` summed over every database that holds it (SQLite file, or the shards).
pub async fn count_rows(app: &TestApp, table: &str, filter: &str) -> i64 {
    sum_over_shards(app, &format!("SELECT count(*) FROM {table} {filter}")).await
}

/// The integer that `sql` selects, summed over every database that holds the store's shard
/// tables (the SQLite file, or every shard).
pub async fn sum_over_shards(app: &TestApp, sql: &str) -> i64 {
    let mut total = 0;
    for mut connection in shard_connections(app).await {
        total += connection.fetch_i64(sql).await;
    }
    total
}

/// Runs a statement on every database that holds the store's shard tables (the SQLite file, or
/// every shard); the text differs where the dialects do. Returns the rows it changed.
pub async fn execute_on_shards(app: &TestApp, postgres: &str, sqlite: &str) -> u64 {
    let mut changed = 0;
    for mut connection in shard_connections(app).await {
        changed += connection.execute(postgres, sqlite).await;
    }
    changed
}

/// The app's job queue, reached the way the app reaches it (a pool on the primary, or on the
/// SQLite file).
pub async fn queue_of(app: &TestApp) -> outgrow_platform::jobs::JobStore {
    use outgrow_platform::jobs::JobStore;
    match backend_setting(app, "OUTGROW_DATABASE_URL") {
        Some(url) => JobStore::Postgres(sqlx::PgPool::connect(url).await.expect("connect")),
        None => JobStore::Sqlite(
            sqlx::SqlitePool::connect(&sqlite_url(app))
                .await
                .expect("connect"),
        ),
    }
}

/// `sqlite://…` of the app's SQLite file.
fn sqlite_url(app: &TestApp) -> String {
    format!("sqlite://{}", app.data_dir.join("outgrow.sqlite3").display())
}
