//! Refreshing a connector's view of its ConfigMgr site: the `inventory` job and what the hub
//! keeps and shows from it.

use serde::{Deserialize, Serialize};

/// The payload of an `inventory` job (filled from the connector's site settings).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InventoryPayload {
    pub site_code: String,
    pub console_path: String,
}

/// A console folder for applications (`SMS_ObjectContainerNode`, ObjectType 6000).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteFolder {
    pub container_node_id: u64,
    pub name: String,
    /// 0 for a folder directly under the Applications node.
    pub parent_container_node_id: u64,
    /// `/Parent/Child`.
    pub path: String,
}

/// An application in the site, as the hub shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SiteApplication {
    pub ci_id: u64,
    pub model_name: String,
    /// `LocalizedDisplayName`.
    pub name: String,
    /// Console folder path (`/Test 1`); `/` for the Applications node itself.
    pub path: String,
    /// The folder's `ContainerNodeID`, when the application is in a folder.
    pub container_id: Option<u64>,
    /// The resource ID of the application's display title in its SDMPackageXML (`Res_…`).
    pub resource_id: Option<String>,
    /// Another application in the site has the same display name.
    pub is_duplicated: bool,
    /// The parsed SDMPackageXML (`ferry_sccm::sdm::Application`), when it parsed.
    pub metadata: Option<serde_json::Value>,
    /// Why the SDMPackageXML did not parse, when it did not.
    pub parse_error: Option<String>,
}

/// The result document of an `inventory` job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InventoryResult {
    pub site_code: String,
    pub folders: Vec<SiteFolder>,
    pub applications: Vec<SiteApplication>,
}

/// `POST /api/v1/connectors/{id}/import`: applications to import, by model name or by display
/// name (a duplicated display name must be given as its model name).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportRequest {
    pub applications: Vec<String>,
}

/// One application an `import` job fetches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportTarget {
    pub model_name: String,
    pub ci_id: u64,
    pub name: String,
}

/// The payload of an `import` job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportPayload {
    pub site_code: String,
    pub console_path: String,
    /// The site's source share as ConfigMgr knows it; content locations below it are read
    /// from the connector's local `share_dir` when that is set.
    pub share_path: Option<String>,
    pub applications: Vec<ImportTarget>,
}

/// What an `import` job produced for one application.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImportedApplication {
    pub model_name: String,
    pub ci_id: u64,
    pub name: String,
    pub content_location: String,
    pub package_id: uuid::Uuid,
    pub sha256: String,
    pub files: usize,
    /// The application's parsed SDMPackageXML.
    pub metadata: serde_json::Value,
}

/// The result document of an `import` job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImportResult {
    pub imports: Vec<ImportedApplication>,
}
