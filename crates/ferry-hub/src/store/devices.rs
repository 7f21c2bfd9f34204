//! Enrolment secrets, devices, collections and deployments.

use async_trait::async_trait;
use ferry_proto::agent::Inventory;
use ferry_proto::ops::{
    Collection, CollectionRule, Deployment, Device, EnrollmentSecret, NewDeployment,
    PolicyDeployment,
};
use uuid::Uuid;

use super::{Actor, StoreError};

/// A device's credentials, for authentication.
#[derive(Debug, Clone)]
pub struct DeviceAuthRow {
    pub token_hash: Vec<u8>,
    /// A token the device asked for and has not used yet (see
    /// [`DeviceStore::set_pending_token`]).
    pub pending_token_hash: Option<Vec<u8>>,
    pub enabled: bool,
}

/// Why an enrolment was refused (after the secret itself checked out).
#[derive(Debug, thiserror::Error)]
pub enum EnrollError {
    #[error("this enrolment secret has expired")]
    Expired,
    #[error("this enrolment secret has been used as often as it may be")]
    UsedUp,
    #[error("this enrolment secret has been revoked")]
    Revoked,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for EnrollError {
    fn from(e: sqlx::Error) -> Self {
        EnrollError::Store(e.into())
    }
}

/// Why a collection or deployment change was refused.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("not found")]
    NotFound,
    #[error("a collection named {0:?} already exists")]
    NameTaken(String),
    #[error("no device with ID {0}")]
    UnknownDevice(Uuid),
    #[error("no collection with ID {0}")]
    UnknownCollection(Uuid),
    #[error("no package with ID {0}")]
    UnknownPackage(Uuid),
    #[error("members of a rule collection follow its rule; only static collections take devices")]
    NotStatic,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for CatalogError {
    fn from(e: sqlx::Error) -> Self {
        CatalogError::Store(e.into())
    }
}

#[async_trait]
pub trait DeviceStore {
    // ----- enrolment secrets -----

    async fn create_enrollment_secret(
        &self,
        actor: &Actor,
        id: Uuid,
        name: &str,
        hash: &[u8],
        expires_at: Option<i64>,
        max_uses: Option<u32>,
    ) -> Result<EnrollmentSecret, StoreError>;

    async fn list_enrollment_secrets(&self) -> Result<Vec<EnrollmentSecret>, StoreError>;

    async fn revoke_enrollment_secret(
        &self,
        actor: &Actor,
        id: Uuid,
    ) -> Result<Option<EnrollmentSecret>, StoreError>;

    async fn enrollment_secret_hash(&self, id: Uuid) -> Result<Option<Vec<u8>>, StoreError>;

    /// Uses one enrolment of the secret and creates the device, in one transaction (two
    /// devices racing for the last use cannot both get in); the device joins the rule
    /// collections its inventory matches.
    async fn enroll_device(
        &self,
        actor: &Actor,
        secret_id: Uuid,
        device_id: Uuid,
        token_hash: &[u8],
        inv: &Inventory,
    ) -> Result<Device, EnrollError>;

    /// Accepts the device's reported rule-matched fields as vouched for (an administrator
    /// approved them) and puts it into exactly the rule collections they match. `None` if
    /// there is no such device.
    async fn approve_inventory(
        &self,
        actor: &Actor,
        id: Uuid,
        facts: &ferry_proto::ops::RuleFacts,
    ) -> Result<Option<Device>, StoreError>;

    /// Pre-registers devices with their tokens' hashes in one transaction (imaging, bulk
    /// provisioning), each joining the rule collections it matches.
    async fn import_devices(
        &self,
        actor: &Actor,
        devices: &[(Uuid, Vec<u8>, Inventory)],
    ) -> Result<(), StoreError>;

    // ----- devices -----

    async fn device_auth(&self, id: Uuid) -> Result<Option<DeviceAuthRow>, StoreError>;

    async fn get_device(&self, id: Uuid) -> Result<Option<Device>, StoreError>;

    /// Every device, or a collection's members; by hostname.
    async fn list_devices(&self, collection: Option<Uuid>) -> Result<Vec<Device>, StoreError>;

    /// `false` if there is no such device.
    async fn set_device_enabled(
        &self,
        actor: &Actor,
        id: Uuid,
        enabled: bool,
    ) -> Result<bool, StoreError>;

    /// Replaces the token (the old one stops working at once). `false` if no such device.
    async fn set_device_token(
        &self,
        actor: &Actor,
        id: Uuid,
        hash: &[u8],
    ) -> Result<bool, StoreError>;

    /// Stores the hash of a token the device asked for; it replaces the current one when the
    /// device first presents it ([`DeviceStore::promote_pending_token`]).
    async fn set_pending_token(
        &self,
        actor: &Actor,
        id: Uuid,
        hash: &[u8],
    ) -> Result<bool, StoreError>;

    /// The device used its new token: it becomes the only one.
    async fn promote_pending_token(&self, id: Uuid, hash: &[u8]) -> Result<bool, StoreError>;

    // ----- collections -----

    async fn create_collection(
        &self,
        actor: &Actor,
        id: Uuid,
        name: &str,
        rule: Option<&CollectionRule>,
        devices: &[Uuid],
    ) -> Result<Collection, CatalogError>;

    async fn get_collection(&self, id: Uuid) -> Result<Option<Collection>, StoreError>;

    async fn list_collections(&self) -> Result<Vec<Collection>, StoreError>;

    async fn delete_collection(&self, actor: &Actor, id: Uuid) -> Result<bool, StoreError>;

    /// Adds and removes members of a static collection.
    async fn change_members(
        &self,
        actor: &Actor,
        id: Uuid,
        add: &[Uuid],
        remove: &[Uuid],
    ) -> Result<Collection, CatalogError>;

    // ----- deployments -----

    async fn create_deployment(
        &self,
        actor: &Actor,
        id: Uuid,
        new: &NewDeployment,
    ) -> Result<Deployment, CatalogError>;

    async fn list_deployments(&self) -> Result<Vec<Deployment>, StoreError>;

    async fn delete_deployment(&self, actor: &Actor, id: Uuid) -> Result<bool, StoreError>;

    /// The deployments assigned to the device's collections.
    async fn policy(&self, device: Uuid) -> Result<Vec<PolicyDeployment>, StoreError>;

    /// A device may download a package deployed to one of its collections, or one an
    /// unfinished operation addressed to it installs.
    async fn device_may_read_package(
        &self,
        device: Uuid,
        package: Uuid,
    ) -> Result<bool, StoreError>;
}
