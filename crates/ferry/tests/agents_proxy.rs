//! Agents behind proxies: the WebSocket tunnelled through an authenticating proxy to an
//! HTTPS hub with a private CA, and the fall back to long polls when a proxy refuses tunnels.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::TestHub;
use common::proxy::{certificates, start_proxy, start_proxy_with};
use serde_json::json;

#[tokio::test]
async fn an_agent_keeps_its_websocket_through_an_authenticating_proxy_to_an_https_hub() {
    let certs = tempfile::tempdir().unwrap();
    let (tls, ca) = certificates(certs.path());
    let mut hub = TestHub::start(&tls).await;
    hub.http = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&std::fs::read(&ca).unwrap()).unwrap())
        .build()
        .unwrap();
    // base64("ferry:s3cret")
    let (port, tunnels, refused) = start_proxy("ZmVycnk6czNjcmV0").await;
    let proxy = format!("http://ferry:s3cret@127.0.0.1:{port}");
    let ca_arg = ca.display().to_string();
    let mut agent = hub
        .enroll_agent_with(
            "behind-proxy",
            &["--proxy", &proxy, "--ca-cert", &ca_arg],
            |_| {},
        )
        .await;
    agent.start();
    hub.wait_online(agent.device, true).await;
    let op = hub
        .start_op(json!({"op": {"kind": "run_script", "script": "echo through"}, "devices": [agent.device]}))
        .await;
    let op = hub
        .wait_op(op.id, Duration::from_secs(30), |o| o.counts.finished())
        .await;
    assert_eq!(op.counts.succeeded, 1, "{}", agent.log());
    assert!(
        tunnels.load(Ordering::SeqCst) >= 2,
        "enrolment and WebSocket go through the proxy"
    );
    assert_eq!(refused.load(Ordering::SeqCst), 0);
    assert!(agent.log().contains("agent starting"));
    assert!(
        !agent.log().contains("s3cret"),
        "the proxy password must not be logged"
    );
    let token = std::fs::read_to_string(agent.path("device.token")).unwrap();
    let secret = token.trim().split_once(':').unwrap().1;
    assert!(
        !agent.log().contains(secret),
        "the device token must not be logged"
    );
}

#[tokio::test]
async fn when_a_proxy_refuses_websocket_tunnels_the_agent_falls_back_to_long_polling() {
    let hub = TestHub::start("").await;
    let (port, forwarded, refused) = start_proxy_with("ZmVycnk6czNjcmV0", true).await;
    let proxy = format!("http://ferry:s3cret@127.0.0.1:{port}");
    let mut agent = hub
        .enroll_agent_with("blocked-ws", &["--proxy", &proxy], |_| {})
        .await;
    agent.start();
    hub.wait_online(agent.device, true).await;
    let op = hub
        .start_op(json!({"op": {"kind": "run_script", "script": "echo polled"}, "devices": [agent.device]}))
        .await;
    let op = hub
        .wait_op(op.id, Duration::from_secs(30), |o| o.counts.finished())
        .await;
    assert_eq!(op.counts.succeeded, 1, "{}", agent.log());
    assert!(
        refused.load(Ordering::SeqCst) >= 1,
        "the WebSocket tunnel was tried"
    );
    assert!(forwarded.load(Ordering::SeqCst) >= 1);
    assert!(
        agent.log().contains("falling back to long polling"),
        "{}",
        agent.log()
    );
}
