//! The connector's side of the queue: long-poll for the next job, then renew, report
//! progress, report the result, or release the job when shutting down.

use ferry_proto::ErrorCode;
use std::pin::pin;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use ferry_proto::job::{Job, JobReport, JobState, LeaseRef, LeaseStatus, ProgressReport};
use serde::Deserialize;

use super::auth::ConnectorAuth;
use super::error::{Error, Result};
use super::extract::{ApiJson, ApiQuery, IdPath, ResultJson};
use crate::AppState;
use crate::store::JobError;

const MAX_STEP: usize = 64;
const MAX_MESSAGE: usize = 4096;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NextQuery {
    /// Seconds to hold the request when no job is waiting: 0 answers at once (interval
    /// polling), 1..=max_hold_secs holds. Absent: the hub's default.
    hold: Option<u32>,
}

/// Counts a long poll as waiting while it lives, however it ends (even if the client goes away
/// and axum drops the handler future).
struct WaitingGuard<'a>(&'a std::sync::atomic::AtomicI64);

impl Drop for WaitingGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

pub async fn next(
    who: ConnectorAuth,
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<NextQuery>,
) -> Result<Response> {
    let max = state.config.max_hold_secs;
    let hold = query.hold.unwrap_or(state.config.default_hold_secs);
    if hold > max {
        return Err(Error::bad(
            ErrorCode::InvalidQuery,
            format!("`hold` must be between 0 and {max} seconds"),
        ));
    }
    state
        .metrics
        .long_polls_started
        .fetch_add(1, Ordering::Relaxed);
    state
        .metrics
        .long_polls_waiting
        .fetch_add(1, Ordering::Relaxed);
    let _guard = WaitingGuard(&state.metrics.long_polls_waiting);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(u64::from(hold));
    let slot = state.waiters.get(who.id);
    let mut shutdown = state.shutdown.clone();
    let lease_ms = i64::from(state.config.lease_secs) * 1000;
    loop {
        // Register for wake-ups before looking, so an enqueue between the look and the
        // sleep is not missed.
        let mut notified = pin!(slot.notify.notified());
        notified.as_mut().enable();
        let epoch = slot.epoch();
        let due = !slot.known_empty(epoch) && state.store.has_due_job(who.id).await?;
        if !due {
            slot.found_empty(epoch);
        }
        if let Some(job) = if due {
            state.store.lease_next(who.id, lease_ms).await?
        } else {
            None
        } {
            state.metrics.jobs_leased.fetch_add(1, Ordering::Relaxed);
            state.schedule_sweep(crate::time_util::to_ms(job.lease_expires_at));
            tracing::debug!(job = %job.id, connector = %who.id, attempt = job.attempt, "job leased");
            return Ok((StatusCode::OK, Json(job)).into_response());
        }
        if *shutdown.borrow() {
            return Err(Error::ShuttingDown);
        }
        tokio::select! {
            _ = notified => {
                // Woken: the connector may have been disabled or re-keyed meanwhile.
                match super::auth::cached_auth(&state, who.id).await? {
                    Some(row) if row.enabled => continue,
                    Some(_) => return Err(Error::Forbidden("this connector is disabled")),
                    None => return Err(Error::Unauthorized("invalid connector credentials")),
                }
            }
            _ = tokio::time::sleep_until(deadline) => break,
            _ = shutdown.changed() => return Err(Error::ShuttingDown),
        }
    }
    state
        .metrics
        .long_polls_empty
        .fetch_add(1, Ordering::Relaxed);
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn renew(
    who: ConnectorAuth,
    State(state): State<AppState>,
    IdPath(job): IdPath,
    ApiJson(req): ApiJson<LeaseRef>,
) -> Result<Json<LeaseStatus>> {
    let lease_ms = i64::from(state.config.lease_secs) * 1000;
    let status = state
        .store
        .renew_lease(job, who.id, req.lease_token, lease_ms)
        .await
        .map_err(|e| refused(&state, e))?;
    Ok(Json(status))
}

pub async fn progress(
    who: ConnectorAuth,
    State(state): State<AppState>,
    IdPath(job): IdPath,
    ApiJson(req): ApiJson<ProgressReport>,
) -> Result<Json<LeaseStatus>> {
    if req.step.is_empty() || req.step.chars().count() > MAX_STEP {
        return Err(Error::bad(
            ErrorCode::InvalidField,
            format!("`step` must be 1 to {MAX_STEP} characters"),
        ));
    }
    if req
        .message
        .as_ref()
        .is_some_and(|m| m.chars().count() > MAX_MESSAGE)
    {
        return Err(Error::bad(
            ErrorCode::InvalidField,
            format!("`message` must be at most {MAX_MESSAGE} characters"),
        ));
    }
    if req.percent.is_some_and(|p| p > 100) {
        return Err(Error::bad(
            ErrorCode::InvalidField,
            "`percent` must be between 0 and 100",
        ));
    }
    let lease_ms = i64::from(state.config.lease_secs) * 1000;
    let status = state
        .store
        .progress(
            job,
            who.id,
            req.lease_token,
            lease_ms,
            &req.step,
            req.message.as_deref(),
            req.percent,
        )
        .await
        .map_err(|e| refused(&state, e))?;
    Ok(Json(status))
}

pub async fn result(
    who: ConnectorAuth,
    State(state): State<AppState>,
    IdPath(job): IdPath,
    ResultJson(req): ResultJson<JobReport>,
) -> Result<Json<Job>> {
    if req
        .error
        .as_ref()
        .is_some_and(|m| m.chars().count() > MAX_MESSAGE)
    {
        return Err(Error::bad(
            ErrorCode::InvalidField,
            format!("`error` must be at most {MAX_MESSAGE} characters"),
        ));
    }
    let (done, replay) = state
        .store
        .finish(job, who.id, &req)
        .await
        .map_err(|e| refused(&state, e))?;
    if replay {
        // Already recorded, and already acted on.
        return Ok(Json(done));
    }
    state.metrics.jobs_finished.fetch_add(1, Ordering::Relaxed);
    if done.kind() == ferry_proto::job::JobKind::Inventory && done.state == JobState::Succeeded {
        // The job's result is the site's inventory: it becomes what the hub shows.
        if let Some(result) = &done.result {
            // Stamped with the job's creation, so an older inventory reported late never
            // replaces a newer one.
            let taken_at = crate::time_util::to_ms(done.created_at);
            state
                .store
                .save_inventory(who.id, done.id, taken_at, result)
                .await?;
        }
    }
    if done.kind() == ferry_proto::job::JobKind::Import && done.state == JobState::Succeeded {
        // Each imported package carries a link to the application it came from and the
        // application's ConfigMgr metadata.
        let imports = done
            .result
            .clone()
            .and_then(|r| serde_json::from_value::<ferry_proto::inventory::ImportResult>(r).ok())
            .map(|r| r.imports)
            .unwrap_or_default();
        for item in imports {
            let source = ferry_proto::package::ImportSource {
                connector_id: who.id,
                job_id: done.id,
                model_name: item.model_name,
                ci_id: item.ci_id,
                name: item.name,
                content_location: item.content_location,
                sccm: item.metadata,
            };
            if !state
                .store
                .set_package_source(item.package_id, who.id, &source)
                .await?
            {
                tracing::warn!(connector = %who.id, package = %item.package_id, "import named a package this connector did not upload; ignored");
            }
        }
    }
    tracing::info!(job = %job, connector = %who.id, state = done.state.as_str(), "job finished");
    Ok(Json(done))
}

pub async fn release(
    who: ConnectorAuth,
    State(state): State<AppState>,
    IdPath(job): IdPath,
    ApiJson(req): ApiJson<LeaseRef>,
) -> Result<StatusCode> {
    let new_state = state
        .store
        .release(job, who.id, req.lease_token)
        .await
        .map_err(|e| refused(&state, e))?;
    if new_state == JobState::Queued {
        state.waiters.wake(who.id);
    }
    tracing::info!(job = %job, connector = %who.id, "job released by its connector");
    Ok(StatusCode::NO_CONTENT)
}

fn refused(state: &AppState, e: JobError) -> Error {
    if matches!(e, JobError::StaleLease | JobError::Finished(_)) {
        state
            .metrics
            .stale_reports_refused
            .fetch_add(1, Ordering::Relaxed);
    }
    e.into()
}
