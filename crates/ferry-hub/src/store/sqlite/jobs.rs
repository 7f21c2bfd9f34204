//! The job queue (see [`crate::store::JobStore`] for its rules).

use async_trait::async_trait;
use ferry_proto::job::{
    Job, JobEvent, JobFilter, JobKind, JobPayload, JobReport, JobState, LeaseStatus, LeasedJob,
    Outcome,
};
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, Sqlite, Transaction};
use uuid::Uuid;

use super::{SqliteStore, audit, corrupt, parse_json, parse_uuid};
use crate::store::{Actor, JobError, JobInsert, JobStore, MAX_PROGRESS_EVENTS, StoreError, Sweep};
use crate::time_util::{from_ms, now_ms};

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

impl SqliteStore {
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
}

/// Lapses of unconfirmed leases a job may have without them counting as attempts.
const MAX_SILENT_LAPSES: i64 = 10;

#[async_trait]
impl JobStore for SqliteStore {
    async fn insert_job(&self, actor: &Actor, job: &JobInsert) -> Result<Job, JobError> {
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
        // The queue's order comes from a counter bumped in this transaction (a sequence on
        // PostgreSQL), never from MAX(seq) + 1 read back from the table.
        let seq: i64 = sqlx::query_scalar(
            "UPDATE counters SET value = value + 1 WHERE name = 'job_seq' RETURNING value",
        )
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO jobs (id, seq, connector_id, kind, payload, package_id, state, attempts, \
             max_attempts, not_before, expires_at, created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?, 'queued', 0, ?, ?, ?, ?, ?)",
        )
        .bind(id.to_string())
        .bind(seq)
        .bind(job.connector_id.to_string())
        .bind(kind.as_str())
        .bind(&payload)
        .bind(job.payload.package_id().map(|p| p.to_string()))
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
        audit(
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

    async fn job_connector(&self, id: Uuid) -> Result<Option<Uuid>, StoreError> {
        let connector: Option<String> =
            sqlx::query_scalar("SELECT connector_id FROM jobs WHERE id = ?")
                .bind(id.to_string())
                .fetch_optional(&self.read)
                .await?;
        connector.as_deref().map(parse_uuid).transpose()
    }

    async fn get_job(&self, id: Uuid, with_events: bool) -> Result<Option<Job>, StoreError> {
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

    async fn list_jobs(&self, filter: &JobFilter) -> Result<Vec<Job>, StoreError> {
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
    async fn cancel_job(&self, actor: &Actor, id: Uuid) -> Result<Job, JobError> {
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
        audit(&mut tx, actor, "job.cancel", Some(&id.to_string()), None).await?;
        tx.commit().await?;
        self.get_job(id, false).await?.ok_or(JobError::NotFound)
    }
    /// Whether `connector` has a job it could lease now. A read on the read pool: most long
    /// polls find nothing, and they should not queue behind writers to learn it.
    async fn has_due_job(&self, connector: Uuid) -> Result<bool, StoreError> {
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
    async fn lease_next(
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
                    attempts = attempts + 1, updated_at = ?3, lease_contacted = 0 \
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

    /// Extends a lease. Also the channel by which a connector learns of a cancellation.
    async fn renew_lease(
        &self,
        job: Uuid,
        connector: Uuid,
        token: Uuid,
        lease_ms: i64,
    ) -> Result<LeaseStatus, JobError> {
        let mut tx = self.begin().await?;
        let (_, _, cancel_requested) = Self::check_lease(&mut tx, job, connector, token).await?;
        let expires = now_ms() + lease_ms;
        sqlx::query("UPDATE jobs SET lease_expires_at = ?, lease_contacted = 1 WHERE id = ?")
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
    async fn progress(
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
             lease_contacted = 1, progress_events = progress_events + 1 WHERE id = ? \
             RETURNING progress_events",
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
    async fn finish(
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
    async fn release(&self, job: Uuid, connector: Uuid, token: Uuid) -> Result<JobState, JobError> {
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
    async fn extend_open_leases(&self, until_ms: i64) -> Result<u64, StoreError> {
        Ok(sqlx::query(
            "UPDATE jobs SET lease_expires_at = MAX(lease_expires_at, ?) \
             WHERE state IN ('leased', 'running')",
        )
        .bind(until_ms)
        .execute(&self.write)
        .await?
        .rows_affected())
    }

    /// Resolves lapsed leases and expired jobs as of now, and finds the next deadline.
    /// `since_ms` is the previous sweep's time: jobs whose `not_before` fell in between are due.
    async fn sweep(&self, since_ms: i64) -> Result<Sweep, StoreError> {
        let mut tx = self.begin().await?;
        let now = now_ms();
        let mut sweep = Sweep::default();
        let lapsed = sqlx::query(
            "SELECT id, connector_id, attempts, max_attempts, cancel_requested, lease_contacted, \
             silent_lapses FROM jobs WHERE state IN ('leased', 'running') AND lease_expires_at <= ?",
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
            let contacted = row.get::<i64, _>(5) != 0;
            let silent_lapses: i64 = row.get(6);
            // The connector never confirmed this lease: its answer was probably lost on the
            // way. Queued again without counting an attempt (a bounded number of times, so a
            // job that kills its connector at once still ends).
            let silent = !cancel && !contacted && silent_lapses < MAX_SILENT_LAPSES;
            if silent {
                sweep.requeued += 1;
                sweep.wake.push(connector);
                sqlx::query(
                    "UPDATE jobs SET state = 'queued', attempts = MAX(attempts - 1, 0), \
                     silent_lapses = silent_lapses + 1, lease_token = NULL, \
                     lease_expires_at = NULL, updated_at = ? WHERE id = ?",
                )
                .bind(now)
                .bind(id.to_string())
                .execute(&mut *tx)
                .await?;
                insert_event(
                    &mut tx,
                    id,
                    now,
                    attempts,
                    Some(JobState::Queued),
                    None,
                    Some("the lease lapsed before the connector confirmed it (its answer was probably lost); queued again without counting an attempt"),
                    None,
                )
                .await?;
                continue;
            }
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
    /// Job counts per state, for `/metrics`.
    async fn job_counts(&self) -> Result<Vec<(JobState, i64)>, StoreError> {
        let rows = sqlx::query("SELECT state, COUNT(*) FROM jobs GROUP BY state")
            .fetch_all(&self.read)
            .await?;
        rows.iter()
            .map(|r| Ok((parse_state(&r.get::<String, _>(0))?, r.get::<i64, _>(1))))
            .collect()
    }
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

fn parse_state(s: &str) -> Result<JobState, StoreError> {
    JobState::parse(s).ok_or_else(|| StoreError::Corrupt(format!("unknown job state {s:?}")))
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
    let inner: serde_json::Value = parse_json(payload, "job payload")?;
    serde_json::from_value(serde_json::json!({ "kind": kind, "payload": inner }))
        .map_err(|e| corrupt(format!("job payload of kind {kind}: {e}")))
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
            .map(|r| parse_json(r, "job result"))
            .transpose()?,
        error: r.get(12),
        created_at: from_ms(r.get(13)),
        updated_at: from_ms(r.get(14)),
        finished_at: r.get::<Option<i64>, _>(15).map(from_ms),
        events: Vec::new(),
    })
}
