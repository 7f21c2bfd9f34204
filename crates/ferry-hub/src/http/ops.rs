//! Client operations: start one, watch its counts live, read per-device results, cancel it.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use ferry_proto::ops::{NewOperation, OpWatch, Operation, TargetResult};

use super::auth::Caller;
use super::error::Result;
use super::extract::{ApiJson, ApiQuery, IdPath};
use crate::AppState;

/// `POST /api/v1/ops`: starts an operation; connected targets get it at once.
pub async fn start(
    caller: Caller,
    State(state): State<AppState>,
    ApiJson(new): ApiJson<NewOperation>,
) -> Result<(StatusCode, Json<Operation>)> {
    let op = state.start_op(&caller.actor(), new).await?;
    Ok((StatusCode::CREATED, Json(op)))
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    limit: Option<u32>,
}

pub async fn list(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<Vec<Operation>>> {
    Ok(Json(state.ops(q.limit).await?))
}

pub async fn show(State(state): State<AppState>, IdPath(id): IdPath) -> Result<Json<Operation>> {
    Ok(Json(state.op(id).await?))
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResultsQuery {
    state: Option<String>,
    limit: Option<u32>,
    offset: Option<u32>,
}

/// `GET /api/v1/ops/{id}/results?state=&limit=&offset=`: per-device records.
pub async fn results(
    State(state): State<AppState>,
    IdPath(id): IdPath,
    ApiQuery(q): ApiQuery<ResultsQuery>,
) -> Result<Json<Vec<TargetResult>>> {
    Ok(Json(
        state
            .op_results(id, q.state.as_deref(), q.limit, q.offset)
            .await?,
    ))
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatchQuery {
    /// The version the caller has; the answer waits until the operation moves past it.
    since: Option<u64>,
    hold: Option<u32>,
}

/// `GET /api/v1/ops/{id}/watch?since=V&hold=S`: a long poll for live counts.
pub async fn watch(
    State(state): State<AppState>,
    IdPath(id): IdPath,
    ApiQuery(q): ApiQuery<WatchQuery>,
) -> Result<Json<OpWatch>> {
    Ok(Json(state.watch_op(id, q.since, q.hold).await?))
}

/// `POST /api/v1/ops/{id}/cancel`.
pub async fn cancel(
    caller: Caller,
    State(state): State<AppState>,
    IdPath(id): IdPath,
) -> Result<Json<Operation>> {
    Ok(Json(state.cancel_op(&caller.actor(), id).await?))
}
