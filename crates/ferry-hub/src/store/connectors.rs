//! Connectors: registration, site settings, secrets and last contact.

use async_trait::async_trait;
use ferry_proto::connector::{Connector, SiteSettings, UpdateConnector};
use uuid::Uuid;

use super::{Actor, JobError, StoreError};

/// A connector's credential hash and state (never leaves the hub).
#[derive(Debug, Clone)]
pub struct ConnectorAuthRow {
    pub secret_hash: Vec<u8>,
    pub enabled: bool,
}

#[async_trait]
pub trait ConnectorStore {
    /// Registers a connector. [`JobError::NameTaken`] if the name is in use.
    async fn create_connector(
        &self,
        actor: &Actor,
        id: Uuid,
        name: &str,
        secret_hash: &[u8],
        site: &SiteSettings,
    ) -> Result<Connector, JobError>;

    async fn connector_auth(&self, id: Uuid) -> Result<Option<ConnectorAuthRow>, StoreError>;

    async fn get_connector(&self, id: Uuid) -> Result<Option<Connector>, StoreError>;

    /// Every connector, by name.
    async fn list_connectors(&self) -> Result<Vec<Connector>, StoreError>;

    /// Renames, enables/disables, or patches site settings. [`JobError::NotFound`],
    /// [`JobError::NameTaken`].
    async fn update_connector(
        &self,
        actor: &Actor,
        id: Uuid,
        update: &UpdateConnector,
    ) -> Result<Connector, JobError>;

    /// Replaces the secret's hash (the old secret stops working at once).
    async fn set_connector_secret(
        &self,
        actor: &Actor,
        id: Uuid,
        secret_hash: &[u8],
    ) -> Result<(), JobError>;

    /// Records connectors' last contacts `(id, unix ms)` in one statement; a contact never
    /// moves `last_seen_at` backwards.
    async fn record_contacts(&self, contacts: &[(Uuid, i64)]) -> Result<(), StoreError>;

    async fn connector_count(&self) -> Result<i64, StoreError>;
}
