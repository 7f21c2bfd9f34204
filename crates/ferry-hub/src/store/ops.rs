//! Client operations and their per-device records.
//!
//! Agent reports arrive by the thousand when an operation fans out, so they are not written
//! one transaction each: [`OpStore::apply_agent_batch`] takes everything the hub heard in the
//! last few milliseconds and commits it at once (one fsync for the lot). A report is only
//! acknowledged to its agent after that commit.

use std::collections::BTreeSet;

use async_trait::async_trait;
use ferry_proto::agent::{Assignment, Inventory};
use ferry_proto::ops::{OnInterrupt, OpOutcome, OpSpec, Operation, TargetResult, TargetState};
use uuid::Uuid;

use super::{Actor, StoreError};

/// How long after its timeout the hub still waits for a delivered or running operation's
/// result before recording it failed (a device that went offline mid-run).
pub const RESULT_GRACE_MS: i64 = 5 * 60 * 1000;

#[derive(Debug, thiserror::Error)]
pub enum OpError {
    #[error("operation not found")]
    NotFound,
    #[error("no collection with ID {0}")]
    UnknownCollection(Uuid),
    #[error("no device with ID {0}")]
    UnknownDevice(Uuid),
    #[error("the operation has no targets: the collections are empty and no devices were named")]
    NoTargets,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for OpError {
    fn from(e: sqlx::Error) -> Self {
        OpError::Store(e.into())
    }
}

/// A new operation, validated and with its packages resolved.
pub struct OpInsert {
    pub id: Uuid,
    pub spec: OpSpec,
    pub expires_at: i64,
    pub timeout_secs: u32,
    pub output_limit: u32,
    pub on_interrupt: OnInterrupt,
    pub after: Option<ferry_proto::ops::AfterSuccess>,
    /// Hold it on the device until a startup or a logon.
    pub wait: Option<ferry_proto::ops::WaitFor>,
    pub collections: Vec<Uuid>,
    pub devices: Vec<Uuid>,
}

/// One thing an agent told the hub, queued for the next batch.
#[derive(Debug, Clone)]
pub enum AgentWrite {
    Received {
        op: Uuid,
        device: Uuid,
    },
    Running {
        op: Uuid,
        device: Uuid,
    },
    Finished {
        op: Uuid,
        device: Uuid,
        outcome: OpOutcome,
    },
    Inventory {
        device: Uuid,
        inventory: Inventory,
        /// Whether a change to the rule-matched fields is vouched for at once
        /// (`inventory_changes = "trust"`) or held for an administrator's approval.
        trust: bool,
    },
    Seen {
        device: Uuid,
        at: i64,
        remote_addr: Option<String>,
    },
}

/// What a committed batch changed.
#[derive(Debug, Default)]
pub struct BatchEffect {
    /// Operations whose counts changed.
    pub ops: BTreeSet<Uuid>,
    /// (device, operation) pairs the device reported on although their record is final:
    /// the device is told to stop.
    pub stop: Vec<(Uuid, Uuid)>,
    /// What tasks' status changes queued.
    pub queued: super::helpdesk::Queued,
}

/// What the sweeper changed, and when it must look again.
#[derive(Debug, Default)]
pub struct OpSweep {
    pub ops: BTreeSet<Uuid>,
    pub expired: u64,
    pub timed_out: u64,
    pub next_deadline_ms: Option<i64>,
    /// What tasks' status changes queued.
    pub queued: super::helpdesk::Queued,
}

#[async_trait]
pub trait OpStore {
    /// Creates the operation and one record per target device (enabled devices only).
    /// Targets in `online` start `pending`, the rest `offline`. Returns the operation and
    /// every target: the caller hands the assignment to those connected *after* this commit
    /// (a session that opened meanwhile is registered by then, or reads the committed row).
    async fn create_op(
        &self,
        actor: &Actor,
        op: &OpInsert,
        online: &[Uuid],
    ) -> Result<(Operation, Vec<Uuid>), OpError>;

    async fn get_op(&self, id: Uuid) -> Result<Option<Operation>, StoreError>;

    /// The newest operations first.
    async fn list_ops(&self, limit: u32) -> Result<Vec<Operation>, StoreError>;

    /// Per-device records, by hostname.
    async fn op_results(
        &self,
        id: Uuid,
        state: Option<TargetState>,
        limit: u32,
        offset: u32,
    ) -> Result<Vec<TargetResult>, StoreError>;

    /// Marks the operation cancelled and its unfinished records `cancelled`; returns the
    /// devices that were delivered or running it (they are told to stop), and whether a
    /// task's callback was queued.
    async fn cancel_op(
        &self,
        actor: &Actor,
        id: Uuid,
    ) -> Result<(Vec<Uuid>, super::helpdesk::Queued), OpError>;

    /// What the device still has to do (or report): sent again at every session start.
    async fn open_assignments(&self, device: Uuid) -> Result<Vec<Assignment>, StoreError>;

    /// Commits a batch of agent reports (state changes, results, inventories, contacts) in
    /// one transaction; transitions only move forward and a device changes only its own rows.
    /// The statuses of tasks driven by the changed operations are recomputed in the same
    /// transaction, and their callbacks queued there.
    async fn apply_agent_batch(&self, batch: &[AgentWrite]) -> Result<BatchEffect, StoreError>;

    /// Expires undelivered targets of expired operations and fails delivered or running
    /// targets whose result is overdue.
    async fn sweep_ops(&self) -> Result<OpSweep, StoreError>;
}
