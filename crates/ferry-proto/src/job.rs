//! Jobs: what an administrator enqueues, what a connector leases, and what it reports back.
//!
//! A job's life: `queued → leased → running → succeeded | failed | cancelled | expired`.
//! `leased` means a connector holds it under a lease token but has not reported yet;
//! `running` means it has sent progress. A lapsed lease sends the job back to `queued`
//! (or to `failed` once its attempts are spent). Every report a connector makes carries the
//! lease token it was given, so a late answer from an old lease can be told apart and refused.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::Timestamp;
use crate::diagnostics::DiagnosticsRequest;
use crate::inventory::{ImportPayload, InventoryPayload};
use crate::push::PushPayload;

/// What a job asks its connector to do, with the parameters of that kind. On the wire it is
/// two fields of the job, `"kind": "push", "payload": {…}`; in Rust the kind and its payload
/// cannot disagree.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "payload", rename_all = "snake_case")]
pub enum JobPayload {
    Diagnostics(DiagnosticsRequest),
    Push(Box<PushPayload>),
    Inventory(InventoryPayload),
    Import(ImportPayload),
}

impl JobPayload {
    pub fn kind(&self) -> JobKind {
        match self {
            JobPayload::Diagnostics(_) => JobKind::Diagnostics,
            JobPayload::Push(_) => JobKind::Push,
            JobPayload::Inventory(_) => JobKind::Inventory,
            JobPayload::Import(_) => JobKind::Import,
        }
    }

    /// The package the job reads, if any (a push downloads it).
    pub fn package_id(&self) -> Option<Uuid> {
        match self {
            JobPayload::Push(p) => Some(p.package_id),
            _ => None,
        }
    }
}

/// What a job asks the connector to do. Unknown kinds are refused at enqueue time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    /// Report what the connector sees of its machine and of the hub. See [`crate::diagnostics`].
    Diagnostics,
    /// Push a package into the connector's ConfigMgr site. See [`crate::push`].
    Push,
    /// List the site's application folders and applications. See [`crate::inventory`].
    Inventory,
    /// Zip chosen applications' sources and upload them as packages. See [`crate::inventory`].
    Import,
}

impl JobKind {
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Diagnostics => "diagnostics",
            JobKind::Push => "push",
            JobKind::Inventory => "inventory",
            JobKind::Import => "import",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "diagnostics" => Some(JobKind::Diagnostics),
            "push" => Some(JobKind::Push),
            "inventory" => Some(JobKind::Inventory),
            "import" => Some(JobKind::Import),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Queued,
    Leased,
    Running,
    Succeeded,
    Failed,
    Cancelled,
    Expired,
}

impl JobState {
    pub const ALL: [JobState; 7] = [
        JobState::Queued,
        JobState::Leased,
        JobState::Running,
        JobState::Succeeded,
        JobState::Failed,
        JobState::Cancelled,
        JobState::Expired,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Leased => "leased",
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
            JobState::Expired => "expired",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// A terminal state never changes again.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobState::Succeeded | JobState::Failed | JobState::Cancelled | JobState::Expired
        )
    }
}

/// `POST /api/v1/jobs` — enqueue a job for one connector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewJob {
    pub connector_id: Uuid,
    pub kind: JobKind,
    /// Kind-specific parameters (a [`DiagnosticsRequest`] for `diagnostics`, nothing for
    /// `inventory`); read as that kind's type, with unknown fields refused, before anything is
    /// stored. `push` and `import` jobs have routes of their own.
    #[serde(default)]
    pub payload: serde_json::Value,
    /// Do not hand the job out before this time.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub not_before: Option<Timestamp>,
    /// A job still queued at this time ends `expired` instead of running late.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub expires_at: Option<Timestamp>,
    /// How many leases the job may use up before it fails; the hub's default when absent.
    #[serde(default)]
    pub max_attempts: Option<u32>,
}

/// A job as the hub shows it to administrators.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Job {
    pub id: Uuid,
    pub connector_id: Uuid,
    /// `kind` and `payload`.
    #[serde(flatten)]
    pub payload: JobPayload,
    pub state: JobState,
    pub attempts: u32,
    pub max_attempts: u32,
    pub cancel_requested: bool,
    #[serde(with = "time::serde::rfc3339::option")]
    pub lease_expires_at: Option<Timestamp>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub not_before: Option<Timestamp>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<Timestamp>,
    /// The connector's result document, as the raw JSON it sent (see [`JobReport`]).
    pub result: Option<Box<serde_json::value::RawValue>>,
    /// Why the job failed, was cancelled or expired.
    pub error: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: Timestamp,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: Timestamp,
    #[serde(with = "time::serde::rfc3339::option")]
    pub finished_at: Option<Timestamp>,
    /// State changes and progress, oldest first (only in single-job responses).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<JobEvent>,
}

impl Job {
    /// The result document as a JSON tree (for people and small documents).
    pub fn result_value(&self) -> Option<serde_json::Value> {
        self.result_as()
    }

    /// The result document read as `T`, if it is one.
    pub fn result_as<T: serde::de::DeserializeOwned>(&self) -> Option<T> {
        serde_json::from_str(self.result.as_ref()?.get()).ok()
    }
}

/// One entry of a job's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobEvent {
    #[serde(with = "time::serde::rfc3339")]
    pub at: Timestamp,
    pub attempt: u32,
    /// The state the job entered, or `None` for a progress report.
    pub state: Option<JobState>,
    pub step: Option<String>,
    pub message: Option<String>,
    pub percent: Option<u8>,
}

/// What a connector receives from `GET /api/v1/connector/jobs/next`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeasedJob {
    pub id: Uuid,
    /// `kind` and `payload`.
    #[serde(flatten)]
    pub payload: JobPayload,
    /// Proof of this lease; every report about the job must carry it.
    pub lease_token: Uuid,
    #[serde(with = "time::serde::rfc3339")]
    pub lease_expires_at: Timestamp,
    /// The lease duration, so the connector can renew well before it lapses.
    pub lease_secs: u32,
    /// 1 for the first lease, 2 after one lapse, and so on.
    pub attempt: u32,
    /// When the job was committed to the queue (for pickup-latency measurements).
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: Timestamp,
}

/// `POST /api/v1/connector/jobs/{id}/progress`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProgressReport {
    pub lease_token: Uuid,
    pub step: String,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub percent: Option<u8>,
}

/// `POST /api/v1/connector/jobs/{id}/lease` (renew) and `/release`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeaseRef {
    pub lease_token: Uuid,
}

/// The hub's answer to progress and renewals: the new lease expiry and whether an
/// administrator asked to cancel the job (the connector should stop and report `cancelled`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseStatus {
    #[serde(with = "time::serde::rfc3339")]
    pub lease_expires_at: Timestamp,
    pub cancel_requested: bool,
}

/// How a job ended, as the connector reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Succeeded,
    Failed,
    Cancelled,
}

impl Job {
    pub fn kind(&self) -> JobKind {
        self.payload.kind()
    }
}

impl LeasedJob {
    pub fn kind(&self) -> JobKind {
        self.payload.kind()
    }
}

impl Outcome {
    pub fn state(self) -> JobState {
        match self {
            Outcome::Succeeded => JobState::Succeeded,
            Outcome::Failed => JobState::Failed,
            Outcome::Cancelled => JobState::Cancelled,
        }
    }
}

/// `POST /api/v1/connector/jobs/{id}/result`. Idempotent: the same report under the same
/// lease token is accepted again with the same answer; a different one is a conflict.
///
/// The result is kept as raw JSON text (checked to be JSON, never built into a tree): a
/// report of tens of megabytes must cost the hub its size, not twenty times its size.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobReport {
    pub lease_token: Uuid,
    pub outcome: Outcome,
    #[serde(default)]
    pub result: Option<Box<serde_json::value::RawValue>>,
    #[serde(default)]
    pub error: Option<String>,
}

/// `GET /api/v1/jobs` query.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobFilter {
    pub connector_id: Option<Uuid>,
    pub state: Option<JobState>,
    pub limit: Option<u32>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_carries_kind_and_payload_as_two_fields() {
        let job = LeasedJob {
            id: Uuid::nil(),
            payload: JobPayload::Inventory(InventoryPayload {
                site_code: "DEM".into(),
                console_path: "C:\\bin".into(),
            }),
            lease_token: Uuid::nil(),
            lease_expires_at: time::OffsetDateTime::UNIX_EPOCH,
            lease_secs: 60,
            attempt: 1,
            created_at: time::OffsetDateTime::UNIX_EPOCH,
        };
        let json = serde_json::to_value(&job).unwrap();
        assert_eq!(json["kind"], "inventory");
        assert_eq!(json["payload"]["site_code"], "DEM");
        let back: LeasedJob = serde_json::from_value(json).unwrap();
        assert_eq!(back, job);
    }

    #[test]
    fn a_payload_that_does_not_fit_its_kind_is_refused() {
        let json = serde_json::json!({
            "kind": "inventory", "payload": {"rtt_samples": 3},
        });
        assert!(serde_json::from_value::<JobPayload>(json).is_err());
    }
}
