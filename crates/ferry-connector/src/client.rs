//! The hub's connector API as typed calls. Owns TLS (system roots plus an optional extra CA),
//! proxies, timeouts and the credentials header; knows nothing about what jobs do.

use std::time::{Duration, Instant};

use ferry_proto::ApiError;
use ferry_proto::job::{Job, JobReport, LeaseRef, LeaseStatus, LeasedJob, ProgressReport};
use ferry_proto::package::{NewUpload, Package, Upload};
use reqwest::header::{AUTHORIZATION, HeaderValue};
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::config::{ConnectorConfig, redact_url};

/// Extra time a long poll may take beyond its hold before the client gives up on it.
const HOLD_MARGIN: Duration = Duration::from_secs(15);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach the hub: {0}")]
    Transport(#[from] reqwest::Error),
    #[error("hub refused the request ({status}, {code}): {message}")]
    Api {
        status: StatusCode,
        code: String,
        message: String,
    },
    #[error("setting up the HTTP client: {0}")]
    Setup(String),
}

impl ClientError {
    /// The hub said no to this lease for good (stale, finished, gone): stop working on the job.
    pub fn lease_lost(&self) -> bool {
        matches!(self, ClientError::Api { status, .. } if *status == StatusCode::CONFLICT || *status == StatusCode::NOT_FOUND)
    }

    /// Retrying cannot help (bad credentials, disabled, bad request).
    pub fn is_permanent(&self) -> bool {
        matches!(self, ClientError::Api { status, .. } if status.is_client_error())
    }
}

#[derive(Clone)]
pub struct HubClient {
    http: reqwest::Client,
    base: String,
    auth: HeaderValue,
}

impl HubClient {
    pub fn new(config: &ConnectorConfig) -> Result<Self, ClientError> {
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("ferry-connector/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            .min_tls_version(reqwest::tls::Version::TLS_1_2)
            .tcp_keepalive(Duration::from_secs(30));
        if let Some(path) = &config.ca_cert {
            let pem = std::fs::read(path).map_err(|e| {
                ClientError::Setup(format!("reading CA certificate {}: {e}", path.display()))
            })?;
            for cert in reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                ClientError::Setup(format!("CA certificate {}: {e}", path.display()))
            })? {
                builder = builder.add_root_certificate(cert);
            }
        }
        if let Some(proxy) = &config.proxy {
            let p = reqwest::Proxy::all(proxy.as_str())
                .map_err(|e| ClientError::Setup(format!("proxy {}: {e}", redact_url(proxy))))?
                .no_proxy(reqwest::NoProxy::from_env());
            builder = builder.proxy(p);
        }
        let http = builder
            .build()
            .map_err(|e| ClientError::Setup(e.to_string()))?;
        let mut auth =
            HeaderValue::from_str(&format!("Bearer {}:{}", config.remote_id, config.secret))
                .map_err(|_| {
                    ClientError::Setup(
                        "the secret contains characters not allowed in a header".into(),
                    )
                })?;
        auth.set_sensitive(true);
        Ok(HubClient {
            http,
            base: config.hub_url.trim_end_matches('/').to_owned(),
            auth,
        })
    }

    /// Asks for the next job, letting the hub hold the request up to `hold` seconds.
    pub async fn next_job(&self, hold: u32) -> Result<Option<LeasedJob>, ClientError> {
        let timeout = Duration::from_secs(u64::from(hold)) + HOLD_MARGIN;
        let response = self
            .http
            .get(format!(
                "{}/api/v1/connector/jobs/next?hold={hold}",
                self.base
            ))
            .header(AUTHORIZATION, self.auth.clone())
            .timeout(timeout)
            .send()
            .await?;
        if response.status() == StatusCode::NO_CONTENT {
            return Ok(None);
        }
        Self::decode(response).await.map(Some)
    }

    pub async fn renew(&self, job: Uuid, lease_token: Uuid) -> Result<LeaseStatus, ClientError> {
        self.call(
            Method::POST,
            &format!("/api/v1/connector/jobs/{job}/lease"),
            &LeaseRef { lease_token },
        )
        .await
    }

    pub async fn progress(
        &self,
        job: Uuid,
        report: &ProgressReport,
    ) -> Result<LeaseStatus, ClientError> {
        self.call(
            Method::POST,
            &format!("/api/v1/connector/jobs/{job}/progress"),
            report,
        )
        .await
    }

    pub async fn report(&self, job: Uuid, report: &JobReport) -> Result<Job, ClientError> {
        self.call(
            Method::POST,
            &format!("/api/v1/connector/jobs/{job}/result"),
            report,
        )
        .await
    }

    pub async fn release(&self, job: Uuid, lease_token: Uuid) -> Result<(), ClientError> {
        let response = self
            .http
            .post(format!("{}/api/v1/connector/jobs/{job}/release", self.base))
            .header(AUTHORIZATION, self.auth.clone())
            .timeout(REQUEST_TIMEOUT)
            .json(&LeaseRef { lease_token })
            .send()
            .await?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(Self::api_error(response).await)
        }
    }

    /// The package's bytes from `offset` on (a `Range` request when `offset > 0`).
    pub async fn package_content(
        &self,
        package: Uuid,
        offset: u64,
    ) -> Result<reqwest::Response, ClientError> {
        let mut request = self
            .http
            .get(format!("{}/api/v1/packages/{package}/content", self.base))
            .header(AUTHORIZATION, self.auth.clone());
        if offset > 0 {
            request = request.header(reqwest::header::RANGE, format!("bytes={offset}-"));
        }
        let response = request.send().await?;
        if response.status().is_success() {
            Ok(response)
        } else {
            Err(Self::api_error(response).await)
        }
    }

    /// Uploads `path` as a package with the hub's resumable upload: opens a session with the
    /// file's size and SHA-256, sends 8 MiB ranges, and after a failure asks the hub how much
    /// arrived and goes on from there.
    pub async fn upload_package(
        &self,
        path: &std::path::Path,
        filename: &str,
        sha256: &str,
    ) -> Result<Package, ClientError> {
        use tokio::io::{AsyncReadExt, AsyncSeekExt};
        const CHUNK: usize = 8 * 1024 * 1024;
        let setup = |e: std::io::Error| ClientError::Setup(format!("{}: {e}", path.display()));
        let mut file = tokio::fs::File::open(path).await.map_err(setup)?;
        let size = file.metadata().await.map_err(setup)?.len();
        let new = NewUpload {
            filename: filename.to_owned(),
            size,
            sha256: Some(sha256.to_owned()),
        };
        let mut upload: Upload = self.call(Method::POST, "/api/v1/uploads", &new).await?;
        let mut failures = 0u32;
        let mut buf = vec![0u8; CHUNK];
        while upload.received < size {
            file.seek(std::io::SeekFrom::Start(upload.received))
                .await
                .map_err(setup)?;
            let want = CHUNK.min((size - upload.received) as usize);
            file.read_exact(&mut buf[..want]).await.map_err(setup)?;
            let sent = self
                .http
                .put(format!(
                    "{}/api/v1/uploads/{}?offset={}",
                    self.base, upload.id, upload.received
                ))
                .header(AUTHORIZATION, self.auth.clone())
                .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
                .timeout(Duration::from_secs(300))
                .body(buf[..want].to_vec())
                .send()
                .await;
            let outcome = match sent {
                Ok(r) => Self::decode::<Upload>(r).await,
                Err(e) => Err(e.into()),
            };
            match outcome {
                Ok(u) => upload = u,
                Err(e)
                    if e.is_permanent()
                        && !matches!(&e, ClientError::Api { code, .. } if code == "offset_mismatch") =>
                {
                    return Err(e);
                }
                Err(e) => {
                    failures += 1;
                    if failures > 10 {
                        return Err(e);
                    }
                    tokio::time::sleep(Duration::from_millis(250 * u64::from(failures))).await;
                    upload = self.get(&format!("/api/v1/uploads/{}", upload.id)).await?;
                }
            }
        }
        self.call(
            Method::POST,
            &format!("/api/v1/uploads/{}/complete", upload.id),
            &serde_json::json!({}),
        )
        .await
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .header(AUTHORIZATION, self.auth.clone())
            .timeout(REQUEST_TIMEOUT)
            .send()
            .await?;
        Self::decode(response).await
    }

    /// One round trip to `/healthz`, timed.
    pub async fn ping(&self) -> Result<Duration, ClientError> {
        let start = Instant::now();
        let response = self
            .http
            .get(format!("{}/healthz", self.base))
            .timeout(REQUEST_TIMEOUT)
            .send()
            .await?;
        response.error_for_status()?.bytes().await?;
        Ok(start.elapsed())
    }

    async fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        let response = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header(AUTHORIZATION, self.auth.clone())
            .timeout(REQUEST_TIMEOUT)
            .json(body)
            .send()
            .await?;
        Self::decode(response).await
    }

    async fn decode<T: DeserializeOwned>(response: reqwest::Response) -> Result<T, ClientError> {
        if !response.status().is_success() {
            return Err(Self::api_error(response).await);
        }
        Ok(response.json::<T>().await?)
    }

    async fn api_error(response: reqwest::Response) -> ClientError {
        let status = response.status();
        let body = response.bytes().await.unwrap_or_default();
        match serde_json::from_slice::<ApiError>(&body) {
            Ok(e) => ClientError::Api {
                status,
                code: e.code,
                message: e.message,
            },
            Err(_) => ClientError::Api {
                status,
                code: "http".into(),
                message: String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned(),
            },
        }
    }
}
