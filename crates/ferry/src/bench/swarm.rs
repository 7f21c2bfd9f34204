//! `ferry bench swarm`: many simulated agents in one process, for the fan-out benchmark and
//! the reconnection-storm test. Each simulated agent is the real agent's session code
//! ([`ferry_agent::session`]: WebSocket or long poll, backoff, paced admission, journal
//! rules) with an in-memory journal and a runner that answers at once instead of running a
//! process; so what is measured is the hub and the wire, not `sh`.
//!
//! It prints one JSON line of counts every 250 ms on stdout.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use ferry_agent::channel::{WsTarget, tls_config};
use ferry_agent::config::{AgentConfig, TransportChoice};
use ferry_agent::journal::Journal;
use ferry_agent::session::{self, AgentCtx, AgentEvent, OpRunner};
use ferry_client::Client as HubHttp;
use ferry_proto::agent::{Assignment, Inventory};
use ferry_proto::ops::{OpOutcome, OutcomeState};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

#[derive(Debug, clap::Args)]
pub struct SwarmArgs {
    #[arg(long)]
    pub hub: String,
    /// One device token per line.
    #[arg(long)]
    pub tokens: PathBuf,
    #[arg(long)]
    pub ca_cert: Option<PathBuf>,
    /// Source addresses to spread connections over (past the ephemeral-port limit).
    #[arg(long = "bind")]
    pub bind: Vec<IpAddr>,
    /// Use interval polling (no hold) every this many seconds instead of the WebSocket.
    #[arg(long)]
    pub poll_interval_secs: Option<u64>,
    /// Long-poll transport instead of the WebSocket.
    #[arg(long)]
    pub long_poll: bool,
}

/// Answers every operation at once with success.
struct InstantRunner;

impl OpRunner for InstantRunner {
    fn run<'a>(
        &'a self,
        _ctx: &'a Arc<AgentCtx>,
        _a: &'a Assignment,
        _cancel: CancellationToken,
    ) -> std::pin::Pin<Box<dyn Future<Output = OpOutcome> + Send + 'a>> {
        Box::pin(async {
            OpOutcome {
                state: OutcomeState::Succeeded,
                exit_code: Some(0),
                output: "ok".into(),
                error: String::new(),
                reboot_required: false,
            }
        })
    }
}

#[derive(Default)]
struct Counts {
    connected: AtomicI64,
    sessions: AtomicI64,
    /// Per operation: deliveries and the last one's Unix µs.
    ops: Mutex<HashMap<Uuid, (u64, i64)>>,
}

pub fn now_us() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1000) as i64
}

/// What a simulated device reports; the benchmark provisions devices with the same, so that
/// reconnecting agents change nothing, as real ones returning after a hub restart do not.
pub fn simulated_inventory(device: Uuid) -> Inventory {
    Inventory {
        hostname: format!("sim-{}", &device.simple().to_string()[..12]),
        os_name: "Simulated".into(),
        os_version: "1".into(),
        domain: None,
        arch: std::env::consts::ARCH.into(),
        agent_version: env!("CARGO_PKG_VERSION").into(),
        ips: vec![],
        users: vec![],
    }
}

pub async fn run(args: SwarmArgs) -> anyhow::Result<ExitCode> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    crate::sys::raise_fd_limit();
    let tokens: Vec<String> = std::fs::read_to_string(&args.tokens)
        .with_context(|| format!("reading {}", args.tokens.display()))?
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    let mut config = AgentConfig::new(&args.hub);
    config.ca_cert = args.ca_cert.clone();
    let http = ferry_client::http_client(&config.client_config(None))?;
    let tls = tls_config(args.ca_cert.as_deref())?;
    let base = WsTarget::new(&args.hub, tls, None)?;
    let counts = Arc::new(Counts::default());
    let shutdown = CancellationToken::new();
    let hook: session::EventHook = {
        let counts = counts.clone();
        Arc::new(move |e| match e {
            AgentEvent::SessionStarted => {
                counts.connected.fetch_add(1, Ordering::Relaxed);
                counts.sessions.fetch_add(1, Ordering::Relaxed);
            }
            AgentEvent::SessionEnded => {
                counts.connected.fetch_sub(1, Ordering::Relaxed);
            }
            AgentEvent::Delivered(op) => {
                let mut ops = counts.ops.lock().unwrap_or_else(|p| p.into_inner());
                let entry = ops.entry(op).or_insert((0, 0));
                entry.0 += 1;
                entry.1 = now_us();
            }
        })
    };
    let runner: Arc<dyn OpRunner> = Arc::new(InstantRunner);
    for (i, token) in tokens.iter().enumerate() {
        let mut ws = base.clone();
        if !args.bind.is_empty() {
            ws.bind = Some(args.bind[i % args.bind.len()]);
        }
        let transport = if args.poll_interval_secs.is_some() || args.long_poll {
            TransportChoice::Poll
        } else {
            TransportChoice::Websocket
        };
        let device = token
            .split_once(':')
            .and_then(|(id, _)| Uuid::parse_str(id).ok())
            .context("a token in the tokens file is malformed")?;
        let mut ctx = AgentCtx::new(
            token.clone(),
            HubHttp::with_http(http.clone(), &args.hub, Some(token))?,
            Some(ws),
            transport,
            simulated_inventory(device),
            Journal::memory(),
            runner.clone(),
        )?;
        ctx.events = Some(hook.clone());
        ctx.poll_interval = args.poll_interval_secs.map(Duration::from_secs);
        ctx.max_backoff = Duration::from_secs(10);
        tokio::spawn(session::run(Arc::new(ctx), shutdown.clone()));
        if i % 256 == 255 {
            // Let the first connections through before queuing thousands more handshakes.
            tokio::task::yield_now().await;
        }
    }
    let stop = crate::commands::hub::shutdown_signal();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
            _ = &mut stop => {
                shutdown.cancel();
                return Ok(ExitCode::SUCCESS);
            }
        }
        let ops: serde_json::Map<String, serde_json::Value> = counts
            .ops
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(op, (n, last))| {
                (
                    op.to_string(),
                    serde_json::json!({ "n": n, "last_us": last }),
                )
            })
            .collect();
        println!(
            "{}",
            serde_json::json!({
                "agents": tokens.len(),
                "connected": counts.connected.load(Ordering::Relaxed),
                "sessions": counts.sessions.load(Ordering::Relaxed),
                "ops": ops,
            })
        );
    }
}
