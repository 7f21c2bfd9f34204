//! Chaos: real hub, connector and agent processes with pushes, imports and client operations
//! in flight, while processes are killed with SIGKILL and restarted at seeded random moments
//! and a proxy between the clients and the hub cuts and stalls connections. Then the faults
//! stop, and everything must converge: each job and operation ends as it would have without
//! the chaos, each application is in its site once, each device ran each operation once, and
//! nothing half-written is left behind.
//!
//! "As it would have": succeeded, except what the test plants: a push naming a collection the
//! site lacks and a script that exits 3 must fail with exactly that, once. An operation whose
//! agent was killed while running it fails as `on_interrupt = fail` says, and must not have run
//! twice.
//!
//! Size and replay, by environment variable:
//!
//! - `FERRY_CHAOS_SEED`: the seed (printed at the start and in every failure; random when
//!   unset). The same seed replays the same schedule of kills, pauses, work and network
//!   faults (the processes' own timing still varies from run to run).
//! - `FERRY_CHAOS_ROUNDS` (default 16): kill-and-restart rounds.
//! - `FERRY_CHAOS_PUSHES` (8), `FERRY_CHAOS_SCRIPTS` (6), `FERRY_CHAOS_INSTALLS` (2): work.
//! - `FERRY_CHAOS_CONNECTORS` (2), `FERRY_CHAOS_AGENTS` (3): processes.
//! - `FERRY_CHAOS_CALM_SECS` (60): how long convergence may take once the faults stop, but
//!   never past `FERRY_CHAOS_DEADLINE_SECS` (110) after the start: nextest ends a test at
//!   120 s (`.config/nextest.toml`), and a failure should be reported, not cut off.
//! - `FERRY_CHAOS_KEEP`: a folder to copy the hub's whole temporary folder (logs, data,
//!   sites, agents) into when the test fails.
//!
//! The set of processes that may be killed is the suite's parameter ([`Target`]): cluster
//! replicas join it as another kind.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::chaos_proxy::{ChaosProxy, FaultRates};
use common::{FERRY, TestConnector, TestHub};
use ferry_agent::config::TransportChoice;
use ferry_proto::connector::ConnectorCredentials;
use ferry_proto::job::{Job, JobState};
use ferry_proto::ops::TargetState;
use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

/// Short leases, so that a killed connector's job runs again soon; attempts enough for every
/// kill the chaos may deal one job (a lapsed lease uses one up).
const HUB_CONFIG: &str = "lease_secs = 6\nmax_attempts = 50";

/// The collection the planted push names, which no site has.
const NO_SUCH_COLLECTION: &str = "No such collection";
/// The exit code of the planted failing script.
const PLANTED_EXIT: i32 = 3;
/// What an agent says about an operation it was killed in the middle of (`on_interrupt =
/// fail`): a failure the chaos planted by killing it.
const INTERRUPTED: &str = "the agent stopped while this operation was running";
/// The file each device's scripts append their label to: the device's own record of what it
/// ran, independent of the agent.
const RUNS_FILE: &str = "chaos-runs.log";

// ----- the parameters ------------------------------------------------------------------------

struct Size {
    seed: u64,
    rounds: usize,
    pushes: usize,
    scripts: usize,
    installs: usize,
    connectors: usize,
    agents: usize,
    calm: Duration,
    deadline: Duration,
    keep: Option<PathBuf>,
}

fn env_num(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a number")),
        Err(_) => default,
    }
}

impl Size {
    /// The environment that replays this run.
    fn replay(&self) -> String {
        format!(
            "FERRY_CHAOS_SEED={} FERRY_CHAOS_ROUNDS={} FERRY_CHAOS_PUSHES={} FERRY_CHAOS_SCRIPTS={} \
             FERRY_CHAOS_INSTALLS={} FERRY_CHAOS_CONNECTORS={} FERRY_CHAOS_AGENTS={}",
            self.seed,
            self.rounds,
            self.pushes,
            self.scripts,
            self.installs,
            self.connectors,
            self.agents
        )
    }

    fn from_env() -> Size {
        Size {
            seed: env_num("FERRY_CHAOS_SEED", fastrand::u64(..)),
            rounds: env_num("FERRY_CHAOS_ROUNDS", 16) as usize,
            pushes: env_num("FERRY_CHAOS_PUSHES", 8) as usize,
            scripts: env_num("FERRY_CHAOS_SCRIPTS", 6) as usize,
            installs: env_num("FERRY_CHAOS_INSTALLS", 2) as usize,
            connectors: env_num("FERRY_CHAOS_CONNECTORS", 2).max(1) as usize,
            agents: env_num("FERRY_CHAOS_AGENTS", 3).max(1) as usize,
            calm: Duration::from_secs(env_num("FERRY_CHAOS_CALM_SECS", 60)),
            deadline: Duration::from_secs(env_num("FERRY_CHAOS_DEADLINE_SECS", 110)),
            keep: std::env::var_os("FERRY_CHAOS_KEEP").map(PathBuf::from),
        }
    }
}

/// A process the chaos may kill and restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Target {
    Hub,
    Connector(usize),
    Agent(usize),
}

impl Target {
    fn kind(self) -> &'static str {
        match self {
            Target::Hub => "hub",
            Target::Connector(_) => "connector",
            Target::Agent(_) => "agent",
        }
    }

    /// The single-node set: the hub, every connector, every agent.
    fn single_node(connectors: usize, agents: usize) -> Vec<Target> {
        std::iter::once(Target::Hub)
            .chain((0..connectors).map(Target::Connector))
            .chain((0..agents).map(Target::Agent))
            .collect()
    }
}

// ----- the processes -------------------------------------------------------------------------

struct Connector {
    creds: ConnectorCredentials,
    dir: PathBuf,
    site: PathBuf,
    config: String,
    process: Option<TestConnector>,
    starts: u32,
}

impl Connector {
    fn work_dir(&self) -> PathBuf {
        self.dir.join("work")
    }

    fn start(&mut self) {
        // Each run writes a fresh log: keep the earlier ones beside it.
        let log = self.dir.join("connector.log");
        if log.exists() {
            std::fs::rename(
                &log,
                self.dir.join(format!("connector.{}.log", self.starts)),
            )
            .unwrap();
        }
        self.starts += 1;
        self.process = Some(TestConnector::spawn(&self.dir, &self.config));
    }

    fn kill9(&mut self) {
        if let Some(mut p) = self.process.take() {
            p.kill9();
        }
    }

    /// Every run's log, oldest first.
    fn logs(&self) -> String {
        let mut all = String::new();
        for n in 1..self.starts {
            all += &std::fs::read_to_string(self.dir.join(format!("connector.{n}.log")))
                .unwrap_or_default();
        }
        all + &std::fs::read_to_string(self.dir.join("connector.log")).unwrap_or_default()
    }
}

/// Fields drop in order: the clients stop before the hub and its folder go.
struct World {
    connectors: Vec<Connector>,
    agents: Vec<common::agents::TestAgent>,
    proxy: ChaosProxy,
    hub: TestHub,
    seed: u64,
    started: Instant,
    kills: BTreeMap<&'static str, u32>,
    /// Agents killed at least once (their operations may end interrupted).
    killed_agents: HashSet<usize>,
}

impl World {
    fn say(&self, what: impl std::fmt::Display) {
        eprintln!(
            "[chaos seed={} {:6.1}s] {what}",
            self.seed,
            self.started.elapsed().as_secs_f64()
        );
    }

    fn kill9(&mut self, t: Target) {
        match t {
            Target::Hub => self.hub.kill9(),
            Target::Connector(i) => self.connectors[i].kill9(),
            Target::Agent(i) => {
                self.agents[i].kill9();
                self.killed_agents.insert(i);
            }
        }
        *self.kills.entry(t.kind()).or_default() += 1;
    }

    async fn start(&mut self, t: Target) {
        match t {
            Target::Hub => self.hub.restart().await,
            Target::Connector(i) => self.connectors[i].start(),
            Target::Agent(i) => self.agents[i].start(),
        }
    }

    /// Every log, cut to the lines that mention `needle` (all lines when it is empty), at most
    /// `max` lines each.
    fn logs_about(&self, needle: &str, max: usize) -> String {
        let mut out = String::new();
        let mut add = |name: String, text: String| {
            let lines: Vec<&str> = text.lines().filter(|l| l.contains(needle)).collect();
            if !lines.is_empty() {
                let from = lines.len().saturating_sub(max);
                out += &format!(
                    "--- {name} ({} matching lines, last {}):\n",
                    lines.len(),
                    lines.len() - from
                );
                for l in &lines[from..] {
                    out += l;
                    out.push('\n');
                }
            }
        };
        add("hub.log".into(), strip_ansi(&self.hub.log()));
        for (i, c) in self.connectors.iter().enumerate() {
            add(format!("connector {i}"), c.logs());
        }
        for (i, a) in self.agents.iter().enumerate() {
            add(format!("agent {i}"), a.log());
        }
        out
    }

    /// Copies the whole temporary folder to `FERRY_CHAOS_KEEP`, for a failure's post-mortem.
    fn keep(&self, size: &Size) -> String {
        let Some(keep) = &size.keep else {
            return "set FERRY_CHAOS_KEEP=/some/dir to keep the logs and data".into();
        };
        let dest = keep.join(format!("ferry-chaos-{}", self.seed));
        let _ = std::fs::create_dir_all(keep);
        let _ = std::fs::remove_dir_all(&dest);
        let ok = std::process::Command::new("cp")
            .arg("-a")
            .arg(self.hub.dir.path())
            .arg(&dest)
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            format!("logs and data kept in {}", dest.display())
        } else {
            format!("could not copy the test folder to {}", dest.display())
        }
    }
}

// ----- the work ------------------------------------------------------------------------------

/// One unit of work, and what it must end as.
#[derive(Debug, Clone)]
enum Work {
    /// A push of its own package as its own application.
    Push {
        connector: usize,
        app: String,
        package: String,
    },
    /// A push that fails for good: the deployment names a collection the site lacks.
    DoomedPush { connector: usize, package: String },
    /// An import of the connector's base application.
    Import { connector: usize, app: String },
    /// A script on every device that appends its label to the device's runs file.
    Script { label: String },
    /// The same, exiting with [`PLANTED_EXIT`] afterwards.
    DoomedScript { label: String },
    /// An install on every device of a package whose install command appends its label.
    Install { label: String, package: String },
}

/// What was submitted: the hub's ID for it.
#[derive(Debug, Clone)]
struct Submitted {
    work: Work,
    id: Uuid,
}

fn push_spec(app: &str) -> Value {
    json!({
        "application": { "name": app, "version": "1.0", "publisher": "Ferry Chaos",
                         "product_name": app, "language": "English(United States)" },
        "deployment_type": {
            "installer": "script",
            "install_command": "Deploy-Application.exe -DeploymentType Install",
            "detection": { "script": { "language": "powershell", "text": "$true" } }
        }
    })
}

/// A shell line that finds the agent's data dir above the working directory (where
/// `agent.toml` is) and appends `label` to the runs file there.
fn record_run(label: &str) -> String {
    format!(
        "d=\"$PWD\"; while [ \"$d\" != / ] && [ ! -f \"$d/agent.toml\" ]; do d=$(dirname \"$d\"); done; \
         echo '{label}' >> \"$d/{RUNS_FILE}\""
    )
}

/// A zip of `bytes` incompressible bytes plus `files`: distinct content, big enough that cuts
/// land inside its transfers.
fn random_zip(rng: &mut fastrand::Rng, bytes: usize, files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut payload = vec![0u8; bytes];
    rng.fill(&mut payload);
    let mut all: Vec<(&str, &[u8])> = files.to_vec();
    all.push(("Files/payload.bin", &payload));
    ferry_package::sample::zip_of(&all).unwrap()
}

async fn upload(hub: &TestHub, zip: Vec<u8>) -> String {
    hub.upload_package(zip).await["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn post(hub: &TestHub, path: &str, body: Value) -> Value {
    let r = hub
        .admin(Method::POST, path)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status();
    let text = r.text().await.unwrap();
    assert!(status.is_success(), "POST {path}: {status} {text}");
    serde_json::from_str(&text).unwrap()
}

fn id_of(v: &Value) -> Uuid {
    v["id"].as_str().unwrap().parse().unwrap()
}

async fn submit(w: &World, work: &Work) -> Submitted {
    let hub = &w.hub;
    let devices: Vec<Uuid> = w.agents.iter().map(|a| a.device).collect();
    let connector = |i: usize| w.connectors[i].creds.remote_id;
    let id = match work {
        Work::Push {
            connector: c,
            app,
            package,
        } => id_of(
            &post(
                hub,
                "/api/v1/push",
                json!({ "package_id": package, "connector_id": connector(*c), "spec": push_spec(app) }),
            )
            .await,
        ),
        Work::DoomedPush {
            connector: c,
            package,
        } => {
            let mut spec = push_spec("Chaos_Doomed");
            spec["deployment"] = json!({ "collection": NO_SUCH_COLLECTION });
            id_of(
                &post(
                    hub,
                    "/api/v1/push",
                    json!({ "package_id": package, "connector_id": connector(*c), "spec": spec }),
                )
                .await,
            )
        }
        Work::Import { connector: c, app } => id_of(
            &post(
                hub,
                &format!("/api/v1/connectors/{}/import", connector(*c)),
                json!({ "applications": [app] }),
            )
            .await,
        ),
        Work::Script { label } => {
            hub.start_op(json!({
                "op": { "kind": "run_script", "script": record_run(label) },
                "devices": devices,
            }))
            .await
            .id
        }
        Work::DoomedScript { label } => {
            hub.start_op(json!({
                "op": { "kind": "run_script",
                        "script": format!("{}; exit {PLANTED_EXIT}", record_run(label)) },
                "devices": devices,
            }))
            .await
            .id
        }
        Work::Install { package, .. } => {
            hub.start_op(json!({
                "op": { "kind": "install", "package_id": package },
                "devices": devices,
            }))
            .await
            .id
        }
    };
    w.say(format!("submitted {work:?} as {id}"));
    Submitted {
        work: work.clone(),
        id,
    }
}

fn site_state(dir: &Path) -> Value {
    let out = std::process::Command::new(FERRY)
        .args(["sccm", "site", "show", "--site"])
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "site show: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// `text` without terminal colour codes (the hub's log has them).
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // ESC [ parameters final-byte
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Files under `dir` (recursively) whose name satisfies `pred`.
fn files_under(dir: &Path, pred: &dyn Fn(&str) -> bool) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(items) = std::fs::read_dir(dir) else {
        return found;
    };
    for item in items.flatten() {
        let path = item.path();
        if path.is_dir() {
            found.extend(files_under(&path, pred));
        } else if path.file_name().and_then(|n| n.to_str()).is_some_and(pred) {
            found.push(path);
        }
    }
    found
}

// ----- setup ---------------------------------------------------------------------------------

async fn setup(size: &Size) -> World {
    let hub = TestHub::start(HUB_CONFIG).await;
    let proxy = ChaosProxy::start(
        &hub.url,
        size.seed ^ 0x9E37_79B9_7F4A_7C15,
        FaultRates::default(),
    )
    .await;
    // A calm start: the faults come with the chaos.
    proxy.set_faults(false);
    let mut w = World {
        seed: size.seed,
        started: Instant::now(),
        hub,
        proxy,
        connectors: Vec::new(),
        agents: Vec::new(),
        kills: BTreeMap::new(),
        killed_agents: HashSet::new(),
    };
    for i in 0..size.connectors {
        let creds = w.hub.register(&format!("chaos-site-{i}")).await;
        let r = w
            .hub
            .admin(Method::PATCH, &format!("/api/v1/connectors/{}", creds.remote_id))
            .json(&json!({ "site": {
                "site_code": "DEM",
                "console_path": "C:\\Program Files (x86)\\Microsoft Configuration Manager\\AdminConsole\\bin",
                "share_path": "\\\\WIN-2HDJCBHRRVB\\Sources$\\incoming",
                "distribution_point_group": "Demo Distribution Group",
                "collection": "Demo devices",
                "folder": "Applications/Chaos"
            }}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let dir = w.hub.dir.path().join(format!("connector-{i}"));
        std::fs::create_dir_all(&dir).unwrap();
        let site = dir.join("site");
        let config = format!(
            "hub_url = \"{}\"\nremote_id = \"{}\"\nsecret = \"{}\"\nwork_dir = \"{}\"\n\
             max_backoff_secs = 2\nbackend = \"emulator\"\nemulator_site = \"{}\"\nshare_dir = \"{}\"\n",
            w.proxy.url,
            creds.remote_id,
            creds.secret,
            dir.join("work").display(),
            site.display(),
            dir.join("share").display(),
        );
        let mut c = Connector {
            creds,
            dir,
            site,
            config,
            process: None,
            starts: 0,
        };
        c.start();
        w.connectors.push(c);
    }
    for i in 0..size.agents {
        let proxy_url = w.proxy.url.clone();
        let mut agent = w
            .hub
            .enroll_agent(&format!("chaos-{i:02}"), |c| {
                c.hub_url = proxy_url;
                // One device on the long-poll transport, the others on WebSockets.
                if i == 2 {
                    c.transport = TransportChoice::Poll;
                }
            })
            .await;
        agent.start();
        w.agents.push(agent);
    }
    for a in &w.agents {
        w.hub.wait_online(a.device, true).await;
    }
    w.say(format!(
        "hub {}, proxy {}, {} connector(s), {} agent(s) online",
        w.hub.url,
        w.proxy.url,
        w.connectors.len(),
        w.agents.len()
    ));
    w
}

/// Pushes each connector's base application and takes an inventory, so that imports have
/// something to import. Calm: this is the starting state, not the test.
async fn base_sites(w: &World, rng: &mut fastrand::Rng) -> Vec<String> {
    let mut apps = Vec::new();
    let mut jobs = Vec::new();
    for (i, c) in w.connectors.iter().enumerate() {
        let app = format!("Chaos_Base_{i}");
        let package = upload(
            &w.hub,
            random_zip(rng, 1536 * 1024, &[("Deploy-Application.ps1", b"# base")]),
        )
        .await;
        let job = post(
            &w.hub,
            "/api/v1/push",
            json!({ "package_id": package, "connector_id": c.creds.remote_id, "spec": push_spec(&app) }),
        )
        .await;
        jobs.push(id_of(&job));
        apps.push(app);
    }
    for id in jobs.drain(..) {
        let done = w
            .hub
            .wait_job(id, Duration::from_secs(60), |j| j.state.is_terminal())
            .await;
        assert_eq!(
            done.state,
            JobState::Succeeded,
            "seed {}: {done:#?}",
            w.seed
        );
    }
    for c in &w.connectors {
        let job = post(
            &w.hub,
            &format!("/api/v1/connectors/{}/inventory", c.creds.remote_id),
            json!({}),
        )
        .await;
        jobs.push(id_of(&job));
    }
    for id in jobs {
        let done = w
            .hub
            .wait_job(id, Duration::from_secs(60), |j| j.state.is_terminal())
            .await;
        assert_eq!(
            done.state,
            JobState::Succeeded,
            "seed {}: {done:#?}",
            w.seed
        );
    }
    w.say("base applications pushed and inventoried");
    apps
}

/// Every unit of work, in a seeded order.
async fn plan_work(w: &World, size: &Size, bases: &[String], rng: &mut fastrand::Rng) -> Vec<Work> {
    let mut work = Vec::new();
    let package_for = |rng: &mut fastrand::Rng, label: String| {
        let bytes = rng.usize(256 * 1024..1536 * 1024);
        random_zip(rng, bytes, &[("Deploy-Application.ps1", label.as_bytes())])
    };
    for i in 0..size.pushes {
        let zip = package_for(rng, format!("# push {i}"));
        work.push(Work::Push {
            connector: i % w.connectors.len(),
            app: format!("Chaos_App_{i:02}"),
            package: upload(&w.hub, zip).await,
        });
    }
    let zip = package_for(rng, "# doomed".into());
    work.push(Work::DoomedPush {
        connector: rng.usize(..w.connectors.len()),
        package: upload(&w.hub, zip).await,
    });
    // Two imports of each base application: the second finds its package already stored.
    for (i, app) in bases.iter().enumerate() {
        for _ in 0..2 {
            work.push(Work::Import {
                connector: i,
                app: app.clone(),
            });
        }
    }
    for i in 0..size.scripts {
        work.push(Work::Script {
            label: format!("script-{i:02}"),
        });
    }
    work.push(Work::DoomedScript {
        label: "script-doomed".into(),
    });
    for i in 0..size.installs {
        let label = format!("install-{i:02}");
        let script = format!("{}\n", record_run(&label));
        let bytes = rng.usize(256 * 1024..1024 * 1024);
        let zip = random_zip(rng, bytes, &[("install.sh", script.as_bytes())]);
        let package = upload(&w.hub, zip).await;
        let r = w
            .hub
            .admin(Method::PATCH, &format!("/api/v1/packages/{package}"))
            .json(&json!({"metadata": {"install_command": "sh install.sh"}}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
        work.push(Work::Install { label, package });
    }
    rng.shuffle(&mut work);
    work
}

// ----- the end state -------------------------------------------------------------------------

/// Polls until every job is terminal, every operation finished and every agent's journal
/// empty (each result confirmed), or `limit` passes; returns what is still open.
async fn converge(w: &World, submitted: &[Submitted], limit: Duration) -> Vec<String> {
    let started = Instant::now();
    loop {
        let mut open = Vec::new();
        for s in submitted {
            match &s.work {
                Work::Push { .. } | Work::DoomedPush { .. } | Work::Import { .. } => {
                    let job = w.hub.job(s.id).await;
                    if !job.state.is_terminal() {
                        open.push(format!(
                            "job {} ({:?}) is {:?} after {} attempt(s)",
                            s.id, s.work, job.state, job.attempts
                        ));
                    }
                }
                _ => {
                    let op = w.hub.op(s.id).await;
                    if !op.counts.finished() {
                        open.push(format!(
                            "operation {} ({:?}): {:?}",
                            s.id, s.work, op.counts
                        ));
                    }
                }
            }
        }
        for (i, a) in w.agents.iter().enumerate() {
            let left = files_under(&a.dir.join("journal"), &|n| n.ends_with(".json"));
            if !left.is_empty() {
                open.push(format!("agent {i}'s journal still holds {left:?}"));
            }
        }
        if open.is_empty() || started.elapsed() > limit {
            return open;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// How many times each label is in each device's runs file.
fn runs(w: &World) -> Vec<HashMap<String, usize>> {
    w.agents
        .iter()
        .map(|a| {
            let mut counts = HashMap::new();
            for line in std::fs::read_to_string(a.dir.join(RUNS_FILE))
                .unwrap_or_default()
                .lines()
            {
                *counts.entry(line.trim().to_owned()).or_default() += 1;
            }
            counts
        })
        .collect()
}

/// Everything wrong with the end state, one entry each; and how many device runs ended
/// interrupted by a kill (allowed, but worth counting).
async fn problems(w: &World, submitted: &[Submitted], bases: &[String]) -> (Vec<String>, usize) {
    let (mut problems, interrupted) = outcome_problems(w, submitted).await;
    problems.extend(site_problems(w, submitted, bases));
    problems.extend(leftover_problems(w).await);
    (problems, interrupted)
}

/// Each job and each device's run of each operation ended as planned: succeeded, or failed for
/// the reason the test planted; and each device ran each operation once (its runs file says
/// so), at most once when a kill interrupted it.
async fn outcome_problems(w: &World, submitted: &[Submitted]) -> (Vec<String>, usize) {
    let mut problems = Vec::new();
    let mut interrupted_runs = 0;
    let runs = runs(w);
    for s in submitted {
        match &s.work {
            Work::Push { app, .. } => {
                let job = w.hub.job(s.id).await;
                if job.state != JobState::Succeeded {
                    problems.push(job_problem(w, &job, &format!("push of {app}"), "succeeded"));
                }
            }
            Work::Import { app, .. } => {
                let job = w.hub.job(s.id).await;
                if job.state != JobState::Succeeded {
                    problems.push(job_problem(
                        w,
                        &job,
                        &format!("import of {app}"),
                        "succeeded",
                    ));
                }
            }
            Work::DoomedPush { .. } => {
                let job = w.hub.job(s.id).await;
                let planted = job.state == JobState::Failed
                    && job
                        .error
                        .as_deref()
                        .unwrap_or("")
                        .contains(NO_SUCH_COLLECTION);
                if !planted {
                    problems.push(job_problem(
                        w,
                        &job,
                        "doomed push",
                        &format!("failed naming {NO_SUCH_COLLECTION:?}"),
                    ));
                }
            }
            Work::Script { label } | Work::Install { label, .. } | Work::DoomedScript { label } => {
                let doomed = matches!(s.work, Work::DoomedScript { .. });
                let results = w.hub.op_results(s.id).await;
                for r in &results {
                    let Some(i) = w.agents.iter().position(|a| a.device == r.device_id) else {
                        problems.push(format!(
                            "operation {label}: a result for unknown device {}",
                            r.device_id
                        ));
                        continue;
                    };
                    let ran = runs[i].get(label).copied().unwrap_or(0);
                    let interrupted = r.state == TargetState::Failed
                        && w.killed_agents.contains(&i)
                        && r.error.as_deref().unwrap_or("").contains(INTERRUPTED);
                    interrupted_runs += usize::from(interrupted);
                    let (ok, expected_runs) = if interrupted {
                        // Killed mid-run by the chaos: it may have run before the kill, never twice.
                        (true, 0..=1)
                    } else if doomed {
                        (
                            r.state == TargetState::Failed && r.exit_code == Some(PLANTED_EXIT),
                            1..=1,
                        )
                    } else {
                        (r.state == TargetState::Succeeded, 1..=1)
                    };
                    if !ok {
                        problems.push(format!(
                            "operation {label} ({}) on agent {i}: {:?}, exit {:?}, error {:?}; expected {}\n{}",
                            s.id,
                            r.state,
                            r.exit_code,
                            r.error,
                            if doomed { format!("failed with exit {PLANTED_EXIT}") } else { "succeeded".into() },
                            w.logs_about(&s.id.to_string(), 15)
                        ));
                    }
                    if !expected_runs.contains(&ran) {
                        problems.push(format!(
                            "operation {label} ({}) ran {ran} time(s) on agent {i} (its {RUNS_FILE}); result {:?}\n{}",
                            s.id,
                            r.state,
                            w.logs_about(&s.id.to_string(), 15)
                        ));
                    }
                }
                if results.len() != w.agents.len() {
                    problems.push(format!(
                        "operation {label} ({}): {} result(s) for {} device(s)",
                        s.id,
                        results.len(),
                        w.agents.len()
                    ));
                }
            }
        }
    }

    (problems, interrupted_runs)
}

/// Each site holds each of its applications once, with one deployment type and one
/// deployment.
fn site_problems(w: &World, submitted: &[Submitted], bases: &[String]) -> Vec<String> {
    let mut problems = Vec::new();
    let mut apps_per_connector: Vec<Vec<String>> = bases.iter().map(|s| vec![s.clone()]).collect();
    for s in submitted {
        if let Work::Push { connector, app, .. } = &s.work {
            apps_per_connector[*connector].push(app.clone());
        }
    }
    for (i, c) in w.connectors.iter().enumerate() {
        let site = site_state(&c.site);
        let applications = site["applications"].as_array().cloned().unwrap_or_default();
        let deployments = site["deployments"].as_array().cloned().unwrap_or_default();
        for app in &apps_per_connector[i] {
            let copies: Vec<&Value> = applications
                .iter()
                .filter(|a| a["name"] == app.as_str())
                .collect();
            let types: usize = copies
                .iter()
                .map(|a| a["deployment_types"].as_array().map_or(0, Vec::len))
                .sum();
            let deployed = deployments
                .iter()
                .filter(|d| d["application_name"] == app.as_str())
                .count();
            if (copies.len(), types, deployed) != (1, 1, 1) {
                problems.push(format!(
                    "site {i}: {app} is there {} time(s) with {types} deployment type(s) and {deployed} deployment(s); expected once with one of each",
                    copies.len()
                ));
            }
        }
    }

    problems
}

/// Nothing half-transferred is left, and every blob belongs to a package.
async fn leftover_problems(w: &World) -> Vec<String> {
    let mut problems = Vec::new();
    let hub_parts = files_under(&w.hub.data_dir().join("uploads"), &|n| n.ends_with(".part"));
    if !hub_parts.is_empty() {
        let mut detail = String::new();
        for p in &hub_parts {
            let id = p.file_stem().and_then(|s| s.to_str()).unwrap_or("");
            let session = w
                .hub
                .admin(Method::GET, &format!("/api/v1/uploads/{id}"))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            detail += &format!("  {id}: {session}\n");
        }
        problems.push(format!(
            "the hub holds unfinished uploads (part files in {}):\n{detail}",
            w.hub.data_dir().join("uploads").display()
        ));
    }
    for (i, c) in w.connectors.iter().enumerate() {
        let parts = files_under(&c.work_dir().join("downloads"), &|n| n.ends_with(".part"));
        if !parts.is_empty() {
            problems.push(format!(
                "connector {i} holds unfinished downloads: {parts:?}"
            ));
        }
    }

    let packages: Vec<Value> = w
        .hub
        .admin(Method::GET, "/api/v1/packages")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let known: HashSet<&str> = packages
        .iter()
        .filter_map(|p| p["sha256"].as_str())
        .collect();
    for blob in files_under(&w.hub.data_dir().join("blobs"), &|_| true) {
        let name = blob.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if !known.contains(name) {
            problems.push(format!(
                "orphan blob {} (no package has this hash)",
                blob.display()
            ));
        }
    }
    problems
}

fn job_problem(w: &World, job: &Job, what: &str, expected: &str) -> String {
    let events: Vec<String> = job
        .events
        .iter()
        .rev()
        .take(12)
        .rev()
        .map(|e| format!("  {e:?}"))
        .collect();
    format!(
        "{what} (job {}): {:?} after {} attempt(s), error {:?}; expected {expected}\nlast events:\n{}\n{}",
        job.id,
        job.state,
        job.attempts,
        job.error,
        events.join("\n"),
        w.logs_about(&job.id.to_string(), 15)
    )
}

// ----- the suite -----------------------------------------------------------------------------

/// A process to kill: each kind as likely as another, whatever their numbers.
fn pick(rng: &mut fastrand::Rng, targets: &[Target]) -> Target {
    let kinds: BTreeSet<&str> = targets.iter().map(|t| t.kind()).collect();
    let kind = *kinds.iter().nth(rng.usize(..kinds.len())).unwrap();
    let of_kind: Vec<Target> = targets
        .iter()
        .copied()
        .filter(|t| t.kind() == kind)
        .collect();
    of_kind[rng.usize(..of_kind.len())]
}

async fn run_chaos(size: Size, killable: impl Fn(&World) -> Vec<Target>) {
    eprintln!("chaos: {}", size.replay());
    // Every failure names the seed, also those raised in the shared helpers (this binary runs
    // this one test, so the hook is ours alone).
    let replay = size.replay();
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        eprintln!("chaos failed; replay with: {replay} cargo nextest run -p ferry --test chaos");
        default_hook(info);
    }));
    let mut rng = fastrand::Rng::with_seed(size.seed);
    let mut w = setup(&size).await;
    let bases = base_sites(&w, &mut rng).await;
    let work = plan_work(&w, &size, &bases, &mut rng).await;
    let targets = killable(&w);

    // A third of the work before the first kill, the rest spread over the rounds.
    let mut queue = work.into_iter();
    let mut submitted = Vec::new();
    let first = queue.len().div_ceil(3);
    for item in queue.by_ref().take(first) {
        submitted.push(submit(&w, &item).await);
    }
    let per_round = queue.len().div_ceil(size.rounds.max(1));

    w.proxy.set_faults(true);
    w.say("chaos begins");
    for round in 0..size.rounds {
        let batch: Vec<Work> = queue.by_ref().take(per_round).collect();
        let target = pick(&mut rng, &targets);
        // The kill comes a random moment into the work just submitted, or the work is
        // submitted while the process is down (not the hub: it takes the work).
        let while_down = rng.bool() && target != Target::Hub;
        let lead = Duration::from_millis(rng.u64(0..800));
        let down = Duration::from_millis(rng.u64(0..1500));
        let pause = Duration::from_millis(rng.u64(200..1500));
        if !while_down {
            for item in &batch {
                submitted.push(submit(&w, item).await);
            }
            tokio::time::sleep(lead).await;
        }
        w.say(format!(
            "round {round}: SIGKILL {target:?}, down {} ms{}, then {} ms until the next round",
            down.as_millis(),
            if while_down {
                " (work submitted meanwhile)"
            } else {
                ""
            },
            pause.as_millis()
        ));
        w.kill9(target);
        if while_down {
            for item in &batch {
                submitted.push(submit(&w, item).await);
            }
        }
        tokio::time::sleep(down).await;
        w.start(target).await;
        tokio::time::sleep(pause).await;
    }
    for item in queue {
        submitted.push(submit(&w, &item).await);
    }
    w.proxy.set_faults(false);
    w.say(format!(
        "chaos over: {:?}; waiting for convergence",
        w.proxy.stats()
    ));

    let calm = size
        .calm
        .min(size.deadline.saturating_sub(w.started.elapsed()))
        .max(Duration::from_secs(15));
    let open = converge(&w, &submitted, calm).await;
    let mut found = Vec::new();
    if !open.is_empty() {
        found.push(format!(
            "not converged within {} s of calm:\n  {}",
            calm.as_secs(),
            open.join("\n  ")
        ));
    }
    let (wrong, interrupted) = problems(&w, &submitted, &bases).await;
    found.extend(wrong);

    let stats = w.proxy.stats();
    let kills: Vec<String> = w.kills.iter().map(|(k, n)| format!("{k} {n}")).collect();
    let summary = format!(
        "chaos summary: seed {} rounds {} kills [{}] proxy: {} connections, {} cuts, {} stalls, {} refused; {} jobs and operations, {interrupted} device run(s) interrupted by a kill; took {:.1} s",
        size.seed,
        size.rounds,
        kills.join(", "),
        stats.connections,
        stats.cuts,
        stats.stalls,
        stats.refused,
        submitted.len(),
        w.started.elapsed().as_secs_f64()
    );
    eprintln!("{summary}");
    // A run in which no fault happened proves nothing: say so rather than pass.
    let kills_done: u32 = w.kills.values().sum();
    if size.rounds > 0 && kills_done == 0 {
        found.push("no process was killed: the chaos never happened".to_owned());
    }
    if stats.connections == 0 || stats.cuts + stats.stalls == 0 {
        found.push("the proxy injected no fault (or carried no connection)".to_owned());
    }
    if !found.is_empty() {
        let kept = w.keep(&size);
        panic!(
            "chaos with FERRY_CHAOS_SEED={} found {} problem(s) ({kept}):\n\n{}\n\n{summary}\nreplay: {} cargo nextest run -p ferry --test chaos",
            size.seed,
            found.len(),
            found.join("\n\n"),
            size.replay()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_in_flight_converges_exactly_once_through_killed_processes_and_a_faulty_network() {
    let size = Size::from_env();
    let (connectors, agents) = (size.connectors, size.agents);
    run_chaos(size, move |_| Target::single_node(connectors, agents)).await;
}
