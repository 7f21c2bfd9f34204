//! Packages: list, show, correct their metadata, download them with `Range` (connectors and
//! agents resume interrupted downloads with it), and push them into a connector's site.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use ferry_proto::package::{Package, UpdatePackage};
use ferry_proto::push::PushRequest;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::auth::Caller;
use super::error::Result;
use super::extract::{ApiJson, IdPath};
use crate::AppState;
use crate::service::packages::PushOutcome;

pub async fn list(State(state): State<AppState>) -> Result<Json<Vec<Package>>> {
    Ok(Json(state.packages().await?))
}

pub async fn show(State(state): State<AppState>, IdPath(id): IdPath) -> Result<Json<Package>> {
    Ok(Json(state.package(id).await?))
}

/// `PATCH /api/v1/packages/{id}` with `{"metadata": {field: value|null, …}}`.
pub async fn update(
    caller: Caller,
    State(state): State<AppState>,
    IdPath(id): IdPath,
    ApiJson(req): ApiJson<UpdatePackage>,
) -> Result<Json<Package>> {
    Ok(Json(state.update_package(&caller.actor(), id, &req).await?))
}

/// The package's bytes (see [`serve_content`]); a connector reads only what it was asked to
/// push or imported itself.
pub async fn content(
    caller: Caller,
    State(state): State<AppState>,
    IdPath(id): IdPath,
    headers: HeaderMap,
) -> Result<Response> {
    state.check_package_access(&caller.actor(), id).await?;
    serve_content(&state, id, &headers).await
}

/// `POST /api/v1/push`: `200` with the exact script for a dry run, `201` with the queued job.
pub async fn push(
    caller: Caller,
    State(state): State<AppState>,
    ApiJson(req): ApiJson<PushRequest>,
) -> Result<Response> {
    Ok(match state.push(&caller.actor(), &req).await? {
        PushOutcome::Preview(preview) => (StatusCode::OK, Json(preview)).into_response(),
        PushOutcome::Queued(job) => (StatusCode::CREATED, Json(job)).into_response(),
    })
}

/// The package's bytes, whole or the requested `Range`; callers check who may read it.
pub(crate) async fn serve_content(
    state: &AppState,
    id: uuid::Uuid,
    headers: &HeaderMap,
) -> Result<Response> {
    let package = state.package(id).await?;
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
