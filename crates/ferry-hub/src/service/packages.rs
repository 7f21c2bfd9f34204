//! Packages: resumable uploads (see `ferry_proto::package` for the protocol), the packages
//! they become, who may read them, and pushing them into a connector's site.
//!
//! Uploads: The body is streamed to
//! `uploads/<id>.part` and hashed on the way; memory use does not grow with the file.
//!
//! What makes it resumable: `received` in the store only ever counts bytes that are fsynced
//! in the part file (it is written every [`CHECKPOINT_BYTES`] and at the end of each range).
//! After a broken connection or a hub restart, the part file is cut back to `received` and the
//! client continues from there. The running SHA-256 lives in memory; if it is lost (restart),
//! it is rebuilt by hashing the part file once.

use std::collections::HashMap;
use std::io::SeekFrom;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use ferry_proto::ErrorCode;
use ferry_proto::job::{Job, JobPayload};
use ferry_proto::package::{
    NewUpload, Package, PackageMetadata, UpdatePackage, Upload, UploadState,
};
use ferry_proto::push::{PushPayload, PushPreview, PushRequest};
use futures_util::{Stream, StreamExt};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
use uuid::Uuid;

use crate::AppState;
use crate::blobs::{hex, is_sha256_hex};
use crate::error::{Error, Result};
use crate::store::{Actor, JobInsert};

const CHECKPOINT_BYTES: u64 = 8 * 1024 * 1024;
const MAX_FILENAME: usize = 255;
/// Longest text an administrator may put in a metadata field.
const MAX_FIELD: usize = 1024;

/// Per-upload state shared by requests: the lock serialises ranges of one upload, and holds
/// the running hash as `(bytes hashed, hasher)`.
#[derive(Default)]
pub struct UploadSlots {
    map: std::sync::Mutex<HashMap<Uuid, Slot>>,
}

/// `(bytes hashed, hasher)` behind the upload's lock; `None` until the first range.
type Slot = Arc<tokio::sync::Mutex<Option<(u64, Sha256)>>>;

impl UploadSlots {
    fn slot(&self, id: Uuid) -> Slot {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(id).or_default().clone()
    }

    fn remove(&self, id: Uuid) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(&id);
    }
}

/// What a push request came to.
pub enum PushOutcome {
    /// A dry run: the specification and the exact script, nothing queued.
    Preview(Box<PushPreview>),
    Queued(Box<Job>),
}

impl AppState {
    /// Where package inspections copy the entries they read.
    fn scratch_dir(&self) -> PathBuf {
        self.config.data_dir.join(crate::UPLOAD_DIR)
    }

    fn part_path(&self, id: Uuid) -> PathBuf {
        self.config
            .data_dir
            .join(crate::UPLOAD_DIR)
            .join(format!("{id}.part"))
    }

    /// Technicians may touch any upload; a connector only the uploads it opened (its
    /// imports). Another's upload answers like a missing one.
    async fn check_upload_owner(&self, actor: &Actor, id: Uuid) -> Result<()> {
        if let Some(connector) = actor.connector_id()
            && self.store.upload_connector(id).await?.flatten() != Some(connector)
        {
            return Err(Error::NotFound("upload"));
        }
        Ok(())
    }

    pub async fn open_upload(&self, actor: &Actor, req: &NewUpload) -> Result<Upload> {
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
        if req.size == 0 || req.size > self.config.max_upload_bytes {
            return Err(Error::bad(
                ErrorCode::InvalidField,
                format!(
                    "`size` must be between 1 and {} bytes",
                    self.config.max_upload_bytes
                ),
            ));
        }
        if req.sha256.as_deref().is_some_and(|h| !is_sha256_hex(h)) {
            return Err(Error::bad(
                ErrorCode::InvalidField,
                "`sha256` must be 64 lower-case hex digits",
            ));
        }
        // Opening an upload is when abandoned ones are cleared: no timer, and the cost lands
        // on the only path that adds part files.
        let now = crate::time_util::now_ms();
        let opened_before = now - i64::from(self.config.upload_ttl_hours) * 3_600_000;
        let idle_since = now - i64::from(self.config.upload_idle_hours) * 3_600_000;
        for stale in self.store.expire_uploads(opened_before, idle_since).await? {
            let _ = tokio::fs::remove_file(self.part_path(stale)).await;
            self.uploads.remove(stale);
            tracing::info!(upload = %stale, "removed an abandoned upload");
        }
        let caps = crate::store::UploadCaps {
            uploads: u64::from(self.config.max_open_uploads),
            bytes: self.config.max_open_upload_bytes,
        };
        Ok(self.store.create_upload(actor, req, caps).await?)
    }

    pub async fn upload(&self, actor: &Actor, id: Uuid) -> Result<Upload> {
        self.check_upload_owner(actor, id).await?;
        self.store
            .get_upload(id)
            .await?
            .ok_or(Error::NotFound("upload"))
    }

    /// Appends `body` at `offset`, which must equal the bytes received so far.
    pub async fn put_upload_range<E>(
        &self,
        actor: &Actor,
        id: Uuid,
        offset: u64,
        body: impl Stream<Item = std::result::Result<Bytes, E>>,
    ) -> Result<Upload> {
        self.check_upload_owner(actor, id).await?;
        // Only existing uploads get a slot (an unknown ID must not grow the map).
        self.store
            .get_upload(id)
            .await?
            .ok_or(Error::NotFound("upload"))?;
        let slot = self.uploads.slot(id);
        let mut hash = slot.lock().await;
        let mut upload = self
            .store
            .get_upload(id)
            .await?
            .ok_or(Error::NotFound("upload"))?;
        if upload.state == UploadState::Completed {
            return Err(Error::conflict(
                ErrorCode::UploadCompleted,
                "this upload is already complete",
            ));
        }
        if offset != upload.received {
            return Err(Error::conflict(
                ErrorCode::OffsetMismatch,
                format!(
                    "the hub has {} bytes of this upload; resume at offset {}",
                    upload.received, upload.received
                ),
            ));
        }
        let path = self.part_path(id);
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

        let mut stream = std::pin::pin!(body);
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
                self.store.set_upload_received(id, hashed).await?;
                since_checkpoint = 0;
            }
        }
        file.sync_data().await.map_err(anyhow::Error::from)?;
        // A refused chunk was not written; everything before it was, and counts.
        self.store.set_upload_received(id, hashed).await?;
        *hash = Some((hashed, hasher));
        outcome?;
        upload.received = hashed;
        Ok(upload)
    }

    /// Verifies the upload and turns it into a package. Completing twice answers the same
    /// package; the flag says whether it is new.
    pub async fn complete_upload(
        &self,
        actor: &Actor,
        id: Uuid,
        sha256_param: Option<&str>,
    ) -> Result<(Package, bool)> {
        if sha256_param.is_some_and(|h| !is_sha256_hex(h)) {
            return Err(Error::bad(
                ErrorCode::InvalidQuery,
                "`sha256` must be 64 lower-case hex digits",
            ));
        }
        self.check_upload_owner(actor, id).await?;
        self.store
            .get_upload(id)
            .await?
            .ok_or(Error::NotFound("upload"))?;
        let slot = self.uploads.slot(id);
        let mut hash = slot.lock().await;
        let upload = self
            .store
            .get_upload(id)
            .await?
            .ok_or(Error::NotFound("upload"))?;
        if let (UploadState::Completed, Some(package)) = (upload.state, upload.package_id) {
            // A replay answers with the package only if the caller may read it (an upload
            // row from before ownership was per owner may point at another's package).
            self.check_package_access(actor, package).await?;
            let package = self
                .store
                .get_package(package)
                .await?
                .ok_or(Error::NotFound("package"))?;
            return Ok((package, false));
        }
        if upload.received != upload.size {
            return Err(Error::conflict(
                ErrorCode::UploadIncomplete,
                format!(
                    "the hub has {} of {} bytes; send the rest first",
                    upload.received, upload.size
                ),
            ));
        }
        let path = self.part_path(id);
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
            let _ = self.store.delete_upload(id).await;
            self.uploads.remove(id);
            why
        };
        if let Some(expected) = upload
            .expected_sha256
            .iter()
            .map(String::as_str)
            .chain(sha256_param)
            .find(|e| *e != sha256)
        {
            return Err(discard(Error::unprocessable(
                ErrorCode::Sha256Mismatch,
                format!(
                    "the received bytes hash to {sha256}, not the expected {expected}; nothing was kept"
                ),
            ))
            .await);
        }
        let metadata = match crate::packages::inspect(&path, &self.scratch_dir(), None).await {
            Ok(m) => m,
            Err(e) => {
                return Err(discard(Error::unprocessable(
                    ErrorCode::InvalidPackage,
                    format!("{e}; nothing was kept"),
                ))
                .await);
            }
        };
        // Link the part file into the blob store, commit, and only then drop the part file: if
        // the commit fails, the upload is still complete on disk and `complete` can be retried.
        let blobs = self.blobs.clone();
        let (path2, sha2) = (path.clone(), sha256.clone());
        let linked = tokio::task::spawn_blocking(move || blobs.link(&path2, &sha2))
            .await
            .map_err(anyhow::Error::from)?
            .map_err(anyhow::Error::from)?;
        let committed = self
            .store
            .complete_upload(actor, &upload, &sha256, &metadata)
            .await;
        let (package, new) = match committed {
            Ok(done) => done,
            Err(e) => {
                if linked {
                    let _ = self.blobs.remove(&sha256);
                }
                return Err(e.into());
            }
        };
        let _ = tokio::fs::remove_file(&path).await;
        self.uploads.remove(id);
        tracing::info!(package = %package.id, sha256 = %sha256, new, "package stored");
        Ok((package, new))
    }

    // ----- packages ---------------------------------------------------------------------

    pub async fn packages(&self) -> Result<Vec<Package>> {
        Ok(self.store.list_packages().await?)
    }

    pub async fn package(&self, id: Uuid) -> Result<Package> {
        self.store
            .get_package(id)
            .await?
            .ok_or(Error::NotFound("package"))
    }

    /// Corrects what the hub proposed (pushes then start from the corrected values). Values
    /// of the wrong kind are refused by the type, naming the field; texts are bounded here.
    /// Choosing another MSI (`msi_file`) reads the package again and proposes anew, keeping
    /// the fields set by hand. What is built from other fields (package name, detection) is
    /// built again, unless set by hand.
    pub async fn update_package(
        &self,
        actor: &Actor,
        id: Uuid,
        req: &UpdatePackage,
    ) -> Result<Package> {
        for (field, value) in req.metadata.texts() {
            if value
                .is_some_and(|s| s.chars().count() > MAX_FIELD || s.chars().any(char::is_control))
            {
                return Err(Error::bad(
                    ErrorCode::InvalidField,
                    format!(
                        "`metadata.{}` must be at most {MAX_FIELD} characters with no control characters",
                        field.as_str()
                    ),
                ));
            }
        }
        let patch = &req.metadata;
        if let Some(field) = patch.reset.iter().find(|f| patch.sets(**f)) {
            return Err(Error::bad(
                ErrorCode::InvalidField,
                format!(
                    "`metadata.{}` cannot be set and reset at once",
                    field.as_str()
                ),
            ));
        }
        // Choosing an MSI or handing fields back to the proposal reads the package again.
        let fresh = if patch.msi_file.is_some() || !patch.reset.is_empty() {
            let package = self.package(id).await?;
            let choice = patch
                .msi_file
                .clone()
                .or_else(|| package.metadata.proposal.msi_file.clone());
            let blob = self.blobs.path(&package.sha256);
            let fresh = crate::packages::inspect(&blob, &self.scratch_dir(), choice.as_deref())
                .await
                .map_err(|e| match e {
                    crate::packages::InspectError::NoSuchMsi(_) => Error::bad(
                        ErrorCode::InvalidField,
                        format!(
                            "`metadata.msi_file` must be one of the package's MSIs (`msi_files`): {e}"
                        ),
                    ),
                    other => Error::unprocessable(ErrorCode::InvalidPackage, other.to_string()),
                })?;
            Some(fresh)
        } else {
            None
        };
        let edit = move |metadata: &mut PackageMetadata| {
            let mut fields = Vec::new();
            if let Some(fresh) = &fresh {
                metadata.rebase(fresh.clone(), &patch.reset);
                if patch.msi_file.is_some() {
                    fields.push("msi_file");
                }
                fields.extend(patch.reset.iter().map(|f| f.as_str()));
            }
            fields.extend(metadata.apply(patch).iter().map(|f| f.as_str()));
            ferry_package::derive(&mut metadata.proposal);
            fields
        };
        self.store
            .update_package_metadata(actor, id, &edit)
            .await?
            .ok_or(Error::NotFound("package"))
    }

    /// Whether `actor` may download the package: technicians may; a connector only what it
    /// was asked to push or imported itself; a device only what is deployed or assigned to it.
    /// Refusals answer like a missing package.
    pub async fn check_package_access(&self, actor: &Actor, id: Uuid) -> Result<()> {
        use ferry_proto::identity::ActorKind;
        let allowed = match (actor.kind, actor.id) {
            (ActorKind::Technician | ActorKind::Hub, _) => true,
            (ActorKind::Connector, Some(c)) => self.store.connector_may_read_package(c, id).await?,
            (ActorKind::Device, Some(d)) => self.store.device_may_read_package(d, id).await?,
            _ => false,
        };
        if allowed {
            Ok(())
        } else {
            Err(Error::NotFound("package"))
        }
    }

    // ----- push -------------------------------------------------------------------------

    /// The push specification `ferry-sccm` proposes from the package's metadata and the
    /// connector's site settings, with the caller's overrides, validated before anything is
    /// queued: a dry run answers with the exact script, otherwise a `push` job is queued.
    pub async fn push(&self, actor: &Actor, req: &PushRequest) -> Result<PushOutcome> {
        let package = self
            .store
            .get_package(req.package_id)
            .await?
            .ok_or_else(|| {
                Error::bad(
                    ErrorCode::UnknownPackage,
                    format!("no package with id {}", req.package_id),
                )
            })?;
        let connector = self
            .store
            .get_connector(req.connector_id)
            .await?
            .ok_or_else(|| {
                Error::bad(
                    ErrorCode::UnknownConnector,
                    format!("no connector with id {}", req.connector_id),
                )
            })?;
        let invalid = |e: ferry_sccm::SpecError| Error::bad(ErrorCode::InvalidSpec, e.to_string());
        let spec = ferry_sccm::spec::propose(
            &package.metadata,
            &connector.site,
            &actor.name,
            time::OffsetDateTime::now_utc(),
            req.spec.as_ref(),
        )
        .map_err(invalid)?;
        let script = ferry_sccm::scripts::push_script(&spec).map_err(invalid)?;
        if req.dry_run {
            return Ok(PushOutcome::Preview(Box::new(PushPreview {
                spec,
                script: ferry_sccm::generate(&script),
            })));
        }
        let payload = PushPayload {
            package_id: package.id,
            sha256: package.sha256.clone(),
            size: package.size,
            spec,
        };
        let insert = JobInsert {
            connector_id: connector.id,
            payload: JobPayload::Push(Box::new(payload)),
            not_before_ms: None,
            expires_at_ms: None,
            max_attempts: self.config.max_attempts,
        };
        Ok(PushOutcome::Queued(Box::new(
            self.queue_job(actor, &insert).await?,
        )))
    }
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
