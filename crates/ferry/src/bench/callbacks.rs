//! `ferry bench callbacks --tasks N`: helpdesk tasks on simulated devices, every status change
//! delivered to a local receiver that verifies each signature.
//!
//! A hub process; in this process, D simulated devices (the real agent session code with a
//! runner that works `--work-ms` and succeeds, so each task goes queued → in progress →
//! succeeded) and a receiver that verifies every callback as Standard Webhooks asks and notes
//! when it arrived. Each phase first creates N tasks while the devices are offline (the
//! `queued` callbacks flow while tasks are being created: creation-bound), then connects the
//! devices, so that 2N changes (`in_progress`, `succeeded`) are committed and delivered in one
//! burst: that burst measures the callback pipeline. Reported, for a healthy receiver and for
//! one failing every other request: verified deliveries per second, and the time from each
//! status's commit (the event's own `timestamp`) to its verified receipt. The baseline,
//! measured in the same run, is a helpdesk that learns statuses by polling the task list every
//! `--baseline-interval` seconds, the way integrations without callbacks synchronise.

use std::collections::{HashMap, HashSet};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use ferry_agent::channel::{WsTarget, tls_config};
use ferry_agent::config::{AgentConfig, TransportChoice};
use ferry_agent::journal::Journal;
use ferry_agent::session::{self, AgentCtx, OpRunner};
use ferry_client::Client as HubHttp;
use ferry_proto::agent::Assignment;
use ferry_proto::helpdesk::{
    CallbackEvent, IntegrationSecret, NewIntegration, NewScript, NewTask, Script, Task, TaskAction,
    TaskTargets,
};
use ferry_proto::ops::{ImportDevices, ImportedDevice, OpOutcome, OutcomeState};
use serde::Serialize;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::bench::swarm::simulated_inventory;
use crate::bench::{Hub, start_hub_with};

#[derive(Debug, clap::Args)]
pub struct CallbacksArgs {
    /// Tasks per phase (each one device, three status changes).
    #[arg(long, default_value_t = 2_000)]
    pub tasks: usize,
    /// Simulated devices the tasks are spread over.
    #[arg(long, default_value_t = 200)]
    pub devices: usize,
    /// How long each simulated run takes.
    #[arg(long, default_value_t = 100)]
    pub work_ms: u64,
    /// Tasks created at once.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// Tasks of the polling baseline (0: skip it).
    #[arg(long, default_value_t = 200)]
    pub baseline_tasks: usize,
    /// Seconds between the baseline helpdesk's polls of the task list.
    #[arg(long, default_value_t = 10)]
    pub baseline_interval: u64,
    /// The hub's `sqlite_synchronous` (`full` or `normal`).
    #[arg(long, default_value = "full")]
    pub synchronous: String,
    /// Print one JSON object as the last line.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Default, Serialize)]
struct Phase {
    tasks: usize,
    /// Devices online, tasks created as fast as `--concurrency` clients go: every change of
    /// every task delivered while the next tasks are being created.
    steady_deliveries: usize,
    steady_deliveries_per_sec: f64,
    steady_commit_to_receipt_p50_ms: f64,
    steady_commit_to_receipt_p99_ms: f64,
    steady_commit_to_receipt_max_ms: f64,
    /// Tasks created per second in the steady part.
    created_per_sec: f64,
    /// Devices offline while the tasks are created, then connected at once: `in_progress` and
    /// `succeeded` of every task committed within moments, drained as fast as the pipeline goes.
    burst_deliveries: usize,
    burst_deliveries_per_sec: f64,
    burst_commit_to_receipt_p50_ms: f64,
    burst_commit_to_receipt_p99_ms: f64,
    /// Requests the receiver refused on purpose (the failing phase).
    refused: u64,
}

#[derive(Debug, Serialize)]
struct Report {
    devices: usize,
    work_ms: u64,
    synchronous: String,
    healthy: Phase,
    failing_half: Phase,
    baseline_tasks: usize,
    baseline_interval_s: u64,
    baseline_final_status_p50_ms: f64,
    baseline_final_status_p99_ms: f64,
    /// The final status's p50 delay, polling over callbacks.
    p50_ratio_polling_over_callbacks: f64,
    healthy_final_status_p50_ms: f64,
}

/// Runs each operation for a fixed time and succeeds.
struct WorkRunner(Duration);

impl OpRunner for WorkRunner {
    fn run<'a>(
        &'a self,
        _ctx: &'a Arc<AgentCtx>,
        _a: &'a Assignment,
        _cancel: CancellationToken,
    ) -> std::pin::Pin<Box<dyn Future<Output = OpOutcome> + Send + 'a>> {
        Box::pin(async move {
            tokio::time::sleep(self.0).await;
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

/// One verified receipt.
struct Receipt {
    task: Uuid,
    latency_ms: f64,
    final_status: bool,
    at: Instant,
}

#[derive(Default)]
struct Receiver {
    key: Vec<u8>,
    fail_half: std::sync::atomic::AtomicBool,
    requests: AtomicU64,
    refused: AtomicU64,
    seen: Mutex<HashSet<String>>,
    receipts: Mutex<Vec<Receipt>>,
    bad_signatures: AtomicU64,
}

fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

async fn receive(
    axum::extract::State(r): axum::extract::State<Arc<Receiver>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or("");
    let id = h(ferry_hub::webhooks::ID_HEADER).to_owned();
    let now = now_ms();
    if ferry_hub::webhooks::verify(
        &[&r.key],
        &id,
        h(ferry_hub::webhooks::TIMESTAMP_HEADER),
        h(ferry_hub::webhooks::SIGNATURE_HEADER),
        &body,
        now / 1000,
    )
    .is_err()
    {
        r.bad_signatures.fetch_add(1, Ordering::Relaxed);
        return StatusCode::UNAUTHORIZED;
    }
    let n = r.requests.fetch_add(1, Ordering::Relaxed);
    if r.fail_half.load(Ordering::Relaxed) && n % 2 == 0 {
        r.refused.fetch_add(1, Ordering::Relaxed);
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    let Ok(event) = serde_json::from_slice::<CallbackEvent>(&body) else {
        return StatusCode::BAD_REQUEST;
    };
    if r.seen.lock().unwrap_or_else(|p| p.into_inner()).insert(id) {
        let committed = (event.timestamp.unix_timestamp_nanos() / 1_000_000) as i64;
        r.receipts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Receipt {
                task: event.data.task_id,
                latency_ms: (now - committed) as f64,
                final_status: event.data.status.is_final(),
                at: Instant::now(),
            });
    }
    StatusCode::NO_CONTENT
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

pub async fn run(args: CallbacksArgs) -> anyhow::Result<ExitCode> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    if args.tasks == 0 || args.devices == 0 {
        bail!("--tasks and --devices must be at least 1");
    }
    let dir = std::env::temp_dir().join(format!("ferry-bench-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir)?;
    let result = measure(&args, &dir).await;
    let _ = std::fs::remove_dir_all(&dir);
    let report = result?;
    print_report(&report);
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    }
    Ok(ExitCode::SUCCESS)
}

async fn measure(args: &CallbacksArgs, dir: &std::path::Path) -> anyhow::Result<Report> {
    // Retries quick enough that the failing phase ends in seconds, not the default day, and
    // many enough that a receiver failing half its requests never exhausts them (30 failures
    // in a row: one chance in a billion).
    let hub = start_hub_with(
        dir,
        &args.synchronous,
        "callback_retry_secs = [1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5]\nagent_admission_rate = 5000\n",
        None,
    )
    .await?;

    // The receiver.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let integration: IntegrationSecret = hub
        .client
        .post(
            "/api/v1/integrations",
            &NewIntegration {
                name: "bench".into(),
                callback_prefixes: vec![format!("http://{addr}/cb/")],
                technician_id: None,
                allow_http: true,
                allow_private: true,
                ca_pem: None,
            },
        )
        .await?;
    let receiver = Arc::new(Receiver {
        key: ferry_hub::webhooks::secret_key(&integration.signing_secret)
            .context("the hub gave a malformed signing secret")?,
        ..Default::default()
    });
    let app = axum::Router::new()
        .route("/cb/{request}", axum::routing::post(receive))
        .with_state(receiver.clone());
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    // The devices.
    let script: Script = hub
        .client
        .post(
            "/api/v1/scripts",
            &NewScript {
                name: "bench".into(),
                description: String::new(),
                content: "true".into(),
                parameters: vec![],
            },
        )
        .await?;
    let fleet = Fleet::import(&hub, args).await?;

    let healthy = phase(&hub, args, &receiver, &fleet, &script, &integration, "h").await?;
    let healthy_final_p50 = healthy.1;
    receiver.fail_half.store(true, Ordering::Relaxed);
    let failing = phase(&hub, args, &receiver, &fleet, &script, &integration, "f").await?;
    receiver.fail_half.store(false, Ordering::Relaxed);
    let (bp50, bp99) = if args.baseline_tasks > 0 {
        let online = fleet.connect(&hub).await?;
        let r = polling_baseline(&hub, args, &fleet.ids, &script).await?;
        online.cancel();
        r
    } else {
        (0.0, 0.0)
    };
    let bad = receiver.bad_signatures.load(Ordering::Relaxed);
    if bad > 0 {
        bail!("{bad} callbacks did not verify");
    }
    server.abort();
    hub.stop();
    Ok(Report {
        devices: args.devices,
        work_ms: args.work_ms,
        synchronous: args.synchronous.clone(),
        healthy: healthy.0,
        failing_half: failing.0,
        baseline_tasks: args.baseline_tasks,
        baseline_interval_s: args.baseline_interval,
        baseline_final_status_p50_ms: bp50,
        baseline_final_status_p99_ms: bp99,
        p50_ratio_polling_over_callbacks: if healthy_final_p50 > 0.0 {
            bp50 / healthy_final_p50
        } else {
            0.0
        },
        healthy_final_status_p50_ms: healthy_final_p50,
    })
}

/// The simulated devices: imported once, connected for each burst through the real agent
/// session code, disconnected in between.
struct Fleet {
    ids: Vec<Uuid>,
    tokens: Vec<(String, Uuid)>,
    work: Duration,
}

impl Fleet {
    async fn import(hub: &Hub, args: &CallbacksArgs) -> anyhow::Result<Fleet> {
        let seeds: Vec<Uuid> = (0..args.devices).map(|_| Uuid::new_v4()).collect();
        let imported: Vec<ImportedDevice> = hub
            .client
            .post(
                "/api/v1/devices/import",
                &ImportDevices {
                    devices: seeds.iter().map(|d| simulated_inventory(*d)).collect(),
                },
            )
            .await?;
        Ok(Fleet {
            ids: imported.iter().map(|d| d.device_id).collect(),
            tokens: imported
                .iter()
                .zip(&seeds)
                .map(|(d, s)| (d.token.clone(), *s))
                .collect(),
            work: Duration::from_millis(args.work_ms),
        })
    }

    /// Connects every device; cancelling the returned token disconnects them.
    async fn connect(&self, hub: &Hub) -> anyhow::Result<CancellationToken> {
        let shutdown = CancellationToken::new();
        let config = AgentConfig::new(&hub.url);
        let http = ferry_client::http_client(&config.client_config(None))?;
        let ws = WsTarget::new(&hub.url, tls_config(None)?, None)?;
        let runner: Arc<dyn OpRunner> = Arc::new(WorkRunner(self.work));
        for (token, seed) in &self.tokens {
            let ctx = AgentCtx::new(
                token.clone(),
                HubHttp::with_http(http.clone(), &hub.url, Some(token))?,
                Some(ws.clone()),
                TransportChoice::Websocket,
                simulated_inventory(*seed),
                Journal::memory(),
                runner.clone(),
            )?;
            tokio::spawn(session::run(Arc::new(ctx), shutdown.clone()));
        }
        self.wait_online(hub, self.ids.len()).await?;
        Ok(shutdown)
    }

    async fn wait_online(&self, hub: &Hub, want: usize) -> anyhow::Result<()> {
        let started = Instant::now();
        loop {
            let list: Vec<ferry_proto::ops::Device> = hub.client.get("/api/v1/devices").await?;
            if list.iter().filter(|d| d.online).count() == want {
                return Ok(());
            }
            if started.elapsed() > Duration::from_secs(60) {
                bail!("the simulated devices did not reach {want} online within 60 s");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn new_task(
    prefix: &str,
    i: usize,
    device: Uuid,
    script: &Script,
    integration: Option<&IntegrationSecret>,
    addr_prefix: Option<&str>,
) -> NewTask {
    let request = format!("{prefix}-{i}");
    NewTask {
        idempotency_key: request.clone(),
        callback_url: addr_prefix.map(|p| format!("{p}{request}")),
        request_ref: request,
        integration_id: integration.map(|s| s.integration.id),
        action: TaskAction::RunScript,
        package_id: None,
        script_id: Some(script.id),
        arguments: Default::default(),
        package_settings: Default::default(),
        deployment: Default::default(),
        targets: TaskTargets {
            workstations: vec![device.to_string()],
            users: vec![],
        },
    }
}

/// Creates `n` tasks named `{prefix}-{i}` at `--concurrency`; returns the seconds it took.
async fn create_tasks(
    hub: &Hub,
    args: &CallbacksArgs,
    fleet: &Fleet,
    script: &Script,
    integration: &IntegrationSecret,
    prefix: &str,
) -> anyhow::Result<f64> {
    let n = args.tasks;
    let cb_prefix = integration.integration.callback_prefixes[0].clone();
    let started = Instant::now();
    let next = Arc::new(AtomicU64::new(0));
    let mut creators = Vec::new();
    for _ in 0..args.concurrency.max(1) {
        let (client, next, script, integration, cb_prefix, devices, prefix) = (
            hub.client.clone(),
            next.clone(),
            script.clone(),
            integration.clone(),
            cb_prefix.clone(),
            fleet.ids.clone(),
            prefix.to_owned(),
        );
        creators.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                if i >= n {
                    return Ok::<_, anyhow::Error>(());
                }
                let device = devices[i % devices.len()];
                let t = new_task(
                    &prefix,
                    i,
                    device,
                    &script,
                    Some(&integration),
                    Some(&cb_prefix),
                );
                let _: Task = client.post("/api/v1/tasks", &t).await?;
            }
        }));
    }
    for c in creators {
        c.await??;
    }
    Ok(started.elapsed().as_secs_f64())
}

/// (count, per second since `start`, p50, p99, max) of the receipts from index `first`.
fn stats(receiver: &Receiver, first: usize, start: Instant) -> (usize, f64, f64, f64, f64) {
    let receipts = receiver.receipts.lock().unwrap_or_else(|p| p.into_inner());
    let part = &receipts[first.min(receipts.len())..];
    let last = part.iter().map(|r| r.at).max().unwrap_or(start);
    let elapsed = last.duration_since(start).as_secs_f64();
    let mut lat: Vec<f64> = part.iter().map(|r| r.latency_ms).collect();
    lat.sort_by(f64::total_cmp);
    (
        part.len(),
        part.len() as f64 / elapsed.max(1e-9),
        percentile(&lat, 0.50),
        percentile(&lat, 0.99),
        lat.last().copied().unwrap_or(0.0),
    )
}

/// The steady part, then the burst (see [`Phase`]). Returns the phase and the steady part's
/// p50 delay of final statuses.
async fn phase(
    hub: &Hub,
    args: &CallbacksArgs,
    receiver: &Arc<Receiver>,
    fleet: &Fleet,
    script: &Script,
    integration: &IntegrationSecret,
    prefix: &str,
) -> anyhow::Result<(Phase, f64)> {
    let n = args.tasks;
    receiver
        .receipts
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clear();
    receiver.refused.store(0, Ordering::Relaxed);

    // Steady: devices online while tasks are created.
    let online = fleet.connect(hub).await?;
    let start = Instant::now();
    let created =
        create_tasks(hub, args, fleet, script, integration, &format!("{prefix}s")).await?;
    wait_receipts(receiver, n, |r| r.final_status).await?;
    online.cancel();
    fleet.wait_online(hub, 0).await?;
    let steady = stats(receiver, 0, start);
    let finals = sorted(receiver, |r| r.final_status);

    // Burst: tasks created offline, devices connected at once.
    create_tasks(hub, args, fleet, script, integration, &format!("{prefix}b")).await?;
    wait_receipts(receiver, 2 * n, |r| !r.final_status).await?;
    let first = receiver
        .receipts
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .len();
    let burst_start = Instant::now();
    let online = fleet.connect(hub).await?;
    wait_receipts(receiver, 2 * n, |r| r.final_status).await?;
    online.cancel();
    fleet.wait_online(hub, 0).await?;
    let burst = stats(receiver, first, burst_start);
    Ok((
        Phase {
            tasks: n,
            steady_deliveries: steady.0,
            steady_deliveries_per_sec: steady.1,
            steady_commit_to_receipt_p50_ms: steady.2,
            steady_commit_to_receipt_p99_ms: steady.3,
            steady_commit_to_receipt_max_ms: steady.4,
            created_per_sec: n as f64 / created.max(1e-9),
            burst_deliveries: burst.0,
            burst_deliveries_per_sec: burst.1,
            burst_commit_to_receipt_p50_ms: burst.2,
            burst_commit_to_receipt_p99_ms: burst.3,
            refused: receiver.refused.load(Ordering::Relaxed),
        },
        percentile(&finals, 0.50),
    ))
}

/// Sorted latencies of the receipts so far that `pred` selects.
fn sorted(receiver: &Receiver, pred: impl Fn(&Receipt) -> bool) -> Vec<f64> {
    let mut v: Vec<f64> = receiver
        .receipts
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .filter(|r| pred(r))
        .map(|r| r.latency_ms)
        .collect();
    v.sort_by(f64::total_cmp);
    v
}

/// Waits until `n` distinct tasks have a receipt that `pred` selects.
async fn wait_receipts(
    receiver: &Receiver,
    n: usize,
    pred: impl Fn(&Receipt) -> bool,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let done: HashSet<Uuid> = receiver
            .receipts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|r| pred(r))
            .map(|r| r.task)
            .collect();
        if done.len() >= n {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "only {} of {n} tasks were heard of in 10 minutes",
                done.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A helpdesk without callbacks: it lists tasks every `--baseline-interval` seconds and
/// notices final statuses then. Returns the p50 and p99 delay from commit to notice.
async fn polling_baseline(
    hub: &Hub,
    args: &CallbacksArgs,
    devices: &[Uuid],
    script: &Script,
) -> anyhow::Result<(f64, f64)> {
    let n = args.baseline_tasks;
    for i in 0..n {
        let t = new_task("b", i, devices[i % devices.len()], script, None, None);
        let _: Task = hub.client.post("/api/v1/tasks", &t).await?;
    }
    let mut seen: HashMap<Uuid, f64> = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(600);
    while seen.len() < n {
        if Instant::now() > deadline {
            bail!("the baseline's tasks did not all finish");
        }
        tokio::time::sleep(Duration::from_secs(args.baseline_interval)).await;
        let now = now_ms();
        let list: Vec<Task> = hub.client.get("/api/v1/tasks?limit=500").await?;
        for t in list.iter().filter(|t| t.request_ref.starts_with("b-")) {
            if t.status.is_final() && !seen.contains_key(&t.id) {
                let committed = (t.updated_at.unix_timestamp_nanos() / 1_000_000) as i64;
                seen.insert(t.id, (now - committed) as f64);
            }
        }
    }
    let mut lat: Vec<f64> = seen.into_values().collect();
    lat.sort_by(f64::total_cmp);
    Ok((percentile(&lat, 0.5), percentile(&lat, 0.99)))
}

fn print_report(r: &Report) {
    println!(
        "callbacks: {} devices, {} ms of work per task, sqlite_synchronous = {}",
        r.devices, r.work_ms, r.synchronous
    );
    for (name, p) in [
        ("healthy receiver", &r.healthy),
        ("receiver failing half", &r.failing_half),
    ] {
        println!(
            "  {name:<22} steady: {} tasks created at {:.0}/s, {} verified deliveries at {:.0}/s; commit → receipt p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            p.tasks,
            p.created_per_sec,
            p.steady_deliveries,
            p.steady_deliveries_per_sec,
            p.steady_commit_to_receipt_p50_ms,
            p.steady_commit_to_receipt_p99_ms,
            p.steady_commit_to_receipt_max_ms,
        );
        println!(
            "  {:<22} burst:  {} verified deliveries at {:.0}/s; commit → receipt p50 {:.1} ms, p99 {:.1} ms; refused on purpose {}",
            "",
            p.burst_deliveries,
            p.burst_deliveries_per_sec,
            p.burst_commit_to_receipt_p50_ms,
            p.burst_commit_to_receipt_p99_ms,
            p.refused
        );
    }
    if r.baseline_tasks > 0 {
        println!(
            "  baseline: polling every {} s, {} tasks: final status noticed p50 {:.0} ms, p99 {:.0} ms; callbacks p50 {:.1} ms; ratio {:.0}x",
            r.baseline_interval_s,
            r.baseline_tasks,
            r.baseline_final_status_p50_ms,
            r.baseline_final_status_p99_ms,
            r.healthy_final_status_p50_ms,
            r.p50_ratio_polling_over_callbacks
        );
    }
}
