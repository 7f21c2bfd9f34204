//! `ferry bench dispatch`: how fast a queued job reaches its connector.
//!
//! A real hub runs as a child process (so its CPU and memory are its own), N simulated
//! connectors long-poll it over HTTP on loopback from this process, and M jobs are enqueued
//! at a steady rate, spread across them. Pickup latency is measured from just before the
//! enqueue request is sent (so it includes the enqueue round trip and commit: an upper bound
//! on "enqueue committed → connector has the job") to the moment the connector has parsed
//! the job. The same is then measured with the old behaviour, a plain poll every 10 s, as the
//! baseline, in the same run. Optionally, `--idle` connectors sit in long polls while the
//! hub's CPU is sampled.

use std::collections::HashMap;
use std::path::Path;
use std::process::{ExitCode, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use ferry_proto::connector::{ConnectorCredentials, NewConnector, SiteSettings};
use ferry_proto::job::{Job, JobKind, JobReport, LeasedJob, NewJob, Outcome};
use serde::Serialize;
use tokio::sync::Semaphore;
use uuid::Uuid;

use crate::admin_client::AdminClient;

#[derive(Debug, clap::Args)]
pub struct DispatchArgs {
    /// Simulated connectors long-polling the hub.
    #[arg(long, default_value_t = 1000)]
    pub connectors: usize,
    /// Jobs to enqueue in the long-poll phase.
    #[arg(long, default_value_t = 2000)]
    pub jobs: usize,
    /// Enqueue rate, jobs per second.
    #[arg(long, default_value_t = 200)]
    pub rate: u32,
    /// Jobs in the 10 s interval-poll baseline phase (0 skips it).
    #[arg(long, default_value_t = 300)]
    pub baseline_jobs: usize,
    /// Interval of the baseline poll, seconds.
    #[arg(long, default_value_t = 10)]
    pub baseline_interval: u64,
    /// Also measure hub CPU with this many connectors idle in long polls (0 skips it).
    #[arg(long, default_value_t = 0)]
    pub idle: usize,
    /// How long to sample the idle hub, seconds.
    #[arg(long, default_value_t = 30)]
    pub idle_secs: u64,
    /// Long-poll hold, seconds.
    #[arg(long, default_value_t = 25)]
    pub hold: u32,
    /// SQLite `synchronous` mode of the hub under test (full, the hub's default, or normal).
    #[arg(long, default_value = "full")]
    pub sqlite_synchronous: String,
    /// Print a JSON object as the last line.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Default, Serialize)]
struct Report {
    connectors: usize,
    jobs: usize,
    rate: u32,
    p50_ms: f64,
    p90_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    jobs_per_sec: f64,
    hub_cpu_percent: f64,
    hub_rss_mib: f64,
    baseline_interval_s: u64,
    baseline_jobs: usize,
    baseline_p50_ms: f64,
    baseline_p99_ms: f64,
    baseline_max_ms: f64,
    p50_ratio_baseline_over_longpoll: f64,
    idle_connectors: usize,
    idle_hub_cpu_percent_of_one_core: f64,
    idle_hub_rss_mib: f64,
}

pub(crate) struct Hub {
    child: std::process::Child,
    pub(crate) pid: u32,
    pub(crate) client: AdminClient,
    pub(crate) url: String,
}

impl Hub {
    /// Stops the hub cleanly (SIGTERM, so it checkpoints its database and closes), falling
    /// back to SIGKILL after 15 s. A benchmark that measures a fresh hub on data another
    /// hub wrote starts it on a tidy database this way, as after a normal restart.
    pub(crate) fn stop(mut self) {
        #[cfg(unix)]
        // SAFETY: kill(2) with a pid we spawned and still own; no memory is involved.
        unsafe {
            libc::kill(self.pid as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // Drop kills it.
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub async fn dispatch(args: DispatchArgs) -> anyhow::Result<ExitCode> {
    let dir = std::env::temp_dir().join(format!("ferry-bench-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir)?;
    let result = run(&args, &dir).await;
    let _ = std::fs::remove_dir_all(&dir);
    let report = result?;
    print_report(&report);
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    }
    Ok(ExitCode::SUCCESS)
}

async fn run(args: &DispatchArgs, dir: &Path) -> anyhow::Result<Report> {
    let hub = start_hub(dir, &args.sqlite_synchronous).await?;
    eprintln!(
        "hub pid {} at {}; registering {} connectors",
        hub.pid,
        hub.url,
        args.connectors.max(args.idle)
    );
    let creds = register(&hub.client, args.connectors.max(args.idle)).await?;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(usize::MAX)
        .build()?;

    let mut report = Report {
        connectors: args.connectors,
        jobs: args.jobs,
        rate: args.rate,
        baseline_interval_s: args.baseline_interval,
        baseline_jobs: args.baseline_jobs,
        idle_connectors: args.idle,
        ..Default::default()
    };

    // Phase 1: long polls.
    let connectors = &creds[..args.connectors];
    let phase = Phase::start(&http, &hub.url, connectors, Mode::LongPoll(args.hold));
    tokio::time::sleep(Duration::from_millis(500)).await; // let every connector be waiting
    let cpu0 = ProcStat::read(hub.pid)?;
    let started = Instant::now();
    let latencies = phase.drive(&hub.client, args.jobs, args.rate).await?;
    let elapsed = started.elapsed();
    let cpu1 = ProcStat::read(hub.pid)?;
    phase.stop();
    let lp = Percentiles::of(latencies);
    report.p50_ms = lp.p50;
    report.p90_ms = lp.p90;
    report.p99_ms = lp.p99;
    report.max_ms = lp.max;
    report.jobs_per_sec = args.jobs as f64 / elapsed.as_secs_f64();
    report.hub_cpu_percent = cpu1.cpu_percent_since(&cpu0);
    report.hub_rss_mib = cpu1.rss_mib;

    // Phase 2: the baseline, a plain poll every `baseline_interval` seconds.
    if args.baseline_jobs > 0 {
        eprintln!(
            "baseline: {} connectors polling every {} s",
            args.connectors, args.baseline_interval
        );
        let phase = Phase::start(
            &http,
            &hub.url,
            connectors,
            Mode::Interval(Duration::from_secs(args.baseline_interval)),
        );
        let latencies = phase
            .drive(&hub.client, args.baseline_jobs, args.rate)
            .await?;
        phase.stop();
        let base = Percentiles::of(latencies);
        report.baseline_p50_ms = base.p50;
        report.baseline_p99_ms = base.p99;
        report.baseline_max_ms = base.max;
        report.p50_ratio_baseline_over_longpoll =
            if lp.p50 > 0.0 { base.p50 / lp.p50 } else { 0.0 };
    }

    // Phase 3: idle connectors in long polls; only the hub's CPU matters.
    if args.idle > 0 {
        eprintln!(
            "idle: {} connectors in {} s long polls for {} s",
            args.idle, args.hold, args.idle_secs
        );
        let phase = Phase::start(
            &http,
            &hub.url,
            &creds[..args.idle],
            Mode::LongPoll(args.hold),
        );
        // Wait until the connection storm of the start is over: one full hold.
        tokio::time::sleep(Duration::from_secs(u64::from(args.hold) + 2)).await;
        let a = ProcStat::read(hub.pid)?;
        tokio::time::sleep(Duration::from_secs(args.idle_secs)).await;
        let b = ProcStat::read(hub.pid)?;
        phase.stop();
        report.idle_hub_cpu_percent_of_one_core = b.cpu_percent_since(&a);
        report.idle_hub_rss_mib = b.rss_mib;
    }
    Ok(report)
}

pub(crate) async fn start_hub(dir: &Path, synchronous: &str) -> anyhow::Result<Hub> {
    start_hub_with(dir, synchronous, "", None).await
}

/// [`start_hub`] with extra configuration lines.
pub(crate) async fn start_hub_with(
    dir: &Path,
    synchronous: &str,
    extra: &str,
    ca_cert: Option<&Path>,
) -> anyhow::Result<Hub> {
    let data = dir.join("hub");
    let config = format!(
        "listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\nlog_level = \"warn\"\nsqlite_synchronous = \"{synchronous}\"\n{extra}",
        data.display()
    );
    let config_path = dir.join("hub.toml");
    std::fs::write(&config_path, config)?;
    // A hub started before on this data dir left its address behind; wait for the new one.
    let _ = std::fs::remove_file(data.join(ferry_hub::URL_FILE));
    let child = std::process::Command::new(std::env::current_exe()?)
        .args(["serve", "--config"])
        .arg(&config_path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .context("starting the hub")?;
    let pid = child.id();
    let url = announced_url(&data).await?;
    let token = std::fs::read_to_string(data.join(ferry_hub::ADMIN_TOKEN_FILE))?;
    let client = crate::admin_client::client(&url, token.trim(), ca_cert)?;
    Ok(Hub {
        child,
        pid,
        client,
        url,
    })
}

/// The address a starting hub announces in its data dir (`hub.url`), once it is listening.
pub(crate) async fn announced_url(data: &Path) -> anyhow::Result<String> {
    let started = Instant::now();
    loop {
        if let Ok(text) = std::fs::read_to_string(data.join(ferry_hub::URL_FILE)) {
            return Ok(text.trim().to_owned());
        }
        if started.elapsed() > Duration::from_secs(30) {
            bail!("the hub did not start");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn register(client: &AdminClient, n: usize) -> anyhow::Result<Vec<ConnectorCredentials>> {
    let limit = Arc::new(Semaphore::new(16));
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        let client = client.clone();
        let limit = limit.clone();
        tasks.push(tokio::spawn(async move {
            let _permit = limit.acquire_owned().await?;
            let new = NewConnector {
                name: format!("bench-{i:05}"),
                site: SiteSettings::default(),
            };
            anyhow::Ok(
                client
                    .post::<_, ConnectorCredentials>("/api/v1/connectors", &new)
                    .await?,
            )
        }));
    }
    let mut out = Vec::with_capacity(n);
    for t in tasks {
        out.push(t.await??);
    }
    Ok(out)
}

#[derive(Clone, Copy)]
enum Mode {
    LongPoll(u32),
    Interval(Duration),
}

/// Simulated connectors, and when each job was sent and received.
struct Phase {
    tasks: Vec<tokio::task::JoinHandle<()>>,
    received: Arc<Mutex<HashMap<Uuid, Instant>>>,
    notify: Arc<tokio::sync::Notify>,
    connectors: Vec<Uuid>,
}

impl Phase {
    fn start(
        http: &reqwest::Client,
        base: &str,
        creds: &[ConnectorCredentials],
        mode: Mode,
    ) -> Self {
        let received = Arc::new(Mutex::new(HashMap::new()));
        let notify = Arc::new(tokio::sync::Notify::new());
        let tasks = creds
            .iter()
            .map(|c| {
                let http = http.clone();
                let auth = format!("Bearer {}:{}", c.remote_id, c.secret);
                let base = base.to_owned();
                let received = received.clone();
                let notify = notify.clone();
                tokio::spawn(async move {
                    simulated_connector(http, base, auth, mode, received, notify).await;
                })
            })
            .collect();
        Phase {
            tasks,
            received,
            notify,
            connectors: creds.iter().map(|c| c.remote_id).collect(),
        }
    }

    /// Enqueues `jobs` at `rate` per second, round-robin over the connectors, and waits until
    /// every job has been received. Returns the pickup latencies in milliseconds.
    async fn drive(
        &self,
        client: &AdminClient,
        jobs: usize,
        rate: u32,
    ) -> anyhow::Result<Vec<f64>> {
        let interval = Duration::from_secs_f64(1.0 / f64::from(rate.max(1)));
        let start = tokio::time::Instant::now();
        let mut sent = HashMap::with_capacity(jobs);
        let mut in_flight = tokio::task::JoinSet::new();
        for i in 0..jobs {
            tokio::time::sleep_until(start + interval * i as u32).await;
            let client = client.clone();
            let connector = self.connectors[i % self.connectors.len()];
            in_flight.spawn(async move {
                let t0 = Instant::now();
                let new = NewJob {
                    connector_id: connector,
                    kind: JobKind::Diagnostics,
                    payload: serde_json::Value::Null,
                    not_before: None,
                    expires_at: None,
                    max_attempts: None,
                };
                client
                    .post::<_, Job>("/api/v1/jobs", &new)
                    .await
                    .map(|job| (job.id, t0))
            });
        }
        while let Some(r) = in_flight.join_next().await {
            let (id, t0) = r??;
            sent.insert(id, t0);
        }
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let notified = self.notify.notified();
            let done = {
                let received = self
                    .received
                    .lock()
                    .map_err(|_| anyhow::anyhow!("poisoned"))?;
                sent.keys().all(|id| received.contains_key(id))
            };
            if done {
                break;
            }
            if Instant::now() > deadline {
                bail!("not every job reached its connector within 120 s");
            }
            let _ = tokio::time::timeout(Duration::from_millis(500), notified).await;
        }
        let received = self
            .received
            .lock()
            .map_err(|_| anyhow::anyhow!("poisoned"))?;
        Ok(sent
            .iter()
            .filter_map(|(id, t0)| {
                received
                    .get(id)
                    .map(|t1| t1.saturating_duration_since(*t0).as_secs_f64() * 1000.0)
            })
            .collect())
    }

    fn stop(self) {
        for t in self.tasks {
            t.abort();
        }
    }
}

async fn simulated_connector(
    http: reqwest::Client,
    base: String,
    auth: String,
    mode: Mode,
    received: Arc<Mutex<HashMap<Uuid, Instant>>>,
    notify: Arc<tokio::sync::Notify>,
) {
    let hold = match mode {
        Mode::LongPoll(h) => h,
        Mode::Interval(every) => {
            // Connectors that started at different times poll at different phases.
            tokio::time::sleep(every.mul_f64(fastrand::f64())).await;
            0
        }
    };
    loop {
        let response = http
            .get(format!("{base}/api/v1/connector/jobs/next?hold={hold}"))
            .header("authorization", &auth)
            .timeout(Duration::from_secs(u64::from(hold) + 15))
            .send()
            .await;
        let mut got_job = false;
        match response {
            Ok(r) if r.status() == reqwest::StatusCode::OK => {
                if let Ok(job) = r.json::<LeasedJob>().await {
                    let now = Instant::now();
                    if let Ok(mut map) = received.lock() {
                        map.insert(job.id, now);
                    }
                    notify.notify_one();
                    got_job = true;
                    let report = JobReport {
                        lease_token: job.lease_token,
                        outcome: Outcome::Succeeded,
                        result: None,
                        error: None,
                    };
                    let _ = http
                        .post(format!("{base}/api/v1/connector/jobs/{}/result", job.id))
                        .header("authorization", &auth)
                        .json(&report)
                        .send()
                        .await;
                }
            }
            Ok(_) => {}
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
        if let Mode::Interval(every) = mode
            && !got_job
        {
            tokio::time::sleep(every).await;
        }
    }
}

struct Percentiles {
    p50: f64,
    p90: f64,
    p99: f64,
    max: f64,
}

impl Percentiles {
    fn of(mut v: Vec<f64>) -> Self {
        v.sort_by(f64::total_cmp);
        let at = |q: f64| -> f64 {
            if v.is_empty() {
                return 0.0;
            }
            let i = ((v.len() as f64 - 1.0) * q).round() as usize;
            v[i.min(v.len() - 1)]
        };
        Percentiles {
            p50: at(0.5),
            p90: at(0.9),
            p99: at(0.99),
            max: at(1.0),
        }
    }
}

/// CPU time and resident memory of a process, from /proc (Linux only).
pub(crate) struct ProcStat {
    at: Instant,
    cpu_ticks: u64,
    pub(crate) rss_mib: f64,
}

impl ProcStat {
    pub(crate) fn read(pid: u32) -> anyhow::Result<Self> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .context("reading /proc (Linux only)")?;
        // Fields after the command name (which may hold spaces) start after the last ')'.
        let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // utime and stime are fields 14 and 15 of the whole line: 11 and 12 after the ')'.
        let utime: u64 = fields.get(11).and_then(|f| f.parse().ok()).unwrap_or(0);
        let stime: u64 = fields.get(12).and_then(|f| f.parse().ok()).unwrap_or(0);
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        let rss_kib: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        Ok(ProcStat {
            at: Instant::now(),
            cpu_ticks: utime + stime,
            rss_mib: rss_kib / 1024.0,
        })
    }

    /// Percent of one core used since `earlier`. Linux reports CPU time in clock ticks of
    /// 1/100 s (USER_HZ is 100 on every mainstream Linux ABI).
    pub(crate) fn cpu_percent_since(&self, earlier: &ProcStat) -> f64 {
        let secs = self.at.duration_since(earlier.at).as_secs_f64();
        let cpu = (self.cpu_ticks.saturating_sub(earlier.cpu_ticks)) as f64 / 100.0;
        if secs > 0.0 { 100.0 * cpu / secs } else { 0.0 }
    }
}

fn print_report(r: &Report) {
    println!(
        "dispatch benchmark: {} connectors, {} jobs at {} jobs/s",
        r.connectors, r.jobs, r.rate
    );
    println!(
        "  long poll     pickup p50 {:.2} ms  p90 {:.2} ms  p99 {:.2} ms  max {:.2} ms  ({:.0} jobs/s; hub CPU {:.1} %, RSS {:.1} MiB)",
        r.p50_ms, r.p90_ms, r.p99_ms, r.max_ms, r.jobs_per_sec, r.hub_cpu_percent, r.hub_rss_mib
    );
    if r.baseline_jobs > 0 {
        println!(
            "  {} s interval pickup p50 {:.0} ms  p99 {:.0} ms  max {:.0} ms  ({} jobs)",
            r.baseline_interval_s,
            r.baseline_p50_ms,
            r.baseline_p99_ms,
            r.baseline_max_ms,
            r.baseline_jobs
        );
        println!(
            "  ratio: the interval poll's median pickup is {:.0}x the long poll's",
            r.p50_ratio_baseline_over_longpoll
        );
    }
    if r.idle_connectors > 0 {
        println!(
            "  idle: {} connectors in long polls cost the hub {:.2} % of one core, RSS {:.1} MiB",
            r.idle_connectors, r.idle_hub_cpu_percent_of_one_core, r.idle_hub_rss_mib
        );
    }
}
