//! `/api/v1/admin/*`: operating the job queue over HTTP (admins only).

use axum::{
    Json,
    extract::{Path, State},
};
use chrono::{DateTime, Utc};
use outgrow_platform::jobs::{JobFilter, JobRecord, JobState, QueueStats};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use uuid::Uuid;

use super::{
    authn::Principal,
    error::ApiError,
    extract::{ApiQuery, path_uuid},
    responses::{Forbidden, Invalid, NotAdmin, NotDeadOrCancelled, NotFound, RunningOrFinished},
};
use crate::state::AppState;

/// The routes of this feature (under `/api/v1/admin`).
pub fn router() -> OpenApiRouter<AppState> {
    feature_router![list_jobs; get_job; retry_job; cancel_job; list_queues]
}

/// The 403 of every route here.
const ADMINS_ONLY: &str = "operating the job queue is for admins";

/// A job as operators see it.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobResponse {
    /// Identifier.
    pub id: Uuid,
    /// Queue.
    pub queue: String,
    /// Kind, e.g. `email.send`.
    pub name: String,
    /// The job's data.
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
    /// `ready`, `running`, `done`, `dead` or `cancelled`.
    #[schema(value_type = String)]
    pub state: JobState,
    /// Runs started.
    pub attempts: i32,
    /// Runs allowed before `dead`.
    pub max_attempts: i32,
    /// Runs whose worker vanished before finishing (not failures).
    pub interruptions: i32,
    /// Next eligible time.
    pub run_at: DateTime<Utc>,
    /// Lease end while running.
    pub locked_until: Option<DateTime<Utc>>,
    /// The worker holding the lease.
    pub locked_by: Option<String>,
    /// Error of the last failed run, or the interruption notice.
    pub last_error: Option<String>,
    /// When it was enqueued.
    pub created_at: DateTime<Utc>,
    /// When it finished (done, dead, cancelled).
    pub finished_at: Option<DateTime<Utc>>,
}

impl From<JobRecord> for JobResponse {
    fn from(job: JobRecord) -> Self {
        Self {
            id: job.id,
            queue: job.queue,
            name: job.name,
            payload: job.payload,
            state: job.state,
            attempts: job.attempts,
            max_attempts: job.max_attempts,
            interruptions: job.interruptions,
            run_at: job.run_at,
            locked_until: job.locked_until,
            locked_by: job.locked_by,
            last_error: job.last_error,
            created_at: job.created_at,
            finished_at: job.finished_at,
        }
    }
}

/// Which jobs to list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListJobsQuery {
    /// `ready`, `running`, `done`, `dead` or `cancelled`.
    #[param(pattern = "^(ready|running|done|dead|cancelled)$")]
    pub state: Option<String>,
    /// Only this queue: 1–64 of `A-Z a-z 0-9 _ . : -`.
    #[param(pattern = "^[A-Za-z0-9_.:-]{1,64}$")]
    pub queue: Option<String>,
    /// At most this many (1 to 200, default 50), newest first.
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
}

/// A list of jobs.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobList {
    /// Newest first.
    pub items: Vec<JobResponse>,
}

/// Lists jobs, newest first.
#[utoipa::path(
    get, path = "/api/v1/admin/jobs", tag = "admin",
    params(ListJobsQuery),
    security(("bearer" = []), ("cookie" = [])),
    responses((status = 200, body = JobList), Invalid, NotAdmin)
)]
pub async fn list_jobs(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(query): ApiQuery<ListJobsQuery>,
) -> Result<Json<JobList>, ApiError> {
    principal.require_admin(ADMINS_ONLY)?;
    let job_state = parse_job_state(query.state.as_deref())?;
    if let Some(queue) = &query.queue
        && !is_queue_name(queue)
    {
        return Err(ApiError::invalid(
            "queue",
            "must be 1 to 64 letters, digits or _ . : -",
        ));
    }
    let limit = query.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::invalid("limit", "must be 1 to 200"));
    }
    let jobs = find_jobs(
        &state,
        &JobFilter {
            state: job_state,
            queue: query.queue,
            limit,
        },
    )
    .await?;
    Ok(Json(JobList {
        items: jobs.into_iter().map(JobResponse::from).collect(),
    }))
}

/// Whether `text` can name a queue (every queue Outgrow defines does): a filter that cannot
/// is refused before it reaches the database (PostgreSQL refuses a NUL in text with an error).
fn is_queue_name(text: &str) -> bool {
    (1..=64).contains(&text.len())
        && text
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || b"_.:-".contains(&byte))
}

/// The `state` filter of a job list: absent, or one of the queue's states.
pub fn parse_job_state(text: Option<&str>) -> Result<Option<JobState>, ApiError> {
    text.map(|text| {
        JobState::parse(text)
            .ok_or_else(|| ApiError::invalid("state", "must be ready, running, done, dead or cancelled"))
    })
    .transpose()
}

/// The jobs `filter` selects, newest first (the caller has checked that an admin asks): the
/// API's job list and the admin pages' share it.
pub async fn find_jobs(state: &AppState, filter: &JobFilter) -> Result<Vec<JobRecord>, ApiError> {
    Ok(state
        .db
        .jobs()
        .list(filter)
        .await
        .map_err(crate::repo::StoreError::from)?)
}

/// One job.
#[utoipa::path(
    get, path = "/api/v1/admin/jobs/{id}", tag = "admin",
    params(("id" = uuid::Uuid, Path, description = "Job id")),
    security(("bearer" = []), ("cookie" = [])),
    responses((status = 200, body = JobResponse), Forbidden, NotFound)
)]
pub async fn get_job(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<JobResponse>, ApiError> {
    principal.require_admin(ADMINS_ONLY)?;
    let job = state
        .db
        .jobs()
        .get(path_uuid(&id, "a job id")?)
        .await
        .map_err(crate::repo::StoreError::from)?;
    job.map(|job| Json(job.into()))
        .ok_or(ApiError::NotFound("no job with this id"))
}

/// Sends a dead or cancelled job back to the queue with fresh attempts.
#[utoipa::path(
    post, path = "/api/v1/admin/jobs/{id}/retry", tag = "admin",
    params(("id" = uuid::Uuid, Path, description = "Job id")),
    security(("bearer" = []), ("cookie" = [])),
    responses((status = 200, description = "Ready again", body = JobResponse), NotDeadOrCancelled, NotFound)
)]
pub async fn retry_job(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<JobResponse>, ApiError> {
    change_job(&state, &principal, &id, JobChange::Retry)
        .await
        .map(|job| Json(job.into()))
}

/// Cancels a job that has not started.
#[utoipa::path(
    post, path = "/api/v1/admin/jobs/{id}/cancel", tag = "admin",
    params(("id" = uuid::Uuid, Path, description = "Job id")),
    security(("bearer" = []), ("cookie" = [])),
    responses((status = 200, description = "Cancelled", body = JobResponse), RunningOrFinished, NotFound)
)]
pub async fn cancel_job(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<JobResponse>, ApiError> {
    change_job(&state, &principal, &id, JobChange::Cancel)
        .await
        .map(|job| Json(job.into()))
}

/// What an operator does to one job.
#[derive(Debug, Clone, Copy)]
pub enum JobChange {
    /// Back to the queue with fresh attempts (dead or cancelled jobs only).
    Retry,
    /// Never to run (jobs waiting to run only).
    Cancel,
}

/// Applies `change` to job `id` (admins only) and answers the job as it is now: 404 when there
/// is no such job, 409 when its state does not allow the change. The API's retry and cancel
/// and the admin pages' buttons share it.
pub async fn change_job(
    state: &AppState,
    principal: &Principal,
    id: &str,
    change: JobChange,
) -> Result<JobRecord, ApiError> {
    principal.require_admin(ADMINS_ONLY)?;
    let id = path_uuid(id, "a job id")?;
    let store = state.db.jobs();
    let (changed, conflict) = match change {
        JobChange::Retry => (
            store.retry(id, Utc::now()).await,
            "only a dead or cancelled job can be retried",
        ),
        JobChange::Cancel => (
            store.cancel(id, Utc::now()).await,
            "only a job waiting to run can be cancelled",
        ),
    };
    let changed = changed.map_err(crate::repo::StoreError::from)?;
    let job = store.get(id).await.map_err(crate::repo::StoreError::from)?;
    match (job, changed) {
        (None, _) => Err(ApiError::NotFound("no job with this id")),
        (Some(job), true) => Ok(job),
        (Some(job), false) => Err(ApiError::Conflict(format!(
            "{conflict}; this one is {}",
            job.state.as_str()
        ))),
    }
}

/// Per-queue statistics.
#[derive(Debug, Serialize, ToSchema)]
pub struct QueueResponse {
    /// Queue name.
    pub queue: String,
    /// Jobs due or waiting.
    pub ready: i64,
    /// Jobs running.
    pub running: i64,
    /// Dead jobs.
    pub dead: i64,
    /// Seconds the oldest due job has waited.
    pub oldest_ready_seconds: f64,
}

impl From<QueueStats> for QueueResponse {
    fn from(stats: QueueStats) -> Self {
        Self {
            queue: stats.queue,
            ready: stats.ready,
            running: stats.running,
            dead: stats.dead,
            oldest_ready_seconds: stats.oldest_ready_seconds,
        }
    }
}

/// Depth and age of every queue.
#[utoipa::path(
    get, path = "/api/v1/admin/queues", tag = "admin",
    security(("bearer" = []), ("cookie" = [])),
    responses((status = 200, body = Vec<QueueResponse>), Forbidden)
)]
pub async fn list_queues(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<Vec<QueueResponse>>, ApiError> {
    principal.require_admin(ADMINS_ONLY)?;
    let stats = state
        .db
        .jobs()
        .stats(Utc::now())
        .await
        .map_err(crate::repo::StoreError::from)?;
    Ok(Json(stats.into_iter().map(QueueResponse::from).collect()))
}
