//! The agent's configuration (`agent.toml` in its data dir, written by `ferry agent enroll`)
//! and its device token (`device.token`, mode 0600, never in the TOML).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::exec::ExecSettings;

pub const CONFIG_FILE: &str = "agent.toml";
pub const TOKEN_FILE: &str = "device.token";

// Debug is written by hand below: the proxy URL may carry a password.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// The hub's base URL, e.g. `https://ferry.example.org:8443`.
    pub hub_url: String,
    /// An extra CA certificate (PEM) to trust besides the system roots.
    #[serde(default)]
    pub ca_cert: Option<PathBuf>,
    /// HTTP(S) proxy URL, credentials allowed (`http://user:pass@proxy:3128`), used for the
    /// WebSocket (HTTP CONNECT) and for every request.
    #[serde(default)]
    pub proxy: Option<String>,
    /// `auto` (WebSocket, falling back to long polling when the upgrade is refused),
    /// `websocket` or `poll`.
    #[serde(default)]
    pub transport: TransportChoice,
    /// Hold asked for in long-poll mode (seconds, 1–55).
    #[serde(default = "default_hold")]
    pub hold_secs: u32,
    /// For proxies that cut held requests (long-poll transport): poll without holding,
    /// this often (seconds).
    #[serde(default)]
    pub poll_interval_secs: Option<u32>,
    /// Longest pause between reconnection attempts (seconds).
    #[serde(default = "default_max_backoff")]
    pub max_backoff_secs: u32,
    /// Pause after the hub closed this session because another process uses the same token
    /// (seconds), so that two such processes do not take turns forever.
    #[serde(default = "default_replaced_backoff")]
    pub replaced_backoff_secs: u32,
    /// How often the inventory is collected again and sent when it changed (seconds).
    #[serde(default = "default_inventory_interval")]
    pub inventory_interval_secs: u32,
    /// Reported instead of the collected hostname (tests, and machines whose name lies).
    #[serde(default)]
    pub hostname: Option<String>,
    #[serde(default)]
    pub exec: ExecSettings,
}

impl std::fmt::Debug for AgentConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentConfig")
            .field("hub_url", &self.hub_url)
            .field("ca_cert", &self.ca_cert)
            .field("proxy", &self.proxy.as_deref().map(ferry_proto::redact_url))
            .field("transport", &self.transport)
            .field("hold_secs", &self.hold_secs)
            .field("poll_interval_secs", &self.poll_interval_secs)
            .field("max_backoff_secs", &self.max_backoff_secs)
            .field("replaced_backoff_secs", &self.replaced_backoff_secs)
            .field("inventory_interval_secs", &self.inventory_interval_secs)
            .field("hostname", &self.hostname)
            .field("exec", &self.exec)
            .finish()
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransportChoice {
    #[default]
    Auto,
    Websocket,
    Poll,
}

fn default_hold() -> u32 {
    25
}
fn default_max_backoff() -> u32 {
    60
}
fn default_replaced_backoff() -> u32 {
    600
}
fn default_inventory_interval() -> u32 {
    3600
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl AgentConfig {
    pub fn new(hub_url: &str) -> Self {
        AgentConfig {
            hub_url: hub_url.trim_end_matches('/').to_owned(),
            ca_cert: None,
            proxy: None,
            transport: TransportChoice::Auto,
            hold_secs: default_hold(),
            poll_interval_secs: None,
            max_backoff_secs: default_max_backoff(),
            replaced_backoff_secs: default_replaced_backoff(),
            inventory_interval_secs: default_inventory_interval(),
            hostname: None,
            exec: ExecSettings::default(),
        }
    }

    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })
    }

    pub fn save(&self, path: &Path) -> Result<(), ConfigError> {
        let text = toml::to_string(self).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        write_private(path, text.as_bytes())
    }
}

/// Writes a file only its owner may read, replacing any old one atomically.
pub fn write_private(path: &Path, contents: &[u8]) -> Result<(), ConfigError> {
    let err = |source| ConfigError::Write {
        path: path.to_owned(),
        source,
    };
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    {
        use std::io::Write;
        let mut f = options.open(&tmp).map_err(err)?;
        f.write_all(contents).map_err(err)?;
        f.sync_all().map_err(err)?;
    }
    std::fs::rename(&tmp, path).map_err(err)
}

pub fn read_token(data_dir: &Path) -> Result<String, ConfigError> {
    let path = data_dir.join(TOKEN_FILE);
    std::fs::read_to_string(&path)
        .map(|t| t.trim().to_owned())
        .map_err(|source| ConfigError::Read { path, source })
}

pub fn write_token(data_dir: &Path, token: &str) -> Result<(), ConfigError> {
    write_private(&data_dir.join(TOKEN_FILE), format!("{token}\n").as_bytes())
}

impl AgentConfig {
    /// How `ferry-client` reaches the hub (the credential is added per call site: enrolment
    /// has none, sessions use the device token).
    pub fn client_config(&self, credential: Option<&str>) -> ferry_client::Config {
        ferry_client::Config {
            hub_url: self.hub_url.clone(),
            credential: credential.map(str::to_owned),
            ca_cert: self.ca_cert.clone(),
            proxy: self.proxy.clone(),
            user_agent: Some(concat!("ferry-agent/", env!("CARGO_PKG_VERSION")).to_owned()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_saved_config_loads_back_and_only_its_owner_can_read_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(CONFIG_FILE);
        let mut config = AgentConfig::new("https://hub.example:8443/");
        config.proxy = Some("http://u:p@proxy:3128".into());
        config.save(&path).unwrap();
        assert_eq!(AgentConfig::load(&path).unwrap(), config);
        assert_eq!(config.hub_url, "https://hub.example:8443");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn debug_output_hides_the_proxy_password() {
        let mut config = AgentConfig::new("https://hub");
        config.proxy = Some("http://user:s3cret@proxy:3128".into());
        let shown = format!("{config:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("user"), "{shown}");
    }

    #[test]
    fn unknown_options_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(CONFIG_FILE);
        std::fs::write(&path, "hub_url = \"https://h\"\nhbo_url = 1\n").unwrap();
        let err = AgentConfig::load(&path).unwrap_err().to_string();
        assert!(err.contains("hbo_url"), "{err}");
    }
}
