//! Administrators' routes for enrolment secrets, devices, collections and deployments.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use ferry_proto::ErrorCode;
use ferry_proto::agent::TokenResponse;
use ferry_proto::ops::{
    Collection, CreatedEnrollmentSecret, Deployment, Device, EnrollmentSecret, MembershipChange,
    NewCollection, NewDeployment, NewEnrollmentSecret, UpdateDevice,
};
use uuid::Uuid;

use super::auth::Admin;
use super::error::{Error, Result};
use super::extract::{ApiJson, ApiQuery, IdPath};
use crate::AppState;
use crate::collections;
use crate::secrets::generate_secret;
use crate::store::CatalogError;
use crate::time_util::now_ms;

/// Longest name of a secret or collection.
const MAX_NAME: usize = 200;

fn check_name(field: &'static str, name: &str) -> Result<()> {
    if name.trim().is_empty()
        || name.chars().count() > MAX_NAME
        || name.chars().any(char::is_control)
    {
        return Err(Error::bad(
            ErrorCode::InvalidName,
            format!("`{field}` must be 1–{MAX_NAME} printable characters"),
        ));
    }
    Ok(())
}

impl From<CatalogError> for Error {
    fn from(e: CatalogError) -> Self {
        match e {
            CatalogError::NotFound => Error::NotFound("collection"),
            CatalogError::NameTaken(_) => Error::Conflict {
                code: ErrorCode::NameTaken,
                message: e.to_string(),
            },
            CatalogError::UnknownDevice(_)
            | CatalogError::UnknownCollection(_)
            | CatalogError::UnknownPackage(_) => Error::Unprocessable {
                code: ErrorCode::UnknownReference,
                message: e.to_string(),
            },
            CatalogError::NotStatic => Error::Conflict {
                code: ErrorCode::RuleCollection,
                message: e.to_string(),
            },
            CatalogError::Store(s) => s.into(),
        }
    }
}

// ----- enrolment secrets ------------------------------------------------------------------

pub async fn create_secret(
    admin: Admin,
    State(state): State<AppState>,
    ApiJson(new): ApiJson<NewEnrollmentSecret>,
) -> Result<(StatusCode, Json<CreatedEnrollmentSecret>)> {
    check_name("name", &new.name)?;
    let expires_at = match new.expires_in_secs {
        Some(0) => {
            return Err(Error::bad(
                ErrorCode::InvalidExpiry,
                "`expires_in_secs` must be at least 1",
            ));
        }
        Some(s) if s > 10 * 365 * 24 * 3600 => {
            return Err(Error::bad(
                ErrorCode::InvalidExpiry,
                "`expires_in_secs` is more than ten years",
            ));
        }
        Some(s) => Some(now_ms() + (s as i64) * 1000),
        None => None,
    };
    if new.max_uses == Some(0) {
        return Err(Error::bad(
            ErrorCode::InvalidMaxUses,
            "`max_uses` must be at least 1",
        ));
    }
    let id = Uuid::new_v4();
    let secret = generate_secret();
    let info = state
        .store
        .create_enrollment_secret(
            admin.actor(),
            id,
            new.name.trim(),
            &state.key.hash(&secret),
            expires_at,
            new.max_uses,
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedEnrollmentSecret {
            info,
            secret: format!("{id}:{secret}"),
        }),
    ))
}

pub async fn list_secrets(
    _: Admin,
    State(state): State<AppState>,
) -> Result<Json<Vec<EnrollmentSecret>>> {
    Ok(Json(state.store.list_enrollment_secrets().await?))
}

pub async fn revoke_secret(
    admin: Admin,
    State(state): State<AppState>,
    IdPath(id): IdPath,
) -> Result<Json<EnrollmentSecret>> {
    state
        .store
        .revoke_enrollment_secret(admin.actor(), id)
        .await?
        .map(Json)
        .ok_or(Error::NotFound("enrolment secret"))
}

// ----- devices ----------------------------------------------------------------------------

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceQuery {
    collection: Option<Uuid>,
}

fn with_presence(state: &AppState, mut d: Device) -> Device {
    d.online = state.agents.is_online(d.id);
    if d.online {
        d.last_seen = Some(time::OffsetDateTime::now_utc());
    }
    d
}

pub async fn list_devices(
    _: Admin,
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<DeviceQuery>,
) -> Result<Json<Vec<Device>>> {
    if let Some(c) = q.collection
        && state.store.get_collection(c).await?.is_none()
    {
        return Err(Error::NotFound("collection"));
    }
    let devices = state.store.list_devices(q.collection).await?;
    Ok(Json(
        devices
            .into_iter()
            .map(|d| with_presence(&state, d))
            .collect(),
    ))
}

pub async fn show_device(
    _: Admin,
    State(state): State<AppState>,
    IdPath(id): IdPath,
) -> Result<Json<Device>> {
    let device = state
        .store
        .get_device(id)
        .await?
        .ok_or(Error::NotFound("device"))?;
    Ok(Json(with_presence(&state, device)))
}

/// `PATCH /api/v1/devices/{id}`: enable or disable (a disabled device's session is closed and
/// its token refused until it is enabled again).
pub async fn update_device(
    admin: Admin,
    State(state): State<AppState>,
    IdPath(id): IdPath,
    ApiJson(patch): ApiJson<UpdateDevice>,
) -> Result<Json<Device>> {
    if let Some(enabled) = patch.enabled {
        if !state
            .store
            .set_device_enabled(admin.actor(), id, enabled)
            .await?
        {
            return Err(Error::NotFound("device"));
        }
        state.agents.forget_auth(id);
        if !enabled {
            state.agents.revoke(id);
        }
    }
    show_device(admin, State(state), IdPath(id)).await
}

/// `POST /api/v1/devices/{id}/rotate-token`: a new token for a device whose token may have
/// leaked. The old one stops working at once; the new one must be installed on the device
/// (`ferry agent enroll --token`).
pub async fn rotate_device_token(
    admin: Admin,
    State(state): State<AppState>,
    IdPath(id): IdPath,
) -> Result<Json<TokenResponse>> {
    let secret = generate_secret();
    if !state
        .store
        .set_device_token(admin.actor(), id, &state.key.hash(&secret))
        .await?
    {
        return Err(Error::NotFound("device"));
    }
    state.agents.revoke(id);
    Ok(Json(TokenResponse {
        token: format!("{id}:{secret}"),
    }))
}

// ----- collections ------------------------------------------------------------------------

pub async fn create_collection(
    admin: Admin,
    State(state): State<AppState>,
    ApiJson(new): ApiJson<NewCollection>,
) -> Result<(StatusCode, Json<Collection>)> {
    check_name("name", &new.name)?;
    if let Some(rule) = &new.rule {
        collections::validate(rule)
            .map_err(|e| Error::bad(ErrorCode::InvalidRule, e.to_string()))?;
        if !new.devices.is_empty() {
            return Err(Error::bad(
                ErrorCode::InvalidCollection,
                "a collection has either a rule or a list of devices, not both",
            ));
        }
    }
    let created = state
        .store
        .create_collection(
            admin.actor(),
            Uuid::new_v4(),
            new.name.trim(),
            new.rule.as_ref(),
            &new.devices,
        )
        .await?;
    Ok((StatusCode::CREATED, Json(created)))
}

pub async fn list_collections(
    _: Admin,
    State(state): State<AppState>,
) -> Result<Json<Vec<Collection>>> {
    Ok(Json(state.store.list_collections().await?))
}

pub async fn show_collection(
    _: Admin,
    State(state): State<AppState>,
    IdPath(id): IdPath,
) -> Result<Json<Collection>> {
    state
        .store
        .get_collection(id)
        .await?
        .map(Json)
        .ok_or(Error::NotFound("collection"))
}

pub async fn delete_collection(
    admin: Admin,
    State(state): State<AppState>,
    IdPath(id): IdPath,
) -> Result<StatusCode> {
    if state.store.delete_collection(admin.actor(), id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(Error::NotFound("collection"))
    }
}

pub async fn change_members(
    admin: Admin,
    State(state): State<AppState>,
    IdPath(id): IdPath,
    ApiJson(change): ApiJson<MembershipChange>,
) -> Result<Json<Collection>> {
    Ok(Json(
        state
            .store
            .change_members(admin.actor(), id, &change.add, &change.remove)
            .await?,
    ))
}

// ----- deployments ------------------------------------------------------------------------

pub async fn create_deployment(
    admin: Admin,
    State(state): State<AppState>,
    ApiJson(new): ApiJson<NewDeployment>,
) -> Result<(StatusCode, Json<Deployment>)> {
    super::ops::check_detection(&new.detection)?;
    let created = state
        .store
        .create_deployment(admin.actor(), Uuid::new_v4(), &new)
        .await?;
    Ok((StatusCode::CREATED, Json(created)))
}

pub async fn list_deployments(
    _: Admin,
    State(state): State<AppState>,
) -> Result<Json<Vec<Deployment>>> {
    Ok(Json(state.store.list_deployments().await?))
}

pub async fn delete_deployment(
    admin: Admin,
    State(state): State<AppState>,
    IdPath(id): IdPath,
) -> Result<StatusCode> {
    if state.store.delete_deployment(admin.actor(), id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(Error::NotFound("deployment"))
    }
}
