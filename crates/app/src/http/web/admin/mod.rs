//! The administration pages: products (with their image and its variants), users, the job
//! queue and the analytics report. Each page takes the [`Admin`](super::visitor::Admin)
//! extractor (others are sent to sign in, or get a 403 page), shares the sub-navigation
//! `admin/nav.html`, and calls the same functions as the admin API (`http::products`,
//! `http::uploads`, `http::admin`, `http::analytics`), so validation, cache invalidation and
//! the queue's rules are written once.

pub mod analytics;
pub mod jobs;
pub mod product_form;
pub mod products;
pub mod users;

use chrono::{DateTime, Utc};

use super::{csrf, page::Layout, visitor::Visitor};
use crate::{http::authn::Principal, state::AppState};

/// Rows per page of the admin lists.
const PAGE_SIZE: u32 = 20;

/// The layout of an admin page seen by `principal`: its forms carry the CSRF token of their
/// session.
fn layout(state: &AppState, principal: &Principal, title: &str, page: &'static str) -> Layout {
    Layout {
        title: title.to_owned(),
        page,
        visitor: Visitor::SignedIn(principal.clone()),
        csrf: csrf::token(state, principal.session_id.as_bytes()),
        notice: None,
        styles: &[],
    }
}

/// A moment for operators: `2026-12-02 18:42 UTC` (minutes are enough to read a table).
fn when(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// A size for people, in decimal units: `12.3 KB`, `1.2 MB`, `512 B`.
fn size(bytes: u64) -> String {
    match bytes {
        0..1_000 => format!("{bytes} B"),
        1_000..1_000_000 => format!("{:.1} KB", bytes as f64 / 1_000.0),
        _ => format!("{:.1} MB", bytes as f64 / 1_000_000.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_shown_in_decimal_units_with_one_decimal() {
        assert_eq!(size(512), "512 B");
        assert_eq!(size(12_345), "12.3 KB");
        assert_eq!(size(2_500_000), "2.5 MB");
    }

    #[test]
    fn moments_are_shown_to_the_minute_in_utc() {
        let at = DateTime::parse_from_rfc3339("2026-12-02T18:42:37Z")
            .expect("date")
            .with_timezone(&Utc);
        assert_eq!(when(at), "2026-12-02 18:42 UTC");
    }
}
