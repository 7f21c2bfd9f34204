//! A small client for the hub's admin API, used by the CLI, the demo and the benchmarks.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use ferry_proto::ApiError;
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Where the hub is and how to prove we are an administrator.
#[derive(Debug, Clone, clap::Args)]
pub struct HubArgs {
    /// Hub URL. Defaults to the `hub.url` file in --data-dir, then https://127.0.0.1:8443.
    #[arg(long, env = "FERRY_HUB")]
    pub hub: Option<String>,
    /// Admin token. Defaults to the `admin.token` file in --data-dir.
    #[arg(long, env = "FERRY_ADMIN_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// The hub's data dir, to read the admin token and URL from (on the hub's own machine).
    #[arg(long, env = "FERRY_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Extra CA certificate (PEM) to trust for the hub's HTTPS.
    #[arg(long, env = "FERRY_CA_CERT")]
    pub ca_cert: Option<PathBuf>,
}

#[derive(Clone)]
pub struct AdminClient {
    http: reqwest::Client,
    pub base: String,
    token: String,
}

impl AdminClient {
    pub fn from_args(args: &HubArgs) -> anyhow::Result<Self> {
        let dir = args.data_dir.as_deref();
        let base = match (&args.hub, dir) {
            (Some(h), _) => h.clone(),
            (None, Some(d)) => read_trimmed(&d.join(ferry_hub::URL_FILE))?,
            (None, None) => "https://127.0.0.1:8443".to_owned(),
        };
        let token = match (&args.token, dir) {
            (Some(t), _) => t.clone(),
            (None, Some(d)) => read_trimmed(&d.join(ferry_hub::ADMIN_TOKEN_FILE))?,
            (None, None) => bail!(
                "no admin token: pass --token, set FERRY_ADMIN_TOKEN, or point --data-dir at the hub's data dir"
            ),
        };
        Self::new(&base, &token, args.ca_cert.as_deref())
    }

    pub fn new(base: &str, token: &str, ca_cert: Option<&Path>) -> anyhow::Result<Self> {
        let mut builder = reqwest::Client::builder().connect_timeout(Duration::from_secs(10));
        if let Some(path) = ca_cert {
            let pem = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            for cert in reqwest::Certificate::from_pem_bundle(&pem)? {
                builder = builder.add_root_certificate(cert);
            }
        }
        Ok(AdminClient {
            http: builder.build()?,
            base: base.trim_end_matches('/').to_owned(),
            token: token.to_owned(),
        })
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        self.send::<(), T>(Method::GET, path, None).await
    }

    pub async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> anyhow::Result<T> {
        self.send(Method::POST, path, Some(body)).await
    }

    pub async fn patch<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> anyhow::Result<T> {
        self.send(Method::PATCH, path, Some(body)).await
    }

    /// A plain-text GET (`/metrics`).
    pub async fn get_text(&self, path: &str) -> anyhow::Result<String> {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .timeout(Duration::from_secs(60))
            .send()
            .await
            .with_context(|| format!("GET {}{path}", self.base))?;
        Ok(response.error_for_status()?.text().await?)
    }

    pub async fn delete(&self, path: &str) -> anyhow::Result<()> {
        self.send::<(), serde_json::Value>(Method::DELETE, path, None)
            .await
            .map(|_| ())
    }

    /// PUT of a streamed body (upload ranges of any length).
    pub async fn put_body<T: DeserializeOwned>(
        &self,
        path: &str,
        body: reqwest::Body,
    ) -> anyhow::Result<T> {
        let response = self
            .http
            .put(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .body(body)
            .send()
            .await
            .with_context(|| format!("PUT {}{path}", self.base))?;
        Self::decode(response).await
    }

    async fn send<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> anyhow::Result<T> {
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .timeout(Duration::from_secs(60));
        if let Some(b) = body {
            request = request.json(b);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("{method} {}{path}", self.base))?;
        Self::decode(response).await
    }

    async fn decode<T: DeserializeOwned>(response: reqwest::Response) -> anyhow::Result<T> {
        let status = response.status();
        if status.is_success() {
            if status == StatusCode::NO_CONTENT {
                return Ok(serde_json::from_value(serde_json::Value::Null)?);
            }
            return Ok(response.json().await?);
        }
        let bytes = response.bytes().await.unwrap_or_default();
        match serde_json::from_slice::<ApiError>(&bytes) {
            Ok(e) => bail!("hub answered {status} ({}): {}", e.code, e.message),
            Err(_) => bail!("hub answered {status}"),
        }
    }
}

fn read_trimmed(path: &Path) -> anyhow::Result<String> {
    Ok(std::fs::read_to_string(path)
        .with_context(|| format!("reading {}", path.display()))?
        .trim()
        .to_owned())
}
