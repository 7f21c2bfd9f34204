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
use crate::time_util::now_ms;

/// How stale `last_seen_at` may get before a request writes it again. Writing on every long
/// poll would turn 10,000 idle connectors into 400 writes a second for no information.
const LAST_SEEN_WRITE_INTERVAL_MS: i64 = 15_000;

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
        .ok_or(Error::Unauthorized("the Authorization header must use the Bearer scheme"))
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
        let hashes = state.admin_hashes.read().map_err(|_| anyhow::anyhow!("admin token lock poisoned"))?;
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
        let (id, secret) = token
            .split_once(':')
            .ok_or(Error::Unauthorized("connector credentials must be <remote id>:<secret>"))?;
        let id = Uuid::parse_str(id).map_err(|_| Error::Unauthorized("invalid connector credentials"))?;
        let row = state
            .store
            .connector_auth(id)
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
    let now = now_ms();
    let due = match state.last_seen.lock() {
        Ok(mut map) => {
            let last = map.entry(id).or_insert(i64::MIN);
            if now.saturating_sub(*last) >= LAST_SEEN_WRITE_INTERVAL_MS {
                *last = now;
                true
            } else {
                false
            }
        }
        Err(_) => false,
    };
    if due {
        let store = state.store.clone();
        tokio::spawn(async move {
            if let Err(e) = store.touch_connector(id, now).await {
                tracing::warn!(error = %e, connector = %id, "could not record last contact");
            }
        });
    }
}
