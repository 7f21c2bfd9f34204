//! Who is calling: every route takes exactly one of these extractors, so a route cannot
//! forget to check its caller's role.
//!
//! * [`Admin`] — `Authorization: Bearer <admin token>`.
//! * [`ConnectorAuth`] — `Authorization: Bearer <remote id>:<secret>`; the secret is checked
//!   against its keyed hash, then the connector must be enabled (401 before 403, so a
//!   disabled connector's existence is only revealed to someone holding its secret).

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use uuid::Uuid;

use super::error::Error;
use crate::AppState;
use crate::store::ConnectorAuthRow;
use crate::time_util::now_ms;

fn bearer(parts: &Parts) -> Result<&str, Error> {
    let value = parts
        .headers
        .get(AUTHORIZATION)
        .ok_or(Error::Unauthorized("missing Authorization header"))?
        .to_str()
        .map_err(|_| Error::Unauthorized("malformed Authorization header"))?;
    value
        .strip_prefix("Bearer ")
        .map(str::trim)
        .ok_or(Error::Unauthorized(
            "the Authorization header must use the Bearer scheme",
        ))
}

/// An administrator (the hub's admin token).
pub struct Admin;

impl Admin {
    /// The name written to the audit log.
    pub fn actor(&self) -> &'static str {
        "admin"
    }
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        let token = bearer(parts)?;
        let hashes = state
            .admin_hashes
            .read()
            .map_err(|_| anyhow::anyhow!("admin token lock poisoned"))?;
        if hashes.iter().any(|h| state.key.verify(token, h)) {
            Ok(Admin)
        } else {
            Err(Error::Unauthorized("invalid admin token"))
        }
    }
}

/// A registered, enabled connector.
pub struct ConnectorAuth {
    pub id: Uuid,
}

impl FromRequestParts<AppState> for ConnectorAuth {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        let token = bearer(parts)?;
        let (id, secret) = token.split_once(':').ok_or(Error::Unauthorized(
            "connector credentials must be <remote id>:<secret>",
        ))?;
        let id = Uuid::parse_str(id)
            .map_err(|_| Error::Unauthorized("invalid connector credentials"))?;
        let row = cached_auth(state, id)
            .await?
            .ok_or(Error::Unauthorized("invalid connector credentials"))?;
        if !state.key.verify(secret, &row.secret_hash) {
            return Err(Error::Unauthorized("invalid connector credentials"));
        }
        if !row.enabled {
            return Err(Error::Forbidden("this connector is disabled"));
        }
        note_contact(state, id);
        Ok(ConnectorAuth { id })
    }
}

fn note_contact(state: &AppState, id: Uuid) {
    state.presence.note(id, now_ms());
}

/// The connector's credential row, from the cache or the store.
///
/// The generation counter closes a race: a request that read the row from the store just
/// before an administrator rotated the secret must not put the old hash back into the cache
/// after [`forget_connector`] removed it.
pub async fn cached_auth(state: &AppState, id: Uuid) -> Result<Option<ConnectorAuthRow>, Error> {
    let generation = {
        let cache = state
            .connector_auth
            .lock()
            .map_err(|_| anyhow::anyhow!("auth cache poisoned"))?;
        if let Some(row) = cache.rows.get(&id) {
            return Ok(Some(row.clone()));
        }
        cache.generation
    };
    let row = state.store.connector_auth(id).await?;
    if let Some(row) = &row {
        let mut cache = state
            .connector_auth
            .lock()
            .map_err(|_| anyhow::anyhow!("auth cache poisoned"))?;
        if cache.generation == generation {
            cache.rows.insert(id, row.clone());
        }
    }
    Ok(row)
}

/// Forgets a connector's cached credentials; call after (not before) any change to its secret
/// or state is committed.
pub fn forget_connector(state: &AppState, id: Uuid) {
    let mut cache = state
        .connector_auth
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    cache.generation += 1;
    cache.rows.remove(&id);
}

/// See [`cached_auth`].
#[derive(Default)]
pub struct AuthCache {
    rows: std::collections::HashMap<Uuid, ConnectorAuthRow>,
    generation: u64,
}

/// Either an administrator or a connector: for package content (connectors download what they
/// push) and uploads (connectors upload what they import).
pub enum AdminOrConnector {
    Admin,
    Connector(Uuid),
}

impl AdminOrConnector {
    /// The name written to the audit log.
    pub fn actor(&self) -> String {
        match self {
            AdminOrConnector::Admin => "admin".to_owned(),
            AdminOrConnector::Connector(id) => format!("connector:{id}"),
        }
    }
}

impl FromRequestParts<AppState> for AdminOrConnector {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        // Connector credentials contain a ':'; admin tokens (base64url) never do.
        if bearer(parts)?.contains(':') {
            ConnectorAuth::from_request_parts(parts, state)
                .await
                .map(|c| AdminOrConnector::Connector(c.id))
        } else {
            Admin::from_request_parts(parts, state)
                .await
                .map(|_| AdminOrConnector::Admin)
        }
    }
}

/// An enrolled, enabled device (`Authorization: Bearer <device id>:<token secret>`).
pub struct DeviceAuth {
    pub id: Uuid,
    /// The stored hash the token matched (a session re-checks it once registered, in case
    /// the token was rotated or the device disabled meanwhile).
    pub token_hash: Vec<u8>,
}

impl FromRequestParts<AppState> for DeviceAuth {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        let token = bearer(parts)?;
        let (id, secret) = token.split_once(':').ok_or(Error::Unauthorized(
            "device tokens have the form <device id>:<secret>",
        ))?;
        let id = Uuid::parse_str(id).map_err(|_| Error::Unauthorized("invalid device token"))?;
        let row = match state.agents.cached_auth(id) {
            (Some(row), _) => row,
            (None, generation) => {
                let row = state
                    .store
                    .device_auth(id)
                    .await?
                    .ok_or(Error::Unauthorized("invalid device token"))?;
                state.agents.cache_auth(id, row.clone(), generation);
                row
            }
        };
        let token_hash = if state.key.verify(secret, &row.token_hash) {
            row.token_hash
        } else if let Some(pending) = row
            .pending_token_hash
            .filter(|p| state.key.verify(secret, p))
        {
            // First use of a token the device asked for: it becomes the only one, and the
            // session still holding the old one is closed (the agent reconnects with the new).
            if !state.store.promote_pending_token(id, &pending).await? {
                return Err(Error::Unauthorized("invalid device token"));
            }
            state.agents.revoke(id);
            pending
        } else {
            return Err(Error::Unauthorized("invalid device token"));
        };
        if !row.enabled {
            return Err(Error::Forbidden("this device is disabled"));
        }
        Ok(DeviceAuth { id, token_hash })
    }
}
