//! Administrators register connectors, edit their site settings, rotate secrets and disable them.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use ferry_proto::ErrorCode;
use ferry_proto::connector::{
    Connector, ConnectorCredentials, NewConnector, SiteSettings, UpdateConnector,
};
use uuid::Uuid;

use super::auth::Admin;
use super::error::{Error, Result};
use super::extract::{ApiJson, IdPath};
use crate::AppState;
use crate::secrets::generate_secret;

const MAX_NAME: usize = 128;
const MAX_SETTING: usize = 1024;

pub async fn register(
    admin: Admin,
    State(state): State<AppState>,
    ApiJson(req): ApiJson<NewConnector>,
) -> Result<(StatusCode, Json<ConnectorCredentials>)> {
    validate_name(&req.name)?;
    validate_site(&req.site)?;
    let id = Uuid::new_v4();
    let secret = generate_secret();
    state
        .store
        .create_connector(
            admin.actor(),
            id,
            &req.name,
            &state.key.hash(&secret),
            &req.site,
        )
        .await?;
    tracing::info!(connector = %id, name = %req.name, "connector registered");
    Ok((
        StatusCode::CREATED,
        Json(ConnectorCredentials {
            remote_id: id,
            secret,
        }),
    ))
}

pub async fn list(_: Admin, State(state): State<AppState>) -> Result<Json<Vec<Connector>>> {
    let list = state.store.list_connectors().await?;
    Ok(Json(
        list.into_iter().map(|c| with_presence(&state, c)).collect(),
    ))
}

pub async fn show(
    _: Admin,
    State(state): State<AppState>,
    IdPath(id): IdPath,
) -> Result<Json<Connector>> {
    state
        .store
        .get_connector(id)
        .await?
        .map(|c| Json(with_presence(&state, c)))
        .ok_or(Error::NotFound("connector"))
}

pub async fn update(
    admin: Admin,
    State(state): State<AppState>,
    IdPath(id): IdPath,
    ApiJson(req): ApiJson<UpdateConnector>,
) -> Result<Json<Connector>> {
    if let Some(name) = &req.name {
        validate_name(name)?;
    }
    if let Some(site) = &req.site {
        let mut probe = SiteSettings::default();
        probe.apply(site);
        validate_site(&probe)?;
    }
    let connector = state
        .store
        .update_connector(admin.actor(), id, &req)
        .await
        .map_err(|e| match e {
            crate::store::JobError::NotFound => Error::NotFound("connector"),
            other => other.into(),
        })?;
    super::auth::forget_connector(&state, id);
    // Wake its waiting long poll: a disabled connector gets its 403 at once rather than at
    // the end of its hold, and a re-enabled one looks for jobs again.
    state.waiters.wake(id);
    Ok(Json(with_presence(&state, connector)))
}

pub async fn rotate_secret(
    admin: Admin,
    State(state): State<AppState>,
    IdPath(id): IdPath,
) -> Result<Json<ConnectorCredentials>> {
    let secret = generate_secret();
    state
        .store
        .set_connector_secret(admin.actor(), id, &state.key.hash(&secret))
        .await
        .map_err(|e| match e {
            crate::store::JobError::NotFound => Error::NotFound("connector"),
            other => other.into(),
        })?;
    super::auth::forget_connector(&state, id);
    tracing::info!(connector = %id, "connector secret rotated");
    Ok(Json(ConnectorCredentials {
        remote_id: id,
        secret,
    }))
}

/// The store's `last_seen_at` lags by up to the presence flush interval; the hub's memory does not.
fn with_presence(state: &AppState, mut connector: Connector) -> Connector {
    if let Some(at) = state.presence.latest(connector.id) {
        connector.last_seen_at = Some(crate::time_util::from_ms(at));
    }
    let window_ms = (i64::from(state.config.max_hold_secs) + 30) * 1000;
    connector.online = connector
        .last_seen_at
        .is_some_and(|t| crate::time_util::now_ms() - crate::time_util::to_ms(t) <= window_ms);
    connector
}

fn validate_name(name: &str) -> Result<()> {
    let trimmed = name.trim();
    if trimmed.is_empty() || trimmed.len() != name.len() {
        return Err(Error::bad(
            ErrorCode::InvalidField,
            "`name` must be non-empty with no leading or trailing spaces",
        ));
    }
    if name.chars().count() > MAX_NAME || name.chars().any(char::is_control) {
        return Err(Error::bad(
            ErrorCode::InvalidField,
            format!("`name` must be at most {MAX_NAME} characters with no control characters"),
        ));
    }
    Ok(())
}

fn validate_site(site: &SiteSettings) -> Result<()> {
    let fields = [
        ("site.site_code", &site.site_code),
        ("site.console_path", &site.console_path),
        ("site.share_path", &site.share_path),
        (
            "site.distribution_point_group",
            &site.distribution_point_group,
        ),
        ("site.collection", &site.collection),
        ("site.folder", &site.folder),
    ];
    for (field, value) in fields {
        if let Some(v) = value
            && (v.chars().count() > MAX_SETTING || v.chars().any(char::is_control))
        {
            return Err(Error::bad(
                ErrorCode::InvalidField,
                format!(
                    "`{field}` must be at most {MAX_SETTING} characters with no control characters"
                ),
            ));
        }
    }
    if let Some(code) = &site.site_code {
        // ConfigMgr site codes are three letters or digits.
        if code.len() != 3 || !code.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(Error::bad(
                ErrorCode::InvalidField,
                "`site.site_code` must be three letters or digits, e.g. DEM",
            ));
        }
    }
    Ok(())
}

/// The connector's site as of its latest inventory: folders and applications with their paths,
/// container and resource IDs, duplicate flags and parsed metadata.
pub async fn applications(
    _: Admin,
    State(state): State<AppState>,
    IdPath(id): IdPath,
) -> Result<Json<serde_json::Value>> {
    state
        .store
        .get_connector(id)
        .await?
        .ok_or(Error::NotFound("connector"))?;
    state
        .store
        .inventory(id)
        .await?
        .map(Json)
        .ok_or(Error::NotFound(
            "inventory (refresh the connector's inventory first)",
        ))
}
