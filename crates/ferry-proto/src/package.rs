//! Packages and their resumable uploads.
//!
//! Upload protocol: `POST /api/v1/uploads` opens a session for a file of known size;
//! `PUT /api/v1/uploads/{id}?offset=N` appends a byte range starting exactly at `received`
//! (a mismatch is `409 offset_mismatch`, whose message says where to resume);
//! `GET /api/v1/uploads/{id}` tells how much the hub has; `POST /api/v1/uploads/{id}/complete`
//! verifies size and SHA-256, stores the file content-addressed, inspects it and creates the
//! package. A broken connection or a hub restart loses at most the bytes in flight.

use std::collections::BTreeMap;

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

/// Where a proposed value came from, so an administrator knows what to check before pushing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FieldSource {
    /// A literal in the PSADT wrapper script (`$appVendor = '…'`, `$adtSession = @{…}`).
    #[serde(rename = "psadt_script")]
    PsadtScript,
    /// The chosen MSI's Property table.
    #[serde(rename = "msi")]
    Msi,
    /// The chosen MSI's Property table as a transform (`.mst`) changes it.
    #[serde(rename = "msi+transform")]
    MsiTransform,
    /// The version resource of the EXE installer.
    #[serde(rename = "exe_version")]
    ExeVersion,
    /// The package's file names (the wrapper's launcher, the MSI's path).
    #[serde(rename = "layout")]
    Layout,
    /// Built by Ferry from other fields (the package name from vendor, product, version and
    /// language; detection from the main binary's file version or the registry marker —
    /// detection by the MSI product code carries the product code's own source).
    #[serde(rename = "derived")]
    Derived,
    /// Set by an administrator (`PATCH`); kept as given.
    #[serde(rename = "user")]
    User,
}

impl FieldSource {
    pub fn as_str(self) -> &'static str {
        match self {
            FieldSource::PsadtScript => "psadt_script",
            FieldSource::Msi => "msi",
            FieldSource::MsiTransform => "msi+transform",
            FieldSource::ExeVersion => "exe_version",
            FieldSource::Layout => "layout",
            FieldSource::Derived => "derived",
            FieldSource::User => "user",
        }
    }
}

/// The metadata Ferry proposes for a package (`ferry-package` fills it in). Every field may be
/// overridden by an administrator; a field stays `None` when the package does not say, and
/// [`Proposal::sources`] says where each value came from.
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
    /// Architecture as the packager states it (`x64`, `x86`), when stated.
    #[serde(default)]
    pub architecture: Option<String>,
    /// The packager's revision of this version (PSADT `AppRevision`, e.g. `01`).
    #[serde(default)]
    pub revision: Option<String>,
    /// `Vendor_Product_Version_Language` with spaces removed from vendor and product, e.g.
    /// `TimKosse_FileZilla_3.46.3_English(United States)`. `None` unless all four are known.
    pub package_name: Option<String>,
    /// Script (wrapper found) or MSI (bare MSI).
    pub installer: Option<Installer>,
    /// Install command line, relative to the package folder.
    pub install_command: Option<String>,
    /// Uninstall command line, relative to the package folder.
    pub uninstall_command: Option<String>,
    /// Detection: the MSI product code when known, else a file-version rule when the installed
    /// main binary is known, else the registry-marker script; `None` with
    /// [`Proposal::detection_note`] saying why.
    pub detection: Option<DetectionSpec>,
    /// Why no detection was proposed (never an empty rule that always matches).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detection_note: Option<String>,
    /// The registry-marker detection script, offered even when the product code is used, so
    /// the user can switch.
    pub registry_marker_script: Option<String>,
    /// Where the application's main binary is once installed (`%ProgramFiles%\7-Zip\7zFM.exe`),
    /// when an administrator says so: detection then checks its file version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub main_binary: Option<String>,
    /// The MSI product code (GUID in braces, upper case).
    pub product_code: Option<String>,
    /// The MSI upgrade code (GUID in braces, upper case).
    pub upgrade_code: Option<String>,
    /// The wrapper recognised.
    pub wrapper: Option<WrapperKind>,
    /// Relative path of the launcher inside the package, e.g. `Deploy-Application.exe`.
    pub wrapper_path: Option<String>,
    /// Relative path of the MSI the metadata came from (`None` when several were found and
    /// none was chosen: see [`Proposal::msi_files`]).
    pub msi_file: Option<String>,
    /// Every `.msi` in the package, best candidate first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub msi_files: Vec<String>,
    /// Every `.mst` transform in the package.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub transforms: Vec<String>,
    /// The transforms whose Property changes the proposal includes, in the order applied.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub transforms_applied: Vec<String>,
    /// Every `.msp` patch in the package.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub patches: Vec<String>,
    /// Relative path of the EXE whose version resource was read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exe_file: Option<String>,
    /// Where each value came from.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sources: BTreeMap<MetadataField, FieldSource>,
    /// What the inspection could not read or decide, for people (`$appVersion is not a
    /// literal …`, `3 MSIs found; choose one`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl Proposal {
    /// Where `field` came from, if it has a value.
    pub fn source(&self, field: MetadataField) -> Option<FieldSource> {
        self.sources.get(&field).copied()
    }

    /// Whether an administrator set `field`.
    pub fn is_user_set(&self, field: MetadataField) -> bool {
        self.source(field) == Some(FieldSource::User)
    }
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

/// The fields of a proposal that carry a source; all but the two MSI codes may be corrected
/// by an administrator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MetadataField {
    Vendor,
    Product,
    Version,
    Language,
    Architecture,
    Revision,
    PackageName,
    InstallCommand,
    UninstallCommand,
    Installer,
    Detection,
    MainBinary,
    ProductCode,
    UpgradeCode,
}

impl MetadataField {
    pub fn as_str(self) -> &'static str {
        match self {
            MetadataField::Vendor => "vendor",
            MetadataField::Product => "product",
            MetadataField::Version => "version",
            MetadataField::Language => "language",
            MetadataField::Architecture => "architecture",
            MetadataField::Revision => "revision",
            MetadataField::PackageName => "package_name",
            MetadataField::InstallCommand => "install_command",
            MetadataField::UninstallCommand => "uninstall_command",
            MetadataField::Installer => "installer",
            MetadataField::Detection => "detection",
            MetadataField::MainBinary => "main_binary",
            MetadataField::ProductCode => "product_code",
            MetadataField::UpgradeCode => "upgrade_code",
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
    pub architecture: Option<Option<String>>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::double_option"
    )]
    pub revision: Option<Option<String>>,
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
    /// Where the main binary is once installed; detection then checks its file version.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::double_option"
    )]
    pub main_binary: Option<Option<String>>,
    /// Which of the package's MSIs the proposal comes from (one of `msi_files`): the hub
    /// reads it again and proposes anew, keeping the fields set by hand.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub msi_file: Option<String>,
    /// Fields handed back to the proposal: their hand-set values are dropped and the hub
    /// reads the package again for them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reset: Vec<MetadataField>,
}

impl MetadataPatch {
    /// Whether the patch sets (or clears) `field`.
    pub fn sets(&self, field: MetadataField) -> bool {
        use MetadataField as F;
        match field {
            F::Vendor => self.vendor.is_some(),
            F::Product => self.product.is_some(),
            F::Version => self.version.is_some(),
            F::Language => self.language.is_some(),
            F::Architecture => self.architecture.is_some(),
            F::Revision => self.revision.is_some(),
            F::PackageName => self.package_name.is_some(),
            F::InstallCommand => self.install_command.is_some(),
            F::UninstallCommand => self.uninstall_command.is_some(),
            F::Installer => self.installer.is_some(),
            F::Detection => self.detection.is_some(),
            F::MainBinary => self.main_binary.is_some(),
            F::ProductCode | F::UpgradeCode => false,
        }
    }

    /// The text fields with their names, for validation.
    pub fn texts(&self) -> [(MetadataField, Option<&str>); 10] {
        fn t(v: &Option<Option<String>>) -> Option<&str> {
            v.as_ref().and_then(|s| s.as_deref())
        }
        [
            (MetadataField::Vendor, t(&self.vendor)),
            (MetadataField::Product, t(&self.product)),
            (MetadataField::Version, t(&self.version)),
            (MetadataField::Language, t(&self.language)),
            (MetadataField::Architecture, t(&self.architecture)),
            (MetadataField::Revision, t(&self.revision)),
            (MetadataField::PackageName, t(&self.package_name)),
            (MetadataField::InstallCommand, t(&self.install_command)),
            (MetadataField::UninstallCommand, t(&self.uninstall_command)),
            (MetadataField::MainBinary, t(&self.main_binary)),
        ]
    }
}

impl PackageMetadata {
    /// Applies an administrator's corrections: each touched field takes the given value and
    /// the source [`FieldSource::User`] (a cleared field stays `user`, so a later proposal
    /// does not fill it again). Returns the fields it touched.
    pub fn apply(&mut self, patch: &MetadataPatch) -> Vec<MetadataField> {
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
        let mut touched = Vec::new();
        let p = &mut self.proposal;
        use MetadataField as F;
        set(&mut p.vendor, &patch.vendor, F::Vendor, &mut touched);
        set(&mut p.product, &patch.product, F::Product, &mut touched);
        set(&mut p.version, &patch.version, F::Version, &mut touched);
        set(&mut p.language, &patch.language, F::Language, &mut touched);
        if patch.language.is_some() {
            // The identifier belonged to the old name.
            p.language_id = None;
        }
        let t = &mut touched;
        set(&mut p.architecture, &patch.architecture, F::Architecture, t);
        set(&mut p.revision, &patch.revision, F::Revision, t);
        set(&mut p.package_name, &patch.package_name, F::PackageName, t);
        set(
            &mut p.install_command,
            &patch.install_command,
            F::InstallCommand,
            t,
        );
        set(
            &mut p.uninstall_command,
            &patch.uninstall_command,
            F::UninstallCommand,
            t,
        );
        set(&mut p.installer, &patch.installer, F::Installer, t);
        set(&mut p.detection, &patch.detection, F::Detection, t);
        set(&mut p.main_binary, &patch.main_binary, F::MainBinary, t);
        for f in &touched {
            p.sources.insert(*f, FieldSource::User);
        }
        touched
    }

    /// Carries the fields an administrator set from `self` over a fresh proposal `fresh`
    /// (after the MSI was chosen again), keeping everything else from `fresh`; the fields in
    /// `reset` are handed back to the proposal.
    pub fn rebase(&mut self, mut fresh: PackageMetadata, reset: &[MetadataField]) {
        let old = &self.proposal;
        let p = &mut fresh.proposal;
        for (field, source) in &old.sources {
            if *source != FieldSource::User || reset.contains(field) {
                continue;
            }
            use MetadataField as F;
            match field {
                F::Vendor => p.vendor.clone_from(&old.vendor),
                F::Product => p.product.clone_from(&old.product),
                F::Version => p.version.clone_from(&old.version),
                F::Language => {
                    p.language.clone_from(&old.language);
                    p.language_id = old.language_id;
                }
                F::Architecture => p.architecture.clone_from(&old.architecture),
                F::Revision => p.revision.clone_from(&old.revision),
                F::PackageName => p.package_name.clone_from(&old.package_name),
                F::InstallCommand => p.install_command.clone_from(&old.install_command),
                F::UninstallCommand => p.uninstall_command.clone_from(&old.uninstall_command),
                F::Installer => p.installer = old.installer,
                F::Detection => p.detection.clone_from(&old.detection),
                F::MainBinary => p.main_binary.clone_from(&old.main_binary),
                F::ProductCode | F::UpgradeCode => continue,
            }
            p.sources.insert(*field, FieldSource::User);
        }
        fresh.imported_from = self.imported_from.take();
        *self = fresh;
    }
}
