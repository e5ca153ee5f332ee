//! `GET /admin/jobs`: the job queue, filtered by state, with "Retry" (dead or cancelled jobs)
//! and "Cancel" (jobs waiting to run) buttons. The list and both changes are the admin API's
//! own functions (`http::admin`), so the queue's rules are written once.

use askama::Template;
use axum::{
    Form,
    extract::{Path, Query, State},
    http::{HeaderMap, StatusCode, Uri},
    response::Response,
};
use outgrow_platform::jobs::{JobFilter, JobRecord, JobState};
use serde::Deserialize;
use uuid::Uuid;

use super::{layout, when};
use crate::{
    http::web::{
        csrf,
        error::PageError,
        page::{Audience, Layout, render, see_other},
        visitor::Admin,
    },
    http::{
        admin::{JobChange, change_job, find_jobs, parse_job_state},
        authn::Principal,
        error::ApiError,
    },
    state::AppState,
};

/// Jobs shown at once, newest first.
const LIST_LIMIT: u32 = 100;

/// A row of the job list.
#[derive(Debug, Clone)]
pub struct JobLine {
    pub id: Uuid,
    /// The kind, e.g. `email.send`.
    pub kind: String,
    pub state: &'static str,
    /// `3 of 8`.
    pub attempts: String,
    pub run_at: String,
    pub last_error: String,
    pub retryable: bool,
    pub cancellable: bool,
}

impl From<JobRecord> for JobLine {
    fn from(job: JobRecord) -> Self {
        Self {
            id: job.id,
            kind: job.name,
            state: job.state.as_str(),
            attempts: format!("{} of {}", job.attempts, job.max_attempts),
            run_at: when(job.run_at),
            last_error: job.last_error.unwrap_or_default(),
            // The states `http::admin::change_job` accepts for each change.
            retryable: matches!(job.state, JobState::Dead | JobState::Cancelled),
            cancellable: job.state == JobState::Ready,
        }
    }
}

/// The list's query string: the filter, and what was just done.
#[derive(Debug, Default, Deserialize)]
pub struct JobsQuery {
    /// A job state; empty or absent for all.
    #[serde(default)]
    pub state: String,
    /// `retried` or `cancelled` after a button.
    pub done: Option<String>,
}

#[derive(Template)]
#[template(path = "admin/jobs.html")]
struct JobsPage {
    layout: Layout,
    /// The filter's state (`""` for all).
    state: &'static str,
    states: [&'static str; 5],
    jobs: Vec<JobLine>,
    /// Why the last button did nothing.
    refusal: Option<String>,
}

/// `GET /admin/jobs?state=`: the newest jobs, in one state or all.
pub async fn show_jobs(
    State(state): State<AppState>,
    Admin(principal): Admin,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, PageError> {
    let Query(query) = Query::<JobsQuery>::try_from_uri(&uri)
        .map_err(|_| PageError::BadRequest("This job list link is malformed.".to_owned()))?;
    let filter = state_filter(&query.state)?;
    let notice = match query.done.as_deref() {
        Some("retried") => Some("Job sent back to the queue"),
        Some("cancelled") => Some("Job cancelled"),
        _ => None,
    };
    let mut page = jobs_page(&state, &principal, filter, None).await?;
    page.layout.notice = notice.map(str::to_owned);
    render(&page, Audience::Private, &headers)
}

/// The list in `filter`'s state, with `refusal` shown above it.
async fn jobs_page(
    state: &AppState,
    principal: &Principal,
    filter: Option<JobState>,
    refusal: Option<String>,
) -> Result<JobsPage, PageError> {
    let jobs = find_jobs(
        state,
        &JobFilter {
            state: filter,
            queue: None,
            limit: LIST_LIMIT,
        },
    )
    .await?;
    Ok(JobsPage {
        layout: layout(state, principal, "Jobs", ""),
        state: filter.map_or("", JobState::as_str),
        states: JobState::ALL.map(JobState::as_str),
        jobs: jobs.into_iter().map(JobLine::from).collect(),
        refusal,
    })
}

/// The `state` filter as the API reads it (`""` is all).
fn state_filter(text: &str) -> Result<Option<JobState>, PageError> {
    let text = Some(text.trim()).filter(|text| !text.is_empty());
    Ok(parse_job_state(text)?)
}

/// A retry or cancel button: the CSRF token and the filter to return to.
#[derive(Debug, Deserialize)]
pub struct JobActionForm {
    /// Absent counts as wrong (the answer is the CSRF refusal page, not a parse error).
    #[serde(default)]
    pub csrf: String,
    #[serde(default)]
    pub state: String,
}

/// `POST /admin/jobs/{id}/retry`: a dead or cancelled job goes back to the queue.
pub async fn retry_job(
    State(state): State<AppState>,
    Admin(principal): Admin,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<JobActionForm>,
) -> Result<Response, PageError> {
    act_on_job(&state, &principal, &headers, &id, &form, JobChange::Retry).await
}

/// `POST /admin/jobs/{id}/cancel`: a job waiting to run never will.
pub async fn cancel_job(
    State(state): State<AppState>,
    Admin(principal): Admin,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<JobActionForm>,
) -> Result<Response, PageError> {
    act_on_job(&state, &principal, &headers, &id, &form, JobChange::Cancel).await
}

/// Applies `change` with the API's code: 303 back to the same filter with a notice, or the
/// list again with the reason (409) when the job's state does not allow it.
async fn act_on_job(
    state: &AppState,
    principal: &Principal,
    headers: &HeaderMap,
    id: &str,
    form: &JobActionForm,
    change: JobChange,
) -> Result<Response, PageError> {
    csrf::check(state, principal.session_id.as_bytes(), &form.csrf)?;
    let filter = state_filter(&form.state)?;
    match change_job(state, principal, id, change).await {
        Ok(_) => {
            let done = match change {
                JobChange::Retry => "retried",
                JobChange::Cancel => "cancelled",
            };
            let location = match filter {
                Some(filter) => format!("/admin/jobs?state={}&done={done}", filter.as_str()),
                None => format!("/admin/jobs?done={done}"),
            };
            Ok(see_other(&location))
        }
        Err(ApiError::Conflict(reason)) => {
            let page = jobs_page(state, principal, filter, Some(reason)).await?;
            let mut response = render(&page, Audience::Private, headers)?;
            *response.status_mut() = StatusCode::CONFLICT;
            Ok(response)
        }
        Err(ApiError::BadRequest(_) | ApiError::Validation(_)) => {
            Err(PageError::NotFound("There is no such job."))
        }
        Err(other) => Err(other.into()),
    }
}
