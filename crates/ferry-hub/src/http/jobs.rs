//! Jobs: administrators enqueue, inspect and cancel them; connectors long-poll for them and
//! report on them under their lease.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use ferry_proto::job::{Job, JobFilter, JobReport, LeaseRef, LeaseStatus, NewJob, ProgressReport};
use serde::Deserialize;

use super::auth::Caller;
use super::error::Result;
use super::extract::{ApiJson, ApiQuery, IdPath, read_json};
use crate::AppState;

pub async fn enqueue(
    caller: Caller,
    State(state): State<AppState>,
    ApiJson(req): ApiJson<NewJob>,
) -> Result<(StatusCode, Json<Job>)> {
    let job = state.enqueue_job(&caller.actor(), &req).await?;
    Ok((StatusCode::CREATED, Json(job)))
}

pub async fn list(
    State(state): State<AppState>,
    ApiQuery(filter): ApiQuery<JobFilter>,
) -> Result<Json<Vec<Job>>> {
    Ok(Json(state.jobs(&filter).await?))
}

pub async fn show(State(state): State<AppState>, IdPath(id): IdPath) -> Result<Json<Job>> {
    Ok(Json(state.job(id).await?))
}

pub async fn cancel(
    caller: Caller,
    State(state): State<AppState>,
    IdPath(id): IdPath,
) -> Result<Json<Job>> {
    Ok(Json(state.cancel_job(&caller.actor(), id).await?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NextQuery {
    /// Seconds to hold the request when no job is waiting: 0 answers at once (interval
    /// polling), 1..=max_hold_secs holds. Absent: the hub's default.
    hold: Option<u32>,
}

/// The long poll: `200` with a leased job, or `204` when the hold ran out.
pub async fn next(
    caller: Caller,
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<NextQuery>,
) -> Result<Response> {
    Ok(
        match state.next_job(caller.connector()?, query.hold).await? {
            Some(job) => (StatusCode::OK, Json(job)).into_response(),
            None => StatusCode::NO_CONTENT.into_response(),
        },
    )
}

pub async fn renew(
    caller: Caller,
    State(state): State<AppState>,
    IdPath(job): IdPath,
    ApiJson(req): ApiJson<LeaseRef>,
) -> Result<Json<LeaseStatus>> {
    Ok(Json(
        state.renew_lease(caller.connector()?, job, &req).await?,
    ))
}

pub async fn progress(
    caller: Caller,
    State(state): State<AppState>,
    IdPath(job): IdPath,
    ApiJson(req): ApiJson<ProgressReport>,
) -> Result<Json<LeaseStatus>> {
    Ok(Json(
        state
            .report_progress(caller.connector()?, job, &req)
            .await?,
    ))
}

/// A result may be tens of megabytes (a large site's inventory), so nothing is read before
/// the job is known to be this connector's, and large bodies are read a few at a time.
pub async fn result(
    caller: Caller,
    State(state): State<AppState>,
    IdPath(job): IdPath,
    request: axum::extract::Request,
) -> Result<Json<Job>> {
    let connector = caller.connector()?;
    state.check_report_target(connector, job).await?;
    let _slot = state.large_body_slot(request.headers()).await?;
    let req: JobReport = read_json(request, state.config.max_result_bytes).await?;
    Ok(Json(state.finish_job(&caller.actor(), job, &req).await?))
}

pub async fn release(
    caller: Caller,
    State(state): State<AppState>,
    IdPath(job): IdPath,
    ApiJson(req): ApiJson<LeaseRef>,
) -> Result<StatusCode> {
    state.release_job(caller.connector()?, job, &req).await?;
    Ok(StatusCode::NO_CONTENT)
}
