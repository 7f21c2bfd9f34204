//! Administrators enqueue, inspect and cancel jobs.

use ferry_proto::ErrorCode;
use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use ferry_proto::diagnostics::DiagnosticsRequest;
use ferry_proto::job::{Job, JobFilter, JobKind, JobPayload, NewJob};

use super::auth::Admin;
use super::error::{Error, Result};
use super::extract::{ApiJson, ApiQuery, IdPath, parse_json};
use crate::AppState;
use crate::store::{JobError, JobInsert};
use crate::time_util::{now_ms, to_ms};

pub async fn enqueue(
    admin: Admin,
    State(state): State<AppState>,
    ApiJson(req): ApiJson<NewJob>,
) -> Result<(StatusCode, Json<Job>)> {
    let now = now_ms();
    let not_before_ms = req.not_before.map(to_ms);
    let expires_at_ms = req.expires_at.map(to_ms);
    if expires_at_ms.is_some_and(|e| e <= now) {
        return Err(Error::bad(
            ErrorCode::InvalidField,
            "`expires_at` must be in the future",
        ));
    }
    if let (Some(nb), Some(ex)) = (not_before_ms, expires_at_ms)
        && ex <= nb
    {
        return Err(Error::bad(
            ErrorCode::InvalidField,
            "`expires_at` must be after `not_before`",
        ));
    }
    let max_attempts = req.max_attempts.unwrap_or(state.config.max_attempts);
    if !(1..=100).contains(&max_attempts) {
        return Err(Error::bad(
            ErrorCode::InvalidField,
            "`max_attempts` must be between 1 and 100",
        ));
    }
    let connector = state
        .store
        .get_connector(req.connector_id)
        .await?
        .ok_or_else(|| {
            Error::bad(
                ErrorCode::UnknownConnector,
                format!("no connector with id {}", req.connector_id),
            )
        })?;
    let payload = match req.kind {
        JobKind::Diagnostics => {
            let mut d: DiagnosticsRequest = if req.payload.is_null() {
                DiagnosticsRequest::default()
            } else {
                payload_of(&req.payload)?
            };
            d.validate()
                .map_err(|m| Error::bad(ErrorCode::InvalidField, m))?;
            if d.console_path.is_none() {
                d.console_path = connector.site.console_path.clone();
            }
            JobPayload::Diagnostics(d)
        }
        JobKind::Inventory => JobPayload::Inventory(inventory_payload(&connector.site)?),
        JobKind::Import => {
            return Err(Error::bad(
                ErrorCode::UseImportEndpoint,
                "import jobs are created with POST /api/v1/connectors/{id}/import",
            ));
        }
        JobKind::Push => {
            // A push job is only ever built by POST /api/v1/push, which assembles and
            // validates the whole specification against the package and the site.
            return Err(Error::bad(
                ErrorCode::UsePushEndpoint,
                "push jobs are created with POST /api/v1/push",
            ));
        }
    };
    let insert = JobInsert {
        connector_id: req.connector_id,
        payload,
        not_before_ms,
        expires_at_ms,
        max_attempts,
    };
    let job = queue_job(&state, admin.actor(), &insert).await?;
    Ok((StatusCode::CREATED, Json(job)))
}

/// Stores a job and then, and only then, tells its connector; timed jobs also wake the
/// sweeper, which wakes the connector when the job becomes due or expires it. Every route
/// that queues work goes through here.
pub(super) async fn queue_job(state: &AppState, actor: &str, insert: &JobInsert) -> Result<Job> {
    let job = state.store.insert_job(actor, insert).await?;
    state.metrics.jobs_enqueued.fetch_add(1, Ordering::Relaxed);
    if let Some(at) = insert
        .not_before_ms
        .into_iter()
        .chain(insert.expires_at_ms)
        .min()
    {
        state.schedule_sweep(at);
    }
    state.waiters.wake(insert.connector_id);
    tracing::info!(job = %job.id, connector = %job.connector_id, kind = job.kind().as_str(), "job queued");
    Ok(job)
}

/// An inventory needs the site code and console path from the connector's site settings.
fn inventory_payload(
    site: &ferry_proto::connector::SiteSettings,
) -> Result<ferry_proto::inventory::InventoryPayload> {
    let (Some(site_code), Some(console_path)) = (&site.site_code, &site.console_path) else {
        return Err(Error::bad(
            ErrorCode::IncompleteSite,
            "the connector's `site.site_code` and `site.console_path` must be set before an inventory",
        ));
    };
    ferry_sccm::spec::validate_site(site_code, console_path)
        .map_err(|e| Error::bad(ErrorCode::IncompleteSite, e.to_string()))?;
    Ok(ferry_proto::inventory::InventoryPayload {
        site_code: site_code.clone(),
        console_path: console_path.clone(),
    })
}

/// Re-reads a kind's payload so that unknown fields are named like in any other body.
fn payload_of<T: serde::de::DeserializeOwned>(value: &serde_json::Value) -> Result<T> {
    let bytes = serde_json::to_vec(value).map_err(anyhow::Error::from)?;
    parse_json::<T>(&bytes).map_err(|e| match e {
        Error::BadRequest { code, message } => Error::BadRequest {
            code,
            message: message.replacen("invalid field `", "invalid field `payload.", 1),
        },
        other => other,
    })
}

pub async fn list(
    _: Admin,
    State(state): State<AppState>,
    ApiQuery(filter): ApiQuery<JobFilter>,
) -> Result<Json<Vec<Job>>> {
    Ok(Json(state.store.list_jobs(&filter).await?))
}

pub async fn show(
    _: Admin,
    State(state): State<AppState>,
    IdPath(id): IdPath,
) -> Result<Json<Job>> {
    state
        .store
        .get_job(id, true)
        .await?
        .map(Json)
        .ok_or(Error::NotFound("job"))
}

pub async fn cancel(
    admin: Admin,
    State(state): State<AppState>,
    IdPath(id): IdPath,
) -> Result<Json<Job>> {
    let job = state
        .store
        .cancel_job(admin.actor(), id)
        .await
        .map_err(|e| match e {
            JobError::Finished(s) => Error::Conflict {
                code: ErrorCode::JobFinished,
                message: format!("the job has already finished ({s}); there is nothing to cancel"),
            },
            other => other.into(),
        })?;
    Ok(Json(job))
}

/// `POST /api/v1/connectors/{id}/inventory`: queue a refresh of the connector's site inventory.
pub async fn refresh_inventory(
    admin: Admin,
    state: State<AppState>,
    IdPath(id): IdPath,
) -> Result<(StatusCode, Json<Job>)> {
    let new = NewJob {
        connector_id: id,
        kind: JobKind::Inventory,
        payload: serde_json::Value::Null,
        not_before: None,
        expires_at: None,
        max_attempts: None,
    };
    enqueue(admin, state, ApiJson(new)).await
}

/// `POST /api/v1/connectors/{id}/import`: queue an import of applications from the connector's
/// latest inventory, named by model name or by (unique) display name.
pub async fn import(
    admin: Admin,
    State(state): State<AppState>,
    IdPath(id): IdPath,
    ApiJson(req): ApiJson<ferry_proto::inventory::ImportRequest>,
) -> Result<(StatusCode, Json<Job>)> {
    use ferry_proto::inventory::{ImportPayload, ImportTarget, InventoryResult};
    let connector = state
        .store
        .get_connector(id)
        .await?
        .ok_or(Error::NotFound("connector"))?;
    if req.applications.is_empty() || req.applications.len() > 1000 {
        return Err(Error::bad(
            ErrorCode::InvalidField,
            "`applications` must name 1 to 1000 applications",
        ));
    }
    let inventory = state.store.inventory(id).await?.ok_or_else(|| {
        Error::bad(
            ErrorCode::NoInventory,
            "refresh the connector's inventory first",
        )
    })?;
    let inventory: InventoryResult =
        serde_json::from_value(inventory).map_err(anyhow::Error::from)?;
    let mut targets = Vec::new();
    for wanted in &req.applications {
        let by_model: Vec<_> = inventory
            .applications
            .iter()
            .filter(|a| &a.model_name == wanted)
            .collect();
        let matches = if by_model.is_empty() {
            inventory
                .applications
                .iter()
                .filter(|a| &a.name == wanted)
                .collect()
        } else {
            by_model
        };
        match matches.as_slice() {
            [one] => targets.push(ImportTarget {
                model_name: one.model_name.clone(),
                ci_id: one.ci_id,
                name: one.name.clone(),
            }),
            [] => {
                return Err(Error::bad(
                    ErrorCode::UnknownApplication,
                    format!("no application {wanted:?} in the latest inventory"),
                ));
            }
            _ => {
                return Err(Error::bad(
                    ErrorCode::AmbiguousApplication,
                    format!(
                        "{} applications are named {wanted:?}; name one by its model name",
                        matches.len()
                    ),
                ));
            }
        }
    }
    let (Some(site_code), Some(console_path)) = (
        connector.site.site_code.clone(),
        connector.site.console_path.clone(),
    ) else {
        return Err(Error::bad(
            ErrorCode::IncompleteSite,
            "the connector's `site.site_code` and `site.console_path` must be set",
        ));
    };
    let payload = ImportPayload {
        site_code,
        console_path,
        share_path: connector.site.share_path.clone(),
        applications: targets,
    };
    let insert = JobInsert {
        connector_id: id,
        payload: JobPayload::Import(payload),
        not_before_ms: None,
        expires_at_ms: None,
        max_attempts: state.config.max_attempts,
    };
    let job = queue_job(&state, admin.actor(), &insert).await?;
    Ok((StatusCode::CREATED, Json(job)))
}
