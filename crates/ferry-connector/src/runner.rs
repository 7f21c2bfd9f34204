//! The connector's main loop: long-poll, run one job at a time, keep its lease alive, forward
//! progress, learn of cancellations, report the outcome, and shut down without losing work.
//!
//! Shutdown: when the `shutdown` future resolves, a waiting long poll is dropped at once; a
//! running job gets `shutdown_grace_secs` to finish, and otherwise its lease is released so
//! the hub queues it again immediately (instead of waiting for the lease to lapse).

use std::sync::Arc;
use std::time::Duration;

use ferry_proto::job::{JobReport, LeasedJob, Outcome, ProgressReport};
use tokio::sync::{mpsc, watch};

use crate::backoff::Backoff;
use crate::config::ConnectorConfig;
use crate::executor::{Executors, JobContext, JobFailure, LeaseClock};
use ferry_client::{Client as HubClient, Error as ClientError};

/// The longest failure reason the hub accepts.
const MAX_ERROR_CHARS: usize = 4096;

fn truncate_chars(text: &str, max: usize) -> String {
    match text.char_indices().nth(max.saturating_sub(1)) {
        Some((at, _)) if text.chars().count() > max => format!("{}…", &text[..at]),
        _ => text.to_owned(),
    }
}

/// How long a finished job's report is retried while the hub is unreachable.
const REPORT_PATIENCE: Duration = Duration::from_secs(600);

pub struct Runner {
    config: ConnectorConfig,
    client: HubClient,
    executors: Executors,
}

/// How a job's run ended, before it is reported.
enum Ending {
    Done(Result<serde_json::Value, JobFailure>),
    Cancelled,
    /// The hub no longer recognises our lease: someone else may be running the job now.
    LeaseLost(String),
    /// Shutting down before the job finished.
    Interrupted,
}

impl Runner {
    pub fn new(config: ConnectorConfig, executors: Executors) -> Result<Self, ClientError> {
        let client = HubClient::new(&config.client_config())?;
        Ok(Runner {
            config,
            client,
            executors,
        })
    }

    pub fn client(&self) -> &HubClient {
        &self.client
    }

    /// Runs until `shutdown` resolves. Returns an error only for conditions retrying cannot fix
    /// (the hub refuses our credentials, or this connector was disabled).
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let (stop_tx, mut stop) = watch::channel(false);
        tokio::spawn(async move {
            shutdown.await;
            let _ = stop_tx.send(true);
        });
        let mut backoff =
            Backoff::new(Duration::from_secs(u64::from(self.config.max_backoff_secs)));
        let hold = if self.config.poll_interval_secs.is_some() {
            0
        } else {
            self.config.hold_secs
        };
        tracing::info!(hub = %self.config.hub_url, remote_id = %self.config.remote_id, hold, "connector started");
        loop {
            if *stop.borrow() {
                break;
            }
            let asked = tokio::select! {
                r = self.client.next_job(hold) => r,
                _ = stop.changed() => break,
            };
            let pause = match asked {
                Ok(Some(job)) => {
                    backoff.reset();
                    self.run_job(job, stop.clone()).await;
                    None
                }
                Ok(None) => {
                    if backoff.failures() > 0 {
                        tracing::info!("hub reachable again");
                    }
                    backoff.reset();
                    self.config
                        .poll_interval_secs
                        .map(|s| Duration::from_secs(u64::from(s)))
                }
                Err(e) if e.is_auth() => {
                    // Wrong secret or disabled connector: retrying forever would only fill logs
                    // and the hub's. Stop and say why.
                    return Err(anyhow::anyhow!("{e}"));
                }
                Err(e) => {
                    let delay = backoff.next_delay();
                    tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, failures = backoff.failures(), "hub unreachable; backing off");
                    Some(delay)
                }
            };
            if let Some(pause) = pause {
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    _ = stop.changed() => break,
                }
            }
        }
        tracing::info!("connector stopped");
        Ok(())
    }

    async fn run_job(&self, job: LeasedJob, mut stop: watch::Receiver<bool>) {
        tracing::info!(job = %job.id, kind = job.kind().as_str(), attempt = job.attempt, "job received");
        let Some(executor) = self.executors.get(job.kind()) else {
            let error = format!("this connector cannot run {} jobs", job.kind().as_str());
            self.deliver(&job, Outcome::Failed, None, Some(error)).await;
            return;
        };
        let (progress_tx, mut progress_rx) = mpsc::unbounded_channel();
        let lease = LeaseClock::default();
        let ctx = JobContext::new(
            self.client.clone(),
            self.config.work_dir.clone(),
            lease.clone(),
            progress_tx,
        );
        let job = Arc::new(job);
        let work_job = job.clone();
        let mut work = tokio::spawn(async move { executor.run(&work_job, ctx).await });

        // Renew at a third of the lease so that two renewals can fail before it lapses.
        let renew_every = Duration::from_millis(u64::from(job.lease_secs.max(2)) * 1000 / 3);
        let mut renew =
            tokio::time::interval_at(tokio::time::Instant::now() + renew_every, renew_every);
        let grace = Duration::from_secs(u64::from(self.config.shutdown_grace_secs));
        let mut grace_deadline: Option<tokio::time::Instant> = None;
        let mut progress_open = true;

        let ending = loop {
            let grace_sleep = async {
                match grace_deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                result = &mut work => {
                    // Forward progress sent just before the end, in order.
                    while let Ok(p) = progress_rx.try_recv() {
                        let _ = self.send_progress(&job, p).await;
                    }
                    break match result {
                        Ok(r) => Ending::Done(r),
                        Err(e) => Ending::Done(Err(JobFailure::Failed(format!("the job's task failed: {e}")))),
                    };
                }
                p = progress_rx.recv(), if progress_open => match p {
                    Some(p) => match self.send_progress(&job, p).await {
                        Ok(true) => break Ending::Cancelled,
                        Ok(false) => {}
                        Err(e) if e.lease_lost() => break Ending::LeaseLost(e.to_string()),
                        Err(e) => tracing::warn!(job = %job.id, error = %e, "progress not delivered"),
                    },
                    None => progress_open = false,
                },
                _ = renew.tick() => match self.client.renew(job.id, job.lease_token).await {
                    Ok(status) if status.cancel_requested => break Ending::Cancelled,
                    Ok(_) => {}
                    Err(e) if e.lease_lost() => {
                        lease.lose();
                        break Ending::LeaseLost(e.to_string());
                    }
                    Err(e) => tracing::warn!(job = %job.id, error = %e, "lease renewal failed; will retry"),
                },
                _ = stop.changed(), if grace_deadline.is_none() => {
                    tracing::info!(job = %job.id, grace_secs = grace.as_secs(), "shutting down: giving the running job time to finish");
                    grace_deadline = Some(tokio::time::Instant::now() + grace);
                }
                _ = grace_sleep => break Ending::Interrupted,
            }
        };
        if !work.is_finished() {
            // Dropping the executor's future is its cancellation (see `Executor`).
            work.abort();
        }
        match ending {
            Ending::Done(Ok(result)) => {
                self.deliver(&job, Outcome::Succeeded, Some(result), None)
                    .await
            }
            Ending::Done(Err(JobFailure::Failed(message))) => {
                self.deliver(&job, Outcome::Failed, None, Some(message))
                    .await
            }
            Ending::Done(Err(JobFailure::Interrupted(why))) => {
                // The hub was away longer than the lease: not the job's fault. Give it back
                // so that it runs again (or let the lease lapse if the hub is still away).
                tracing::warn!(job = %job.id, %why, "the hub stayed away past the lease; giving the job back");
                self.release(&job).await;
            }
            Ending::Cancelled => {
                tracing::info!(job = %job.id, "job cancelled by the hub");
                self.deliver(
                    &job,
                    Outcome::Cancelled,
                    None,
                    Some("cancelled by an administrator".to_owned()),
                )
                .await
            }
            Ending::LeaseLost(why) => {
                tracing::warn!(job = %job.id, %why, "lease lost; abandoning the job")
            }
            Ending::Interrupted => self.release(&job).await,
        }
    }

    /// Gives a job back for another run; if the hub cannot be told, the lease lapses.
    async fn release(&self, job: &LeasedJob) {
        match self.client.release(job.id, job.lease_token).await {
            Ok(()) => tracing::info!(job = %job.id, "job released to the hub for another run"),
            Err(e) => {
                tracing::warn!(job = %job.id, error = %e, "could not release the job; its lease will lapse")
            }
        }
    }

    /// Sends one progress report; `Ok(true)` when the hub asks us to cancel.
    async fn send_progress(
        &self,
        job: &LeasedJob,
        p: crate::executor::Progress,
    ) -> Result<bool, ClientError> {
        let report = ProgressReport {
            lease_token: job.lease_token,
            step: p.step,
            message: p.message,
            percent: p.percent,
        };
        self.client
            .progress(job.id, &report)
            .await
            .map(|s| s.cancel_requested)
    }

    /// Reports the outcome, retrying with backoff while the hub is unreachable: a finished
    /// job's result is the one thing the connector must not drop. Gives up only when the hub
    /// answers that the lease is gone (then the job runs again elsewhere, by design).
    async fn deliver(
        &self,
        job: &LeasedJob,
        outcome: Outcome,
        result: Option<serde_json::Value>,
        error: Option<String>,
    ) {
        let report = JobReport {
            lease_token: job.lease_token,
            outcome,
            // A `Value` always serialises; the hub keeps the text as sent.
            result: result.and_then(|r| serde_json::value::to_raw_value(&r).ok()),
            // The hub refuses longer reasons; keep the start, where the cause usually is.
            error: error.map(|e| truncate_chars(&e, MAX_ERROR_CHARS)),
        };
        let mut backoff =
            Backoff::new(Duration::from_secs(u64::from(self.config.max_backoff_secs)));
        // Past this, the hub has long re-queued the job (its lease lapsed), and it will run
        // again: stop trying rather than keep a stopping connector alive forever.
        let give_up = tokio::time::Instant::now() + REPORT_PATIENCE;
        loop {
            if tokio::time::Instant::now() > give_up {
                tracing::error!(job = %job.id, "gave up delivering the job's report; the hub will run the job again");
                return;
            }
            match self.client.report(job.id, &report).await {
                Ok(done) => {
                    tracing::info!(job = %job.id, state = done.state.as_str(), "job reported");
                    return;
                }
                Err(e) if e.is_permanent() => {
                    tracing::warn!(job = %job.id, error = %e, "the hub refused the job's report");
                    return;
                }
                Err(e) => {
                    let delay = backoff.next_delay();
                    tracing::warn!(job = %job.id, error = %e, retry_in_ms = delay.as_millis() as u64, "report not delivered; retrying");
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }
}
