//! The plug-in point for job kinds: an [`Executor`] turns a leased job's payload into a
//! result document, reporting progress through its [`JobContext`]. The runner owns leases,
//! cancellation and reporting, so an executor only does the work.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ferry_proto::job::{JobKind, LeasedJob};
use futures_util::future::BoxFuture;
use tokio::sync::mpsc;

use ferry_client::Client as HubClient;

/// How a job did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum JobFailure {
    /// The job ran and failed; the message reaches the hub as the job's error.
    #[error("{0}")]
    Failed(String),
    /// The hub stayed away longer than the lease: the job is given back (or its lease
    /// lapses) and runs again; it is never reported as failed for that.
    #[error("{0}")]
    Interrupted(String),
}

impl From<ferry_client::Error> for JobFailure {
    /// The one rule for faults talking to the hub ([`ferry_client::Error::is_transient`]):
    /// a transient one that outlasted the patience because the hub could not be reached
    /// interrupts the job (it runs again); a permanent one, or a transient answer the hub
    /// kept giving for the whole patience (a `500` for content it cannot serve), fails it.
    fn from(e: ferry_client::Error) -> Self {
        if e.is_transient() && !e.hub_answered() {
            JobFailure::Interrupted(e.to_string())
        } else {
            JobFailure::Failed(e.to_string())
        }
    }
}

/// The job's lease as this connector knows it: lost once the hub says so (a renewal answered
/// `404`/`409`). A hub that cannot be reached has not lapsed it — a restarted hub gives every
/// open lease its full time again — so transfers keep trying until it is lost, or until
/// [`QUIET`] passes without progress.
#[derive(Clone, Debug, Default)]
pub struct LeaseClock {
    lost: Arc<AtomicBool>,
}

/// Longest a transfer tries through transient faults without moving.
pub const QUIET: Duration = Duration::from_secs(15 * 60);

impl LeaseClock {
    /// The hub answered that the lease is gone.
    pub fn lose(&self) {
        self.lost.store(true, Ordering::Relaxed);
    }

    pub fn alive(&self) -> bool {
        !self.lost.load(Ordering::Relaxed)
    }

    /// Transfers keep trying while the lease is not lost, at most [`QUIET`] without progress.
    pub fn patience(&self) -> ferry_client::transfer::Patience {
        let clock = self.clone();
        ferry_client::transfer::Patience::Lease {
            alive: Arc::new(move || clock.alive()),
            quiet: QUIET,
        }
    }
}

/// A progress report from an executor, forwarded to the hub by the runner.
#[derive(Debug, Clone)]
pub struct Progress {
    pub step: String,
    pub message: Option<String>,
    pub percent: Option<u8>,
}

/// What an executor may use while it runs a job.
#[derive(Clone)]
pub struct JobContext {
    pub hub: HubClient,
    pub work_dir: PathBuf,
    /// The job's lease as this connector knows it.
    pub lease: LeaseClock,
    progress: mpsc::UnboundedSender<Progress>,
}

impl JobContext {
    pub fn new(
        hub: HubClient,
        work_dir: PathBuf,
        lease: LeaseClock,
        progress: mpsc::UnboundedSender<Progress>,
    ) -> Self {
        JobContext {
            hub,
            work_dir,
            lease,
            progress,
        }
    }

    /// Reports progress. Never blocks; the runner sends reports in order.
    pub fn progress(&self, step: &str, message: impl Into<Option<String>>, percent: Option<u8>) {
        let _ = self.progress.send(Progress {
            step: step.to_owned(),
            message: message.into(),
            percent,
        });
    }
}

/// Runs jobs of one kind. Cancellation is by dropping the returned future, so executors
/// must leave nothing behind when dropped (child processes are spawned `kill_on_drop`).
pub trait Executor: Send + Sync {
    fn kind(&self) -> JobKind;
    fn run<'a>(
        &'a self,
        job: &'a LeasedJob,
        ctx: JobContext,
    ) -> BoxFuture<'a, Result<serde_json::Value, JobFailure>>;
}

/// The executors a connector offers, by kind.
#[derive(Clone, Default)]
pub struct Executors {
    by_kind: HashMap<JobKind, Arc<dyn Executor>>,
}

impl Executors {
    pub fn with(mut self, executor: impl Executor + 'static) -> Self {
        self.by_kind.insert(executor.kind(), Arc::new(executor));
        self
    }

    pub fn get(&self, kind: JobKind) -> Option<Arc<dyn Executor>> {
        self.by_kind.get(&kind).cloned()
    }

    /// Everything this build of the connector can run, set up from its configuration.
    pub fn standard(config: &crate::ConnectorConfig) -> Self {
        Executors::default()
            .with(crate::diagnostics::Diagnostics)
            .with(crate::push::Push::new(config))
            .with(crate::inventory::Inventory::new(config))
            .with(crate::import::Import::new(config))
    }
}

/// A job failure with `message` as its reason.
pub fn fail(message: impl std::fmt::Display) -> JobFailure {
    JobFailure::Failed(message.to_string())
}

/// The job's payload if it is of the executor's kind (the runner only hands an executor jobs
/// of its kind; this keeps a mismatch an error rather than a panic).
pub fn payload_as<T>(
    job: &LeasedJob,
    pick: impl FnOnce(&ferry_proto::job::JobPayload) -> Option<&T>,
) -> Result<&T, JobFailure> {
    pick(&job.payload).ok_or_else(|| {
        fail(format!(
            "a {} job was handed to the wrong executor",
            job.kind().as_str()
        ))
    })
}
