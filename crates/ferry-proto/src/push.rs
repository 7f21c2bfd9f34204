//! Pushing a package into a ConfigMgr site: the request an administrator makes, and the
//! payload of the `push` job the connector runs.
//!
//! The push specification itself (`spec`) is defined once, by `ferry_sccm::PushSpec`; here it
//! travels as JSON so that this crate stays free of ConfigMgr knowledge.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// `POST /api/v1/push`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushRequest {
    pub package_id: Uuid,
    pub connector_id: Uuid,
    /// A partial push specification laid over the one the hub builds from the package's
    /// metadata and the connector's site settings (objects merge, values replace).
    #[serde(default)]
    pub spec: Option<serde_json::Value>,
    /// Return the exact script and specification without queuing anything.
    #[serde(default)]
    pub dry_run: bool,
}

/// The answer to a dry run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PushPreview {
    pub spec: serde_json::Value,
    pub script: String,
}

/// The payload of a `push` job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushPayload {
    pub package_id: Uuid,
    /// The package's content address; the connector verifies the download against it.
    pub sha256: String,
    pub size: u64,
    /// A complete, validated `ferry_sccm::PushSpec`.
    pub spec: serde_json::Value,
}

/// Whether `name` can be one folder name on Windows and Linux alike: the connector unpacks a
/// package to `<share>\<application name>`, so a name must never add or climb path levels.
pub fn is_folder_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && !name.ends_with('.')
        && !name.ends_with(' ')
        && !name
            .chars()
            .any(|c| c.is_control() || "\\/:*?\"<>|".contains(c))
}

#[cfg(test)]
mod tests {
    use super::is_folder_name;

    #[test]
    fn folder_names_never_add_or_climb_levels() {
        assert!(is_folder_name(
            "TimKosse_FileZilla_3.46.3_English(United States)"
        ));
        for bad in ["..", ".", "a/b", "a\\b", "C:", "x.", "x ", "", "a\u{0}b"] {
            assert!(!is_folder_name(bad), "{bad:?}");
        }
    }
}
