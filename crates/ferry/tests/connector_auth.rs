//! Connector identity: the remote ID alone is never enough, secrets rotate, disabled
//! connectors are refused, and no connector sees another's jobs.

mod common;

use common::TestHub;
use reqwest::Method;
use serde_json::{Value, json};

async fn status_and_body(r: reqwest::RequestBuilder) -> (u16, Value) {
    let r = r.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn missing_credentials_get_401_with_json_error() {
    let hub = TestHub::start("").await;
    let (status, body) = status_and_body(
        hub.http
            .get(format!("{}/api/v1/connector/jobs/next?hold=1", hub.url)),
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(body["code"], "unauthorized");
    assert!(
        body["message"].as_str().unwrap().contains("Authorization"),
        "{body}"
    );
}

#[tokio::test]
async fn remote_id_with_wrong_secret_gets_401() {
    let hub = TestHub::start("").await;
    let mut creds = hub.register("c1").await;
    creds.secret = "not-the-secret".into();
    let (status, body) = hub.poll(&creds, 1).await;
    assert_eq!(status, 401);
    assert_eq!(body["code"], "unauthorized");
}

#[tokio::test]
async fn rotated_secret_replaces_the_old_one_at_once() {
    let hub = TestHub::start("").await;
    let old = hub.register("c1").await;
    assert_eq!(
        hub.poll(&old, 1).await.0,
        204,
        "the old secret works (and is now cached)"
    );
    let (status, new) = status_and_body(hub.admin(
        Method::POST,
        &format!("/api/v1/connectors/{}/rotate-secret", old.remote_id),
    ))
    .await;
    assert_eq!(status, 200);
    let new: ferry_proto::connector::ConnectorCredentials = serde_json::from_value(new).unwrap();
    assert_ne!(new.secret, old.secret);
    assert_eq!(hub.poll(&old, 1).await.0, 401);
    assert_eq!(hub.poll(&new, 1).await.0, 204);
}

#[tokio::test]
async fn a_long_poll_waiting_with_a_rotated_secret_ends_with_401_and_leases_nothing() {
    let hub = TestHub::start("").await;
    let old = hub.register("c1").await;
    let poll = {
        let (http, url, creds) = (hub.http.clone(), hub.url.clone(), old.clone());
        tokio::spawn(async move {
            let r = http
                .get(format!("{url}/api/v1/connector/jobs/next?hold=50"))
                .bearer_auth(format!("{}:{}", creds.remote_id, creds.secret))
                .send()
                .await
                .unwrap();
            r.status().as_u16()
        })
    };
    // The poll is waiting once the hub counts it.
    let started = std::time::Instant::now();
    while hub.metric("ferry_long_polls_waiting").await < 1.0 {
        assert!(
            started.elapsed().as_secs() < 30,
            "the poll never started waiting"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let (status, _) = status_and_body(hub.admin(
        Method::POST,
        &format!("/api/v1/connectors/{}/rotate-secret", old.remote_id),
    ))
    .await;
    assert_eq!(status, 200);
    // A job queued now must not go to the old secret's holder.
    let job = hub
        .enqueue_job(common::diagnostics_job(old.remote_id))
        .await;
    let status = tokio::time::timeout(std::time::Duration::from_secs(40), poll)
        .await
        .expect("the poll ended before its hold")
        .unwrap();
    assert_eq!(status, 401);
    assert_eq!(
        hub.job(job.id).await.state,
        ferry_proto::job::JobState::Queued
    );
}

#[tokio::test]
async fn disabled_connector_gets_403_and_enabled_again_works() {
    let hub = TestHub::start("").await;
    let creds = hub.register("c1").await;
    let path = format!("/api/v1/connectors/{}", creds.remote_id);
    let (status, _) = status_and_body(
        hub.admin(Method::PATCH, &path)
            .json(&json!({ "enabled": false })),
    )
    .await;
    assert_eq!(status, 200);
    let (status, body) = hub.poll(&creds, 1).await;
    assert_eq!(status, 403);
    assert_eq!(body["code"], "forbidden");
    status_and_body(
        hub.admin(Method::PATCH, &path)
            .json(&json!({ "enabled": true })),
    )
    .await;
    assert_eq!(hub.poll(&creds, 1).await.0, 204);
}

#[tokio::test]
async fn a_connector_never_sees_or_touches_another_connectors_job() {
    let hub = TestHub::start("").await;
    let a = hub.register("a").await;
    let b = hub.register("b").await;
    let job = hub.enqueue(a.remote_id, Value::Null).await;
    assert_eq!(hub.poll(&b, 1).await.0, 204, "b must not get a's job");
    let (status, leased) = hub.poll(&a, 1).await;
    assert_eq!(status, 200);
    assert_eq!(leased["id"], job.id.to_string());
    // b reporting on a's job with a's own lease token still gets "not found".
    let (status, body) = hub
        .report(&b, &leased["id"], &leased["lease_token"], "succeeded")
        .await;
    assert_eq!(status, 404, "{body}");
    let still = hub.job(job.id).await;
    assert_eq!(still.state, ferry_proto::job::JobState::Leased);
}

#[tokio::test]
async fn admin_routes_refuse_connector_credentials() {
    let hub = TestHub::start("").await;
    let creds = hub.register("c1").await;
    // Valid connector credentials on a technician's route: known, but not for this route.
    let (status, _) =
        status_and_body(hub.as_connector(&creds, Method::GET, "/api/v1/connectors")).await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn connector_routes_refuse_the_admin_token() {
    let hub = TestHub::start("").await;
    // A technician's real key on the connector's route: known, but not for it.
    let (status, _) =
        status_and_body(hub.admin(Method::GET, "/api/v1/connector/jobs/next?hold=1")).await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn site_settings_are_editable_and_partial_updates_keep_other_fields() {
    let hub = TestHub::start("").await;
    let creds = hub.register("c1").await;
    let path = format!("/api/v1/connectors/{}", creds.remote_id);
    let (status, body) = status_and_body(hub.admin(Method::PATCH, &path).json(&json!({
        "site": { "site_code": "DEM", "share_path": "\\\\srv\\Sources$\\incoming", "collection": "Demo devices" }
    })))
    .await;
    assert_eq!(status, 200, "{body}");
    let (_, body) = status_and_body(
        hub.admin(Method::PATCH, &path)
            .json(&json!({ "site": { "collection": null } })),
    )
    .await;
    assert_eq!(body["site"]["site_code"], "DEM");
    assert_eq!(body["site"]["share_path"], "\\\\srv\\Sources$\\incoming");
    assert_eq!(body["site"]["collection"], Value::Null);
}

#[tokio::test]
async fn registering_the_same_name_twice_is_a_conflict() {
    let hub = TestHub::start("").await;
    hub.register("dup").await;
    let (status, body) = status_and_body(
        hub.admin(Method::POST, "/api/v1/connectors")
            .json(&json!({ "name": "dup" })),
    )
    .await;
    assert_eq!(status, 409);
    assert_eq!(body["code"], "name_taken");
}

#[tokio::test]
async fn the_admin_token_file_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let hub = TestHub::start("").await;
    for file in ["admin.token", "hub.key"] {
        let mode = std::fs::metadata(hub.data_dir().join(file))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{file}");
    }
    let db = std::fs::read(hub.data_dir().join("ferry.db")).unwrap_or_default();
    let token = hub.token.as_bytes();
    assert!(
        !db.windows(token.len()).any(|w| w == token),
        "the admin token must not be stored in clear"
    );
}

#[tokio::test]
async fn disabling_a_connector_ends_its_waiting_long_poll_with_403() {
    let hub = TestHub::start("").await;
    let creds = hub.register("c1").await;
    let waiting = {
        let request = hub.as_connector(&creds, Method::GET, "/api/v1/connector/jobs/next?hold=30");
        tokio::spawn(async move { request.send().await.unwrap().status().as_u16() })
    };
    while hub.metric("ferry_long_polls_waiting").await < 1.0 {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let path = format!("/api/v1/connectors/{}", creds.remote_id);
    status_and_body(
        hub.admin(Method::PATCH, &path)
            .json(&json!({ "enabled": false })),
    )
    .await;
    let job = hub.enqueue(creds.remote_id, Value::Null).await;
    assert_eq!(
        waiting.await.unwrap(),
        403,
        "a 30 s hold answering 403 proves it was woken and re-checked"
    );
    assert_eq!(
        hub.job(job.id).await.state,
        ferry_proto::job::JobState::Queued,
        "no job for a disabled connector"
    );
}

#[tokio::test]
async fn last_contact_is_shown_for_a_connector_that_polled() {
    let hub = TestHub::start("").await;
    let creds = hub.register("c1").await;
    let path = format!("/api/v1/connectors/{}", creds.remote_id);
    let (_, before) = status_and_body(hub.admin(Method::GET, &path)).await;
    assert_eq!(before["last_seen_at"], Value::Null);
    hub.poll(&creds, 1).await;
    let (_, after) = status_and_body(hub.admin(Method::GET, &path)).await;
    assert!(after["last_seen_at"].is_string(), "{after}");
    assert_eq!(after["online"], true);
    assert_eq!(before["online"], false);
}

#[tokio::test]
async fn administrative_actions_are_in_the_audit_log() {
    let hub = TestHub::start("").await;
    let creds = hub.register("audited").await;
    hub.admin(
        Method::POST,
        &format!("/api/v1/connectors/{}/rotate-secret", creds.remote_id),
    )
    .send()
    .await
    .unwrap();
    let (status, log) =
        status_and_body(hub.admin(Method::GET, "/api/v1/audit?action=connector.")).await;
    assert_eq!(status, 200);
    let actions: Vec<&str> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["connector.rotate_secret", "connector.register"]);
    assert!(
        !log.to_string().contains(&creds.secret),
        "no secret in the audit log"
    );
    // The secret was rotated above: the old one is no credential at all.
    let (status, _) = status_and_body(hub.as_connector(&creds, Method::GET, "/api/v1/audit")).await;
    assert_eq!(status, 401);
}
