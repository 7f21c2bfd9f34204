//! Who did what: the actor every state change is recorded under, and the audit log.

use std::net::IpAddr;

use async_trait::async_trait;
use ferry_proto::identity::{ActorKind, AuditEntry, AuditQuery, Via};
use uuid::Uuid;

use super::StoreError;

/// Who is changing something, as the audit log records it: the kind of caller, its id, a name
/// for people, how it proved who it is, and from which address. Every store method that
/// changes state takes one and writes the audit entry in the same transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub kind: ActorKind,
    pub id: Option<Uuid>,
    /// The technician's name, `connector:<id>`, `device:<id>`, or `hub`.
    pub name: String,
    pub via: Option<Via>,
    pub address: Option<IpAddr>,
}

impl Actor {
    /// The hub itself (first start, upgrades).
    pub fn hub() -> Self {
        Actor {
            kind: ActorKind::Hub,
            id: None,
            name: "hub".to_owned(),
            via: Some(Via::Hub),
            address: None,
        }
    }

    pub fn connector(id: Uuid, address: Option<IpAddr>) -> Self {
        Actor {
            kind: ActorKind::Connector,
            id: Some(id),
            name: format!("connector:{id}"),
            via: Some(Via::ConnectorSecret),
            address,
        }
    }

    pub fn device(id: Uuid, via: Via, address: Option<IpAddr>) -> Self {
        Actor {
            kind: ActorKind::Device,
            id: Some(id),
            name: format!("device:{id}"),
            via: Some(via),
            address,
        }
    }

    pub fn technician(id: Uuid, name: &str, via: Via, address: Option<IpAddr>) -> Self {
        Actor {
            kind: ActorKind::Technician,
            id: Some(id),
            name: name.to_owned(),
            via: Some(via),
            address,
        }
    }

    /// The connector this actor is, if it is one.
    pub fn connector_id(&self) -> Option<Uuid> {
        (self.kind == ActorKind::Connector)
            .then_some(self.id)
            .flatten()
    }
}

#[async_trait]
pub trait AuditStore {
    /// Entries matching `query`, newest first (at most `query.limit`, 100 by default, 1,000
    /// at most).
    async fn audit_log(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>, StoreError>;
}
