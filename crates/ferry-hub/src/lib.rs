//! The Ferry hub: REST API, durable job queue, long-poll endpoints and storage.
//!
//! [`run`] is the whole server: it opens the data dir, makes sure an administrator exists,
//! starts the sweeper (lease lapses, expiries, delayed jobs) and serves HTTP or HTTPS until
//! the shutdown future resolves. Everything shared by request handlers lives in [`AppState`];
//! the business rules are its methods, in [`service`].

pub mod agents;
pub mod blobs;
pub mod callbacks;
pub mod collections;
pub mod config;
pub mod conn;
pub mod error;
pub mod http;
pub mod metrics;
pub mod notify;
pub mod packages;
mod presence;
pub mod secrets;
pub mod service;
pub mod store;
mod sweeper;
pub mod throttle;
pub mod time_util;
pub mod wake;
pub mod webhooks;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::AtomicI64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use axum_server::accept::DefaultAcceptor;
use tokio::sync::{Notify, watch};

pub use config::HubConfig;

use crate::metrics::Metrics;
use crate::secrets::{ServerKey, write_private_file};
use crate::service::identity::{IdentityCache, LoginThrottle, Usage};
use crate::store::Store;
use crate::wake::Waiters;

/// File names inside the data dir.
pub const DB_FILE: &str = "ferry.db";
pub const KEY_FILE: &str = "hub.key";
/// The key sealing integrations' signing secrets and run-as passwords (AES-256-GCM).
pub const SEAL_KEY_FILE: &str = "seal.key";
/// The initial administrator's first API key (see [`AppState::bootstrap_admin`]).
pub const ADMIN_TOKEN_FILE: &str = "admin.token";
/// The URL the hub is serving on, written once it listens (useful with port 0).
pub const URL_FILE: &str = "hub.url";
pub const BLOB_DIR: &str = "blobs";
/// Unfinished uploads (`<id>.part`), and the temporary copies of entries a package
/// inspection reads (`*.tmp`, removed at once; leftovers of a killed hub go at the next start).
pub const UPLOAD_DIR: &str = "uploads";

pub struct Shared {
    pub config: HubConfig,
    pub store: Store,
    pub key: ServerKey,
    pub waiters: Waiters,
    pub metrics: Metrics,
    /// Every open connection, for the idle rule and the unauthenticated cap.
    pub connections: Arc<conn::Connections>,
    /// Large request bodies read at once (see `service::queue::large_body_slot`).
    pub large_bodies: tokio::sync::Semaphore,
    pub shutdown: watch::Receiver<bool>,
    /// Wakes the sweeper early (a lease or timer that is due before its planned wake).
    pub sweeper: Notify,
    /// When the sweeper next plans to wake (Unix ms); see [`AppState::schedule_sweep`].
    pub sweeper_next_ms: AtomicI64,
    /// When each connector was last heard from (see [`presence`]).
    pub presence: presence::Presence,
    /// Connector credential hashes by ID, so that a long poll does not read the database to
    /// authenticate. Entries are dropped whenever a connector's secret or state changes.
    pub connector_auth: Mutex<service::connectors::ConnectorAuthCache>,
    /// Verified API keys and sessions (see [`service::identity`]).
    pub identity_cache: Mutex<IdentityCache>,
    /// When keys and sessions were last used, flushed with connector presence.
    pub usage: Usage,
    pub login_throttle: LoginThrottle,
    /// Failed authentications per address and per credential id (see `http::auth`).
    pub auth_failures: throttle::Failures,
    pub blobs: blobs::BlobStore,
    pub uploads: service::packages::UploadSlots,
    /// Connected agents, admission and the batched writer of their reports.
    pub agents: Arc<agents::Agents>,
    /// Seals the secrets the hub must read back (see [`secrets::Sealer`]).
    pub sealer: secrets::Sealer,
    /// The task callback outbox's worker state.
    pub outbox: callbacks::Outbox,
    /// Wakes the task scheduler (a task scheduled for later was created).
    pub scheduler: Notify,
    /// Task creations waiting for their group commit.
    pub task_group: service::helpdesk::TaskGroup,
    /// Notification e-mail, when an SMTP server is configured.
    pub mailer: Option<notify::Mailer>,
}

/// Cheap to clone; handed to every request handler.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl AppState {
    /// Makes sure the sweeper looks again no later than `at_ms`.
    pub fn schedule_sweep(&self, at_ms: i64) {
        use std::sync::atomic::Ordering;
        if at_ms < self.sweeper_next_ms.load(Ordering::Relaxed) {
            self.sweeper.notify_one();
        }
    }
}

/// Runs the hub until `shutdown` resolves, then drains requests (10 s at most) and closes
/// the store. Returns once everything is closed.
pub async fn run(
    config: HubConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    prepare_data_dir(&config.data_dir)?;
    let key = ServerKey::load_or_create(&config.data_dir.join(KEY_FILE)).context("server key")?;
    let sealer = secrets::Sealer::load_or_create(&config.data_dir.join(SEAL_KEY_FILE))
        .context("sealing key")?;
    let mailer = notify::Mailer::from_config(&config).context("SMTP settings")?;
    let store: Store = Arc::new(
        store::sqlite::SqliteStore::open(&config.data_dir, config.sqlite_synchronous)
            .await
            .with_context(|| format!("opening the database in {}", config.data_dir.display()))?,
    );

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let state = AppState(Arc::new(Shared {
        config: config.clone(),
        store: store.clone(),
        key,
        waiters: Waiters::default(),
        metrics: Metrics::default(),
        large_bodies: tokio::sync::Semaphore::new(service::queue::LARGE_BODIES),
        connections: conn::Connections::new(
            Duration::from_secs(u64::from(config.connection_idle_secs)),
            match config.max_unauthenticated_connections {
                0 => conn::default_max_unauthenticated(),
                n => n as usize,
            },
        ),
        shutdown: shutdown_rx,
        sweeper: Notify::new(),
        sweeper_next_ms: AtomicI64::new(i64::MAX),
        presence: presence::Presence::default(),
        connector_auth: Mutex::default(),
        identity_cache: Mutex::default(),
        usage: Usage::default(),
        auth_failures: throttle::Failures::new(Duration::from_secs(u64::from(
            config.auth_failure_window_secs,
        ))),
        login_throttle: LoginThrottle::new(
            Duration::from_secs(u64::from(config.login_window_secs)),
            config.login_failures_per_name as usize,
            config.login_failures_per_address as usize,
        ),
        blobs: blobs::BlobStore::new(config.data_dir.join(BLOB_DIR)),
        uploads: service::packages::UploadSlots::default(),
        agents: Arc::new(agents::Agents::new(
            config.agent_admission_rate,
            config.agent_admission_burst,
        )),
        sealer,
        outbox: callbacks::Outbox::default(),
        scheduler: Notify::new(),
        task_group: service::helpdesk::TaskGroup::default(),
        mailer,
    }));
    write_initial_admin_key(&state, &config.data_dir).await?;
    // Leases out when the hub stopped get their full time again: their connectors could not
    // renew while it was away, and a restart must not cost a job an attempt.
    let extended = store
        .extend_open_leases(crate::time_util::now_ms() + i64::from(config.lease_secs) * 1000)
        .await?;
    if extended > 0 {
        tracing::info!(
            leases = extended,
            "open leases given their full time after the start"
        );
    }
    let sweeper = tokio::spawn(sweeper::run(state.clone()));
    let presence = tokio::spawn(presence::run(state.clone()));
    let agent_writer = tokio::spawn(agents::run_writer(state.clone()));
    let op_sweeper = tokio::spawn(agents::run_sweeper(state.clone()));
    let poll_reaper = tokio::spawn(agents::run_poll_reaper(state.clone()));
    let memory_trim = tokio::spawn(agents::run_memory_trim(state.clone()));
    let callbacks = tokio::spawn(callbacks::run(state.clone()));
    let scheduler = tokio::spawn(service::helpdesk::run_scheduler(state.clone()));
    let notifier = tokio::spawn(notify::run(state.clone()));

    let listener = std::net::TcpListener::bind(config.listen)
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    listener.set_nonblocking(true)?;
    let addr: SocketAddr = listener.local_addr()?;
    let app = http::router(state.clone()).layer(
        tower_http::trace::TraceLayer::new_for_http()
            .make_span_with(tower_http::trace::DefaultMakeSpan::new().level(tracing::Level::DEBUG))
            .on_response(tower_http::trace::DefaultOnResponse::new().level(tracing::Level::DEBUG))
            // A 503 from paced admission is the hub working as designed, not an error; real
            // internal errors are logged by `http::error` with their cause.
            .on_failure(tower_http::trace::DefaultOnFailure::new().level(tracing::Level::DEBUG)),
    );

    let handle = axum_server::Handle::new();
    let drain = handle.clone();
    tokio::spawn(async move {
        shutdown.await;
        tracing::info!("shutting down: answering waiting long polls and draining requests");
        let _ = shutdown_tx.send(true);
        drain.graceful_shutdown(Some(Duration::from_secs(10)));
    });

    let scheme = if config.tls_cert.is_some() {
        "https"
    } else {
        "http"
    };
    let url = format!("{scheme}://{addr}");
    let service = app.into_make_service_with_connect_info::<SocketAddr>();
    let served = match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => {
            let tls = axum_server::tls_rustls::RustlsConfig::from_pem_file(cert, key)
                .await
                .with_context(|| {
                    format!(
                        "loading TLS certificate {} and key {}",
                        cert.display(),
                        key.display()
                    )
                })?;
            let guard = conn::Guard::new(state.connections.clone(), DefaultAcceptor);
            let server = axum_server::from_tcp_rustls(listener, tls)?
                .map(|tls| tls.acceptor(guard))
                .handle(handle);
            announce(&config.data_dir, &url)?;
            server.serve(service).await
        }
        _ => {
            let guard = conn::Guard::new(state.connections.clone(), DefaultAcceptor);
            let server = axum_server::from_tcp(listener)?
                .acceptor(guard)
                .handle(handle);
            announce(&config.data_dir, &url)?;
            server.serve(service).await
        }
    };
    sweeper.abort();
    op_sweeper.abort();
    poll_reaper.abort();
    memory_trim.abort();
    scheduler.abort();
    notifier.abort();
    // Attempts in flight are recorded before the store closes (a kill would leave them to
    // be sent again, with the same webhook-id).
    let _ = tokio::time::timeout(Duration::from_secs(20), callbacks).await;
    // Sessions have been told to close; what they reported is committed before the store
    // closes (bounded, so that a broken database cannot hold the shutdown forever).
    state.agents.stop_writer();
    if tokio::time::timeout(Duration::from_secs(10), agent_writer)
        .await
        .is_err()
    {
        tracing::warn!("the agent report writer did not finish within 10 s");
    }
    // The presence task flushes once more when it sees the shutdown signal.
    let _ = presence.await;
    store.close().await;
    served.context("server error")?;
    tracing::info!("hub stopped");
    Ok(())
}

fn announce(data_dir: &Path, url: &str) -> anyhow::Result<()> {
    // Written to a temporary name and renamed, so that a reader never sees half a URL.
    let tmp = data_dir.join(format!("{URL_FILE}.tmp"));
    std::fs::write(&tmp, format!("{url}\n")).context("writing hub.url")?;
    std::fs::rename(&tmp, data_dir.join(URL_FILE)).context("writing hub.url")?;
    tracing::info!(%url, "hub listening");
    Ok(())
}

fn prepare_data_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir.join(UPLOAD_DIR))
        .with_context(|| format!("creating data dir {}", dir.display()))?;
    // Inspection copies are unlinked as soon as they are opened; one is left only by a kill.
    if let Ok(entries) = std::fs::read_dir(dir.join(UPLOAD_DIR)) {
        for entry in entries.flatten() {
            if entry.path().extension().is_some_and(|e| e == "tmp") {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
    std::fs::create_dir_all(dir.join(BLOB_DIR))
        .with_context(|| format!("creating data dir {}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("restricting permissions of {}", dir.display()))?;
    }
    Ok(())
}

/// On first start (no technician yet), creates the initial administrator and writes its first
/// API key to `admin.token` (0600); at any later start where no enabled administrator has a
/// password or a live key, writes a new key there (see [`AppState::ensure_admin_access`]). A
/// hub upgraded from before technicians existed gets the first: its old admin token no longer
/// works, and the file now holds the new key.
async fn write_initial_admin_key(state: &AppState, dir: &Path) -> anyhow::Result<()> {
    let path = dir.join(ADMIN_TOKEN_FILE);
    let minted = state
        .ensure_admin_access(|token| {
            write_private_file(&path, format!("{token}\n").as_bytes())
                .with_context(|| format!("writing {}", path.display()))
        })
        .await?;
    if minted {
        tracing::info!(
            file = %path.display(),
            "an administrator API key was written to the file (first start, or no administrator could sign in)"
        );
    }
    Ok(())
}
