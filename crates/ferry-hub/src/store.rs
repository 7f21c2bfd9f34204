//! The hub's durable state in SQLite: connectors, jobs, job history and the audit log.
//!
//! Every state change of a job is one `BEGIN IMMEDIATE` transaction on the single writer
//! connection, so the queue's rules (one lease per job, idempotent reports, bounded attempts)
//! hold by construction, and a killed hub restarts into a consistent queue. Reads go through
//! a separate pool so that long lists never wait behind writes.
//!
//! Why one writer connection: SQLite admits one writer at a time anyway. Letting many pooled
//! connections race for the lock makes them sleep-and-retry inside SQLite's busy handler
//! (milliseconds each), which is exactly the latency a long-poll queue exists to avoid.
//! Queueing writers on the pool instead is FIFO and wakes each one the moment the last is done.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use ferry_proto::connector::{Connector, SiteSettings, UpdateConnector};
use ferry_proto::job::{
    Job, JobEvent, JobFilter, JobKind, JobPayload, JobReport, JobState, LeaseStatus, LeasedJob,
    Outcome,
};
use ferry_proto::package::{
    ImportSource, MetadataPatch, NewUpload, Package, PackageMetadata, Upload, UploadState,
};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Row, Sqlite, Transaction};
use uuid::Uuid;

use crate::config::Synchronous;

mod devices;
mod ops;

use crate::time_util::{from_ms, now_ms};
pub use devices::{CatalogError, DeviceAuthRow, EnrollError};
pub use ops::{AgentWrite, BatchEffect, OpError, OpInsert, OpSweep, RESULT_GRACE_MS};

/// Schema migrations, embedded in the binary, applied in order once each. A hand-rolled runner
/// (one table, one loop) instead of sqlx's macro keeps the proc-macro stack out of the build.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "init", include_str!("../migrations/0001_init.sql")),
    (
        2,
        "packages",
        include_str!("../migrations/0002_packages.sql"),
    ),
    (
        3,
        "inventory",
        include_str!("../migrations/0003_inventory.sql"),
    ),
    (
        4,
        "progress_cap",
        include_str!("../migrations/0004_progress_cap.sql"),
    ),
    (5, "agents", include_str!("../migrations/0005_agents.sql")),
    (
        6,
        "pending_token",
        include_str!("../migrations/0006_pending_token.sql"),
    ),
];

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

/// A connector row with its credential hash (never leaves the hub).
#[derive(Debug, Clone)]
pub struct ConnectorAuthRow {
    pub secret_hash: Vec<u8>,
    pub enabled: bool,
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

/// Parameters of a new job, already validated.
#[derive(Debug, Clone)]
pub struct JobInsert {
    pub connector_id: Uuid,
    pub payload: JobPayload,
    pub not_before_ms: Option<i64>,
    pub expires_at_ms: Option<i64>,
    pub max_attempts: u32,
}

/// Progress events kept per job; later reports still renew the lease but are not stored.
pub const MAX_PROGRESS_EVENTS: i64 = 10_000;

#[derive(Clone)]
pub struct Store {
    write: SqlitePool,
    read: SqlitePool,
}

/// `SELECT <every job column> FROM jobs <rest>`, as a literal (sqlx refuses dynamic SQL strings).
macro_rules! select_jobs {
    ($rest:literal) => {
        concat!(
            "SELECT id, connector_id, kind, payload, state, attempts, max_attempts, \
             cancel_requested, lease_expires_at, not_before, expires_at, result, error, created_at, \
             updated_at, finished_at FROM jobs ",
            $rest
        )
    };
}

impl Store {
    /// Opens (creating if needed) `ferry.db` in `dir` and applies pending migrations.
    pub async fn open(dir: &Path, synchronous: Synchronous) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::new()
            .filename(dir.join("ferry.db"))
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(match synchronous {
                Synchronous::Full => SqliteSynchronous::Full,
                Synchronous::Normal => SqliteSynchronous::Normal,
            })
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(30))
            .acquire_slow_threshold(Duration::from_secs(10))
            .connect_with(options.clone())
            .await?;
        migrate(&write).await?;
        let read = SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(30))
            // Thousands of agents reconnecting at once queue here for a moment by design
            // (admission paces them); that is not worth a warning per request.
            .acquire_slow_threshold(Duration::from_secs(10))
            .connect_with(options.read_only(true))
            .await?;
        Ok(Store { write, read })
    }

    pub async fn close(&self) {
        self.read.close().await;
        self.write.close().await;
    }

    async fn begin(&self) -> Result<Transaction<'static, Sqlite>, sqlx::Error> {
        // IMMEDIATE takes the write lock up front, so a transaction that reads and then
        // writes can never fail halfway with SQLITE_BUSY_SNAPSHOT.
        self.write.begin_with("BEGIN IMMEDIATE").await
    }

    // ----- admin tokens -------------------------------------------------------------------

    pub async fn admin_token_hashes(&self) -> Result<Vec<Vec<u8>>, StoreError> {
        let rows = sqlx::query("SELECT secret_hash FROM secrets_meta WHERE purpose = 'admin'")
            .fetch_all(&self.write)
            .await?;
        Ok(rows.iter().map(|r| r.get::<Vec<u8>, _>(0)).collect())
    }

    pub async fn add_admin_token(&self, hash: &[u8]) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO secrets_meta (id, purpose, secret_hash, created_at) VALUES (?, 'admin', ?, ?)",
        )
        .bind(Uuid::new_v4().to_string())
        .bind(hash)
        .bind(now_ms())
        .execute(&self.write)
        .await?;
        Ok(())
    }

    // ----- audit --------------------------------------------------------------------------

    async fn audit(
        tx: &mut Transaction<'static, Sqlite>,
        actor: &str,
        action: &str,
        target: Option<&str>,
        detail: Option<&str>,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO audit_log (at, actor, action, target, detail) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(now_ms())
        .bind(actor)
        .bind(action)
        .bind(target)
        .bind(detail)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    // ----- connectors ---------------------------------------------------------------------

    pub async fn create_connector(
        &self,
        actor: &str,
        id: Uuid,
        name: &str,
        secret_hash: &[u8],
        site: &SiteSettings,
    ) -> Result<Connector, JobError> {
        let mut tx = self.begin().await?;
        let now = now_ms();
        let site_json =
            serde_json::to_string(site).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let inserted = sqlx::query(
            "INSERT INTO connectors (id, name, secret_hash, enabled, site, created_at) \
             VALUES (?, ?, ?, 1, ?, ?) ON CONFLICT (name) DO NOTHING",
        )
        .bind(id.to_string())
        .bind(name)
        .bind(secret_hash)
        .bind(site_json)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if inserted.rows_affected() == 0 {
            return Err(JobError::NameTaken);
        }
        Self::audit(
            &mut tx,
            actor,
            "connector.register",
            Some(&id.to_string()),
            Some(name),
        )
        .await?;
        tx.commit().await?;
        Ok(Connector {
            id,
            name: name.to_owned(),
            enabled: true,
            site: site.clone(),
            created_at: from_ms(now),
            last_seen_at: None,
            secret_rotated_at: None,
            online: false,
        })
    }

    pub async fn connector_auth(&self, id: Uuid) -> Result<Option<ConnectorAuthRow>, StoreError> {
        let row = sqlx::query("SELECT secret_hash, enabled FROM connectors WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&self.read)
            .await?;
        Ok(row.map(|r| ConnectorAuthRow {
            secret_hash: r.get(0),
            enabled: r.get::<i64, _>(1) != 0,
        }))
    }

    pub async fn get_connector(&self, id: Uuid) -> Result<Option<Connector>, StoreError> {
        let row = sqlx::query(
            "SELECT id, name, enabled, site, created_at, last_seen_at, secret_rotated_at \
             FROM connectors WHERE id = ?",
        )
        .bind(id.to_string())
        .fetch_optional(&self.read)
        .await?;
        row.as_ref().map(connector_from_row).transpose()
    }

    pub async fn list_connectors(&self) -> Result<Vec<Connector>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, name, enabled, site, created_at, last_seen_at, secret_rotated_at \
             FROM connectors ORDER BY name",
        )
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(connector_from_row).collect()
    }

    pub async fn update_connector(
        &self,
        actor: &str,
        id: Uuid,
        update: &UpdateConnector,
    ) -> Result<Connector, JobError> {
        let mut tx = self.begin().await?;
        let row = sqlx::query(
            "SELECT id, name, enabled, site, created_at, last_seen_at, secret_rotated_at \
             FROM connectors WHERE id = ?",
        )
        .bind(id.to_string())
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(JobError::NotFound)?;
        let mut connector = connector_from_row(&row)?;
        if let Some(name) = &update.name {
            connector.name.clone_from(name);
        }
        if let Some(enabled) = update.enabled {
            connector.enabled = enabled;
        }
        if let Some(patch) = &update.site {
            connector.site.apply(patch);
        }
        let site_json = serde_json::to_string(&connector.site)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let result =
            sqlx::query("UPDATE connectors SET name = ?, enabled = ?, site = ? WHERE id = ?")
                .bind(&connector.name)
                .bind(connector.enabled)
                .bind(site_json)
                .bind(id.to_string())
                .execute(&mut *tx)
                .await;
        match result {
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                return Err(JobError::NameTaken);
            }
            other => other?,
        };
        let detail = serde_json::to_string(update).ok();
        Self::audit(
            &mut tx,
            actor,
            "connector.update",
            Some(&id.to_string()),
            detail.as_deref(),
        )
        .await?;
        tx.commit().await?;
        Ok(connector)
    }

    pub async fn set_connector_secret(
        &self,
        actor: &str,
        id: Uuid,
        secret_hash: &[u8],
    ) -> Result<(), JobError> {
        let mut tx = self.begin().await?;
        let done = sqlx::query(
            "UPDATE connectors SET secret_hash = ?, secret_rotated_at = ? WHERE id = ?",
        )
        .bind(secret_hash)
        .bind(now_ms())
        .bind(id.to_string())
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(JobError::NotFound);
        }
        Self::audit(
            &mut tx,
            actor,
            "connector.rotate_secret",
            Some(&id.to_string()),
            None,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records connectors' last contacts in one statement: the batch travels as one JSON
    /// array `[[id, at_ms], …]`, so thousands of contacts cost one round trip.
    pub async fn record_contacts(&self, contacts: &[(Uuid, i64)]) -> Result<(), StoreError> {
        let batch: Vec<(String, i64)> = contacts
            .iter()
            .map(|(id, at)| (id.to_string(), *at))
            .collect();
        let json = serde_json::to_string(&batch).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        sqlx::query(
            "UPDATE connectors SET last_seen_at = MAX(COALESCE(connectors.last_seen_at, 0), c.at) \
             FROM (SELECT json_extract(value, '$[0]') AS id, json_extract(value, '$[1]') AS at \
                   FROM json_each(?)) AS c \
             WHERE connectors.id = c.id",
        )
        .bind(json)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    // ----- jobs: administrators -----------------------------------------------------------

    pub async fn insert_job(&self, actor: &str, job: &JobInsert) -> Result<Job, JobError> {
        let mut tx = self.begin().await?;
        let exists = sqlx::query("SELECT 1 FROM connectors WHERE id = ?")
            .bind(job.connector_id.to_string())
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_none() {
            return Err(JobError::NotFound);
        }
        let id = Uuid::new_v4();
        let now = now_ms();
        let (kind, payload) = payload_columns(&job.payload)?;
        sqlx::query(
            "INSERT INTO jobs (id, seq, connector_id, kind, payload, state, attempts, max_attempts, \
             not_before, expires_at, created_at, updated_at) \
             VALUES (?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM jobs), ?, ?, ?, 'queued', 0, ?, ?, ?, ?, ?)",
        )
        .bind(id.to_string())
        .bind(job.connector_id.to_string())
        .bind(kind.as_str())
        .bind(&payload)
        .bind(job.max_attempts)
        .bind(job.not_before_ms)
        .bind(job.expires_at_ms)
        .bind(now)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        insert_event(
            &mut tx,
            id,
            now,
            0,
            Some(JobState::Queued),
            None,
            None,
            None,
        )
        .await?;
        Self::audit(
            &mut tx,
            actor,
            "job.enqueue",
            Some(&id.to_string()),
            Some(kind.as_str()),
        )
        .await?;
        tx.commit().await?;
        Ok(Job {
            id,
            connector_id: job.connector_id,
            state: JobState::Queued,
            payload: job.payload.clone(),
            attempts: 0,
            max_attempts: job.max_attempts,
            cancel_requested: false,
            lease_expires_at: None,
            not_before: job.not_before_ms.map(from_ms),
            expires_at: job.expires_at_ms.map(from_ms),
            result: None,
            error: None,
            created_at: from_ms(now),
            updated_at: from_ms(now),
            finished_at: None,
            events: Vec::new(),
        })
    }

    pub async fn get_job(&self, id: Uuid, with_events: bool) -> Result<Option<Job>, StoreError> {
        let row = sqlx::query(select_jobs!("WHERE id = ?"))
            .bind(id.to_string())
            .fetch_optional(&self.read)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let mut job = job_from_row(&row)?;
        if with_events {
            let rows = sqlx::query(
                "SELECT at, attempt, state, step, message, percent FROM job_events \
                 WHERE job_id = ? ORDER BY id",
            )
            .bind(id.to_string())
            .fetch_all(&self.read)
            .await?;
            job.events = rows
                .iter()
                .map(|r| JobEvent {
                    at: from_ms(r.get(0)),
                    attempt: r.get::<i64, _>(1) as u32,
                    state: r
                        .get::<Option<String>, _>(2)
                        .as_deref()
                        .and_then(JobState::parse),
                    step: r.get(3),
                    message: r.get(4),
                    percent: r.get::<Option<i64>, _>(5).map(|p| p.clamp(0, 100) as u8),
                })
                .collect();
        }
        Ok(Some(job))
    }

    pub async fn list_jobs(&self, filter: &JobFilter) -> Result<Vec<Job>, StoreError> {
        let limit = filter.limit.unwrap_or(100).min(1000);
        let rows = sqlx::query(select_jobs!(
            "WHERE (?1 IS NULL OR connector_id = ?1) AND (?2 IS NULL OR state = ?2) \
             ORDER BY seq DESC LIMIT ?3"
        ))
        .bind(filter.connector_id.map(|u| u.to_string()))
        .bind(filter.state.map(JobState::as_str))
        .bind(limit)
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(job_from_row).collect()
    }

    /// Cancels a job: a queued job ends at once; a leased or running one is marked, and its
    /// connector learns it at its next contact (renewal or progress) and reports `cancelled`.
    pub async fn cancel_job(&self, actor: &str, id: Uuid) -> Result<Job, JobError> {
        let mut tx = self.begin().await?;
        let row = sqlx::query("SELECT state, attempts FROM jobs WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(JobError::NotFound)?;
        let state = parse_state(&row.get::<String, _>(0))?;
        let attempt = row.get::<i64, _>(1);
        let now = now_ms();
        match state {
            JobState::Queued => {
                sqlx::query(
                    "UPDATE jobs SET state = 'cancelled', error = 'cancelled before it ran', \
                     updated_at = ?, finished_at = ? WHERE id = ?",
                )
                .bind(now)
                .bind(now)
                .bind(id.to_string())
                .execute(&mut *tx)
                .await?;
                insert_event(
                    &mut tx,
                    id,
                    now,
                    attempt,
                    Some(JobState::Cancelled),
                    None,
                    None,
                    None,
                )
                .await?;
            }
            JobState::Leased | JobState::Running => {
                sqlx::query("UPDATE jobs SET cancel_requested = 1, updated_at = ? WHERE id = ?")
                    .bind(now)
                    .bind(id.to_string())
                    .execute(&mut *tx)
                    .await?;
                insert_event(
                    &mut tx,
                    id,
                    now,
                    attempt,
                    None,
                    Some("cancel"),
                    Some("cancel requested"),
                    None,
                )
                .await?;
            }
            done => return Err(JobError::Finished(done.as_str())),
        }
        Self::audit(&mut tx, actor, "job.cancel", Some(&id.to_string()), None).await?;
        tx.commit().await?;
        self.get_job(id, false).await?.ok_or(JobError::NotFound)
    }

    // ----- jobs: connectors ---------------------------------------------------------------

    /// Whether `connector` has a job it could lease now. A read on the read pool: most long
    /// polls find nothing, and they should not queue behind writers to learn it.
    pub async fn has_due_job(&self, connector: Uuid) -> Result<bool, StoreError> {
        let now = now_ms();
        let row = sqlx::query(
            "SELECT 1 FROM jobs WHERE connector_id = ?1 AND state = 'queued' \
             AND (not_before IS NULL OR not_before <= ?2) AND (expires_at IS NULL OR expires_at > ?2) LIMIT 1",
        )
        .bind(connector.to_string())
        .bind(now)
        .fetch_optional(&self.read)
        .await?;
        Ok(row.is_some())
    }

    /// Hands the oldest due job of `connector` to it under a new lease, if there is one.
    pub async fn lease_next(
        &self,
        connector: Uuid,
        lease_ms: i64,
    ) -> Result<Option<LeasedJob>, StoreError> {
        let mut tx = self.begin().await?;
        let now = now_ms();
        let token = Uuid::new_v4();
        let expires = now + lease_ms;
        let row = sqlx::query(
            "UPDATE jobs SET state = 'leased', lease_token = ?1, lease_expires_at = ?2, \
                    attempts = attempts + 1, updated_at = ?3 \
             WHERE id = (SELECT id FROM jobs WHERE connector_id = ?4 AND state = 'queued' \
                           AND EXISTS (SELECT 1 FROM connectors WHERE id = ?4 AND enabled = 1) \
                           AND (not_before IS NULL OR not_before <= ?3) \
                           AND (expires_at IS NULL OR expires_at > ?3) \
                         ORDER BY seq LIMIT 1) \
             RETURNING id, kind, payload, attempts, created_at",
        )
        .bind(token.to_string())
        .bind(expires)
        .bind(now)
        .bind(connector.to_string())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            // Nothing to commit; dropping the transaction rolls it back.
            return Ok(None);
        };
        let id = parse_uuid(&row.get::<String, _>(0))?;
        let payload = payload_from_columns(row.get(1), row.get(2))?;
        let attempt = row.get::<i64, _>(3);
        let created_at = row.get::<i64, _>(4);
        insert_event(
            &mut tx,
            id,
            now,
            attempt,
            Some(JobState::Leased),
            None,
            None,
            None,
        )
        .await?;
        tx.commit().await?;
        Ok(Some(LeasedJob {
            id,
            payload,
            lease_token: token,
            lease_expires_at: from_ms(expires),
            lease_secs: (lease_ms / 1000) as u32,
            attempt: attempt as u32,
            created_at: from_ms(created_at),
        }))
    }

    /// Checks that `token` is the live lease of `job` held by `connector`, inside `tx`.
    /// Returns the job's state and attempt number.
    async fn check_lease(
        tx: &mut Transaction<'static, Sqlite>,
        job: Uuid,
        connector: Uuid,
        token: Uuid,
    ) -> Result<(JobState, i64, bool), JobError> {
        let row = sqlx::query(
            "SELECT state, lease_token, attempts, cancel_requested FROM jobs \
             WHERE id = ? AND connector_id = ?",
        )
        .bind(job.to_string())
        .bind(connector.to_string())
        .fetch_optional(&mut **tx)
        .await?
        // Another connector's job answers exactly like a missing one.
        .ok_or(JobError::NotFound)?;
        let state = parse_state(&row.get::<String, _>(0))?;
        let live = row.get::<Option<String>, _>(1).as_deref() == Some(token.to_string().as_str());
        if state.is_terminal() {
            return Err(JobError::Finished(state.as_str()));
        }
        if !live || !matches!(state, JobState::Leased | JobState::Running) {
            return Err(JobError::StaleLease);
        }
        Ok((state, row.get(2), row.get::<i64, _>(3) != 0))
    }

    /// Extends a lease. Also the channel by which a connector learns of a cancellation.
    pub async fn renew_lease(
        &self,
        job: Uuid,
        connector: Uuid,
        token: Uuid,
        lease_ms: i64,
    ) -> Result<LeaseStatus, JobError> {
        let mut tx = self.begin().await?;
        let (_, _, cancel_requested) = Self::check_lease(&mut tx, job, connector, token).await?;
        let expires = now_ms() + lease_ms;
        sqlx::query("UPDATE jobs SET lease_expires_at = ? WHERE id = ?")
            .bind(expires)
            .bind(job.to_string())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(LeaseStatus {
            lease_expires_at: from_ms(expires),
            cancel_requested,
        })
    }

    /// Records a progress event; the first one moves the job from `leased` to `running`.
    /// Progress proves the connector is alive, so it extends the lease too.
    #[allow(clippy::too_many_arguments)] // one per column of the progress event
    pub async fn progress(
        &self,
        job: Uuid,
        connector: Uuid,
        token: Uuid,
        lease_ms: i64,
        step: &str,
        message: Option<&str>,
        percent: Option<u8>,
    ) -> Result<LeaseStatus, JobError> {
        let mut tx = self.begin().await?;
        let (state, attempt, cancel_requested) =
            Self::check_lease(&mut tx, job, connector, token).await?;
        let now = now_ms();
        let expires = now + lease_ms;
        let stored: i64 = sqlx::query_scalar(
            "UPDATE jobs SET state = 'running', lease_expires_at = ?, updated_at = ?, \
             progress_events = progress_events + 1 WHERE id = ? RETURNING progress_events",
        )
        .bind(expires)
        .bind(now)
        .bind(job.to_string())
        .fetch_one(&mut *tx)
        .await?;
        if state == JobState::Leased {
            insert_event(
                &mut tx,
                job,
                now,
                attempt,
                Some(JobState::Running),
                None,
                None,
                None,
            )
            .await?;
        }
        if stored <= MAX_PROGRESS_EVENTS {
            insert_event(
                &mut tx,
                job,
                now,
                attempt,
                None,
                Some(step),
                message,
                percent,
            )
            .await?;
        }
        tx.commit().await?;
        Ok(LeaseStatus {
            lease_expires_at: from_ms(expires),
            cancel_requested,
        })
    }

    /// Records how a job ended. The same report under the same lease token is accepted again
    /// (the connector may not have seen the first answer); anything else after the end is refused.
    /// The flag says whether this was such a replay (nothing changed).
    pub async fn finish(
        &self,
        job: Uuid,
        connector: Uuid,
        report: &JobReport,
    ) -> Result<(Job, bool), JobError> {
        let mut tx = self.begin().await?;
        let row =
            sqlx::query("SELECT state, final_token FROM jobs WHERE id = ? AND connector_id = ?")
                .bind(job.to_string())
                .bind(connector.to_string())
                .fetch_optional(&mut *tx)
                .await?
                .ok_or(JobError::NotFound)?;
        let state = parse_state(&row.get::<String, _>(0))?;
        let final_token: Option<String> = row.get(1);
        if state.is_terminal() {
            let same_lease =
                final_token.as_deref() == Some(report.lease_token.to_string().as_str());
            if same_lease && state == report.outcome.state() {
                drop(tx);
                let job = self.get_job(job, false).await?.ok_or(JobError::NotFound)?;
                return Ok((job, true));
            }
            if same_lease {
                return Err(JobError::Finished(state.as_str()));
            }
        }
        let (_, attempt, _) =
            Self::check_lease(&mut tx, job, connector, report.lease_token).await?;
        let now = now_ms();
        let result = report.result.as_ref().map(|v| v.to_string());
        let error = match report.outcome {
            Outcome::Succeeded => None,
            _ => Some(
                report
                    .error
                    .clone()
                    .unwrap_or_else(|| "no reason given".to_owned()),
            ),
        };
        sqlx::query(
            "UPDATE jobs SET state = ?, result = ?, error = ?, final_token = lease_token, \
             lease_token = NULL, lease_expires_at = NULL, updated_at = ?, finished_at = ? WHERE id = ?",
        )
        .bind(report.outcome.state().as_str())
        .bind(result)
        .bind(&error)
        .bind(now)
        .bind(now)
        .bind(job.to_string())
        .execute(&mut *tx)
        .await?;
        insert_event(
            &mut tx,
            job,
            now,
            attempt,
            Some(report.outcome.state()),
            None,
            error.as_deref(),
            None,
        )
        .await?;
        tx.commit().await?;
        let job = self.get_job(job, false).await?.ok_or(JobError::NotFound)?;
        Ok((job, false))
    }

    /// A connector gives a job back unfinished (it is shutting down). The attempt is not
    /// counted against the job, and the job is queued again at once.
    pub async fn release(
        &self,
        job: Uuid,
        connector: Uuid,
        token: Uuid,
    ) -> Result<JobState, JobError> {
        let mut tx = self.begin().await?;
        let (_, attempt, cancel_requested) =
            Self::check_lease(&mut tx, job, connector, token).await?;
        let now = now_ms();
        let new_state = if cancel_requested {
            sqlx::query(
                "UPDATE jobs SET state = 'cancelled', error = 'cancelled', lease_token = NULL, \
                 lease_expires_at = NULL, updated_at = ?1, finished_at = ?1 WHERE id = ?2",
            )
            .bind(now)
            .bind(job.to_string())
            .execute(&mut *tx)
            .await?;
            JobState::Cancelled
        } else {
            sqlx::query(
                "UPDATE jobs SET state = 'queued', attempts = MAX(attempts - 1, 0), lease_token = NULL, \
                 lease_expires_at = NULL, updated_at = ? WHERE id = ?",
            )
            .bind(now)
            .bind(job.to_string())
            .execute(&mut *tx)
            .await?;
            JobState::Queued
        };
        insert_event(
            &mut tx,
            job,
            now,
            attempt,
            Some(new_state),
            None,
            Some("released by the connector"),
            None,
        )
        .await?;
        tx.commit().await?;
        Ok(new_state)
    }

    // ----- the sweeper --------------------------------------------------------------------

    /// Resolves lapsed leases and expired jobs as of now, and finds the next deadline.
    /// `since_ms` is the previous sweep's time: jobs whose `not_before` fell in between are due.
    pub async fn sweep(&self, since_ms: i64) -> Result<Sweep, StoreError> {
        let mut tx = self.begin().await?;
        let now = now_ms();
        let mut sweep = Sweep::default();
        let lapsed = sqlx::query(
            "SELECT id, connector_id, attempts, max_attempts, cancel_requested FROM jobs \
             WHERE state IN ('leased', 'running') AND lease_expires_at <= ?",
        )
        .bind(now)
        .fetch_all(&mut *tx)
        .await?;
        for row in &lapsed {
            let id = parse_uuid(&row.get::<String, _>(0))?;
            let connector = parse_uuid(&row.get::<String, _>(1))?;
            let attempts: i64 = row.get(2);
            let max_attempts: i64 = row.get(3);
            let cancel = row.get::<i64, _>(4) != 0;
            let (state, error) = if cancel {
                (
                    JobState::Cancelled,
                    Some("cancelled; the connector stopped answering".to_owned()),
                )
            } else if attempts >= max_attempts {
                sweep.failed += 1;
                (
                    JobState::Failed,
                    Some(format!(
                        "the lease lapsed on attempt {attempts} of {max_attempts}: the connector stopped renewing it"
                    )),
                )
            } else {
                sweep.requeued += 1;
                sweep.wake.push(connector);
                (JobState::Queued, None)
            };
            let finished = state.is_terminal().then_some(now);
            sqlx::query(
                "UPDATE jobs SET state = ?, error = COALESCE(?, error), lease_token = NULL, \
                 lease_expires_at = NULL, updated_at = ?, finished_at = ? WHERE id = ?",
            )
            .bind(state.as_str())
            .bind(&error)
            .bind(now)
            .bind(finished)
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
            let message = error.as_deref().unwrap_or("the lease lapsed; queued again");
            insert_event(
                &mut tx,
                id,
                now,
                attempts,
                Some(state),
                None,
                Some(message),
                None,
            )
            .await?;
        }
        let expired = sqlx::query(
            "UPDATE jobs SET state = 'expired', error = 'expired before a connector picked it up', \
             updated_at = ?1, finished_at = ?1 WHERE state = 'queued' AND expires_at <= ?1 \
             RETURNING id, attempts",
        )
        .bind(now)
        .fetch_all(&mut *tx)
        .await?;
        for row in &expired {
            let id = parse_uuid(&row.get::<String, _>(0))?;
            insert_event(
                &mut tx,
                id,
                now,
                row.get(1),
                Some(JobState::Expired),
                None,
                None,
                None,
            )
            .await?;
        }
        sweep.expired = expired.len() as u64;
        let due = sqlx::query(
            "SELECT DISTINCT connector_id FROM jobs WHERE state = 'queued' \
             AND not_before > ? AND not_before <= ?",
        )
        .bind(since_ms)
        .bind(now)
        .fetch_all(&mut *tx)
        .await?;
        for row in &due {
            sweep.wake.push(parse_uuid(&row.get::<String, _>(0))?);
        }
        let next: Option<i64> = sqlx::query_scalar(
            "SELECT MIN(t) FROM ( \
               SELECT MIN(lease_expires_at) AS t FROM jobs WHERE state IN ('leased', 'running') \
               UNION ALL SELECT MIN(expires_at) FROM jobs WHERE state = 'queued' \
               UNION ALL SELECT MIN(not_before) FROM jobs WHERE state = 'queued' AND not_before > ?)",
        )
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        sweep.next_deadline_ms = next;
        tx.commit().await?;
        sweep.wake.sort();
        sweep.wake.dedup();
        Ok(sweep)
    }

    // ----- uploads and packages -----------------------------------------------------------

    pub async fn create_upload(&self, actor: &str, new: &NewUpload) -> Result<Upload, StoreError> {
        let id = Uuid::new_v4();
        let now = now_ms();
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO uploads (id, filename, size, received, expected_sha256, state, created_by, created_at) \
             VALUES (?, ?, ?, 0, ?, 'open', ?, ?)",
        )
        .bind(id.to_string())
        .bind(&new.filename)
        .bind(new.size as i64)
        .bind(&new.sha256)
        .bind(actor)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        Self::audit(
            &mut tx,
            actor,
            "upload.open",
            Some(&id.to_string()),
            Some(&new.filename),
        )
        .await?;
        tx.commit().await?;
        Ok(Upload {
            id,
            filename: new.filename.clone(),
            size: new.size,
            received: 0,
            expected_sha256: new.sha256.clone(),
            state: UploadState::Open,
            package_id: None,
            created_at: from_ms(now),
        })
    }

    pub async fn get_upload(&self, id: Uuid) -> Result<Option<Upload>, StoreError> {
        let row = sqlx::query(
            "SELECT id, filename, size, received, expected_sha256, state, package_id, created_at \
             FROM uploads WHERE id = ?",
        )
        .bind(id.to_string())
        .fetch_optional(&self.write)
        .await?;
        let Some(r) = row else { return Ok(None) };
        Ok(Some(Upload {
            id: parse_uuid(&r.get::<String, _>(0))?,
            filename: r.get(1),
            size: r.get::<i64, _>(2) as u64,
            received: r.get::<i64, _>(3) as u64,
            expected_sha256: r.get(4),
            state: if r.get::<String, _>(5) == "completed" {
                UploadState::Completed
            } else {
                UploadState::Open
            },
            package_id: r
                .get::<Option<String>, _>(6)
                .as_deref()
                .map(parse_uuid)
                .transpose()?,
            created_at: from_ms(r.get(7)),
        }))
    }

    /// Who opened the upload (`admin` or `connector:<id>`).
    pub async fn upload_created_by(&self, id: Uuid) -> Result<Option<String>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT created_by FROM uploads WHERE id = ?")
                .bind(id.to_string())
                .fetch_optional(&self.write)
                .await?,
        )
    }

    /// A connector may read a package it was asked to push, or one it imported itself.
    pub async fn connector_may_read_package(
        &self,
        connector: Uuid,
        package: Uuid,
    ) -> Result<bool, StoreError> {
        let found: Option<i64> = sqlx::query_scalar(
            "SELECT 1 WHERE EXISTS (SELECT 1 FROM jobs WHERE connector_id = ?1 AND kind = 'push' \
                                    AND json_extract(payload, '$.package_id') = ?2) \
                         OR EXISTS (SELECT 1 FROM uploads WHERE package_id = ?2 AND created_by = ?3)",
        )
        .bind(connector.to_string())
        .bind(package.to_string())
        .bind(format!("connector:{connector}"))
        .fetch_optional(&self.read)
        .await?;
        Ok(found.is_some())
    }

    pub async fn set_upload_received(&self, id: Uuid, received: u64) -> Result<(), StoreError> {
        sqlx::query("UPDATE uploads SET received = ? WHERE id = ? AND state = 'open'")
            .bind(received as i64)
            .bind(id.to_string())
            .execute(&self.write)
            .await?;
        Ok(())
    }

    /// Removes open uploads last touched before `cutoff_ms` and returns their IDs (the caller
    /// deletes their part files). Uploads only record their creation, which bounds this from
    /// below: an upload is abandoned when it was opened long ago and is still open.
    pub async fn expire_uploads(&self, cutoff_ms: i64) -> Result<Vec<Uuid>, StoreError> {
        let rows: Vec<String> = sqlx::query_scalar(
            "DELETE FROM uploads WHERE state = 'open' AND created_at < ? RETURNING id",
        )
        .bind(cutoff_ms)
        .fetch_all(&self.write)
        .await?;
        rows.iter().map(|id| parse_uuid(id)).collect()
    }

    pub async fn delete_upload(&self, id: Uuid) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM uploads WHERE id = ? AND state = 'open'")
            .bind(id.to_string())
            .execute(&self.write)
            .await?;
        Ok(())
    }

    /// Creates the package for a completed upload, or finds the package that already holds the
    /// same bytes (deduplication by hash), and closes the upload. Returns the package and
    /// whether it is new.
    pub async fn complete_upload(
        &self,
        actor: &str,
        upload: &Upload,
        sha256: &str,
        metadata: &PackageMetadata,
    ) -> Result<(Package, bool), StoreError> {
        let mut tx = self.begin().await?;
        let existing: Option<String> =
            sqlx::query_scalar("SELECT id FROM packages WHERE sha256 = ?")
                .bind(sha256)
                .fetch_optional(&mut *tx)
                .await?;
        let now = now_ms();
        let (id, new) = match existing {
            Some(id) => (parse_uuid(&id)?, false),
            None => {
                let id = Uuid::new_v4();
                sqlx::query(
                    "INSERT INTO packages (id, filename, size, sha256, metadata, created_by, created_at) \
                     VALUES (?, ?, ?, ?, ?, ?, ?)",
                )
                .bind(id.to_string())
                .bind(&upload.filename)
                .bind(upload.size as i64)
                .bind(sha256)
                .bind(metadata_json(metadata)?)
                .bind(actor)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                Self::audit(
                    &mut tx,
                    actor,
                    "package.create",
                    Some(&id.to_string()),
                    Some(&upload.filename),
                )
                .await?;
                (id, true)
            }
        };
        sqlx::query("UPDATE uploads SET state = 'completed', package_id = ? WHERE id = ?")
            .bind(id.to_string())
            .bind(upload.id.to_string())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        let package = self
            .get_package(id)
            .await?
            .ok_or_else(|| StoreError::Corrupt("package vanished".into()))?;
        Ok((package, new))
    }

    /// Applies an administrator's corrections to the package's metadata, audited in the same
    /// transaction. `None` if there is no such package.
    pub async fn update_package_metadata(
        &self,
        actor: &str,
        id: Uuid,
        patch: &MetadataPatch,
    ) -> Result<Option<Package>, StoreError> {
        let mut tx = self.begin().await?;
        let Some(mut metadata) = package_metadata_in(&mut tx, id).await? else {
            return Ok(None);
        };
        let touched = metadata.apply(patch);
        sqlx::query("UPDATE packages SET metadata = ? WHERE id = ?")
            .bind(metadata_json(&metadata)?)
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        let fields: Vec<&str> = touched.iter().map(|f| f.as_str()).collect();
        Self::audit(
            &mut tx,
            actor,
            "package.update",
            Some(&id.to_string()),
            Some(&fields.join(",")),
        )
        .await?;
        tx.commit().await?;
        self.get_package(id).await
    }

    /// Records where an imported package came from (`metadata.imported_from`), but only for a
    /// package whose upload this connector made itself: a connector cannot relabel packages
    /// that are not its own imports. Returns whether the package was updated.
    pub async fn set_package_source(
        &self,
        id: Uuid,
        connector: Uuid,
        source: &ImportSource,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin().await?;
        let own: Option<i64> = sqlx::query_scalar(
            "SELECT 1 FROM uploads WHERE package_id = ?1 AND created_by = ?2 LIMIT 1",
        )
        .bind(id.to_string())
        .bind(format!("connector:{connector}"))
        .fetch_optional(&mut *tx)
        .await?;
        if own.is_none() {
            return Ok(false);
        }
        let Some(mut metadata) = package_metadata_in(&mut tx, id).await? else {
            return Ok(false);
        };
        metadata.imported_from = Some(source.clone());
        sqlx::query("UPDATE packages SET metadata = ? WHERE id = ?")
            .bind(metadata_json(&metadata)?)
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        Self::audit(
            &mut tx,
            &format!("connector:{connector}"),
            "package.link_source",
            Some(&id.to_string()),
            Some(&source.model_name),
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    pub async fn get_package(&self, id: Uuid) -> Result<Option<Package>, StoreError> {
        let row = sqlx::query(
            "SELECT id, filename, size, sha256, metadata, created_at FROM packages WHERE id = ?",
        )
        .bind(id.to_string())
        .fetch_optional(&self.write)
        .await?;
        row.as_ref().map(package_from_row).transpose()
    }

    pub async fn list_packages(&self) -> Result<Vec<Package>, StoreError> {
        let rows = sqlx::query("SELECT id, filename, size, sha256, metadata, created_at FROM packages ORDER BY created_at DESC")
            .fetch_all(&self.read)
            .await?;
        rows.iter().map(package_from_row).collect()
    }

    // ----- site inventories ----------------------------------------------------------------

    /// Keeps `data` as the connector's latest inventory, unless a newer one is already stored
    /// (two inventory jobs may finish out of order).
    pub async fn save_inventory(
        &self,
        connector: Uuid,
        job: Uuid,
        taken_at_ms: i64,
        data: &serde_json::Value,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO site_inventories (connector_id, job_id, taken_at, data) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (connector_id) DO UPDATE SET job_id = ?2, taken_at = ?3, data = ?4 \
             WHERE site_inventories.taken_at <= ?3",
        )
        .bind(connector.to_string())
        .bind(job.to_string())
        .bind(taken_at_ms)
        .bind(data.to_string())
        .execute(&self.write)
        .await?;
        Ok(())
    }

    pub async fn inventory(
        &self,
        connector: Uuid,
    ) -> Result<Option<serde_json::Value>, StoreError> {
        let data: Option<String> =
            sqlx::query_scalar("SELECT data FROM site_inventories WHERE connector_id = ?")
                .bind(connector.to_string())
                .fetch_optional(&self.read)
                .await?;
        data.as_deref().map(parse_json).transpose()
    }

    /// The newest audit entries first, at most `limit`, older than `before` when given.
    pub async fn audit_log(
        &self,
        limit: u32,
        before: Option<i64>,
    ) -> Result<Vec<ferry_proto::identity::AuditEntry>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, at, actor, action, target, detail FROM audit_log \
             WHERE (?1 IS NULL OR id < ?1) ORDER BY id DESC LIMIT ?2",
        )
        .bind(before)
        .bind(limit)
        .fetch_all(&self.read)
        .await?;
        Ok(rows
            .iter()
            .map(|r| ferry_proto::identity::AuditEntry {
                id: r.get(0),
                at: from_ms(r.get(1)),
                actor_kind: ferry_proto::identity::ActorKind::Technician,
                actor_id: None,
                via: None,
                address: None,
                actor: r.get(2),
                action: r.get(3),
                target: r.get(4),
                detail: r.get(5),
            })
            .collect())
    }

    /// Job counts per state, for `/metrics`.
    pub async fn job_counts(&self) -> Result<Vec<(JobState, i64)>, StoreError> {
        let rows = sqlx::query("SELECT state, COUNT(*) FROM jobs GROUP BY state")
            .fetch_all(&self.read)
            .await?;
        rows.iter()
            .map(|r| Ok((parse_state(&r.get::<String, _>(0))?, r.get::<i64, _>(1))))
            .collect()
    }

    pub async fn connector_count(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM connectors")
            .fetch_one(&self.read)
            .await?)
    }
}

async fn migrate(pool: &SqlitePool) -> Result<(), StoreError> {
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)",
    )
    .execute(pool)
    .await?;
    let current: i64 =
        sqlx::query_scalar("SELECT COALESCE(MAX(version), 0) FROM schema_migrations")
            .fetch_one(pool)
            .await?;
    let newest = MIGRATIONS.last().map_or(0, |m| m.0);
    if current > newest {
        return Err(StoreError::TooNew(current));
    }
    for &(version, name, sql) in MIGRATIONS.iter().filter(|m| m.0 > current) {
        let fail = |source| StoreError::Migrate {
            version,
            name,
            source,
        };
        let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.map_err(fail)?;
        sqlx::raw_sql(sql).execute(&mut *tx).await.map_err(fail)?;
        sqlx::query("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)")
            .bind(version)
            .bind(name)
            .bind(now_ms())
            .execute(&mut *tx)
            .await
            .map_err(fail)?;
        tx.commit().await.map_err(fail)?;
        tracing::info!(version, name, "applied database migration");
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn insert_event(
    tx: &mut Transaction<'static, Sqlite>,
    job: Uuid,
    at: i64,
    attempt: i64,
    state: Option<JobState>,
    step: Option<&str>,
    message: Option<&str>,
    percent: Option<u8>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO job_events (job_id, at, attempt, state, step, message, percent) \
         VALUES (?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(job.to_string())
    .bind(at)
    .bind(attempt)
    .bind(state.map(JobState::as_str))
    .bind(step)
    .bind(message)
    .bind(percent.map(i64::from))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

fn corrupt(msg: impl Into<String>) -> StoreError {
    StoreError::Corrupt(msg.into())
}

fn parse_uuid(s: &str) -> Result<Uuid, StoreError> {
    Uuid::from_str(s).map_err(|_| StoreError::Corrupt(format!("bad uuid {s:?}")))
}

fn parse_state(s: &str) -> Result<JobState, StoreError> {
    JobState::parse(s).ok_or_else(|| StoreError::Corrupt(format!("unknown job state {s:?}")))
}

fn parse_json(s: &str) -> Result<serde_json::Value, StoreError> {
    serde_json::from_str(s).map_err(|e| StoreError::Corrupt(format!("bad JSON in store: {e}")))
}

/// A job's payload as its two columns: the kind, and the kind's parameters as JSON.
fn payload_columns(payload: &JobPayload) -> Result<(JobKind, String), StoreError> {
    let mut value = serde_json::to_value(payload).map_err(|e| corrupt(e.to_string()))?;
    let inner = value
        .get_mut("payload")
        .map(serde_json::Value::take)
        .unwrap_or_default();
    Ok((payload.kind(), inner.to_string()))
}

/// The inverse of [`payload_columns`].
fn payload_from_columns(kind: &str, payload: &str) -> Result<JobPayload, StoreError> {
    let inner = parse_json(payload)?;
    serde_json::from_value(serde_json::json!({ "kind": kind, "payload": inner }))
        .map_err(|e| corrupt(format!("job payload of kind {kind}: {e}")))
}

fn metadata_json(m: &PackageMetadata) -> Result<String, StoreError> {
    serde_json::to_string(m).map_err(|e| corrupt(e.to_string()))
}

async fn package_metadata_in(
    tx: &mut Transaction<'static, Sqlite>,
    id: Uuid,
) -> Result<Option<PackageMetadata>, StoreError> {
    let text: Option<String> = sqlx::query_scalar("SELECT metadata FROM packages WHERE id = ?")
        .bind(id.to_string())
        .fetch_optional(&mut **tx)
        .await?;
    text.map(|t| serde_json::from_str(&t).map_err(|e| corrupt(format!("package metadata: {e}"))))
        .transpose()
}

fn package_from_row(r: &SqliteRow) -> Result<Package, StoreError> {
    Ok(Package {
        id: parse_uuid(&r.get::<String, _>(0))?,
        filename: r.get(1),
        size: r.get::<i64, _>(2) as u64,
        sha256: r.get(3),
        metadata: serde_json::from_str(&r.get::<String, _>(4))
            .map_err(|e| StoreError::Corrupt(format!("package metadata: {e}")))?,
        created_at: from_ms(r.get(5)),
    })
}

fn connector_from_row(r: &SqliteRow) -> Result<Connector, StoreError> {
    let site: SiteSettings = serde_json::from_str(&r.get::<String, _>(3))
        .map_err(|e| StoreError::Corrupt(format!("bad site settings: {e}")))?;
    Ok(Connector {
        id: parse_uuid(&r.get::<String, _>(0))?,
        name: r.get(1),
        enabled: r.get::<i64, _>(2) != 0,
        site,
        created_at: from_ms(r.get(4)),
        last_seen_at: r.get::<Option<i64>, _>(5).map(from_ms),
        secret_rotated_at: r.get::<Option<i64>, _>(6).map(from_ms),
        online: false,
    })
}

fn job_from_row(r: &SqliteRow) -> Result<Job, StoreError> {
    Ok(Job {
        id: parse_uuid(&r.get::<String, _>(0))?,
        connector_id: parse_uuid(&r.get::<String, _>(1))?,
        payload: payload_from_columns(r.get(2), r.get(3))?,
        state: parse_state(&r.get::<String, _>(4))?,
        attempts: r.get::<i64, _>(5) as u32,
        max_attempts: r.get::<i64, _>(6) as u32,
        cancel_requested: r.get::<i64, _>(7) != 0,
        lease_expires_at: r.get::<Option<i64>, _>(8).map(from_ms),
        not_before: r.get::<Option<i64>, _>(9).map(from_ms),
        expires_at: r.get::<Option<i64>, _>(10).map(from_ms),
        result: r
            .get::<Option<String>, _>(11)
            .as_deref()
            .map(parse_json)
            .transpose()?,
        error: r.get(12),
        created_at: from_ms(r.get(13)),
        updated_at: from_ms(r.get(14)),
        finished_at: r.get::<Option<i64>, _>(15).map(from_ms),
        events: Vec::new(),
    })
}
