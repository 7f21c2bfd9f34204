//! `POST /api/v1/push`: the push specification `ferry-sccm` proposes from the package's
//! metadata and the connector's site settings, with the caller's overrides, validated before
//! anything is queued; a dry run is answered with the exact script, otherwise a `push` job is
//! queued.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use ferry_proto::ErrorCode;
use ferry_proto::job::JobPayload;
use ferry_proto::push::{PushPayload, PushPreview, PushRequest};

use super::auth::Admin;
use super::error::{Error, Result};
use super::extract::ApiJson;
use crate::AppState;
use crate::store::JobInsert;

pub async fn push(
    admin: Admin,
    State(state): State<AppState>,
    ApiJson(req): ApiJson<PushRequest>,
) -> Result<Response> {
    let package = state
        .store
        .get_package(req.package_id)
        .await?
        .ok_or_else(|| {
            Error::bad(
                ErrorCode::UnknownPackage,
                format!("no package with id {}", req.package_id),
            )
        })?;
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
    let spec = ferry_sccm::spec::propose(
        &package.metadata,
        &connector.site,
        admin.actor(),
        time::OffsetDateTime::now_utc(),
        req.spec.as_ref(),
    )
    .map_err(|e| Error::bad(ErrorCode::InvalidSpec, e.to_string()))?;
    let script = ferry_sccm::scripts::push_script(&spec)
        .map_err(|e| Error::bad(ErrorCode::InvalidSpec, e.to_string()))?;
    if req.dry_run {
        let preview = PushPreview {
            spec,
            script: ferry_sccm::generate(&script),
        };
        return Ok((StatusCode::OK, Json(preview)).into_response());
    }
    let payload = PushPayload {
        package_id: package.id,
        sha256: package.sha256.clone(),
        size: package.size,
        spec,
    };
    let insert = JobInsert {
        connector_id: connector.id,
        payload: JobPayload::Push(Box::new(payload)),
        not_before_ms: None,
        expires_at_ms: None,
        max_attempts: state.config.max_attempts,
    };
    let job = super::admin_jobs::queue_job(&state, admin.actor(), &insert).await?;
    Ok((StatusCode::CREATED, Json(job)).into_response())
}
