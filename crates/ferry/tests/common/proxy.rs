//! Test certificates and a small HTTP proxy with Basic authentication.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// Writes a CA and a server certificate for 127.0.0.1; returns the TOML lines for the hub
/// and the CA path for the connector.
pub fn certificates(dir: &std::path::Path) -> (String, std::path::PathBuf) {
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
pub async fn start_proxy(expected_auth: &'static str) -> (u16, Arc<AtomicUsize>, Arc<AtomicUsize>) {
    start_proxy_with(expected_auth, false).await
}

/// [`start_proxy`]; with `refuse_tunnels`, CONNECT is refused (403) and plain-HTTP requests
/// in absolute form are forwarded, like a proxy that blocks WebSockets but not web traffic.
pub async fn start_proxy_with(
    expected_auth: &'static str,
    refuse_tunnels: bool,
) -> (u16, Arc<AtomicUsize>, Arc<AtomicUsize>) {
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
                let mut headers = Vec::new();
                loop {
                    let mut line = String::new();
                    reader.read_line(&mut line).await.unwrap();
                    if line == "\r\n" || line.is_empty() {
                        break;
                    }
                    headers.extend_from_slice(line.as_bytes());
                    if line
                        .to_ascii_lowercase()
                        .starts_with("proxy-authorization:")
                        && line.contains(expected_auth)
                    {
                        authorized = true;
                    }
                }
                // Bytes after the headers (a request body) may already sit in the reader.
                let buffered = reader.buffer().to_vec();
                let mut client = reader.into_inner();
                let target = request_line
                    .split_whitespace()
                    .nth(1)
                    .unwrap_or("")
                    .to_owned();
                if refuse_tunnels && authorized && !request_line.starts_with("CONNECT ") {
                    // Forward as is: the hub accepts absolute-form request targets.
                    let authority = target
                        .trim_start_matches("http://")
                        .split('/')
                        .next()
                        .unwrap_or("")
                        .to_owned();
                    let mut upstream = TcpStream::connect(&authority).await.unwrap();
                    upstream.write_all(request_line.as_bytes()).await.unwrap();
                    upstream.write_all(&headers).await.unwrap();
                    upstream.write_all(b"\r\n").await.unwrap();
                    upstream.write_all(&buffered).await.unwrap();
                    t.fetch_add(1, Ordering::SeqCst);
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                    return;
                }
                if refuse_tunnels || !request_line.starts_with("CONNECT ") || !authorized {
                    r.fetch_add(1, Ordering::SeqCst);
                    let answer: &[u8] = if authorized {
                        b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n"
                    } else {
                        b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic\r\nContent-Length: 0\r\n\r\n"
                    };
                    let _ = client.write_all(answer).await;
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
