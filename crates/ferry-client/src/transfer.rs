//! Resumable, verified transfers of package files, with progress callbacks.
//!
//! **Upload** (`POST /api/v1/uploads`, `PUT …?offset=N`, `POST …/complete`): the rest of the
//! file goes in one streaming `PUT`: a blocking thread reads and hashes while the hub receives,
//! hashes and writes, each on its own core. The hub makes every 8 MiB durable as it goes, so
//! after a broken stream the client asks how much arrived and continues from there; bytes the
//! hub already has are hashed from the file first. Completion sends the SHA-256 the client
//! computed; the hub refuses the package if its own differs.
//!
//! **Download** (`GET` with `Range`): bytes go to a part file, hashed as they arrive; after an
//! interruption the part file's length is where the next request starts (its prefix is hashed
//! once). A complete download whose hash differs is deleted and refused.
//!
//! Both retry transient failures ([`Error::is_transient`]) with a growing pause, at most
//! `max_retries` times in a row; progress resets the count.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::Duration;

use ferry_proto::ErrorCode;
use ferry_proto::package::{NewUpload, Package, Upload};
use futures_util::StreamExt;
use reqwest::{Method, StatusCode};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;
use uuid::Uuid;

use crate::{Client, Error, decode, hex};

/// Called with (bytes done, bytes in all) as a transfer moves.
pub type Progress<'a> = &'a (dyn Fn(u64, u64) + Send + Sync);

/// A progress callback that ignores everything.
pub fn no_progress(_: u64, _: u64) {}

/// How an upload starts.
#[derive(Debug, Clone)]
pub struct UploadOptions {
    /// The name the package is shown under; the file's own name when `None`.
    pub filename: Option<String>,
    /// Continue this earlier upload session instead of opening a new one.
    pub resume: Option<Uuid>,
    /// Declare the SHA-256 up front (the hub then refuses other bytes at completion).
    pub sha256: Option<String>,
    /// Failures in a row before giving up.
    pub max_retries: u32,
}

impl Default for UploadOptions {
    fn default() -> Self {
        UploadOptions {
            filename: None,
            resume: None,
            sha256: None,
            max_retries: 10,
        }
    }
}

/// What a download must turn out to be.
#[derive(Debug, Clone)]
pub struct Expected {
    pub size: u64,
    /// Lower-case hex.
    pub sha256: String,
}

/// The pause before the `n`th retry in a row (n ≥ 1): 0.5 s, 1 s, 1.5 s … capped at 10 s.
fn pause(n: u32) -> Duration {
    Duration::from_millis((500 * u64::from(n)).min(10_000))
}

impl Client {
    /// Uploads the file at `path` as a package and returns it (see the module documentation).
    /// An upload that cannot finish names its session, so that `resume` can continue it.
    pub async fn upload_package(
        &self,
        path: &Path,
        options: &UploadOptions,
        progress: Progress<'_>,
    ) -> Result<Package, Error> {
        let mut file =
            std::fs::File::open(path).map_err(Error::io(format!("opening {}", path.display())))?;
        let size = file
            .metadata()
            .map_err(Error::io(format!("reading {}", path.display())))?
            .len();
        let filename = options.filename.clone().unwrap_or_else(|| {
            path.file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("package.zip")
                .to_owned()
        });
        let mut upload: Upload = match options.resume {
            Some(id) => self.get(&format!("/api/v1/uploads/{id}")).await?,
            None => {
                let new = NewUpload {
                    filename,
                    size,
                    sha256: options.sha256.clone(),
                };
                self.post("/api/v1/uploads", &new).await?
            }
        };
        let mut hasher = Sha256::new();
        hash_prefix(&mut file, &mut hasher, upload.received, path)?;
        progress(upload.received, size);
        let mut failures = 0;
        while upload.received < size {
            let offset = upload.received;
            let (sent, hashed) = self
                .put_rest(path, upload.id, offset, &mut hasher, size, progress)
                .await?;
            match sent {
                Ok(u) => {
                    upload = u;
                    failures = 0;
                }
                Err(e) if e.is_transient() || e.code() == Some(ErrorCode::OffsetMismatch) => {
                    failures += 1;
                    if failures > options.max_retries {
                        return Err(gave_up(e, upload.id));
                    }
                    tokio::time::sleep(pause(failures)).await;
                    upload = match self.get(&format!("/api/v1/uploads/{}", upload.id)).await {
                        Ok(u) => u,
                        Err(e) if e.is_transient() => continue,
                        Err(e) => return Err(e),
                    };
                }
                Err(e) => return Err(e),
            }
            if upload.received != hashed {
                // The hub kept a different amount than we hashed: hash again up to its offset.
                hasher = Sha256::new();
                hash_prefix(&mut file, &mut hasher, upload.received, path)?;
            }
            progress(upload.received, size);
        }
        let sha256 = hex(&hasher.finalize());
        let complete = format!("/api/v1/uploads/{}/complete?sha256={sha256}", upload.id);
        let mut failures = 0;
        loop {
            match self.post(&complete, &serde_json::json!({})).await {
                Err(e) if e.is_transient() && failures < options.max_retries => {
                    failures += 1;
                    tokio::time::sleep(pause(failures)).await;
                }
                other => return other,
            }
        }
    }

    /// One streaming `PUT` of the file from `offset` on. Returns the hub's answer and how far
    /// the reader hashed (the hasher holds exactly that prefix afterwards).
    async fn put_rest(
        &self,
        path: &Path,
        upload: Uuid,
        offset: u64,
        hasher: &mut Sha256,
        size: u64,
        progress: Progress<'_>,
    ) -> Result<(Result<Upload, Error>, u64), Error> {
        const BLOCK: usize = 1024 * 1024;
        let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Vec<u8>>>(8);
        let (sent_tx, mut sent_rx) = tokio::sync::watch::channel(offset);
        let reader = {
            let path: PathBuf = path.to_owned();
            let mut h = std::mem::take(hasher);
            tokio::task::spawn_blocking(move || -> std::io::Result<(Sha256, u64)> {
                let mut file = std::fs::File::open(&path)?;
                file.seek(SeekFrom::Start(offset))?;
                let mut sent = offset;
                loop {
                    let mut block = vec![0u8; BLOCK];
                    let n = file.read(&mut block)?;
                    if n == 0 {
                        break;
                    }
                    block.truncate(n);
                    h.update(&block);
                    sent += n as u64;
                    let _ = sent_tx.send(sent);
                    if tx.blocking_send(Ok(block)).is_err() {
                        break; // the request ended early; the hub says how far it got
                    }
                }
                Ok((h, sent))
            })
        };
        let body = reqwest::Body::wrap_stream(futures_util::stream::unfold(rx, |mut rx| async {
            rx.recv().await.map(|item| (item, rx))
        }));
        let request = self
            .request(
                Method::PUT,
                &format!("/api/v1/uploads/{upload}?offset={offset}"),
            )
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            // A whole large file may travel in this one request.
            .timeout(Duration::from_secs(24 * 3600))
            .body(body)
            .send();
        tokio::pin!(request);
        let sent = loop {
            tokio::select! {
                r = &mut request => break r,
                Ok(()) = sent_rx.changed() => progress(*sent_rx.borrow(), size),
            }
        };
        let sent = match sent {
            Ok(r) => decode::<Upload>(r).await,
            Err(e) => Err(Error::Transport(e)),
        };
        let (h, hashed) = reader
            .await
            .map_err(|e| Error::Setup(format!("upload reader: {e}")))?
            .map_err(Error::io(format!("reading {}", path.display())))?;
        *hasher = h;
        Ok((sent, hashed))
    }

    /// Downloads `path` (an API path serving bytes with `Range`) into `part`, resuming from
    /// the bytes `part` already holds, and checks size and SHA-256. On success `part` holds
    /// exactly the expected bytes; on a mismatch it is deleted.
    pub async fn download(
        &self,
        path: &str,
        part: &Path,
        expected: &Expected,
        max_retries: u32,
        progress: Progress<'_>,
    ) -> Result<(), Error> {
        let mut have = tokio::fs::metadata(part)
            .await
            .map(|m| m.len())
            .unwrap_or(0);
        if have > expected.size {
            have = 0;
        }
        let mut file = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(part)
            .await
            .map_err(Error::io(format!("opening {}", part.display())))?;
        file.set_len(have)
            .await
            .map_err(Error::io(format!("truncating {}", part.display())))?;
        let mut hasher = Sha256::new();
        if have > 0 {
            let mut f = std::fs::File::open(part)
                .map_err(Error::io(format!("opening {}", part.display())))?;
            hash_prefix(&mut f, &mut hasher, have, part)?;
        }
        progress(have, expected.size);
        let mut failures = 0;
        while have < expected.size {
            match self
                .fetch_from(path, &mut file, &mut hasher, &mut have, expected, progress)
                .await
            {
                Ok(()) => break,
                Err(e) if e.is_transient() && failures < max_retries => {
                    failures += 1;
                    tokio::time::sleep(pause(failures)).await;
                }
                Err(e) => return Err(e),
            }
        }
        file.sync_all()
            .await
            .map_err(Error::io(format!("writing {}", part.display())))?;
        drop(file);
        let actual = hex(&hasher.finalize());
        if have != expected.size || actual != expected.sha256 {
            let _ = tokio::fs::remove_file(part).await;
            return Err(Error::HashMismatch {
                expected: expected.sha256.clone(),
                actual,
            });
        }
        Ok(())
    }

    /// One request for the bytes from `have` on, appended to `file` and hashed.
    async fn fetch_from(
        &self,
        path: &str,
        file: &mut tokio::fs::File,
        hasher: &mut Sha256,
        have: &mut u64,
        expected: &Expected,
        progress: Progress<'_>,
    ) -> Result<(), Error> {
        let mut request = self
            .request(Method::GET, path)
            .timeout(Duration::from_secs(24 * 3600));
        if *have > 0 {
            request = request.header(reqwest::header::RANGE, format!("bytes={have}-"));
        }
        let response = crate::check(request.send().await?).await?;
        if *have > 0 && response.status() != StatusCode::PARTIAL_CONTENT {
            // The hub ignored the range: start over.
            file.set_len(0)
                .await
                .map_err(Error::io("truncating the download"))?;
            *have = 0;
            *hasher = Sha256::new();
        }
        let mut stream = response.bytes_stream();
        let mut last_report = *have;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            if *have + chunk.len() as u64 > expected.size {
                return Err(Error::HashMismatch {
                    expected: expected.sha256.clone(),
                    actual: format!("more than {} bytes", expected.size),
                });
            }
            file.write_all(&chunk)
                .await
                .map_err(Error::io("writing the download"))?;
            hasher.update(&chunk);
            *have += chunk.len() as u64;
            if *have - last_report >= 1024 * 1024 || *have == expected.size {
                last_report = *have;
                progress(*have, expected.size);
            }
        }
        Ok(())
    }
}

fn gave_up(e: Error, upload: Uuid) -> Error {
    match e {
        Error::Api {
            status,
            code,
            message,
        } => Error::Api {
            status,
            code,
            message: format!("{message} (upload {upload}; continue it with --resume {upload})"),
        },
        other => Error::Setup(format!(
            "upload {upload} stopped after repeated failures ({other}); continue it with --resume {upload}"
        )),
    }
}

/// Hashes the first `len` bytes of `file` into `hasher`.
fn hash_prefix(
    file: &mut std::fs::File,
    hasher: &mut Sha256,
    len: u64,
    path: &Path,
) -> Result<(), Error> {
    let context = || format!("reading {}", path.display());
    file.seek(SeekFrom::Start(0))
        .map_err(Error::io(context()))?;
    let mut left = len;
    let mut buf = vec![0u8; 1024 * 1024];
    while left > 0 {
        let want = buf.len().min(left as usize);
        file.read_exact(&mut buf[..want])
            .map_err(Error::io(context()))?;
        hasher.update(&buf[..want]);
        left -= want as u64;
    }
    Ok(())
}

/// SHA-256 of a whole file (lower-case hex), on a blocking thread.
pub async fn sha256_file(path: &Path) -> Result<String, Error> {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut f =
            std::fs::File::open(&path).map_err(Error::io(format!("opening {}", path.display())))?;
        let len = f
            .metadata()
            .map_err(Error::io(format!("reading {}", path.display())))?
            .len();
        let mut h = Sha256::new();
        hash_prefix(&mut f, &mut h, len, &path)?;
        Ok(hex(&h.finalize()))
    })
    .await
    .map_err(|e| Error::Setup(format!("hashing: {e}")))?
}
