//! The live stream: Server-Sent Events, one `snapshot` event with the figures every
//! [`INTERVAL`], each computed from this connection's previous reading.
//!
//! The stream ends when the instance starts draining (SIGTERM): graceful shutdown waits for
//! every response to finish, and an endless one would hold a rolling restart up to
//! `shutdown_timeout`. The browser's `EventSource` then reconnects, through the load balancer,
//! to an instance that is ready. Its one request is recorded (latency, in-flight) when its
//! headers are sent, like any request, so an open stream does not weigh on the figures.

use std::{convert::Infallible, pin::Pin, sync::Arc, time::Duration};

use axum::response::sse::Event;
use futures::{Stream, stream};

use super::sampling::{self, Reading};
use crate::state::AppState;

/// Time between two events (and so the window of the stream's rates).
pub const INTERVAL: Duration = Duration::from_secs(1);
/// A comment line this often keeps proxies from closing a quiet connection. Events already
/// come every second; this only matters if reading the metrics stalls.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// What the stream carries from one event to the next.
struct Connection {
    state: AppState,
    /// Which instance this is ([`super::describe_instance`]), in every event.
    instance: String,
    /// The reading the next figures are compared with (`None` before the first event).
    previous: Option<Arc<Reading>>,
    ticks: tokio::time::Interval,
    /// Fires when the listener closes (the end of `shutdown_delay`); draining, which starts
    /// earlier, is looked at on every tick.
    stopped: Pin<Box<dyn Future<Output = ()> + Send>>,
}

/// The events of one connection: the first at once, then one every [`INTERVAL`] until the
/// instance drains or metrics cannot be read.
pub fn snapshots(state: AppState, instance: String) -> impl Stream<Item = Result<Event, Infallible>> + Send {
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + INTERVAL, INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let connection = Connection {
        stopped: Box::pin(state.shutdown.signal().stopped()),
        state,
        instance,
        previous: None,
        ticks,
    };
    stream::unfold(connection, |mut connection| async move {
        if connection.previous.is_some() {
            tokio::select! {
                _ = connection.ticks.tick() => {}
                () = &mut connection.stopped => return None,
            }
        }
        if connection.state.shutdown.is_draining() {
            return None;
        }
        let current = sampling::read(&connection.state).await?;
        let figures = match &connection.previous {
            Some(previous) => sampling::figures(&connection.state, previous, &current),
            None => sampling::figures_now(&connection.state, current.clone()),
        };
        connection.previous = Some(Arc::new(current));
        let snapshot = super::Snapshot {
            instance: &connection.instance,
            figures: &figures,
        };
        let event = Event::default().event("snapshot").json_data(&snapshot).ok()?;
        Some((Ok(event), connection))
    })
}
