//! `ferry bench abuse`: what two attacks of the adversarial probe cost a hub, measured against
//! any hub binary (this one by default, an older build with `--hub-binary` for before/after):
//!
//! - **Idle sockets.** The hub runs with a small open-file limit (the probe's 512); the bench
//!   opens idle TCP connections in steps and after each step asks `/healthz` on a fresh
//!   connection. It reports how many idle sockets it took to stop the hub answering, or that
//!   it still answered after all of them.
//! - **An oversized report.** A connector posts a 63 MiB result of `[0,0,…]` — once to a job
//!   that does not exist, once to its own leased job — and the bench reads the hub's peak
//!   resident memory (`VmHWM`), each on a fresh hub.
//!
//! Linux only (`/proc`); the numbers are for comparing builds on one machine.

use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::time::Duration;

use anyhow::Context;
use ferry_proto::connector::{ConnectorCredentials, NewConnector, SiteSettings};
use serde::Serialize;
use uuid::Uuid;

#[derive(Debug, clap::Args)]
pub struct AbuseArgs {
    /// The hub binary under test; this `ferry` by default.
    #[arg(long)]
    pub hub_binary: Option<PathBuf>,
    /// The open-file limit the hub runs with for the idle-socket attack.
    #[arg(long, default_value_t = 512)]
    pub files: u64,
    /// Most idle sockets to open.
    #[arg(long, default_value_t = 2000)]
    pub max_sockets: usize,
    /// Idle sockets opened per step.
    #[arg(long, default_value_t = 32)]
    pub step: usize,
    /// Size of the oversized report, MiB.
    #[arg(long, default_value_t = 63)]
    pub report_mib: usize,
    /// Print a JSON object as the last line.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Default, Serialize)]
struct Report {
    hub_binary: String,
    files: u64,
    /// Idle sockets open when `/healthz` first failed; `None`: it answered throughout.
    idle_sockets_to_deny_service: Option<usize>,
    idle_sockets_opened: usize,
    healthz_after_all_sockets: bool,
    report_mib: usize,
    rss_idle_mib: f64,
    /// Peak RSS after a report to a job that does not exist, and the answer's status.
    rss_peak_report_to_no_job_mib: f64,
    report_to_no_job_status: u16,
    /// Peak RSS after a report to the connector's own leased job.
    rss_peak_report_to_own_job_mib: f64,
    report_to_own_job_status: u16,
}

struct Hub {
    child: std::process::Child,
    pid: u32,
    url: String,
    token: String,
}

impl Drop for Hub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `binary serve` on a fresh data dir with at most `files` open files.
async fn start(binary: &Path, dir: &Path, files: Option<u64>) -> anyhow::Result<Hub> {
    let data = dir.join("hub");
    std::fs::create_dir_all(dir)?;
    let config = format!(
        "listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\nlog_level = \"error\"\nsqlite_synchronous = \"normal\"\n",
        data.display()
    );
    let config_path = dir.join("hub.toml");
    std::fs::write(&config_path, config)?;
    let mut command = std::process::Command::new(binary);
    command
        .args(["serve", "--config"])
        .arg(&config_path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    #[cfg(not(unix))]
    if files.is_some() {
        anyhow::bail!("limiting the hub's open files needs Unix");
    }
    #[cfg(unix)]
    if let Some(files) = files {
        use std::os::unix::process::CommandExt;
        // SAFETY: setrlimit is async-signal-safe and touches only the child's own limits.
        unsafe {
            command.pre_exec(move || {
                let lim = libc::rlimit {
                    rlim_cur: files as libc::rlim_t,
                    rlim_max: files as libc::rlim_t,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    let child = command.spawn().context("starting the hub")?;
    let pid = child.id();
    let url = super::dispatch::announced_url(&data).await?;
    let token = std::fs::read_to_string(data.join(ferry_hub::ADMIN_TOKEN_FILE))?
        .trim()
        .to_owned();
    Ok(Hub {
        child,
        pid,
        url,
        token,
    })
}

fn status_kib(pid: u32, field: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(field).map(str::to_owned))
        })
        .and_then(|v| v.split_whitespace().next().and_then(|n| n.parse().ok()))
        .unwrap_or(0.0)
}

async fn healthz(url: &str) -> bool {
    let Ok(client) = reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()
    else {
        return false;
    };
    client
        .get(format!("{url}/healthz"))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
}

pub async fn abuse(args: AbuseArgs) -> anyhow::Result<ExitCode> {
    crate::sys::raise_fd_limit();
    let binary = match &args.hub_binary {
        Some(b) => b.clone(),
        None => std::env::current_exe()?,
    };
    let root = std::env::temp_dir().join(format!("ferry-bench-abuse-{}", Uuid::new_v4().simple()));
    let result = run(&args, &binary, &root).await;
    let _ = std::fs::remove_dir_all(&root);
    let report = result?;
    println!("hub binary                         {}", report.hub_binary);
    println!(
        "idle sockets to deny service       {} (hub open-file limit {}; {} opened)",
        report
            .idle_sockets_to_deny_service
            .map_or_else(|| "not denied".to_owned(), |n| n.to_string()),
        report.files,
        report.idle_sockets_opened
    );
    println!(
        "/healthz after all sockets         {}",
        if report.healthz_after_all_sockets {
            "answers"
        } else {
            "does not answer"
        }
    );
    println!(
        "hub RSS idle                       {:.1} MiB",
        report.rss_idle_mib
    );
    println!(
        "peak RSS, {} MiB report to no job  {:.1} MiB (answer {})",
        report.report_mib, report.rss_peak_report_to_no_job_mib, report.report_to_no_job_status
    );
    println!(
        "peak RSS, {} MiB report to own job {:.1} MiB (answer {})",
        report.report_mib, report.rss_peak_report_to_own_job_mib, report.report_to_own_job_status
    );
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    }
    Ok(ExitCode::SUCCESS)
}

async fn run(args: &AbuseArgs, binary: &Path, root: &Path) -> anyhow::Result<Report> {
    let mut report = Report {
        hub_binary: binary.display().to_string(),
        files: args.files,
        report_mib: args.report_mib,
        ..Report::default()
    };

    // 1. Idle sockets against a hub with few file descriptors.
    {
        let hub = start(binary, &root.join("sockets"), Some(args.files)).await?;
        let addr = hub.url.trim_start_matches("http://").to_owned();
        let mut sockets = Vec::new();
        'open: while sockets.len() < args.max_sockets {
            for _ in 0..args.step {
                match tokio::net::TcpStream::connect(&addr).await {
                    Ok(s) => sockets.push(s),
                    // This process ran out of sockets: what was opened is the answer.
                    Err(_) => break 'open,
                }
            }
            if !healthz(&hub.url).await && report.idle_sockets_to_deny_service.is_none() {
                report.idle_sockets_to_deny_service = Some(sockets.len());
                eprintln!(
                    "/healthz stopped answering at {} idle sockets",
                    sockets.len()
                );
                break;
            }
        }
        report.idle_sockets_opened = sockets.len();
        report.healthz_after_all_sockets = healthz(&hub.url).await;
    }

    // 2. An oversized report, to no job and to the connector's own job, each on a fresh hub.
    let body = oversized_report(args.report_mib);
    for own in [false, true] {
        let hub = start(binary, &root.join(format!("report-{own}")), None).await?;
        let http = reqwest::Client::new();
        let creds: ConnectorCredentials = http
            .post(format!("{}/api/v1/connectors", hub.url))
            .bearer_auth(&hub.token)
            .json(&NewConnector {
                name: "bench".into(),
                site: SiteSettings::default(),
            })
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let auth = format!("Bearer {}:{}", creds.remote_id, creds.secret);
        let job = if own {
            let job: serde_json::Value = http
                .post(format!("{}/api/v1/jobs", hub.url))
                .bearer_auth(&hub.token)
                .json(&serde_json::json!({"connector_id": creds.remote_id, "kind": "diagnostics", "payload": null}))
                .send()
                .await?
                .error_for_status()?
                .json()
                .await?;
            let leased: serde_json::Value = http
                .get(format!("{}/api/v1/connector/jobs/next?hold=1", hub.url))
                .header("authorization", &auth)
                .send()
                .await?
                .json()
                .await?;
            anyhow::ensure!(
                job["id"] == leased["id"],
                "the leased job is not the one enqueued"
            );
            (
                leased["id"].as_str().unwrap_or_default().to_owned(),
                leased["lease_token"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        } else {
            (Uuid::new_v4().to_string(), Uuid::new_v4().to_string())
        };
        tokio::time::sleep(Duration::from_millis(300)).await;
        if !own {
            report.rss_idle_mib = status_kib(hub.pid, "VmRSS:") / 1024.0;
        }
        let payload = body.replacen("LEASE", &job.1, 1);
        let status = http
            .post(format!(
                "{}/api/v1/connector/jobs/{}/result",
                hub.url, job.0
            ))
            .header("authorization", &auth)
            .header("content-type", "application/json")
            .body(payload)
            .send()
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(0);
        let peak = status_kib(hub.pid, "VmHWM:") / 1024.0;
        if own {
            report.rss_peak_report_to_own_job_mib = peak;
            report.report_to_own_job_status = status;
        } else {
            report.rss_peak_report_to_no_job_mib = peak;
            report.report_to_no_job_status = status;
        }
    }
    Ok(report)
}

/// `{"lease_token":"LEASE","outcome":"succeeded","result":[0,0,…]}` of about `mib` MiB.
fn oversized_report(mib: usize) -> String {
    let zeros = mib * 1024 * 1024 / 2;
    let mut s = String::with_capacity(zeros * 2 + 100);
    s.push_str(r#"{"lease_token":"LEASE","outcome":"succeeded","result":["#);
    for i in 0..zeros {
        if i > 0 {
            s.push(',');
        }
        s.push('0');
    }
    s.push_str("]}");
    s
}
