//! Resumable uploads and the packages they become.

use async_trait::async_trait;
use ferry_proto::ops::PackageRef;
use ferry_proto::package::{ImportSource, NewUpload, Package, PackageMetadata, Upload};
use uuid::Uuid;

use super::{Actor, StoreError};

/// An edit of a package's metadata, run inside the store's transaction; returns the names of
/// the fields it changed, for the audit entry.
pub type MetadataEdit<'a> = dyn Fn(&mut PackageMetadata) -> Vec<&'static str> + Send + Sync + 'a;

/// Why an upload could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// The caller already has `open` uploads open, declaring `bytes` together.
    #[error("you have {open} uploads open declaring {bytes} bytes; finish or abandon them first")]
    TooMany { open: u64, bytes: u64 },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for UploadError {
    fn from(e: sqlx::Error) -> Self {
        UploadError::Store(e.into())
    }
}

/// The most one caller may have open (checked in the same transaction that opens one).
#[derive(Debug, Clone, Copy)]
pub struct UploadCaps {
    pub uploads: u64,
    pub bytes: u64,
}

#[async_trait]
pub trait PackageStore {
    /// Opens an upload owned by `actor`, within `caps` for that owner.
    async fn create_upload(
        &self,
        actor: &Actor,
        new: &NewUpload,
        caps: UploadCaps,
    ) -> Result<Upload, UploadError>;

    async fn get_upload(&self, id: Uuid) -> Result<Option<Upload>, StoreError>;

    /// The connector that opened the upload, if a connector did.
    async fn upload_connector(&self, id: Uuid) -> Result<Option<Option<Uuid>>, StoreError>;

    /// Records bytes durably received (only while the upload is open).
    async fn set_upload_received(&self, id: Uuid, received: u64) -> Result<(), StoreError>;

    /// Removes open uploads created before `opened_before_ms` or that received nothing since
    /// `idle_since_ms`; returns their IDs (the caller deletes their part files).
    async fn expire_uploads(
        &self,
        opened_before_ms: i64,
        idle_since_ms: i64,
    ) -> Result<Vec<Uuid>, StoreError>;

    /// Removes an open upload (a refused package).
    async fn delete_upload(&self, id: Uuid) -> Result<(), StoreError>;

    /// Creates the package for a completed upload, or finds the package that already holds
    /// the same bytes, and closes the upload. Returns the package and whether it is new.
    async fn complete_upload(
        &self,
        actor: &Actor,
        upload: &Upload,
        sha256: &str,
        metadata: &PackageMetadata,
    ) -> Result<(Package, bool), StoreError>;

    /// Changes a package's metadata with `edit` inside one transaction (read, edit, write,
    /// audit `package.update` with the field names `edit` returns). `None` if there is no such
    /// package.
    async fn update_package_metadata(
        &self,
        actor: &Actor,
        id: Uuid,
        edit: &MetadataEdit<'_>,
    ) -> Result<Option<Package>, StoreError>;

    /// Records where an imported package came from, but only for a package whose upload the
    /// connector made itself (a connector cannot relabel others' packages). Returns whether
    /// the package was updated.
    async fn set_package_source(
        &self,
        actor: &Actor,
        id: Uuid,
        connector: Uuid,
        source: &ImportSource,
    ) -> Result<bool, StoreError>;

    async fn get_package(&self, id: Uuid) -> Result<Option<Package>, StoreError>;

    /// Newest first.
    async fn list_packages(&self) -> Result<Vec<Package>, StoreError>;

    /// What an agent needs to fetch and run a package.
    async fn package_ref(&self, id: Uuid) -> Result<Option<PackageRef>, StoreError>;

    /// A connector may read a package it was asked to push, or one it imported itself.
    async fn connector_may_read_package(
        &self,
        connector: Uuid,
        package: Uuid,
    ) -> Result<bool, StoreError>;
}
