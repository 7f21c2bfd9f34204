//! Administrators' routes for enrolment secrets, devices, collections and deployments.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use ferry_proto::agent::TokenResponse;
use ferry_proto::ops::{
    Collection, CreatedEnrollmentSecret, Deployment, Device, EnrollmentSecret, ImportDevices,
    ImportedDevice, MembershipChange, NewCollection, NewDeployment, NewEnrollmentSecret,
    UpdateDevice,
};
use uuid::Uuid;

use super::auth::Caller;
use super::error::Result;
use super::extract::{ApiJson, ApiQuery, IdPath, OptionalJson};
use crate::AppState;

// ----- enrolment secrets ------------------------------------------------------------------

pub async fn create_secret(
    caller: Caller,
    State(state): State<AppState>,
    ApiJson(new): ApiJson<NewEnrollmentSecret>,
) -> Result<(StatusCode, Json<CreatedEnrollmentSecret>)> {
    let created = state
        .create_enrollment_secret(&caller.actor(), &new)
        .await?;
    Ok((StatusCode::CREATED, Json(created)))
}

pub async fn list_secrets(State(state): State<AppState>) -> Result<Json<Vec<EnrollmentSecret>>> {
    Ok(Json(state.enrollment_secrets().await?))
}

pub async fn revoke_secret(
    caller: Caller,
    State(state): State<AppState>,
    IdPath(id): IdPath,
) -> Result<Json<EnrollmentSecret>> {
    Ok(Json(
        state.revoke_enrollment_secret(&caller.actor(), id).await?,
    ))
}

// ----- devices ----------------------------------------------------------------------------

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceQuery {
    collection: Option<Uuid>,
}

pub async fn list_devices(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<DeviceQuery>,
) -> Result<Json<Vec<Device>>> {
    Ok(Json(state.devices(q.collection).await?))
}

pub async fn show_device(
    State(state): State<AppState>,
    IdPath(id): IdPath,
) -> Result<Json<Device>> {
    Ok(Json(state.device(id).await?))
}

/// `PATCH /api/v1/devices/{id}`: enable or disable.
pub async fn update_device(
    caller: Caller,
    State(state): State<AppState>,
    IdPath(id): IdPath,
    ApiJson(patch): ApiJson<UpdateDevice>,
) -> Result<Json<Device>> {
    Ok(Json(
        state.update_device(&caller.actor(), id, &patch).await?,
    ))
}

/// `POST /api/v1/devices/{id}/approve-inventory`: the device's reported hostname, domain, OS
/// and architecture become what rule collections match.
pub async fn approve_inventory(
    caller: Caller,
    State(state): State<AppState>,
    IdPath(id): IdPath,
    OptionalJson(req): OptionalJson<ferry_proto::ops::ApproveInventory>,
) -> Result<Json<Device>> {
    let expected = req.and_then(|r| r.expected);
    Ok(Json(
        state
            .approve_inventory(&caller.actor(), id, expected.as_ref())
            .await?,
    ))
}

/// `POST /api/v1/devices/{id}/rotate-token`: a new token for a device whose token may have
/// leaked; the old one stops working at once.
pub async fn rotate_device_token(
    caller: Caller,
    State(state): State<AppState>,
    IdPath(id): IdPath,
) -> Result<Json<TokenResponse>> {
    Ok(Json(state.rotate_device_token(&caller.actor(), id).await?))
}

/// `POST /api/v1/devices/import`: pre-registers devices; their tokens are in the answer.
pub async fn import_devices(
    caller: Caller,
    State(state): State<AppState>,
    ApiJson(req): ApiJson<ImportDevices>,
) -> Result<(StatusCode, Json<Vec<ImportedDevice>>)> {
    let created = state.import_devices(&caller.actor(), &req).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

// ----- collections ------------------------------------------------------------------------

pub async fn create_collection(
    caller: Caller,
    State(state): State<AppState>,
    ApiJson(new): ApiJson<NewCollection>,
) -> Result<(StatusCode, Json<Collection>)> {
    let created = state.create_collection(&caller.actor(), &new).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

pub async fn list_collections(State(state): State<AppState>) -> Result<Json<Vec<Collection>>> {
    Ok(Json(state.collections().await?))
}

pub async fn show_collection(
    State(state): State<AppState>,
    IdPath(id): IdPath,
) -> Result<Json<Collection>> {
    Ok(Json(state.collection(id).await?))
}

pub async fn delete_collection(
    caller: Caller,
    State(state): State<AppState>,
    IdPath(id): IdPath,
) -> Result<StatusCode> {
    state.delete_collection(&caller.actor(), id).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn change_members(
    caller: Caller,
    State(state): State<AppState>,
    IdPath(id): IdPath,
    ApiJson(change): ApiJson<MembershipChange>,
) -> Result<Json<Collection>> {
    Ok(Json(
        state.change_members(&caller.actor(), id, &change).await?,
    ))
}

// ----- deployments ------------------------------------------------------------------------

pub async fn create_deployment(
    caller: Caller,
    State(state): State<AppState>,
    ApiJson(new): ApiJson<NewDeployment>,
) -> Result<(StatusCode, Json<Deployment>)> {
    let created = state.create_deployment(&caller.actor(), &new).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

pub async fn list_deployments(State(state): State<AppState>) -> Result<Json<Vec<Deployment>>> {
    Ok(Json(state.deployments().await?))
}

pub async fn delete_deployment(
    caller: Caller,
    State(state): State<AppState>,
    IdPath(id): IdPath,
) -> Result<StatusCode> {
    state.delete_deployment(&caller.actor(), id).await?;
    Ok(StatusCode::NO_CONTENT)
}
