//! Package uploads: resumable, verified, deduplicated, inspected; downloads with `Range`.

mod common;

use common::TestHub;
use reqwest::Method;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

async fn open_upload(hub: &TestHub, bytes: &[u8], sha: Option<String>) -> Value {
    let r = hub
        .admin(Method::POST, "/api/v1/uploads")
        .json(&json!({ "filename": "FileZilla.zip", "size": bytes.len(), "sha256": sha }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    r.json().await.unwrap()
}

async fn put(hub: &TestHub, id: &str, offset: usize, bytes: &[u8]) -> (u16, Value) {
    let r = hub
        .admin(
            Method::PUT,
            &format!("/api/v1/uploads/{id}?offset={offset}"),
        )
        .header("content-type", "application/octet-stream")
        .body(bytes.to_vec())
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn complete(hub: &TestHub, id: &str) -> (u16, Value) {
    let r = hub
        .admin(Method::POST, &format!("/api/v1/uploads/{id}/complete"))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn part_files(hub: &TestHub) -> usize {
    std::fs::read_dir(hub.data_dir().join("uploads"))
        .map(|d| d.count())
        .unwrap_or(0)
}

#[tokio::test]
async fn an_upload_in_several_ranges_becomes_a_verified_package() {
    let hub = TestHub::start("").await;
    let zip = ferry_package::sample::filezilla_like().unwrap();
    let upload = open_upload(&hub, &zip, Some(sha256_hex(&zip))).await;
    let id = upload["id"].as_str().unwrap();
    let mid = zip.len() / 3;
    assert_eq!(put(&hub, id, 0, &zip[..mid]).await.1["received"], mid);
    assert_eq!(
        put(&hub, id, mid, &zip[mid..]).await.1["received"],
        zip.len()
    );
    let (status, package) = complete(&hub, id).await;
    assert_eq!(status, 201, "{package}");
    assert_eq!(package["sha256"], sha256_hex(&zip));
    assert_eq!(package["size"], zip.len());
    assert_eq!(
        part_files(&hub),
        0,
        "the part file moved into the blob store"
    );
    let (again, same) = complete(&hub, id).await;
    assert_eq!(
        (again, &same["id"]),
        (200, &package["id"]),
        "completing twice answers the same package"
    );
}

#[tokio::test]
async fn a_range_at_the_wrong_offset_is_refused_with_the_offset_to_resume_at() {
    let hub = TestHub::start("").await;
    let zip = ferry_package::sample::filezilla_like().unwrap();
    let upload = open_upload(&hub, &zip, None).await;
    let id = upload["id"].as_str().unwrap();
    put(&hub, id, 0, &zip[..100]).await;
    let (status, body) = put(&hub, id, 50, &zip[50..]).await;
    assert_eq!(status, 409);
    assert_eq!(body["code"], "offset_mismatch");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("resume at offset 100"),
        "{body}"
    );
}

#[tokio::test]
async fn an_upload_continues_after_the_hub_is_killed() {
    let mut hub = TestHub::start("").await;
    let zip = ferry_package::sample::filezilla_like().unwrap();
    let upload = open_upload(&hub, &zip, Some(sha256_hex(&zip))).await;
    let id = upload["id"].as_str().unwrap().to_owned();
    let mid = zip.len() / 2;
    put(&hub, &id, 0, &zip[..mid]).await;
    hub.restart().await; // SIGKILL; the running hash is gone and must be rebuilt from disk
    let status: Value = hub
        .admin(Method::GET, &format!("/api/v1/uploads/{id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["received"], mid);
    put(&hub, &id, mid, &zip[mid..]).await;
    let (code, package) = complete(&hub, &id).await;
    assert_eq!(code, 201, "{package}");
    assert_eq!(package["sha256"], sha256_hex(&zip));
}

#[tokio::test]
async fn a_hash_mismatch_keeps_nothing() {
    let hub = TestHub::start("").await;
    let zip = ferry_package::sample::filezilla_like().unwrap();
    let upload = open_upload(&hub, &zip, Some("00".repeat(32))).await;
    let id = upload["id"].as_str().unwrap();
    put(&hub, id, 0, &zip).await;
    let (status, body) = complete(&hub, id).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["code"], "sha256_mismatch");
    assert_eq!(part_files(&hub), 0);
    let packages: Vec<Value> = hub
        .admin(Method::GET, "/api/v1/packages")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(packages.is_empty());
}

#[tokio::test]
async fn more_bytes_than_declared_are_refused() {
    let hub = TestHub::start("").await;
    let zip = ferry_package::sample::filezilla_like().unwrap();
    let upload = open_upload(&hub, &zip[..10], None).await;
    let (status, body) = put(&hub, upload["id"].as_str().unwrap(), 0, &zip[..20]).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["code"], "too_many_bytes");
}

#[tokio::test]
async fn the_same_content_uploaded_twice_is_one_package() {
    let hub = TestHub::start("").await;
    let zip = ferry_package::sample::filezilla_like().unwrap();
    let mut ids = Vec::new();
    for _ in 0..2 {
        let upload = open_upload(&hub, &zip, None).await;
        let id = upload["id"].as_str().unwrap();
        put(&hub, id, 0, &zip).await;
        ids.push(complete(&hub, id).await.1["id"].clone());
    }
    assert_eq!(ids[0], ids[1]);
}

#[tokio::test]
async fn a_package_downloads_whole_or_by_range() {
    let hub = TestHub::start("").await;
    let zip = ferry_package::sample::filezilla_like().unwrap();
    let upload = open_upload(&hub, &zip, None).await;
    let id = upload["id"].as_str().unwrap();
    put(&hub, id, 0, &zip).await;
    let package = complete(&hub, id).await.1;
    let url = format!(
        "/api/v1/packages/{}/content",
        package["id"].as_str().unwrap()
    );
    let whole = hub.admin(Method::GET, &url).send().await.unwrap();
    assert_eq!(whole.status(), 200);
    assert_eq!(whole.bytes().await.unwrap().as_ref(), &zip[..]);
    let part = hub
        .admin(Method::GET, &url)
        .header("range", "bytes=100-")
        .send()
        .await
        .unwrap();
    assert_eq!(part.status(), 206);
    assert_eq!(
        part.headers()["content-range"],
        format!("bytes 100-{}/{}", zip.len() - 1, zip.len())
    );
    assert_eq!(part.bytes().await.unwrap().as_ref(), &zip[100..]);
    let beyond = hub
        .admin(Method::GET, &url)
        .header("range", format!("bytes={}-", zip.len()))
        .send()
        .await
        .unwrap();
    assert_eq!(beyond.status(), 416);
    // A connector reads only packages it was asked to push (or imported itself), and cannot
    // list them.
    let c = hub.register("c").await;
    assert_eq!(
        hub.as_connector(&c, Method::GET, &url)
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    assert_eq!(
        hub.as_connector(&c, Method::GET, "/api/v1/packages")
            .send()
            .await
            .unwrap()
            .status(),
        403
    );
}

#[tokio::test]
async fn the_sample_package_is_recognised_as_psadt_with_its_msi_metadata() {
    let hub = TestHub::start("").await;
    let zip = ferry_package::sample::filezilla_like().unwrap();
    let upload = open_upload(&hub, &zip, None).await;
    let id = upload["id"].as_str().unwrap();
    put(&hub, id, 0, &zip).await;
    let package = complete(&hub, id).await.1;
    let m = &package["metadata"];
    assert_eq!(
        m["package_name"], "TimKosse_FileZilla_3.46.3_English(United States)",
        "{m}"
    );
    assert_eq!(
        m["install_command"],
        "Deploy-Application.exe -DeploymentType Install"
    );
    assert_eq!(m["msi_properties"]["manufacturer"], "Tim Kosse");
}

#[tokio::test]
async fn a_zip_slip_archive_is_refused_and_nothing_is_kept() {
    let hub = TestHub::start("").await;
    let evil = ferry_package::sample::zip_of(&[("../../evil.txt", b"x".as_slice())]).unwrap();
    let upload = open_upload(&hub, &evil, None).await;
    let id = upload["id"].as_str().unwrap();
    put(&hub, id, 0, &evil).await;
    let (status, body) = complete(&hub, id).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["code"], "invalid_package");
    assert_eq!(part_files(&hub), 0);
    let blobs = walk_files(&hub.data_dir().join("blobs"));
    assert_eq!(blobs, 0, "no blob kept");
}

#[tokio::test]
async fn a_truncated_archive_is_refused() {
    let hub = TestHub::start("").await;
    let zip = ferry_package::sample::filezilla_like().unwrap();
    let cut = &zip[..zip.len() / 2];
    let upload = open_upload(&hub, cut, None).await;
    let id = upload["id"].as_str().unwrap();
    put(&hub, id, 0, cut).await;
    let (status, body) = complete(&hub, id).await;
    assert_eq!(status, 422, "{body}");
}

fn walk_files(dir: &std::path::Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| {
            if e.path().is_dir() {
                walk_files(&e.path())
            } else {
                1
            }
        })
        .sum()
}

#[tokio::test]
async fn a_hash_given_at_completion_is_checked_too() {
    let hub = TestHub::start("").await;
    let zip = ferry_package::sample::filezilla_like().unwrap();
    let upload = open_upload(&hub, &zip, None).await;
    let id = upload["id"].as_str().unwrap();
    put(&hub, id, 0, &zip).await;
    let r = hub
        .admin(
            Method::POST,
            &format!("/api/v1/uploads/{id}/complete?sha256={}", "11".repeat(32)),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    assert_eq!(part_files(&hub), 0);
}

#[tokio::test]
async fn a_zip_bomb_is_refused() {
    let hub = TestHub::start("").await;
    let zeros = vec![0u8; 64 * 1024 * 1024];
    let bomb = ferry_package::sample::zip_of(&[("zeros.bin", zeros.as_slice())]).unwrap();
    assert!(bomb.len() < 1024 * 1024, "the bomb compresses well");
    let upload = open_upload(&hub, &bomb, None).await;
    let id = upload["id"].as_str().unwrap();
    put(&hub, id, 0, &bomb).await;
    let (status, body) = complete(&hub, id).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["code"], "invalid_package");
    assert_eq!(part_files(&hub), 0);
}

#[tokio::test]
async fn a_garbage_msi_means_metadata_unknown_not_a_failed_upload() {
    let hub = TestHub::start("").await;
    let zip =
        ferry_package::sample::zip_of(&[("setup.msi", b"this is not an MSI at all".as_slice())])
            .unwrap();
    let upload = open_upload(&hub, &zip, None).await;
    let id = upload["id"].as_str().unwrap();
    put(&hub, id, 0, &zip).await;
    let (status, package) = complete(&hub, id).await;
    assert_eq!(status, 201, "{package}");
    assert_eq!(package["metadata"]["msi_properties"], Value::Null);
    assert_eq!(package["metadata"]["package_name"], Value::Null);
    assert_eq!(package["metadata"]["msi_file"], "setup.msi");
}

#[tokio::test]
async fn proposed_metadata_can_be_overridden_field_by_field() {
    let hub = TestHub::start("").await;
    let zip = ferry_package::sample::filezilla_like().unwrap();
    let upload = open_upload(&hub, &zip, None).await;
    let id = upload["id"].as_str().unwrap();
    put(&hub, id, 0, &zip).await;
    let package = complete(&hub, id).await.1;
    let url = format!("/api/v1/packages/{}", package["id"].as_str().unwrap());
    let r = hub
        .admin(Method::PATCH, &url)
        .json(&json!({ "metadata": { "package_name": "Contoso_FileZilla_3.46.3", "uninstall_command": null } }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let edited: Value = r.json().await.unwrap();
    assert_eq!(
        edited["metadata"]["package_name"],
        "Contoso_FileZilla_3.46.3"
    );
    assert_eq!(edited["metadata"]["uninstall_command"], Value::Null);
    assert_eq!(
        edited["metadata"]["vendor"], "Tim Kosse",
        "other fields are kept"
    );
    let r = hub
        .admin(Method::PATCH, &url)
        .json(&json!({ "metadata": { "sha256": "x" } }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = hub
        .admin(Method::PATCH, &url)
        .json(&json!({ "metadata": { "installer": "exe" } }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn abandoned_uploads_are_removed_when_a_new_one_opens() {
    let hub = TestHub::start("upload_ttl_hours = 0").await;
    let zip = ferry_package::sample::filezilla_like().unwrap();
    let first = open_upload(&hub, &zip, None).await;
    let first_id = first["id"].as_str().unwrap();
    put(&hub, first_id, 0, &zip[..100]).await;
    assert_eq!(part_files(&hub), 1);
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    open_upload(&hub, &zip, None).await;
    let r = hub
        .admin(Method::GET, &format!("/api/v1/uploads/{first_id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(part_files(&hub), 0);
}

/// A PSADT v3 package whose script names its application and whose `Files/` holds `files`.
fn v3_package(script: &str, files: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut entries: Vec<(String, Vec<u8>)> = vec![
        ("Deploy-Application.exe".into(), b"launcher".to_vec()),
        ("Deploy-Application.ps1".into(), script.as_bytes().to_vec()),
        (
            "AppDeployToolkit/AppDeployToolkitMain.ps1".into(),
            b"# toolkit".to_vec(),
        ),
    ];
    entries.extend(files.iter().map(|(n, d)| (format!("Files/{n}"), d.clone())));
    let refs: Vec<(&str, &[u8])> = entries
        .iter()
        .map(|(n, d)| (n.as_str(), d.as_slice()))
        .collect();
    ferry_package::sample::zip_of(&refs).unwrap()
}

fn msi(name: &str, code: &str) -> Vec<u8> {
    ferry_package::sample::msi(&ferry_package::MsiProperties {
        product_name: Some(name.into()),
        product_version: Some("2.0.1".into()),
        manufacturer: Some("Contoso".into()),
        product_code: Some(code.into()),
        upgrade_code: None,
        product_language: Some("1033".into()),
    })
    .unwrap()
}

async fn patch_package(hub: &TestHub, id: &str, metadata: Value) -> (u16, Value) {
    let r = hub
        .admin(Method::PATCH, &format!("/api/v1/packages/{id}"))
        .json(&json!({ "metadata": metadata }))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

#[tokio::test]
async fn an_exe_package_shows_where_each_proposed_value_came_from() {
    let hub = TestHub::start("").await;
    let script = "[String]$appVendor = 'Igor Pavlov'\n[String]$appName = '7-Zip'\n\
                  [String]$appVersion = '23.01'\n[String]$appLang = 'EN'\n\
                  [String]$appArch = 'x64'\n";
    let zip = v3_package(script, &[("7z2301-x64.exe", b"MZ installer".to_vec())]);
    let package = hub.upload_package(zip).await;
    let m = &package["metadata"];
    assert_eq!(
        m["package_name"],
        "IgorPavlov_7-Zip_23.01_English(United States)"
    );
    assert_eq!(m["sources"]["vendor"], "psadt_script");
    assert_eq!(m["sources"]["package_name"], "derived");
    assert_eq!(m["sources"]["install_command"], "layout");
    assert!(
        m["detection"]["script"]["text"]
            .as_str()
            .unwrap()
            .contains("IsInstalled")
    );
    let id = package["id"].as_str().unwrap();
    let out = std::process::Command::new(common::FERRY)
        .args([
            "package", "show", id, "--hub", &hub.url, "--token", &hub.token,
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let vendor_line = text.lines().find(|l| l.starts_with("vendor")).unwrap();
    assert!(
        vendor_line.contains("Igor Pavlov") && vendor_line.ends_with("psadt_script"),
        "{text}"
    );
}

#[tokio::test]
async fn choosing_one_of_several_msis_reads_the_package_again_and_keeps_hand_set_fields() {
    let hub = TestHub::start("").await;
    let zip = v3_package(
        "# installs through a helper function",
        &[
            (
                "alpha.msi",
                msi("Alpha Tool", "{11111111-2222-4333-8444-555555555555}"),
            ),
            (
                "beta.msi",
                msi("Beta Tool", "{22222222-3333-4444-8555-666666666666}"),
            ),
        ],
    );
    let package = hub.upload_package(zip).await;
    let id = package["id"].as_str().unwrap().to_owned();
    assert_eq!(package["metadata"]["msi_file"], Value::Null);
    assert_eq!(
        package["metadata"]["msi_files"],
        json!(["Files/alpha.msi", "Files/beta.msi"])
    );
    assert!(
        package["metadata"]["notes"][0]
            .as_str()
            .unwrap()
            .contains("choose")
    );

    let (status, edited) = patch_package(&hub, &id, json!({ "vendor": "Contoso IT" })).await;
    assert_eq!(status, 200, "{edited}");
    assert_eq!(edited["metadata"]["sources"]["vendor"], "user");

    let (status, body) = patch_package(&hub, &id, json!({ "msi_file": "Files/gamma.msi" })).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["message"].as_str().unwrap().contains("msi_files"));

    let (status, chosen) = patch_package(&hub, &id, json!({ "msi_file": "Files/beta.msi" })).await;
    assert_eq!(status, 200, "{chosen}");
    let m = &chosen["metadata"];
    assert_eq!(m["msi_file"], "Files/beta.msi");
    assert_eq!(m["product"], "Beta Tool");
    assert_eq!(m["sources"]["product"], "msi");
    assert_eq!(
        m["vendor"], "Contoso IT",
        "a hand-set field survives the new reading"
    );
    assert_eq!(m["sources"]["vendor"], "user");
    assert_eq!(
        m["package_name"],
        "ContosoIT_BetaTool_2.0.1_English(United States)"
    );
    assert_eq!(
        m["detection"]["msi_product_code"],
        "{22222222-3333-4444-8555-666666666666}"
    );
    let audit: Value = hub
        .admin(Method::GET, "/api/v1/audit?action=package.update")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(audit.to_string().contains("msi_file"), "{audit}");
}

#[tokio::test]
async fn a_corrected_value_rebuilds_the_package_name_and_the_main_binary_a_file_rule() {
    let hub = TestHub::start("").await;
    let package = hub
        .upload_package(ferry_package::sample::filezilla_like().unwrap())
        .await;
    let id = package["id"].as_str().unwrap().to_owned();
    let (_, edited) = patch_package(&hub, &id, json!({ "vendor": "Contoso" })).await;
    assert_eq!(
        edited["metadata"]["package_name"],
        "Contoso_FileZilla_3.46.3_English(United States)"
    );
    // An EXE package detects by the wrapper's registry marker until the main binary is known.
    let script = "[String]$appVendor = 'Igor Pavlov'\n[String]$appName = '7-Zip'\n\
                  [String]$appVersion = '23.01'\n[String]$appLang = 'EN'\n";
    let exe = hub.upload_package(v3_package(script, &[])).await;
    let id = exe["id"].as_str().unwrap().to_owned();
    let marker = exe["metadata"]["detection"]["script"]["text"]
        .as_str()
        .unwrap();
    assert!(marker.contains("IsInstalled"));
    let (status, edited) = patch_package(
        &hub,
        &id,
        json!({ "main_binary": "%ProgramFiles%\\7-Zip\\7zFM.exe" }),
    )
    .await;
    assert_eq!(status, 200, "{edited}");
    let m = &edited["metadata"];
    assert_eq!(m["sources"]["main_binary"], "user");
    assert_eq!(m["sources"]["detection"], "derived");
    let rule = m["detection"]["script"]["text"].as_str().unwrap();
    assert!(
        rule.contains("ExpandEnvironmentVariables('%ProgramFiles%\\7-Zip\\7zFM.exe')"),
        "{rule}"
    );
    assert!(rule.contains("[version]'23.01'"), "{rule}");
}

#[tokio::test]
async fn a_reset_field_goes_back_to_the_proposal() {
    let hub = TestHub::start("").await;
    let package = hub
        .upload_package(ferry_package::sample::filezilla_like().unwrap())
        .await;
    let id = package["id"].as_str().unwrap().to_owned();
    let (_, edited) =
        patch_package(&hub, &id, json!({ "vendor": "Contoso", "detection": null })).await;
    assert_eq!(edited["metadata"]["sources"]["vendor"], "user");
    assert_eq!(edited["metadata"]["detection"], Value::Null);
    let (status, body) =
        patch_package(&hub, &id, json!({ "vendor": "X", "reset": ["vendor"] })).await;
    assert_eq!(status, 400, "set and reset at once: {body}");
    let (status, back) =
        patch_package(&hub, &id, json!({ "reset": ["vendor", "detection"] })).await;
    assert_eq!(status, 200, "{back}");
    let m = &back["metadata"];
    assert_eq!(m["vendor"], "Tim Kosse");
    assert_eq!(m["sources"]["vendor"], "msi");
    assert!(m["detection"]["msi_product_code"].is_string());
    assert_eq!(
        m["package_name"],
        "TimKosse_FileZilla_3.46.3_English(United States)"
    );
}
