//! Packages and their resumable uploads.
//!
//! Upload protocol: `POST /api/v1/uploads` opens a session for a file of known size;
//! `PUT /api/v1/uploads/{id}?offset=N` appends a byte range starting exactly at `received`
//! (a mismatch is `409 offset_mismatch`, whose message says where to resume);
//! `GET /api/v1/uploads/{id}` tells how much the hub has; `POST /api/v1/uploads/{id}/complete`
//! verifies size and SHA-256, stores the file content-addressed, inspects it and creates the
//! package. A broken connection or a hub restart loses at most the bytes in flight.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::Timestamp;

/// `POST /api/v1/uploads`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUpload {
    /// The file's name, for people (`FileZilla_3.46.3.zip`); never used as a path.
    pub filename: String,
    /// Exact size in bytes.
    pub size: u64,
    /// Expected SHA-256 (lower-case hex); the upload fails on completion if it differs.
    #[serde(default)]
    pub sha256: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UploadState {
    Open,
    Completed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Upload {
    pub id: Uuid,
    pub filename: String,
    pub size: u64,
    /// Bytes the hub has durably received; the next range must start here.
    pub received: u64,
    pub expected_sha256: Option<String>,
    pub state: UploadState,
    /// The package created on completion.
    pub package_id: Option<Uuid>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: Timestamp,
}

/// A package: a verified, content-addressed file plus what the hub learned from it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Package {
    pub id: Uuid,
    pub filename: String,
    pub size: u64,
    pub sha256: String,
    /// What the hub found inside, with the administrator's corrections applied.
    pub metadata: PackageMetadata,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: Timestamp,
}

/// How ConfigMgr runs a package (the deployment type's installer technology).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Installer {
    /// Script installer: a wrapper such as PSADT runs the install.
    Script,
    /// Windows Installer: the MSI itself.
    Msi,
}

/// Language of a detection script.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScriptLanguage {
    #[serde(alias = "PowerShell")]
    Powershell,
    #[serde(alias = "VBScript")]
    Vbscript,
    #[serde(alias = "JavaScript")]
    Javascript,
}

/// How ConfigMgr detects that an application is installed: `{"msi_product_code": "{…}"}` or
/// `{"script": {"language": "powershell", "text": "…"}}`. The same shape in a package's
/// proposal and in a push specification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum DetectionSpec {
    Script {
        language: ScriptLanguage,
        text: String,
    },
    MsiProductCode(String),
}

/// Which PSADT generation wraps a package.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WrapperKind {
    /// `Deploy-Application.exe/.ps1` + `AppDeployToolkit/`.
    PsadtV3,
    /// `Invoke-AppDeployToolkit.exe/.ps1` + `PSAppDeployToolkit/`.
    PsadtV4,
}

/// The properties Ferry uses from an MSI's Property table. A value missing from the table is
/// `None`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MsiProperties {
    /// `ProductName`, e.g. `FileZilla`.
    pub product_name: Option<String>,
    /// `ProductVersion`, e.g. `3.46.3`.
    pub product_version: Option<String>,
    /// `Manufacturer`, e.g. `Tim Kosse`.
    pub manufacturer: Option<String>,
    /// `ProductCode`, a GUID in braces.
    pub product_code: Option<String>,
    /// `UpgradeCode`, a GUID in braces.
    pub upgrade_code: Option<String>,
    /// `ProductLanguage`, a decimal LANGID such as `1033`.
    pub product_language: Option<String>,
}

/// The metadata Ferry proposes for a package (`ferry-package` fills it in). Every field may be
/// overridden by an administrator; a field stays `None` when the package does not say.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposal {
    /// Manufacturer, e.g. `Tim Kosse`.
    pub vendor: Option<String>,
    /// Product name, e.g. `FileZilla`.
    pub product: Option<String>,
    /// Product version, e.g. `3.46.3`.
    pub version: Option<String>,
    /// Language name, e.g. `English(United States)` (the number when not in our table).
    pub language: Option<String>,
    /// The language identifier (LCID) it came from, e.g. 1033.
    pub language_id: Option<u32>,
    /// `Vendor_Product_Version_Language` with spaces removed from vendor and product, e.g.
    /// `TimKosse_FileZilla_3.46.3_English(United States)`. `None` unless all four are known.
    pub package_name: Option<String>,
    /// Script (wrapper found) or MSI (bare MSI).
    pub installer: Option<Installer>,
    /// Install command line, relative to the package folder.
    pub install_command: Option<String>,
    /// Uninstall command line, relative to the package folder.
    pub uninstall_command: Option<String>,
    /// Detection: the MSI product code when known, else the registry-marker script.
    pub detection: Option<DetectionSpec>,
    /// The registry-marker detection script, offered even when the product code is used, so
    /// the user can switch.
    pub registry_marker_script: Option<String>,
    /// The MSI product code (GUID in braces, upper case).
    pub product_code: Option<String>,
    /// The MSI upgrade code (GUID in braces, upper case).
    pub upgrade_code: Option<String>,
    /// The wrapper recognised.
    pub wrapper: Option<WrapperKind>,
    /// Relative path of the launcher inside the package, e.g. `Deploy-Application.exe`.
    pub wrapper_path: Option<String>,
    /// Relative path of the MSI the metadata came from.
    pub msi_file: Option<String>,
}

/// What the hub keeps about a package's contents: the proposal (with corrections applied),
/// what it was read from, and where an imported package came from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageMetadata {
    #[serde(flatten)]
    pub proposal: Proposal,
    /// The primary MSI's Property table, when it could be read.
    #[serde(default)]
    pub msi_properties: Option<MsiProperties>,
    #[serde(default)]
    pub file_count: u64,
    /// Uncompressed size of all entries.
    #[serde(default)]
    pub total_size: u64,
    /// The fields an administrator set by hand (`PATCH`), which pushes use as given.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub overridden: Vec<MetadataField>,
    /// The ConfigMgr application an imported package came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub imported_from: Option<ImportSource>,
}

/// Where an imported package came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportSource {
    pub connector_id: Uuid,
    pub job_id: Uuid,
    pub model_name: String,
    pub ci_id: u64,
    pub name: String,
    pub content_location: String,
    /// The application's parsed SDMPackageXML, as the connector read it.
    pub sccm: serde_json::Value,
}

/// The metadata fields an administrator may correct.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MetadataField {
    Vendor,
    Product,
    Version,
    Language,
    PackageName,
    InstallCommand,
    UninstallCommand,
    Installer,
    Detection,
}

impl MetadataField {
    pub fn as_str(self) -> &'static str {
        match self {
            MetadataField::Vendor => "vendor",
            MetadataField::Product => "product",
            MetadataField::Version => "version",
            MetadataField::Language => "language",
            MetadataField::PackageName => "package_name",
            MetadataField::InstallCommand => "install_command",
            MetadataField::UninstallCommand => "uninstall_command",
            MetadataField::Installer => "installer",
            MetadataField::Detection => "detection",
        }
    }
}

/// `PATCH /api/v1/packages/{id}` body: `{"metadata": {field: value | null, …}}`. A field set to
/// `null` clears it; an absent field is left as it is. Unknown fields are refused.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdatePackage {
    pub metadata: MetadataPatch,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetadataPatch {
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::double_option"
    )]
    pub vendor: Option<Option<String>>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::double_option"
    )]
    pub product: Option<Option<String>>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::double_option"
    )]
    pub version: Option<Option<String>>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::double_option"
    )]
    pub language: Option<Option<String>>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::double_option"
    )]
    pub package_name: Option<Option<String>>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::double_option"
    )]
    pub install_command: Option<Option<String>>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::double_option"
    )]
    pub uninstall_command: Option<Option<String>>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::double_option"
    )]
    pub installer: Option<Option<Installer>>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::double_option"
    )]
    pub detection: Option<Option<DetectionSpec>>,
}

impl MetadataPatch {
    /// The text fields with their names, for validation.
    pub fn texts(&self) -> [(MetadataField, Option<&str>); 7] {
        fn t(v: &Option<Option<String>>) -> Option<&str> {
            v.as_ref().and_then(|s| s.as_deref())
        }
        [
            (MetadataField::Vendor, t(&self.vendor)),
            (MetadataField::Product, t(&self.product)),
            (MetadataField::Version, t(&self.version)),
            (MetadataField::Language, t(&self.language)),
            (MetadataField::PackageName, t(&self.package_name)),
            (MetadataField::InstallCommand, t(&self.install_command)),
            (MetadataField::UninstallCommand, t(&self.uninstall_command)),
        ]
    }
}

impl PackageMetadata {
    /// Applies an administrator's corrections; returns the fields it touched.
    pub fn apply(&mut self, patch: &MetadataPatch) -> Vec<MetadataField> {
        let mut touched = Vec::new();
        fn set<T: Clone>(
            slot: &mut Option<T>,
            value: &Option<Option<T>>,
            field: MetadataField,
            touched: &mut Vec<MetadataField>,
        ) {
            if let Some(v) = value {
                slot.clone_from(v);
                touched.push(field);
            }
        }
        let p = &mut self.proposal;
        use MetadataField as F;
        set(&mut p.vendor, &patch.vendor, F::Vendor, &mut touched);
        set(&mut p.product, &patch.product, F::Product, &mut touched);
        set(&mut p.version, &patch.version, F::Version, &mut touched);
        set(&mut p.language, &patch.language, F::Language, &mut touched);
        set(
            &mut p.package_name,
            &patch.package_name,
            F::PackageName,
            &mut touched,
        );
        set(
            &mut p.install_command,
            &patch.install_command,
            F::InstallCommand,
            &mut touched,
        );
        set(
            &mut p.uninstall_command,
            &patch.uninstall_command,
            F::UninstallCommand,
            &mut touched,
        );
        set(
            &mut p.installer,
            &patch.installer,
            F::Installer,
            &mut touched,
        );
        set(
            &mut p.detection,
            &patch.detection,
            F::Detection,
            &mut touched,
        );
        for f in &touched {
            if !self.overridden.contains(f) {
                self.overridden.push(*f);
            }
        }
        self.overridden.sort_unstable();
        touched
    }
}
