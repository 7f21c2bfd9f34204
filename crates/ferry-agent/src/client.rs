//! The agent's HTTP calls to the hub (everything but the WebSocket): enrolment, the long-poll
//! transport, policy, package downloads and token rotation.

use std::path::Path;
use std::time::Duration;

use ferry_proto::ApiError;
use ferry_proto::agent::{
    AgentMessage, EnrollRequest, EnrollResponse, Inventory, Policy, RETRY_AFTER_MS_HEADER,
    TokenResponse,
};
use ferry_proto::ops::PackageRef;
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, HeaderValue};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use crate::config::AgentConfig;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{0}")]
    Setup(String),
    #[error("cannot reach the hub: {0}")]
    Http(#[from] reqwest::Error),
    #[error("the hub refused ({status}, {code}): {message}")]
    Api {
        status: StatusCode,
        code: String,
        message: String,
    },
    /// Paced admission: try again after this many milliseconds.
    #[error("the hub asked to come back in {0} ms")]
    Deferred(u64),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("package {0}: the download does not match its SHA-256")]
    HashMismatch(uuid::Uuid),
}

impl ClientError {
    /// The hub's error code, for API errors.
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Api { code, .. } => Some(code),
            _ => None,
        }
    }

    /// Bad or revoked credentials: retrying soon cannot help.
    pub fn is_auth(&self) -> bool {
        matches!(self, ClientError::Api { status, .. }
            if *status == StatusCode::UNAUTHORIZED || *status == StatusCode::FORBIDDEN)
    }
}

/// The milliseconds a `503` asks the agent to wait (our header, else `Retry-After`).
pub fn retry_after_ms(headers: &reqwest::header::HeaderMap) -> Option<u64> {
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    get(RETRY_AFTER_MS_HEADER)
        .and_then(|v| v.parse::<u64>().ok())
        .or_else(|| {
            get("retry-after")
                .and_then(|v| v.parse::<u64>().ok())
                .map(|s| s.saturating_mul(1000))
        })
}

/// Builds the HTTP client every agent call uses: TLS 1.2+, the extra CA, the proxy.
pub fn http_client(config: &AgentConfig) -> Result<reqwest::Client, ClientError> {
    let mut builder = reqwest::Client::builder()
        .user_agent(concat!("ferry-agent/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(10))
        .min_tls_version(reqwest::tls::Version::TLS_1_2)
        .tcp_keepalive(Duration::from_secs(30));
    if let Some(path) = &config.ca_cert {
        let pem = std::fs::read(path).map_err(|e| {
            ClientError::Setup(format!("reading CA certificate {}: {e}", path.display()))
        })?;
        for cert in reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| ClientError::Setup(format!("CA certificate {}: {e}", path.display())))?
        {
            builder = builder.add_root_certificate(cert);
        }
    }
    if let Some(proxy) = &config.proxy {
        let p = reqwest::Proxy::all(proxy.as_str())
            .map_err(|e| {
                ClientError::Setup(format!("proxy {}: {e}", ferry_proto::redact_url(proxy)))
            })?
            .no_proxy(reqwest::NoProxy::from_env());
        builder = builder.proxy(p);
    }
    builder
        .build()
        .map_err(|e| ClientError::Setup(e.to_string()))
}

#[derive(Clone)]
pub struct HubHttp {
    http: reqwest::Client,
    base: String,
    auth: Option<HeaderValue>,
}

async fn api_error(response: reqwest::Response) -> ClientError {
    let status = response.status();
    if status == StatusCode::SERVICE_UNAVAILABLE
        && let Some(ms) = retry_after_ms(response.headers())
    {
        return ClientError::Deferred(ms);
    }
    let text = response.text().await.unwrap_or_default();
    match serde_json::from_str::<ApiError>(&text) {
        Ok(e) => ClientError::Api {
            status,
            code: e.code,
            message: e.message,
        },
        Err(_) => ClientError::Api {
            status,
            code: "http".into(),
            message: text.chars().take(200).collect(),
        },
    }
}

impl HubHttp {
    pub fn new(
        http: reqwest::Client,
        hub_url: &str,
        token: Option<&str>,
    ) -> Result<Self, ClientError> {
        let auth = match token {
            Some(t) => {
                let mut v = HeaderValue::from_str(&format!("Bearer {t}")).map_err(|_| {
                    ClientError::Setup(
                        "the device token has characters not allowed in a header".into(),
                    )
                })?;
                v.set_sensitive(true);
                Some(v)
            }
            None => None,
        };
        Ok(HubHttp {
            http,
            base: hub_url.trim_end_matches('/').to_owned(),
            auth,
        })
    }

    /// The same client with another token.
    pub fn with_token(&self, token: &str) -> Result<Self, ClientError> {
        HubHttp::new(self.http.clone(), &self.base, Some(token))
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let mut r = self.http.request(method, format!("{}{path}", self.base));
        if let Some(auth) = &self.auth {
            r = r.header(AUTHORIZATION, auth.clone());
        }
        r
    }

    pub async fn enroll(
        &self,
        secret: &str,
        inventory: Inventory,
    ) -> Result<EnrollResponse, ClientError> {
        let response = self
            .request(reqwest::Method::POST, "/api/v1/agent/enroll")
            .json(&EnrollRequest {
                secret: secret.to_owned(),
                inventory,
            })
            .timeout(Duration::from_secs(30))
            .send()
            .await?;
        if !response.status().is_success() {
            return Err(api_error(response).await);
        }
        Ok(response.json().await?)
    }

    /// One long poll: sends `messages`, returns what the hub has (waiting up to `hold`), each
    /// message as JSON still to be read (one unknown kind must not lose the others).
    pub async fn poll(
        &self,
        hold: u32,
        session: Option<u64>,
        messages: &[AgentMessage],
    ) -> Result<Vec<serde_json::Value>, ClientError> {
        let path = match session {
            Some(id) => format!("/api/v1/agent/poll?hold={hold}&session={id}"),
            None => format!("/api/v1/agent/poll?hold={hold}"),
        };
        let response = self
            .request(reqwest::Method::POST, &path)
            .json(messages)
            .timeout(Duration::from_secs(u64::from(hold) + 15))
            .send()
            .await?;
        if !response.status().is_success() {
            return Err(api_error(response).await);
        }
        Ok(response.json().await?)
    }

    pub async fn policy(&self) -> Result<Policy, ClientError> {
        let response = self
            .request(reqwest::Method::GET, "/api/v1/agent/policy")
            .timeout(Duration::from_secs(60))
            .send()
            .await?;
        if !response.status().is_success() {
            return Err(api_error(response).await);
        }
        Ok(response.json().await?)
    }

    pub async fn rotate_token(&self) -> Result<String, ClientError> {
        let response = self
            .request(reqwest::Method::POST, "/api/v1/agent/token")
            .timeout(Duration::from_secs(30))
            .send()
            .await?;
        if !response.status().is_success() {
            return Err(api_error(response).await);
        }
        Ok(response.json::<TokenResponse>().await?.token)
    }

    /// Downloads a package to `dest`, checking its size and SHA-256 as it streams.
    pub async fn download_package(&self, pkg: &PackageRef, dest: &Path) -> Result<(), ClientError> {
        let mut response = self
            .request(
                reqwest::Method::GET,
                &format!("/api/v1/agent/packages/{}/content", pkg.id),
            )
            .send()
            .await?;
        if !response.status().is_success() {
            return Err(api_error(response).await);
        }
        let mut file = tokio::fs::File::create(dest).await?;
        let mut hasher = Sha256::new();
        let mut received = 0u64;
        while let Some(chunk) = response.chunk().await? {
            received += chunk.len() as u64;
            if received > pkg.size {
                return Err(ClientError::HashMismatch(pkg.id));
            }
            hasher.update(&chunk);
            file.write_all(&chunk).await?;
        }
        file.flush().await?;
        let digest: String = hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        if received != pkg.size || digest != pkg.sha256 {
            return Err(ClientError::HashMismatch(pkg.id));
        }
        Ok(())
    }
}
