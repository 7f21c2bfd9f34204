//! The connector's configuration file (TOML). `ferry connector register --write-config`
//! writes one with mode 0600, because it holds the connector's secret.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectorConfig {
    /// The hub's base URL, e.g. `https://ferry.example.org:8443`.
    pub hub_url: String,
    /// The remote ID the hub gave at registration.
    pub remote_id: Uuid,
    /// The secret the hub showed once at registration (or rotation).
    pub secret: String,
    /// An extra CA certificate (PEM) to trust besides the system roots, for hubs with a
    /// private CA.
    #[serde(default)]
    pub ca_cert: Option<PathBuf>,
    /// HTTP(S) proxy URL, credentials allowed (`http://user:pass@proxy:3128`). Without it, the
    /// usual `HTTPS_PROXY` / `HTTP_PROXY` / `NO_PROXY` variables apply. `NO_PROXY` applies
    /// to this proxy too.
    #[serde(default)]
    pub proxy: Option<String>,
    /// How long the hub may hold a long poll (seconds, 1–55). Keep it below the idle timeout
    /// of any proxy on the way.
    #[serde(default = "default_hold")]
    pub hold_secs: u32,
    /// Fallback for proxies that cut held requests: when set (seconds), the connector asks
    /// without holding and waits this long between empty answers (the old 10 s behaviour).
    #[serde(default)]
    pub poll_interval_secs: Option<u32>,
    /// Longest pause between retries when the hub is unreachable (seconds).
    #[serde(default = "default_max_backoff")]
    pub max_backoff_secs: u32,
    /// Where jobs unpack and stage files.
    #[serde(default = "default_work_dir")]
    pub work_dir: PathBuf,
    /// On SIGINT/SIGTERM, how long a running job may take to finish before its lease is
    /// released back to the hub (seconds).
    #[serde(default = "default_grace")]
    pub shutdown_grace_secs: u32,
    /// How push scripts run: `powershell` (Windows PowerShell with the ConfigMgr console; the
    /// default on Windows) or `emulator` (the built-in emulated site; the default elsewhere).
    #[serde(default)]
    pub backend: Option<Backend>,
    /// The emulated site's folder (backend `emulator`). Default: `<work_dir>/site`.
    #[serde(default)]
    pub emulator_site: Option<PathBuf>,
    /// Where packages are unpacked for ConfigMgr to read, as a local path. Default: the
    /// site's share path on Windows, `<work_dir>/share` elsewhere.
    #[serde(default)]
    pub share_dir: Option<PathBuf>,
    /// The PowerShell executable (backend `powershell`).
    #[serde(default = "default_powershell")]
    pub powershell: PathBuf,
    /// A push script running longer than this is killed and the job fails (seconds).
    #[serde(default = "default_script_timeout")]
    pub script_timeout_secs: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    Powershell,
    Emulator,
}

impl ConnectorConfig {
    pub fn backend(&self) -> Backend {
        self.backend.unwrap_or(if cfg!(windows) {
            Backend::Powershell
        } else {
            Backend::Emulator
        })
    }

    pub fn emulator_site(&self) -> PathBuf {
        self.emulator_site
            .clone()
            .unwrap_or_else(|| self.work_dir.join("site"))
    }
}

fn default_powershell() -> PathBuf {
    PathBuf::from("powershell.exe")
}
fn default_script_timeout() -> u32 {
    3600
}

// The secret must never reach a log, so Debug is written by hand.
impl std::fmt::Debug for ConnectorConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectorConfig")
            .field("hub_url", &self.hub_url)
            .field("remote_id", &self.remote_id)
            .field("secret", &"<redacted>")
            .field("ca_cert", &self.ca_cert)
            .field("proxy", &self.proxy.as_ref().map(|p| redact_url(p)))
            .field("hold_secs", &self.hold_secs)
            .field("poll_interval_secs", &self.poll_interval_secs)
            .field("max_backoff_secs", &self.max_backoff_secs)
            .field("work_dir", &self.work_dir)
            .field("shutdown_grace_secs", &self.shutdown_grace_secs)
            .field("backend", &self.backend)
            .field("emulator_site", &self.emulator_site)
            .field("share_dir", &self.share_dir)
            .field("powershell", &self.powershell)
            .field("script_timeout_secs", &self.script_timeout_secs)
            .finish()
    }
}

fn default_hold() -> u32 {
    25
}
fn default_max_backoff() -> u32 {
    60
}
fn default_work_dir() -> PathBuf {
    PathBuf::from("ferry-connector-work")
}
fn default_grace() -> u32 {
    10
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

impl ConnectorConfig {
    pub fn new(hub_url: String, remote_id: Uuid, secret: String) -> Self {
        ConnectorConfig {
            hub_url,
            remote_id,
            secret,
            ca_cert: None,
            proxy: None,
            hold_secs: default_hold(),
            poll_interval_secs: None,
            max_backoff_secs: default_max_backoff(),
            work_dir: default_work_dir(),
            shutdown_grace_secs: default_grace(),
            backend: None,
            emulator_site: None,
            share_dir: None,
            powershell: default_powershell(),
            script_timeout_secs: default_script_timeout(),
        }
    }

    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let invalid = |message: String| ConfigError::Invalid {
            path: path.to_owned(),
            message,
        };
        let config: ConnectorConfig = toml::from_str(&text).map_err(|e| invalid(e.to_string()))?;
        config.validate().map_err(invalid)?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<(), String> {
        if !(self.hub_url.starts_with("https://") || self.hub_url.starts_with("http://")) {
            return Err(
                "hub_url must start with https:// (or http:// for a local test hub)".into(),
            );
        }
        if !(1..=55).contains(&self.hold_secs) {
            return Err("hold_secs must be between 1 and 55".into());
        }
        if self.poll_interval_secs == Some(0) {
            return Err("poll_interval_secs must be at least 1 when set".into());
        }
        if self.max_backoff_secs == 0 {
            return Err("max_backoff_secs must be at least 1".into());
        }
        if self.secret.is_empty() {
            return Err("secret must not be empty".into());
        }
        Ok(())
    }

    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_default()
    }
}

/// `http://user:pass@host` → `http://user:***@host`, for logs.
pub use ferry_proto::redact_url;

impl ConnectorConfig {
    /// How `ferry-client` reaches the hub with this connector's credentials.
    pub fn client_config(&self) -> ferry_client::Config {
        ferry_client::Config {
            hub_url: self.hub_url.clone(),
            credential: Some(format!("{}:{}", self.remote_id, self.secret)),
            ca_cert: self.ca_cert.clone(),
            proxy: self.proxy.clone(),
            user_agent: Some(concat!("ferry-connector/", env!("CARGO_PKG_VERSION")).to_owned()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_shows_the_secret_or_proxy_password() {
        let mut c = ConnectorConfig::new("https://hub".into(), Uuid::nil(), "s3cr3t-value".into());
        c.proxy = Some("http://bob:hunter2@proxy:3128".into());
        let shown = format!("{c:?}");
        assert!(!shown.contains("s3cr3t-value"), "{shown}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("bob:***@proxy:3128"), "{shown}");
    }

    #[test]
    fn minimal_file_gets_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "hub_url = \"https://hub:8443\"\nremote_id = \"6f1c7f9e-8a53-4b0c-9d7e-1d2a3b4c5d6e\"\nsecret = \"x\"\n",
        )
        .unwrap();
        let c = ConnectorConfig::load(&path).unwrap();
        assert_eq!(c.hold_secs, 25);
        assert_eq!(c.poll_interval_secs, None);
    }

    #[test]
    fn hold_outside_one_to_fifty_five_is_refused() {
        let mut c = ConnectorConfig::new("https://hub".into(), Uuid::nil(), "x".into());
        c.hold_secs = 56;
        assert!(c.validate().unwrap_err().contains("hold_secs"));
    }
}
