//! A connector's ConfigMgr site as the hub sees it: refreshing its inventory, and importing
//! applications from it as packages.

use ferry_proto::ErrorCode;
use ferry_proto::inventory::{ImportPayload, ImportRequest, ImportTarget, InventoryResult};
use ferry_proto::job::{Job, JobKind, JobPayload, NewJob};
use uuid::Uuid;

use crate::AppState;
use crate::error::{Error, Result};
use crate::store::{Actor, JobInsert};

/// Most applications one import job takes.
const MAX_IMPORT: usize = 1000;

impl AppState {
    /// Queues a refresh of the connector's site inventory.
    pub async fn refresh_inventory(&self, actor: &Actor, connector: Uuid) -> Result<Job> {
        let new = NewJob {
            connector_id: connector,
            kind: JobKind::Inventory,
            payload: serde_json::Value::Null,
            not_before: None,
            expires_at: None,
            max_attempts: None,
        };
        self.enqueue_job(actor, &new).await.map_err(|e| match e {
            Error::BadRequest {
                code: ErrorCode::UnknownConnector,
                ..
            } => Error::NotFound("connector"),
            other => other,
        })
    }

    /// The site as of the connector's latest inventory: folders and applications with their
    /// paths, container and resource IDs, duplicate flags and parsed metadata.
    pub async fn site_applications(&self, connector: Uuid) -> Result<InventoryResult> {
        self.store
            .get_connector(connector)
            .await?
            .ok_or(Error::NotFound("connector"))?;
        self.store
            .inventory(connector)
            .await?
            .ok_or(Error::NotFound(
                "inventory (refresh the connector's inventory first)",
            ))
    }

    /// Queues an import of applications from the connector's latest inventory, named by model
    /// name or by (unique) display name.
    pub async fn import_applications(
        &self,
        actor: &Actor,
        connector_id: Uuid,
        req: &ImportRequest,
    ) -> Result<Job> {
        let connector = self
            .store
            .get_connector(connector_id)
            .await?
            .ok_or(Error::NotFound("connector"))?;
        if req.applications.is_empty() || req.applications.len() > MAX_IMPORT {
            return Err(Error::bad(
                ErrorCode::InvalidField,
                format!("`applications` must name 1 to {MAX_IMPORT} applications"),
            ));
        }
        let inventory = self.store.inventory(connector_id).await?.ok_or_else(|| {
            Error::bad(
                ErrorCode::NoInventory,
                "refresh the connector's inventory first",
            )
        })?;
        let mut targets = Vec::new();
        for wanted in &req.applications {
            let by_model: Vec<_> = inventory
                .applications
                .iter()
                .filter(|a| &a.model_name == wanted)
                .collect();
            let matches = if by_model.is_empty() {
                inventory
                    .applications
                    .iter()
                    .filter(|a| &a.name == wanted)
                    .collect()
            } else {
                by_model
            };
            match matches.as_slice() {
                [one] => targets.push(ImportTarget {
                    model_name: one.model_name.clone(),
                    ci_id: one.ci_id,
                    name: one.name.clone(),
                }),
                [] => {
                    return Err(Error::bad(
                        ErrorCode::UnknownApplication,
                        format!("no application {wanted:?} in the latest inventory"),
                    ));
                }
                _ => {
                    return Err(Error::bad(
                        ErrorCode::AmbiguousApplication,
                        format!(
                            "{} applications are named {wanted:?}; name one by its model name",
                            matches.len()
                        ),
                    ));
                }
            }
        }
        let (Some(site_code), Some(console_path)) = (
            connector.site.site_code.clone(),
            connector.site.console_path.clone(),
        ) else {
            return Err(Error::bad(
                ErrorCode::IncompleteSite,
                "the connector's `site.site_code` and `site.console_path` must be set",
            ));
        };
        let payload = ImportPayload {
            site_code,
            console_path,
            share_path: connector.site.share_path.clone(),
            applications: targets,
        };
        let insert = JobInsert {
            connector_id,
            payload: JobPayload::Import(payload),
            not_before_ms: None,
            expires_at_ms: None,
            max_attempts: self.config.max_attempts,
        };
        self.queue_job(actor, &insert).await
    }
}
