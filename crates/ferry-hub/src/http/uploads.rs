//! Resumable uploads (see `ferry_proto::package` for the protocol). The body is streamed to
//! `uploads/<id>.part` and hashed on the way; memory use does not grow with the file.
//!
//! What makes it resumable: `received` in the store only ever counts bytes that are fsynced
//! in the part file (it is written every [`CHECKPOINT_BYTES`] and at the end of each range).
//! After a broken connection or a hub restart, the part file is cut back to `received` and the
//! client continues from there. The running SHA-256 lives in memory; if it is lost (restart),
//! it is rebuilt by hashing the part file once.

use ferry_proto::ErrorCode;
use std::collections::HashMap;
use std::io::SeekFrom;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::StatusCode;
use ferry_proto::package::{NewUpload, Package, Upload, UploadState};
use futures_util::StreamExt;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
use uuid::Uuid;

use super::auth::AdminOrConnector;
use super::error::{Error, Result};
use super::extract::{ApiJson, ApiQuery, IdPath};
use crate::AppState;
use crate::blobs::{hex, is_sha256_hex};

const CHECKPOINT_BYTES: u64 = 8 * 1024 * 1024;
const MAX_FILENAME: usize = 255;

/// Per-upload state shared by requests: the lock serialises ranges of one upload, and holds
/// the running hash as `(bytes hashed, hasher)`.
#[derive(Default)]
pub struct UploadSlots {
    map: std::sync::Mutex<HashMap<Uuid, Slot>>,
}

/// `(bytes hashed, hasher)` behind the upload's lock; `None` until the first range.
type Slot = Arc<tokio::sync::Mutex<Option<(u64, Sha256)>>>;

impl UploadSlots {
    fn get(&self, id: Uuid) -> Slot {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(id).or_default().clone()
    }

    fn remove(&self, id: Uuid) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(&id);
    }
}

/// Administrators may touch any upload; a connector only the uploads it opened (its imports).
/// Another's upload answers like a missing one.
async fn check_owner(state: &AppState, who: &AdminOrConnector, id: Uuid) -> Result<()> {
    if let AdminOrConnector::Connector(_) = who {
        let owner = state.store.upload_created_by(id).await?;
        if owner.as_deref() != Some(who.actor().as_str()) {
            return Err(Error::NotFound("upload"));
        }
    }
    Ok(())
}

fn part_path(state: &AppState, id: Uuid) -> PathBuf {
    state
        .config
        .data_dir
        .join(crate::UPLOAD_DIR)
        .join(format!("{id}.part"))
}

pub async fn open(
    who: AdminOrConnector,
    State(state): State<AppState>,
    ApiJson(req): ApiJson<NewUpload>,
) -> Result<(StatusCode, Json<Upload>)> {
    let name_ok = !req.filename.is_empty()
        && req.filename.chars().count() <= MAX_FILENAME
        && !req
            .filename
            .chars()
            .any(|c| c.is_control() || c == '/' || c == '\\');
    if !name_ok {
        return Err(Error::bad(
            ErrorCode::InvalidField,
            format!(
                "`filename` must be 1 to {MAX_FILENAME} characters, without control characters or path separators"
            ),
        ));
    }
    if req.size == 0 || req.size > state.config.max_upload_bytes {
        return Err(Error::bad(
            ErrorCode::InvalidField,
            format!(
                "`size` must be between 1 and {} bytes",
                state.config.max_upload_bytes
            ),
        ));
    }
    if req.sha256.as_deref().is_some_and(|h| !is_sha256_hex(h)) {
        return Err(Error::bad(
            ErrorCode::InvalidField,
            "`sha256` must be 64 lower-case hex digits",
        ));
    }
    // Opening an upload is when abandoned ones are cleared: no timer, and the cost lands on
    // the only path that adds part files.
    let cutoff = crate::time_util::now_ms() - i64::from(state.config.upload_ttl_hours) * 3_600_000;
    for stale in state.store.expire_uploads(cutoff).await? {
        let _ = tokio::fs::remove_file(part_path(&state, stale)).await;
        state.uploads.remove(stale);
        tracing::info!(upload = %stale, "removed an abandoned upload");
    }
    let upload = state.store.create_upload(&who.actor(), &req).await?;
    Ok((StatusCode::CREATED, Json(upload)))
}

pub async fn show(
    who: AdminOrConnector,
    State(state): State<AppState>,
    IdPath(id): IdPath,
) -> Result<Json<Upload>> {
    check_owner(&state, &who, id).await?;
    state
        .store
        .get_upload(id)
        .await?
        .map(Json)
        .ok_or(Error::NotFound("upload"))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OffsetQuery {
    offset: u64,
}

/// Appends the request body at `offset`, which must equal the bytes received so far.
pub async fn put_range(
    who: AdminOrConnector,
    State(state): State<AppState>,
    IdPath(id): IdPath,
    ApiQuery(query): ApiQuery<OffsetQuery>,
    body: Body,
) -> Result<Json<Upload>> {
    check_owner(&state, &who, id).await?;
    // Only existing uploads get a slot (an unknown ID must not grow the map).
    state
        .store
        .get_upload(id)
        .await?
        .ok_or(Error::NotFound("upload"))?;
    let slot = state.uploads.get(id);
    let mut hash = slot.lock().await;
    let mut upload = state
        .store
        .get_upload(id)
        .await?
        .ok_or(Error::NotFound("upload"))?;
    if upload.state == UploadState::Completed {
        return Err(Error::Conflict {
            code: ErrorCode::UploadCompleted,
            message: "this upload is already complete".into(),
        });
    }
    if query.offset != upload.received {
        return Err(Error::Conflict {
            code: ErrorCode::OffsetMismatch,
            message: format!(
                "the hub has {} bytes of this upload; resume at offset {}",
                upload.received, upload.received
            ),
        });
    }
    let path = part_path(&state, id);
    let mut file = tokio::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .await
        .map_err(anyhow::Error::from)?;
    // Anything past `received` is from a range that never finished: drop it.
    file.set_len(upload.received)
        .await
        .map_err(anyhow::Error::from)?;
    if hash.as_ref().is_none_or(|(n, _)| *n != upload.received) {
        *hash = Some((upload.received, rehash(&mut file, upload.received).await?));
    }
    file.seek(SeekFrom::Start(upload.received))
        .await
        .map_err(anyhow::Error::from)?;
    let (mut hashed, mut hasher) = hash.take().unwrap_or_default();

    let mut stream = body.into_data_stream();
    let mut since_checkpoint = 0u64;
    let mut outcome = Ok(());
    while let Some(chunk) = stream.next().await {
        let chunk = match chunk {
            Ok(c) => c,
            // The client went away: keep what arrived, the client resumes from `received`.
            Err(_) => break,
        };
        if hashed + chunk.len() as u64 > upload.size {
            outcome = Err(Error::bad(
                ErrorCode::TooManyBytes,
                format!("the upload was declared as {} bytes", upload.size),
            ));
            break;
        }
        file.write_all(&chunk).await.map_err(anyhow::Error::from)?;
        hasher.update(&chunk);
        hashed += chunk.len() as u64;
        since_checkpoint += chunk.len() as u64;
        if since_checkpoint >= CHECKPOINT_BYTES {
            file.sync_data().await.map_err(anyhow::Error::from)?;
            state.store.set_upload_received(id, hashed).await?;
            since_checkpoint = 0;
        }
    }
    file.sync_data().await.map_err(anyhow::Error::from)?;
    // A refused chunk was not written; everything before it was, and counts.
    state.store.set_upload_received(id, hashed).await?;
    *hash = Some((hashed, hasher));
    outcome?;
    upload.received = hashed;
    Ok(Json(upload))
}

/// SHA-256 of the first `len` bytes of `file`.
async fn rehash(file: &mut tokio::fs::File, len: u64) -> Result<Sha256> {
    file.seek(SeekFrom::Start(0))
        .await
        .map_err(anyhow::Error::from)?;
    let mut hasher = Sha256::new();
    let mut remaining = len;
    let mut buf = vec![0u8; 256 * 1024];
    while remaining > 0 {
        let want = buf.len().min(remaining as usize);
        let n = file
            .read(&mut buf[..want])
            .await
            .map_err(anyhow::Error::from)?;
        if n == 0 {
            return Err(Error::Internal(anyhow::anyhow!(
                "upload part file shorter than recorded"
            )));
        }
        hasher.update(&buf[..n]);
        remaining -= n as u64;
    }
    Ok(hasher)
}

/// Verifies the upload and turns it into a package. Completing twice answers the same package.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompleteQuery {
    /// The SHA-256 the client computed while sending, if it did not declare one up front.
    sha256: Option<String>,
}

pub async fn complete(
    who: AdminOrConnector,
    State(state): State<AppState>,
    IdPath(id): IdPath,
    ApiQuery(query): ApiQuery<CompleteQuery>,
) -> Result<(StatusCode, Json<Package>)> {
    if query.sha256.as_deref().is_some_and(|h| !is_sha256_hex(h)) {
        return Err(Error::bad(
            ErrorCode::InvalidQuery,
            "`sha256` must be 64 lower-case hex digits",
        ));
    }
    check_owner(&state, &who, id).await?;
    state
        .store
        .get_upload(id)
        .await?
        .ok_or(Error::NotFound("upload"))?;
    let slot = state.uploads.get(id);
    let mut hash = slot.lock().await;
    let upload = state
        .store
        .get_upload(id)
        .await?
        .ok_or(Error::NotFound("upload"))?;
    if let (UploadState::Completed, Some(package)) = (upload.state, upload.package_id) {
        let package = state
            .store
            .get_package(package)
            .await?
            .ok_or(Error::NotFound("package"))?;
        return Ok((StatusCode::OK, Json(package)));
    }
    if upload.received != upload.size {
        return Err(Error::Conflict {
            code: ErrorCode::UploadIncomplete,
            message: format!(
                "the hub has {} of {} bytes; send the rest first",
                upload.received, upload.size
            ),
        });
    }
    let path = part_path(&state, id);
    let hasher = match hash.take() {
        Some((n, h)) if n == upload.received => h,
        _ => {
            let mut file = tokio::fs::File::open(&path)
                .await
                .map_err(anyhow::Error::from)?;
            rehash(&mut file, upload.received).await?
        }
    };
    let sha256 = hex(&hasher.finalize());
    let discard = |why: Error| async {
        let _ = tokio::fs::remove_file(&path).await;
        let _ = state.store.delete_upload(id).await;
        state.uploads.remove(id);
        why
    };
    if let Some(expected) = upload
        .expected_sha256
        .iter()
        .chain(query.sha256.iter())
        .find(|e| **e != sha256)
    {
        return Err(discard(Error::Unprocessable {
            code: ErrorCode::Sha256Mismatch,
            message: format!(
                "the received bytes hash to {sha256}, not the expected {expected}; nothing was kept"
            ),
        })
        .await);
    }
    let metadata = match crate::packages::inspect(&path).await {
        Ok(m) => m,
        Err(message) => {
            return Err(discard(Error::Unprocessable {
                code: ErrorCode::InvalidPackage,
                message: format!("{message}; nothing was kept"),
            })
            .await);
        }
    };
    // Link the part file into the blob store, commit, and only then drop the part file: if
    // the commit fails, the upload is still complete on disk and `complete` can be retried.
    let blobs = state.blobs.clone();
    let (path2, sha2) = (path.clone(), sha256.clone());
    let linked = tokio::task::spawn_blocking(move || blobs.link(&path2, &sha2))
        .await
        .map_err(anyhow::Error::from)?
        .map_err(anyhow::Error::from)?;
    let committed = state
        .store
        .complete_upload(&who.actor(), &upload, &sha256, &metadata)
        .await;
    let (package, new) = match committed {
        Ok(done) => done,
        Err(e) => {
            if linked {
                let _ = state.blobs.remove(&sha256);
            }
            return Err(e.into());
        }
    };
    let _ = tokio::fs::remove_file(&path).await;
    state.uploads.remove(id);
    tracing::info!(package = %package.id, sha256 = %sha256, new, "package stored");
    Ok((
        if new {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        },
        Json(package),
    ))
}
