//! The `import` job: for each chosen application, look up its SDMPackageXML in the site (the
//! content-location script), find its content location, zip that folder (deterministically,
//! streamed to a file) and upload it to the hub as a package with the resumable upload.

use std::path::{Path, PathBuf};

use ferry_proto::inventory::{ImportPayload, ImportResult, ImportedApplication};
use ferry_proto::job::{JobKind, JobPayload, LeasedJob};
use futures_util::future::BoxFuture;
use serde_json::Value;

use crate::backend::ScriptBackend;
use crate::config::ConnectorConfig;
use crate::executor::{Executor, JobContext, JobFailure, fail};

pub struct Import {
    scripts: ScriptBackend,
    share_dir: Option<PathBuf>,
}

impl Import {
    pub fn new(config: &ConnectorConfig) -> Self {
        Import {
            scripts: ScriptBackend::new(config),
            share_dir: config.share_dir.clone(),
        }
    }
}

impl Executor for Import {
    fn kind(&self) -> JobKind {
        JobKind::Import
    }

    fn run<'a>(
        &'a self,
        job: &'a LeasedJob,
        ctx: JobContext,
    ) -> BoxFuture<'a, Result<Value, JobFailure>> {
        Box::pin(async move {
            let payload: &ImportPayload = crate::executor::payload_as(job, |p| match p {
                JobPayload::Import(i) => Some(i),
                _ => None,
            })?;
            let models: Vec<String> = payload
                .applications
                .iter()
                .map(|a| a.model_name.clone())
                .collect();
            let script = ferry_sccm::scripts::content_location_script(
                &payload.site_code,
                &payload.console_path,
                &models,
            )
            .map_err(fail)?;
            let steps = self
                .scripts
                .run(&ctx, job.id, &ferry_sccm::generate(&script), |_| {})
                .await?;
            let dir = ctx.work_dir.join("imports");
            tokio::fs::create_dir_all(&dir).await.map_err(fail)?;
            let mut imports = Vec::new();
            let total = payload.applications.len().max(1);
            for (i, target) in payload.applications.iter().enumerate() {
                let line = steps
                    .iter()
                    .find(|s| {
                        s.get("model_name").and_then(Value::as_str)
                            == Some(target.model_name.as_str())
                    })
                    .ok_or_else(|| {
                        fail(format!(
                            "{}: the site did not answer for this application",
                            target.name
                        ))
                    })?;
                let xml = line
                    .get("sdm_package_xml")
                    .and_then(Value::as_str)
                    .ok_or_else(|| {
                        fail(format!("{}: not found in the site any more", target.name))
                    })?;
                let app = ferry_sccm::sdm::parse(xml.as_bytes())
                    .map_err(|e| fail(format!("{}: {e}", target.name)))?;
                let location = app
                    .deployment_types
                    .iter()
                    .find_map(|dt| dt.content_locations.first().cloned())
                    .ok_or_else(|| {
                        fail(format!(
                            "{}: no deployment type has content to import",
                            target.name
                        ))
                    })?;
                let local = self.local_path(&location, payload.share_path.as_deref())?;
                let pct = |step: usize| Some((100 * (i * 3 + step) / (total * 3)) as u8);
                ctx.progress(
                    "pack",
                    Some(format!("{}: zipping {}", target.name, local.display())),
                    pct(0),
                );
                let zip = dir.join(format!("{}.zip", target.ci_id));
                let (files, sha256) = pack(local.clone(), zip.clone()).await?;
                ctx.progress(
                    "upload",
                    Some(format!("{}: uploading {files} files", target.name)),
                    pct(1),
                );
                let filename = format!("{}.zip", sanitize(&target.name));
                // An upload a killed or interrupted run opened is continued, never left open
                // beside a new one: its id is kept next to the zip (packing is deterministic,
                // so the same content has the same hash).
                let session = dir.join(format!("{sha256}.upload"));
                let resume = tokio::fs::read_to_string(&session)
                    .await
                    .ok()
                    .and_then(|s| s.trim().parse::<uuid::Uuid>().ok());
                let options = ferry_client::transfer::UploadOptions {
                    filename: Some(filename),
                    sha256: Some(sha256.clone()),
                    resume,
                    patience: ctx.lease.patience(),
                };
                let on_open = |id: uuid::Uuid| {
                    let _ = std::fs::write(&session, id.to_string());
                };
                let uploaded = ctx
                    .hub
                    .upload_package_with(
                        &zip,
                        &options,
                        &ferry_client::transfer::no_progress,
                        &on_open,
                    )
                    .await;
                let package = match uploaded {
                    // The session is gone (expired, or the hub lost it): start a new one.
                    Err(e)
                        if resume.is_some()
                            && e.status() == Some(reqwest::StatusCode::NOT_FOUND) =>
                    {
                        let fresh = ferry_client::transfer::UploadOptions {
                            resume: None,
                            ..options
                        };
                        ctx.hub
                            .upload_package_with(
                                &zip,
                                &fresh,
                                &ferry_client::transfer::no_progress,
                                &on_open,
                            )
                            .await?
                    }
                    other => other?,
                };
                let _ = tokio::fs::remove_file(&session).await;
                let _ = tokio::fs::remove_file(&zip).await;
                ctx.progress(
                    "imported",
                    Some(format!("{}: package {}", target.name, package.id)),
                    pct(3),
                );
                imports.push(ImportedApplication {
                    model_name: target.model_name.clone(),
                    ci_id: target.ci_id,
                    name: target.name.clone(),
                    content_location: location,
                    package_id: package.id,
                    sha256,
                    files,
                    metadata: serde_json::to_value(&app).map_err(fail)?,
                });
            }
            serde_json::to_value(ImportResult { imports }).map_err(fail)
        })
    }
}

impl Import {
    /// Where a content location (a UNC path in ConfigMgr) is readable from this connector: the
    /// path itself on Windows; below `share_dir` when the location is under the site's share.
    fn local_path(&self, location: &str, share_path: Option<&str>) -> Result<PathBuf, JobFailure> {
        if let (Some(dir), Some(share)) = (&self.share_dir, share_path) {
            let share = share.trim_end_matches('\\');
            // Byte-safe, case-insensitive prefix match that must end at a separator, so that
            // `\\srv\pkgs-old` is not taken for `\\srv\pkgs`.
            let below = location
                .get(..share.len())
                .is_some_and(|p| p.eq_ignore_ascii_case(share))
                && location[share.len()..].starts_with('\\');
            if below {
                let mut path = dir.clone();
                for part in location[share.len()..]
                    .split('\\')
                    .filter(|p| !p.is_empty())
                {
                    // Each part must be one plain name: no `/`, drive, root, `.` or `..` that
                    // would replace the path or climb out of the share.
                    let mut components = Path::new(part).components();
                    let single = matches!(
                        (components.next(), components.next()),
                        (Some(std::path::Component::Normal(_)), None)
                    );
                    if !single || part.contains('/') || part.contains(':') {
                        return Err(fail(format!(
                            "content location {location} has an unsafe part {part:?}"
                        )));
                    }
                    path.push(part);
                }
                return Ok(path);
            }
        }
        if cfg!(windows) {
            return Ok(PathBuf::from(location));
        }
        Err(fail(format!(
            "content location {location} is not below the site's share; set share_dir for it"
        )))
    }
}

/// A file name for the package made from an application name.
fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_control() || "\\/:*?\"<>|".contains(c) {
                '_'
            } else {
                c
            }
        })
        .collect()
}

/// Zips `dir` into `zip` and returns the file count and the archive's SHA-256.
async fn pack(dir: PathBuf, zip: PathBuf) -> Result<(usize, String), JobFailure> {
    let (dir, zip2) = (dir, zip.clone());
    let files = tokio::task::spawn_blocking(move || -> Result<usize, JobFailure> {
        let zip = zip2;
        if !dir.is_dir() {
            return Err(fail(format!(
                "content folder {} does not exist",
                dir.display()
            )));
        }
        let out = std::fs::File::create(&zip).map_err(fail)?;
        let report =
            ferry_package::pack_folder(&dir, std::io::BufWriter::new(out)).map_err(fail)?;
        Ok(report.files)
    })
    .await
    .map_err(fail)??;
    let sha256 = ferry_client::transfer::sha256_file(&zip)
        .await
        .map_err(fail)?;
    Ok((files, sha256))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn importer() -> Import {
        let mut config = ConnectorConfig::new("http://hub".into(), uuid::Uuid::nil(), "s".into());
        config.share_dir = Some(PathBuf::from("/srv/share"));
        Import::new(&config)
    }

    #[test]
    fn content_below_the_share_maps_into_share_dir() {
        let path = importer()
            .local_path("\\\\srv\\pkgs\\App 1\\Files", Some("\\\\srv\\pkgs"))
            .unwrap();
        assert_eq!(path, PathBuf::from("/srv/share/App 1/Files"));
    }

    #[test]
    fn locations_that_would_leave_the_share_are_refused() {
        let share = Some("\\\\srv\\pkgs");
        for bad in [
            "\\\\srv\\pkgs\\/home/ferry/.ssh",
            "\\\\srv\\pkgs\\x/../../../etc",
            "\\\\srv\\pkgs\\..\\etc",
            "\\\\srv\\pkgs\\C:",
            "\\\\srv\\pkgs-old\\App",
            "\\\\srv\\pkgé\\x",
        ] {
            assert!(importer().local_path(bad, share).is_err(), "{bad}");
        }
    }
}
