//! `outgrow seed`: realistic demo data in bulk — users, products, and orders placed on the
//! buyers' shards with Zipf-distributed products — with a progress bar and the rate achieved.
//!
//! Rows go in as multi-row `INSERT`s of thousands of rows per statement, in one transaction
//! per batch: a round trip per batch, not per row. Every seeded user has the same password
//! (hashed once: Argon2id is deliberately slow), printed at the end.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use indicatif::{ProgressBar, ProgressStyle};
use outgrow_domain::{IntentState, OrderStatus, Role, UserId};
use rand::{Rng, SeedableRng, rngs::StdRng};
use uuid::Uuid;

use super::{catalog::CATALOG_BUMP, execute, statements, values_statement};
use crate::db::{
    shards::Shards,
    sql::{SqlPool, for_postgres, with_pool},
};

/// The password of every seeded account.
pub const SEED_PASSWORD: &str = "seeded-password";

/// How much to seed.
#[derive(Debug, Clone, Copy)]
pub struct SeedPlan {
    pub users: u64,
    pub products: u64,
    pub orders: u64,
    /// Rows per transaction.
    pub batch: usize,
    /// Show progress bars (off in tests and when output is not a terminal).
    pub progress: bool,
}

/// What was seeded, and how fast.
#[derive(Debug, Clone, Default)]
pub struct SeedReport {
    /// `(what, rows, elapsed)` per phase.
    pub phases: Vec<(&'static str, u64, Duration)>,
    /// E-mail of the first seeded user (all share [`SEED_PASSWORD`]).
    pub first_email: Option<String>,
}

impl SeedReport {
    /// Rows per second over all phases.
    pub fn rate(&self) -> f64 {
        let rows: u64 = self.phases.iter().map(|(_, rows, _)| rows).sum();
        let seconds: f64 = self
            .phases
            .iter()
            .map(|(_, _, elapsed)| elapsed.as_secs_f64())
            .sum();
        if seconds > 0.0 { rows as f64 / seconds } else { 0.0 }
    }
}

/// One value of a seeded row.
#[derive(Debug, Clone)]
enum Value {
    Uuid(Uuid),
    Text(String),
    Int(i64),
    Time(DateTime<Utc>),
}

/// A table the seed fills with multi-row `VALUES`: the constant head of its insert (the
/// tuples of placeholders are added per batch by [`values_statement`], as a batch's row count
/// varies) and how many values a row has.
struct Table {
    head: &'static str,
    columns: usize,
}

impl Table {
    /// The table written by `head` (`INSERT INTO t (a, b, …) VALUES`); its column count is
    /// read from the head.
    const fn new(head: &'static str) -> Self {
        let bytes = head.as_bytes();
        let mut columns = 1;
        let mut at = 0;
        while at < bytes.len() {
            if bytes[at] == b',' {
                columns += 1;
            }
            at += 1;
        }
        Self { head, columns }
    }
}

const USERS: Table =
    Table::new("INSERT INTO users (id, email, name, password_hash, role, created_at, updated_at) VALUES");
const PRODUCTS: Table = Table::new(
    "INSERT INTO products (id, name, description, price_minor, currency, stock, created_at, updated_at) VALUES",
);
const ORDERS: Table =
    Table::new("INSERT INTO orders (id, user_id, bucket, status, total_minor, currency, created_at) VALUES");
const ORDER_ITEMS: Table =
    Table::new("INSERT INTO order_items (order_id, product_id, name, quantity, unit_price_minor) VALUES");
/// SQLite's intents; PostgreSQL's take [`INTENTS_INSERT`] (their lines need a `jsonb` cast).
const ORDER_INTENTS: Table =
    Table::new("INSERT INTO order_intents (order_id, user_id, items, state, created_at, updated_at) VALUES");

statements! {
    /// Confirmed intents from column arrays (PostgreSQL: the lines' text cast to `jsonb`).
    INTENTS_INSERT("seed.intents_insert") =
        "INSERT INTO order_intents (order_id, user_id, items, state, created_at, updated_at) \
         SELECT o, u, i::jsonb, 'confirmed', t, t \
         FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::timestamptz[]) AS x(o, u, i, t)";
    /// What was sold leaves a product's stock.
    STOCK_SOLD("seed.stock_sold") = "UPDATE products SET stock = stock - $2 WHERE id = $1";
}

/// The statement that writes a batch of `rows` seeded orders (`scripts/explain-queries`
/// explains a batch of two: every batch is the same statement but for its length).
pub fn orders_statement(rows: usize) -> String {
    values_statement(ORDERS.head, ORDERS.columns, rows)
}

/// Inserts `rows` into `table`, as many rows per statement as the backend's parameter limit
/// allows, in one transaction.
async fn insert_rows(pool: &SqlPool, table: &Table, rows: &[Vec<Value>]) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    // PostgreSQL takes up to 65,535 parameters. SQLite takes 32,766, but binding by number
    // goes through a per-parameter name lookup in sqlx that is linear in the statement's
    // parameter count: statements of ~1,000 parameters keep that cost negligible.
    let max_params = match pool {
        SqlPool::Postgres(_) => 65_535,
        SqlPool::Sqlite(_) => 1_000,
    };
    let per_statement = (max_params / table.columns).min(5_000);
    with_pool!(pool, |pool, sql| {
        let mut tx = pool.begin().await?;
        for chunk in rows.chunks(per_statement) {
            let statement = values_statement(table.head, table.columns, chunk.len());
            let mut query = sqlx::query(sql(&statement));
            for row in chunk {
                for value in row {
                    query = match value {
                        Value::Uuid(value) => query.bind(*value),
                        Value::Text(value) => query.bind(value.clone()),
                        Value::Int(value) => query.bind(*value),
                        Value::Time(value) => query.bind(*value),
                    };
                }
            }
            query.execute(&mut *tx).await?;
        }
        tx.commit().await?;
    });
    Ok(())
}

/// The batches of `total` rows, `batch` at a time, as ranges of row numbers.
fn batches(total: u64, batch: usize) -> impl Iterator<Item = std::ops::Range<u64>> {
    let batch = batch.max(1) as u64;
    (0..total.div_ceil(batch)).map(move |n| n * batch..((n + 1) * batch).min(total))
}

fn bar(plan: &SeedPlan, what: &str, total: u64) -> ProgressBar {
    if !plan.progress {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template(&format!(
            "{what:>8} [{{bar:40}}] {{human_pos}}/{{human_len}} rows, {{per_sec}}, ETA {{eta}}"
        ))
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar
}

const ADJECTIVES: &[&str] = &[
    "red", "blue", "green", "oak", "steel", "linen", "woollen", "ceramic", "glass", "copper", "bamboo",
    "leather", "cotton", "marble", "walnut", "brass", "felt", "stone", "silver", "velvet",
];
const NOUNS: &[&str] = &[
    "mug", "lamp", "chair", "table", "scarf", "bowl", "vase", "notebook", "pen", "bag", "blanket", "teapot",
    "plate", "shelf", "clock", "cushion", "candle", "basket", "mirror", "rug",
];

/// Samples 0..n with P(k) ∝ 1/(k+1)^s, by inverting the cumulative weights (binary search).
struct Zipf {
    cumulative: Vec<f64>,
}

impl Zipf {
    fn new(n: usize, s: f64) -> Self {
        let mut total = 0.0;
        let cumulative = (0..n)
            .map(|k| {
                total += 1.0 / ((k + 1) as f64).powf(s);
                total
            })
            .collect();
        Self { cumulative }
    }

    fn sample(&self, rng: &mut impl Rng) -> usize {
        let total = self.cumulative.last().copied().unwrap_or(1.0);
        let target = rng.random_range(0.0..total);
        self.cumulative
            .partition_point(|weight| *weight < target)
            .min(self.cumulative.len().saturating_sub(1))
    }
}

/// Seeds `plan` into the primary (users, products, order intents) and the shards (orders).
pub async fn seed(
    primary: &SqlPool,
    shards: &Shards,
    password_hash: &str,
    plan: SeedPlan,
) -> anyhow::Result<SeedReport> {
    let mut rng = StdRng::from_os_rng();
    let tag: String = format!("{:06x}", rng.random_range(0..0x100_0000u32));
    let now = Utc::now();
    let mut report = SeedReport::default();

    // Users.
    let started = Instant::now();
    let progress = bar(&plan, "users", plan.users);
    let mut users = Vec::with_capacity(plan.users as usize);
    for range in batches(plan.users, plan.batch) {
        let count = range.end - range.start;
        let rows: Vec<Vec<Value>> = range
            .map(|i| {
                let id = Uuid::now_v7();
                users.push(id);
                vec![
                    Value::Uuid(id),
                    Value::Text(format!("seed-{tag}-{i}@example.test")),
                    Value::Text(format!("Seed User {i}")),
                    Value::Text(password_hash.to_owned()),
                    Value::Text(Role::User.as_str().into()),
                    Value::Time(now),
                    Value::Time(now),
                ]
            })
            .collect();
        insert_rows(primary, &USERS, &rows).await?;
        progress.inc(count);
    }
    progress.finish();
    report.phases.push(("users", plan.users, started.elapsed()));
    if plan.users > 0 {
        report.first_email = Some(format!("seed-{tag}-0@example.test"));
    }

    // Products.
    let started = Instant::now();
    let progress = bar(&plan, "products", plan.products);
    let mut products: Vec<(Uuid, String, i64)> = Vec::with_capacity(plan.products as usize);
    for range in batches(plan.products, plan.batch) {
        let count = range.end - range.start;
        let rows: Vec<Vec<Value>> = range
            .map(|i| {
                let id = Uuid::now_v7();
                let name = format!(
                    "{} {} {}",
                    ADJECTIVES[rng.random_range(0..ADJECTIVES.len())],
                    NOUNS[rng.random_range(0..NOUNS.len())],
                    i
                );
                let price = rng.random_range(100..20_000i64);
                products.push((id, name.clone(), price));
                vec![
                    Value::Uuid(id),
                    Value::Text(name.clone()),
                    Value::Text(format!("A {name}, made to last. Seeded demo product.")),
                    Value::Int(price),
                    Value::Text("EUR".into()),
                    Value::Int(1_000_000_000),
                    Value::Time(now),
                    Value::Time(now),
                ]
            })
            .collect();
        insert_rows(primary, &PRODUCTS, &rows).await?;
        progress.inc(count);
    }
    execute!(primary, CATALOG_BUMP);
    progress.finish();
    report.phases.push(("products", plan.products, started.elapsed()));

    // Orders, on their buyers' shards, with their intents on the primary.
    if plan.orders > 0 && (users.is_empty() || products.is_empty()) {
        anyhow::bail!("orders need users and products: seed them in the same run (--users, --products)");
    }
    let started = Instant::now();
    let progress = bar(&plan, "orders", plan.orders);
    let zipf = Zipf::new(products.len(), 1.1);
    let mut sold = vec![0i64; products.len()];
    let mut rows_written = 0u64;
    let window_ms = 30 * 24 * 3600 * 1000i64;
    for range in batches(plan.orders, plan.batch) {
        let count = range.end - range.start;
        let mut orders: Vec<Vec<Vec<Value>>> = vec![Vec::new(); shards.all().len()];
        let mut items: Vec<Vec<Vec<Value>>> = vec![Vec::new(); shards.all().len()];
        let mut intents = Vec::with_capacity(count as usize);
        for index in range {
            let user = users[rng.random_range(0..users.len())];
            let route = shards.route(UserId(user));
            // Arriving over the last 30 days in order (as real orders do), with a time-ordered
            // id from that moment: primary keys and time indexes then grow at their right
            // edge, and only the per-user indexes take random inserts.
            let step = window_ms / plan.orders.max(1) as i64;
            let offset = index as i64 * step + rng.random_range(0..step.max(1));
            let created =
                now - chrono::Duration::milliseconds(window_ms) + chrono::Duration::milliseconds(offset);
            let ts = uuid::Timestamp::from_unix(
                uuid::NoContext,
                created.timestamp() as u64,
                created.timestamp_subsec_nanos(),
            );
            let id = Uuid::new_v7(ts);
            let lines = rng.random_range(1..=3usize);
            let mut chosen: Vec<usize> = Vec::with_capacity(lines);
            while chosen.len() < lines.min(products.len()) {
                let product = zipf.sample(&mut rng);
                if !chosen.contains(&product) {
                    chosen.push(product);
                }
            }
            let mut total = 0i64;
            let mut intent_items = Vec::with_capacity(chosen.len());
            for product in &chosen {
                let (product_id, name, price) = &products[*product];
                let quantity = rng.random_range(1..=3i64);
                total += price * quantity;
                sold[*product] += quantity;
                intent_items.push(serde_json::json!({"product_id": product_id, "quantity": quantity}));
                items[usize::from(route.shard.index)].push(vec![
                    Value::Uuid(id),
                    Value::Uuid(*product_id),
                    Value::Text(name.clone()),
                    Value::Int(quantity),
                    Value::Int(*price),
                ]);
            }
            orders[usize::from(route.shard.index)].push(vec![
                Value::Uuid(id),
                Value::Uuid(user),
                Value::Int(i64::from(route.bucket)),
                Value::Text(OrderStatus::Placed.as_str().into()),
                Value::Int(total),
                Value::Text("EUR".into()),
                Value::Time(created),
            ]);
            intents.push(vec![
                Value::Uuid(id),
                Value::Uuid(user),
                Value::Text(serde_json::Value::Array(intent_items).to_string()),
                Value::Text(IntentState::Confirmed.as_str().into()),
                Value::Time(created),
                Value::Time(created),
            ]);
        }
        // In key order: each batch then fills neighbouring B-tree pages instead of random ones.
        let by_key = |row: &Vec<Value>| match row.first() {
            Some(Value::Uuid(id)) => *id,
            _ => Uuid::nil(),
        };
        for rows in orders.iter_mut().chain(items.iter_mut()) {
            rows.sort_by_key(by_key);
        }
        intents.sort_by_key(by_key);
        for (shard, (orders, items)) in shards.all().iter().zip(orders.iter().zip(&items)) {
            insert_rows(&shard.pool, &ORDERS, orders).await?;
            insert_rows(&shard.pool, &ORDER_ITEMS, items).await?;
            rows_written += (orders.len() + items.len()) as u64;
        }
        insert_intents(primary, &intents).await?;
        rows_written += intents.len() as u64;
        progress.inc(count);
    }
    // What was sold leaves the stock, one statement per product that sold.
    for ((product_id, _, _), units) in products.iter().zip(&sold) {
        if *units > 0 {
            execute!(primary, STOCK_SOLD, *product_id, *units);
        }
    }
    progress.finish();
    report.phases.push(("orders", rows_written, started.elapsed()));
    Ok(report)
}

/// Intents carry their lines as JSON: PostgreSQL needs the text cast to `jsonb`.
async fn insert_intents(primary: &SqlPool, rows: &[Vec<Value>]) -> Result<(), sqlx::Error> {
    match primary {
        SqlPool::Sqlite(_) => insert_rows(primary, &ORDER_INTENTS, rows).await,
        SqlPool::Postgres(pool) => {
            let mut ids = Vec::with_capacity(rows.len());
            let mut users = Vec::with_capacity(rows.len());
            let mut items = Vec::with_capacity(rows.len());
            let mut times = Vec::with_capacity(rows.len());
            for row in rows {
                if let [
                    Value::Uuid(id),
                    Value::Uuid(user),
                    Value::Text(lines),
                    _,
                    Value::Time(at),
                    _,
                ] = row.as_slice()
                {
                    ids.push(*id);
                    users.push(*user);
                    items.push(lines.clone());
                    times.push(*at);
                }
            }
            sqlx::query(for_postgres(INTENTS_INSERT))
                .bind(ids)
                .bind(users)
                .bind(items)
                .bind(times)
                .execute(pool)
                .await?;
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_counts_the_columns_of_its_head() {
        assert_eq!(USERS.columns, 7);
        assert_eq!(PRODUCTS.columns, 8);
        assert_eq!(ORDERS.columns, 7);
        assert_eq!(ORDER_ITEMS.columns, 5);
        assert_eq!(ORDER_INTENTS.columns, 6);
    }

    #[test]
    fn zipf_favours_the_first_items() {
        let zipf = Zipf::new(1_000, 1.1);
        let mut rng = StdRng::seed_from_u64(7);
        let mut counts = vec![0u32; 1_000];
        for _ in 0..100_000 {
            counts[zipf.sample(&mut rng)] += 1;
        }
        assert!(
            counts[0] > counts[10] && counts[10] > counts[500],
            "{:?}",
            &counts[..12]
        );
        // The top 10 % of products take well over half the picks.
        let top: u32 = counts[..100].iter().sum();
        assert!(top > 60_000, "{top}");
    }
}
