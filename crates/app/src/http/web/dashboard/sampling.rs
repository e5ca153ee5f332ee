//! Reading this instance's metrics for the dashboard, and what each reading is compared with.
//!
//! A reading is what `/metrics` would answer now (the same refresh of the scrape-time series,
//! the same rendering), parsed. Figures need two readings: the stream compares each with the
//! one before on the same connection; a single answer (the page, the snapshot) compares with
//! the latest reading at least [`MIN_WINDOW`] old that this process remembers ([`Recent`]),
//! or, when there is none yet, with the process's start (every counter was zero then).

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use super::{
    exposition::{Exposition, Labels},
    figures::{Figures, PrimaryPool},
};
use crate::state::AppState;

/// The shortest window a single answer's rates are averaged over: shorter ones are noise.
pub const MIN_WINDOW: Duration = Duration::from_secs(1);
/// Readings remembered for single answers, at least [`MIN_WINDOW`] apart.
const REMEMBERED: usize = 5;

/// One reading of the metrics.
#[derive(Debug, Clone)]
pub struct Reading {
    /// When it was taken (windows are measured on the monotonic clock).
    pub taken: Instant,
    /// The same moment in milliseconds since the Unix epoch (the charts' x axis).
    pub at: i64,
    /// What `/metrics` rendered.
    pub exposition: Exposition,
}

/// Reads the metrics now as `/metrics` would; `None` when metrics are disabled.
pub async fn read(state: &AppState) -> Option<Reading> {
    let handle = state.metrics.as_ref()?;
    crate::http::ops::refresh_scrape_time_metrics(state).await;
    let text = handle.render();
    Some(Reading {
        taken: Instant::now(),
        at: chrono::Utc::now().timestamp_millis(),
        exposition: Exposition::parse(&text),
    })
}

/// The figures from `previous` to `current`.
pub fn figures(state: &AppState, previous: &Reading, current: &Reading) -> Figures {
    let (name, capacity) = state.db.primary_pool_capacity();
    let window = current.taken.saturating_duration_since(previous.taken);
    Figures::between(
        &previous.exposition,
        &current.exposition,
        window.as_secs_f64(),
        current.at,
        PrimaryPool { name, capacity },
    )
}

/// The figures of one answer with no reading of its own before: against the latest
/// remembered reading old enough, else against the process's start.
pub fn figures_now(state: &AppState, current: Reading) -> Figures {
    let current = Arc::new(current);
    let remembered = RECENT
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .baseline_for(&current);
    let baseline = remembered.unwrap_or_else(|| Arc::new(process_start(&current)));
    figures(state, &baseline, &current)
}

/// An empty reading at the moment the process started (`process_start_time_seconds`, which
/// `/metrics` exports): every counter was zero then. When the start time is unknown, the
/// reading is `current`'s own moment and the rates are zero.
fn process_start(current: &Reading) -> Reading {
    let started = current
        .exposition
        .value("process_start_time_seconds", &Labels::new())
        .map(|seconds| (seconds * 1000.0) as i64);
    let uptime = started
        .map(|started| Duration::from_millis(current.at.saturating_sub(started).max(0) as u64))
        .unwrap_or_default();
    Reading {
        taken: current.taken.checked_sub(uptime).unwrap_or(current.taken),
        at: current.at - uptime.as_millis() as i64,
        exposition: Exposition::default(),
    }
}

/// The readings this process took lately, for single answers. They describe this process's
/// own recorder (the `metrics` recorder is process-wide, installed once), so they live beside
/// it, in the process, and nothing another instance needs is here.
static RECENT: Mutex<Recent> = Mutex::new(Recent::new());

/// Recent readings, oldest first, at least [`MIN_WINDOW`] apart.
#[derive(Debug, Default)]
pub struct Recent {
    readings: VecDeque<Arc<Reading>>,
}

impl Recent {
    /// None yet.
    pub const fn new() -> Self {
        Self {
            readings: VecDeque::new(),
        }
    }

    /// The latest reading at least [`MIN_WINDOW`] older than `current` (`None`: none is);
    /// remembers `current` when it is that much newer than the newest remembered one.
    pub fn baseline_for(&mut self, current: &Arc<Reading>) -> Option<Arc<Reading>> {
        let age = |reading: &Reading| current.taken.saturating_duration_since(reading.taken);
        let baseline = self
            .readings
            .iter()
            .rev()
            .find(|reading| age(reading) >= MIN_WINDOW)
            .cloned();
        if self
            .readings
            .back()
            .is_none_or(|newest| age(newest) >= MIN_WINDOW)
        {
            self.readings.push_back(current.clone());
            if self.readings.len() > REMEMBERED {
                self.readings.pop_front();
            }
        }
        baseline
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(taken: Instant) -> Arc<Reading> {
        Arc::new(Reading {
            taken,
            at: 0,
            exposition: Exposition::default(),
        })
    }

    #[test]
    fn a_single_answer_compares_with_the_latest_reading_at_least_a_window_old() {
        let start = Instant::now();
        let mut recent = Recent::new();
        let at = |millis: u64| reading(start + Duration::from_millis(millis));

        assert!(recent.baseline_for(&at(0)).is_none(), "nothing remembered yet");
        assert!(
            recent.baseline_for(&at(300)).is_none(),
            "too recent to compare with"
        );
        let first = recent
            .baseline_for(&at(1_200))
            .expect("the first reading is old enough");
        assert_eq!(first.taken, start);
        let second = recent.baseline_for(&at(2_500)).expect("remembered");
        assert_eq!(
            second.taken,
            start + Duration::from_millis(1_200),
            "the latest old enough"
        );
    }

    #[test]
    fn only_a_few_readings_are_remembered() {
        let start = Instant::now();
        let mut recent = Recent::new();
        for second in 0..20 {
            recent.baseline_for(&reading(start + Duration::from_secs(second)));
        }

        assert_eq!(recent.readings.len(), REMEMBERED);
    }

    #[test]
    fn without_a_remembered_reading_the_baseline_is_the_process_start_with_every_counter_at_zero() {
        let current = Reading {
            taken: Instant::now(),
            at: 1_000_000,
            exposition: Exposition::parse("process_start_time_seconds 990\n"),
        };

        let start = process_start(&current);

        assert_eq!(start.at, 990_000);
        assert!(start.exposition.series.is_empty());
        assert_eq!(
            current.taken.saturating_duration_since(start.taken),
            Duration::from_secs(10)
        );
    }
}
