//! The `diagnostics` job: what the connector can see of its machine and of the hub. An
//! administrator's first check after installing a connector ("is PowerShell there, is the
//! console installed where the hub thinks, is there disk, how far away is the hub").

use std::path::{Path, PathBuf};
use std::time::Duration;

use ferry_proto::diagnostics::{DiagnosticsReport, DiagnosticsRequest, RttSummary};
use ferry_proto::job::{JobKind, JobPayload, LeasedJob};
use futures_util::future::BoxFuture;

use crate::executor::{Executor, JobContext, JobFailure};

pub struct Diagnostics;

impl Executor for Diagnostics {
    fn kind(&self) -> JobKind {
        JobKind::Diagnostics
    }

    fn run<'a>(
        &'a self,
        job: &'a LeasedJob,
        ctx: JobContext,
    ) -> BoxFuture<'a, Result<serde_json::Value, JobFailure>> {
        Box::pin(async move {
            let request: &DiagnosticsRequest = crate::executor::payload_as(job, |p| match p {
                JobPayload::Diagnostics(d) => Some(d),
                _ => None,
            })?;
            ctx.progress(
                "system",
                Some("looking at this machine".to_owned()),
                Some(10),
            );
            let console_path = request.console_path.clone();
            let console_module_found = console_path
                .as_deref()
                .is_some_and(|p| Path::new(p).join("ConfigurationManager.psd1").is_file());
            std::fs::create_dir_all(&ctx.work_dir).map_err(|e| {
                JobFailure::Failed(format!(
                    "cannot create work dir {}: {e}",
                    ctx.work_dir.display()
                ))
            })?;
            let work_dir_free_bytes = fs4::available_space(&ctx.work_dir).ok();

            let samples = request.rtt_samples.unwrap_or(3);
            let interval = Duration::from_millis(u64::from(request.rtt_interval_ms.unwrap_or(0)));
            let mut rtts = Vec::with_capacity(samples as usize);
            for i in 0..samples {
                if i > 0 && !interval.is_zero() {
                    tokio::time::sleep(interval).await;
                }
                let rtt = ctx
                    .hub
                    .ping()
                    .await
                    .map_err(|e| JobFailure::Failed(format!("hub round trip failed: {e}")))?;
                rtts.push(rtt.as_secs_f64() * 1000.0);
                let percent = 20 + (70 * (i + 1) / samples) as u8;
                ctx.progress(
                    "hub_rtt",
                    Some(format!(
                        "round trip {} of {samples}: {:.1} ms",
                        i + 1,
                        rtts[i as usize]
                    )),
                    Some(percent),
                );
            }
            let report = DiagnosticsReport {
                connector_version: env!("CARGO_PKG_VERSION").to_owned(),
                os: std::env::consts::OS.to_owned(),
                os_version: os_version().await,
                arch: std::env::consts::ARCH.to_owned(),
                hostname: hostname(),
                windows_powershell: find_on_path("powershell.exe").map(|p| p.display().to_string()),
                pwsh: find_on_path(if cfg!(windows) { "pwsh.exe" } else { "pwsh" })
                    .map(|p| p.display().to_string()),
                console_path,
                console_module_found,
                work_dir: ctx.work_dir.display().to_string(),
                work_dir_free_bytes,
                hub_rtt_ms: summarize(&rtts),
            };
            ctx.progress("done", None, Some(100));
            serde_json::to_value(report).map_err(|e| JobFailure::Failed(e.to_string()))
        })
    }
}

fn summarize(rtts: &[f64]) -> RttSummary {
    let n = rtts.len().max(1) as f64;
    RttSummary {
        samples: rtts.len() as u32,
        min: rtts
            .iter()
            .copied()
            .fold(f64::INFINITY, f64::min)
            .min(f64::MAX),
        avg: rtts.iter().sum::<f64>() / n,
        max: rtts.iter().copied().fold(0.0, f64::max),
    }
}

/// First match of `name` in the `PATH` directories.
pub fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

fn hostname() -> Option<String> {
    for var in ["COMPUTERNAME", "HOSTNAME"] {
        if let Ok(v) = std::env::var(var)
            && !v.is_empty()
        {
            return Some(v);
        }
    }
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
}

async fn os_version() -> Option<String> {
    if cfg!(windows) {
        // `ver` is a cmd built-in; it prints e.g. "Microsoft Windows [Version 10.0.20348.2340]".
        let out = tokio::process::Command::new("cmd")
            .args(["/C", "ver"])
            .kill_on_drop(true)
            .output()
            .await
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        (!text.is_empty()).then_some(text)
    } else {
        let text = std::fs::read_to_string("/etc/os-release").ok()?;
        text.lines()
            .find_map(|l| l.strip_prefix("PRETTY_NAME="))
            .map(|v| v.trim_matches('"').to_owned())
    }
}
