//! # ferry-client
//!
//! The one client of the hub's HTTP API, shared by the CLI, the connector, the agent, the demo
//! and the benchmarks. It owns what every caller needs and none should write twice:
//!
//! - TLS 1.2+ with the platform's roots plus an optional extra CA (a private PKI), an HTTP(S)
//!   proxy with credentials (or `HTTPS_PROXY`/`NO_PROXY`), timeouts;
//! - the credential, in an `Authorization` header marked sensitive (never logged);
//! - error decoding: every refusal becomes [`Error::Api`] with a typed
//!   [`ErrorCode`], a paced-admission `503` becomes [`Error::Deferred`];
//! - the one rule for which failures are worth retrying ([`Error::is_transient`]);
//! - resumable, verified transfers ([`transfer`]): package uploads and downloads with
//!   progress callbacks.
//!
//! What it does not know: what jobs, operations or packages mean. Typed calls for each kind
//! of caller are thin methods in [`connector`] and [`agent`].

pub mod agent;
pub mod connector;
pub mod transfer;

use std::path::PathBuf;
use std::time::Duration;

use ferry_proto::{ApiError, ErrorCode};
use reqwest::header::{AUTHORIZATION, HeaderValue};
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use reqwest;

/// Default time a request may take (long polls and transfers set their own).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Where the hub is and how to reach it.
#[derive(Clone, Default)]
pub struct Config {
    /// `https://hub.example.org:8443` (a trailing `/` is ignored).
    pub hub_url: String,
    /// The bearer credential: an API key, `<remote id>:<secret>` or a device token.
    pub credential: Option<String>,
    /// Extra CA certificates (PEM) to trust besides the platform's.
    pub ca_cert: Option<PathBuf>,
    /// `http://user:password@proxy:3128`; `None` uses `HTTPS_PROXY`/`NO_PROXY` if set.
    pub proxy: Option<String>,
    /// e.g. `ferry-connector/0.1.0`.
    pub user_agent: Option<String>,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("hub_url", &self.hub_url)
            .field("credential", &self.credential.as_ref().map(|_| "***"))
            .field("ca_cert", &self.ca_cert)
            .field("proxy", &self.proxy.as_deref().map(ferry_proto::redact_url))
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Setup(String),
    #[error("cannot reach the hub: {0}")]
    Transport(#[from] reqwest::Error),
    #[error("the hub refused ({status}, {code}): {message}")]
    Api {
        status: StatusCode,
        code: ErrorCode,
        message: String,
    },
    /// Paced admission: try again after this many milliseconds.
    #[error("the hub asked to come back in {0} ms")]
    Deferred(u64),
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    /// A complete transfer whose bytes are not the ones expected; nothing was kept.
    #[error("the transfer hashes to {actual}, not the expected {expected}; it was discarded")]
    HashMismatch { expected: String, actual: String },
    /// An upload that stopped: what stopped it, and the session that can be continued.
    #[error("{source} (upload {upload}; continue it with --resume {upload})")]
    Upload {
        upload: uuid::Uuid,
        source: Box<Error>,
    },
}

impl Error {
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let context = context.into();
        move |source| Error::Io { context, source }
    }

    /// The fault itself, under any context added on the way up.
    fn root(&self) -> &Error {
        match self {
            Error::Upload { source, .. } => source.root(),
            other => other,
        }
    }

    /// The hub's error code, for refusals.
    pub fn code(&self) -> Option<ErrorCode> {
        match self.root() {
            Error::Api { code, .. } => Some(*code),
            Error::Deferred(_) => Some(ErrorCode::AdmissionDeferred),
            _ => None,
        }
    }

    pub fn status(&self) -> Option<StatusCode> {
        match self.root() {
            Error::Api { status, .. } => Some(*status),
            Error::Transport(e) => e.status(),
            _ => None,
        }
    }

    /// Bad, revoked or insufficient credentials: retrying soon cannot help.
    pub fn is_auth(&self) -> bool {
        matches!(self.root(), Error::Api { status, .. }
            if *status == StatusCode::UNAUTHORIZED || *status == StatusCode::FORBIDDEN)
    }

    /// The hub said no to this lease for good (stale, finished, gone): stop working on the job.
    pub fn lease_lost(&self) -> bool {
        matches!(self.root(), Error::Api { status, .. }
            if *status == StatusCode::CONFLICT || *status == StatusCode::NOT_FOUND)
    }

    /// Whether the same request may succeed later: the hub was away, restarting, overloaded
    /// or asked us to wait (connection refused or reset, timeouts, truncated bodies, `408`,
    /// `429`, `5xx`, paced admission). Everything else — a refusal the hub means (`4xx`), a
    /// hash mismatch after a complete transfer, a local file error — is permanent.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Transport(_) | Error::Deferred(_) => true,
            // A caller at its cap of open uploads waits for its own uploads to end, which
            // retrying cannot bring about.
            Error::Api { code, .. } if *code == ErrorCode::TooManyUploads => false,
            Error::Api { status, .. } => {
                status.is_server_error()
                    || *status == StatusCode::REQUEST_TIMEOUT
                    || *status == StatusCode::TOO_MANY_REQUESTS
            }
            Error::Setup(_) | Error::Io { .. } | Error::HashMismatch { .. } => false,
            Error::Upload { source, .. } => source.is_transient(),
        }
    }

    /// Whether the hub answered (as opposed to being unreachable): a transient fault the hub
    /// keeps answering with is its own trouble, not the network's.
    pub fn hub_answered(&self) -> bool {
        matches!(self.root(), Error::Api { .. } | Error::Deferred(_))
    }

    /// The opposite of [`Error::is_transient`].
    pub fn is_permanent(&self) -> bool {
        !self.is_transient()
    }
}

/// A client of the hub's API with one credential. Cheap to clone (one connection pool).
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    auth: Option<HeaderValue>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("base", &self.base).finish()
    }
}

/// Builds the HTTP client every call uses: TLS 1.2+, the extra CA, the proxy.
pub fn http_client(config: &Config) -> Result<reqwest::Client, Error> {
    let mut builder = reqwest::Client::builder()
        .user_agent(
            config
                .user_agent
                .clone()
                .unwrap_or_else(|| concat!("ferry/", env!("CARGO_PKG_VERSION")).to_owned()),
        )
        .connect_timeout(Duration::from_secs(10))
        .min_tls_version(reqwest::tls::Version::TLS_1_2)
        .tcp_keepalive(Duration::from_secs(30))
        // Below the hub's `connection_idle_secs` (30 s by default): a pooled connection is
        // dropped here before the hub closes it, so a request never races the close.
        .pool_idle_timeout(Duration::from_secs(20));
    if let Some(path) = &config.ca_cert {
        let pem = std::fs::read(path)
            .map_err(|e| Error::Setup(format!("reading CA certificate {}: {e}", path.display())))?;
        for cert in reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| Error::Setup(format!("CA certificate {}: {e}", path.display())))?
        {
            builder = builder.add_root_certificate(cert);
        }
    }
    if let Some(proxy) = &config.proxy {
        let p = reqwest::Proxy::all(proxy.as_str())
            .map_err(|e| Error::Setup(format!("proxy {}: {e}", ferry_proto::redact_url(proxy))))?
            .no_proxy(reqwest::NoProxy::from_env());
        builder = builder.proxy(p);
    }
    builder.build().map_err(|e| Error::Setup(e.to_string()))
}

impl Client {
    pub fn new(config: &Config) -> Result<Self, Error> {
        Self::with_http(
            http_client(config)?,
            &config.hub_url,
            config.credential.as_deref(),
        )
    }

    /// A client over an existing connection pool (many identities sharing one pool, as the
    /// load generator's simulated agents do).
    pub fn with_http(
        http: reqwest::Client,
        hub_url: &str,
        credential: Option<&str>,
    ) -> Result<Self, Error> {
        let auth = credential
            .map(|c| {
                let mut v = HeaderValue::from_str(&format!("Bearer {c}")).map_err(|_| {
                    Error::Setup("the credential has characters not allowed in a header".into())
                })?;
                v.set_sensitive(true);
                Ok::<_, Error>(v)
            })
            .transpose()?;
        Ok(Client {
            http,
            base: hub_url.trim_end_matches('/').to_owned(),
            auth,
        })
    }

    /// The same hub and connection pool with another credential.
    pub fn with_credential(&self, credential: &str) -> Result<Self, Error> {
        Self::with_http(self.http.clone(), &self.base, Some(credential))
    }

    /// The hub's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// A request to `path` (which starts with `/`) with the credential and the default
    /// timeout; callers may set another.
    pub fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let mut r = self
            .http
            .request(method, format!("{}{path}", self.base))
            .timeout(REQUEST_TIMEOUT);
        if let Some(auth) = &self.auth {
            r = r.header(AUTHORIZATION, auth.clone());
        }
        r
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, Error> {
        decode(self.request(Method::GET, path).send().await?).await
    }

    pub async fn post<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, Error> {
        decode(self.request(Method::POST, path).json(body).send().await?).await
    }

    pub async fn patch<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, Error> {
        decode(self.request(Method::PATCH, path).json(body).send().await?).await
    }

    pub async fn delete(&self, path: &str) -> Result<(), Error> {
        check(self.request(Method::DELETE, path).send().await?)
            .await
            .map(drop)
    }

    /// A plain-text GET (`/metrics`).
    pub async fn get_text(&self, path: &str) -> Result<String, Error> {
        Ok(check(self.request(Method::GET, path).send().await?)
            .await?
            .text()
            .await?)
    }
}

/// The answer as `T` (a `204` reads as JSON `null`), or the hub's refusal.
pub async fn decode<T: DeserializeOwned>(response: reqwest::Response) -> Result<T, Error> {
    let response = check(response).await?;
    if response.status() == StatusCode::NO_CONTENT {
        return serde_json::from_value(serde_json::Value::Null)
            .map_err(|e| Error::Setup(format!("the hub answered 204 where a body was due: {e}")));
    }
    Ok(response.json().await?)
}

/// The response if it is a success, else the hub's refusal as an [`Error`].
pub async fn check(response: reqwest::Response) -> Result<reqwest::Response, Error> {
    if response.status().is_success() {
        Ok(response)
    } else {
        Err(api_error(response).await)
    }
}

async fn api_error(response: reqwest::Response) -> Error {
    let status = response.status();
    if status == StatusCode::SERVICE_UNAVAILABLE
        && let Some(ms) = retry_after_ms(response.headers())
    {
        return Error::Deferred(ms);
    }
    let body = response.bytes().await.unwrap_or_default();
    match serde_json::from_slice::<ApiError>(&body) {
        Ok(e) => Error::Api {
            status,
            code: e.code,
            message: e.message,
        },
        Err(_) => Error::Api {
            status,
            code: ErrorCode::Unknown,
            message: String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned(),
        },
    }
}

/// The milliseconds a `503` asks the caller to wait (our header, else `Retry-After`).
pub fn retry_after_ms(headers: &reqwest::header::HeaderMap) -> Option<u64> {
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    get(ferry_proto::agent::RETRY_AFTER_MS_HEADER)
        .and_then(|v| v.parse::<u64>().ok())
        .or_else(|| {
            get("retry-after")
                .and_then(|v| v.parse::<u64>().ok())
                .map(|s| s.saturating_mul(1000))
        })
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(status: u16) -> Error {
        Error::Api {
            status: StatusCode::from_u16(status).unwrap(),
            code: ErrorCode::Unknown,
            message: String::new(),
        }
    }

    #[test]
    fn server_errors_and_rate_limits_are_transient_refusals_are_not() {
        for s in [408, 429, 500, 502, 503, 504] {
            assert!(api(s).is_transient(), "{s}");
        }
        for s in [400, 401, 403, 404, 409, 413, 422] {
            assert!(api(s).is_permanent(), "{s}");
        }
        assert!(Error::Deferred(10).is_transient());
        let mismatch = Error::HashMismatch {
            expected: "a".into(),
            actual: "b".into(),
        };
        assert!(mismatch.is_permanent());
    }

    #[test]
    fn config_debug_hides_the_credential_and_proxy_password() {
        let c = Config {
            hub_url: "https://hub".into(),
            credential: Some("fk_secret".into()),
            proxy: Some("http://u:pw@proxy:3128".into()),
            ..Config::default()
        };
        let text = format!("{c:?}");
        assert!(
            !text.contains("fk_secret") && !text.contains("pw@"),
            "{text}"
        );
    }
}
