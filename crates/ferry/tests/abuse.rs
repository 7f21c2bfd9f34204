//! What an adversarial probe of a running hub found, each as the behaviour that now holds:
//! connections without purpose are closed, exhausting file descriptors takes credentials, a
//! report is not read before its job is known, uploading someone's bytes does not make their
//! package yours, device names cannot be Windows devices, failed authentication is throttled
//! and seen, and open uploads are capped.

mod common;

use std::time::{Duration, Instant};

use common::TestHub;
use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn addr(hub: &TestHub) -> String {
    hub.url.trim_start_matches("http://").to_owned()
}

/// Reads until the peer closes the connection (`true`) or `limit` passes (`false`).
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> bool {
    let mut buf = [0u8; 1024];
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

async fn healthz(hub: &TestHub) -> bool {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    client
        .get(format!("{}/healthz", hub.url))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
}

// ----- connections ------------------------------------------------------------------------

#[tokio::test]
async fn a_connection_that_sends_nothing_is_closed_after_the_idle_timeout() {
    let hub = TestHub::start("connection_idle_secs = 5").await;
    let mut idle = TcpStream::connect(addr(&hub)).await.unwrap();
    assert!(closed_within(&mut idle, Duration::from_secs(30)).await);
    assert!(hub.metric("ferry_connections_closed_idle_total").await >= 1.0);
}

#[tokio::test]
async fn headers_dribbled_a_line_at_a_time_do_not_keep_a_connection_open() {
    let hub = TestHub::start("connection_idle_secs = 5").await;
    let mut slow = TcpStream::connect(addr(&hub)).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\n").await.unwrap();
    let started = Instant::now();
    let mut closed = false;
    // A header line every second never completes the head: the idle rule still applies.
    while started.elapsed() < Duration::from_secs(30) {
        if slow.write_all(b"X-Slow: 1\r\n").await.is_err() {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert!(closed || closed_within(&mut slow, Duration::from_secs(1)).await);
}

#[tokio::test]
async fn a_long_poll_outlasts_the_idle_timeout() {
    let hub = TestHub::start("connection_idle_secs = 5").await;
    let creds = hub.register("c1").await;
    let (status, _) = hub.poll(&creds, 8).await;
    assert_eq!(status, 204, "held for 8 s with a 5 s idle timeout");
}

#[tokio::test]
async fn idle_unauthenticated_connections_make_room_so_the_hub_still_answers() {
    let hub =
        TestHub::start("max_unauthenticated_connections = 4\nconnection_idle_secs = 300").await;
    let mut squatters = Vec::new();
    for _ in 0..16 {
        squatters.push(TcpStream::connect(addr(&hub)).await.unwrap());
    }
    // The kernel completes the squatters' handshakes before the hub accepts them all, so a
    // newcomer may itself be the oldest idle connection when the last squatters are taken in:
    // it is evicted like any idle one, and the next newcomer gets in.
    let mut answered = false;
    for _ in 0..20 {
        if healthz(&hub).await {
            answered = true;
            break;
        }
    }
    assert!(answered, "a newcomer gets in by evicting an idle squatter");
    let open = hub.metric("ferry_connections_unauthenticated").await;
    assert!(open <= 4.0, "{open} unauthenticated connections");
    assert!(hub.metric("ferry_connections_evicted_total").await >= 12.0);
    // A credentialed connection does not count against the cap.
    let creds = hub.register("c1").await;
    assert_eq!(hub.poll(&creds, 0).await.0, 204);
}

// ----- reports ------------------------------------------------------------------------------

#[tokio::test]
async fn a_report_for_a_job_that_is_not_yours_is_refused_before_its_body_is_read() {
    let hub = TestHub::start("").await;
    let creds = hub.register("c1").await;
    let mut s = TcpStream::connect(addr(&hub)).await.unwrap();
    let head = format!(
        "POST /api/v1/connector/jobs/{}/result HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {}:{}\r\n\
         content-type: application/json\r\ncontent-length: 66060288\r\n\r\n",
        uuid::Uuid::new_v4(),
        creds.remote_id,
        creds.secret
    );
    s.write_all(head.as_bytes()).await.unwrap();
    // Not one byte of the 63 MiB body is sent: the answer must come anyway.
    let mut answer = vec![0u8; 256];
    let n = tokio::time::timeout(Duration::from_secs(20), s.read(&mut answer))
        .await
        .expect("answered without waiting for the body")
        .unwrap();
    let text = String::from_utf8_lossy(&answer[..n]);
    assert!(text.starts_with("HTTP/1.1 404"), "{text}");
}

// ----- ownership of uploaded bytes --------------------------------------------------------

#[tokio::test]
async fn uploading_the_bytes_of_anothers_package_gives_you_your_own_package() {
    let hub = TestHub::start("").await;
    let zip = ferry_package::sample::filezilla_like().unwrap();
    let admin_pkg = hub.upload_package(zip.clone()).await;
    let admin_id = admin_pkg["id"].as_str().unwrap().to_owned();
    // The administrator puts a licence key into the install command.
    let r = hub
        .admin(Method::PATCH, &format!("/api/v1/packages/{admin_id}"))
        .json(&json!({"metadata": {"install_command": "setup.exe /LICENSE=SECRET-KEY"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    let c = hub.register("b").await;
    let as_b = |m: Method, p: &str| hub.as_connector(&c, m, p);
    let upload: Value = as_b(Method::POST, "/api/v1/uploads")
        .json(&json!({"filename": "x.zip", "size": zip.len()}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let uid = upload["id"].as_str().unwrap();
    let r = as_b(Method::PUT, &format!("/api/v1/uploads/{uid}?offset=0"))
        .header("content-type", "application/octet-stream")
        .body(zip.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let mine: Value = as_b(Method::POST, &format!("/api/v1/uploads/{uid}/complete"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_ne!(
        mine["id"], admin_pkg["id"],
        "its own record for the same bytes"
    );
    assert_eq!(mine["sha256"], admin_pkg["sha256"]);
    assert!(!mine.to_string().contains("SECRET-KEY"), "{mine}");
    // The administrator's package stays out of reach.
    let r = as_b(Method::GET, &format!("/api/v1/packages/{admin_id}/content"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

// ----- push specifications -------------------------------------------------------------------

#[tokio::test]
async fn a_windows_device_name_cannot_be_an_application_name() {
    let hub = TestHub::start("").await;
    let c = hub.register("site").await;
    let r = hub
        .admin(
            Method::PATCH,
            &format!("/api/v1/connectors/{}", c.remote_id),
        )
        .json(&json!({ "site": {
            "site_code": "DEM", "console_path": "C:\\x", "share_path": "\\\\srv\\share",
            "distribution_point_group": "DPG", "collection": "All"
        }}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let package = hub
        .upload_package(ferry_package::sample::filezilla_like().unwrap())
        .await;
    for name in [
        "CON", "NUL.txt", "COM1", "aux.zip", "CONIN$", " app", "app.", ".app",
    ] {
        let r = hub
            .admin(Method::POST, "/api/v1/push")
            .json(&json!({
                "package_id": package["id"], "connector_id": c.remote_id,
                "spec": {"application": {"name": name}}, "dry_run": true
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{name:?}");
        let body: Value = r.json().await.unwrap();
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .contains("application.name"),
            "{body}"
        );
    }
}

// ----- failed authentication ----------------------------------------------------------------

#[tokio::test]
async fn an_address_that_keeps_failing_to_authenticate_gets_429_and_is_logged() {
    let hub =
        TestHub::start("auth_failures_per_address = 5\nauth_failures_per_credential = 1000").await;
    for i in 0..5 {
        let r = hub
            .http
            .get(format!("{}/api/v1/connectors", hub.url))
            .bearer_auth(format!("fk_{}_wrong{i}", uuid::Uuid::new_v4()))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
    }
    // Even the right key is not checked now: the address is refused first.
    let r = hub
        .admin(Method::GET, "/api/v1/connectors")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    assert!(hub.metric("ferry_auth_failures_total").await >= 5.0);
    assert!(hub.metric("ferry_auth_throttled_total").await >= 1.0);
    let log = hub.log();
    let line = log
        .lines()
        .find(|l| l.contains("authentication failed"))
        .expect("a failure is logged");
    assert!(
        line.contains("WARN") && line.contains("127.0.0.1"),
        "{line}"
    );
    assert!(!log.contains("wrong0"), "no secret in the log");
}

#[tokio::test]
async fn guesses_at_one_credential_id_get_429_but_its_holder_still_gets_in() {
    let hub =
        TestHub::start("auth_failures_per_address = 1000\nauth_failures_per_credential = 3").await;
    let c = hub.register("c1").await;
    let guess = || {
        hub.http
            .get(format!("{}/api/v1/connector/jobs/next?hold=0", hub.url))
            .bearer_auth(format!("{}:not-the-secret", c.remote_id))
            .send()
    };
    for _ in 0..2 {
        assert_eq!(guess().await.unwrap().status(), 401);
    }
    // From the limit on, a wrong secret for this id answers 429 from any address…
    for _ in 0..3 {
        assert_eq!(guess().await.unwrap().status(), 429);
    }
    // …but the connector holding the right secret is never locked out by someone guessing.
    let (status, _) = hub.poll(&c, 0).await;
    assert_eq!(status, 204);
}

// ----- open uploads -------------------------------------------------------------------------

#[tokio::test]
async fn a_caller_cannot_hold_more_open_uploads_than_its_cap() {
    let hub = TestHub::start("max_open_uploads = 3\nmax_open_upload_bytes = 1000000").await;
    let c = hub.register("c1").await;
    let open = |size: u64| {
        hub.as_connector(&c, Method::POST, "/api/v1/uploads")
            .json(&json!({"filename": "x.zip", "size": size}))
            .send()
    };
    for _ in 0..3 {
        assert_eq!(open(10).await.unwrap().status(), 201);
    }
    let r = open(10).await.unwrap();
    assert_eq!(r.status(), 429);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], "too_many_uploads");
    // Another caller is not affected; declared bytes count too.
    let d = hub.register("c2").await;
    let big = hub
        .as_connector(&d, Method::POST, "/api/v1/uploads")
        .json(&json!({"filename": "x.zip", "size": 2_000_000}))
        .send()
        .await
        .unwrap();
    assert_eq!(big.status(), 429);
    let r = hub
        .admin(Method::POST, "/api/v1/uploads")
        .json(&json!({"filename": "x.zip", "size": 10}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
}

#[tokio::test]
async fn an_anonymous_request_whose_body_never_comes_does_not_hold_its_connection() {
    let hub = TestHub::start("connection_idle_secs = 5").await;
    let mut s = TcpStream::connect(addr(&hub)).await.unwrap();
    s.write_all(
        b"POST /api/v1/login HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n",
    )
    .await
    .unwrap();
    // The body never comes: the login is not a request in progress of someone known.
    assert!(closed_within(&mut s, Duration::from_secs(30)).await);
}
