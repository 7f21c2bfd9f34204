//! Endpoint agents end to end: real hub and agent processes, real WebSocket and long polls.

mod common;

use std::time::Duration;

use common::TestHub;
use common::agents::wait_file;
use ferry_agent::config::TransportChoice;
use ferry_proto::ops::TargetState;
use serde_json::{Value, json};

const LIMIT: Duration = Duration::from_secs(30);

#[tokio::test]
async fn an_enrolled_agent_reports_its_inventory_and_is_online_while_it_runs() {
    let hub = TestHub::start("").await;
    let mut agent = hub.enroll_agent("pc-0001", |_| {}).await;
    agent.start();
    let d = hub.wait_online(agent.device, true).await;
    assert_eq!(d.inventory.hostname, "pc-0001");
    assert!(!d.inventory.os_name.is_empty());
    assert_eq!(d.inventory.arch, std::env::consts::ARCH);
    assert_eq!(d.inventory.agent_version, env!("CARGO_PKG_VERSION"));
    assert!(d.last_seen.is_some());
    agent.kill9();
    hub.wait_online(agent.device, false).await;
}

#[tokio::test]
async fn a_script_runs_on_a_connected_agent_with_its_arguments_verbatim_and_its_output_comes_back()
{
    let hub = TestHub::start("").await;
    let mut agent = hub.enroll_agent("pc-0002", |_| {}).await;
    agent.start();
    hub.wait_online(agent.device, true).await;
    let op = hub
        .start_op(json!({
            "op": {"kind": "run_script", "script": "printf '%s|' \"$@\"; exit 3",
                   "args": ["a b", "$(touch /tmp/ferry-pwned)", "'q'"]},
            "devices": [agent.device]
        }))
        .await;
    let op = hub.wait_op(op.id, LIMIT, |o| o.counts.finished()).await;
    assert_eq!(op.counts.failed, 1, "exit 3 is a failure");
    let r = &hub.op_results(op.id).await[0];
    assert_eq!(r.exit_code, Some(3));
    assert_eq!(
        r.output.as_deref(),
        Some("a b|$(touch /tmp/ferry-pwned)|'q'|")
    );
    assert_eq!(r.hostname, "pc-0002");
}

#[tokio::test]
async fn an_operation_for_an_offline_device_waits_and_is_delivered_when_it_connects() {
    let hub = TestHub::start("").await;
    let mut agent = hub.enroll_agent("pc-0003", |_| {}).await;
    let op = hub
        .start_op(
            json!({"op": {"kind": "run_script", "script": "echo late"}, "devices": [agent.device]}),
        )
        .await;
    assert_eq!(op.counts.offline, 1);
    agent.start();
    let op = hub.wait_op(op.id, LIMIT, |o| o.counts.finished()).await;
    assert_eq!(op.counts.succeeded, 1);
    assert_eq!(
        hub.op_results(op.id).await[0].output.as_deref(),
        Some("late\n")
    );
}

#[tokio::test]
async fn an_operation_expires_for_a_device_that_stays_offline() {
    let hub = TestHub::start("").await;
    let agent = hub.enroll_agent("pc-0004", |_| {}).await;
    let op = hub
        .start_op(json!({"op": {"kind": "quick_av_scan"}, "devices": [agent.device], "expires_in_secs": 1}))
        .await;
    let op = hub.wait_op(op.id, LIMIT, |o| o.counts.finished()).await;
    assert_eq!(op.counts.expired, 1);
    let r = &hub.op_results(op.id).await[0];
    assert_eq!(r.state, TargetState::Expired);
}

#[tokio::test]
async fn an_agent_killed_mid_script_ends_failed_and_the_script_is_not_run_again() {
    let hub = TestHub::start("").await;
    let mut agent = hub.enroll_agent("pc-0005", |_| {}).await;
    agent.start();
    hub.wait_online(agent.device, true).await;
    let counter = agent.path("runs");
    let started = agent.path("started");
    let op = hub
        .start_op(json!({
            "op": {"kind": "run_script",
                   "script": "echo x >> \"$1\"; echo $$ > \"$2.tmp\"; mv \"$2.tmp\" \"$2\"; sleep 60",
                   "args": [counter.to_str().unwrap(), started.to_str().unwrap()]},
            "devices": [agent.device]
        }))
        .await;
    wait_file(&started, LIMIT).await;
    let script_pid: u32 = std::fs::read_to_string(&started)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    hub.wait_op(op.id, LIMIT, |o| o.counts.running == 1).await;
    agent.kill9();
    agent.start();
    let op = hub.wait_op(op.id, LIMIT, |o| o.counts.finished()).await;
    assert_eq!(op.counts.failed, 1);
    let r = &hub.op_results(op.id).await[0];
    assert!(
        r.error
            .as_deref()
            .unwrap_or("")
            .contains("stopped while this operation was running"),
        "{r:?}"
    );
    assert_eq!(
        std::fs::read_to_string(&counter).unwrap().lines().count(),
        1
    );
    // What the killed agent left running was stopped by the new one.
    assert!(
        !alive(script_pid),
        "the orphaned script {script_pid} still runs"
    );
}

/// Running and not a zombie (this container's init may not reap orphans).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, r)| r.trim_start().starts_with('Z'))
        })
        .is_some_and(|zombie| !zombie)
}

#[tokio::test]
async fn an_interrupted_operation_whose_policy_is_rerun_runs_again_after_the_agent_restarts() {
    let hub = TestHub::start("").await;
    let mut agent = hub.enroll_agent("pc-0006", |_| {}).await;
    agent.start();
    hub.wait_online(agent.device, true).await;
    let counter = agent.path("runs");
    // First run: record and hang; second run: record and succeed.
    let op = hub
        .start_op(json!({
            "op": {"kind": "run_script",
                   "script": "echo x >> \"$1\"; [ $(wc -l < \"$1\") -ge 2 ] && exit 0; sleep 60",
                   "args": [counter.to_str().unwrap()]},
            "devices": [agent.device],
            "on_interrupt": "rerun"
        }))
        .await;
    wait_file(&counter, LIMIT).await;
    hub.wait_op(op.id, LIMIT, |o| o.counts.running == 1).await;
    agent.kill9();
    agent.start();
    let op = hub.wait_op(op.id, LIMIT, |o| o.counts.finished()).await;
    assert_eq!(op.counts.succeeded, 1);
    assert_eq!(
        std::fs::read_to_string(&counter).unwrap().lines().count(),
        2
    );
}

#[tokio::test]
async fn a_cancelled_operation_stops_the_running_script() {
    let hub = TestHub::start("").await;
    let mut agent = hub.enroll_agent("pc-0007", |_| {}).await;
    agent.start();
    hub.wait_online(agent.device, true).await;
    let started = agent.path("started");
    let done = agent.path("done");
    let op = hub
        .start_op(json!({
            "op": {"kind": "run_script", "script": "touch \"$1\"; sleep 5; touch \"$2\"",
                   "args": [started.to_str().unwrap(), done.to_str().unwrap()]},
            "devices": [agent.device]
        }))
        .await;
    wait_file(&started, LIMIT).await;
    let r = hub
        .admin(
            reqwest::Method::POST,
            &format!("/api/v1/ops/{}/cancel", op.id),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let op = hub.wait_op(op.id, LIMIT, |o| o.counts.finished()).await;
    assert_eq!(op.counts.cancelled, 1);
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert!(!done.exists(), "the script was not stopped");
}

#[tokio::test]
async fn a_device_token_used_by_a_second_process_closes_the_first_session() {
    let hub = TestHub::start("").await;
    let mut first = hub.enroll_agent("pc-0008", |_| {}).await;
    first.start();
    hub.wait_online(first.device, true).await;
    let mut second = first.clone_into(&hub.dir.path().join("agent-copy"));
    second.start();
    let started = std::time::Instant::now();
    while !first.log().contains("same device token") {
        assert!(
            started.elapsed() < LIMIT,
            "first agent never told: {}",
            first.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The newer session holds the device; the older process pauses instead of fighting.
    let op = hub
        .start_op(json!({"op": {"kind": "run_script", "script": "echo second"}, "devices": [first.device]}))
        .await;
    let op = hub.wait_op(op.id, LIMIT, |o| o.counts.finished()).await;
    assert_eq!(op.counts.succeeded, 1);
    assert!(second.log().contains(&op.id.to_string()));
    assert!(!first.log().contains(&op.id.to_string()));
}

#[tokio::test]
async fn the_long_poll_transport_delivers_operations_and_results() {
    let hub = TestHub::start("").await;
    let mut agent = hub
        .enroll_agent("pc-0009", |c| c.transport = TransportChoice::Poll)
        .await;
    agent.start();
    hub.wait_online(agent.device, true).await;
    let op = hub
        .start_op(json!({"op": {"kind": "run_script", "script": "echo polled"}, "devices": [agent.device]}))
        .await;
    let op = hub.wait_op(op.id, LIMIT, |o| o.counts.finished()).await;
    assert_eq!(op.counts.succeeded, 1);
    assert_eq!(
        hub.op_results(op.id).await[0].output.as_deref(),
        Some("polled\n")
    );
}

#[tokio::test]
async fn restart_runs_the_configured_restart_command() {
    let hub = TestHub::start("").await;
    let mut agent = hub.enroll_agent("pc-0010", |_| {}).await;
    agent.start();
    hub.wait_online(agent.device, true).await;
    let op = hub
        .start_op(json!({"op": {"kind": "restart"}, "devices": [agent.device]}))
        .await;
    let op = hub.wait_op(op.id, LIMIT, |o| o.counts.finished()).await;
    assert_eq!(op.counts.succeeded, 1);
    assert_eq!(
        std::fs::read_to_string(agent.path("restarted")).unwrap(),
        "restarted\n"
    );
}

#[tokio::test]
async fn a_disabled_device_is_disconnected_and_refused_until_enabled() {
    let hub = TestHub::start("").await;
    let mut agent = hub.enroll_agent("pc-0011", |_| {}).await;
    agent.start();
    hub.wait_online(agent.device, true).await;
    let patch = |enabled: bool| {
        hub.admin(
            reqwest::Method::PATCH,
            &format!("/api/v1/devices/{}", agent.device),
        )
        .json(&json!({"enabled": enabled}))
        .send()
    };
    assert_eq!(patch(false).await.unwrap().status(), 200);
    hub.wait_online(agent.device, false).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        !hub.device(agent.device).await.online,
        "a disabled device got back in"
    );
    assert_eq!(patch(true).await.unwrap().status(), 200);
    hub.wait_online(agent.device, true).await;
}

#[tokio::test]
async fn a_quick_av_scan_runs_clamav_and_reports_the_planted_file() {
    if which("clamscan").is_none() {
        // In CI the test script has installed ClamAV: missing, it is a failure, not a skip.
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "clamscan is not installed, and CI=true: scripts/test.sh should have installed Debian's clamav"
        );
        eprintln!("skipped: clamscan is not installed (scripts/test.sh installs Debian's clamav)");
        return;
    }
    let hub = TestHub::start("").await;
    let tree = hub.dir.path().join("scan-me");
    std::fs::create_dir_all(&tree).unwrap();
    let content = b"ferry test malware marker, harmless\n";
    std::fs::write(tree.join("evil.bin"), content).unwrap();
    std::fs::write(tree.join("clean.txt"), b"nothing to see").unwrap();
    let db = hub.dir.path().join("sigs");
    std::fs::create_dir_all(&db).unwrap();
    let md5 = md5_hex(content);
    std::fs::write(
        db.join("ferry-test.hdb"),
        format!("{md5}:{}:Ferry.Test.Marker\n", content.len()),
    )
    .unwrap();
    let mut agent = hub
        .enroll_agent("pc-0012", |c| {
            c.exec.av.clamav_database = Some(db.clone());
            c.exec.av.quick_paths = vec![tree.clone()];
        })
        .await;
    agent.start();
    hub.wait_online(agent.device, true).await;
    let op = hub
        .start_op(json!({"op": {"kind": "quick_av_scan"}, "devices": [agent.device]}))
        .await;
    let op = hub
        .wait_op(op.id, Duration::from_secs(120), |o| o.counts.finished())
        .await;
    let r = &hub.op_results(op.id).await[0];
    assert_eq!(op.counts.succeeded, 1, "{r:?}");
    assert_eq!(r.exit_code, Some(1));
    let output = r.output.as_deref().unwrap_or("");
    assert!(output.contains("evil.bin"), "{output}");
    assert!(output.contains("Ferry.Test.Marker"), "{output}");
    assert!(!output.contains("clean.txt"), "{output}");
}

fn which(program: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| std::path::Path::new(d).join(program))
        .find(|p| p.is_file())
}

fn md5_hex(data: &[u8]) -> String {
    use md5::Digest;
    md5::Md5::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[tokio::test]
async fn request_machine_policy_installs_a_deployed_package_once_and_then_finds_it_installed() {
    let hub = TestHub::start("").await;
    let mut agent = hub.enroll_agent("pc-0013", |_| {}).await;
    let marker = agent.path("installed-marker");
    // A package whose own install command is a script.
    let package_id = hub
        .script_package(
            "install.sh",
            &format!("echo ok > '{}'\n", marker.display()),
            "sh install.sh",
        )
        .await;
    let collection: Value = hub
        .admin(reqwest::Method::POST, "/api/v1/collections")
        .json(&json!({"name": "lab", "rule": {"hostname": "pc-*"}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(collection["member_count"], 1);
    let r = hub
        .admin(reqwest::Method::POST, "/api/v1/deployments")
        .json(
            &json!({"package_id": package_id, "collection_id": collection["id"],
                      "action": "install", "detection": {"file": marker.to_str().unwrap()}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    agent.start();
    hub.wait_online(agent.device, true).await;
    let policy =
        json!({"op": {"kind": "request_machine_policy"}, "collections": [collection["id"]]});
    let op = hub.start_op(policy.clone()).await;
    let op = hub.wait_op(op.id, LIMIT, |o| o.counts.finished()).await;
    let r = &hub.op_results(op.id).await[0];
    assert_eq!(op.counts.succeeded, 1, "{r:?}\n{}", agent.log());
    assert!(
        r.output
            .as_deref()
            .unwrap_or("")
            .contains("installed (exit 0)"),
        "{r:?}"
    );
    assert!(marker.exists());
    let again = hub.start_op(policy).await;
    let again = hub.wait_op(again.id, LIMIT, |o| o.counts.finished()).await;
    let r = &hub.op_results(again.id).await[0];
    assert!(
        r.output
            .as_deref()
            .unwrap_or("")
            .contains("already installed"),
        "{r:?}"
    );
}

/// A lab collection with one lab machine and one office machine enrolled; the office machine
/// is then renamed into the lab and starts its next session. Returns the hub, the renamed
/// device's agent (running) and the collection's id.
async fn renamed_into_the_lab(config: &str) -> (TestHub, common::agents::TestAgent, String) {
    let hub = TestHub::start(config).await;
    let collection: Value = hub
        .admin(reqwest::Method::POST, "/api/v1/collections")
        .json(&json!({"name": "lab machines", "rule": {"hostname": "LAB-*"}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let lab = hub.enroll_agent("lab-01", |_| {}).await;
    let mut office = hub.enroll_agent("office-01", |_| {}).await;
    let id = collection["id"].as_str().unwrap().to_owned();
    assert_eq!(members(&hub, &id).await, 1);
    assert_eq!(hub.device(lab.device).await.collections.len(), 1);
    let path = office.dir.join("agent.toml");
    let mut config = ferry_agent::config::AgentConfig::load(&path).unwrap();
    config.hostname = Some("lab-02".into());
    config.save(&path).unwrap();
    office.start();
    let device = office.device;
    // Wait until the hub has the new name (reported at the session's start).
    let started = std::time::Instant::now();
    while hub.device(device).await.inventory.hostname != "lab-02" {
        assert!(started.elapsed() < LIMIT, "the new name never arrived");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (hub, office, id)
}

async fn members(hub: &TestHub, collection: &str) -> u64 {
    let c: Value = hub
        .admin(
            reqwest::Method::GET,
            &format!("/api/v1/collections/{collection}"),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    c["member_count"].as_u64().unwrap()
}

#[tokio::test]
async fn a_device_renaming_itself_does_not_enter_a_rule_collection_until_approved() {
    let (hub, office, collection) = renamed_into_the_lab("").await;
    let device = office.device;
    let d = hub.device(device).await;
    assert_eq!(
        d.approved.as_ref().unwrap().hostname,
        "office-01",
        "rules still see the enrolled name"
    );
    assert!(d.collections.is_empty());
    assert_eq!(members(&hub, &collection).await, 1);
    let r = hub
        .admin(
            reqwest::Method::POST,
            &format!("/api/v1/devices/{device}/approve-inventory"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(members(&hub, &collection).await, 2);
    assert_eq!(hub.device(device).await.approved, None);
}

#[tokio::test]
async fn with_trusted_inventory_a_renamed_device_joins_at_once() {
    let (hub, office, collection) = renamed_into_the_lab("inventory_changes = \"trust\"").await;
    let device = office.device;
    let started = std::time::Instant::now();
    while members(&hub, &collection).await != 2 {
        assert!(started.elapsed() < LIMIT, "the renamed device never joined");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(hub.device(device).await.approved, None);
}

#[tokio::test]
async fn an_agent_answers_a_result_with_failure_when_its_script_exceeds_the_timeout() {
    let hub = TestHub::start("").await;
    let mut agent = hub.enroll_agent("pc-0014", |_| {}).await;
    agent.start();
    hub.wait_online(agent.device, true).await;
    let op = hub
        .start_op(json!({"op": {"kind": "run_script", "script": "sleep 30"},
                         "devices": [agent.device], "timeout_secs": 1}))
        .await;
    let op = hub.wait_op(op.id, LIMIT, |o| o.counts.finished()).await;
    assert_eq!(op.counts.failed, 1);
    let r = &hub.op_results(op.id).await[0];
    assert!(
        r.error.as_deref().unwrap_or("").contains("timed out"),
        "{r:?}"
    );
}

#[tokio::test]
async fn ferry_ops_start_with_watch_prints_live_counts_until_every_target_finished() {
    let hub = TestHub::start("").await;
    let mut agent = hub.enroll_agent("pc-0015", |_| {}).await;
    agent.start();
    hub.wait_online(agent.device, true).await;
    let data = hub.data_dir().display().to_string();
    let device = agent.device.to_string();
    let out = tokio::process::Command::new(common::FERRY)
        .args([
            "ops",
            "start",
            "run-script",
            "--device",
            &device,
            "--script",
            "echo cli",
        ])
        .args(["--watch", "--hub", &hub.url, "--data-dir", &data])
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("started on 1 device(s)"), "{stdout}");
    assert!(stdout.contains("succeeded 1"), "{stdout}");
    assert!(
        stdout.contains("pc-0015") && stdout.contains("cli"),
        "{stdout}"
    );
}

#[tokio::test]
async fn a_token_rotated_on_the_device_is_taken_up_by_the_running_agent_and_the_old_one_dies() {
    let hub = TestHub::start("").await;
    let mut agent = hub.enroll_agent("pc-0016", |_| {}).await;
    agent.start();
    hub.wait_online(agent.device, true).await;
    let old = std::fs::read_to_string(agent.path("device.token")).unwrap();
    let out = tokio::process::Command::new(common::FERRY)
        .args(["agent", "rotate-token", "--data-dir"])
        .arg(&agent.dir)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let new = std::fs::read_to_string(agent.path("device.token")).unwrap();
    assert_ne!(old.trim(), new.trim());
    let r = hub
        .http
        .get(format!("{}/api/v1/agent/policy", hub.url))
        .bearer_auth(old.trim())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "the old token must stop working");
    let op = hub
        .start_op(json!({"op": {"kind": "run_script", "script": "echo rotated"}, "devices": [agent.device]}))
        .await;
    let op = hub.wait_op(op.id, LIMIT, |o| o.counts.finished()).await;
    assert_eq!(op.counts.succeeded, 1, "{}", agent.log());
    assert!(agent.log().contains("took up the device's new token"));
}

#[tokio::test]
async fn an_install_operation_runs_the_packages_own_command_and_the_package_is_readable_only_while_it_runs()
 {
    let hub = TestHub::start("").await;
    let mut agent = hub.enroll_agent("pc-0017", |_| {}).await;
    let marker = agent.path("installed");
    let package_id = hub
        .script_package(
            "setup/install.sh",
            &format!("printf '%s' \"$1\" > '{}'\n", marker.display()),
            "sh setup/install.sh '--mode silent'",
        )
        .await;
    let token = std::fs::read_to_string(agent.path("device.token")).unwrap();
    let content = |token: String| {
        let url = format!("{}/api/v1/agent/packages/{package_id}/content", hub.url);
        let http = hub.http.clone();
        async move {
            http.get(url)
                .bearer_auth(token.trim())
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(
        content(token.clone()).await,
        404,
        "not this device's package yet"
    );
    agent.start();
    hub.wait_online(agent.device, true).await;
    let op = hub
        .start_op(
            json!({"op": {"kind": "install", "package_id": package_id}, "devices": [agent.device]}),
        )
        .await;
    let op = hub.wait_op(op.id, LIMIT, |o| o.counts.finished()).await;
    let r = &hub.op_results(op.id).await[0];
    assert_eq!(op.counts.succeeded, 1, "{r:?}\n{}", agent.log());
    assert_eq!(r.exit_code, Some(0));
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), "--mode silent");
    assert_eq!(content(token).await, 404, "the operation is over");
}

#[tokio::test]
async fn an_approval_of_values_the_device_no_longer_reports_is_refused() {
    let (hub, office, _) = renamed_into_the_lab("").await;
    let r = hub
        .admin(
            reqwest::Method::POST,
            &format!("/api/v1/devices/{}/approve-inventory", office.device),
        )
        .json(&json!({"expected": {"hostname": "lab-99", "os_name": "x", "os_version": "1", "domain": null, "arch": "x"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], "inventory_changed");
    assert!(hub.device(office.device).await.collections.is_empty());
}
