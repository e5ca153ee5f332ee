//! Store fixtures shared by the `store_*` tests: products, orders, events, and counting rows
//! where the store keeps them (the SQLite file, or every shard database on the scaled pass).

use serde_json::{Value, json};

use super::{SignedIn, TestApp, json_body};

/// `POST /api/v1/products` as `admin`, asserting a 201; returns the product.
pub async fn create_product(app: &TestApp, admin: &SignedIn, body: Value) -> Value {
    let response = app
        .post_json_with_token("/api/v1/products", &admin.access_token, &body)
        .await;
    json_body(response, 201).await
}

/// `create_product` with a name, a price in euro cents and a stock; returns the product's id.
pub async fn create_product_id(
    app: &TestApp,
    admin: &SignedIn,
    name: &str,
    price_minor: i64,
    stock: i64,
) -> String {
    let created = create_product(
        app,
        admin,
        json!({"name": name, "price_minor": price_minor, "currency": "EUR", "stock": stock}),
    )
    .await;
    created["id"].as_str().expect("id").to_owned()
}

/// `GET /api/v1/products/{id}`, asserting a 200.
pub async fn product(app: &TestApp, id: &str) -> Value {
    app.get_json(&format!("/api/v1/products/{id}")).await
}

/// `POST /api/v1/orders` with `items` as `user`, with an `Idempotency-Key` when given.
pub async fn order(app: &TestApp, user: &SignedIn, items: Value, key: Option<&str>) -> reqwest::Response {
    let mut request = app
        .client
        .post(app.url("/api/v1/orders"))
        .bearer_auth(&user.access_token)
        .json(&json!({ "items": items }));
    if let Some(key) = key {
        request = request.header("Idempotency-Key", key);
    }
    request.send().await.expect("order")
}

/// `POST /api/v1/orders/{order_id}/cancel` as `who`.
pub async fn cancel_order(app: &TestApp, who: &SignedIn, order_id: &str) -> reqwest::Response {
    app.post_with_token(&format!("/api/v1/orders/{order_id}/cancel"), &who.access_token)
        .await
}

/// A batch of `count` events of type `kind`.
pub fn events(count: usize, kind: &str) -> Value {
    let now = chrono::Utc::now();
    let events: Vec<Value> = (0..count)
        .map(|index| {
            json!({
                "type": kind,
                "timestamp": (now - chrono::Duration::milliseconds(index as i64)).to_rfc3339(),
                "properties": {"index": index, "path": "/products"},
            })
        })
        .collect();
    json!({ "events": events })
}

/// `POST /api/v1/events` with `batch` as `user`.
pub async fn post_events(app: &TestApp, user: &SignedIn, batch: &Value) -> reqwest::Response {
    app.post_json_with_token("/api/v1/events", &user.access_token, batch)
        .await
}

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
            let path = app.data_dir.join("outgrow.sqlite3");
            let connection = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
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

/// How most order tests begin: an admin (`admin@example.org`) creates a product (`name`, a
/// price in euro cents, `stock`), then a buyer (`ann@example.org`) signs in. Returns the
/// product's id and the buyer.
pub async fn product_and_buyer(
    app: &TestApp,
    name: &str,
    price_minor: i64,
    stock: i64,
) -> (String, SignedIn) {
    let admin = app.admin("admin@example.org").await;
    let product = create_product_id(app, &admin, name, price_minor, stock).await;
    (product, app.signed_in("ann@example.org").await)
}
