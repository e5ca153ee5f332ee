//! `POST /api/v1/events`: batches of analytics events, acknowledged once committed.

use axum::{Json, extract::State, http::StatusCode};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;

use super::{
    authn::Principal,
    error::{ApiError, FieldError},
    extract::ApiJson,
    responses::{EventQueueFull, Invalid},
};
use crate::{
    state::AppState,
    store::events::{NewEvent, SubmitError},
};

/// Event routes (under `/api/v1/events`).
pub fn router() -> OpenApiRouter<AppState> {
    feature_router![create_events]
}

/// Events per request, at most.
pub const MAX_EVENTS: usize = 500;
const MAX_TYPE_CHARS: usize = 64;
/// Serialised size of one event's properties, at most.
const MAX_PROPERTIES_BYTES: usize = 2_048;
/// How far in the future a client clock may be.
const MAX_CLOCK_SKEW: chrono::TimeDelta = chrono::TimeDelta::hours(1);

/// One event.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventRequest {
    /// `[a-z0-9_.:-]`, 1–64 characters, e.g. `product.viewed`.
    #[serde(rename = "type")]
    #[schema(pattern = "^[a-z0-9_.:-]{1,64}$")]
    pub kind: String,
    /// When it happened (RFC 3339); within `events_max_age` before now and at most an hour
    /// ahead.
    pub timestamp: DateTime<Utc>,
    /// A JSON object of at most 2 KiB.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub properties: Option<serde_json::Value>,
}

/// A batch of events.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventBatch {
    /// 1 to 500 events.
    #[schema(min_items = 1, max_items = 500)]
    pub events: Vec<EventRequest>,
}

/// What was stored.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventsStored {
    /// Events committed by this request.
    pub stored: usize,
}

pub(crate) fn validate(
    batch: EventBatch,
    now: DateTime<Utc>,
    max_age: std::time::Duration,
) -> Result<Vec<NewEvent>, ApiError> {
    if batch.events.is_empty() || batch.events.len() > MAX_EVENTS {
        return Err(ApiError::invalid(
            "events",
            format!("must hold 1 to {MAX_EVENTS} events"),
        ));
    }
    let oldest = now - chrono::TimeDelta::from_std(max_age).unwrap_or(chrono::TimeDelta::days(7));
    let mut errors = Vec::new();
    let mut events = Vec::with_capacity(batch.events.len());
    for (index, event) in batch.events.into_iter().enumerate() {
        let kind_ok = (1..=MAX_TYPE_CHARS).contains(&event.kind.len())
            && event
                .kind
                .bytes()
                .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || b"_.:-".contains(&byte));
        if !kind_ok {
            errors.push(FieldError::new(
                &format!("events[{index}].type"),
                format!("must be 1 to {MAX_TYPE_CHARS} characters of a-z, 0-9, _ . : -"),
            ));
        }
        if event.timestamp < oldest || event.timestamp > now + MAX_CLOCK_SKEW {
            errors.push(FieldError::new(
                &format!("events[{index}].timestamp"),
                "must be within events_max_age before now and at most an hour ahead",
            ));
        }
        let properties = event
            .properties
            .unwrap_or_else(|| serde_json::Value::Object(Default::default()));
        let serialized = serde_json::to_string(&properties).unwrap_or_default();
        // PostgreSQL's jsonb refuses U+0000 in a string: the same answer on every backend is
        // a 400.
        if !properties.is_object()
            || serialized.len() > MAX_PROPERTIES_BYTES
            || super::extract::holds_nul(&properties)
        {
            errors.push(FieldError::new(
                &format!("events[{index}].properties"),
                format!("must be a JSON object of at most {MAX_PROPERTIES_BYTES} bytes, without U+0000"),
            ));
        }
        events.push(NewEvent {
            kind: event.kind,
            occurred_at: event.timestamp,
            properties: serialized,
        });
        if errors.len() >= 20 {
            break;
        }
    }
    if errors.is_empty() {
        Ok(events)
    } else {
        Err(ApiError::Validation(errors))
    }
}

/// Stores a batch of the caller's events. The answer comes once they are committed (group
/// commit with other requests); a full queue answers 503 with `Retry-After`, never a silent
/// drop.
#[utoipa::path(
    post, path = "/api/v1/events", tag = "events",
    request_body = EventBatch,
    security(("bearer" = []), ("cookie" = [])),
    responses((status = 201, description = "Committed", body = EventsStored), EventQueueFull, Invalid)
)]
pub async fn create_events(
    State(state): State<AppState>,
    principal: Principal,
    ApiJson(batch): ApiJson<EventBatch>,
) -> Result<(StatusCode, Json<EventsStored>), ApiError> {
    let events = validate(batch, Utc::now(), state.settings.events_max_age)?;
    match state.events.submit(principal.user_id, events).await {
        Ok(stored) => Ok((StatusCode::CREATED, Json(EventsStored { stored }))),
        Err(SubmitError::Full) => Err(ApiError::Busy(
            "the event queue is full; retry after the Retry-After delay",
        )),
        Err(SubmitError::Closed) => Err(ApiError::Busy(
            "the server is shutting down; retry on another instance",
        )),
        Err(SubmitError::Failed(cause)) => Err(ApiError::Unavailable(cause)),
    }
}
