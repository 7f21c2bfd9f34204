//! Connectors, pushes, imports and the sites they see.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use ferry_connector::ConnectorConfig;
use ferry_proto::connector::{Connector, ConnectorCredentials, NewConnector, UpdateConnector};
use ferry_proto::job::Job;
use uuid::Uuid;

use super::hub::shutdown_signal;
use super::jobs::{report_job, wait_for_job};
use crate::admin_client::HubArgs;
use crate::cli::ConnectorCmd;
use crate::logging;
use crate::output::emit;

pub async fn connector(cmd: ConnectorCmd) -> anyhow::Result<ExitCode> {
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
            emit(&creds, |c| {
                println!("remote_id: {}", c.remote_id);
                println!("secret:    {}", c.secret);
                println!("(the secret is shown once; the hub keeps only a hash of it)");
            })?;
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
            emit(&creds, |c| {
                println!("remote_id: {}\nsecret:    {}", c.remote_id, c.secret)
            })?;
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
    emit(&c, |c| {
        println!(
            "{} is now {}",
            c.name,
            if c.enabled { "enabled" } else { "disabled" }
        )
    })?;
    Ok(())
}

pub fn write_connector_config(
    path: &std::path::Path,
    config: &ConnectorConfig,
) -> anyhow::Result<()> {
    ferry_hub::secrets::write_private_file(path, config.to_toml().as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

/// Queues an import of applications (by model name or display name) from a connector's site.
pub async fn import(
    connector: Uuid,
    applications: Vec<String>,
    wait: bool,
    hub: &HubArgs,
) -> anyhow::Result<ExitCode> {
    let client = crate::admin_client::connect(hub)?;
    let request = ferry_proto::inventory::ImportRequest { applications };
    let job: Job = client
        .post(&format!("/api/v1/connectors/{connector}/import"), &request)
        .await?;
    report_job(&client, job, wait).await
}

pub async fn push(
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

pub async fn site_apps(connector: Uuid, refresh: bool, hub: HubArgs) -> anyhow::Result<ExitCode> {
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
    emit(&inventory, |inventory| {
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
    })?;
    Ok(ExitCode::SUCCESS)
}
