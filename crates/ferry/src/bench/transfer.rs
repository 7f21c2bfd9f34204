//! `ferry bench transfer`: moving package bytes through the hub.
//!
//! A stored (uncompressed) zip of `--size` random bytes is uploaded with the CLI's resumable
//! upload (client hashes, sends 8 MiB ranges; the hub streams to disk hashing on the way, then
//! validates every zip entry and moves the file into the blob store) and downloaded again with
//! verification. The baseline is `sha256sum` of the same file in the same run: every byte has
//! to be hashed at least once on each side, so that is the speed a transfer can approach.
//! Peak RSS (VmHWM) of hub and client shows that memory does not grow with the size.
//!
//! `--inventory-apps N` also times an inventory of an emulated site with N applications, end
//! to end: hub → connector → script through the emulator → SDMPackageXML parsing → hub storage.

use std::io::Write;
use std::path::Path;
use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use ferry_proto::connector::{ConnectorCredentials, NewConnector, SiteSettings};
use ferry_proto::job::{Job, JobState};
use futures_util::StreamExt;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::bench::{ProcStat, start_hub};

#[derive(Debug, clap::Args)]
pub struct TransferArgs {
    /// Size of the test file, e.g. 2GiB, 512MiB.
    #[arg(long, default_value = "1GiB", value_parser = parse_size)]
    pub size: u64,
    /// Applications in the emulated site for the inventory timing (0 skips it).
    #[arg(long, default_value_t = 10_000)]
    pub inventory_apps: usize,
    /// Print a JSON object as the last line.
    #[arg(long)]
    pub json: bool,
}

fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, mult) = [
        ("GiB", 1u64 << 30),
        ("MiB", 1 << 20),
        ("KiB", 1 << 10),
        ("B", 1),
    ]
    .iter()
    .find_map(|(suffix, m)| s.strip_suffix(suffix).map(|n| (n, *m)))
    .unwrap_or((s, 1));
    num.trim()
        .parse::<u64>()
        .map(|n| n * mult)
        .map_err(|_| format!("not a size: {s}"))
}

#[derive(Debug, Default, Serialize)]
struct Report {
    size_bytes: u64,
    sha256sum_mb_per_s: f64,
    upload_mb_per_s: f64,
    download_mb_per_s: f64,
    upload_ratio_to_sha256sum: f64,
    download_ratio_to_sha256sum: f64,
    hub_peak_rss_mib: f64,
    client_peak_rss_mib: f64,
    inventory_apps: usize,
    inventory_secs: f64,
}

pub async fn run(args: TransferArgs) -> anyhow::Result<ExitCode> {
    let dir = std::env::temp_dir().join(format!(
        "ferry-bench-transfer-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir)?;
    let result = measure(&args, &dir).await;
    let _ = std::fs::remove_dir_all(&dir);
    let r = result?;
    println!(
        "transfer benchmark: {:.0} MiB through the hub on loopback",
        r.size_bytes as f64 / (1 << 20) as f64
    );
    println!("  sha256sum baseline  {:.0} MB/s", r.sha256sum_mb_per_s);
    println!(
        "  upload              {:.0} MB/s ({:.0} % of sha256sum)   download {:.0} MB/s ({:.0} %)",
        r.upload_mb_per_s,
        100.0 * r.upload_ratio_to_sha256sum,
        r.download_mb_per_s,
        100.0 * r.download_ratio_to_sha256sum
    );
    println!(
        "  peak RSS            hub {:.1} MiB, client {:.1} MiB",
        r.hub_peak_rss_mib, r.client_peak_rss_mib
    );
    if r.inventory_apps > 0 {
        println!(
            "  inventory of {} applications, end to end: {:.2} s",
            r.inventory_apps, r.inventory_secs
        );
    }
    if args.json {
        println!("{}", serde_json::to_string(&r)?);
    }
    Ok(ExitCode::SUCCESS)
}

async fn measure(args: &TransferArgs, dir: &Path) -> anyhow::Result<Report> {
    let mut report = Report {
        size_bytes: args.size,
        inventory_apps: args.inventory_apps,
        ..Default::default()
    };
    let file = dir.join("bench.zip");
    eprintln!("writing a {} byte test package", args.size);
    write_stored_zip(&file, args.size)?;
    let size = std::fs::metadata(&file)?.len();
    report.size_bytes = size;
    let mb = size as f64 / 1e6;

    let started = Instant::now();
    let out = std::process::Command::new("sha256sum")
        .arg(&file)
        .stdout(Stdio::null())
        .status();
    match out {
        Ok(s) if s.success() => report.sha256sum_mb_per_s = mb / started.elapsed().as_secs_f64(),
        _ => bail!("sha256sum is needed for the baseline"),
    }

    let hub = start_hub(dir, "full").await?;
    let started = Instant::now();
    let package = crate::commands::packages::upload(&hub.client, &file, None, false).await?;
    report.upload_mb_per_s = mb / started.elapsed().as_secs_f64();

    let started = Instant::now();
    let response = reqwest::Client::new()
        .get(format!(
            "{}/api/v1/packages/{}/content",
            hub.url, package.id
        ))
        .bearer_auth(
            std::fs::read_to_string(dir.join("hub").join(ferry_hub::ADMIN_TOKEN_FILE))?.trim(),
        )
        .send()
        .await?
        .error_for_status()?;
    // Writing and hashing run on a blocking thread fed through a bounded channel, so receiving
    // the next bytes overlaps with hashing the last ones (as the connector's download should).
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(16);
    let target = dir.join("download.zip");
    let sink = tokio::task::spawn_blocking(move || -> std::io::Result<String> {
        let mut out = std::io::BufWriter::new(std::fs::File::create(target)?);
        let mut hasher = Sha256::new();
        for chunk in rx {
            hasher.update(&chunk);
            out.write_all(&chunk)?;
        }
        out.flush()?;
        Ok(ferry_hub::blobs::hex(&hasher.finalize()))
    });
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        if tx.send(chunk?.to_vec()).is_err() {
            break;
        }
    }
    drop(tx);
    let digest = sink.await??;
    if digest != package.sha256 {
        bail!("the download does not match the upload");
    }
    report.download_mb_per_s = mb / started.elapsed().as_secs_f64();
    report.upload_ratio_to_sha256sum = report.upload_mb_per_s / report.sha256sum_mb_per_s;
    report.download_ratio_to_sha256sum = report.download_mb_per_s / report.sha256sum_mb_per_s;
    report.hub_peak_rss_mib = peak_rss_mib(hub.pid)?;
    report.client_peak_rss_mib = peak_rss_mib(std::process::id())?;
    let _ = ProcStat::read(hub.pid)?;

    if args.inventory_apps > 0 {
        report.inventory_secs = time_inventory(&hub.client, dir, args.inventory_apps).await?;
    }
    Ok(report)
}

/// A zip with one stored (uncompressed) entry of pseudo-random bytes, written in 1 MiB blocks.
fn write_stored_zip(path: &Path, size: u64) -> anyhow::Result<()> {
    use zip::write::SimpleFileOptions;
    let file = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut zip = zip::ZipWriter::new(file);
    let opts = SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .large_file(size >= u32::MAX as u64);
    zip.start_file("payload.bin", opts)?;
    let mut rng = fastrand::Rng::with_seed(42);
    let mut block = vec![0u8; 1 << 20];
    let mut left = size;
    while left > 0 {
        rng.fill(&mut block);
        let n = left.min(block.len() as u64) as usize;
        zip.write_all(&block[..n])?;
        left -= n as u64;
    }
    zip.finish()?.flush()?;
    Ok(())
}

fn peak_rss_mib(pid: u32) -> anyhow::Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .context("reading /proc (Linux only)")?;
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    Ok(kib / 1024.0)
}

/// Builds an emulated site with `apps` applications, runs a connector on it, and times an
/// inventory from the request to the hub having stored the result.
async fn time_inventory(
    client: &crate::admin_client::AdminClient,
    dir: &Path,
    apps: usize,
) -> anyhow::Result<f64> {
    eprintln!("building an emulated site with {apps} applications");
    let site_dir = dir.join("site");
    {
        let spec = ferry_sccm::spec::filezilla_example();
        let mut site = ferry_sccm::Site::open(&site_dir)?;
        site.run(&ferry_sccm::generate(&ferry_sccm::scripts::push_script(
            &spec,
        )?))?;
        site.replicate_application(&spec.application.name, apps.saturating_sub(1));
        site.save()?;
    }
    let site = SiteSettings {
        site_code: Some("DEM".into()),
        console_path: Some(
            "C:\\Program Files (x86)\\Microsoft Configuration Manager\\AdminConsole\\bin".into(),
        ),
        share_path: Some("\\\\srv\\Sources$".into()),
        ..Default::default()
    };
    let creds: ConnectorCredentials = client
        .post(
            "/api/v1/connectors",
            &NewConnector {
                name: "bench-inventory".into(),
                site,
            },
        )
        .await?;
    let mut config = ferry_connector::ConnectorConfig::new(
        client.base().to_owned(),
        creds.remote_id,
        creds.secret,
    );
    config.work_dir = dir.join("connector-work");
    config.backend = Some(ferry_connector::config::Backend::Emulator);
    config.emulator_site = Some(site_dir);
    let path = dir.join("connector.toml");
    crate::commands::connectors::write_connector_config(&path, &config)?;
    let mut connector = tokio::process::Command::new(std::env::current_exe()?)
        .args(["connector", "run", "--config"])
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let started = Instant::now();
    let job: Job = client
        .post(
            &format!("/api/v1/connectors/{}/inventory", creds.remote_id),
            &serde_json::json!({}),
        )
        .await?;
    let job = crate::commands::jobs::wait_for_job(client, job.id, Duration::from_secs(600)).await?;
    let secs = started.elapsed().as_secs_f64();
    let _ = connector.kill().await;
    if job.state != JobState::Succeeded {
        bail!(
            "the inventory {}: {}",
            job.state.as_str(),
            job.error.unwrap_or_default()
        );
    }
    let inventory: ferry_proto::inventory::InventoryResult = client
        .get(&format!(
            "/api/v1/connectors/{}/applications",
            creds.remote_id
        ))
        .await?;
    if inventory.applications.len() != apps {
        bail!(
            "the inventory holds {} applications, not {apps}",
            inventory.applications.len()
        );
    }
    Ok(secs)
}
