//! `ferry agent …`: enrol a device, run the agent, rotate its token.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Subcommand;
use ferry_agent::channel::{WsTarget, tls_config};
use ferry_agent::config::{AgentConfig, CONFIG_FILE, TransportChoice, read_token, write_token};
use ferry_agent::journal::Journal;
use ferry_agent::runner::DeviceRunner;
use ferry_agent::session::{self, AgentCtx};
use ferry_client::Client as HubHttp;
use tokio_util::sync::CancellationToken;

use crate::logging;

#[derive(Debug, Subcommand)]
pub enum AgentCmd {
    /// Enrol this device with an enrolment secret; writes `agent.toml` and `device.token`
    /// (mode 0600) into the data dir.
    Enroll {
        #[arg(long)]
        hub: String,
        /// The enrolment secret an administrator created (`ferry enrollment-secret create`).
        #[arg(long, env = "FERRY_ENROLLMENT_SECRET", hide_env_values = true)]
        secret: String,
        #[arg(long, default_value_os_t = default_data_dir())]
        data_dir: PathBuf,
        /// Extra CA certificate (PEM) for a hub with a private CA.
        #[arg(long)]
        ca_cert: Option<PathBuf>,
        /// HTTP proxy, credentials allowed (`http://user:pass@proxy:3128`).
        #[arg(long)]
        proxy: Option<String>,
        /// Report this hostname instead of the collected one.
        #[arg(long)]
        hostname: Option<String>,
        #[arg(long, value_enum, default_value = "auto")]
        transport: Transport,
    },
    /// Run the agent (keeps one connection to the hub and runs client operations).
    Run {
        #[arg(long, default_value_os_t = default_data_dir())]
        data_dir: PathBuf,
        #[arg(long, value_enum, default_value = "human")]
        log_format: logging::Format,
    },
    /// Replace this device's token with a new one from the hub (the old one stops working).
    RotateToken {
        #[arg(long, default_value_os_t = default_data_dir())]
        data_dir: PathBuf,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Transport {
    Auto,
    Websocket,
    Poll,
}

impl From<Transport> for TransportChoice {
    fn from(t: Transport) -> Self {
        match t {
            Transport::Auto => TransportChoice::Auto,
            Transport::Websocket => TransportChoice::Websocket,
            Transport::Poll => TransportChoice::Poll,
        }
    }
}

fn default_data_dir() -> PathBuf {
    if cfg!(windows) {
        std::env::var_os("ProgramData")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(r"C:\ProgramData"))
            .join("Ferry")
            .join("agent")
    } else {
        PathBuf::from("/var/lib/ferry-agent")
    }
}

pub async fn run(cmd: AgentCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        AgentCmd::Enroll {
            hub,
            secret,
            data_dir,
            ca_cert,
            proxy,
            hostname,
            transport,
        } => {
            let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
            std::fs::create_dir_all(&data_dir)
                .with_context(|| format!("creating {}", data_dir.display()))?;
            let mut config = AgentConfig::new(&hub);
            config.ca_cert = ca_cert;
            config.proxy = proxy;
            config.hostname = hostname;
            config.transport = transport.into();
            config.exec.work_dir = data_dir.join("work");
            let http = HubHttp::new(&config.client_config(None))?;
            let inventory = collect_inventory(&config).await;
            let enrolled = http
                .enroll(&secret, inventory)
                .await
                .context("enrolment failed")?;
            write_token(&data_dir, &enrolled.token)?;
            config.save(&data_dir.join(CONFIG_FILE))?;
            println!(
                "enrolled as device {}; configuration in {}",
                enrolled.device_id,
                data_dir.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        AgentCmd::Run {
            data_dir,
            log_format,
        } => {
            logging::init(log_format, "info");
            run_agent(&data_dir).await?;
            Ok(ExitCode::SUCCESS)
        }
        AgentCmd::RotateToken { data_dir } => {
            let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
            let config = AgentConfig::load(&data_dir.join(CONFIG_FILE))?;
            let token = read_token(&data_dir)?;
            let http = HubHttp::new(&config.client_config(Some(&token)))?;
            let new = http.rotate_token().await.context("token rotation failed")?;
            // Stored first, used second: until the hub sees the new token, the old one still
            // works, so a failure anywhere here leaves the device able to connect.
            write_token(&data_dir, &new)?;
            HubHttp::new(&config.client_config(Some(&new)))?
                .policy(ferry_client::transfer::Patience::For(Duration::from_secs(
                    30,
                )))
                .await
                .context(
                    "the new token is saved but the hub has not seen it yet; the old one \
                     still works until it does (run this again, or restart the agent)",
                )?;
            println!(
                "token replaced: the old one no longer works; a running agent takes up the new one as it reconnects"
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn collect_inventory(config: &AgentConfig) -> ferry_proto::agent::Inventory {
    let mut inv =
        ferry_agent::inventory::collect(Some(&config.hub_url), &config.exec.users_command).await;
    if let Some(h) = &config.hostname {
        inv.hostname = h.clone();
    }
    inv
}

/// Runs the agent until SIGINT/SIGTERM.
pub async fn run_agent(data_dir: &Path) -> anyhow::Result<()> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let config = AgentConfig::load(&data_dir.join(CONFIG_FILE))?;
    let token = read_token(data_dir)?;
    let http = HubHttp::new(&config.client_config(Some(&token)))?;
    let ws = match config.transport {
        TransportChoice::Poll => None,
        _ => Some(WsTarget::new(
            &config.hub_url,
            tls_config(config.ca_cert.as_deref())?,
            config.proxy.as_deref(),
        )?),
    };
    let journal = Journal::open(&data_dir.join("journal"))
        .with_context(|| format!("opening the journal in {}", data_dir.display()))?;
    let inventory = collect_inventory(&config).await;
    let runner = Arc::new(DeviceRunner {
        exec: config.exec.clone(),
    });
    let mut ctx = AgentCtx::new(
        token,
        http,
        ws,
        config.transport,
        inventory,
        journal,
        runner,
    )?;
    ctx.token_file = Some(data_dir.join(ferry_agent::config::TOKEN_FILE));
    ctx.hold_secs = config.hold_secs.clamp(1, 55);
    ctx.poll_interval = config
        .poll_interval_secs
        .map(|s| Duration::from_secs(s.max(1).into()));
    ctx.max_backoff = Duration::from_secs(config.max_backoff_secs.max(1).into());
    ctx.replaced_backoff = Duration::from_secs(config.replaced_backoff_secs.into());
    let ctx = Arc::new(ctx);
    tracing::info!(device = %ctx.device_id, hub = %config.hub_url, "agent starting");
    let shutdown = CancellationToken::new();
    {
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            crate::commands::hub::shutdown_signal().await;
            shutdown.cancel();
        });
    }
    {
        // Inventory changes (a new IP, an OS update) reach the hub without a restart.
        let ctx = ctx.clone();
        let config = config.clone();
        let every = Duration::from_secs(config.inventory_interval_secs.max(60).into());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                ctx.update_inventory(collect_inventory(&config).await);
            }
        });
    }
    session::run(ctx, shutdown).await;
    tracing::info!("agent stopped");
    Ok(())
}
