//! Push, end to end with real processes: hub, connector, and the emulated site running the
//! very script the connector generated.

mod common;

use std::path::Path;
use std::time::Duration;

use common::TestHub;
use ferry_proto::connector::ConnectorCredentials;
use ferry_proto::job::{Job, JobState};
use reqwest::Method;
use serde_json::{Value, json};

const NAME: &str = "TimKosse_FileZilla_3.46.3_English(United States)";

/// A hub with one connector whose site settings point at the demo site, and the sample
/// package uploaded. Returns the connector's credentials and the package id.
async fn setup(hub: &TestHub) -> (ConnectorCredentials, String) {
    let c = hub.register("site-dem").await;
    let r = hub
        .admin(Method::PATCH, &format!("/api/v1/connectors/{}", c.remote_id))
        .json(&json!({ "site": {
            "site_code": "DEM",
            "console_path": "C:\\Program Files (x86)\\Microsoft Configuration Manager\\AdminConsole\\bin",
            "share_path": "\\\\WIN-2HDJCBHRRVB\\Sources$\\incoming",
            "distribution_point_group": "Demo Distribution Group",
            "collection": "Demo devices",
            "folder": "Applications/Test 1"
        }}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let package = hub
        .upload_package(ferry_package::sample::filezilla_like().unwrap())
        .await;
    (c, package["id"].as_str().unwrap().to_owned())
}

async fn push(
    hub: &TestHub,
    c: &ConnectorCredentials,
    package: &str,
    spec: Value,
    dry_run: bool,
) -> (u16, Value) {
    let r = hub
        .admin(Method::POST, "/api/v1/push")
        .json(&json!({ "package_id": package, "connector_id": c.remote_id, "spec": spec, "dry_run": dry_run }))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn site_state(dir: &Path) -> Value {
    let out = std::process::Command::new(common::FERRY)
        .args(["sccm", "site", "show", "--site"])
        .arg(dir)
        .output()
        .unwrap();
    assert!(out.status.success());
    serde_json::from_slice(&out.stdout).unwrap()
}

fn connector_dirs(hub: &TestHub) -> (std::path::PathBuf, std::path::PathBuf) {
    let root = hub.dir.path();
    (root.join("site"), root.join("share"))
}

fn connector_extra(hub: &TestHub) -> String {
    let (site, share) = connector_dirs(hub);
    format!(
        "backend = \"emulator\"\nemulator_site = \"{}\"\nshare_dir = \"{}\"",
        site.display(),
        share.display()
    )
}

/// Runs an inventory of the connector's site and waits for it to succeed.
async fn refresh_inventory(hub: &TestHub, c: &ConnectorCredentials) -> Job {
    let r = hub
        .admin(
            Method::POST,
            &format!("/api/v1/connectors/{}/inventory", c.remote_id),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let job: Job = r.json().await.unwrap();
    let done = hub
        .wait_job(job.id, Duration::from_secs(60), |j| j.state.is_terminal())
        .await;
    assert_eq!(done.state, JobState::Succeeded, "{done:#?}");
    done
}

async fn run_push(hub: &TestHub, c: &ConnectorCredentials, package: &str, spec: Value) -> Job {
    let (status, job) = push(hub, c, package, spec, false).await;
    assert_eq!(status, 201, "{job}");
    let id = job["id"].as_str().unwrap().parse().unwrap();
    hub.wait_job(id, Duration::from_secs(60), |j| j.state.is_terminal())
        .await
}

#[tokio::test]
async fn a_pushed_package_lands_in_the_site_as_one_application() {
    let hub = TestHub::start("").await;
    let (c, package) = setup(&hub).await;
    let _connector = hub.spawn_connector(&c, &connector_extra(&hub));
    let job = run_push(&hub, &c, &package, json!({})).await;
    assert_eq!(job.state, JobState::Succeeded, "{job:#?}");
    let result = job.result_value().unwrap();
    assert!(result["ci_id"].as_u64().is_some(), "{result}");
    assert!(
        result["model_name"]
            .as_str()
            .unwrap()
            .contains("/Application_")
    );
    // Every step reached the hub as progress.
    let steps: Vec<&str> = job
        .events
        .iter()
        .filter_map(|e| e.step.as_deref())
        .collect();
    for step in [
        "download",
        "unpack",
        "application",
        "deployment_type",
        "content",
        "deployment",
        "folder",
        "done",
    ] {
        assert!(steps.contains(&step), "missing step {step}: {steps:?}");
    }
    let (site_dir, share) = connector_dirs(&hub);
    let site = site_state(&site_dir);
    let apps: Vec<&Value> = site["applications"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["name"] == NAME)
        .collect();
    assert_eq!(apps.len(), 1);
    assert_eq!(apps[0]["publisher"], "Tim Kosse");
    assert_eq!(apps[0]["software_version"], "3.46.3");
    assert!(
        share.join(NAME).join("Deploy-Application.ps1").is_file(),
        "unpacked to <share>\\<package name>"
    );
}

#[tokio::test]
async fn pushing_again_updates_the_same_application() {
    let hub = TestHub::start("").await;
    let (c, package) = setup(&hub).await;
    let _connector = hub.spawn_connector(&c, &connector_extra(&hub));
    let first = run_push(&hub, &c, &package, json!({})).await;
    let second = run_push(
        &hub,
        &c,
        &package,
        json!({ "application": { "description": "second push" } }),
    )
    .await;
    assert_eq!(second.state, JobState::Succeeded, "{second:#?}");
    assert_eq!(
        first.result_value().unwrap()["ci_id"],
        second.result_value().unwrap()["ci_id"]
    );
    let site = site_state(&connector_dirs(&hub).0);
    let apps: Vec<&Value> = site["applications"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["name"] == NAME)
        .collect();
    assert_eq!(apps.len(), 1, "no duplicate application");
    assert_eq!(apps[0]["description"], "second push");
}

#[tokio::test]
async fn a_push_to_an_unknown_collection_fails_with_the_sites_error() {
    let hub = TestHub::start("").await;
    let (c, package) = setup(&hub).await;
    let _connector = hub.spawn_connector(&c, &connector_extra(&hub));
    let job = run_push(
        &hub,
        &c,
        &package,
        json!({ "deployment": { "collection": "No such collection" } }),
    )
    .await;
    assert_eq!(job.state, JobState::Failed);
    let error = job.error.unwrap();
    assert!(
        error.contains("No such collection") && error.contains("New-CMApplicationDeployment"),
        "{error}"
    );
}

#[tokio::test]
async fn a_dry_run_returns_the_exact_script_and_queues_nothing() {
    let hub = TestHub::start("").await;
    let (c, package) = setup(&hub).await;
    let before = hub.jobs().await.len();
    let (status, preview) = push(&hub, &c, &package, json!({}), true).await;
    assert_eq!(status, 200, "{preview}");
    let script = preview["script"].as_str().unwrap();
    assert!(
        script.contains(&format!("New-CMApplication -Name '{NAME}'")),
        "{script}"
    );
    assert_eq!(
        preview["spec"]["deployment_type"]["install_command"],
        "Deploy-Application.exe -DeploymentType Install"
    );
    assert_eq!(hub.jobs().await.len(), before);
}

#[tokio::test]
async fn metadata_with_every_quote_kind_stays_data() {
    let hub = TestHub::start("").await;
    let (c, package) = setup(&hub).await;
    let _connector = hub.spawn_connector(&c, &connector_extra(&hub));
    let nasty = "Tim’s ‘x’ 'y' ‚z‛ $(Remove-Item C:\\) `; | # <#";
    let job = run_push(
        &hub,
        &c,
        &package,
        json!({ "application": { "description": nasty } }),
    )
    .await;
    assert_eq!(job.state, JobState::Succeeded, "{job:#?}");
    let site = site_state(&connector_dirs(&hub).0);
    let app = site["applications"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == NAME)
        .unwrap()
        .clone();
    assert_eq!(app["description"], nasty);
}

#[tokio::test]
async fn an_invalid_override_is_refused_naming_the_field() {
    let hub = TestHub::start("").await;
    let (c, package) = setup(&hub).await;
    let (status, body) = push(
        &hub,
        &c,
        &package,
        json!({ "deployment": { "purpose": "sometimes" } }),
        false,
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("deployment.purpose"),
        "{body}"
    );
    let (status, body) = push(
        &hub,
        &c,
        &package,
        json!({ "application": { "name": "a\u{0001}b" } }),
        false,
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("application.name"),
        "{body}"
    );
}

#[tokio::test]
async fn a_push_that_failed_halfway_converges_when_run_again() {
    let hub = TestHub::start("").await;
    let (c, package) = setup(&hub).await;
    let _connector = hub.spawn_connector(&c, &connector_extra(&hub));
    // The application and deployment type get created, then the deployment fails.
    let failed = run_push(
        &hub,
        &c,
        &package,
        json!({ "deployment": { "collection": "Missing" } }),
    )
    .await;
    assert_eq!(failed.state, JobState::Failed);
    let after_failure = site_state(&connector_dirs(&hub).0);
    assert_eq!(
        after_failure["applications"].as_array().unwrap().len(),
        1,
        "half an application exists"
    );
    let fixed = run_push(&hub, &c, &package, json!({})).await;
    assert_eq!(fixed.state, JobState::Succeeded, "{fixed:#?}");
    let site = site_state(&connector_dirs(&hub).0);
    let apps = site["applications"].as_array().unwrap();
    assert_eq!(apps.len(), 1, "the re-run completed the same application");
    assert_eq!(apps[0]["deployment_types"].as_array().unwrap().len(), 1);
    let deployments: Vec<&Value> = site["deployments"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["collection_name"] == "Demo devices")
        .collect();
    assert_eq!(deployments.len(), 1, "{site:#}");
}

#[tokio::test]
async fn a_partial_download_is_resumed_and_verified() {
    let hub = TestHub::start("").await;
    let (c, package) = setup(&hub).await;
    let zip = ferry_package::sample::filezilla_like().unwrap();
    // Leave half the package where an interrupted run would have left it.
    let sha: String = {
        use sha2::Digest;
        sha2::Sha256::digest(&zip)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    };
    let extra = connector_extra(&hub);
    let connector = hub.spawn_connector(&c, &extra);
    let work = connector
        .log
        .parent()
        .unwrap()
        .join("work")
        .join("downloads");
    std::fs::create_dir_all(&work).unwrap();
    std::fs::write(work.join(format!("{sha}.zip.part")), &zip[..zip.len() / 2]).unwrap();
    let job = run_push(&hub, &c, &package, json!({})).await;
    assert_eq!(job.state, JobState::Succeeded, "{job:#?}");
    let resumed = job.events.iter().any(|e| {
        e.message
            .as_deref()
            .is_some_and(|m| m.starts_with("resuming at byte"))
    });
    assert!(resumed, "{:#?}", job.events);
}

#[tokio::test]
async fn an_inventory_shows_the_pushed_application_with_its_folder_and_metadata() {
    let hub = TestHub::start("").await;
    let (c, package) = setup(&hub).await;
    let _connector = hub.spawn_connector(&c, &connector_extra(&hub));
    let apps_path = format!("/api/v1/connectors/{}/applications", c.remote_id);
    assert_eq!(
        hub.admin(Method::GET, &apps_path)
            .send()
            .await
            .unwrap()
            .status(),
        404,
        "no inventory yet"
    );
    let pushed = run_push(&hub, &c, &package, json!({})).await;
    assert_eq!(pushed.state, JobState::Succeeded);
    refresh_inventory(&hub, &c).await;
    let inventory: Value = hub
        .admin(Method::GET, &apps_path)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(inventory["site_code"], "DEM");
    let app = inventory["applications"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == NAME)
        .unwrap();
    assert_eq!(app["path"], "/Test 1");
    assert_eq!(app["ci_id"], pushed.result_value().unwrap()["ci_id"]);
    assert!(app["container_id"].as_u64().is_some());
    assert!(
        app["resource_id"].as_str().unwrap().starts_with("Res_"),
        "{app}"
    );
    assert_eq!(app["is_duplicated"], false);
    let dt = &app["metadata"]["deployment_types"][0];
    assert_eq!(app["metadata"]["publisher"], "Tim Kosse");
    assert_eq!(
        dt["install_command"],
        "Deploy-Application.exe -DeploymentType Install"
    );
    assert_eq!(dt["detection"]["kind"], "msi_product_code");
}

#[tokio::test]
async fn an_inventory_needs_the_site_settings() {
    let hub = TestHub::start("").await;
    let c = hub.register("bare").await;
    let r = hub
        .admin(
            Method::POST,
            &format!("/api/v1/connectors/{}/inventory", c.remote_id),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["message"].as_str().unwrap().contains("site.site_code"),
        "{body}"
    );
}

#[tokio::test]
async fn an_imported_application_becomes_a_package_linked_to_its_source() {
    let hub = TestHub::start("").await;
    let (c, package) = setup(&hub).await;
    let _connector = hub.spawn_connector(&c, &connector_extra(&hub));
    assert_eq!(
        run_push(&hub, &c, &package, json!({})).await.state,
        JobState::Succeeded
    );
    refresh_inventory(&hub, &c).await;

    let r = hub
        .admin(
            Method::POST,
            &format!("/api/v1/connectors/{}/import", c.remote_id),
        )
        .json(&json!({ "applications": [NAME] }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let job: Job = r.json().await.unwrap();
    let done = hub
        .wait_job(job.id, Duration::from_secs(60), |j| j.state.is_terminal())
        .await;
    assert_eq!(done.state, JobState::Succeeded, "{done:#?}");
    let imported = &done.result_value().unwrap()["imports"][0];
    let package_id = imported["package_id"].as_str().unwrap();
    let package: Value = hub
        .admin(Method::GET, &format!("/api/v1/packages/{package_id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let source = &package["metadata"]["imported_from"];
    assert_eq!(source["name"], NAME);
    assert_eq!(source["ci_id"], imported["ci_id"]);
    assert_eq!(source["sccm"]["publisher"], "Tim Kosse");
    // The sources came back whole: the hub recognised the same wrapper and MSI in them.
    assert_eq!(package["metadata"]["package_name"], NAME);
    assert_eq!(package["metadata"]["wrapper"], "psadt_v3");
}

#[tokio::test]
async fn importing_an_unknown_application_is_refused() {
    let hub = TestHub::start("").await;
    let (c, package) = setup(&hub).await;
    let _connector = hub.spawn_connector(&c, &connector_extra(&hub));
    run_push(&hub, &c, &package, json!({})).await;
    refresh_inventory(&hub, &c).await;
    let r = hub
        .admin(
            Method::POST,
            &format!("/api/v1/connectors/{}/import", c.remote_id),
        )
        .json(&json!({ "applications": ["Nothing like this"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], "unknown_application");
}

/// A package big enough that its download is still running when we look: a stored zip of
/// pseudo-random bytes.
fn big_package(bytes: usize) -> Vec<u8> {
    let mut data = vec![0u8; bytes];
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for chunk in data.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let b = x.to_le_bytes();
        chunk.copy_from_slice(&b[..chunk.len()]);
    }
    ferry_package::sample::zip_of(&[
        ("Deploy-Application.ps1", b"# sample".as_slice()),
        ("Files/payload.bin", &data),
    ])
    .unwrap()
}

#[tokio::test]
async fn a_connector_killed_during_the_download_resumes_it_on_the_next_run() {
    let hub = TestHub::start("lease_secs = 2").await;
    let (c, _) = setup(&hub).await;
    let package = hub.upload_package(big_package(192 * 1024 * 1024)).await;
    let package = package["id"].as_str().unwrap().to_owned();
    // No MSI inside, so the hub proposes nothing: the spec says it all.
    let spec = json!({
        "application": { "name": "Big_Package_1.0", "version": "1.0", "publisher": "Ferry", "product_name": "Big", "language": "English(United States)" },
        "deployment_type": {
            "installer": "script",
            "install_command": "Deploy-Application.exe -DeploymentType Install",
            "detection": { "script": { "language": "powershell", "text": "$true" } }
        }
    });
    let extra = connector_extra(&hub);
    let mut first = hub.spawn_connector(&c, &extra);
    let (status, job) = push(&hub, &c, &package, spec, false).await;
    assert_eq!(status, 201, "{job}");
    let job_id = job["id"].as_str().unwrap().parse().unwrap();
    // Kill it as soon as part of the package has arrived.
    hub.wait_job(job_id, Duration::from_secs(60), |j| {
        j.events.iter().any(|e| {
            e.step.as_deref() == Some("download")
                && e.message.as_deref().is_some_and(|m| m.contains(" of "))
        })
    })
    .await;
    first.kill9();
    // The same work dir, a new process: the lease lapses, the job runs again, the download resumes.
    let connector_dir = first.log.parent().unwrap().to_owned();
    let _second = common::TestConnector::spawn(
        &connector_dir,
        &std::fs::read_to_string(connector_dir.join("connector.toml")).unwrap(),
    );
    let done = hub
        .wait_job(job_id, Duration::from_secs(120), |j| j.state.is_terminal())
        .await;
    assert_eq!(done.state, JobState::Succeeded, "{done:#?}");
    assert_eq!(done.attempts, 2);
    let resumed = done.events.iter().any(|e| {
        e.message
            .as_deref()
            .is_some_and(|m| m.starts_with("resuming at byte"))
    });
    let reused = done
        .events
        .iter()
        .any(|e| e.message.as_deref() == Some("already downloaded and verified"));
    assert!(
        resumed || reused,
        "the second run must not start the download over: {:#?}",
        done.events
    );
    let site = site_state(&connector_dirs(&hub).0);
    let apps: Vec<&Value> = site["applications"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["name"] == "Big_Package_1.0")
        .collect();
    assert_eq!(apps.len(), 1);
}

/// Stands in for `powershell.exe` where there is none: a shell script that takes the same
/// arguments (`-NoProfile -NonInteractive -ExecutionPolicy Bypass -File SCRIPT`), checks the
/// UTF-8 BOM Windows PowerShell needs, and runs the script through `ferry sccm emulate`, which
/// prints exactly what the site would and fails the way PowerShell does (message on stderr,
/// non-zero exit). It exercises the real backend's process handling end to end.
fn fake_powershell(dir: &Path, site: &Path) -> std::path::PathBuf {
    let path = dir.join("fake-powershell");
    let script = format!(
        "#!/bin/sh\n\
         [ \"$1 $2 $3 $4 $5\" = \"-NoProfile -NonInteractive -ExecutionPolicy Bypass -File\" ] || {{ echo \"bad arguments: $*\" >&2; exit 2; }}\n\
         [ \"$(head -c 3 \"$6\" | od -An -tx1 | tr -d ' ')\" = \"efbbbf\" ] || {{ echo 'script has no UTF-8 BOM' >&2; exit 2; }}\n\
         tail -c +4 \"$6\" > \"$6.nobom\"\n\
         exec '{}' sccm emulate --site '{}' --script \"$6.nobom\"\n",
        common::FERRY,
        site.display()
    );
    std::fs::write(&path, script).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

#[tokio::test]
async fn the_powershell_backend_streams_steps_and_reports_script_errors() {
    let hub = TestHub::start("").await;
    let (c, package) = setup(&hub).await;
    let (site, share) = connector_dirs(&hub);
    let ps = fake_powershell(hub.dir.path(), &site);
    let extra = format!(
        "backend = \"powershell\"\npowershell = \"{}\"\nshare_dir = \"{}\"",
        ps.display(),
        share.display()
    );
    let _connector = hub.spawn_connector(&c, &extra);
    let ok = run_push(&hub, &c, &package, json!({})).await;
    assert_eq!(ok.state, JobState::Succeeded, "{ok:#?}");
    assert_eq!(ok.result_value().unwrap()["backend"], "powershell");
    assert!(ok.result_value().unwrap()["ci_id"].as_u64().is_some());
    let failed = run_push(
        &hub,
        &c,
        &package,
        json!({ "deployment": { "collection": "Nowhere" } }),
    )
    .await;
    assert_eq!(failed.state, JobState::Failed);
    assert!(
        failed.error.as_deref().unwrap_or("").contains("Nowhere"),
        "{failed:#?}"
    );
}

#[tokio::test]
async fn an_application_name_that_would_leave_the_share_is_refused() {
    let hub = TestHub::start("").await;
    let (c, package) = setup(&hub).await;
    for name in ["..", "..\\..\\Windows", "a/b"] {
        let (status, body) = push(
            &hub,
            &c,
            &package,
            json!({ "application": { "name": name } }),
            false,
        )
        .await;
        assert_eq!(status, 400, "{name}: {body}");
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .contains("application.name"),
            "{body}"
        );
    }
}
