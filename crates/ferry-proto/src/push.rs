//! Pushing a package into a ConfigMgr site: the request an administrator makes, and the
//! payload of the `push` job the connector runs.
//!
//! The push specification ([`PushSpec`]) is defined here, once: the hub stores it in a job, the
//! connector receives it, `ferry-sccm` validates it and turns it into PowerShell. This crate
//! only says what the fields are; what ConfigMgr accepts in them (lengths, characters, date
//! formats) is `ferry_sccm::spec::validate`'s business.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use crate::package::{DetectionSpec, Installer, ScriptLanguage};

/// `POST /api/v1/push`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushRequest {
    pub package_id: Uuid,
    pub connector_id: Uuid,
    /// A partial [`PushSpec`] laid over the one proposed from the package's metadata and the
    /// connector's site settings (objects merge, values replace; `deployment_type.detection`
    /// is replaced whole). Validated as a whole after the merge, so errors name the field.
    #[serde(default)]
    pub spec: Option<serde_json::Value>,
    /// Return the exact script and specification without queuing anything.
    #[serde(default)]
    pub dry_run: bool,
}

/// The answer to a dry run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PushPreview {
    pub spec: PushSpec,
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
    /// Complete and validated by the hub; the connector validates it again.
    pub spec: PushSpec,
}

/// Everything one push to ConfigMgr needs (PRODUCT.md W3). Field names are the issue's
/// (`site`, `application`, `deployment_type`, `deployment`); unknown fields are errors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushSpec {
    pub site: SiteSpec,
    pub application: ApplicationSpec,
    pub deployment_type: DeploymentTypeSpec,
    pub deployment: DeploymentSpec,
}

/// Where the ConfigMgr console is and which site to drive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteSpec {
    /// Three letters or digits, e.g. `DEM`.
    pub site_code: String,
    /// The console's `bin` folder holding `ConfigurationManager.psd1`.
    pub console_path: String,
    /// The sources share the connector unpacks packages to.
    pub share_path: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApplicationSpec {
    /// The package name, used as the application name (`New-CMApplication -Name`).
    pub name: String,
    pub version: String,
    /// The vendor (`-Publisher`).
    pub publisher: String,
    /// The product's own name, shown in Software Center (`-LocalizedApplicationName`).
    pub product_name: String,
    /// A culture name (`en-US`) or its English display name (`English(United States)`).
    pub language: String,
    /// Allow installing from a task sequence without a deployment.
    #[serde(default)]
    pub auto_install: bool,
    /// Administrative owner; the hub fills in the requesting user's name.
    #[serde(default)]
    pub owner: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub optional_reference: Option<String>,
    /// Console folder, e.g. `Applications/Test 1` (the leading `Applications` is optional).
    #[serde(default)]
    pub folder: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeploymentTypeSpec {
    /// Defaults to `<application name>_DT`.
    #[serde(default)]
    pub name: Option<String>,
    /// UNC folder of the sources (for an MSI installer, the path of the `.msi`).
    pub content_location: String,
    pub distribution_point_group: String,
    pub installer: Installer,
    pub detection: DetectionSpec,
    #[serde(default)]
    pub persist_in_cache: bool,
    pub install_command: String,
    #[serde(default)]
    pub uninstall_command: Option<String>,
    #[serde(default)]
    pub slow_network: SlowNetwork,
    #[serde(default = "default_max_runtime")]
    pub max_runtime_mins: u32,
    #[serde(default)]
    pub estimated_runtime_mins: u32,
    /// Run the installer as a 32-bit process on 64-bit clients.
    #[serde(default)]
    pub force_32bit: bool,
    #[serde(default)]
    pub admin_comment: Option<String>,
}

/// ConfigMgr's own default maximum run time, in minutes.
pub const DEFAULT_MAX_RUNTIME_MINS: u32 = 120;

fn default_max_runtime() -> u32 {
    DEFAULT_MAX_RUNTIME_MINS
}

/// What a client does when its distribution point is on a slow network.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SlowNetwork {
    #[default]
    Download,
    DoNothing,
    /// "Download content from distribution point and run locally".
    DownloadContentForLocal,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeploymentSpec {
    pub collection: String,
    pub action: DeployAction,
    pub purpose: DeployPurpose,
    /// `YYYY-MM-DDTHH:MM[:SS]`, read in `time_base`.
    pub available_at: String,
    #[serde(default)]
    pub deadline: Option<String>,
    #[serde(default)]
    pub time_base: TimeBase,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeployAction {
    Install,
    Uninstall,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeployPurpose {
    Available,
    Required,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeBase {
    #[default]
    Local,
    Utc,
}

impl PushSpec {
    /// The deployment type name, defaulted to `<application name>_DT`.
    pub fn deployment_type_name(&self) -> String {
        self.deployment_type
            .name
            .clone()
            .unwrap_or_else(|| format!("{}_DT", self.application.name))
    }
}

/// Whether `name` can be one folder name on Windows and Linux alike: the connector unpacks a
/// package to `<share>\<application name>`, so a name must never add or climb path levels,
/// name a device (`\\share\CON` is no folder), or lose characters Windows trims.
pub fn is_folder_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(['.', ' '])
        && !name.ends_with(['.', ' '])
        && !is_reserved_windows_name(name)
        && !name
            .chars()
            .any(|c| c.is_control() || "\\/:*?\"<>|".contains(c))
}

/// Windows' device names, which no file or folder can have, with or without an extension
/// (`CON`, `nul.txt`, `COM1`, `CONIN$`; superscript digits count as digits).
const WINDOWS_RESERVED: &[&str] = &[
    "con", "prn", "aux", "nul", "com0", "com1", "com2", "com3", "com4", "com5", "com6", "com7",
    "com8", "com9", "com¹", "com²", "com³", "lpt0", "lpt1", "lpt2", "lpt3", "lpt4", "lpt5", "lpt6",
    "lpt7", "lpt8", "lpt9", "lpt¹", "lpt²", "lpt³", "conin$", "conout$",
];

/// Whether one path component is a Windows device name: its part before the first dot,
/// without trailing spaces, compared without case.
pub fn is_reserved_windows_name(component: &str) -> bool {
    let lower = component.to_lowercase();
    let stem = lower.split('.').next().unwrap_or("").trim_end();
    WINDOWS_RESERVED.contains(&stem)
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

    #[test]
    fn windows_device_names_and_trimmed_edges_are_not_folder_names() {
        for bad in [
            "CON", "con", "NUL.txt", "COM1", "aux.zip", "CONIN$", "lpt¹", "Con .txt", " app",
            "app ", ".app", "app.",
        ] {
            assert!(!is_folder_name(bad), "{bad:?}");
        }
        for good in [
            "CONTOSO_App_1.0",
            "console",
            "Nullsoft_Winamp_5.9",
            "com10",
            "a.b",
        ] {
            assert!(is_folder_name(good), "{good:?}");
        }
    }
}
