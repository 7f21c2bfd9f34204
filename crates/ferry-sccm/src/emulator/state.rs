//! The emulated site's data: what `site.json` holds, and the demo site.

use serde::{Deserialize, Serialize};

/// First ID ConfigMgr hands out for CIs, folders and assignments (0x01000001).
pub(super) const FIRST_ID: u32 = 16_777_217;

/// The persisted state of a site.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SiteState {
    pub site_code: String,
    /// `ScopeId_<GUID>`: the site's authoring scope, prefix of every model name.
    pub scope_id: String,
    /// The SMS Provider's computer name (the CMSite drive's `Root`).
    pub provider: String,
    pub distribution_point_groups: Vec<String>,
    pub collections: Vec<Collection>,
    pub folders: Vec<Folder>,
    pub folder_items: Vec<FolderItem>,
    pub applications: Vec<Application>,
    pub deployments: Vec<Deployment>,
    pub next_id: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Collection {
    pub id: String,
    pub name: String,
}

/// An `SMS_ObjectContainerNode` row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Folder {
    pub container_node_id: u32,
    pub name: String,
    /// 0 for a folder at the root of its object type.
    pub parent_container_node_id: u32,
    pub object_type: u32,
}

/// An `SMS_ObjectContainerItem` row: `instance_key` is the application's model name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FolderItem {
    pub member_id: u32,
    pub container_node_id: u32,
    pub instance_key: String,
    pub object_type: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Application {
    pub ci_id: u32,
    pub logical_name: String,
    pub model_name: String,
    pub revision: u32,
    pub name: String,
    pub description: String,
    pub publisher: String,
    pub software_version: String,
    pub optional_reference: String,
    pub owners: Vec<String>,
    pub localized_name: String,
    pub auto_install: bool,
    pub default_language_id: Option<u32>,
    pub deployment_types: Vec<DeploymentType>,
    /// Content distribution per DP group: the application revision last distributed.
    pub content: Vec<ContentStatus>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContentStatus {
    pub distribution_point_group: String,
    pub revision: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeploymentType {
    pub ci_id: u32,
    pub logical_name: String,
    pub revision: u32,
    pub name: String,
    /// `Script` or `MSI`.
    pub technology: String,
    pub content_location: String,
    pub install_command: String,
    pub uninstall_command: Option<String>,
    pub detection: DtDetection,
    pub cache_content: bool,
    pub slow_network: String,
    pub max_runtime_mins: u32,
    pub estimated_runtime_mins: u32,
    pub force_32bit: bool,
    pub comment: String,
    pub languages: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DtDetection {
    Script {
        language: String,
        text: String,
        run_as_32bit: bool,
    },
    ProductCode(String),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deployment {
    pub assignment_id: u32,
    pub assignment_unique_id: String,
    pub application_model_name: String,
    pub application_name: String,
    pub collection_id: String,
    pub collection_name: String,
    pub action: String,
    pub purpose: String,
    pub available: Option<String>,
    pub deadline: Option<String>,
    pub time_base: String,
}

impl SiteState {
    /// The demo site: site code `DEM`, DP group `Demo Distribution Group`, collection
    /// `Demo devices`, application folder `Test 1`.
    pub fn demo() -> SiteState {
        SiteState {
            site_code: "DEM".into(),
            scope_id: format!(
                "ScopeId_{}",
                uuid::Uuid::new_v4().to_string().to_uppercase()
            ),
            provider: "cm01.demo.local".into(),
            distribution_point_groups: vec!["Demo Distribution Group".into()],
            collections: vec![
                Collection {
                    id: "SMS00001".into(),
                    name: "All Systems".into(),
                },
                Collection {
                    id: "DEM00015".into(),
                    name: "Demo devices".into(),
                },
            ],
            folders: vec![Folder {
                container_node_id: FIRST_ID,
                name: "Test 1".into(),
                parent_container_node_id: 0,
                object_type: 6000,
            }],
            folder_items: Vec::new(),
            applications: Vec::new(),
            deployments: Vec::new(),
            next_id: FIRST_ID + 1,
        }
    }
}
