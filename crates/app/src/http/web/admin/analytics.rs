//! `GET /admin/analytics`: events per hour over the last two days and the best sellers, from
//! the admin API's report (`http::analytics::analytics_report`: the roll-ups gathered from every
//! shard). Server-rendered as tables with captions (the view without JavaScript, and the data
//! `web/js/analytics.js` reads to draw them as uPlot charts).

use std::collections::BTreeMap;

use askama::Template;
use axum::{extract::State, http::HeaderMap, response::Response};
use chrono::{DateTime, TimeDelta, Utc};

use super::layout;
use crate::{
    http::analytics::{AnalyticsReport, analytics_report},
    http::web::{
        error::PageError,
        page::{Audience, Layout, render},
        visitor::Admin,
    },
    state::AppState,
};

/// The window of the hourly chart.
const HOURS: u32 = 48;
/// Best sellers shown.
const TOP: u32 = 10;

/// One hour of the events table: a count per event type (in the order of `kinds`).
#[derive(Debug, Clone)]
pub struct HourRow {
    /// `12-02 18:00`.
    pub label: String,
    /// RFC 3339, for `<time datetime>`.
    pub iso: String,
    /// Seconds since the epoch: the chart's x value.
    pub epoch: i64,
    pub counts: Vec<i64>,
}

/// A product of the best-seller or most-viewed table.
#[derive(Debug, Clone)]
pub struct ProductFigure {
    /// Its name, or "Deleted product".
    pub name: String,
    /// Units sold, or views.
    pub amount: i64,
    /// Orders that included it (best sellers only).
    pub orders: i64,
}

#[derive(Template)]
#[template(path = "admin/analytics.html")]
struct AnalyticsPage {
    layout: Layout,
    hours: u32,
    /// The event types: the events table's columns.
    kinds: Vec<String>,
    rows: Vec<HourRow>,
    /// One sentence for people who cannot see the events chart.
    events_summary: String,
    top: Vec<ProductFigure>,
    top_summary: String,
    viewed: Vec<ProductFigure>,
}

/// `GET /admin/analytics`: the last 48 hours' events and best sellers.
pub async fn show_analytics(
    State(state): State<AppState>,
    Admin(principal): Admin,
    headers: HeaderMap,
) -> Result<Response, PageError> {
    let report = analytics_report(&state, Some(HOURS), Some(TOP)).await?;
    let mut layout = layout(&state, &principal, "Analytics", "analytics");
    layout.styles = &["css/vendor/uplot.css"];
    let page = build(layout, report);
    render(&page, Audience::Private, &headers)
}

/// The page's tables from the report: every hour of the window, with zeros where nothing
/// happened (the chart's x axis is then continuous).
fn build(layout: Layout, report: AnalyticsReport) -> AnalyticsPage {
    let mut kinds: Vec<String> = report
        .events_per_hour
        .iter()
        .map(|count| count.kind.clone())
        .collect();
    kinds.sort();
    kinds.dedup();
    let mut counts: BTreeMap<(DateTime<Utc>, usize), i64> = BTreeMap::new();
    for count in &report.events_per_hour {
        if let Ok(column) = kinds.binary_search(&count.kind) {
            *counts.entry((count.hour, column)).or_default() += count.count;
        }
    }
    let rows: Vec<HourRow> = (0..i64::from(HOURS))
        .map(|offset| report.since + TimeDelta::hours(offset))
        .map(|hour| HourRow {
            label: hour.format("%m-%d %H:00").to_string(),
            iso: hour.to_rfc3339(),
            epoch: hour.timestamp(),
            counts: (0..kinds.len())
                .map(|column| counts.get(&(hour, column)).copied().unwrap_or(0))
                .collect(),
        })
        .collect();
    let top: Vec<ProductFigure> = report
        .top_products
        .into_iter()
        .map(|sales| ProductFigure {
            name: sales.name.unwrap_or_else(|| "Deleted product".to_owned()),
            amount: sales.units,
            orders: sales.orders,
        })
        .collect();
    let viewed = report
        .most_viewed
        .into_iter()
        .map(|viewed| ProductFigure {
            name: viewed.name.unwrap_or_else(|| "Deleted product".to_owned()),
            amount: viewed.views,
            orders: 0,
        })
        .collect();
    AnalyticsPage {
        layout,
        hours: HOURS,
        events_summary: events_summary(&kinds, &rows),
        top_summary: top_summary(&top),
        kinds,
        rows,
        top,
        viewed,
    }
}

/// `1,234 events of 2 types in the last 48 hours; the busiest hour, 12-02 18:00, had 120.`
fn events_summary(kinds: &[String], rows: &[HourRow]) -> String {
    let total: i64 = rows.iter().flat_map(|row| &row.counts).sum();
    let busiest = rows
        .iter()
        .map(|row| (row.counts.iter().sum::<i64>(), row))
        .max_by_key(|(sum, _)| *sum);
    match busiest {
        Some((most, row)) if total > 0 => format!(
            "{total} events of {} types in the last {HOURS} hours; the busiest hour, {} UTC, had {most}.",
            kinds.len(),
            row.label
        ),
        _ => format!("No events in the last {HOURS} hours."),
    }
}

/// `Best sellers by units sold: Mug (12), Lamp (3).`
fn top_summary(top: &[ProductFigure]) -> String {
    if top.is_empty() {
        return format!("No sales in the last {HOURS} hours.");
    }
    let items: Vec<String> = top
        .iter()
        .map(|product| format!("{} ({})", product.name, product.amount))
        .collect();
    format!("Best sellers by units sold: {}.", items.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::analytics::{HourlyCount, TopProduct};

    fn hour(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .expect("date")
            .with_timezone(&Utc)
    }

    #[test]
    fn every_hour_of_the_window_gets_a_row_with_a_count_per_event_type() {
        let since = hour("2026-12-01T00:00:00Z");
        let count = |at: &str, kind: &str, count| HourlyCount {
            hour: hour(at),
            kind: kind.to_owned(),
            count,
        };
        let report = AnalyticsReport {
            since,
            events_per_hour: vec![
                count("2026-12-01T01:00:00Z", "page.viewed", 5),
                count("2026-12-01T01:00:00Z", "cart.added", 2),
                count("2026-12-02T23:00:00Z", "page.viewed", 6),
            ],
            top_products: vec![TopProduct {
                product_id: uuid::Uuid::nil(),
                name: None,
                orders: 1,
                units: 4,
            }],
            most_viewed: Vec::new(),
        };
        let page = build(Layout::public("Analytics", ""), report);
        assert_eq!(page.kinds, ["cart.added", "page.viewed"]);
        assert_eq!(page.rows.len(), 48);
        assert_eq!(page.rows[0].counts, [0, 0]);
        assert_eq!(page.rows[1].counts, [2, 5]);
        assert_eq!(page.rows[47].counts, [0, 6]);
        assert_eq!(page.rows[1].label, "12-01 01:00");
        assert_eq!(
            page.events_summary,
            "13 events of 2 types in the last 48 hours; the busiest hour, 12-01 01:00 UTC, had 7."
        );
        assert_eq!(page.top[0].name, "Deleted product");
        assert_eq!(
            page.top_summary,
            "Best sellers by units sold: Deleted product (4)."
        );
    }
}
