//! The `diagnostics` job: what a connector can see of its own machine and of the hub.

use serde::{Deserialize, Serialize};

/// Parameters of a diagnostics job. All optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiagnosticsRequest {
    /// The ConfigMgr console `bin` folder to look for; the hub fills it from the connector's
    /// site settings when the job is enqueued without one.
    #[serde(default)]
    pub console_path: Option<String>,
    /// How many hub round trips to time (default 3, at most [`Self::MAX_RTT_SAMPLES`]).
    #[serde(default)]
    pub rtt_samples: Option<u32>,
    /// Pause between round-trip samples in milliseconds (default 0, at most 10 000).
    #[serde(default)]
    pub rtt_interval_ms: Option<u32>,
}

impl DiagnosticsRequest {
    pub const MAX_RTT_SAMPLES: u32 = 1000;
    pub const MAX_RTT_INTERVAL_MS: u32 = 10_000;

    /// Checks the limits; the error names the field.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(n) = self.rtt_samples
            && (n == 0 || n > Self::MAX_RTT_SAMPLES)
        {
            return Err(format!(
                "payload.rtt_samples must be between 1 and {}",
                Self::MAX_RTT_SAMPLES
            ));
        }
        if let Some(ms) = self.rtt_interval_ms
            && ms > Self::MAX_RTT_INTERVAL_MS
        {
            return Err(format!(
                "payload.rtt_interval_ms must be at most {}",
                Self::MAX_RTT_INTERVAL_MS
            ));
        }
        Ok(())
    }
}

/// The result document of a diagnostics job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DiagnosticsReport {
    pub connector_version: String,
    /// `windows`, `linux`, … and a human description when the OS tells one.
    pub os: String,
    pub os_version: Option<String>,
    pub arch: String,
    pub hostname: Option<String>,
    /// Full path of `powershell.exe` when found on PATH.
    pub windows_powershell: Option<String>,
    /// Full path of `pwsh` when found on PATH.
    pub pwsh: Option<String>,
    pub console_path: Option<String>,
    /// Whether `ConfigurationManager.psd1` exists under the console path.
    pub console_module_found: bool,
    pub work_dir: String,
    pub work_dir_free_bytes: Option<u64>,
    pub hub_rtt_ms: RttSummary,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RttSummary {
    pub samples: u32,
    pub min: f64,
    pub avg: f64,
    pub max: f64,
}
