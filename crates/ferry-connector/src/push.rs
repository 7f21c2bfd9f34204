//! The `push` job: download the package (resuming, verified), unpack it safely to
//! `<share>\<package name>`, generate the push script with `ferry-sccm`, and run it through a
//! backend — Windows PowerShell with the ConfigMgr module, or the emulated site. Every
//! `FERRY-RESULT` line the script prints becomes a progress step as it happens.
//!
//! Re-running converges: the script is idempotent (it finds and updates what exists), the
//! unpacked folder is replaced as a whole, and a finished download is reused after verifying
//! its hash again. So a connector killed at any point leaves a job that, run again, ends with
//! one correct application.

use std::path::PathBuf;

use ferry_proto::job::{JobKind, JobPayload, LeasedJob};
use ferry_proto::push::PushPayload;
use futures_util::future::BoxFuture;
use serde_json::{Map, Value, json};

use crate::backend::ScriptBackend;
use crate::config::ConnectorConfig;
use crate::executor::{Executor, JobContext, JobFailure, fail};

/// Serialises unpacking within this process.
static UNPACK_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

pub struct Push {
    scripts: ScriptBackend,
    share_dir: Option<PathBuf>,
}

impl Push {
    pub fn new(config: &ConnectorConfig) -> Self {
        Push {
            scripts: ScriptBackend::new(config),
            share_dir: config.share_dir.clone(),
        }
    }
}

impl Executor for Push {
    fn kind(&self) -> JobKind {
        JobKind::Push
    }

    fn run<'a>(
        &'a self,
        job: &'a LeasedJob,
        ctx: JobContext,
    ) -> BoxFuture<'a, Result<Value, JobFailure>> {
        Box::pin(async move {
            let payload: &PushPayload = crate::executor::payload_as(job, |p| match p {
                JobPayload::Push(p) => Some(p),
                _ => None,
            })?;
            let spec = &payload.spec;
            ferry_sccm::spec::validate(spec).map_err(fail)?;
            let name = spec.application.name.clone();
            // The hub checks this too; the connector does not trust a payload to keep a path
            // inside its share.
            if !ferry_proto::push::is_folder_name(&name) {
                return Err(fail(format!(
                    "application name {name:?} cannot be a folder name"
                )));
            }

            let zip = download(&ctx, payload).await?;

            let share = match &self.share_dir {
                Some(dir) => dir.clone(),
                None if cfg!(windows) => PathBuf::from(&spec.site.share_path),
                None => ctx.work_dir.join("share"),
            };
            let dest = share.join(&name);
            ctx.progress(
                "unpack",
                Some(format!("unpacking to {}", dest.display())),
                Some(40),
            );
            let report = unpack(zip, dest.clone()).await?;
            ctx.progress(
                "unpack",
                Some(format!(
                    "{} files, {} bytes in {}",
                    report.files_written,
                    report.bytes_written,
                    dest.display()
                )),
                Some(50),
            );

            let script = ferry_sccm::scripts::push_script(spec).map_err(fail)?;
            let text = ferry_sccm::generate(&script);
            let steps = self
                .scripts
                .run(&ctx, job.id, &text, |step| report_step(&ctx, step))
                .await?;
            let step = |name: &str| {
                steps
                    .iter()
                    .find(|s| s.get("step").and_then(Value::as_str) == Some(name))
                    .cloned()
            };
            let app = step("application").unwrap_or_default();
            Ok(json!({
                "application": name,
                "ci_id": app.get("ci_id"),
                "model_name": app.get("model_name"),
                "revision": app.get("revision"),
                "deployment_type": step("deployment_type"),
                "deployment": step("deployment"),
                "folder": step("folder"),
                "content_location": spec.deployment_type.content_location,
                "unpacked_to": dest.display().to_string(),
                "backend": self.scripts.name(),
                "steps": steps,
            }))
        })
    }
}

/// Progress percentages for the script's steps, between "unpacked" (50) and "done" (100).
fn step_percent(step: &str) -> Option<u8> {
    Some(match step {
        "connected" => 55,
        "application" => 65,
        "deployment_type" => 75,
        "content" => 85,
        "deployment" => 92,
        "folder" => 97,
        "done" => 100,
        _ => return None,
    })
}

fn report_step(ctx: &JobContext, step: &Map<String, Value>) {
    let name = step.get("step").and_then(Value::as_str).unwrap_or("script");
    let detail: Vec<String> = step
        .iter()
        .filter(|(k, _)| k.as_str() != "step")
        .map(|(k, v)| {
            format!(
                "{k}={}",
                v.as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| v.to_string())
            )
        })
        .collect();
    let message = (!detail.is_empty()).then(|| detail.join(" "));
    ctx.progress(name, message, step_percent(name));
}

/// Downloads the package into `<work_dir>/downloads/<sha256>.zip`, resuming a partial file
/// with `Range`, and verifies size and SHA-256 before anything uses it.
async fn download(ctx: &JobContext, payload: &PushPayload) -> Result<PathBuf, JobFailure> {
    let dir = ctx.work_dir.join("downloads");
    tokio::fs::create_dir_all(&dir).await.map_err(fail)?;
    let done = dir.join(format!("{}.zip", payload.sha256));
    let part = dir.join(format!("{}.zip.part", payload.sha256));
    if tokio::fs::metadata(&done).await.is_ok() {
        if ferry_client::transfer::sha256_file(&done)
            .await
            .map_err(fail)?
            == payload.sha256
        {
            ctx.progress(
                "download",
                Some("already downloaded and verified".to_owned()),
                Some(30),
            );
            return Ok(done);
        }
        let _ = tokio::fs::remove_file(&done).await;
    }
    let have = tokio::fs::metadata(&part)
        .await
        .map(|m| m.len())
        .unwrap_or(0);
    if have > 0 && have <= payload.size {
        ctx.progress(
            "download",
            Some(format!("resuming at byte {have} of {}", payload.size)),
            None,
        );
    }
    let expected = ferry_client::transfer::Expected {
        size: payload.size,
        sha256: payload.sha256.clone(),
    };
    let report = |have: u64, size: u64| {
        let pct = (30 * have / size.max(1)) as u8;
        ctx.progress(
            "download",
            Some(format!("{have} of {size} bytes")),
            Some(pct),
        );
    };
    ctx.hub
        .download_package(
            payload.package_id,
            &part,
            &expected,
            ctx.lease.patience(),
            &report,
        )
        .await?;
    tokio::fs::rename(&part, &done).await.map_err(fail)?;
    ctx.progress(
        "download",
        Some("downloaded and verified (SHA-256)".to_owned()),
        Some(30),
    );
    Ok(done)
}

/// Replaces `dest` with the package's content (a re-run after a crash must not mix old and new
/// files), through `ferry-package`'s checked extraction.
async fn unpack(zip: PathBuf, dest: PathBuf) -> Result<ferry_package::ExtractReport, JobFailure> {
    tokio::task::spawn_blocking(move || {
        // A cancelled job's extraction may still be running on its thread: wait for it rather
        // than clear the folder under it.
        let _one_at_a_time = UNPACK_LOCK.lock().unwrap_or_else(|p| p.into_inner());
        match std::fs::remove_dir_all(&dest) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(fail(format!("cannot clear {}: {e}", dest.display())));
            }
            _ => {}
        }
        let file = std::fs::File::open(&zip).map_err(fail)?;
        ferry_package::extract(
            std::io::BufReader::new(file),
            &dest,
            &ferry_package::Limits::default(),
        )
        .map_err(fail)
    })
    .await
    .map_err(fail)?
}
