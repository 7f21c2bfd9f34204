//! Resumable uploads (the protocol is in `ferry_proto::package`; the rules in
//! `service::packages`).

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::StatusCode;
use ferry_proto::package::{NewUpload, Package, Upload};
use serde::Deserialize;

use super::auth::Caller;
use super::error::Result;
use super::extract::{ApiJson, ApiQuery, IdPath};
use crate::AppState;

pub async fn open(
    caller: Caller,
    State(state): State<AppState>,
    ApiJson(req): ApiJson<NewUpload>,
) -> Result<(StatusCode, Json<Upload>)> {
    let upload = state.open_upload(&caller.actor(), &req).await?;
    Ok((StatusCode::CREATED, Json(upload)))
}

pub async fn show(
    caller: Caller,
    State(state): State<AppState>,
    IdPath(id): IdPath,
) -> Result<Json<Upload>> {
    Ok(Json(state.upload(&caller.actor(), id).await?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OffsetQuery {
    offset: u64,
}

/// Appends the request body at `offset`, which must equal the bytes received so far.
pub async fn put_range(
    caller: Caller,
    State(state): State<AppState>,
    IdPath(id): IdPath,
    ApiQuery(query): ApiQuery<OffsetQuery>,
    body: Body,
) -> Result<Json<Upload>> {
    let upload = state
        .put_upload_range(&caller.actor(), id, query.offset, body.into_data_stream())
        .await?;
    Ok(Json(upload))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompleteQuery {
    /// The SHA-256 the client computed while sending, if it did not declare one up front.
    sha256: Option<String>,
}

/// Verifies the upload and turns it into a package (`201`; `200` when it already was).
pub async fn complete(
    caller: Caller,
    State(state): State<AppState>,
    IdPath(id): IdPath,
    ApiQuery(query): ApiQuery<CompleteQuery>,
) -> Result<(StatusCode, Json<Package>)> {
    let (package, new) = state
        .complete_upload(&caller.actor(), id, query.sha256.as_deref())
        .await?;
    let status = if new {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(package)))
}
