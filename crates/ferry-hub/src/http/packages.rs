//! Packages: list, show, and download with `Range` support (connectors resume interrupted
//! downloads with it).

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use ferry_proto::ErrorCode;
use ferry_proto::package::{Package, UpdatePackage};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::auth::{Admin, AdminOrConnector};
use super::error::{Error, Result};
use super::extract::{ApiJson, IdPath};
use crate::AppState;

pub async fn list(_: Admin, State(state): State<AppState>) -> Result<Json<Vec<Package>>> {
    Ok(Json(state.store.list_packages().await?))
}

pub async fn show(
    _: Admin,
    State(state): State<AppState>,
    IdPath(id): IdPath,
) -> Result<Json<Package>> {
    state
        .store
        .get_package(id)
        .await?
        .map(Json)
        .ok_or(Error::NotFound("package"))
}

/// Longest text an administrator may put in a metadata field.
const MAX_FIELD: usize = 1024;

/// `PATCH /api/v1/packages/{id}` with `{"metadata": {field: value|null, …}}`: corrects what
/// the hub proposed (pushes then start from the corrected values). Unknown fields and values of
/// the wrong type are refused, naming the field, and change nothing.
pub async fn update(
    admin: Admin,
    State(state): State<AppState>,
    IdPath(id): IdPath,
    ApiJson(req): ApiJson<UpdatePackage>,
) -> Result<Json<Package>> {
    for (field, value) in req.metadata.texts() {
        if value.is_some_and(|s| s.chars().count() > MAX_FIELD || s.chars().any(char::is_control)) {
            return Err(Error::bad(
                ErrorCode::InvalidField,
                format!(
                    "`metadata.{}` must be at most {MAX_FIELD} characters with no control characters",
                    field.as_str()
                ),
            ));
        }
    }
    state
        .store
        .update_package_metadata(admin.actor(), id, &req.metadata)
        .await?
        .map(Json)
        .ok_or(Error::NotFound("package"))
}

/// The package's bytes. A single `Range: bytes=a-b` (or `a-`, or `-n`) gets 206 with
/// `Content-Range`; an unsatisfiable one gets 416; several ranges get the whole file (RFC 9110
/// allows ignoring `Range`).
pub async fn content(
    who: AdminOrConnector,
    State(state): State<AppState>,
    IdPath(id): IdPath,
    headers: HeaderMap,
) -> Result<Response> {
    if let AdminOrConnector::Connector(connector) = who
        && !state
            .store
            .connector_may_read_package(connector, id)
            .await?
    {
        // A connector reads only what it was asked to push or imported itself.
        return Err(Error::NotFound("package"));
    }
    serve_content(&state, id, &headers).await
}

/// The package's bytes, whole or the requested `Range`; callers check who may read it.
pub(crate) async fn serve_content(
    state: &AppState,
    id: uuid::Uuid,
    headers: &HeaderMap,
) -> Result<Response> {
    let package = state
        .store
        .get_package(id)
        .await?
        .ok_or(Error::NotFound("package"))?;
    let size = package.size;
    let range = match headers.get(header::RANGE).and_then(|v| v.to_str().ok()) {
        None => None,
        Some(raw) => match parse_range(raw, size) {
            Ok(r) => r,
            Err(()) => {
                let mut response = StatusCode::RANGE_NOT_SATISFIABLE.into_response();
                if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                    response.headers_mut().insert(header::CONTENT_RANGE, v);
                }
                return Ok(response);
            }
        },
    };
    let mut file = tokio::fs::File::open(state.blobs.path(&package.sha256))
        .await
        .map_err(anyhow::Error::from)?;
    let (status, start, len) = match range {
        Some((start, end)) => (StatusCode::PARTIAL_CONTENT, start, end - start + 1),
        None => (StatusCode::OK, 0, size),
    };
    file.seek(std::io::SeekFrom::Start(start))
        .await
        .map_err(anyhow::Error::from)?;
    let body = Body::from_stream(tokio_util::io::ReaderStream::with_capacity(
        file.take(len),
        256 * 1024,
    ));
    let mut response = (status, body).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/zip"),
    );
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    if let Ok(etag) = HeaderValue::from_str(&format!("\"sha256:{}\"", package.sha256)) {
        h.insert(header::ETAG, etag);
    }
    if status == StatusCode::PARTIAL_CONTENT
        && let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{}/{size}", start + len - 1))
    {
        h.insert(header::CONTENT_RANGE, v);
    }
    Ok(response)
}

/// `Ok(None)`: serve everything; `Ok(Some((first, last)))`: inclusive byte range;
/// `Err(())`: unsatisfiable or malformed.
pub fn parse_range(raw: &str, size: u64) -> std::result::Result<Option<(u64, u64)>, ()> {
    let spec = raw.trim().strip_prefix("bytes=").ok_or(())?;
    if spec.contains(',') {
        return Ok(None);
    }
    let (a, b) = spec.split_once('-').ok_or(())?;
    let (a, b) = (a.trim(), b.trim());
    if size == 0 {
        return Err(());
    }
    let (first, last) = if a.is_empty() {
        let n: u64 = b.parse().map_err(|_| ())?;
        if n == 0 {
            return Err(());
        }
        (size.saturating_sub(n), size - 1)
    } else {
        let first: u64 = a.parse().map_err(|_| ())?;
        let last = if b.is_empty() {
            size - 1
        } else {
            b.parse::<u64>().map_err(|_| ())?.min(size - 1)
        };
        (first, last)
    };
    if first > last || first >= size {
        return Err(());
    }
    Ok(Some((first, last)))
}

#[cfg(test)]
mod tests {
    use super::parse_range;

    #[test]
    fn ranges_follow_rfc_9110() {
        assert_eq!(parse_range("bytes=0-9", 100), Ok(Some((0, 9))));
        assert_eq!(parse_range("bytes=90-", 100), Ok(Some((90, 99))));
        assert_eq!(parse_range("bytes=-10", 100), Ok(Some((90, 99))));
        assert_eq!(parse_range("bytes=50-500", 100), Ok(Some((50, 99))));
        assert_eq!(parse_range("bytes=0-1,5-6", 100), Ok(None));
        assert_eq!(parse_range("bytes=100-", 100), Err(()));
        assert_eq!(parse_range("bytes=9-3", 100), Err(()));
        assert_eq!(parse_range("items=0-1", 100), Err(()));
    }
}
