//! Connectors, their site settings and secrets, and their sites' applications.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use ferry_proto::connector::{Connector, ConnectorCredentials, NewConnector, UpdateConnector};
use ferry_proto::inventory::{ImportRequest, InventoryResult};
use ferry_proto::job::Job;

use super::auth::Caller;
use super::error::Result;
use super::extract::{ApiJson, IdPath};
use crate::AppState;

pub async fn register(
    caller: Caller,
    State(state): State<AppState>,
    ApiJson(req): ApiJson<NewConnector>,
) -> Result<(StatusCode, Json<ConnectorCredentials>)> {
    let created = state.register_connector(&caller.actor(), &req).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

pub async fn list(State(state): State<AppState>) -> Result<Json<Vec<Connector>>> {
    Ok(Json(state.connectors().await?))
}

pub async fn show(State(state): State<AppState>, IdPath(id): IdPath) -> Result<Json<Connector>> {
    Ok(Json(state.connector(id).await?))
}

pub async fn update(
    caller: Caller,
    State(state): State<AppState>,
    IdPath(id): IdPath,
    ApiJson(req): ApiJson<UpdateConnector>,
) -> Result<Json<Connector>> {
    Ok(Json(
        state.update_connector(&caller.actor(), id, &req).await?,
    ))
}

pub async fn rotate_secret(
    caller: Caller,
    State(state): State<AppState>,
    IdPath(id): IdPath,
) -> Result<Json<ConnectorCredentials>> {
    Ok(Json(
        state.rotate_connector_secret(&caller.actor(), id).await?,
    ))
}

/// The connector's site as of its latest inventory.
pub async fn applications(
    State(state): State<AppState>,
    IdPath(id): IdPath,
) -> Result<Json<InventoryResult>> {
    Ok(Json(state.site_applications(id).await?))
}

/// Queues a refresh of the connector's site inventory.
pub async fn refresh_inventory(
    caller: Caller,
    State(state): State<AppState>,
    IdPath(id): IdPath,
) -> Result<(StatusCode, Json<Job>)> {
    let job = state.refresh_inventory(&caller.actor(), id).await?;
    Ok((StatusCode::CREATED, Json(job)))
}

/// Queues an import of applications from the connector's latest inventory.
pub async fn import(
    caller: Caller,
    State(state): State<AppState>,
    IdPath(id): IdPath,
    ApiJson(req): ApiJson<ImportRequest>,
) -> Result<(StatusCode, Json<Job>)> {
    let job = state.import_applications(&caller.actor(), id, &req).await?;
    Ok((StatusCode::CREATED, Json(job)))
}
