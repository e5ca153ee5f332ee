//! `GET /api/v1/admin/analytics`: hourly event counts and best-selling products, from the
//! roll-ups the `analytics.rollup` job gathers across every shard.

use axum::{Json, extract::State};
use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use uuid::Uuid;

use super::{
    authn::Principal,
    error::ApiError,
    extract::ApiQuery,
    responses::{Forbidden, Invalid},
};
use crate::{state::AppState, store::analytics};

/// Analytics routes (under `/api/v1/admin`).
pub fn router() -> OpenApiRouter<AppState> {
    feature_router![get_analytics]
}

const MAX_HOURS: u32 = 24 * 31;
const MAX_TOP: u32 = 100;

/// The window.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AnalyticsQuery {
    /// Hours back from now, the current one included: 1 to 744 (default 24).
    #[param(minimum = 1, maximum = 744)]
    pub hours: Option<u32>,
    /// How many products in `top_products`: 1 to 100 (default 10).
    #[param(minimum = 1, maximum = 100)]
    pub top: Option<u32>,
}

/// Events of one type in one hour.
#[derive(Debug, Serialize, ToSchema)]
pub struct HourlyCount {
    /// The hour's start (UTC).
    pub hour: DateTime<Utc>,
    #[serde(rename = "type")]
    pub kind: String,
    pub count: i64,
}

/// A product's sales in the window.
#[derive(Debug, Serialize, ToSchema)]
pub struct TopProduct {
    pub product_id: Uuid,
    /// Its current name (absent once deleted).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Orders that included it.
    pub orders: i64,
    /// Units sold (cancelled orders excluded).
    pub units: i64,
}

/// A product's views (all time, as of the last write-behind flush of each instance).
#[derive(Debug, Serialize, ToSchema)]
pub struct ViewedProduct {
    pub product_id: Uuid,
    /// Its current name (absent once deleted).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Times its page was read (`GET /products/{id}`, 304s included).
    pub views: i64,
}

/// The report.
#[derive(Debug, Serialize, ToSchema)]
pub struct AnalyticsReport {
    /// Start of the window (an hour boundary, UTC).
    pub since: DateTime<Utc>,
    /// Per hour and event type, oldest first.
    pub events_per_hour: Vec<HourlyCount>,
    /// Best sellers by units.
    pub top_products: Vec<TopProduct>,
    /// The most viewed products (all time; each instance writes its counts every
    /// `view_count_flush_interval`).
    pub most_viewed: Vec<ViewedProduct>,
}

/// Hourly event counts by type and the best-selling products over the last `hours` hours (as
/// fresh as the last roll-up, `analytics_rollup_schedule`), and the most viewed products.
#[utoipa::path(
    get, path = "/api/v1/admin/analytics", tag = "admin",
    params(AnalyticsQuery),
    security(("bearer" = []), ("cookie" = [])),
    responses((status = 200, body = AnalyticsReport), Invalid, Forbidden)
)]
pub async fn get_analytics(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(query): ApiQuery<AnalyticsQuery>,
) -> Result<Json<AnalyticsReport>, ApiError> {
    principal.require_admin("analytics are for admins")?;
    Ok(Json(analytics_report(&state, query.hours, query.top).await?))
}

/// The report over the last `hours` hours (default 24) with the `top` best sellers and most
/// viewed products (default 10), gathered from every shard's roll-ups (the caller has checked
/// that an admin asks): the API's report and the admin analytics page share it.
pub async fn analytics_report(
    state: &AppState,
    hours: Option<u32>,
    top: Option<u32>,
) -> Result<AnalyticsReport, ApiError> {
    let hours = hours.unwrap_or(24);
    if !(1..=MAX_HOURS).contains(&hours) {
        return Err(ApiError::invalid("hours", format!("must be 1 to {MAX_HOURS}")));
    }
    let top = top.unwrap_or(10);
    if !(1..=MAX_TOP).contains(&top) {
        return Err(ApiError::invalid("top", format!("must be 1 to {MAX_TOP}")));
    }
    let since = analytics::hour_of(Utc::now()) - TimeDelta::hours(i64::from(hours) - 1);
    let primary = state.db.primary_pool();
    let counts = analytics::event_counts(&primary, since).await?;
    let products = analytics::top_products(&primary, since, top).await?;
    let viewed = crate::store::views::most_viewed(&primary, top).await?;
    Ok(AnalyticsReport {
        since,
        events_per_hour: counts
            .into_iter()
            .map(|count| HourlyCount {
                hour: count.hour,
                kind: count.event_type,
                count: count.count,
            })
            .collect(),
        top_products: products
            .into_iter()
            .map(|sales| TopProduct {
                product_id: sales.product_id,
                name: sales.name,
                orders: sales.orders,
                units: sales.units,
            })
            .collect(),
        most_viewed: viewed
            .into_iter()
            .map(|viewed| ViewedProduct {
                product_id: viewed.product_id,
                name: viewed.name,
                views: viewed.views,
            })
            .collect(),
    })
}
