//! The connector reaches an HTTPS hub through an authenticating HTTP proxy (CONNECT), trusting
//! the hub's private CA from its `ca_cert` file, as it would inside a customer network.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::TestHub;
use common::proxy::{certificates, start_proxy};
use ferry_proto::job::JobState;

#[tokio::test]
async fn connector_runs_a_job_through_an_authenticating_proxy_to_an_https_hub() {
    let certs = tempfile::tempdir().unwrap();
    let (tls, ca) = certificates(certs.path());
    let mut hub = TestHub::start(&tls).await;
    assert!(hub.url.starts_with("https://"), "{}", hub.url);
    hub.http = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&std::fs::read(&ca).unwrap()).unwrap())
        .build()
        .unwrap();
    // base64("ferry:s3cret")
    let (port, tunnels, refused) = start_proxy("ZmVycnk6czNjcmV0").await;
    let c = hub.register("behind-proxy").await;
    let extra = format!(
        "ca_cert = \"{}\"\nproxy = \"http://ferry:s3cret@127.0.0.1:{port}\"",
        ca.display()
    );
    let connector = hub.spawn_connector(&c, &extra);
    let job = hub
        .enqueue(c.remote_id, serde_json::json!({ "rtt_samples": 1 }))
        .await;
    let done = hub
        .wait_job(job.id, Duration::from_secs(30), |j| j.state.is_terminal())
        .await;
    assert_eq!(
        done.state,
        JobState::Succeeded,
        "{done:#?}\n{}",
        connector.log()
    );
    assert!(
        tunnels.load(Ordering::SeqCst) >= 1,
        "the connector must have gone through the proxy"
    );
    assert_eq!(refused.load(Ordering::SeqCst), 0);
    assert!(
        !connector.log().contains("s3cret"),
        "the proxy password must not be logged"
    );
    assert!(
        !connector.log().contains(&c.secret),
        "the connector secret must not be logged"
    );
}

#[tokio::test]
async fn connector_refuses_a_hub_whose_certificate_it_cannot_verify() {
    let certs = tempfile::tempdir().unwrap();
    let (tls, _ca) = certificates(certs.path());
    let mut hub = TestHub::start(&tls).await;
    hub.http = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap();
    let c = hub.register("no-ca").await;
    let connector = hub.spawn_connector(&c, ""); // no ca_cert: the private CA is not trusted
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        connector.log().contains("hub unreachable"),
        "{}",
        connector.log()
    );
    let job = hub.enqueue(c.remote_id, serde_json::Value::Null).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(hub.job(job.id).await.state, JobState::Queued);
}
