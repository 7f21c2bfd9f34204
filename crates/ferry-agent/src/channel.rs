//! Opening the agent's WebSocket: TCP (optionally from a chosen source address), an HTTP
//! CONNECT tunnel through a proxy (with Basic credentials), TLS with the system roots plus
//! an extra CA, then the WebSocket handshake with the device token.
//!
//! Written by hand rather than with a WebSocket client's `connect` because none of those
//! speaks HTTP proxies, and agents behind corporate proxies are the normal case.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use ferry_client::reqwest::Url;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use ferry_client::Error as ClientError;

pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

pub type Ws = WebSocketStream<Pin<Box<dyn Io>>>;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("{0}")]
    Setup(String),
    #[error("cannot connect: {0}")]
    Io(#[from] std::io::Error),
    #[error("the proxy refused the tunnel: {0}")]
    Proxy(String),
    #[error("TLS: {0}")]
    Tls(String),
    /// The hub (or something on the way) answered the upgrade with this status.
    #[error("the WebSocket upgrade was refused with HTTP {status}")]
    Refused { status: u16 },
    #[error("paced admission: come back in {0} ms")]
    Deferred(u64),
    #[error("WebSocket handshake: {0}")]
    Handshake(String),
    #[error("timed out connecting")]
    Timeout,
}

impl From<ClientError> for ConnectError {
    fn from(e: ClientError) -> Self {
        ConnectError::Setup(e.to_string())
    }
}

/// The TLS settings for the WebSocket: the system's roots plus an optional extra CA.
pub fn tls_config(ca_cert: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, ConnectError> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for cert in native.certs {
        let _ = roots.add(cert);
    }
    if let Some(path) = ca_cert {
        use rustls::pki_types::pem::PemObject;
        let certs = rustls::pki_types::CertificateDer::pem_file_iter(path)
            .map_err(|e| ConnectError::Setup(format!("CA certificate {}: {e}", path.display())))?;
        for cert in certs {
            let cert = cert.map_err(|e| {
                ConnectError::Setup(format!("CA certificate {}: {e}", path.display()))
            })?;
            roots.add(cert).map_err(|e| {
                ConnectError::Setup(format!("CA certificate {}: {e}", path.display()))
            })?;
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| ConnectError::Setup(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Everything needed to open the WebSocket, shared by every agent of a process.
#[derive(Clone)]
pub struct WsTarget {
    url: Url,
    tls: Arc<rustls::ClientConfig>,
    proxy: Option<Url>,
    /// Local address to connect from (the load generator spreads over 127.0.0.x).
    pub bind: Option<IpAddr>,
    max_message: usize,
}

impl WsTarget {
    pub fn new(
        hub_url: &str,
        tls: Arc<rustls::ClientConfig>,
        proxy: Option<&str>,
    ) -> Result<Self, ConnectError> {
        let mut url = Url::parse(hub_url)
            .map_err(|e| ConnectError::Setup(format!("hub URL {hub_url:?}: {e}")))?;
        let scheme = match url.scheme() {
            "https" => "wss",
            "http" => "ws",
            other => {
                return Err(ConnectError::Setup(format!(
                    "hub URL scheme {other:?}: use https:// (or http:// for tests)"
                )));
            }
        };
        url.set_path("/api/v1/agent/ws");
        let _ = url.set_scheme(scheme);
        let proxy = match proxy {
            Some(p) => Some(parse_proxy(p)?),
            None => env_proxy(&url)?,
        };
        Ok(WsTarget {
            url,
            tls,
            proxy,
            bind: None,
            max_message: 4 * 1024 * 1024,
        })
    }

    pub fn url(&self) -> &Url {
        &self.url
    }

    /// Opens the WebSocket with the device token.
    pub async fn connect(&self, token: &str) -> Result<Ws, ConnectError> {
        tokio::time::timeout(CONNECT_TIMEOUT, self.connect_inner(token))
            .await
            .map_err(|_| ConnectError::Timeout)?
    }

    async fn connect_inner(&self, token: &str) -> Result<Ws, ConnectError> {
        let host = self
            .url
            .host_str()
            .ok_or_else(|| ConnectError::Setup("hub URL has no host".into()))?
            .to_owned();
        let port = self.url.port_or_known_default().unwrap_or(443);
        let tcp = match &self.proxy {
            Some(proxy) => self.tunnel(proxy, &host, port).await?,
            None => self.tcp(&host, port).await?,
        };
        let _ = tcp.set_nodelay(true);
        let stream: Pin<Box<dyn Io>> = if self.url.scheme() == "wss" {
            let name = rustls::pki_types::ServerName::try_from(
                host.trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_owned(),
            )
            .map_err(|e| ConnectError::Tls(e.to_string()))?;
            let tls = tokio_rustls::TlsConnector::from(self.tls.clone())
                .connect(name, tcp)
                .await
                .map_err(|e| ConnectError::Tls(e.to_string()))?;
            Box::pin(tls)
        } else {
            Box::pin(tcp)
        };
        let mut request = self
            .url
            .as_str()
            .into_client_request()
            .map_err(|e| ConnectError::Setup(e.to_string()))?;
        let mut auth = tungstenite::http::HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| ConnectError::Setup("the device token is not a valid header".into()))?;
        auth.set_sensitive(true);
        request.headers_mut().insert("authorization", auth);
        let mut config = WebSocketConfig::default();
        config.read_buffer_size = 4096;
        config.write_buffer_size = 0;
        config.max_message_size = Some(self.max_message);
        config.max_frame_size = Some(self.max_message);
        match tokio_tungstenite::client_async_with_config(request, stream, Some(config)).await {
            Ok((ws, _)) => Ok(ws),
            Err(tungstenite::Error::Http(response)) => {
                let status = response.status().as_u16();
                if status == 503 {
                    let ms = response
                        .headers()
                        .get(ferry_proto::agent::RETRY_AFTER_MS_HEADER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse::<u64>().ok());
                    if let Some(ms) = ms {
                        return Err(ConnectError::Deferred(ms));
                    }
                }
                Err(ConnectError::Refused { status })
            }
            Err(e) => Err(ConnectError::Handshake(e.to_string())),
        }
    }

    async fn tcp(&self, host: &str, port: u16) -> Result<TcpStream, ConnectError> {
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port)).await?.collect();
        let mut last = None;
        for addr in addrs {
            let socket = if addr.is_ipv4() {
                TcpSocket::new_v4()?
            } else {
                TcpSocket::new_v6()?
            };
            if let Some(ip) = self.bind
                && ip.is_ipv4() == addr.is_ipv4()
            {
                socket.bind(SocketAddr::new(ip, 0))?;
            }
            match socket.connect(addr).await {
                Ok(s) => return Ok(s),
                Err(e) => last = Some(e),
            }
        }
        Err(last
            .unwrap_or_else(|| std::io::Error::other(format!("{host} has no address")))
            .into())
    }

    /// `CONNECT host:port` through the proxy, with Basic credentials from its URL.
    async fn tunnel(&self, proxy: &Url, host: &str, port: u16) -> Result<TcpStream, ConnectError> {
        let phost = proxy
            .host_str()
            .ok_or_else(|| ConnectError::Setup("proxy URL has no host".into()))?;
        let pport = proxy.port_or_known_default().unwrap_or(3128);
        let mut tcp = self.tcp(phost, pport).await?;
        let mut request = format!("CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n");
        if !proxy.username().is_empty() {
            let user = percent_decode(proxy.username());
            let pass = percent_decode(proxy.password().unwrap_or(""));
            let basic = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
            request.push_str(&format!("Proxy-Authorization: Basic {basic}\r\n"));
        }
        request.push_str("\r\n");
        tcp.write_all(request.as_bytes()).await?;
        // Read the proxy's answer up to the blank line, byte-exact so that nothing of the
        // tunnel that follows is swallowed.
        let mut reader = BufReader::with_capacity(1, &mut tcp);
        let mut status_line = String::new();
        reader.read_line(&mut status_line).await?;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).await? == 0 {
                return Err(ConnectError::Proxy(
                    "the proxy closed the connection".into(),
                ));
            }
            if line == "\r\n" || line == "\n" {
                break;
            }
        }
        let code = status_line.split_whitespace().nth(1).unwrap_or("");
        if code != "200" {
            return Err(ConnectError::Proxy(status_line.trim().to_owned()));
        }
        Ok(tcp)
    }
}

fn parse_proxy(p: &str) -> Result<Url, ConnectError> {
    let url = Url::parse(p)
        .map_err(|e| ConnectError::Setup(format!("proxy {}: {e}", ferry_proto::redact_url(p))))?;
    if url.scheme() != "http" {
        return Err(ConnectError::Setup(format!(
            "proxy {}: the WebSocket transport tunnels through http:// proxies only (use transport = \"poll\" for others)",
            ferry_proto::redact_url(p)
        )));
    }
    Ok(url)
}

/// `HTTPS_PROXY` (for wss) or `HTTP_PROXY` (for ws), unless `NO_PROXY` names the host.
fn env_proxy(url: &Url) -> Result<Option<Url>, ConnectError> {
    let var = |names: &[&str]| {
        names
            .iter()
            .find_map(|n| std::env::var(n).ok().filter(|v| !v.is_empty()))
    };
    let proxy = if url.scheme() == "wss" {
        var(&["HTTPS_PROXY", "https_proxy"])
    } else {
        var(&["HTTP_PROXY", "http_proxy"])
    };
    let Some(proxy) = proxy else { return Ok(None) };
    let host = url.host_str().unwrap_or("");
    if let Some(no) = var(&["NO_PROXY", "no_proxy"])
        && no.split(',').map(str::trim).any(|n| {
            !n.is_empty()
                && (n == "*"
                    || host == n.trim_start_matches('.')
                    || host.ends_with(&format!(".{}", n.trim_start_matches('.'))))
        })
    {
        return Ok(None);
    }
    parse_proxy(&proxy).map(Some)
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_encoded_proxy_credentials_are_decoded() {
        assert_eq!(percent_decode("p%40ss%3Aword"), "p@ss:word");
        assert_eq!(percent_decode("plain"), "plain");
        assert_eq!(percent_decode("bad%zz"), "bad%zz");
    }

    #[test]
    fn the_websocket_url_follows_the_hub_url_scheme() {
        let tls = tls_config(None).unwrap();
        let t = WsTarget::new("https://hub.example:8443/", tls.clone(), None).unwrap();
        assert_eq!(t.url().as_str(), "wss://hub.example:8443/api/v1/agent/ws");
        let t = WsTarget::new("http://127.0.0.1:9", tls, None).unwrap();
        assert_eq!(t.url().as_str(), "ws://127.0.0.1:9/api/v1/agent/ws");
    }

    #[test]
    fn only_http_proxies_can_carry_the_websocket() {
        let tls = tls_config(None).unwrap();
        let err = WsTarget::new("https://h", tls, Some("socks5://u:secret@p:1080"))
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("http://"), "{err}");
        assert!(!err.contains("secret"), "the password must not leak: {err}");
    }
}
