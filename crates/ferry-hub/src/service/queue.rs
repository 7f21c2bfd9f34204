//! The job queue: administrators enqueue and cancel; connectors long-poll, renew, report
//! progress and results, and release.

use std::pin::pin;
use std::sync::atomic::Ordering;
use std::time::Duration;

use ferry_proto::ErrorCode;
use ferry_proto::diagnostics::DiagnosticsRequest;
use ferry_proto::inventory::{ImportResult, InventoryPayload, InventoryResult};
use ferry_proto::job::{
    Job, JobFilter, JobKind, JobPayload, JobReport, JobState, LeaseRef, LeaseStatus, LeasedJob,
    NewJob, ProgressReport,
};
use ferry_proto::package::ImportSource;
use uuid::Uuid;

use crate::AppState;
use crate::error::{Error, Result};
use crate::store::{Actor, JobError, JobInsert};
use crate::time_util::{now_ms, to_ms};

const MAX_STEP: usize = 64;
const MAX_MESSAGE: usize = 4096;

/// Large request bodies (job results) read at once.
pub const LARGE_BODIES: usize = 2;

/// Counts a long poll as waiting while it lives, however it ends (even if the client goes
/// away and the handler future is dropped).
struct WaitingGuard<'a>(&'a std::sync::atomic::AtomicI64);

impl Drop for WaitingGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Re-reads a kind's payload so that unknown fields are named like in any other body.
fn payload_of<T: serde::de::DeserializeOwned>(value: &serde_json::Value) -> Result<T> {
    serde_path_to_error::deserialize(value.clone())
        .map_err(|e| crate::error::invalid_json(e, "payload"))
}

/// An inventory needs the site code and console path from the connector's site settings.
pub(crate) fn inventory_payload(
    site: &ferry_proto::connector::SiteSettings,
) -> Result<InventoryPayload> {
    let (Some(site_code), Some(console_path)) = (&site.site_code, &site.console_path) else {
        return Err(Error::bad(
            ErrorCode::IncompleteSite,
            "the connector's `site.site_code` and `site.console_path` must be set before an inventory",
        ));
    };
    ferry_sccm::spec::validate_site(site_code, console_path)
        .map_err(|e| Error::bad(ErrorCode::IncompleteSite, e.to_string()))?;
    Ok(InventoryPayload {
        site_code: site_code.clone(),
        console_path: console_path.clone(),
    })
}

impl AppState {
    /// `POST /api/v1/jobs`: diagnostics and inventory jobs (push and import jobs have
    /// their own routes, which assemble their payloads).
    pub async fn enqueue_job(&self, actor: &Actor, req: &NewJob) -> Result<Job> {
        let now = now_ms();
        let not_before_ms = req.not_before.map(to_ms);
        let expires_at_ms = req.expires_at.map(to_ms);
        if expires_at_ms.is_some_and(|e| e <= now) {
            return Err(Error::bad(
                ErrorCode::InvalidField,
                "`expires_at` must be in the future",
            ));
        }
        if let (Some(nb), Some(ex)) = (not_before_ms, expires_at_ms)
            && ex <= nb
        {
            return Err(Error::bad(
                ErrorCode::InvalidField,
                "`expires_at` must be after `not_before`",
            ));
        }
        let max_attempts = req.max_attempts.unwrap_or(self.config.max_attempts);
        if !(1..=100).contains(&max_attempts) {
            return Err(Error::bad(
                ErrorCode::InvalidField,
                "`max_attempts` must be between 1 and 100",
            ));
        }
        let connector = self
            .store
            .get_connector(req.connector_id)
            .await?
            .ok_or_else(|| {
                Error::bad(
                    ErrorCode::UnknownConnector,
                    format!("no connector with id {}", req.connector_id),
                )
            })?;
        let payload = match req.kind {
            JobKind::Diagnostics => {
                let mut d: DiagnosticsRequest = if req.payload.is_null() {
                    DiagnosticsRequest::default()
                } else {
                    payload_of(&req.payload)?
                };
                d.validate()
                    .map_err(|m| Error::bad(ErrorCode::InvalidField, m))?;
                if d.console_path.is_none() {
                    d.console_path = connector.site.console_path.clone();
                }
                JobPayload::Diagnostics(d)
            }
            JobKind::Inventory => JobPayload::Inventory(inventory_payload(&connector.site)?),
            JobKind::Import => {
                return Err(Error::bad(
                    ErrorCode::UseImportEndpoint,
                    "import jobs are created with POST /api/v1/connectors/{id}/import",
                ));
            }
            JobKind::Push => {
                return Err(Error::bad(
                    ErrorCode::UsePushEndpoint,
                    "push jobs are created with POST /api/v1/push",
                ));
            }
        };
        let insert = JobInsert {
            connector_id: req.connector_id,
            payload,
            not_before_ms,
            expires_at_ms,
            max_attempts,
        };
        self.queue_job(actor, &insert).await
    }

    /// Stores a job and then, and only then, tells its connector; timed jobs also wake the
    /// sweeper, which wakes the connector when the job becomes due or expires it. Everything
    /// that queues work goes through here.
    pub(crate) async fn queue_job(&self, actor: &Actor, insert: &JobInsert) -> Result<Job> {
        let job = self.store.insert_job(actor, insert).await?;
        self.metrics.jobs_enqueued.fetch_add(1, Ordering::Relaxed);
        if let Some(at) = insert
            .not_before_ms
            .into_iter()
            .chain(insert.expires_at_ms)
            .min()
        {
            self.schedule_sweep(at);
        }
        self.waiters.wake(insert.connector_id);
        tracing::info!(job = %job.id, connector = %job.connector_id, kind = job.kind().as_str(), "job queued");
        Ok(job)
    }

    pub async fn jobs(&self, filter: &JobFilter) -> Result<Vec<Job>> {
        Ok(self.store.list_jobs(filter).await?)
    }

    pub async fn job(&self, id: Uuid) -> Result<Job> {
        self.store
            .get_job(id, true)
            .await?
            .ok_or(Error::NotFound("job"))
    }

    pub async fn cancel_job(&self, actor: &Actor, id: Uuid) -> Result<Job> {
        self.store.cancel_job(actor, id).await.map_err(|e| match e {
            JobError::Finished(s) => Error::conflict(
                ErrorCode::JobFinished,
                format!("the job has already finished ({s}); there is nothing to cancel"),
            ),
            other => other.into(),
        })
    }

    /// The connector's long poll: the next due job under a new lease, or `None` after `hold`
    /// seconds. Registers for wake-ups before looking, so an enqueue between the look and the
    /// sleep is never missed; an idle poll skips the database when nothing can have become
    /// due (see [`crate::wake`]).
    pub async fn next_job(&self, connector: Uuid, hold: Option<u32>) -> Result<Option<LeasedJob>> {
        let max = self.config.max_hold_secs;
        let hold = hold.unwrap_or(self.config.default_hold_secs);
        if hold > max {
            return Err(Error::bad(
                ErrorCode::InvalidQuery,
                format!("`hold` must be between 0 and {max} seconds"),
            ));
        }
        self.metrics
            .long_polls_started
            .fetch_add(1, Ordering::Relaxed);
        self.metrics
            .long_polls_waiting
            .fetch_add(1, Ordering::Relaxed);
        let _guard = WaitingGuard(&self.metrics.long_polls_waiting);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(u64::from(hold));
        let slot = self.waiters.get(connector);
        let mut shutdown = self.shutdown.clone();
        let lease_ms = i64::from(self.config.lease_secs) * 1000;
        // The credential this poll authenticated with: a wake-up after the secret was rotated
        // must end the poll, not lease a job to the old secret's holder.
        let secret_hash = self
            .connector_auth_row(connector)
            .await?
            .map(|row| row.secret_hash);
        loop {
            let mut notified = pin!(slot.notify.notified());
            notified.as_mut().enable();
            let epoch = slot.epoch();
            let due = !slot.known_empty(epoch) && self.store.has_due_job(connector).await?;
            if !due {
                slot.found_empty(epoch);
            }
            if let Some(job) = if due {
                self.store.lease_next(connector, lease_ms).await?
            } else {
                None
            } {
                self.metrics.jobs_leased.fetch_add(1, Ordering::Relaxed);
                self.schedule_sweep(to_ms(job.lease_expires_at));
                tracing::debug!(job = %job.id, %connector, attempt = job.attempt, "job leased");
                return Ok(Some(job));
            }
            if *shutdown.borrow() {
                return Err(Error::ShuttingDown);
            }
            tokio::select! {
                _ = notified => {
                    // Woken: the connector may have been disabled or re-keyed meanwhile.
                    match self.connector_auth_row(connector).await? {
                        Some(row) if Some(&row.secret_hash) != secret_hash.as_ref() => {
                            return Err(Error::Unauthorized("invalid connector credentials"));
                        }
                        Some(row) if row.enabled => continue,
                        Some(_) => return Err(Error::forbidden("this connector is disabled")),
                        None => return Err(Error::Unauthorized("invalid connector credentials")),
                    }
                }
                _ = tokio::time::sleep_until(deadline) => break,
                _ = shutdown.changed() => return Err(Error::ShuttingDown),
            }
        }
        self.metrics
            .long_polls_empty
            .fetch_add(1, Ordering::Relaxed);
        Ok(None)
    }

    pub async fn renew_lease(
        &self,
        connector: Uuid,
        job: Uuid,
        req: &LeaseRef,
    ) -> Result<LeaseStatus> {
        let lease_ms = i64::from(self.config.lease_secs) * 1000;
        self.store
            .renew_lease(job, connector, req.lease_token, lease_ms)
            .await
            .map_err(|e| self.refused(e))
    }

    pub async fn report_progress(
        &self,
        connector: Uuid,
        job: Uuid,
        req: &ProgressReport,
    ) -> Result<LeaseStatus> {
        if req.step.is_empty() || req.step.chars().count() > MAX_STEP {
            return Err(Error::bad(
                ErrorCode::InvalidField,
                format!("`step` must be 1 to {MAX_STEP} characters"),
            ));
        }
        if req
            .message
            .as_ref()
            .is_some_and(|m| m.chars().count() > MAX_MESSAGE)
        {
            return Err(Error::bad(
                ErrorCode::InvalidField,
                format!("`message` must be at most {MAX_MESSAGE} characters"),
            ));
        }
        if req.percent.is_some_and(|p| p > 100) {
            return Err(Error::bad(
                ErrorCode::InvalidField,
                "`percent` must be between 0 and 100",
            ));
        }
        let lease_ms = i64::from(self.config.lease_secs) * 1000;
        self.store
            .progress(
                job,
                connector,
                req.lease_token,
                lease_ms,
                &req.step,
                req.message.as_deref(),
                req.percent,
            )
            .await
            .map_err(|e| self.refused(e))
    }

    /// Records how a job ended and acts on what it produced, once: an inventory becomes what
    /// the hub shows of the site; each imported package is linked to its source application.
    /// A replayed report (the connector did not see the first answer) is answered the same
    /// and acted on no more.
    /// Whether `connector` may report on `job` at all (its own job): checked before a
    /// report's body is read, so that a report to someone else's or no job costs nothing.
    /// Refusals answer like a missing job.
    pub async fn check_report_target(&self, connector: Uuid, job: Uuid) -> Result<()> {
        match self.store.job_connector(job).await? {
            Some(owner) if owner == connector => Ok(()),
            _ => Err(Error::NotFound("job")),
        }
    }

    /// A slot for reading a large request body: bodies above 1 MiB (or of unknown length)
    /// are read at most [`LARGE_BODIES`] at a time, so that many large reports at once
    /// cannot add up to the hub's memory.
    pub async fn large_body_slot(
        &self,
        headers: &axum::http::HeaderMap,
    ) -> Result<Option<tokio::sync::SemaphorePermit<'_>>> {
        let declared = headers
            .get(axum::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n <= 1024 * 1024) {
            return Ok(None);
        }
        // A caller is told to come back rather than queue behind slow senders for long.
        let permit = tokio::time::timeout(Duration::from_secs(30), self.large_bodies.acquire())
            .await
            .map_err(|_| Error::Busy(10))?
            .map_err(|e| anyhow::anyhow!("body slots closed: {e}"))?;
        Ok(Some(permit))
    }

    pub async fn finish_job(&self, actor: &Actor, job: Uuid, req: &JobReport) -> Result<Job> {
        let connector = actor
            .connector_id()
            .ok_or_else(|| Error::forbidden("only the connector holding the lease reports"))?;
        if req
            .error
            .as_ref()
            .is_some_and(|m| m.chars().count() > MAX_MESSAGE)
        {
            return Err(Error::bad(
                ErrorCode::InvalidField,
                format!("`error` must be at most {MAX_MESSAGE} characters"),
            ));
        }
        let (done, replay) = self
            .store
            .finish(job, connector, req)
            .await
            .map_err(|e| self.refused(e))?;
        if replay {
            return Ok(done);
        }
        self.metrics.jobs_finished.fetch_add(1, Ordering::Relaxed);
        if done.state == JobState::Succeeded {
            match done.kind() {
                JobKind::Inventory => self.keep_inventory(connector, &done).await?,
                JobKind::Import => self.link_imports(actor, connector, &done).await?,
                _ => {}
            }
        }
        tracing::info!(job = %job, %connector, state = done.state.as_str(), "job finished");
        Ok(done)
    }

    /// The job's result is the site's inventory. Stamped with the job's creation, so an older
    /// inventory reported late never replaces a newer one.
    async fn keep_inventory(&self, connector: Uuid, done: &Job) -> Result<()> {
        let Some(result) = &done.result else {
            return Ok(());
        };
        match serde_json::from_str::<InventoryResult>(result.get()) {
            Ok(inventory) => {
                self.store
                    .save_inventory(connector, done.id, to_ms(done.created_at), &inventory)
                    .await?;
            }
            Err(e) => {
                tracing::warn!(job = %done.id, error = %e, "an inventory result that is not an inventory; not kept");
            }
        }
        Ok(())
    }

    /// Each imported package carries a link to the application it came from.
    async fn link_imports(&self, actor: &Actor, connector: Uuid, done: &Job) -> Result<()> {
        let imports = done
            .result
            .clone()
            .and_then(|r| serde_json::from_str::<ImportResult>(r.get()).ok())
            .map(|r| r.imports)
            .unwrap_or_default();
        for item in imports {
            let source = ImportSource {
                connector_id: connector,
                job_id: done.id,
                model_name: item.model_name,
                ci_id: item.ci_id,
                name: item.name,
                content_location: item.content_location,
                sccm: item.metadata,
            };
            if !self
                .store
                .set_package_source(actor, item.package_id, connector, &source)
                .await?
            {
                tracing::warn!(%connector, package = %item.package_id, "import named a package this connector did not upload; ignored");
            }
        }
        Ok(())
    }

    pub async fn release_job(&self, connector: Uuid, job: Uuid, req: &LeaseRef) -> Result<()> {
        let new_state = self
            .store
            .release(job, connector, req.lease_token)
            .await
            .map_err(|e| self.refused(e))?;
        if new_state == JobState::Queued {
            self.waiters.wake(connector);
        }
        tracing::info!(job = %job, %connector, "job released by its connector");
        Ok(())
    }

    fn refused(&self, e: JobError) -> Error {
        if matches!(e, JobError::StaleLease | JobError::Finished(_)) {
            self.metrics
                .stale_reports_refused
                .fetch_add(1, Ordering::Relaxed);
        }
        e.into()
    }
}
