//! The demo's endpoint part: three agents (separate processes) enrol with a secret, join a
//! rule collection, and run a quick antivirus scan and a script while their status is
//! printed live.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use ferry_agent::config::{AgentConfig, CONFIG_FILE};
use ferry_proto::ops::{
    Collection, CollectionRule, CreatedEnrollmentSecret, Device, NewCollection,
    NewEnrollmentSecret, NewOperation, OpRequest, OpWatch, Operation, TargetResult,
};
use uuid::Uuid;

use crate::admin_client::AdminClient;
use crate::demo::{Managed, say, spawn_ferry};

const AGENTS: [&str; 3] = ["demo-pc-01", "demo-pc-02", "demo-pc-03"];

/// A harmless file and a ClamAV hash signature for it, so the scan has something to find
/// without ClamAV's downloadable databases (which need the internet).
const MARKER: &[u8] = b"Ferry demo: this harmless file is flagged by the demo's own signature.\n";

type AgentsResult = Result<(Vec<Managed>, serde_json::Value), (Vec<Managed>, anyhow::Error)>;

pub async fn run(client: &AdminClient, dir: &Path, ca: &Path) -> AgentsResult {
    let mut children = Vec::new();
    match steps(client, dir, ca, &mut children).await {
        Ok(summary) => Ok((children, summary)),
        Err(e) => Err((children, e)),
    }
}

async fn steps(
    client: &AdminClient,
    dir: &Path,
    ca: &Path,
    children: &mut Vec<Managed>,
) -> anyhow::Result<serde_json::Value> {
    println!();
    let secret: CreatedEnrollmentSecret = client
        .post(
            "/api/v1/enrollment-secrets",
            &NewEnrollmentSecret {
                name: "demo".into(),
                expires_in_secs: Some(3600),
                max_uses: Some(AGENTS.len() as u32),
            },
        )
        .await?;
    say(&format!(
        "created an enrolment secret for {} devices, valid for an hour (the hub keeps a hash)",
        AGENTS.len()
    ));
    let collection: Collection = client
        .post(
            "/api/v1/collections",
            &NewCollection {
                name: "Demo PCs".into(),
                rule: Some(CollectionRule {
                    hostname: Some("demo-pc-*".into()),
                    ..Default::default()
                }),
                devices: vec![],
            },
        )
        .await?;
    say("created the rule collection \"Demo PCs\" (hostname demo-pc-*)");

    let (scan_dir, sig_dir) = (dir.join("scan-area"), dir.join("signatures"));
    std::fs::create_dir_all(&scan_dir)?;
    std::fs::create_dir_all(&sig_dir)?;
    std::fs::write(scan_dir.join("demo-marker.bin"), MARKER)?;
    std::fs::write(scan_dir.join("notes.txt"), b"nothing to see here\n")?;
    std::fs::write(
        sig_dir.join("ferry-demo.hdb"),
        format!("{}:{}:Ferry.Demo.Marker\n", md5_hex(MARKER), MARKER.len()),
    )?;

    let exe = std::env::current_exe()?;
    for name in AGENTS {
        let agent_dir = dir.join("agents").join(name);
        let out = tokio::process::Command::new(&exe)
            .args([
                "agent",
                "enroll",
                "--hub",
                client.base(),
                "--secret",
                &secret.secret,
            ])
            .args(["--hostname", name, "--data-dir"])
            .arg(&agent_dir)
            .arg("--ca-cert")
            .arg(ca)
            .output()
            .await?;
        if !out.status.success() {
            bail!(
                "enrolling {name} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let path = agent_dir.join(CONFIG_FILE);
        let mut config = AgentConfig::load(&path)?;
        config.exec.av.clamav_database = Some(sig_dir.clone());
        config.exec.av.quick_paths = vec![scan_dir.clone()];
        config.exec.restart_command = vec!["true".into()];
        config.save(&path)?;
        let log = agent_dir.join("agent.log");
        let data = agent_dir.display().to_string();
        let child = spawn_ferry(&["agent", "run", "--data-dir", &data], &log)?;
        children.push(Managed {
            name: format!("agent {name}"),
            child,
        });
    }
    say(&format!(
        "enrolled and started {} agents (logs in agents/*/agent.log); each keeps one WebSocket to the hub",
        AGENTS.len()
    ));
    wait_online(client, collection.id).await?;

    let scan = operation(client, collection.id, OpRequest::QuickAvScan).await?;
    let script = operation(
        client,
        collection.id,
        OpRequest::RunScript {
            script: "echo \"hello from $(uname -s) as $(id -un), args: $*\"".into(),
            args: vec!["--greeting".into(), "it's \"quoted\"".into()],
        },
    )
    .await?;
    Ok(serde_json::json!({
        "devices": AGENTS.len(),
        "collection": collection.id,
        "quick_av_scan": scan.id,
        "scan_succeeded": scan.counts.succeeded,
        "run_script": script.id,
        "script_succeeded": script.counts.succeeded,
    }))
}

async fn wait_online(client: &AdminClient, collection: Uuid) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        let devices: Vec<Device> = client
            .get(&format!("/api/v1/devices?collection={collection}"))
            .await?;
        let online = devices.iter().filter(|d| d.online).count();
        if online == AGENTS.len() {
            say(&format!(
                "all {online} devices are online and in \"Demo PCs\" ({})",
                devices
                    .iter()
                    .map(|d| format!(
                        "{} {} {}",
                        d.inventory.hostname, d.inventory.os_name, d.inventory.os_version
                    ))
                    .collect::<Vec<_>>()
                    .join("; ")
            ));
            return Ok(());
        }
        if started.elapsed() > Duration::from_secs(30) {
            bail!("only {online} of {} agents came online", AGENTS.len());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Starts an operation on the collection and prints its counts as they change.
async fn operation(
    client: &AdminClient,
    collection: Uuid,
    op: OpRequest,
) -> anyhow::Result<Operation> {
    let started: Operation = client
        .post(
            "/api/v1/ops",
            &NewOperation {
                op,
                collections: vec![collection],
                devices: vec![],
                expires_in_secs: Some(600),
                timeout_secs: Some(120),
                output_limit: None,
                on_interrupt: None,
            },
        )
        .await?;
    println!();
    say(&format!(
        "started {} on {} devices (ferry ops watch {}):",
        started.spec.kind(),
        started.counts.total,
        started.id
    ));
    let t0 = Instant::now();
    let mut since = 0;
    let done = loop {
        let w: OpWatch = client
            .get(&format!(
                "/api/v1/ops/{}/watch?since={since}&hold=20",
                started.id
            ))
            .await?;
        if w.version != since {
            let c = &w.operation.counts;
            say(&format!(
                "  {:>6} ms  pending {}  delivered {}  running {}  succeeded {}  failed {}",
                t0.elapsed().as_millis(),
                c.pending + c.offline,
                c.delivered,
                c.running,
                c.succeeded,
                c.failed
            ));
        }
        since = w.version;
        if w.operation.counts.finished() {
            break w.operation;
        }
        if t0.elapsed() > Duration::from_secs(150) {
            bail!("{} did not finish in time", started.spec.kind());
        }
    };
    let results: Vec<TargetResult> = client
        .get(&format!("/api/v1/ops/{}/results", started.id))
        .await
        .context("reading results")?;
    for r in results {
        let text = r
            .output
            .as_deref()
            .filter(|o| !o.is_empty())
            .or(r.error.as_deref())
            .unwrap_or("");
        let first = text.lines().next().unwrap_or("");
        let found = text.lines().find(|l| l.contains("FOUND")).unwrap_or("");
        say(&format!(
            "  {}: {} (exit {}) {first} {found}",
            r.hostname,
            format!("{:?}", r.state).to_lowercase(),
            r.exit_code.map_or("-".into(), |c| c.to_string()),
        ));
    }
    Ok(done)
}

/// ClamAV's `.hdb` signatures are keyed by MD5; used only to name the demo's own signature.
fn md5_hex(data: &[u8]) -> String {
    use md5::Digest;
    md5::Md5::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
