//! The job queue: what administrators enqueue and connectors lease, run and report.
//!
//! The queue's rules, which every backend keeps inside single transactions:
//! - jobs of a connector are leased oldest first (by a sequence number the backend assigns
//!   at insert, never `MAX()+1` read back), one lease at a time per job, to that connector
//!   only, and only while it is enabled;
//! - every report carries the lease token; a stale token is [`JobError::StaleLease`], the same
//!   final report twice is accepted again (idempotent), a different one after the end is
//!   [`JobError::Finished`];
//! - a lapsed lease counts as an attempt; after `max_attempts` the job fails; a release by a
//!   stopping connector does not count.
//!
//! A PostgreSQL backend leases with `… WHERE id = (SELECT id … ORDER BY seq LIMIT 1 FOR UPDATE
//! SKIP LOCKED)`; SQLite, with one writer, needs no skip.

use async_trait::async_trait;
use ferry_proto::job::{Job, JobFilter, JobPayload, JobReport, JobState, LeaseStatus, LeasedJob};
use uuid::Uuid;

use super::{Actor, StoreError};

/// Progress events kept per job; later reports still renew the lease but are not stored.
pub const MAX_PROGRESS_EVENTS: i64 = 10_000;

/// Why a connector's report about a job was refused.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("job not found")]
    NotFound,
    #[error(
        "this lease is no longer valid: the job was handed out again after it lapsed, or was released"
    )]
    StaleLease,
    #[error("the job has already finished ({0})")]
    Finished(&'static str),
    #[error("a connector with this name already exists")]
    NameTaken,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for JobError {
    fn from(e: sqlx::Error) -> Self {
        JobError::Store(StoreError::Db(e))
    }
}

/// Parameters of a new job, already validated.
#[derive(Debug, Clone)]
pub struct JobInsert {
    pub connector_id: Uuid,
    pub payload: JobPayload,
    pub not_before_ms: Option<i64>,
    pub expires_at_ms: Option<i64>,
    pub max_attempts: u32,
}

/// What the sweeper did and when it should look again.
#[derive(Debug, Default)]
pub struct Sweep {
    /// Connectors that have a job to pick up again (lapsed lease, or `not_before` reached).
    pub wake: Vec<Uuid>,
    pub requeued: u64,
    pub failed: u64,
    pub expired: u64,
    /// The earliest future time (Unix ms) at which a lease lapses or a timer fires.
    pub next_deadline_ms: Option<i64>,
}

#[async_trait]
pub trait JobStore {
    /// Queues a job. [`JobError::NotFound`] if the connector does not exist.
    async fn insert_job(&self, actor: &Actor, job: &JobInsert) -> Result<Job, JobError>;

    async fn get_job(&self, id: Uuid, with_events: bool) -> Result<Option<Job>, StoreError>;

    /// The connector a job belongs to (one indexed read: checked before a report is read).
    async fn job_connector(&self, id: Uuid) -> Result<Option<Uuid>, StoreError>;

    /// Newest first, at most `filter.limit` (100 by default, 1,000 at most).
    async fn list_jobs(&self, filter: &JobFilter) -> Result<Vec<Job>, StoreError>;

    /// A queued job ends at once; a leased or running one is marked, and its connector learns
    /// it at its next contact. [`JobError::Finished`] if it already ended.
    async fn cancel_job(&self, actor: &Actor, id: Uuid) -> Result<Job, JobError>;

    /// Whether `connector` has a job it could lease now (a read; most long polls find none).
    async fn has_due_job(&self, connector: Uuid) -> Result<bool, StoreError>;

    /// Hands the oldest due job of `connector` to it under a new lease, if there is one.
    async fn lease_next(
        &self,
        connector: Uuid,
        lease_ms: i64,
    ) -> Result<Option<LeasedJob>, StoreError>;

    /// Extends a lease; also how a connector learns of a cancellation.
    async fn renew_lease(
        &self,
        job: Uuid,
        connector: Uuid,
        token: Uuid,
        lease_ms: i64,
    ) -> Result<LeaseStatus, JobError>;

    /// Records a progress event (the first moves the job to `running`) and extends the lease.
    #[allow(clippy::too_many_arguments)]
    async fn progress(
        &self,
        job: Uuid,
        connector: Uuid,
        token: Uuid,
        lease_ms: i64,
        step: &str,
        message: Option<&str>,
        percent: Option<u8>,
    ) -> Result<LeaseStatus, JobError>;

    /// Records how a job ended. The flag says whether this was a replay of the report that
    /// already ended it (nothing changed, nothing to act on).
    async fn finish(
        &self,
        job: Uuid,
        connector: Uuid,
        report: &JobReport,
    ) -> Result<(Job, bool), JobError>;

    /// A connector gives a job back unfinished: queued again at once, the attempt not counted
    /// (or `cancelled`, if a cancel was requested). Returns the new state.
    async fn release(&self, job: Uuid, connector: Uuid, token: Uuid) -> Result<JobState, JobError>;

    /// Gives every open lease at least `until_ms`: a hub that was down must not lapse leases
    /// for its own absence (their connectors could not renew). Returns how many.
    async fn extend_open_leases(&self, until_ms: i64) -> Result<u64, StoreError>;

    /// Resolves lapsed leases and expired jobs as of now and finds the next deadline;
    /// `since_ms` is the previous sweep's time (delayed jobs due in between wake their
    /// connectors).
    async fn sweep(&self, since_ms: i64) -> Result<Sweep, StoreError>;

    /// Job counts per state, for `/metrics`.
    async fn job_counts(&self) -> Result<Vec<(JobState, i64)>, StoreError>;
}
