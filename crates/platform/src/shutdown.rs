//! The shutdown sequence: signal → not ready → stop accepting → drain → exit.
//!
//! A load balancer learns that an instance is leaving from its readiness probe, so readiness
//! turns 503 first and the listener closes only after `shutdown_delay`; in-flight requests then
//! get `shutdown_timeout` to finish. Every long-lived task holds a [`ShutdownSignal`] and stops
//! when it fires.
//!
//! Background tasks (refreshers, probers, listeners, flushers) are started with
//! [`Shutdown::spawn`], which keeps their handles: [`Shutdown::wait_for_tasks`] stops them and
//! waits for them, so none still runs when the pools they use are closed (what mini-redis's
//! `shutdown_complete` channel does).

use std::{
    future::Future,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use tokio::{sync::watch, task::JoinHandle};

/// Owned by `main`; flips the process into draining and tells every task to stop.
#[derive(Debug, Clone)]
pub struct Shutdown {
    draining: Arc<AtomicBool>,
    stop: Arc<watch::Sender<bool>>,
    /// The background tasks started through [`Shutdown::spawn`], by name, until they are
    /// awaited.
    tasks: Arc<Mutex<Vec<NamedTask>>>,
}

/// A background task's name (for the log) and handle.
type NamedTask = (&'static str, JoinHandle<()>);

/// What [`Shutdown::wait_for_tasks`] saw, by task name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TasksStopped {
    /// Returned after the stop signal.
    pub stopped: Vec<&'static str>,
    /// Ended by a panic.
    pub failed: Vec<&'static str>,
    /// Still running at the deadline, so aborted.
    pub aborted: Vec<&'static str>,
}

/// A receiver of the stop signal, cheap to clone into tasks.
#[derive(Debug, Clone)]
pub struct ShutdownSignal {
    stop: watch::Receiver<bool>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Self::new()
    }
}

impl Shutdown {
    /// A sequence that has not started.
    pub fn new() -> Self {
        let (stop, _) = watch::channel(false);
        Self {
            draining: Arc::new(AtomicBool::new(false)),
            stop: Arc::new(stop),
            tasks: Arc::default(),
        }
    }

    /// True once shutdown has begun: readiness reports 503 from then on.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// First step: stop reporting ready.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Release);
    }

    /// Second step: tell listeners and background tasks to stop.
    pub fn stop(&self) {
        self.start_draining();
        self.stop.send_replace(true);
    }

    /// A signal for a task to await.
    pub fn signal(&self) -> ShutdownSignal {
        ShutdownSignal {
            stop: self.stop.subscribe(),
        }
    }

    /// Runs `task` in the background, owned by this shutdown: it must return soon after a
    /// [`ShutdownSignal`] of this shutdown fires, and [`Shutdown::wait_for_tasks`] waits for it.
    /// `name` is for the log.
    pub fn spawn(&self, name: &'static str, task: impl Future<Output = ()> + Send + 'static) {
        let handle = tokio::spawn(task);
        self.tasks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((name, handle));
    }

    /// Stops every background task (see [`Shutdown::stop`]) and waits for them, at most
    /// `deadline` in all; those still running then are aborted. Logs the outcome and returns
    /// it. Call it before closing what the tasks use (the database pools).
    pub async fn wait_for_tasks(&self, deadline: Duration) -> TasksStopped {
        self.stop();
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(PoisonError::into_inner));
        let until = tokio::time::Instant::now() + deadline;
        let mut outcome = TasksStopped::default();
        for (name, mut handle) in tasks {
            match tokio::time::timeout_at(until, &mut handle).await {
                Ok(Ok(())) => outcome.stopped.push(name),
                Ok(Err(error)) => {
                    tracing::error!(task = name, %error, "a background task failed");
                    outcome.failed.push(name);
                }
                Err(_) => {
                    handle.abort();
                    // An aborted task ends at its next await point; wait for that, briefly.
                    let _ = tokio::time::timeout(Duration::from_secs(1), handle).await;
                    outcome.aborted.push(name);
                }
            }
        }
        if outcome.aborted.is_empty() {
            tracing::info!(
                tasks = outcome.stopped.len() + outcome.failed.len(),
                names = outcome.stopped.join(", "),
                "background tasks stopped"
            );
        } else {
            tracing::warn!(
                deadline = ?deadline,
                aborted = outcome.aborted.join(", "),
                "background tasks did not stop in time and were aborted"
            );
        }
        outcome
    }
}

impl ShutdownSignal {
    /// Resolves when [`Shutdown::stop`] has been called (at once if it already was).
    pub async fn stopped(mut self) {
        // An error means the sender is gone, which also means "stop".
        let _sender_gone = self.stop.wait_for(|stopped| *stopped).await;
    }

    /// Runs `work` every `period` (the first time one period from now; a late tick delays the
    /// next rather than bunching them) until [`Shutdown::stop`]. A run in progress finishes
    /// before the signal is looked at again.
    pub async fn every<F, Fut>(self, period: std::time::Duration, mut work: F)
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = ()>,
    {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        let stopped = self.stopped();
        tokio::pin!(stopped);
        loop {
            tokio::select! {
                _ = tick.tick() => work().await,
                _ = &mut stopped => return,
            }
        }
    }
}

/// Resolves on SIGTERM (what orchestrators send) or SIGINT (Ctrl-C).
pub async fn termination_requested() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = interrupt => tracing::info!("SIGINT received"),
                    _ = terminate.recv() => tracing::info!("SIGTERM received"),
                }
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM; only SIGINT stops the server");
                let _ = interrupt.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn stop_wakes_every_signal_and_marks_draining() {
        let shutdown = Shutdown::new();
        let early = shutdown.signal();
        assert!(!shutdown.is_draining());
        shutdown.stop();
        early.stopped().await;
        shutdown.signal().stopped().await;
        assert!(shutdown.is_draining());
    }

    #[tokio::test]
    async fn waiting_for_tasks_stops_them_and_returns_once_they_have_finished() {
        let shutdown = Shutdown::new();
        let finished = Arc::new(AtomicBool::new(false));
        let signal = shutdown.signal();
        let flag = finished.clone();
        shutdown.spawn("flusher", async move {
            signal.stopped().await;
            // Work done after the signal (a last flush) is waited for too.
            tokio::time::sleep(Duration::from_millis(50)).await;
            flag.store(true, Ordering::SeqCst);
        });

        let outcome = shutdown.wait_for_tasks(Duration::from_secs(5)).await;

        assert!(finished.load(Ordering::SeqCst), "the task ran to its end first");
        assert_eq!(outcome.stopped, vec!["flusher"]);
        assert!(shutdown.is_draining());
    }

    #[tokio::test]
    async fn a_task_that_ignores_the_signal_is_aborted_at_the_deadline() {
        let shutdown = Shutdown::new();
        shutdown.spawn("stubborn", std::future::pending());
        let signal = shutdown.signal();
        shutdown.spawn("polite", signal.stopped());
        let started = std::time::Instant::now();

        let outcome = shutdown.wait_for_tasks(Duration::from_millis(100)).await;

        assert_eq!(outcome.aborted, vec!["stubborn"]);
        assert_eq!(outcome.stopped, vec!["polite"]);
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "bounded: {:?}",
            started.elapsed()
        );
    }
}
