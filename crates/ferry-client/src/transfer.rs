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
//! Both ride out transient faults ([`Error::is_transient`]: the hub restarting, a connection
//! cut mid-body, `502/503/504`) with jittered, growing pauses for as long as their
//! [`Patience`] allows — a job's lease, an operation's deadline, a few minutes for a person at
//! the CLI — and resume from the last byte both sides hold; progress resets the pause.
//! Permanent faults (a refusal the hub means, a hash mismatch after a complete transfer) end
//! the transfer at once.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferry_proto::backoff::Backoff;

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
#[derive(Debug, Clone, Default)]
pub struct UploadOptions {
    /// The name the package is shown under; the file's own name when `None`.
    pub filename: Option<String>,
    /// Continue this earlier upload session instead of opening a new one.
    pub resume: Option<Uuid>,
    /// Declare the SHA-256 up front (the hub then refuses other bytes at completion).
    pub sha256: Option<String>,
    /// How long transient faults are ridden out.
    pub patience: Patience,
}

/// How long a transfer keeps trying through transient faults.
#[derive(Clone)]
pub enum Patience {
    /// For this long since the last progress (a person waiting at the CLI).
    For(Duration),
    /// While this says so (an operation's deadline is ahead).
    While(Arc<dyn Fn() -> bool + Send + Sync>),
    /// While `alive` says so (a job's lease is not lost) and for at most `quiet` since the
    /// last progress: a hub that answers but never serves must not hold a job forever.
    Lease {
        alive: Arc<dyn Fn() -> bool + Send + Sync>,
        quiet: Duration,
    },
}

impl Default for Patience {
    /// Five minutes without progress: a hub upgrade's restart fits in it many times over.
    fn default() -> Self {
        Patience::For(Duration::from_secs(300))
    }
}

impl std::fmt::Debug for Patience {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Patience::For(d) => write!(f, "For({d:?})"),
            Patience::While(_) => f.write_str("While(..)"),
            Patience::Lease { quiet, .. } => write!(f, "Lease {{ quiet: {quiet:?} }}"),
        }
    }
}

/// The longest pause between two attempts of a transfer.
const MAX_PAUSE: Duration = Duration::from_secs(10);

/// One transfer's retry state: jittered growing pauses, reset by progress, within its
/// [`Patience`].
pub struct Retry {
    patience: Patience,
    backoff: Backoff,
    since: Instant,
}

impl Retry {
    pub fn new(patience: Patience) -> Self {
        Retry {
            patience,
            backoff: Backoff::new(MAX_PAUSE),
            since: Instant::now(),
        }
    }

    /// The pause before trying again after `e`, or `None` when `e` is permanent or patience
    /// has run out.
    pub fn after(&mut self, e: &Error) -> Option<Duration> {
        if e.is_permanent() {
            return None;
        }
        let more = match &self.patience {
            Patience::For(d) => self.since.elapsed() < *d,
            Patience::While(alive) => alive(),
            Patience::Lease { alive, quiet } => alive() && self.since.elapsed() < *quiet,
        };
        more.then(|| self.backoff.next_delay())
    }

    /// The transfer moved: the next fault starts the pauses afresh.
    pub fn progressed(&mut self) {
        self.backoff.reset();
        self.since = Instant::now();
    }

    /// Sleeps before the next attempt, or returns `e` when there is none.
    pub async fn pause_or(&mut self, e: Error) -> Result<(), Error> {
        match self.after(&e) {
            Some(pause) => {
                tokio::time::sleep(pause).await;
                Ok(())
            }
            None => Err(e),
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

impl Client {
    /// Uploads the file at `path` as a package and returns it (see the module documentation).
    /// An upload that cannot finish names its session, so that `resume` can continue it.
    pub async fn upload_package(
        &self,
        path: &Path,
        options: &UploadOptions,
        progress: Progress<'_>,
    ) -> Result<Package, Error> {
        self.upload_package_with(path, options, progress, &|_| {})
            .await
    }

    /// [`Client::upload_package`], telling `on_open` the session's id as soon as it exists
    /// (so that a caller killed mid-way can continue it with `resume` instead of opening
    /// another).
    pub async fn upload_package_with(
        &self,
        path: &Path,
        options: &UploadOptions,
        progress: Progress<'_>,
        on_open: &(dyn Fn(Uuid) + Send + Sync),
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
        let mut retry = Retry::new(options.patience.clone());
        let mut upload: Upload = loop {
            let opened = match options.resume {
                Some(id) => self.get(&format!("/api/v1/uploads/{id}")).await,
                None => {
                    let new = NewUpload {
                        filename: filename.clone(),
                        size,
                        sha256: options.sha256.clone(),
                    };
                    self.post("/api/v1/uploads", &new).await
                }
            };
            match opened {
                Ok(u) => break u,
                Err(e) => retry.pause_or(e).await?,
            }
        };
        on_open(upload.id);
        // The hasher always holds exactly the first `hashed` bytes of the file; before each
        // request and before completing, it is brought in line with what the hub holds.
        let mut hasher = Sha256::new();
        hash_prefix(&mut file, &mut hasher, upload.received, path)?;
        let mut hashed = upload.received;
        progress(upload.received, size);
        while upload.received < size {
            if hashed != upload.received {
                hasher = Sha256::new();
                hash_prefix(&mut file, &mut hasher, upload.received, path)?;
            }
            let offset = upload.received;
            let (sent, reached) = self
                .put_rest(path, upload.id, offset, &mut hasher, size, progress)
                .await?;
            hashed = reached;
            match sent {
                Ok(u) => {
                    upload = u;
                    retry.progressed();
                }
                Err(e) => {
                    // A range at the wrong offset only means the hub kept a different amount
                    // than we sent: ask how much, and go on from there.
                    let offset_moved = e.code() == Some(ErrorCode::OffsetMismatch);
                    if !offset_moved {
                        retry.pause_or(e).await.map_err(|e| gave_up(e, upload.id))?;
                    }
                    upload = match self.get(&format!("/api/v1/uploads/{}", upload.id)).await {
                        Ok(u) => u,
                        Err(e) => {
                            retry.pause_or(e).await.map_err(|e| gave_up(e, upload.id))?;
                            continue;
                        }
                    };
                    if upload.received > offset {
                        retry.progressed();
                    }
                }
            }
            progress(upload.received, size);
        }
        if hashed != upload.received {
            hasher = Sha256::new();
            hash_prefix(&mut file, &mut hasher, upload.received, path)?;
        }
        let sha256 = hex(&hasher.finalize());
        let complete = format!("/api/v1/uploads/{}/complete?sha256={sha256}", upload.id);
        loop {
            // Completing twice is harmless: a completed upload answers with its package.
            match self.post(&complete, &serde_json::json!({})).await {
                Err(e) => retry.pause_or(e).await.map_err(|e| gave_up(e, upload.id))?,
                done => return done,
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
        patience: Patience,
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
        let mut retry = Retry::new(patience);
        while have < expected.size {
            let before = have;
            match self
                .fetch_from(path, &mut file, &mut hasher, &mut have, expected, progress)
                .await
            {
                // A body that ends early (the hub stopped mid-way) is not an error to the
                // stream: the loop asks for the rest.
                Ok(()) if have < expected.size => {
                    if have > before {
                        retry.progressed();
                    }
                    retry.pause_or(truncated(have, expected.size)).await?;
                }
                Ok(()) => break,
                Err(e) => {
                    if have > before {
                        retry.progressed();
                    }
                    retry.pause_or(e).await?;
                }
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

/// A download the hub kept ending early until patience ran out (transient, so a job that
/// meets it is run again rather than failed).
fn truncated(have: u64, size: u64) -> Error {
    Error::Api {
        status: StatusCode::SERVICE_UNAVAILABLE,
        code: ErrorCode::Unknown,
        message: format!("the download stopped at byte {have} of {size} and did not resume"),
    }
}

fn gave_up(e: Error, upload: Uuid) -> Error {
    Error::Upload {
        upload,
        source: Box::new(e),
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
