//! The event log: group commit into the shards.
//!
//! Each shard has one writer task. Requests hand their events to the writer of the user's
//! shard and wait; the writer takes everything queued (up to `events_batch_max` events), writes
//! it in one transaction (PostgreSQL: one `INSERT … SELECT FROM UNNEST` of column arrays;
//! SQLite: multi-row inserts), and only then answers every request in the batch. While a batch
//! is being written the next one gathers, so a busy log writes big batches and an idle one
//! answers at once — group commit, with no timer to tune.
//!
//! Queued events are bounded by `events_queue_capacity` (a semaphore of event permits): when it
//! is full a request is refused at once with 503 and `Retry-After`, never dropped silently. At
//! shutdown the sink stops taking requests, writes what is queued, and only then are the pools
//! closed. An acknowledged event is committed, so it survives `kill -9`.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use outgrow_domain::UserId;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use uuid::Uuid;

use super::{bind_columns, statements, values_statement};
use crate::db::{
    shards::Shards,
    sql::{SqlPool, for_postgres, for_sqlite, with_pool},
};

/// One event, validated.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub kind: String,
    pub occurred_at: DateTime<Utc>,
    /// A JSON object, serialised.
    pub properties: String,
}

/// Why events were not stored.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// The queue is full: retry later.
    #[error("the event queue is full")]
    Full,
    /// The server is shutting down.
    #[error("the server is shutting down")]
    Closed,
    /// The batch holding these events could not be written.
    #[error("writing the events failed: {0}")]
    Failed(String),
}

struct Batch {
    user: Uuid,
    events: Vec<NewEvent>,
    received_at: DateTime<Utc>,
    ack: oneshot::Sender<Result<(), String>>,
    _permits: OwnedSemaphorePermit,
}

/// The entry point of the event log; cheap to clone.
#[derive(Clone)]
pub struct EventSink {
    inner: Arc<Inner>,
}

struct Inner {
    shards: Shards,
    /// One sender per shard; taken (dropped) at shutdown so the writers drain and stop.
    senders: Mutex<Option<Vec<mpsc::UnboundedSender<Batch>>>>,
    writers: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    permits: Arc<Semaphore>,
}

impl std::fmt::Debug for EventSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventSink").finish_non_exhaustive()
    }
}

impl EventSink {
    /// Starts one writer per shard.
    pub fn start(shards: Shards, capacity: usize, batch_max: usize) -> Self {
        let mut senders = Vec::new();
        let mut writers = Vec::new();
        for shard in shards.all() {
            let (sender, receiver) = mpsc::unbounded_channel();
            senders.push(sender);
            writers.push(tokio::spawn(run_writer(
                shard.pool.clone(),
                shard.name.clone(),
                receiver,
                batch_max,
            )));
        }
        metrics::gauge!("events_queue_capacity").set(capacity as f64);
        Self {
            inner: Arc::new(Inner {
                shards,
                senders: Mutex::new(Some(senders)),
                writers: Mutex::new(writers),
                permits: Arc::new(Semaphore::new(capacity)),
            }),
        }
    }

    /// Queues `events` of `user` and waits until they are committed.
    pub async fn submit(&self, user: UserId, events: Vec<NewEvent>) -> Result<usize, SubmitError> {
        let count = events.len();
        let permits = u32::try_from(count).map_err(|_| SubmitError::Full)?;
        let permits = match self.inner.permits.clone().try_acquire_many_owned(permits) {
            Ok(permits) => permits,
            Err(tokio::sync::TryAcquireError::NoPermits) => {
                metrics::counter!("events_rejected_total", "reason" => "queue_full").increment(count as u64);
                return Err(SubmitError::Full);
            }
            Err(tokio::sync::TryAcquireError::Closed) => return Err(SubmitError::Closed),
        };
        let shard = self.inner.shards.route(user).shard.index;
        let sender = self
            .inner
            .senders
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .as_ref()
            .and_then(|senders| senders.get(usize::from(shard)).cloned())
            .ok_or(SubmitError::Closed)?;
        let (ack, acked) = oneshot::channel();
        let batch = Batch {
            user: user.0,
            events,
            received_at: Utc::now(),
            ack,
            _permits: permits,
        };
        metrics::gauge!("events_queued").increment(count as f64);
        if sender.send(batch).is_err() {
            metrics::gauge!("events_queued").decrement(count as f64);
            return Err(SubmitError::Closed);
        }
        match acked.await {
            Ok(Ok(())) => Ok(count),
            Ok(Err(error)) => Err(SubmitError::Failed(error)),
            Err(_) => Err(SubmitError::Failed("the writer stopped".into())),
        }
    }

    /// Stops taking events and waits until every queued one is written (at shutdown).
    pub async fn close_and_flush(&self) {
        self.inner.permits.close();
        drop(
            self.inner
                .senders
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .take(),
        );
        let writers = std::mem::take(
            &mut *self
                .inner
                .writers
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        );
        for writer in writers {
            let _ = writer.await;
        }
    }
}

async fn run_writer(
    pool: SqlPool,
    shard: String,
    mut receiver: mpsc::UnboundedReceiver<Batch>,
    batch_max: usize,
) {
    while let Some(first) = receiver.recv().await {
        let mut rows = first.events.len();
        let mut batches = vec![first];
        while rows < batch_max {
            match receiver.try_recv() {
                Ok(batch) => {
                    rows += batch.events.len();
                    batches.push(batch);
                }
                Err(_) => break,
            }
        }
        let started = std::time::Instant::now();
        let mut result = write(&pool, &batches).await;
        if result.is_err() {
            // One retry covers a connection lost between batches; beyond that the requests
            // get a 503 and their clients retry.
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            result = write(&pool, &batches).await;
        }
        let elapsed = started.elapsed().as_secs_f64();
        metrics::histogram!("events_batch_seconds", "shard" => shard.clone()).record(elapsed);
        metrics::histogram!("events_batch_rows", "shard" => shard.clone()).record(rows as f64);
        metrics::gauge!("events_queued").decrement(rows as f64);
        let outcome = match result {
            Ok(()) => {
                metrics::counter!("events_stored_total", "shard" => shard.clone()).increment(rows as u64);
                Ok(())
            }
            Err(error) => {
                tracing::error!(shard, rows, %error, "writing an event batch failed");
                metrics::counter!("events_rejected_total", "reason" => "write_failed").increment(rows as u64);
                Err(error.to_string())
            }
        };
        for batch in batches {
            let _ = batch.ack.send(outcome.clone());
        }
    }
}

/// Rows per multi-row INSERT on SQLite: 5 parameters each, 1,000 per statement (binding costs
/// grow with the statement's parameter count, see `store::seed`).
const SQLITE_ROWS_PER_STATEMENT: usize = 200;

/// The head of SQLite's multi-row insert of a batch; [`values_statement`] adds one tuple of
/// placeholders per event (SQLite has no `UNNEST`, and a batch's size varies). It never runs
/// on PostgreSQL, so `scripts/explain-queries` does not explain it.
const EVENTS_VALUES: &str = "INSERT INTO events (user_id, type, occurred_at, received_at, properties) VALUES";

statements! {
    /// Writes a batch (PostgreSQL): one row per element of the five column arrays.
    EVENTS_INSERT("events.insert") =
        "INSERT INTO events (user_id, type, occurred_at, received_at, properties) \
         SELECT u, t, o, r, p::jsonb \
         FROM UNNEST($1::uuid[], $2::text[], $3::timestamptz[], $4::timestamptz[], $5::text[]) \
              AS e(u, t, o, r, p)";
    /// The events of a shard.
    EVENTS_COUNT("events.count") = "SELECT count(*) FROM events";
    /// Whether a daily partition exists (PostgreSQL).
    PARTITION_EXISTS("events.partition_exists") = "SELECT to_regclass($1) IS NOT NULL";
}

/// One event of a batch, with what its request brought.
struct EventRow<'a> {
    user: Uuid,
    event: &'a NewEvent,
    received_at: DateTime<Utc>,
}

async fn write(pool: &SqlPool, batches: &[Batch]) -> Result<(), sqlx::Error> {
    let rows: Vec<EventRow<'_>> = batches
        .iter()
        .flat_map(|batch| {
            batch.events.iter().map(|event| EventRow {
                user: batch.user,
                event,
                received_at: batch.received_at,
            })
        })
        .collect();
    match pool {
        SqlPool::Postgres(pool) => {
            bind_columns!(
                sqlx::query(for_postgres(EVENTS_INSERT)),
                rows,
                |row| row.user,
                |row| row.event.kind.as_str(),
                |row| row.event.occurred_at,
                |row| row.received_at,
                |row| row.event.properties.as_str(),
            )
            .execute(pool)
            .await?;
        }
        SqlPool::Sqlite(pool) => {
            let mut tx = pool.begin().await?;
            for chunk in rows.chunks(SQLITE_ROWS_PER_STATEMENT) {
                let sql = values_statement(EVENTS_VALUES, 5, chunk.len());
                let mut query = sqlx::query(for_sqlite(&sql));
                for row in chunk {
                    query = query
                        .bind(row.user)
                        .bind(row.event.kind.as_str())
                        .bind(row.event.occurred_at)
                        .bind(row.received_at)
                        .bind(row.event.properties.as_str());
                }
                query.execute(&mut *tx).await?;
            }
            tx.commit().await?;
        }
    }
    Ok(())
}

/// Events stored on every shard (tests and `outgrow check`).
pub async fn count(shards: &Shards) -> Result<i64, sqlx::Error> {
    let mut total = 0;
    for shard in shards.all() {
        total += with_pool!(&shard.pool, |pool, text| {
            sqlx::query_scalar::<_, i64>(text(EVENTS_COUNT))
                .fetch_one(pool)
                .await?
        });
    }
    Ok(total)
}

/// Creates the daily event partitions from `from` for `days` days on every PostgreSQL shard
/// (SQLite does not partition); returns how many were created.
pub async fn create_partitions(
    shards: &Shards,
    from: chrono::NaiveDate,
    days: u32,
) -> Result<usize, sqlx::Error> {
    let mut created = 0;
    for shard in shards.all() {
        let SqlPool::Postgres(pool) = &shard.pool else {
            continue;
        };
        for offset in 0..days {
            let day = from + chrono::Days::new(u64::from(offset));
            let next = day + chrono::Days::new(1);
            let name = format!("events_{}", day.format("%Y%m%d"));
            let exists: bool = sqlx::query_scalar(for_postgres(PARTITION_EXISTS))
                .bind(&name)
                .fetch_one(pool)
                .await?;
            if exists {
                continue;
            }
            // DDL takes no parameters, so the partition's name and bounds are written into the
            // text: dates formatted by chrono, no user input.
            let ddl = format!(
                "CREATE TABLE IF NOT EXISTS {name} PARTITION OF events FOR VALUES FROM ('{day} 00:00:00+00') TO ('{next} 00:00:00+00')"
            );
            sqlx::query(sqlx::AssertSqlSafe(ddl)).execute(pool).await?;
            created += 1;
        }
    }
    Ok(created)
}
