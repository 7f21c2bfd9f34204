//! `ferry demo`: the whole product on one machine, explained as it happens.
//!
//! It makes a private CA and a server certificate, starts the hub over HTTPS and a registered
//! connector as child processes (their logs go to files in the demo folder), sends a job
//! through, and prints each step in plain words. Later workflows add steps to [`run`]; each
//! step is one function that prints what it did.

pub mod agents;

use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use ferry_connector::ConnectorConfig;
use ferry_proto::connector::{ConnectorCredentials, NewConnector, SiteSettings};
use ferry_proto::diagnostics::DiagnosticsReport;
use ferry_proto::job::{Job, JobKind, JobState, NewJob};
use tokio::process::{Child, Command};

use crate::admin_client::AdminClient;

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Keep everything in this folder (created if needed) instead of a temporary one.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Port for the hub (0 picks a free one).
    #[arg(long, default_value_t = 8443)]
    pub port: u16,
    /// Run the demo once and exit 0 (for scripts); prints a JSON summary as the last line.
    #[arg(long)]
    pub exit_after: bool,
}

/// A child process that is stopped (SIGTERM, then SIGKILL) when the demo ends.
pub(crate) struct Managed {
    pub(crate) name: String,
    pub(crate) child: Child,
}

impl Managed {
    async fn stop(mut self) {
        terminate(&self.child);
        if tokio::time::timeout(Duration::from_secs(12), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
        say(&format!("stopped the {}", self.name));
    }
}

#[cfg(unix)]
fn terminate(child: &Child) {
    if let Some(pid) = child.id() {
        // SAFETY: kill(2) with a pid we spawned and still own; no memory is involved.
        unsafe {
            libc::kill(pid as libc::pid_t, libc::SIGTERM);
        }
    }
}

#[cfg(not(unix))]
fn terminate(_child: &Child) {}

pub(crate) fn say(line: &str) {
    println!("  {line}");
}

pub async fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let (dir, temporary) = match &args.data_dir {
        Some(d) => (d.clone(), false),
        None => (
            std::env::temp_dir().join(format!("ferry-demo-{}", uuid::Uuid::new_v4().simple())),
            true,
        ),
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    println!(
        "Ferry demo: a hub and an SCCM connector on this machine, in {}",
        dir.display()
    );

    let outcome = steps(&args, &dir).await;
    let (children, result) = match outcome {
        Ok((children, summary)) => (children, Ok(summary)),
        Err((children, e)) => (children, Err(e)),
    };
    if let (Ok(summary), false) = (&result, args.exit_after) {
        let hub = summary["hub"].as_str().unwrap_or("?");
        let data = dir.join("hub");
        println!("\nThe hub keeps running at {hub}. Try, in another shell:");
        println!(
            "  ferry connector list --hub {hub} --data-dir {} --ca-cert {}",
            data.display(),
            dir.join("tls/ca.pem").display()
        );
        println!(
            "  ferry sccm site show --site {}",
            dir.join("site").display()
        );
        println!(
            "  ferry device list --hub {hub} --data-dir {} --ca-cert {}",
            data.display(),
            dir.join("tls/ca.pem").display()
        );
        println!(
            "  ferry ops start run-script --collection {} --script 'uptime' --watch --hub {hub} --data-dir {} --ca-cert {}",
            summary["agents"]["collection"].as_str().unwrap_or("?"),
            data.display(),
            dir.join("tls/ca.pem").display()
        );
        println!("Press Ctrl-C to stop.");
        crate::commands::hub::shutdown_signal().await;
        println!();
    }
    for child in children.into_iter().rev() {
        child.stop().await;
    }
    if temporary && args.exit_after {
        let _ = std::fs::remove_dir_all(&dir);
    }
    let summary = result?;
    if args.exit_after {
        println!("{summary}");
    }
    Ok(ExitCode::SUCCESS)
}

type StepsResult = Result<(Vec<Managed>, serde_json::Value), (Vec<Managed>, anyhow::Error)>;

async fn steps(args: &DemoArgs, dir: &Path) -> StepsResult {
    let mut children = Vec::new();
    macro_rules! try_step {
        ($e:expr) => {
            match $e {
                Ok(v) => v,
                Err(e) => return Err((children, anyhow::Error::from(e))),
            }
        };
    }
    let tls = try_step!(make_certificates(&dir.join("tls")));
    say("made a private CA and an HTTPS certificate for the hub (tls/)");

    let (hub, client) = try_step!(start_hub(dir, &tls, args.port).await);
    children.push(hub);
    say(&format!(
        "the hub is up at {} (admin token in hub/admin.token, log in hub.log)",
        client.base()
    ));

    let site = SiteSettings {
        site_code: Some("DEM".into()),
        console_path: Some(dir.join("console").display().to_string()),
        share_path: Some(dir.join("share").display().to_string()),
        distribution_point_group: Some("Demo Distribution Group".into()),
        collection: Some("Demo devices".into()),
        folder: Some("Applications/Test 1".into()),
    };
    let creds: ConnectorCredentials = try_step!(
        client
            .post(
                "/api/v1/connectors",
                &NewConnector {
                    name: "demo-connector".into(),
                    site
                }
            )
            .await
    );
    say(&format!(
        "registered connector \"demo-connector\": remote ID {}; its secret is in connector.toml (mode 0600), the hub keeps only a hash",
        creds.remote_id
    ));

    let connector = try_step!(start_connector(dir, client.base(), &tls.ca_cert, &creds).await);
    children.push(connector);
    say(
        "the connector is running (log in connector.log): it dialled out to the hub and waits in a long poll",
    );

    let job = try_step!(run_diagnostics(&client, creds.remote_id).await);
    if job.state != JobState::Succeeded {
        let e = anyhow::anyhow!(
            "the diagnostics job ended {}: {}",
            job.state.as_str(),
            job.error.unwrap_or_default()
        );
        return Err((children, e));
    }

    println!();
    let package = try_step!(upload_sample(&client, dir).await);
    let push = try_step!(push_sample(&client, creds.remote_id, package.id).await);
    if push.state != JobState::Succeeded {
        let e = anyhow::anyhow!(
            "the push ended {}: {}",
            push.state.as_str(),
            push.error.unwrap_or_default()
        );
        return Err((children, e));
    }
    say(&format!(
        "the emulated site (site code DEM) lives in {0}; look at it with: ferry sccm site show --site {0}",
        dir.join("site").display()
    ));
    let imported = try_step!(inventory_and_import(&client, creds.remote_id).await);
    let agents = match crate::demo::agents::run(&client, dir, &tls.ca_cert).await {
        Ok((managed, summary)) => {
            children.extend(managed);
            summary
        }
        Err((managed, e)) => {
            children.extend(managed);
            return Err((children, e));
        }
    };
    let result = push.result_value().unwrap_or_default();
    let summary = serde_json::json!({
        "imported_package": imported,
        "ok": true,
        "hub": client.base(),
        "connector": creds.remote_id,
        "diagnostics_job": job.id,
        "package": package.id,
        "pushed": result["application"],
        "ci_id": result["ci_id"],
        "model_name": result["model_name"],
        "agents": agents,
    });
    Ok((children, summary))
}

pub(crate) struct Tls {
    pub(crate) ca_cert: PathBuf,
    pub(crate) cert: PathBuf,
    pub(crate) key: PathBuf,
}

/// A throw-away CA and a server certificate for `localhost` / `127.0.0.1` signed by it, so the
/// connector verifies the hub exactly as it would in production (no "insecure" switch).
pub(crate) fn make_certificates(dir: &Path) -> anyhow::Result<Tls> {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    };
    std::fs::create_dir_all(dir)?;
    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "Ferry demo CA");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca, ca_key);

    let key = KeyPair::generate()?;
    let mut server = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])?;
    server
        .distinguished_name
        .push(DnType::CommonName, "Ferry demo hub");
    let server_cert = server.signed_by(&key, &issuer)?;

    let tls = Tls {
        ca_cert: dir.join("ca.pem"),
        cert: dir.join("hub.pem"),
        key: dir.join("hub-key.pem"),
    };
    std::fs::write(&tls.ca_cert, ca_cert.pem())?;
    std::fs::write(&tls.cert, server_cert.pem())?;
    ferry_hub::secrets::write_private_file(&tls.key, key.serialize_pem().as_bytes())?;
    Ok(tls)
}

pub(crate) fn spawn_ferry(args: &[&str], log: &Path) -> anyhow::Result<Child> {
    let exe = std::env::current_exe().context("locating the ferry binary")?;
    let log_file =
        std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
    let err_file = log_file.try_clone()?;
    Command::new(exe)
        .args(args)
        .stdin(Stdio::null())
        .stdout(log_file)
        .stderr(err_file)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting ferry {}", args.join(" ")))
}

async fn start_hub(dir: &Path, tls: &Tls, port: u16) -> anyhow::Result<(Managed, AdminClient)> {
    let data = dir.join("hub");
    let config = ferry_hub::HubConfig {
        listen: std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        data_dir: data.clone(),
        tls_cert: Some(tls.cert.clone()),
        tls_key: Some(tls.key.clone()),
        ..Default::default()
    };
    let config_path = dir.join("hub.toml");
    std::fs::write(&config_path, config.to_toml())?;
    let _ = std::fs::remove_file(data.join(ferry_hub::URL_FILE));
    let config_arg = config_path.display().to_string();
    let mut child = spawn_ferry(&["serve", "--config", &config_arg], &dir.join("hub.log"))?;

    let started = Instant::now();
    let url = loop {
        if let Ok(text) = std::fs::read_to_string(data.join(ferry_hub::URL_FILE)) {
            break text.trim().to_owned();
        }
        if let Some(status) = child.try_wait()? {
            bail!(
                "the hub exited ({status}); see {}",
                dir.join("hub.log").display()
            );
        }
        if started.elapsed() > Duration::from_secs(30) {
            bail!(
                "the hub did not start within 30 s; see {}",
                dir.join("hub.log").display()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let token = std::fs::read_to_string(data.join(ferry_hub::ADMIN_TOKEN_FILE))?;
    let client = crate::admin_client::client(&url, token.trim(), Some(&tls.ca_cert))?;
    let _: serde_json::Value = client
        .get("/healthz")
        .await
        .context("the hub is not answering over HTTPS")?;
    Ok((
        Managed {
            name: "hub".into(),
            child,
        },
        client,
    ))
}

async fn start_connector(
    dir: &Path,
    hub_url: &str,
    ca: &Path,
    creds: &ConnectorCredentials,
) -> anyhow::Result<Managed> {
    let mut config =
        ConnectorConfig::new(hub_url.to_owned(), creds.remote_id, creds.secret.clone());
    config.ca_cert = Some(ca.to_owned());
    config.work_dir = dir.join("connector-work");
    config.backend = Some(ferry_connector::config::Backend::Emulator);
    config.emulator_site = Some(dir.join("site"));
    config.share_dir = Some(dir.join("share"));
    let path = dir.join("connector.toml");
    crate::commands::connectors::write_connector_config(&path, &config)?;
    let path_arg = path.display().to_string();
    let child = spawn_ferry(
        &["connector", "run", "--config", &path_arg],
        &dir.join("connector.log"),
    )?;
    Ok(Managed {
        name: "connector".into(),
        child,
    })
}

async fn run_diagnostics(client: &AdminClient, connector: uuid::Uuid) -> anyhow::Result<Job> {
    let new = NewJob {
        connector_id: connector,
        kind: JobKind::Diagnostics,
        payload: serde_json::json!({ "rtt_samples": 3 }),
        not_before: None,
        expires_at: None,
        max_attempts: None,
    };
    let queued: Job = client.post("/api/v1/jobs", &new).await?;
    say(&format!(
        "queued a diagnostics job ({}); the connector is told at once, not at its next poll",
        queued.id
    ));
    let started = Instant::now();
    let job = follow_job(client, queued.id, Duration::from_secs(60)).await?;
    if let Some(report) = job.result_as::<DiagnosticsReport>() {
        say(&format!(
            "the job {} in {:.2} s; the connector reports:",
            job.state.as_str(),
            started.elapsed().as_secs_f64()
        ));
        say(&format!(
            "  connector {} on {} ({}), {}",
            report.connector_version,
            report.os,
            report.os_version.as_deref().unwrap_or("version unknown"),
            report.arch
        ));
        say(&format!(
            "  Windows PowerShell: {}; PowerShell 7: {}; ConfigMgr console module: {}",
            report.windows_powershell.as_deref().unwrap_or("not found"),
            report.pwsh.as_deref().unwrap_or("not found"),
            if report.console_module_found {
                "found"
            } else {
                "not found (off Windows the emulated site stands in)"
            }
        ));
        say(&format!(
            "  free disk in the work folder: {}; hub round trip: {:.1} ms average over {}",
            report
                .work_dir_free_bytes
                .map(human_bytes)
                .unwrap_or_else(|| "unknown".into()),
            report.hub_rtt_ms.avg,
            report.hub_rtt_ms.samples
        ));
    }
    Ok(job)
}

/// Prints a job's history as it happens (polling the hub ten times a second: this is a person
/// watching one job, not a fleet) and returns the job once it has ended.
async fn follow_job(client: &AdminClient, id: uuid::Uuid, limit: Duration) -> anyhow::Result<Job> {
    let started = Instant::now();
    let mut shown = 1; // the "queued" event
    loop {
        let job: Job = client.get(&format!("/api/v1/jobs/{id}")).await?;
        for event in job.events.iter().skip(shown) {
            let text = match (&event.state, &event.step) {
                (Some(state), _) => format!(
                    "    the job {} (attempt {})",
                    state_phrase(*state),
                    event.attempt
                ),
                (None, Some(step)) => {
                    let percent = event
                        .percent
                        .map(|p| format!(" ({p}%)"))
                        .unwrap_or_default();
                    match event.message.as_deref() {
                        Some(m) => format!("    {step}: {m}{percent}"),
                        None => format!("    {step}{percent}"),
                    }
                }
                _ => continue,
            };
            println!("{text}");
        }
        shown = job.events.len();
        if job.state.is_terminal() {
            return Ok(job);
        }
        if started.elapsed() > limit {
            bail!(
                "job {id} did not finish within {} s (state {})",
                limit.as_secs(),
                job.state.as_str()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Builds the sample package (a FileZilla-like MSI in a PSADT v3-style folder), uploads it,
/// and shows what the hub recognised.
async fn upload_sample(
    client: &AdminClient,
    dir: &Path,
) -> anyhow::Result<ferry_proto::package::Package> {
    let zip = ferry_package::sample::filezilla_like()?;
    let path = dir.join("FileZilla_3.46.3_PSADT.zip");
    std::fs::write(&path, &zip)?;
    say(&format!(
        "built a sample package {} ({} bytes): a PSADT v3 wrapper around a FileZilla-like MSI",
        path.display(),
        zip.len()
    ));
    let package = crate::commands::packages::upload(client, &path, None, false).await?;
    let m = &package.metadata.proposal;
    let field = |v: &Option<String>| v.as_deref().unwrap_or("?").to_owned();
    say(&format!(
        "uploaded it (resumable, verified: SHA-256 {}…); the hub read the MSI and proposes:",
        &package.sha256[..12]
    ));
    say(&format!("  package name    {}", field(&m.package_name)));
    say(&format!(
        "  product         {} {} by {}, {}",
        field(&m.product),
        field(&m.version),
        field(&m.vendor),
        field(&m.language)
    ));
    say(&format!("  install         {}", field(&m.install_command)));
    say(&format!(
        "  uninstall       {}",
        field(&m.uninstall_command)
    ));
    say(&format!(
        "  detection       MSI product code {}",
        field(&m.product_code)
    ));
    Ok(package)
}

/// Refreshes the site inventory, shows what the site holds, and imports the pushed application
/// back into the hub as a package. Returns the imported package's ID.
async fn inventory_and_import(
    client: &AdminClient,
    connector: uuid::Uuid,
) -> anyhow::Result<uuid::Uuid> {
    println!();
    let queued: Job = client
        .post(
            &format!("/api/v1/connectors/{connector}/inventory"),
            &serde_json::json!({}),
        )
        .await?;
    say(&format!(
        "queued an inventory job ({}): folders and applications, with their SDMPackageXML",
        queued.id
    ));
    let job = follow_job(client, queued.id, Duration::from_secs(120)).await?;
    if job.state != JobState::Succeeded {
        bail!(
            "the inventory {}: {}",
            job.state.as_str(),
            job.error.unwrap_or_default()
        );
    }
    let inventory: ferry_proto::inventory::InventoryResult = client
        .get(&format!("/api/v1/connectors/{connector}/applications"))
        .await?;
    say(&format!(
        "the site holds {} application(s) in {} folder(s):",
        inventory.applications.len(),
        inventory.folders.len()
    ));
    for app in &inventory.applications {
        let version = app
            .metadata
            .as_ref()
            .and_then(|m| m["version"].as_str())
            .unwrap_or("?");
        say(&format!(
            "  {}  version {version}, folder {}, container {}, resource {}, CI_ID {}{}",
            app.name,
            app.path,
            app.container_id
                .map(|c| c.to_string())
                .unwrap_or_else(|| "-".into()),
            app.resource_id.as_deref().unwrap_or("-"),
            app.ci_id,
            if app.is_duplicated {
                " (name duplicated)"
            } else {
                ""
            }
        ));
    }
    let first = inventory
        .applications
        .first()
        .ok_or_else(|| anyhow::anyhow!("the site has no application to import"))?;
    let request = ferry_proto::inventory::ImportRequest {
        applications: vec![first.model_name.clone()],
    };
    let queued: Job = client
        .post(&format!("/api/v1/connectors/{connector}/import"), &request)
        .await?;
    say(&format!(
        "queued an import of {} ({}): its sources are zipped and uploaded back",
        first.name, queued.id
    ));
    let job = follow_job(client, queued.id, Duration::from_secs(120)).await?;
    if job.state != JobState::Succeeded {
        bail!(
            "the import {}: {}",
            job.state.as_str(),
            job.error.unwrap_or_default()
        );
    }
    let result: ferry_proto::inventory::ImportResult = job
        .result_as()
        .ok_or_else(|| anyhow::anyhow!("the import's result is not an import result"))?;
    let item = result
        .imports
        .first()
        .ok_or_else(|| anyhow::anyhow!("the import returned nothing"))?;
    say(&format!(
        "imported as package {} ({} files, SHA-256 {}…), linked to CI_ID {}",
        item.package_id,
        item.files,
        &item.sha256[..12],
        item.ci_id
    ));
    Ok(item.package_id)
}

/// Pushes the package through the connector into the emulated site and follows every step.
async fn push_sample(
    client: &AdminClient,
    connector: uuid::Uuid,
    package: uuid::Uuid,
) -> anyhow::Result<Job> {
    let request = ferry_proto::push::PushRequest {
        package_id: package,
        connector_id: connector,
        spec: None,
        dry_run: false,
    };
    let queued: Job = client.post("/api/v1/push", &request).await?;
    say(&format!(
        "queued a push job ({}): download, unpack, then the generated PowerShell creates the application and its deployment type, distributes content, deploys and files it",
        queued.id
    ));
    let job = follow_job(client, queued.id, Duration::from_secs(120)).await?;
    if let Some(r) = &job.result_value() {
        say(&format!(
            "the push {}: application CI_ID {}, model name {}",
            state_phrase(job.state),
            r["ci_id"],
            r["model_name"].as_str().unwrap_or("?")
        ));
    }
    Ok(job)
}

fn state_phrase(state: JobState) -> &'static str {
    match state {
        JobState::Queued => "is queued",
        JobState::Leased => "was handed to the connector",
        JobState::Running => "is running",
        JobState::Succeeded => "succeeded",
        JobState::Failed => "failed",
        JobState::Cancelled => "was cancelled",
        JobState::Expired => "expired",
    }
}

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}
