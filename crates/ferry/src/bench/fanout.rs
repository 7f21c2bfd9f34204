//! `ferry bench fanout --agents N`: one client operation to N connected agents.
//!
//! A hub process plus load processes (`ferry bench swarm`) holding N agent WebSockets,
//! spread over 127.0.0.x source addresses. Reported: the hub's memory per idle connection
//! and CPU while idle, the time until all N received the operation, the time until all N
//! results were committed, and the same fan-out to agents polling every 10 s (the baseline,
//! measured in the same run).

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;
use std::process::{ExitCode, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use ferry_proto::ops::{
    Collection, CollectionRule, ImportDevices, ImportedDevice, NewCollection, NewOperation,
    OpRequest, OpWatch, Operation,
};
use serde::Serialize;
use tokio::io::AsyncBufReadExt;
use uuid::Uuid;

use crate::bench::swarm::now_us;
use crate::bench::{ProcStat, start_hub_with};

#[derive(Debug, clap::Args)]
pub struct FanoutArgs {
    /// Connected agents.
    #[arg(long, default_value_t = 10_000)]
    pub agents: usize,
    /// Agents polling every `--baseline-interval` seconds, for the baseline (0: skip).
    #[arg(long, default_value_t = 2_000)]
    pub baseline_agents: usize,
    #[arg(long, default_value_t = 10)]
    pub baseline_interval: u64,
    /// Agents per load process.
    #[arg(long, default_value_t = 15_000)]
    pub per_process: usize,
    /// Seconds of idleness over which hub CPU is measured.
    #[arg(long, default_value_t = 20)]
    pub idle_secs: u64,
    /// Hub admission rate (sessions/s) for the connection phase.
    #[arg(long, default_value_t = 2000)]
    pub admission_rate: u32,
    /// Print one JSON object as the last line.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
struct Report {
    agents: usize,
    load_processes: usize,
    hub_fd_limit: u64,
    connect_secs: f64,
    hub_rss_before_mib: f64,
    hub_rss_idle_mib: f64,
    rss_per_conn_kb: f64,
    idle_hub_cpu_percent_of_one_core: f64,
    deliver_all_ms: f64,
    results_all_ms: f64,
    baseline_agents: usize,
    baseline_interval_s: u64,
    baseline_deliver_all_ms: f64,
    baseline_results_all_ms: f64,
    /// Hub CPU while the baseline's agents poll with nothing to deliver.
    baseline_idle_hub_cpu_percent_of_one_core: f64,
    /// Baseline delivery time over WebSocket delivery time.
    deliver_ratio_baseline_over_ws: f64,
}

#[derive(Default)]
struct SwarmStats {
    ops: HashMap<Uuid, (u64, i64)>,
}

/// The load processes of one phase and what they last reported.
struct Swarm {
    children: Vec<tokio::process::Child>,
    stats: Arc<Mutex<Vec<SwarmStats>>>,
}

impl Swarm {
    async fn start(
        dir: &Path,
        hub: &str,
        tokens: &[String],
        per_process: usize,
        poll_interval: Option<u64>,
        ca_cert: &Path,
    ) -> anyhow::Result<Swarm> {
        let chunks: Vec<&[String]> = tokens.chunks(per_process.max(1)).collect();
        let stats = Arc::new(Mutex::new(
            (0..chunks.len())
                .map(|_| SwarmStats::default())
                .collect::<Vec<_>>(),
        ));
        let mut children = Vec::new();
        for (i, chunk) in chunks.iter().enumerate() {
            let file = dir.join(format!("tokens-{i}-{}.txt", Uuid::new_v4().simple()));
            std::fs::write(&file, chunk.join("\n"))?;
            let mut cmd = tokio::process::Command::new(std::env::current_exe()?);
            cmd.args(["bench", "swarm", "--hub", hub, "--tokens"])
                .arg(&file)
                .arg("--ca-cert")
                .arg(ca_cert)
                .env("FERRY_LOG", "error")
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .kill_on_drop(true);
            // 10,000 connections per source address stays well inside the ephemeral ports.
            for b in 0..chunk.len().div_ceil(10_000) {
                let ip: IpAddr = format!("127.0.{}.{}", i + 1, b + 2).parse()?;
                cmd.arg("--bind").arg(ip.to_string());
            }
            if let Some(s) = poll_interval {
                cmd.arg("--poll-interval-secs").arg(s.to_string());
            }
            let mut child = cmd.spawn().context("starting a load process")?;
            let stdout = child.stdout.take().context("load process stdout")?;
            let stats = stats.clone();
            tokio::spawn(async move {
                let mut lines = tokio::io::BufReader::new(stdout).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
                        continue;
                    };
                    let mut all = stats.lock().unwrap_or_else(|p| p.into_inner());
                    let s = &mut all[i];
                    if let Some(ops) = v["ops"].as_object() {
                        for (op, o) in ops {
                            if let Ok(id) = Uuid::parse_str(op) {
                                s.ops.insert(
                                    id,
                                    (
                                        o["n"].as_u64().unwrap_or(0),
                                        o["last_us"].as_i64().unwrap_or(0),
                                    ),
                                );
                            }
                        }
                    }
                }
            });
            children.push(child);
        }
        Ok(Swarm { children, stats })
    }

    /// Deliveries of `op` so far and the latest one's Unix µs.
    fn delivered(&self, op: Uuid) -> (u64, i64) {
        self.stats
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter_map(|s| s.ops.get(&op))
            .fold((0, 0), |(n, last), (m, t)| (n + m, last.max(*t)))
    }

    async fn stop(mut self) {
        for c in &mut self.children {
            let _ = c.kill().await;
        }
    }
}

pub async fn run(args: FanoutArgs) -> anyhow::Result<ExitCode> {
    let dir = std::env::temp_dir().join(format!("ferry-fanout-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir)?;
    let result = measure(&args, &dir).await;
    let _ = std::fs::remove_dir_all(&dir);
    let r = result?;
    println!(
        "fan-out benchmark: {} agents over WebSocket/HTTPS ({} load processes; hub open-file limit {})",
        r.agents, r.load_processes, r.hub_fd_limit
    );
    println!(
        "  idle: hub RSS {:.1} MiB ({:.1} MiB before agents) = {:.1} KB per connection; hub CPU {:.2} % of one core",
        r.hub_rss_idle_mib,
        r.hub_rss_before_mib,
        r.rss_per_conn_kb,
        r.idle_hub_cpu_percent_of_one_core
    );
    println!(
        "  one operation to all: delivered to all in {:.0} ms, all results stored in {:.0} ms",
        r.deliver_all_ms, r.results_all_ms
    );
    if r.baseline_agents > 0 {
        println!(
            "  baseline, {} agents polling every {} s: delivered to all in {:.0} ms, results in {:.0} ms (ratio {:.1}x); idle polling costs the hub {:.2} % of one core",
            r.baseline_agents,
            r.baseline_interval_s,
            r.baseline_deliver_all_ms,
            r.baseline_results_all_ms,
            r.deliver_ratio_baseline_over_ws,
            r.baseline_idle_hub_cpu_percent_of_one_core
        );
    }
    if args.json {
        println!("{}", serde_json::to_string(&r)?);
    }
    Ok(ExitCode::SUCCESS)
}

/// Creates the devices (`POST /api/v1/devices/import`, in batches under the body limit) and
/// the two collections through the API, as an administrator would pre-stage machines.
/// Returns the device tokens and the two collections' IDs.
async fn provision(
    hub: &crate::bench::Hub,
    n: usize,
    baseline: usize,
) -> anyhow::Result<(Vec<String>, Uuid, Uuid)> {
    const BATCH: usize = 2_000;
    let mut tokens = Vec::with_capacity(n);
    let mut ids = Vec::with_capacity(n);
    let mut left = n;
    while left > 0 {
        let count = left.min(BATCH);
        let devices = (0..count)
            .map(|_| crate::bench::swarm::simulated_inventory(Uuid::new_v4()))
            .collect();
        let created: Vec<ImportedDevice> = hub
            .client
            .post("/api/v1/devices/import", &ImportDevices { devices })
            .await?;
        for d in created {
            ids.push(d.device_id);
            tokens.push(d.token);
        }
        left -= count;
    }
    let all: Collection = hub
        .client
        .post(
            "/api/v1/collections",
            &NewCollection {
                name: "all".into(),
                rule: Some(CollectionRule::default()),
                devices: Vec::new(),
            },
        )
        .await?;
    let base: Collection = hub
        .client
        .post(
            "/api/v1/collections",
            &NewCollection {
                name: "baseline".into(),
                rule: None,
                devices: ids.iter().take(baseline).copied().collect(),
            },
        )
        .await?;
    Ok((tokens, all.id, base.id))
}

async fn connected_on_hub(hub: &crate::bench::Hub) -> anyhow::Result<i64> {
    // While thousands of agents connect, the hub closes the oldest idle unauthenticated
    // connection to make room (`/metrics` is public): a pooled connection it closed is
    // weather, not a failed benchmark.
    let mut tries = 0;
    let text = loop {
        match hub.client.get_text("/metrics").await {
            Ok(t) => break t,
            Err(e) if e.is_transient() && tries < 20 => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => return Err(e.into()),
        }
    };
    Ok(text
        .lines()
        .find_map(|l| l.strip_prefix("ferry_agents_connected "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0))
}

async fn wait_connected(hub: &crate::bench::Hub, n: i64, limit: Duration) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        let c = connected_on_hub(hub).await?;
        if c == n {
            return Ok(());
        }
        if started.elapsed() > limit {
            bail!(
                "only {c} of {n} agents connected after {} s",
                limit.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Starts a no-op script on `collection`; returns (all delivered, all results stored) in ms.
async fn fan_out(
    hub: &crate::bench::Hub,
    swarm: &Swarm,
    collection: Uuid,
    n: u64,
    limit: Duration,
) -> anyhow::Result<(f64, f64)> {
    let t0 = now_us();
    let op: Operation = hub
        .client
        .post(
            "/api/v1/ops",
            &NewOperation {
                op: OpRequest::RunScript {
                    script: "exit 0".into(),
                    args: vec![],
                },
                collections: vec![collection],
                devices: vec![],
                expires_in_secs: None,
                timeout_secs: None,
                output_limit: None,
                on_interrupt: None,
            },
        )
        .await?;
    let started = Instant::now();
    let mut since = 0;
    let mut results_us = None;
    loop {
        let w: OpWatch = hub
            .client
            .get(&format!("/api/v1/ops/{}/watch?since={since}&hold=5", op.id))
            .await?;
        since = w.version;
        if results_us.is_none() && w.operation.counts.succeeded == n {
            results_us = Some(now_us());
        }
        let (delivered, last) = swarm.delivered(op.id);
        if let Some(done) = results_us
            && delivered >= n
        {
            return Ok(((last - t0) as f64 / 1000.0, (done - t0) as f64 / 1000.0));
        }
        if started.elapsed() > limit {
            bail!(
                "fan-out incomplete after {} s: {delivered} of {n} delivered, counts {:?}",
                limit.as_secs(),
                w.operation.counts
            );
        }
    }
}

async fn measure(args: &FanoutArgs, dir: &Path) -> anyhow::Result<Report> {
    let n = args.agents;
    let base_n = args.baseline_agents.min(n);
    let hub_limit = crate::sys::raise_fd_limit();
    if (n as u64) + 256 > hub_limit {
        bail!(
            "the hub can hold at most about {} connections here: the open-file limit is {hub_limit} \
             and this process may not raise it (ulimit -Hn); use --agents {}",
            hub_limit.saturating_sub(256),
            hub_limit.saturating_sub(256)
        );
    }
    // HTTPS, as in production: TLS state is part of what each connection costs.
    let tls = crate::demo::make_certificates(&dir.join("tls"))?;
    let extra = format!(
        "agent_admission_rate = {}\nagent_admission_burst = 1000\ntls_cert = \"{}\"\ntls_key = \"{}\"\n",
        args.admission_rate,
        tls.cert.display(),
        tls.key.display()
    );
    eprintln!("provisioning {n} devices…");
    let (tokens, all, baseline) = {
        let hub = start_hub_with(dir, "full", &extra, Some(&tls.ca_cert)).await?;
        let provisioned = provision(&hub, n, base_n).await?;
        hub.stop();
        provisioned
    };
    // A fresh hub process on the provisioned data: the memory measured is the sessions',
    // not what provisioning left behind.
    let hub = start_hub_with(dir, "full", &extra, Some(&tls.ca_cert)).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = ProcStat::read(hub.pid)?;

    eprintln!("connecting {n} agents…");
    let connect_started = Instant::now();
    let swarm = Swarm::start(dir, &hub.url, &tokens, args.per_process, None, &tls.ca_cert).await?;
    let load_processes = swarm.children.len();
    let connect_limit =
        Duration::from_secs(120 + (n as u64) / u64::from(args.admission_rate.max(1)));
    wait_connected(&hub, n as i64, connect_limit).await?;
    let connect_secs = connect_started.elapsed().as_secs_f64();

    eprintln!(
        "all connected in {connect_secs:.1} s; idling {} s…",
        args.idle_secs
    );
    // Settle: the hub returns the connection storm's freed memory once the session count
    // holds still for one of its 10 s checks; idle means after that.
    tokio::time::sleep(Duration::from_secs(25)).await;
    let idle_start = ProcStat::read(hub.pid)?;
    tokio::time::sleep(Duration::from_secs(args.idle_secs)).await;
    let idle_end = ProcStat::read(hub.pid)?;
    let idle_cpu = idle_end.cpu_percent_since(&idle_start);

    eprintln!("fanning out…");
    let (deliver_all_ms, results_all_ms) =
        fan_out(&hub, &swarm, all, n as u64, Duration::from_secs(300)).await?;
    swarm.stop().await;

    let (mut bd, mut br) = (0.0, 0.0);
    let mut baseline_idle_cpu = 0.0;
    if base_n > 0 {
        eprintln!(
            "baseline: {base_n} agents polling every {} s…",
            args.baseline_interval
        );
        wait_connected(&hub, 0, Duration::from_secs(60)).await?;
        let swarm = Swarm::start(
            dir,
            &hub.url,
            &tokens[..base_n],
            args.per_process,
            Some(args.baseline_interval),
            &tls.ca_cert,
        )
        .await?;
        wait_connected(&hub, base_n as i64, Duration::from_secs(120)).await?;
        // Let the random first waits play out, so pollers are spread over the interval; then
        // measure what idle polling costs the hub over one more interval.
        tokio::time::sleep(Duration::from_secs(args.baseline_interval)).await;
        let poll_start = ProcStat::read(hub.pid)?;
        tokio::time::sleep(Duration::from_secs(args.baseline_interval)).await;
        baseline_idle_cpu = ProcStat::read(hub.pid)?.cpu_percent_since(&poll_start);
        (bd, br) = fan_out(
            &hub,
            &swarm,
            baseline,
            base_n as u64,
            Duration::from_secs(300),
        )
        .await?;
        swarm.stop().await;
    }

    Ok(Report {
        agents: n,
        load_processes,
        hub_fd_limit: hub_limit,
        connect_secs,
        hub_rss_before_mib: before.rss_mib,
        hub_rss_idle_mib: idle_end.rss_mib,
        rss_per_conn_kb: (idle_end.rss_mib - before.rss_mib) * 1024.0 / n as f64,
        idle_hub_cpu_percent_of_one_core: idle_cpu,
        deliver_all_ms,
        results_all_ms,
        baseline_agents: base_n,
        baseline_interval_s: args.baseline_interval,
        baseline_deliver_all_ms: bd,
        baseline_results_all_ms: br,
        baseline_idle_hub_cpu_percent_of_one_core: baseline_idle_cpu,
        deliver_ratio_baseline_over_ws: if deliver_all_ms > 0.0 {
            bd / deliver_all_ms
        } else {
            0.0
        },
    })
}
