//! Connector registration and SCCM site settings.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::Timestamp;

/// `POST /api/v1/connectors` — register a connector.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewConnector {
    pub name: String,
    #[serde(default)]
    pub site: SiteSettings,
}

/// The answer to a registration or a secret rotation. The secret is shown here once and
/// never again: the hub keeps only a keyed hash of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectorCredentials {
    pub remote_id: Uuid,
    pub secret: String,
}

/// Where a connector's ConfigMgr site lives, as the administrator configured it in the hub.
/// Every field is optional until a job needs it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteSettings {
    /// Three-character site code, e.g. `DEM`.
    pub site_code: Option<String>,
    /// The admin console's `bin` folder (holds `ConfigurationManager.psd1`).
    pub console_path: Option<String>,
    /// Network share for package sources, e.g. `\\server\Sources$\incoming`.
    pub share_path: Option<String>,
    pub distribution_point_group: Option<String>,
    pub collection: Option<String>,
    /// Console folder for new applications, e.g. `Applications/Test 1`.
    pub folder: Option<String>,
}

/// `PATCH /api/v1/connectors/{id}`: every field optional; absent means unchanged.
/// In `site`, a field set to `null` clears it; a missing field leaves it as it was.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateConnector {
    pub name: Option<String>,
    pub enabled: Option<bool>,
    pub site: Option<SiteSettingsPatch>,
}

/// A partial update of [`SiteSettings`]: `Some(None)` clears, `None` keeps.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteSettingsPatch {
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::double_option"
    )]
    pub site_code: Option<Option<String>>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::double_option"
    )]
    pub console_path: Option<Option<String>>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::double_option"
    )]
    pub share_path: Option<Option<String>>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::double_option"
    )]
    pub distribution_point_group: Option<Option<String>>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::double_option"
    )]
    pub collection: Option<Option<String>>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::double_option"
    )]
    pub folder: Option<Option<String>>,
}

impl SiteSettings {
    pub fn apply(&mut self, patch: &SiteSettingsPatch) {
        fn set(slot: &mut Option<String>, value: &Option<Option<String>>) {
            if let Some(v) = value {
                slot.clone_from(v);
            }
        }
        set(&mut self.site_code, &patch.site_code);
        set(&mut self.console_path, &patch.console_path);
        set(&mut self.share_path, &patch.share_path);
        set(
            &mut self.distribution_point_group,
            &patch.distribution_point_group,
        );
        set(&mut self.collection, &patch.collection);
        set(&mut self.folder, &patch.folder);
    }
}

/// A connector as the hub shows it to administrators.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Connector {
    pub id: Uuid,
    pub name: String,
    pub enabled: bool,
    pub site: SiteSettings,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: Timestamp,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_seen_at: Option<Timestamp>,
    /// Heard from within the last long-poll hold (plus a margin): a connected connector asks
    /// again at once after every answer, so silence longer than that means it is not polling.
    #[serde(default)]
    pub online: bool,
    #[serde(with = "time::serde::rfc3339::option")]
    pub secret_rotated_at: Option<Timestamp>,
}
