//! The command line: argument types and dispatch to the libraries.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use ferry_connector::ConnectorConfig;
use ferry_proto::connector::{
    Connector, ConnectorCredentials, NewConnector, SiteSettings, UpdateConnector,
};
use ferry_proto::job::{Job, JobKind, NewJob};
use uuid::Uuid;

use crate::admin_client::{AdminClient, HubArgs};
use crate::logging;

#[derive(Debug, Parser)]
#[command(
    name = "ferry",
    version,
    about = "Packaged Windows applications from the packaging team into ConfigMgr and onto endpoints."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the hub (REST API, job queue, long-poll endpoints).
    Serve(ServeArgs),
    /// Register, run and manage SCCM connectors.
    #[command(subcommand)]
    Connector(ConnectorCmd),
    /// Upload and inspect packages.
    #[command(subcommand)]
    Package(crate::package_cmd::PackageCmd),
    /// Push a package into a connector's ConfigMgr site (or show the exact script with --dry-run).
    Push {
        #[arg(long)]
        package: Uuid,
        #[arg(long)]
        connector: Uuid,
        /// A (partial) push specification in JSON laid over the one the hub proposes.
        #[arg(long)]
        spec: Option<PathBuf>,
        /// Print the specification and the exact script; queue nothing.
        #[arg(long)]
        dry_run: bool,
        /// Wait for the push job to end and print it.
        #[arg(long)]
        wait: bool,
        #[command(flatten)]
        hub: HubArgs,
    },
    /// Import applications from a connector's site as packages (by model name or display name,
    /// as listed by `ferry sccm apps`).
    Import {
        #[arg(long)]
        connector: Uuid,
        #[arg(required = true)]
        applications: Vec<String>,
        /// Wait for the import job to end and print it.
        #[arg(long)]
        wait: bool,
        #[command(flatten)]
        hub: HubArgs,
    },
    /// Who did what, newest first.
    Audit {
        #[arg(long, default_value_t = 50)]
        limit: u32,
        #[command(flatten)]
        hub: HubArgs,
    },
    /// Enrol this device and run the endpoint agent.
    #[command(subcommand)]
    Agent(crate::agent_cmd::AgentCmd),
    /// Enrolment secrets for new devices.
    #[command(subcommand, name = "enrollment-secret")]
    EnrollmentSecret(crate::ops_cmd::SecretCmd),
    /// Enrolled devices.
    #[command(subcommand)]
    Device(crate::ops_cmd::DeviceCmd),
    /// Device collections (static lists, or rules on inventory).
    #[command(subcommand)]
    Collection(crate::ops_cmd::CollectionCmd),
    /// Packages deployed to collections (applied at each policy request).
    #[command(subcommand)]
    Deployment(crate::ops_cmd::DeploymentCmd),
    /// Client operations: policy, antivirus scans, scripts, installs, restarts.
    #[command(subcommand)]
    Ops(crate::ops_cmd::OpsCmd),
    /// Enqueue, inspect and cancel jobs.
    #[command(subcommand)]
    Job(JobCmd),
    /// Run hub and connector together on this machine and show a job going through.
    Demo(crate::demo::DemoArgs),
    /// Measure Ferry's performance against a baseline in the same run.
    #[command(subcommand)]
    Bench(BenchCmd),
    /// ConfigMgr tools: parse SDMPackageXML, generate scripts, run them on the emulated site.
    #[command(subcommand)]
    Sccm(crate::sccm_cmd::SccmCmd),
}

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// TOML configuration file; `FERRY_*` environment variables override it.
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Data directory (overrides the file and FERRY_DATA_DIR).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Listen address (overrides the file and FERRY_LISTEN).
    #[arg(long)]
    pub listen: Option<std::net::SocketAddr>,
    /// Print the effective configuration as TOML (every option) and exit.
    #[arg(long)]
    pub print_config: bool,
}

#[derive(Debug, Subcommand)]
pub enum ConnectorCmd {
    /// Register a connector with the hub; prints its remote ID and its secret (shown once).
    Register {
        #[arg(long)]
        name: String,
        #[command(flatten)]
        site: SiteArgs,
        /// Also write a ready-to-run connector config file (mode 0600) here.
        #[arg(long)]
        write_config: Option<PathBuf>,
        #[command(flatten)]
        hub: HubArgs,
    },
    /// Run the connector.
    Run {
        #[arg(long, short)]
        config: PathBuf,
        #[arg(long, value_enum, default_value = "human")]
        log_format: logging::Format,
    },
    /// List registered connectors.
    List {
        #[command(flatten)]
        hub: HubArgs,
    },
    /// Show one connector.
    Show {
        id: Uuid,
        #[command(flatten)]
        hub: HubArgs,
    },
    /// Change a connector's SCCM site settings.
    SetSite {
        id: Uuid,
        #[command(flatten)]
        site: SiteArgs,
        #[command(flatten)]
        hub: HubArgs,
    },
    /// Issue a new secret; the old one stops working at once.
    RotateSecret {
        id: Uuid,
        #[command(flatten)]
        hub: HubArgs,
    },
    /// Refuse the connector's requests (403) until enabled again.
    Disable {
        id: Uuid,
        #[command(flatten)]
        hub: HubArgs,
    },
    Enable {
        id: Uuid,
        #[command(flatten)]
        hub: HubArgs,
    },
}

#[derive(Debug, Clone, Default, clap::Args)]
pub struct SiteArgs {
    /// ConfigMgr site code, e.g. DEM.
    #[arg(long)]
    pub site_code: Option<String>,
    /// The admin console's bin folder.
    #[arg(long)]
    pub console_path: Option<String>,
    /// Network share for package sources.
    #[arg(long)]
    pub share_path: Option<String>,
    #[arg(long)]
    pub distribution_point_group: Option<String>,
    #[arg(long)]
    pub collection: Option<String>,
    /// Console folder, e.g. "Applications/Test 1".
    #[arg(long)]
    pub folder: Option<String>,
}

impl SiteArgs {
    fn settings(&self) -> SiteSettings {
        SiteSettings {
            site_code: self.site_code.clone(),
            console_path: self.console_path.clone(),
            share_path: self.share_path.clone(),
            distribution_point_group: self.distribution_point_group.clone(),
            collection: self.collection.clone(),
            folder: self.folder.clone(),
        }
    }

    fn patch(&self) -> ferry_proto::connector::SiteSettingsPatch {
        let keep = |v: &Option<String>| v.clone().map(Some);
        ferry_proto::connector::SiteSettingsPatch {
            site_code: keep(&self.site_code),
            console_path: keep(&self.console_path),
            share_path: keep(&self.share_path),
            distribution_point_group: keep(&self.distribution_point_group),
            collection: keep(&self.collection),
            folder: keep(&self.folder),
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum JobCmd {
    /// Queue a job for a connector.
    Enqueue {
        #[arg(long)]
        connector: Uuid,
        #[arg(long, default_value = "diagnostics")]
        kind: String,
        /// Kind-specific parameters as JSON.
        #[arg(long)]
        payload: Option<String>,
        /// Wait for the job to end and print it.
        #[arg(long)]
        wait: bool,
        #[command(flatten)]
        hub: HubArgs,
    },
    /// Show a job with its history.
    Show {
        id: Uuid,
        #[command(flatten)]
        hub: HubArgs,
    },
    /// List recent jobs.
    List {
        #[arg(long)]
        connector: Option<Uuid>,
        #[command(flatten)]
        hub: HubArgs,
    },
    /// Cancel a job (a running job is cancelled at its connector's next contact).
    Cancel {
        id: Uuid,
        #[command(flatten)]
        hub: HubArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum BenchCmd {
    /// Job pickup latency: long polls against a 10 s interval poll, on loopback.
    Dispatch(crate::bench::DispatchArgs),
    /// Upload and download through the hub with verification, against sha256sum; and an
    /// inventory of a large emulated site end to end.
    Transfer(crate::bench_transfer::TransferArgs),
    /// SDMPackageXML parsing and script generate/read throughput.
    Sccm(crate::sccm_cmd::SccmBenchArgs),
    /// One client operation to N connected agents, against agents polling every 10 s.
    Fanout(crate::bench_fanout::FanoutArgs),
    /// The fan-out benchmark's load process: many simulated agents in one process.
    #[command(hide = true)]
    Swarm(crate::swarm::SwarmArgs),
}

pub fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Sccm(crate::sccm_cmd::SccmCmd::Apps {
            connector,
            refresh,
            hub,
        }) => runtime()?.block_on(site_apps(connector, refresh, hub)),
        Command::Sccm(cmd) => crate::sccm_cmd::run(cmd),
        Command::Bench(BenchCmd::Sccm(args)) => {
            crate::sccm_cmd::bench(args).map(|()| ExitCode::SUCCESS)
        }
        other => runtime()?.block_on(dispatch_async(other)),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

async fn dispatch_async(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Serve(args) => serve(args).await,
        Command::Connector(cmd) => connector(cmd).await,
        Command::Job(cmd) => job(cmd).await,
        Command::Package(cmd) => crate::package_cmd::run(cmd).await,
        Command::Agent(cmd) => crate::agent_cmd::run(cmd).await,
        Command::EnrollmentSecret(cmd) => crate::ops_cmd::secrets(cmd).await,
        Command::Device(cmd) => crate::ops_cmd::devices(cmd).await,
        Command::Collection(cmd) => crate::ops_cmd::collections(cmd).await,
        Command::Deployment(cmd) => crate::ops_cmd::deployments(cmd).await,
        Command::Ops(cmd) => crate::ops_cmd::ops(cmd).await,
        Command::Audit { limit, hub } => {
            let entries: Vec<ferry_proto::identity::AuditEntry> =
                crate::admin_client::connect(&hub)?
                    .get(&format!("/api/v1/audit?limit={limit}"))
                    .await?;
            for e in entries {
                println!(
                    "{}  {:<24} {:<22} {} {}",
                    e.at,
                    e.actor,
                    e.action,
                    e.target.unwrap_or_default(),
                    e.detail.unwrap_or_default()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Import {
            connector,
            applications,
            wait,
            hub,
        } => {
            let client = crate::admin_client::connect(&hub)?;
            let request = ferry_proto::inventory::ImportRequest { applications };
            let job: Job = client
                .post(&format!("/api/v1/connectors/{connector}/import"), &request)
                .await?;
            report_job(&client, job, wait).await
        }
        Command::Push {
            package,
            connector,
            spec,
            dry_run,
            wait,
            hub,
        } => push(package, connector, spec, dry_run, wait, &hub).await,
        Command::Demo(args) => crate::demo::run(args).await,
        Command::Bench(BenchCmd::Dispatch(args)) => crate::bench::dispatch(args).await,
        Command::Bench(BenchCmd::Transfer(args)) => crate::bench_transfer::run(args).await,
        Command::Bench(BenchCmd::Fanout(args)) => crate::bench_fanout::run(args).await,
        Command::Bench(BenchCmd::Swarm(args)) => crate::swarm::run(args).await,
        Command::Bench(BenchCmd::Sccm(_)) | Command::Sccm(_) => {
            unreachable!("handled synchronously in dispatch")
        }
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let mut config = ferry_hub::HubConfig::load(args.config.as_deref(), std::env::vars())?;
    if let Some(dir) = args.data_dir {
        config.data_dir = dir;
    }
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    if args.print_config {
        print!("{}", config.to_toml());
        return Ok(ExitCode::SUCCESS);
    }
    let format = match config.log_format {
        ferry_hub::config::LogFormat::Human => logging::Format::Human,
        ferry_hub::config::LogFormat::Json => logging::Format::Json,
    };
    logging::init(format, &config.log_level);
    let files = crate::sys::raise_fd_limit();
    tracing::info!(open_files = files, "each agent connection holds one");
    ferry_hub::run(config, shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}

/// Resolves on SIGINT or SIGTERM (Ctrl-C on Windows).
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

async fn connector(cmd: ConnectorCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        ConnectorCmd::Run { config, log_format } => {
            logging::init(log_format, "info");
            let config = ConnectorConfig::load(&config)?;
            let executors = ferry_connector::executor::Executors::standard(&config);
            let runner = ferry_connector::runner::Runner::new(config, executors)?;
            runner.run(shutdown_signal()).await?;
        }
        ConnectorCmd::Register {
            name,
            site,
            write_config,
            hub,
        } => {
            let client = crate::admin_client::connect(&hub)?;
            let creds: ConnectorCredentials = client
                .post(
                    "/api/v1/connectors",
                    &NewConnector {
                        name,
                        site: site.settings(),
                    },
                )
                .await?;
            println!("remote_id: {}", creds.remote_id);
            println!("secret:    {}", creds.secret);
            println!("(the secret is shown once; the hub keeps only a hash of it)");
            if let Some(path) = write_config {
                let mut config =
                    ConnectorConfig::new(client.base().to_owned(), creds.remote_id, creds.secret);
                config.ca_cert = hub.ca_cert.clone();
                write_connector_config(&path, &config)?;
                println!("wrote {}", path.display());
            }
        }
        ConnectorCmd::List { hub } => {
            let list: Vec<Connector> = crate::admin_client::connect(&hub)?
                .get("/api/v1/connectors")
                .await?;
            println!("{}", serde_json::to_string_pretty(&list)?);
        }
        ConnectorCmd::Show { id, hub } => {
            let c: Connector = crate::admin_client::connect(&hub)?
                .get(&format!("/api/v1/connectors/{id}"))
                .await?;
            println!("{}", serde_json::to_string_pretty(&c)?);
        }
        ConnectorCmd::SetSite { id, site, hub } => {
            let update = UpdateConnector {
                site: Some(site.patch()),
                ..Default::default()
            };
            let c: Connector = crate::admin_client::connect(&hub)?
                .patch(&format!("/api/v1/connectors/{id}"), &update)
                .await?;
            println!("{}", serde_json::to_string_pretty(&c)?);
        }
        ConnectorCmd::RotateSecret { id, hub } => {
            let creds: ConnectorCredentials = crate::admin_client::connect(&hub)?
                .post(
                    &format!("/api/v1/connectors/{id}/rotate-secret"),
                    &serde_json::json!({}),
                )
                .await?;
            println!(
                "remote_id: {}\nsecret:    {}",
                creds.remote_id, creds.secret
            );
        }
        ConnectorCmd::Disable { id, hub } | ConnectorCmd::Enable { id, hub } if false => {
            unreachable!("{id} {hub:?}")
        }
        ConnectorCmd::Disable { id, hub } => set_enabled(id, &hub, false).await?,
        ConnectorCmd::Enable { id, hub } => set_enabled(id, &hub, true).await?,
    }
    Ok(ExitCode::SUCCESS)
}

async fn set_enabled(id: Uuid, hub: &HubArgs, enabled: bool) -> anyhow::Result<()> {
    let update = UpdateConnector {
        enabled: Some(enabled),
        ..Default::default()
    };
    let c: Connector = crate::admin_client::connect(hub)?
        .patch(&format!("/api/v1/connectors/{id}"), &update)
        .await?;
    println!(
        "{} is now {}",
        c.name,
        if c.enabled { "enabled" } else { "disabled" }
    );
    Ok(())
}

pub fn write_connector_config(
    path: &std::path::Path,
    config: &ConnectorConfig,
) -> anyhow::Result<()> {
    ferry_hub::secrets::write_private_file(path, config.to_toml().as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

async fn push(
    package: Uuid,
    connector: Uuid,
    spec: Option<PathBuf>,
    dry_run: bool,
    wait: bool,
    hub: &HubArgs,
) -> anyhow::Result<ExitCode> {
    let client = crate::admin_client::connect(hub)?;
    let spec = match spec {
        Some(path) => Some(
            serde_json::from_str(
                &std::fs::read_to_string(&path)
                    .with_context(|| format!("reading {}", path.display()))?,
            )
            .with_context(|| format!("{} is not valid JSON", path.display()))?,
        ),
        None => None,
    };
    let request = ferry_proto::push::PushRequest {
        package_id: package,
        connector_id: connector,
        spec,
        dry_run,
    };
    if dry_run {
        let preview: ferry_proto::push::PushPreview = client.post("/api/v1/push", &request).await?;
        println!("{}", preview.script);
        return Ok(ExitCode::SUCCESS);
    }
    let job: Job = client.post("/api/v1/push", &request).await?;
    report_job(&client, job, wait).await
}

async fn site_apps(connector: Uuid, refresh: bool, hub: HubArgs) -> anyhow::Result<ExitCode> {
    let client = crate::admin_client::connect(&hub)?;
    if refresh {
        let job: Job = client
            .post(
                &format!("/api/v1/connectors/{connector}/inventory"),
                &serde_json::json!({}),
            )
            .await?;
        let job = wait_for_job(&client, job.id, Duration::from_secs(3600)).await?;
        if job.state != ferry_proto::job::JobState::Succeeded {
            anyhow::bail!(
                "the inventory {}: {}",
                job.state.as_str(),
                job.error.unwrap_or_default()
            );
        }
    }
    let inventory: ferry_proto::inventory::InventoryResult = client
        .get(&format!("/api/v1/connectors/{connector}/applications"))
        .await?;
    println!(
        "site {}: {} folders, {} applications",
        inventory.site_code,
        inventory.folders.len(),
        inventory.applications.len()
    );
    for app in &inventory.applications {
        println!(
            "{:>10}  {:<20} {}{}",
            app.ci_id,
            app.path,
            app.name,
            if app.is_duplicated {
                "  (duplicated name)"
            } else {
                ""
            }
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn job(cmd: JobCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        JobCmd::Enqueue {
            connector,
            kind,
            payload,
            wait,
            hub,
        } => {
            let client = crate::admin_client::connect(&hub)?;
            let kind =
                JobKind::parse(&kind).with_context(|| format!("unknown job kind {kind:?}"))?;
            let payload = match payload {
                Some(p) => serde_json::from_str(&p).context("--payload is not valid JSON")?,
                None => serde_json::Value::Null,
            };
            let new = NewJob {
                connector_id: connector,
                kind,
                payload,
                not_before: None,
                expires_at: None,
                max_attempts: None,
            };
            let mut job: Job = client.post("/api/v1/jobs", &new).await?;
            if wait {
                job = wait_for_job(&client, job.id, Duration::from_secs(600)).await?;
            }
            println!("{}", serde_json::to_string_pretty(&job)?);
        }
        JobCmd::Show { id, hub } => {
            let job: Job = crate::admin_client::connect(&hub)?
                .get(&format!("/api/v1/jobs/{id}"))
                .await?;
            println!("{}", serde_json::to_string_pretty(&job)?);
        }
        JobCmd::List { connector, hub } => {
            let path = match connector {
                Some(c) => format!("/api/v1/jobs?connector_id={c}"),
                None => "/api/v1/jobs".to_owned(),
            };
            let jobs: Vec<Job> = crate::admin_client::connect(&hub)?.get(&path).await?;
            for j in jobs {
                println!(
                    "{}  {:<11} {:<12} attempts {}  {}",
                    j.id,
                    j.kind().as_str(),
                    j.state.as_str(),
                    j.attempts,
                    j.error.unwrap_or_default()
                );
            }
        }
        JobCmd::Cancel { id, hub } => {
            let job: Job = crate::admin_client::connect(&hub)?
                .post(&format!("/api/v1/jobs/{id}/cancel"), &serde_json::json!({}))
                .await?;
            println!(
                "{} is {}{}",
                job.id,
                job.state.as_str(),
                if job.cancel_requested {
                    " (cancel requested)"
                } else {
                    ""
                }
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Polls a job until it is in a terminal state. (The CLI polls once a second: it is a
/// person waiting, not a fleet.)
/// Prints a queued job (after waiting for its end with `wait`); exits 1 if it failed.
async fn report_job(client: &AdminClient, mut job: Job, wait: bool) -> anyhow::Result<ExitCode> {
    if wait {
        job = wait_for_job(client, job.id, Duration::from_secs(3600)).await?;
    }
    println!("{}", serde_json::to_string_pretty(&job)?);
    Ok(if job.state == ferry_proto::job::JobState::Failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

pub async fn wait_for_job(client: &AdminClient, id: Uuid, limit: Duration) -> anyhow::Result<Job> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let job: Job = client.get(&format!("/api/v1/jobs/{id}")).await?;
        if job.state.is_terminal() {
            return Ok(job);
        }
        if tokio::time::Instant::now() > deadline {
            anyhow::bail!(
                "job {id} still {} after {}s",
                job.state.as_str(),
                limit.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
