//! Extractors that turn every malformed request into a 4xx [`Error`] naming what is wrong,
//! instead of axum's plain-text rejections.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use ferry_proto::ErrorCode;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use super::error::Error;
use crate::AppState;

/// A JSON body, size-limited by the hub's `max_body_bytes`, with `deny_unknown_fields`
/// respected and the failing field path named in the error.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for ApiJson<T> {
    type Rejection = Error;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Error> {
        read_json(req, state.config.max_body_bytes)
            .await
            .map(ApiJson)
    }
}

/// [`ApiJson`] for bodies that may be left out: an empty body is `None`.
pub struct OptionalJson<T>(pub Option<T>);

impl<T: DeserializeOwned> FromRequest<AppState> for OptionalJson<T> {
    type Rejection = Error;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Error> {
        let empty = req
            .headers()
            .get(axum::http::header::CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() == b"0")
            || (req
                .headers()
                .get(axum::http::header::CONTENT_TYPE)
                .is_none()
                && req
                    .headers()
                    .get(axum::http::header::TRANSFER_ENCODING)
                    .is_none()
                && req
                    .headers()
                    .get(axum::http::header::CONTENT_LENGTH)
                    .is_none());
        if empty {
            return Ok(OptionalJson(None));
        }
        read_json(req, state.config.max_body_bytes)
            .await
            .map(|v| OptionalJson(Some(v)))
    }
}

/// [`ApiJson`] with the larger `max_result_bytes` limit, for job result documents.
pub struct ResultJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for ResultJson<T> {
    type Rejection = Error;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Error> {
        read_json(req, state.config.max_result_bytes)
            .await
            .map(ResultJson)
    }
}

/// [`ApiJson`] with the `agent_max_message_bytes` limit, for agent long-poll bodies.
pub struct AgentJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for AgentJson<T> {
    type Rejection = Error;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Error> {
        read_json(req, state.config.agent_max_message_bytes as usize)
            .await
            .map(AgentJson)
    }
}

/// Reads a JSON body of at most `limit` bytes (`Content-Type: application/json`).
pub async fn read_json<T: DeserializeOwned>(req: Request, limit: usize) -> Result<T, Error> {
    let json_type = req
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let declared = req
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(Error::TooLarge(limit));
    }
    let bytes = axum::body::to_bytes(req.into_body(), limit)
        .await
        .map_err(|_| Error::TooLarge(limit))?;
    if !json_type {
        return Err(Error::bad(
            ErrorCode::BadContentType,
            "the body must be JSON (Content-Type: application/json)",
        ));
    }
    parse_json(&bytes)
}

/// Parses JSON, naming the field path on failure (`site.share_path: invalid type …`).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| crate::error::invalid_json(e, ""))
}

/// The `{id}` path segment as a UUID.
pub struct IdPath(pub Uuid);

impl<S: Send + Sync> FromRequestParts<S> for IdPath {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Error> {
        let axum::extract::Path(raw) =
            axum::extract::Path::<String>::from_request_parts(parts, state)
                .await
                .map_err(|e| Error::bad(ErrorCode::InvalidPath, e.body_text()))?;
        Uuid::parse_str(&raw)
            .map(IdPath)
            .map_err(|_| invalid_id("id", &raw))
    }
}

/// A 400 for a path parameter that is not a UUID, echoing only a short prefix of it.
fn invalid_id(name: &str, raw: &str) -> Error {
    let shown: String = raw.chars().take(40).collect();
    let more = if raw.chars().count() > 40 { "…" } else { "" };
    Error::bad(
        ErrorCode::InvalidId,
        format!("path parameter `{name}` is not a valid UUID: {shown:?}{more}"),
    )
}

/// The `{id}` and `{key}` path segments as UUIDs (a technician's key).
pub struct IdKeyPath(pub Uuid, pub Uuid);

impl<S: Send + Sync> FromRequestParts<S> for IdKeyPath {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Error> {
        let axum::extract::Path((id, key)) =
            axum::extract::Path::<(String, String)>::from_request_parts(parts, state)
                .await
                .map_err(|e| Error::bad(ErrorCode::InvalidPath, e.body_text()))?;
        let id = Uuid::parse_str(&id).map_err(|_| invalid_id("id", &id))?;
        let key = Uuid::parse_str(&key).map_err(|_| invalid_id("key", &key))?;
        Ok(IdKeyPath(id, key))
    }
}

/// A query string, with the offending parameter named on failure.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Error> {
        let query = parts.uri.query().unwrap_or("");
        let de = serde_urlencoded_de(query);
        de.map(ApiQuery)
    }
}

fn serde_urlencoded_de<T: DeserializeOwned>(query: &str) -> Result<T, Error> {
    // axum's Query uses serde_urlencoded; go through it to keep the same syntax, and map
    // the error to a 400 that names the parameter.
    axum::extract::Query::<T>::try_from_uri(
        &format!("/?{query}")
            .parse()
            .map_err(|_| Error::bad(ErrorCode::InvalidQuery, "malformed query string"))?,
    )
    .map(|q| q.0)
    .map_err(|e| Error::bad(ErrorCode::InvalidQuery, e.body_text()))
}

/// The `{id}` segment as a UUID and the `{name}` segment as text (a delivery's id).
pub struct IdNamePath(pub Uuid, pub String);

impl<S: Send + Sync> FromRequestParts<S> for IdNamePath {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Error> {
        let axum::extract::Path((id, name)) =
            axum::extract::Path::<(String, String)>::from_request_parts(parts, state)
                .await
                .map_err(|e| Error::bad(ErrorCode::InvalidPath, e.body_text()))?;
        let id = Uuid::parse_str(&id).map_err(|_| invalid_id("id", &id))?;
        Ok(IdNamePath(id, name))
    }
}

/// One text path segment (percent-decoded), such as a service request's reference.
pub struct NamePath(pub String);

impl<S: Send + Sync> FromRequestParts<S> for NamePath {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Error> {
        let axum::extract::Path(name) =
            axum::extract::Path::<String>::from_request_parts(parts, state)
                .await
                .map_err(|e| Error::bad(ErrorCode::InvalidPath, e.body_text()))?;
        Ok(NamePath(name))
    }
}

/// The raw body, at most `max_body_bytes` (for signed requests, verified before parsing).
pub struct RawBody(pub bytes::Bytes);

impl FromRequest<AppState> for RawBody {
    type Rejection = Error;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Error> {
        let limit = state.config.max_body_bytes;
        axum::body::to_bytes(req.into_body(), limit)
            .await
            .map(RawBody)
            .map_err(|_| Error::TooLarge(limit))
    }
}
