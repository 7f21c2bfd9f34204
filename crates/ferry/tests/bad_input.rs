//! Bad input gets a clear 4xx naming what is wrong, and writes nothing.

mod common;

use common::TestHub;
use reqwest::Method;
use serde_json::{Value, json};

async fn send(r: reqwest::RequestBuilder) -> (u16, Value) {
    let r = r.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Runs `request` and checks the status, the error code, that the message mentions
/// `mention`, and that no job was created.
async fn refused(
    hub: &TestHub,
    request: reqwest::RequestBuilder,
    status: u16,
    code: &str,
    mention: &str,
) {
    let before = hub.jobs().await.len();
    let (got, body) = send(request).await;
    assert_eq!(got, status, "{body}");
    assert_eq!(body["code"], code, "{body}");
    assert!(
        body["message"].as_str().unwrap_or("").contains(mention),
        "message should mention {mention:?}: {body}"
    );
    assert_eq!(
        hub.jobs().await.len(),
        before,
        "a refused request must not write"
    );
}

#[tokio::test]
async fn oversized_body_is_413() {
    let hub = TestHub::start("max_body_bytes = 4096").await;
    let c = hub.register("c").await;
    let big = json!({ "connector_id": c.remote_id, "kind": "diagnostics", "payload": { "x": "a".repeat(10_000) } });
    refused(
        &hub,
        hub.admin(Method::POST, "/api/v1/jobs").json(&big),
        413,
        "body_too_large",
        "4096",
    )
    .await;
}

#[tokio::test]
async fn malformed_json_is_400() {
    let hub = TestHub::start("").await;
    let r = hub
        .admin(Method::POST, "/api/v1/jobs")
        .header("content-type", "application/json")
        .body("{\"kind\": ");
    refused(&hub, r, 400, "invalid_body", "malformed JSON").await;
}

#[tokio::test]
async fn unknown_field_is_400_naming_it() {
    let hub = TestHub::start("").await;
    let c = hub.register("c").await;
    let body = json!({ "connector_id": c.remote_id, "kind": "diagnostics", "priority": 5 });
    refused(
        &hub,
        hub.admin(Method::POST, "/api/v1/jobs").json(&body),
        400,
        "invalid_body",
        "priority",
    )
    .await;
}

#[tokio::test]
async fn unknown_field_inside_the_payload_is_named_with_its_path() {
    let hub = TestHub::start("").await;
    let c = hub.register("c").await;
    let body = json!({ "connector_id": c.remote_id, "kind": "diagnostics", "payload": { "rtt_sample": 3 } });
    refused(
        &hub,
        hub.admin(Method::POST, "/api/v1/jobs").json(&body),
        400,
        "invalid_body",
        "rtt_sample",
    )
    .await;
}

#[tokio::test]
async fn wrong_type_is_400_naming_the_field() {
    let hub = TestHub::start("").await;
    let c = hub.register("c").await;
    let body =
        json!({ "connector_id": c.remote_id, "kind": "diagnostics", "max_attempts": "three" });
    refused(
        &hub,
        hub.admin(Method::POST, "/api/v1/jobs").json(&body),
        400,
        "invalid_body",
        "max_attempts",
    )
    .await;
}

#[tokio::test]
async fn unknown_job_kind_is_400() {
    let hub = TestHub::start("").await;
    let c = hub.register("c").await;
    let body = json!({ "connector_id": c.remote_id, "kind": "format_c_drive" });
    refused(
        &hub,
        hub.admin(Method::POST, "/api/v1/jobs").json(&body),
        400,
        "invalid_body",
        "kind",
    )
    .await;
}

#[tokio::test]
async fn bad_uuid_in_body_is_400_naming_the_field() {
    let hub = TestHub::start("").await;
    let body = json!({ "connector_id": "not-a-uuid", "kind": "diagnostics" });
    refused(
        &hub,
        hub.admin(Method::POST, "/api/v1/jobs").json(&body),
        400,
        "invalid_body",
        "connector_id",
    )
    .await;
}

#[tokio::test]
async fn bad_uuid_in_path_is_400() {
    let hub = TestHub::start("").await;
    refused(
        &hub,
        hub.admin(Method::GET, "/api/v1/jobs/12345"),
        400,
        "invalid_id",
        "id",
    )
    .await;
}

#[tokio::test]
async fn job_for_an_unknown_connector_is_400() {
    let hub = TestHub::start("").await;
    let body = json!({ "connector_id": uuid::Uuid::new_v4(), "kind": "diagnostics" });
    refused(
        &hub,
        hub.admin(Method::POST, "/api/v1/jobs").json(&body),
        400,
        "unknown_connector",
        "no connector",
    )
    .await;
}

#[tokio::test]
async fn expiry_in_the_past_is_400() {
    let hub = TestHub::start("").await;
    let c = hub.register("c").await;
    let body = json!({ "connector_id": c.remote_id, "kind": "diagnostics", "expires_at": "2020-01-01T00:00:00Z" });
    refused(
        &hub,
        hub.admin(Method::POST, "/api/v1/jobs").json(&body),
        400,
        "invalid_field",
        "expires_at",
    )
    .await;
}

#[tokio::test]
async fn impossible_date_is_400() {
    let hub = TestHub::start("").await;
    let c = hub.register("c").await;
    let body = json!({ "connector_id": c.remote_id, "kind": "diagnostics", "not_before": "2026-02-30T00:00:00Z" });
    refused(
        &hub,
        hub.admin(Method::POST, "/api/v1/jobs").json(&body),
        400,
        "invalid_body",
        "not_before",
    )
    .await;
}

#[tokio::test]
async fn hold_above_the_maximum_is_400() {
    let hub = TestHub::start("").await;
    let c = hub.register("c").await;
    let (status, body) = hub.poll(&c, 56).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["message"].as_str().unwrap().contains("hold"), "{body}");
}

#[tokio::test]
async fn non_json_content_type_is_400() {
    let hub = TestHub::start("").await;
    let r = hub
        .admin(Method::POST, "/api/v1/connectors")
        .header("content-type", "text/plain")
        .body("{\"name\":\"x\"}");
    let (status, body) = send(r).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["code"], "bad_content_type");
    let list: Vec<Value> = hub
        .admin(Method::GET, "/api/v1/connectors")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(list.is_empty());
}

#[tokio::test]
async fn control_characters_in_a_connector_name_are_refused() {
    let hub = TestHub::start("").await;
    let (status, body) = send(
        hub.admin(Method::POST, "/api/v1/connectors")
            .json(&json!({ "name": "a\u{0007}b" })),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(body["message"].as_str().unwrap().contains("name"));
}

#[tokio::test]
async fn unknown_route_is_a_json_404() {
    let hub = TestHub::start("").await;
    let (status, body) = send(hub.admin(Method::GET, "/api/v1/nothing-here")).await;
    assert_eq!(status, 404);
    assert_eq!(body["code"], "not_found");
}
