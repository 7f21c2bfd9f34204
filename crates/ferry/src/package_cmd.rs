//! `ferry package upload|list|show`: the CLI side of resumable uploads.

use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use ferry_proto::package::{NewUpload, Package, Upload};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::admin_client::{AdminClient, HubArgs};

/// Bytes per PUT: a broken connection costs at most this much again.
const CHUNK: usize = 8 * 1024 * 1024;
const MAX_RETRIES: u32 = 10;

#[derive(Debug, clap::Subcommand)]
pub enum PackageCmd {
    /// Upload a zip; resumes after broken connections, verifies SHA-256, shows progress.
    Upload {
        file: PathBuf,
        /// Continue an earlier upload session instead of opening a new one.
        #[arg(long)]
        resume: Option<Uuid>,
        #[command(flatten)]
        hub: HubArgs,
    },
    /// List packages.
    List {
        #[command(flatten)]
        hub: HubArgs,
    },
    /// Show one package with the metadata the hub found.
    Show {
        id: Uuid,
        #[command(flatten)]
        hub: HubArgs,
    },
}

pub async fn run(cmd: PackageCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        PackageCmd::Upload { file, resume, hub } => {
            let client = AdminClient::from_args(&hub)?;
            let package = upload(&client, &file, resume, true).await?;
            println!("{}", serde_json::to_string_pretty(&package)?);
        }
        PackageCmd::List { hub } => {
            let list: Vec<Package> = AdminClient::from_args(&hub)?
                .get("/api/v1/packages")
                .await?;
            for p in list {
                let name = p
                    .metadata
                    .get("package_name")
                    .and_then(|v| v.as_str())
                    .unwrap_or("");
                println!("{}  {:>12}  {}  {}", p.id, p.size, p.filename, name);
            }
        }
        PackageCmd::Show { id, hub } => {
            let p: Package = AdminClient::from_args(&hub)?
                .get(&format!("/api/v1/packages/{id}"))
                .await?;
            println!("{}", serde_json::to_string_pretty(&p)?);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Uploads `path` and returns the package: sends it in [`CHUNK`]s, and after a failure asks
/// the hub how much arrived and goes on from there.
pub async fn upload(
    client: &AdminClient,
    path: &std::path::Path,
    resume: Option<Uuid>,
    progress: bool,
) -> anyhow::Result<Package> {
    let mut file =
        std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let size = file.metadata()?.len();
    let filename = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("package.zip")
        .to_owned();
    let mut upload: Upload = match resume {
        Some(id) => client.get(&format!("/api/v1/uploads/{id}")).await?,
        None => {
            client
                .post(
                    "/api/v1/uploads",
                    &NewUpload {
                        filename,
                        size,
                        sha256: None,
                    },
                )
                .await?
        }
    };
    let bar = if progress {
        indicatif::ProgressBar::new(size)
    } else {
        indicatif::ProgressBar::hidden()
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    // The rest of the file goes in one streaming PUT: the client reads and hashes while the
    // hub receives, hashes and writes, each on its own core. (The hub makes every 8 MiB
    // durable as it goes, so a broken stream still resumes close to where it broke.) Bytes the
    // hub already has (a resumed upload) are hashed from the file first.
    let mut hasher = Sha256::new();
    hash_prefix(&mut file, &mut hasher, upload.received)?;
    bar.set_position(upload.received);
    let mut failures = 0;
    while upload.received < size {
        let offset = upload.received;
        let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Vec<u8>>>(8);
        let reader = {
            let path = path.to_owned();
            let bar = bar.clone();
            let mut h = std::mem::take(&mut hasher);
            tokio::task::spawn_blocking(move || -> anyhow::Result<(Sha256, u64)> {
                let mut file = std::fs::File::open(&path)?;
                file.seek(SeekFrom::Start(offset))?;
                let mut sent = offset;
                loop {
                    let mut block = vec![0u8; CHUNK.min(1024 * 1024)];
                    let n = file.read(&mut block)?;
                    if n == 0 {
                        break;
                    }
                    block.truncate(n);
                    h.update(&block);
                    sent += n as u64;
                    bar.set_position(sent);
                    if tx.blocking_send(Ok(block)).is_err() {
                        break; // the request ended early; the hub says how far it got
                    }
                }
                Ok((h, sent))
            })
        };
        let body =
            reqwest::Body::wrap_stream(futures_util::stream::unfold(rx, |mut rx| async move {
                rx.recv().await.map(|item| (item, rx))
            }));
        let url = format!("/api/v1/uploads/{}?offset={offset}", upload.id);
        let sent = client.put_body::<Upload>(&url, body).await;
        let (h, hashed) = reader.await??;
        hasher = h;
        match sent {
            Ok(u) => {
                upload = u;
                failures = 0;
            }
            Err(e) => {
                failures += 1;
                if failures > MAX_RETRIES {
                    bail!(
                        "upload {} stopped after {MAX_RETRIES} failures ({e:#}); continue it with --resume {}",
                        upload.id,
                        upload.id
                    );
                }
                bar.println(format!("retrying after: {e:#}"));
                tokio::time::sleep(Duration::from_millis(500 * u64::from(failures))).await;
                upload = client
                    .get(&format!("/api/v1/uploads/{}", upload.id))
                    .await?;
            }
        }
        if upload.received != hashed {
            // The hub kept a different amount than we hashed: hash again up to its offset.
            hasher = Sha256::new();
            hash_prefix(&mut file, &mut hasher, upload.received)?;
        }
        bar.set_position(upload.received);
    }
    bar.finish_and_clear();
    let sha256: String = ferry_hub::blobs::hex(&hasher.finalize());
    client
        .post(
            &format!("/api/v1/uploads/{}/complete?sha256={sha256}", upload.id),
            &serde_json::json!({}),
        )
        .await
}

/// Hashes the first `len` bytes of `file` into `hasher`; returns `len`.
fn hash_prefix(file: &mut std::fs::File, hasher: &mut Sha256, len: u64) -> anyhow::Result<u64> {
    file.seek(SeekFrom::Start(0))?;
    let mut left = len;
    let mut buf = vec![0u8; 1024 * 1024];
    while left > 0 {
        let want = buf.len().min(left as usize);
        file.read_exact(&mut buf[..want])?;
        hasher.update(&buf[..want]);
        left -= want as u64;
    }
    Ok(len)
}
