//! Hub configuration: a TOML file, then `FERRY_*` environment variables on top.
//!
//! Every option is a field of [`HubConfig`] with its default and its meaning documented here,
//! once; `docs/configuration.md` and `ferry serve --print-config` are generated from the same
//! struct's defaults. An environment variable `FERRY_<OPTION>` (upper case) overrides the option
//! of the same name, e.g. `FERRY_LISTEN=0.0.0.0:8443`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HubConfig {
    /// Address and port to listen on.
    pub listen: SocketAddr,
    /// Folder holding the SQLite database (`ferry.db`), the blob store (`blobs/`), the
    /// server key (`hub.key`) and the initial administrator's first API key (`admin.token`).
    pub data_dir: PathBuf,
    /// PEM certificate chain; with `tls_key`, the hub serves HTTPS (TLS 1.2+ only).
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// `human` or `json` log lines.
    pub log_format: LogFormat,
    /// Log filter in `tracing` syntax, e.g. `info,ferry_hub=debug`. `RUST_LOG` also works.
    pub log_level: String,
    /// How long a connector may hold a job before it must renew (seconds, 2–3600).
    pub lease_secs: u32,
    /// How many leases a job may use up (lapsed leases count) before it fails (1–100).
    pub max_attempts: u32,
    /// Longest hold a connector may ask for in a long poll (seconds, 1–55).
    pub max_hold_secs: u32,
    /// Hold used when a connector does not say (seconds, 1–55).
    pub default_hold_secs: u32,
    /// Largest accepted JSON request body, in bytes.
    pub max_body_bytes: usize,
    /// Largest job result document a connector may report, in bytes (an inventory of a large
    /// site carries every application's parsed metadata).
    pub max_result_bytes: usize,
    /// An upload still open this many hours after it was opened is abandoned: its session and
    /// part file are removed (checked whenever a new upload opens).
    pub upload_ttl_hours: u32,
    /// Largest package upload, in bytes.
    pub max_upload_bytes: u64,
    /// SQLite `synchronous` setting. `full` (default): every commit is fsynced, so a job the
    /// API acknowledged survives a killed hub and a power loss. `normal`: in WAL mode a commit
    /// survives a killed hub, and the database stays consistent after a power loss, which may
    /// undo the last commits; no fsync per commit, for disks where fsync is slow.
    pub sqlite_synchronous: Synchronous,
    /// How often agents ping the hub on their WebSocket (seconds, 5–600). The hub closes a
    /// session it has not heard from in three intervals (a half-open connection); an agent
    /// reconnects when a ping goes unanswered for one.
    pub agent_ping_secs: u32,
    /// Agent sessions admitted per second when many agents connect at once (after a hub
    /// restart, say). Agents beyond the rate are told when to come back (`503` with
    /// `Retry-After`), each given its own slot, so the hub never takes more than it can.
    pub agent_admission_rate: u32,
    /// Sessions admitted at once before pacing starts.
    pub agent_admission_burst: u32,
    /// Delays (seconds) before each retry of a task callback that failed; once they are used
    /// up the callback is given up (`failed`). Each delay varies by ±20% (jitter); a
    /// `Retry-After` from the receiver replaces the delay. The default adds up to about a day.
    pub callback_retry_secs: Vec<u64>,
    /// Largest message an agent may send (bytes); a larger WebSocket message closes the
    /// session with code 1009. Must exceed twice the largest output limit (256 KiB).
    pub agent_max_message_bytes: u32,
    /// A portal session with no request for this long ends (minutes, 1–1440).
    pub session_idle_mins: u32,
    /// A portal session ends this long after its login, active or not (hours, 1–720).
    pub session_absolute_hours: u32,
    /// The window failed portal logins are counted in (seconds, 1–86400).
    pub login_window_secs: u32,
    /// Failed logins for one name within the window after which that name is refused
    /// (`429`, whatever the password) until the oldest failure leaves the window.
    pub login_failures_per_name: u32,
    /// The same, per client address (higher: an office may share one address).
    pub login_failures_per_address: u32,
    /// A connection with no request in progress for this long is closed (seconds, 5–3600):
    /// unfinished TLS handshakes and request heads, dribbled headers, unused keep-alive
    /// connections. Long polls, transfers and agent WebSockets are not idle.
    pub connection_idle_secs: u32,
    /// Most connections that have not yet presented valid credentials; at the cap the oldest
    /// idle one is closed to make room. `0`: a quarter of the open-file limit (at least 64).
    pub max_unauthenticated_connections: u32,
    /// The window failed authentications (401) are counted in (seconds, 1–86400).
    pub auth_failure_window_secs: u32,
    /// Failed authentications from one address within the window after which the address
    /// gets `429` for every credentialed route until the window moves on.
    pub auth_failures_per_address: u32,
    /// The same, per credential id (a connector's remote id, a device, an API key id).
    pub auth_failures_per_credential: u32,
    /// Most uploads one caller may have open at once.
    pub max_open_uploads: u32,
    /// Most bytes one caller's open uploads may declare together.
    pub max_open_upload_bytes: u64,
    /// An open upload that received nothing for this many hours is abandoned (1–8760).
    pub upload_idle_hours: u32,
    /// What a device's reported change to a rule-matched inventory field (hostname, domain,
    /// OS, version, architecture) does: `approve` (default) holds it until an administrator
    /// approves it (`ferry device approve`), so a device cannot talk its way into a rule
    /// collection; `trust` applies it at once.
    pub inventory_changes: InventoryChanges,
    /// The SMTP server notification e-mails go through (none: e-mail rules are refused).
    pub smtp_server: Option<String>,
    /// Its port (default: 587 with `starttls`, 465 with `tls`, 25 with `none`).
    pub smtp_port: Option<u16>,
    /// `starttls` (default: the connection must upgrade, or nothing is sent), `tls`
    /// (implicit TLS from the first byte) or `none` (plain; only for a relay on this host).
    pub smtp_security: SmtpSecurity,
    /// The account to authenticate as (after TLS), with the password in `smtp_password_file`.
    pub smtp_username: Option<String>,
    /// A file holding the SMTP password (so that it is in neither the config nor the
    /// environment); read at start.
    pub smtp_password_file: Option<PathBuf>,
    /// The sender address of notification e-mails.
    pub smtp_from: Option<String>,
    /// A private CA (PEM) to trust for the SMTP server's certificate, instead of the platform's.
    pub smtp_ca_cert: Option<PathBuf>,
}

/// See [`HubConfig::smtp_security`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SmtpSecurity {
    Starttls,
    Tls,
    None,
}

/// See [`HubConfig::inventory_changes`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InventoryChanges {
    Approve,
    Trust,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Synchronous {
    Full,
    Normal,
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8443)),
            data_dir: PathBuf::from("ferry-data"),
            tls_cert: None,
            tls_key: None,
            log_format: LogFormat::Human,
            log_level: "info".to_owned(),
            lease_secs: 60,
            max_attempts: 3,
            max_hold_secs: 55,
            default_hold_secs: 25,
            max_body_bytes: 1024 * 1024,
            max_upload_bytes: 20 * 1024 * 1024 * 1024,
            max_result_bytes: 64 * 1024 * 1024,
            upload_ttl_hours: 168,
            sqlite_synchronous: Synchronous::Full,
            agent_ping_secs: 30,
            agent_admission_rate: 1000,
            agent_admission_burst: 500,
            callback_retry_secs: vec![5, 30, 120, 600, 1800, 3600, 7200, 14400, 28800, 28800],
            agent_max_message_bytes: 2 * 1024 * 1024,
            session_idle_mins: 30,
            session_absolute_hours: 12,
            login_window_secs: 900,
            login_failures_per_name: 5,
            login_failures_per_address: 20,
            connection_idle_secs: 30,
            max_unauthenticated_connections: 0,
            auth_failure_window_secs: 60,
            auth_failures_per_address: 100,
            auth_failures_per_credential: 20,
            max_open_uploads: 20,
            max_open_upload_bytes: 100 * 1024 * 1024 * 1024,
            upload_idle_hours: 24,
            inventory_changes: InventoryChanges::Approve,
            smtp_server: None,
            smtp_port: None,
            smtp_security: SmtpSecurity::Starttls,
            smtp_username: None,
            smtp_password_file: None,
            smtp_from: None,
            smtp_ca_cert: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("environment variable {var}: {message}")]
    Env { var: String, message: String },
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl HubConfig {
    /// Reads `file` (if given), then applies `FERRY_*` variables from `env`, then validates.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut table = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_owned(),
                    source,
                })?;
                text.parse::<toml::Table>()
                    .map_err(|e| ConfigError::Parse {
                        path: path.to_owned(),
                        message: e.to_string(),
                    })?
            }
            None => toml::Table::new(),
        };
        let known = known_keys();
        for (var, value) in env {
            let Some(key) = var.strip_prefix("FERRY_") else {
                continue;
            };
            let key = key.to_ascii_lowercase();
            if !known.contains(&key) {
                // Other FERRY_ variables belong to other commands (the CLI's FERRY_HUB, …).
                continue;
            }
            table.insert(key, env_value(&value));
        }
        let config: HubConfig = HubConfig::deserialize(table).map_err(|e| ConfigError::Parse {
            path: file
                .map(Path::to_owned)
                .unwrap_or_else(|| PathBuf::from("<environment>")),
            message: e.to_string(),
        })?;
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: &str| Err(ConfigError::Invalid(m.to_owned()));
        if !(2..=3600).contains(&self.lease_secs) {
            return bad("lease_secs must be between 2 and 3600");
        }
        if !(1..=100).contains(&self.max_attempts) {
            return bad("max_attempts must be between 1 and 100");
        }
        if !(1..=55).contains(&self.max_hold_secs) {
            return bad("max_hold_secs must be between 1 and 55");
        }
        if !(1..=self.max_hold_secs).contains(&self.default_hold_secs) {
            return bad("default_hold_secs must be between 1 and max_hold_secs");
        }
        if self.max_body_bytes < 1024 {
            return bad("max_body_bytes must be at least 1024");
        }
        if !(5..=600).contains(&self.agent_ping_secs) {
            return bad("agent_ping_secs must be between 5 and 600");
        }
        if self.smtp_server.is_some() {
            if !self.smtp_from.as_deref().is_some_and(|f| f.contains('@')) {
                return bad("smtp_from (an e-mail address) is needed with smtp_server");
            }
            if self.smtp_username.is_some() != self.smtp_password_file.is_some() {
                return bad("smtp_username and smtp_password_file go together");
            }
        }
        if self.callback_retry_secs.len() > 100
            || self
                .callback_retry_secs
                .iter()
                .any(|&s| s == 0 || s > 86_400)
        {
            return bad("callback_retry_secs: at most 100 delays, each 1–86400 seconds");
        }
        if self.agent_admission_rate == 0 {
            return bad("agent_admission_rate must be at least 1");
        }
        if self.agent_max_message_bytes < 1024 * 1024 {
            return bad("agent_max_message_bytes must be at least 1 MiB");
        }
        if !(1..=1440).contains(&self.session_idle_mins) {
            return bad("session_idle_mins must be between 1 and 1440");
        }
        if !(1..=720).contains(&self.session_absolute_hours) {
            return bad("session_absolute_hours must be between 1 and 720");
        }
        if !(1..=86_400).contains(&self.login_window_secs) {
            return bad("login_window_secs must be between 1 and 86400");
        }
        if self.login_failures_per_name == 0 || self.login_failures_per_address == 0 {
            return bad(
                "login_failures_per_name and login_failures_per_address must be at least 1",
            );
        }
        if !(5..=3600).contains(&self.connection_idle_secs) {
            return bad("connection_idle_secs must be between 5 and 3600");
        }
        if !(1..=86_400).contains(&self.auth_failure_window_secs) {
            return bad("auth_failure_window_secs must be between 1 and 86400");
        }
        if self.auth_failures_per_address == 0 || self.auth_failures_per_credential == 0 {
            return bad(
                "auth_failures_per_address and auth_failures_per_credential must be at least 1",
            );
        }
        if self.max_open_uploads == 0 || self.max_open_upload_bytes == 0 {
            return bad("max_open_uploads and max_open_upload_bytes must be at least 1");
        }
        if !(1..=8760).contains(&self.upload_idle_hours) {
            return bad("upload_idle_hours must be between 1 and 8760");
        }
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return bad("tls_cert and tls_key must be given together");
        }
        Ok(())
    }

    /// The configuration as TOML, every option present: the reference for operators.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_default()
    }
}

fn known_keys() -> Vec<String> {
    match toml::Table::try_from(HubConfig::default()) {
        Ok(t) => t
            .keys()
            .cloned()
            .collect::<Vec<_>>()
            .into_iter()
            .chain(
                // Optional fields are absent from the serialised default.
                [
                    "tls_cert",
                    "tls_key",
                    "smtp_server",
                    "smtp_port",
                    "smtp_username",
                    "smtp_password_file",
                    "smtp_from",
                    "smtp_ca_cert",
                ]
                .map(str::to_owned),
            )
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// Environment values are strings; numbers and booleans are recognised so that
/// `FERRY_LEASE_SECS=30` fills an integer field.
fn env_value(raw: &str) -> toml::Value {
    if let Ok(i) = raw.parse::<i64>() {
        return toml::Value::Integer(i);
    }
    // A list, as TOML writes it: `FERRY_CALLBACK_RETRY_SECS=[5, 30, 120]`.
    if raw.trim_start().starts_with('[')
        && let Ok(mut t) = format!("v = {raw}").parse::<toml::Table>()
        && let Some(v) = t.remove("v")
    {
        return v;
    }
    match raw {
        "true" => toml::Value::Boolean(true),
        "false" => toml::Value::Boolean(false),
        _ => toml::Value::String(raw.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_overrides_file_values() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hub.toml");
        std::fs::write(&path, "lease_secs = 30\nlisten = \"127.0.0.1:9000\"\n").unwrap();
        let env = [("FERRY_LEASE_SECS".to_owned(), "45".to_owned())];
        let config = HubConfig::load(Some(&path), env).unwrap();
        assert_eq!(config.lease_secs, 45);
        assert_eq!(config.listen.port(), 9000);
    }

    #[test]
    fn unknown_option_in_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hub.toml");
        std::fs::write(&path, "leese_secs = 30\n").unwrap();
        let err = HubConfig::load(Some(&path), []).unwrap_err().to_string();
        assert!(err.contains("leese_secs"), "{err}");
    }

    #[test]
    fn out_of_range_hold_is_refused() {
        let env = [("FERRY_MAX_HOLD_SECS".to_owned(), "90".to_owned())];
        let err = HubConfig::load(None, env).unwrap_err().to_string();
        assert!(err.contains("max_hold_secs"), "{err}");
    }

    #[test]
    fn default_config_round_trips_through_toml() {
        let text = HubConfig::default().to_toml();
        let back: HubConfig = toml::from_str(&text).unwrap();
        assert_eq!(back, HubConfig::default());
    }
}

#[cfg(test)]
mod doc_tests {
    /// Every option must be documented in docs/configuration.md, so the table cannot drift.
    #[test]
    fn every_hub_option_is_documented() {
        let doc = include_str!("../../../docs/configuration.md");
        for key in super::known_keys() {
            assert!(
                doc.contains(&format!("| `{key}` |")),
                "docs/configuration.md lacks `{key}`"
            );
        }
    }
}
