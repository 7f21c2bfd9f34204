//! The one rule for faults, on the wire: a download cut mid-body or answered `503` resumes
//! from the last byte once the server is back; a refusal the server means (`404`) ends it at
//! once; patience that runs out ends it with a transient error (so a job is run again, not
//! failed). The "hub" is a scripted raw HTTP server, so each fault is exact.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ferry_client::transfer::{Expected, Patience, no_progress};
use ferry_client::{Client, Config};
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// What the scripted server does with the `n`th request (0-based).
#[derive(Clone, Copy)]
enum Answer {
    /// Serves the bytes asked for (honouring `Range: bytes=N-`) but closes the connection
    /// after `cut` bytes of the body.
    CutAfter(usize),
    /// Serves the bytes asked for, completely.
    Serve,
    Status(u16),
}

struct Server {
    url: String,
    requests: Arc<AtomicUsize>,
}

async fn serve(content: Vec<u8>, script: Vec<Answer>) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let requests = Arc::new(AtomicUsize::new(0));
    let count = requests.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let n = count.fetch_add(1, Ordering::SeqCst);
            let answer = script.get(n).copied().unwrap_or(Answer::Serve);
            let content = content.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if socket.read(&mut byte).await.unwrap_or(0) == 0 {
                        return;
                    }
                    head.push(byte[0]);
                }
                let head = String::from_utf8_lossy(&head).to_lowercase();
                let from = head
                    .lines()
                    .find_map(|l| l.strip_prefix("range: bytes="))
                    .and_then(|r| r.trim_end_matches('-').trim_end_matches("-\r").parse().ok())
                    .unwrap_or(0usize);
                let (status, body) = match answer {
                    Answer::Status(s) => {
                        (s, b"{\"code\":\"not_found\",\"message\":\"gone\"}".to_vec())
                    }
                    _ => (if from > 0 { 206 } else { 200 }, content[from..].to_vec()),
                };
                let reply = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: application/octet-stream\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = socket.write_all(reply.as_bytes()).await;
                let body = match answer {
                    Answer::CutAfter(cut) => &body[..cut.min(body.len())],
                    _ => &body[..],
                };
                let _ = socket.write_all(body).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    Server { url, requests }
}

fn content() -> Vec<u8> {
    (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect()
}

fn expected(bytes: &[u8]) -> Expected {
    Expected {
        size: bytes.len() as u64,
        sha256: Sha256::digest(bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
    }
}

fn client(url: &str) -> Client {
    Client::new(&Config {
        hub_url: url.to_owned(),
        credential: None,
        ca_cert: None,
        proxy: None,
        user_agent: None,
    })
    .unwrap()
}

const PATIENT: Patience = Patience::For(Duration::from_secs(60));

#[tokio::test]
async fn a_download_cut_mid_body_resumes_from_the_last_byte_and_verifies() {
    let bytes = content();
    let server = serve(
        bytes.clone(),
        vec![Answer::CutAfter(100_000), Answer::CutAfter(50_000)],
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let part = dir.path().join("p.part");
    client(&server.url)
        .download("/x", &part, &expected(&bytes), PATIENT, &no_progress)
        .await
        .unwrap();
    assert_eq!(std::fs::read(&part).unwrap(), bytes);
    assert_eq!(server.requests.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_download_answered_503_is_tried_again() {
    let bytes = content();
    let server = serve(
        bytes.clone(),
        vec![Answer::Status(503), Answer::Status(502)],
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let part = dir.path().join("p.part");
    client(&server.url)
        .download("/x", &part, &expected(&bytes), PATIENT, &no_progress)
        .await
        .unwrap();
    assert_eq!(std::fs::read(&part).unwrap(), bytes);
}

#[tokio::test]
async fn a_download_refused_with_404_ends_at_once_as_permanent() {
    let server = serve(content(), vec![Answer::Status(404)]).await;
    let dir = tempfile::tempdir().unwrap();
    let e = client(&server.url)
        .download(
            "/x",
            &dir.path().join("p"),
            &expected(&content()),
            PATIENT,
            &no_progress,
        )
        .await
        .unwrap_err();
    assert!(e.is_permanent(), "{e}");
    assert_eq!(server.requests.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_download_whose_patience_runs_out_ends_transient_so_the_job_runs_again() {
    let server = serve(content(), vec![Answer::Status(503); 100]).await;
    let dir = tempfile::tempdir().unwrap();
    let tries = Arc::new(AtomicUsize::new(0));
    let counted = tries.clone();
    let patience = Patience::While(Arc::new(move || counted.fetch_add(1, Ordering::SeqCst) < 2));
    let e = client(&server.url)
        .download(
            "/x",
            &dir.path().join("p"),
            &expected(&content()),
            patience,
            &no_progress,
        )
        .await
        .unwrap_err();
    assert!(e.is_transient(), "{e}");
    assert_eq!(server.requests.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_connection_refused_is_transient() {
    // Bind and drop: nothing listens on the port now.
    let port = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let e = client(&format!("http://127.0.0.1:{port}"))
        .download(
            "/x",
            &dir.path().join("p"),
            &expected(&content()),
            Patience::For(Duration::ZERO),
            &no_progress,
        )
        .await
        .unwrap_err();
    assert!(e.is_transient(), "{e}");
}

/// A scripted upload endpoint: the first `PUT` keeps `keep` bytes and drops the connection,
/// the next status request answers `503`, then everything works. It checks the SHA-256 the
/// client completes with against the bytes it kept.
async fn flaky_upload_hub(keep: usize) -> (String, Arc<std::sync::Mutex<Vec<u8>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let stored = Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
    let kept = stored.clone();
    let puts = Arc::new(AtomicUsize::new(0));
    let gets = Arc::new(AtomicUsize::new(0));
    tokio::spawn(async move {
        let id = uuid::Uuid::new_v4();
        let size = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let (kept, puts, gets, size) = (kept.clone(), puts.clone(), gets.clone(), size.clone());
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if socket.read(&mut byte).await.unwrap_or(0) == 0 {
                        return;
                    }
                    head.push(byte[0]);
                }
                let head = String::from_utf8_lossy(&head).to_string();
                let first = head.lines().next().unwrap_or("").to_owned();
                let length: usize = head
                    .lines()
                    .find_map(|l| {
                        l.to_lowercase()
                            .strip_prefix("content-length: ")
                            .map(|v| v.trim().parse().unwrap_or(0))
                    })
                    .unwrap_or(0);
                let chunked = head.to_lowercase().contains("transfer-encoding: chunked");
                let upload = |received: usize, state: &str| {
                    json!({"id": id, "filename": "f.zip", "size": size.load(Ordering::SeqCst),
                           "received": received, "expected_sha256": null, "state": state,
                           "package_id": null, "created_at": "2026-12-01T00:00:00Z"})
                    .to_string()
                };
                let reply = |status: u16, body: String| {
                    format!(
                        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    )
                };
                let answer = if first.starts_with("POST /api/v1/uploads ") {
                    let mut body = vec![0u8; length];
                    socket.read_exact(&mut body).await.unwrap();
                    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
                    size.store(v["size"].as_u64().unwrap(), Ordering::SeqCst);
                    reply(201, upload(0, "open"))
                } else if first.starts_with("GET /api/v1/uploads/") {
                    if gets.fetch_add(1, Ordering::SeqCst) == 0 {
                        reply(
                            503,
                            "{\"code\":\"shutting_down\",\"message\":\"restarting\"}".into(),
                        )
                    } else {
                        reply(200, upload(kept.lock().unwrap().len(), "open"))
                    }
                } else if first.starts_with("PUT /api/v1/uploads/") {
                    let offset: usize = first
                        .split("offset=")
                        .nth(1)
                        .and_then(|r| r.split(' ').next())
                        .and_then(|n| n.parse().ok())
                        .unwrap_or(0);
                    let have = kept.lock().unwrap().len();
                    if offset != have {
                        reply(
                            409,
                            format!(
                                "{{\"code\":\"offset_mismatch\",\"message\":\"resume at {have}\"}}"
                            ),
                        )
                    } else {
                        let body = read_body(&mut socket, length, chunked).await;
                        if puts.fetch_add(1, Ordering::SeqCst) == 0 {
                            kept.lock()
                                .unwrap()
                                .extend_from_slice(&body[..keep.min(body.len())]);
                            return; // the hub "dies": no answer
                        }
                        kept.lock().unwrap().extend_from_slice(&body);
                        let n = kept.lock().unwrap().len();
                        reply(200, upload(n, "open"))
                    }
                } else if first.starts_with("POST /api/v1/uploads/") {
                    let want: String = first
                        .split("sha256=")
                        .nth(1)
                        .and_then(|r| r.split(' ').next())
                        .unwrap_or("")
                        .to_owned();
                    let actual: String = Sha256::digest(&*kept.lock().unwrap())
                        .iter()
                        .map(|b| format!("{b:02x}"))
                        .collect();
                    if want == actual {
                        let p = json!({"id": uuid::Uuid::new_v4(), "filename": "f.zip", "size": size.load(Ordering::SeqCst),
                                       "sha256": actual, "metadata": {}, "created_at": "2026-12-01T00:00:00Z"});
                        reply(201, p.to_string())
                    } else {
                        reply(
                            422,
                            "{\"code\":\"sha256_mismatch\",\"message\":\"client hash differs\"}"
                                .into(),
                        )
                    }
                } else {
                    reply(404, "{}".into())
                };
                let _ = socket.write_all(answer.as_bytes()).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    (url, stored)
}

async fn read_body(socket: &mut tokio::net::TcpStream, length: usize, chunked: bool) -> Vec<u8> {
    if !chunked {
        let mut body = vec![0u8; length];
        let _ = socket.read_exact(&mut body).await;
        return body;
    }
    let mut body = Vec::new();
    loop {
        let mut line = Vec::new();
        let mut byte = [0u8; 1];
        while !line.ends_with(b"\r\n") {
            if socket.read(&mut byte).await.unwrap_or(0) == 0 {
                return body;
            }
            line.push(byte[0]);
        }
        let n = usize::from_str_radix(String::from_utf8_lossy(&line).trim(), 16).unwrap_or(0);
        if n == 0 {
            let mut end = [0u8; 2];
            let _ = socket.read_exact(&mut end).await;
            return body;
        }
        let mut chunk = vec![0u8; n + 2];
        if socket.read_exact(&mut chunk).await.is_err() {
            return body;
        }
        body.extend_from_slice(&chunk[..n]);
    }
}

#[tokio::test]
async fn an_upload_cut_mid_body_while_the_hub_restarts_completes_with_the_right_hash() {
    let bytes = content();
    let (url, stored) = flaky_upload_hub(0).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("f.zip");
    std::fs::write(&file, &bytes).unwrap();
    let options = ferry_client::transfer::UploadOptions {
        patience: PATIENT,
        ..Default::default()
    };
    client(&url)
        .upload_package(&file, &options, &no_progress)
        .await
        .unwrap();
    assert_eq!(*stored.lock().unwrap(), bytes);
}
