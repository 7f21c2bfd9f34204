//! The hub's durable state, behind one seam.
//!
//! [`Store`] is a handle to a backend that implements every resource trait: [`ConnectorStore`],
//! [`JobStore`], [`PackageStore`], [`InventoryStore`], [`DeviceStore`], [`OpStore`],
//! [`IdentityStore`] and [`AuditStore`]. Each trait states its contract — what one call
//! changes, atomically, and what it refuses — so that a second backend (PostgreSQL) can be
//! written against the traits without touching a service or a handler. Today the one backend
//! is SQLite ([`sqlite`]).
//!
//! Rules every backend keeps:
//! - **One call, one transaction.** A method that changes state commits all of it, including
//!   its audit entry ([`Actor`]), or nothing.
//! - **Access checks read columns, never JSON.** What a check needs (a job's package, an
//!   operation's package, an upload's owner) is stored beside the document.
//! - **Bind parameters only.** No value is ever formatted into SQL.
//!
//! Why traits behind `dyn` rather than generics: the hub holds one store for its lifetime,
//! and a boxed future per call (tens of nanoseconds) is nothing next to a database round
//! trip; generics would thread a type parameter through every service and handler.

mod audit;
mod connectors;
mod devices;
pub mod helpdesk;
mod identity;
mod inventory;
mod jobs;
mod ops;
mod packages;
pub mod sqlite;

use std::sync::Arc;

pub use audit::{Actor, AuditStore};
pub use connectors::{ConnectorAuthRow, ConnectorStore};
pub use devices::{CatalogError, DeviceAuthRow, DeviceStore, EnrollError};
pub use helpdesk::{HelpdeskError, HelpdeskStore};
pub use identity::{
    AdminAccess, ApiKeyAuthRow, IdentityError, IdentityStore, NewSession, SessionAuthRow,
    TechnicianInsert,
};
pub use inventory::InventoryStore;
pub use jobs::{JobError, JobInsert, JobStore, MAX_PROGRESS_EVENTS, Sweep};
pub use ops::{AgentWrite, BatchEffect, OpError, OpInsert, OpStore, OpSweep, RESULT_GRACE_MS};
pub use packages::{MetadataEdit, PackageStore, UploadCaps, UploadError};

/// A backend: all the resource traits at once.
pub trait Backend:
    ConnectorStore
    + JobStore
    + PackageStore
    + InventoryStore
    + DeviceStore
    + OpStore
    + IdentityStore
    + AuditStore
    + HelpdeskStore
    + Send
    + Sync
{
    /// Closes connections; pending writes are committed or rolled back first.
    fn close(&self) -> futures_util::future::BoxFuture<'_, ()>;
}

/// The store the hub uses (cheap to clone).
pub type Store = Arc<dyn Backend>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("database migration {version} ({name}) failed: {source}")]
    Migrate {
        version: i64,
        name: &'static str,
        source: sqlx::Error,
    },
    #[error("the database was written by a newer Ferry (schema {0}); upgrade this binary")]
    TooNew(i64),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

pub(crate) fn corrupt(msg: impl Into<String>) -> StoreError {
    StoreError::Corrupt(msg.into())
}
