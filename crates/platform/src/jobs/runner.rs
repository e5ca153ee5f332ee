//! Workers: claim due jobs, run them with a lease kept alive by a heartbeat, record the
//! outcome, and stop cleanly.
//!
//! A worker runs up to `concurrency` jobs at once. It wakes when a job is enqueued
//! (PostgreSQL `LISTEN`), when a running job finishes, or every `poll_interval` (SQLite, and a
//! safety net for lost notifications). On shutdown it stops claiming, gives running jobs until
//! the deadline to finish, then releases the rest back to the queue (not a failure) so another
//! worker can take them at once.

use std::{
    collections::HashMap,
    future::Future,
    pin::Pin,
    sync::Arc,
    time::{Duration, Instant},
};

use chrono::Utc;
use tokio::sync::{Notify, Semaphore};
use uuid::Uuid;

use super::{
    Job, backoff,
    outcomes::Outcomes,
    store::{ClaimCursor, Claimed, JobStore, NOTIFY_CHANNEL},
};
use crate::shutdown::ShutdownSignal;

/// What a handler learns about the run it serves.
#[derive(Debug, Clone)]
pub struct JobContext<C> {
    /// The application's shared state (mailer, stores, …).
    pub app: C,
    /// The job.
    pub job_id: Uuid,
    /// This run's number, from 1.
    pub attempt: i32,
}

type BoxedRun<C> = Arc<
    dyn Fn(serde_json::Value, JobContext<C>) -> Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send>>
        + Send
        + Sync,
>;

/// Job kinds and their handlers.
pub struct Registry<C> {
    handlers: HashMap<&'static str, BoxedRun<C>>,
}

impl<C> Default for Registry<C> {
    fn default() -> Self {
        Self {
            handlers: HashMap::new(),
        }
    }
}

impl<C: Clone + Send + Sync + 'static> Registry<C> {
    /// Runs jobs of kind `J` with `run`.
    pub fn register<J, F, Fut>(mut self, run: F) -> Self
    where
        J: Job,
        F: Fn(J, JobContext<C>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let run = Arc::new(run);
        self.handlers.insert(
            J::NAME,
            Arc::new(move |payload, context| {
                let run = run.clone();
                Box::pin(async move {
                    let job: J = serde_json::from_value(payload).map_err(|error| {
                        anyhow::anyhow!("the payload does not decode as {}: {error}", J::NAME)
                    })?;
                    run(job, context).await
                })
            }),
        );
        self
    }

    /// The registered kinds.
    pub fn names(&self) -> Vec<&'static str> {
        let mut names: Vec<_> = self.handlers.keys().copied().collect();
        names.sort_unstable();
        names
    }
}

/// How a worker behaves.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// Queues served.
    pub queues: Vec<String>,
    /// Jobs run at once.
    pub concurrency: usize,
    /// How long a claim lasts without a heartbeat; a crashed worker's jobs return after it.
    pub lease: Duration,
    /// Upper bound on the time between checks for due jobs.
    pub poll_interval: Duration,
    /// First retry delay; doubles per attempt.
    pub backoff_base: Duration,
    /// Longest retry delay.
    pub backoff_max: Duration,
    /// Running jobs get this long to finish at shutdown before they are released.
    pub shutdown_timeout: Duration,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        Self {
            queues: vec!["default".to_owned()],
            concurrency: 4,
            lease: Duration::from_secs(30),
            poll_interval: Duration::from_secs(1),
            backoff_base: Duration::from_secs(2),
            backoff_max: Duration::from_secs(3600),
            shutdown_timeout: Duration::from_secs(30),
        }
    }
}

/// A pool of job slots over one [`JobStore`].
pub struct Worker<C> {
    store: JobStore,
    registry: Arc<Registry<C>>,
    context: C,
    options: WorkerOptions,
    /// Unique per process and start: the lease owner recorded on claimed jobs.
    id: String,
}

impl<C: Clone + Send + Sync + 'static> Worker<C> {
    /// A worker running `registry`'s handlers with `context`.
    pub fn new(store: JobStore, registry: Registry<C>, context: C, options: WorkerOptions) -> Self {
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "host".into());
        let id = format!(
            "{host}:{}:{}",
            std::process::id(),
            &Uuid::new_v4().simple().to_string()[..8]
        );
        Self {
            store,
            registry: Arc::new(registry),
            context,
            options,
            id,
        }
    }

    /// This worker's lease-owner id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Runs until `stop`, then drains as described in the module documentation.
    pub async fn run(self, stop: ShutdownSignal) {
        let slots = Arc::new(Semaphore::new(self.options.concurrency.max(1)));
        let (outcomes, recorder) = Outcomes::start(self.store.clone(), self.id.clone());
        let wake = Arc::new(Notify::new());
        if let JobStore::Postgres(pool) = &self.store {
            tokio::spawn(listen(pool.clone(), wake.clone(), stop.clone()));
        }
        tracing::info!(worker = %self.id, queues = ?self.options.queues, concurrency = self.options.concurrency, kinds = ?self.registry.names(), "worker started");
        let stopped = stop.stopped();
        tokio::pin!(stopped);
        let mut running: HashMap<Uuid, (Claimed, tokio::task::JoinHandle<()>)> = HashMap::new();
        let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel::<Uuid>();
        let mut last_reap = Instant::now() - self.options.lease;
        // Where the last claim ended (see `JobStore::claim`): claims walk on from there, past
        // the index entries that claimed jobs leave behind until vacuum.
        let mut cursor: Option<ClaimCursor> = None;
        let mut cursor_set_at = Instant::now();
        loop {
            while let Ok(id) = done_rx.try_recv() {
                running.remove(&id);
            }
            if last_reap.elapsed() >= self.options.lease / 4 {
                last_reap = Instant::now();
                match self.store.reap_expired(Utc::now()).await {
                    Ok(0) => {}
                    Ok(count) => {
                        metrics::counter!("jobs_interrupted_total").increment(count);
                        tracing::warn!(count, "jobs whose worker vanished were returned to the queue");
                    }
                    Err(error) => tracing::warn!(%error, "reaping expired leases failed"),
                }
            }
            let free = slots.available_permits();
            let mut claimed_all = false;
            if free > 0 {
                let now = Utc::now();
                let until = now
                    + chrono::Duration::from_std(self.options.lease).unwrap_or(chrono::Duration::seconds(30));
                // Back to the head at least every poll interval: a job enqueued with a higher
                // priority than the position (or due earlier) is not passed over for longer.
                if cursor_set_at.elapsed() >= self.options.poll_interval {
                    cursor = None;
                }
                match self
                    .store
                    .claim(
                        &self.options.queues,
                        &self.id,
                        free as u32,
                        until,
                        now,
                        cursor.as_ref(),
                    )
                    .await
                {
                    Ok((jobs, last)) => {
                        claimed_all = jobs.len() == free;
                        // A short batch reached the end of the due jobs: the next claim starts
                        // from the head again.
                        if claimed_all {
                            if cursor.is_none() {
                                cursor_set_at = Instant::now();
                            }
                            cursor = last;
                        } else {
                            cursor = None;
                        }
                        for job in jobs {
                            let Ok(permit) = slots.clone().try_acquire_owned() else {
                                break;
                            };
                            let handle = tokio::spawn(self.run_one(
                                job.clone(),
                                permit,
                                wake.clone(),
                                done_tx.clone(),
                                outcomes.clone(),
                            ));
                            running.insert(job.id, (job, handle));
                        }
                    }
                    Err(error) => tracing::warn!(%error, "claiming jobs failed"),
                }
            }
            // Claimed a full batch: look again at once, there may be more.
            if claimed_all {
                continue;
            }
            tokio::select! {
                _ = wake.notified() => {}
                _ = tokio::time::sleep(self.options.poll_interval) => {}
                _ = &mut stopped => break,
            }
        }
        self.drain(running, &mut done_rx).await;
        // The recorder ends once the last run's outcome is written.
        drop(outcomes);
        let _ = recorder.await;
    }

    async fn drain(
        &self,
        mut running: HashMap<Uuid, (Claimed, tokio::task::JoinHandle<()>)>,
        done_rx: &mut tokio::sync::mpsc::UnboundedReceiver<Uuid>,
    ) {
        tracing::info!(worker = %self.id, running = running.len(), "worker stopping: no new claims");
        let deadline = tokio::time::Instant::now() + self.options.shutdown_timeout;
        while !running.is_empty() {
            match tokio::time::timeout_at(deadline, done_rx.recv()).await {
                Ok(Some(id)) => {
                    running.remove(&id);
                }
                Ok(None) | Err(_) => break,
            }
        }
        for (_, (job, handle)) in running {
            handle.abort();
            match self.store.release(&job, &self.id).await {
                Ok(true) => {
                    tracing::warn!(job_id = %job.id, name = job.name, "released unfinished at shutdown")
                }
                Ok(false) => {}
                Err(error) => {
                    tracing::warn!(job_id = %job.id, %error, "releasing failed; the lease will expire")
                }
            }
        }
        tracing::info!(worker = %self.id, "worker stopped");
    }

    fn run_one(
        &self,
        job: Claimed,
        permit: tokio::sync::OwnedSemaphorePermit,
        wake: Arc<Notify>,
        done: tokio::sync::mpsc::UnboundedSender<Uuid>,
        outcomes: Outcomes,
    ) -> impl Future<Output = ()> + Send + 'static {
        let store = self.store.clone();
        let registry = self.registry.clone();
        let context = JobContext {
            app: self.context.clone(),
            job_id: job.id,
            attempt: job.attempt,
        };
        let worker = self.id.clone();
        let options = self.options.clone();
        async move {
            let span = tracing::info_span!("job", job_id = %job.id, name = %job.name, attempt = job.attempt);
            let started = Instant::now();
            let outcome = match registry.handlers.get(job.name.as_str()) {
                None => Err(anyhow::anyhow!(
                    "no handler for job kind {:?} in this worker",
                    job.name
                )),
                Some(handler) => {
                    let run = tokio::spawn(tracing::Instrument::instrument(
                        handler(job.payload.clone(), context),
                        span.clone(),
                    ));
                    keep_lease(&store, &job, &worker, options.lease, run).await
                }
            };
            let elapsed = started.elapsed().as_secs_f64();
            let name = job.name.clone();
            let id = job.id;
            let now = Utc::now();
            match &outcome {
                Ok(()) => {
                    metrics::histogram!("jobs_run_duration_seconds", "name" => name.clone(), "outcome" => "success").record(elapsed);
                    tracing::info!(parent: &span, elapsed_ms = elapsed * 1000.0, "job done");
                    outcomes.submit(job, Ok(()), now);
                }
                Err(error) => {
                    let message = bounded_error(format!("{error:#}"));
                    metrics::histogram!("jobs_run_duration_seconds", "name" => name.clone(), "outcome" => "failure").record(elapsed);
                    metrics::counter!("jobs_failures_total", "name" => name.clone()).increment(1);
                    let retry_at = (job.attempt < job.max_attempts).then(|| {
                        now + chrono::Duration::from_std(backoff(
                            job.attempt,
                            options.backoff_base,
                            options.backoff_max,
                        ))
                        .unwrap_or(chrono::Duration::seconds(60))
                    });
                    if retry_at.is_none() {
                        metrics::counter!("jobs_dead_total", "name" => name.clone()).increment(1);
                        tracing::error!(parent: &span, error = message, "job failed for the last time: dead");
                    } else {
                        tracing::warn!(parent: &span, error = message, ?retry_at, "job failed; will retry");
                    }
                    outcomes.submit(job, Err((message, retry_at)), now);
                }
            }
            // The slot is free at once: the next job is claimed while the outcome is written.
            drop(permit);
            let _ = done.send(id);
            wake.notify_one();
        }
    }
}

/// Awaits the handler while renewing the lease every third of its length. A handler panic is
/// a failure like any other.
async fn keep_lease(
    store: &JobStore,
    job: &Claimed,
    worker: &str,
    lease: Duration,
    run: tokio::task::JoinHandle<anyhow::Result<()>>,
) -> anyhow::Result<()> {
    // The handler runs in its own task (so a panic is caught); if this future is dropped —
    // the worker aborts it at the shutdown deadline and releases the job — the handler must
    // stop too, or it could finish its effect after another worker took the job.
    let mut run = AbortOnDrop(run);
    let mut beat = tokio::time::interval(lease / 3);
    beat.tick().await;
    loop {
        tokio::select! {
            result = &mut run.0 => {
                return match result {
                    Ok(outcome) => outcome,
                    Err(error) if error.is_panic() => Err(anyhow::anyhow!("the handler panicked")),
                    Err(error) => Err(anyhow::anyhow!("the handler was cancelled: {error}")),
                };
            }
            _ = beat.tick() => {
                let until = Utc::now() + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::seconds(30));
                match store.heartbeat(job, worker, until).await {
                    Ok(true) => {}
                    Ok(false) => {
                        run.0.abort();
                        return Err(anyhow::anyhow!("the lease was lost (the job was reclaimed)"));
                    }
                    Err(error) => tracing::warn!(%error, "lease renewal failed; retrying at the next beat"),
                }
            }
        }
    }
}

/// Aborts the task when dropped (a `JoinHandle` alone detaches it).
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Wakes the worker on every `NOTIFY` (PostgreSQL); reconnects after errors.
async fn listen(pool: sqlx::PgPool, wake: Arc<Notify>, stop: ShutdownSignal) {
    let stopped = stop.stopped();
    tokio::pin!(stopped);
    loop {
        let mut listener = match sqlx::postgres::PgListener::connect_with(&pool).await {
            Ok(listener) => listener,
            Err(error) => {
                tracing::debug!(%error, "job notifications unavailable; polling");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    _ = &mut stopped => return,
                }
            }
        };
        if listener.listen(NOTIFY_CHANNEL).await.is_err() {
            continue;
        }
        loop {
            tokio::select! {
                notification = listener.recv() => match notification {
                    Ok(_) => wake.notify_one(),
                    Err(_) => break,
                },
                _ = &mut stopped => return,
            }
        }
    }
}

/// The longest error message a job keeps (and logs), in bytes. A handler's error may carry
/// what another system answered (an SMTP server's reply reaches 100 kB), which is untrusted
/// and unbounded in principle; the first 2,000 bytes say what went wrong.
const MAX_ERROR_BYTES: usize = 2_000;

/// `message`, cut to [`MAX_ERROR_BYTES`] at a character boundary, saying how much was cut.
fn bounded_error(mut message: String) -> String {
    if message.len() <= MAX_ERROR_BYTES {
        return message;
    }
    let cut = (0..=MAX_ERROR_BYTES)
        .rev()
        .find(|&at| message.is_char_boundary(at))
        .unwrap_or(0);
    let dropped = message.len() - cut;
    message.truncate(cut);
    message.push_str(&format!("… ({dropped} more bytes)"));
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_is_kept_whole_up_to_the_bound_and_cut_at_a_character_after_it() {
        assert_eq!(bounded_error("short".into()), "short");
        let exact = "x".repeat(MAX_ERROR_BYTES);
        assert_eq!(bounded_error(exact.clone()), exact);
        // 1,999 ASCII bytes, then 2-byte characters: the cut falls inside the first of them.
        let long = format!("{}{}", "x".repeat(MAX_ERROR_BYTES - 1), "é".repeat(100));
        let kept = bounded_error(long);
        assert_eq!(
            kept,
            format!("{}… (200 more bytes)", "x".repeat(MAX_ERROR_BYTES - 1))
        );
    }
}
