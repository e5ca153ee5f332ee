//! The shutdown sequence: signal → not ready → stop accepting → drain → exit.
//!
//! A load balancer learns that an instance is leaving from its readiness probe, so readiness
//! turns 503 first and the listener closes only after `shutdown_delay`; in-flight requests then
//! get `shutdown_timeout` to finish. Every long-lived task holds a [`ShutdownSignal`] and stops
//! when it fires.

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use tokio::sync::watch;

/// Owned by `main`; flips the process into draining and tells every task to stop.
#[derive(Debug, Clone)]
pub struct Shutdown {
    draining: Arc<AtomicBool>,
    stop: Arc<watch::Sender<bool>>,
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
}

impl ShutdownSignal {
    /// Resolves when [`Shutdown::stop`] has been called (at once if it already was).
    pub async fn stopped(mut self) {
        // An error means the sender is gone, which also means "stop".
        let _sender_gone = self.stop.wait_for(|stopped| *stopped).await;
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
}
