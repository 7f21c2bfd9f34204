//! The connector reaches an HTTPS hub through an authenticating HTTP proxy (CONNECT), trusting
//! the hub's private CA from its `ca_cert` file, as it would inside a customer network.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::TestHub;
use ferry_proto::job::JobState;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// Writes a CA and a server certificate for 127.0.0.1; returns the TOML lines for the hub
/// and the CA path for the connector.
fn certificates(dir: &std::path::Path) -> (String, std::path::PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    std::fs::write(dir.join("ca.pem"), ca_cert.pem()).unwrap();
    std::fs::write(dir.join("hub.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("hub-key.pem"), key.serialize_pem()).unwrap();
    let toml = format!(
        "tls_cert = \"{}\"\ntls_key = \"{}\"",
        dir.join("hub.pem").display(),
        dir.join("hub-key.pem").display()
    );
    (toml, dir.join("ca.pem"))
}

/// A minimal CONNECT proxy that demands `Proxy-Authorization: Basic user:pass` and counts
/// the tunnels it opened.
async fn start_proxy(expected_auth: &'static str) -> (u16, Arc<AtomicUsize>, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let tunnels = Arc::new(AtomicUsize::new(0));
    let refused = Arc::new(AtomicUsize::new(0));
    let (t, r) = (tunnels.clone(), refused.clone());
    tokio::spawn(async move {
        loop {
            let (client, _) = listener.accept().await.unwrap();
            let (t, r) = (t.clone(), r.clone());
            tokio::spawn(async move {
                let mut reader = BufReader::new(client);
                let mut request_line = String::new();
                reader.read_line(&mut request_line).await.unwrap();
                let mut authorized = false;
                loop {
                    let mut line = String::new();
                    reader.read_line(&mut line).await.unwrap();
                    if line == "\r\n" || line.is_empty() {
                        break;
                    }
                    if line
                        .to_ascii_lowercase()
                        .starts_with("proxy-authorization:")
                        && line.contains(expected_auth)
                    {
                        authorized = true;
                    }
                }
                let mut client = reader.into_inner();
                let target = request_line
                    .split_whitespace()
                    .nth(1)
                    .unwrap_or("")
                    .to_owned();
                if !request_line.starts_with("CONNECT ") || !authorized {
                    r.fetch_add(1, Ordering::SeqCst);
                    let _ = client
                        .write_all(b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic\r\nContent-Length: 0\r\n\r\n")
                        .await;
                    return;
                }
                let mut upstream = TcpStream::connect(&target).await.unwrap();
                client
                    .write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")
                    .await
                    .unwrap();
                t.fetch_add(1, Ordering::SeqCst);
                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
            });
        }
    });
    (port, tunnels, refused)
}

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
