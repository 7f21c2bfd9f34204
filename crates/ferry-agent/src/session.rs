//! The agent's connection loop: one session at a time over a WebSocket (or long polls where
//! WebSockets are refused), reconnecting with jittered backoff and obeying the hub's paced
//! admission; and what the agent does with each operation it is handed.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferry_proto::agent::{AGENT_PROTOCOL, AgentMessage, Assignment, HubMessage, Inventory};
use ferry_proto::backoff::Backoff;
use ferry_proto::ops::{OpOutcome, OpSpec, OutcomeState};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::channel::{ConnectError, WsTarget};
use crate::config::TransportChoice;
use crate::journal::{Decision, Entry, Journal, Stage, decide};
use ferry_client::{Client as HubHttp, Error as ClientError};
use ferry_proto::ErrorCode;

/// How long the agent long-polls before trying the WebSocket again (in `auto` mode).
const WS_RETRY_AFTER_FALLBACK: Duration = Duration::from_secs(600);
/// Longest admission wait the agent obeys (a confused hub cannot park it for days).
const MAX_DEFERRAL_MS: u64 = 15 * 60 * 1000;
/// A session that lasted this long resets the reconnection backoff.
const STABLE_SESSION: Duration = Duration::from_secs(60);

/// Runs one operation to its outcome. The agent's real executors implement it; the load
/// generator's simulated agents answer at once.
pub trait OpRunner: Send + Sync + 'static {
    fn run<'a>(
        &'a self,
        ctx: &'a Arc<AgentCtx>,
        a: &'a Assignment,
        cancel: CancellationToken,
    ) -> Pin<Box<dyn Future<Output = OpOutcome> + Send + 'a>>;

    /// Waits for the moment the operation waits for (`a.wait`, a startup or a logon) and
    /// says which moment it was (a line for the output); or the outcome to report instead of
    /// running it when the wait ends otherwise (given up, cancelled). Runners without
    /// moments run at once.
    fn wait<'a>(
        &'a self,
        _ctx: &'a Arc<AgentCtx>,
        _a: &'a Assignment,
        _cancel: &'a CancellationToken,
    ) -> Pin<Box<dyn Future<Output = Result<String, OpOutcome>> + Send + 'a>> {
        Box::pin(async { Ok(String::new()) })
    }
}

/// What an agent's session does, for whoever watches (the load generator counts sessions
/// and times deliveries).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentEvent {
    SessionStarted,
    SessionEnded,
    Delivered(Uuid),
}

pub type EventHook = Arc<dyn Fn(AgentEvent) + Send + Sync>;

/// One agent: its identity, its ways to the hub, and what it is doing.
pub struct AgentCtx {
    pub device_id: Uuid,
    token: Mutex<String>,
    http: Mutex<HubHttp>,
    /// Where the token lives: read again when the hub refuses the current one (a token
    /// rotated by `ferry agent rotate-token` while this process runs).
    pub token_file: Option<std::path::PathBuf>,
    pub ws: Option<WsTarget>,
    pub transport: TransportChoice,
    pub hold_secs: u32,
    pub max_backoff: Duration,
    pub replaced_backoff: Duration,
    pub inventory: Mutex<Inventory>,
    pub journal: Journal,
    pub runner: Arc<dyn OpRunner>,
    pub events: Option<EventHook>,
    /// Poll without holding, this often (for proxies that cut held requests, and the
    /// benchmark's interval-polling baseline). `None`: long polls.
    pub poll_interval: Option<Duration>,
    /// The current session's outgoing queue (none between sessions: reports wait for the
    /// hub to re-send the operation, then come from the journal).
    outbox: Mutex<Option<mpsc::UnboundedSender<AgentMessage>>>,
    active: Mutex<HashMap<Uuid, CancellationToken>>,
    /// Operations of `active` not started yet (waiting for their moment or their turn): said
    /// `received`, not `running`, whenever said again (the hub gives a running operation only
    /// its timeout to finish, a received one its whole life).
    not_started: Mutex<HashSet<Uuid>>,
    /// Installs, uninstalls, policy and restarts run one at a time (msiexec allows one).
    exclusive: tokio::sync::Mutex<()>,
    max_message: AtomicU32,
    in_session: AtomicBool,
    /// The session number from the last `welcome` (long polls carry it).
    session_id: AtomicU64,
}

/// How a session ended, and so what to do next.
#[derive(Debug)]
enum SessionEnd {
    Shutdown,
    Deferred(u64),
    Replaced,
    Revoked(String),
    WsRefused(String),
    RetryWebSocket,
    Lost(String),
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl AgentCtx {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        token: String,
        http: HubHttp,
        ws: Option<WsTarget>,
        transport: TransportChoice,
        inventory: Inventory,
        journal: Journal,
        runner: Arc<dyn OpRunner>,
    ) -> Result<Self, ClientError> {
        let device_id = token
            .split_once(':')
            .and_then(|(id, _)| Uuid::parse_str(id).ok())
            .ok_or_else(|| ClientError::Setup("the device token is malformed".into()))?;
        Ok(AgentCtx {
            device_id,
            token: Mutex::new(token),
            http: Mutex::new(http),
            token_file: None,
            ws,
            transport,
            hold_secs: 25,
            max_backoff: Duration::from_secs(60),
            replaced_backoff: Duration::from_secs(600),
            inventory: Mutex::new(inventory),
            journal,
            runner,
            events: None,
            poll_interval: None,
            outbox: Mutex::new(None),
            active: Mutex::new(HashMap::new()),
            not_started: Mutex::new(HashSet::new()),
            exclusive: tokio::sync::Mutex::new(()),
            max_message: AtomicU32::new(2 * 1024 * 1024),
            in_session: AtomicBool::new(false),
            session_id: AtomicU64::new(0),
        })
    }

    /// What to say again about an operation this process is handling.
    fn progress(&self, op_id: Uuid) -> AgentMessage {
        if lock(&self.not_started).contains(&op_id) {
            AgentMessage::Received { op_id }
        } else {
            AgentMessage::Running { op_id }
        }
    }

    pub fn token(&self) -> String {
        lock(&self.token).clone()
    }

    /// The HTTP client with the current token.
    pub fn http(&self) -> HubHttp {
        lock(&self.http).clone()
    }

    /// Takes up a token that changed on disk; true if it did.
    fn reload_token(&self) -> bool {
        let Some(path) = &self.token_file else {
            return false;
        };
        let Ok(text) = std::fs::read_to_string(path) else {
            return false;
        };
        let new = text.trim();
        if new.is_empty() || *lock(&self.token) == new {
            return false;
        }
        let same_device = new
            .split_once(':')
            .and_then(|(id, _)| Uuid::parse_str(id).ok())
            == Some(self.device_id);
        let Ok(http) = lock(&self.http).with_credential(new) else {
            return false;
        };
        if !same_device {
            tracing::error!("the token file now holds another device's token; ignoring it");
            return false;
        }
        *lock(&self.http) = http;
        *lock(&self.token) = new.to_owned();
        tracing::info!("took up the device's new token");
        true
    }

    /// Sends on the current session, if there is one.
    pub fn send(&self, msg: AgentMessage) {
        if let Some(tx) = lock(&self.outbox).as_ref() {
            let _ = tx.send(msg);
        }
    }

    fn hello(&self) -> AgentMessage {
        AgentMessage::Hello {
            protocol: AGENT_PROTOCOL,
            inventory: clamp(lock(&self.inventory).clone()),
        }
    }

    /// Replaces the inventory and tells the hub, if it changed.
    pub fn update_inventory(&self, inventory: Inventory) {
        let changed = {
            let mut current = lock(&self.inventory);
            let changed = *current != inventory;
            *current = inventory.clone();
            changed
        };
        if changed {
            self.send(AgentMessage::Inventory {
                inventory: clamp(inventory),
            });
        }
    }

    fn event(&self, e: AgentEvent) {
        if let Some(hook) = &self.events {
            hook(e);
        }
    }
}

/// Fits an inventory within the hub's limits (255 characters per field, 64 addresses), so
/// that a machine with an odd name or many addresses can still connect.
fn clamp(mut inv: Inventory) -> Inventory {
    for field in [
        &mut inv.hostname,
        &mut inv.os_name,
        &mut inv.os_version,
        &mut inv.arch,
        &mut inv.agent_version,
    ] {
        *field = field
            .chars()
            .filter(|c| !c.is_control())
            .take(255)
            .collect();
    }
    if let Some(d) = &mut inv.domain {
        *d = d.chars().filter(|c| !c.is_control()).take(255).collect();
    }
    inv.ips.retain(|ip| ip.parse::<std::net::IpAddr>().is_ok());
    inv.ips.truncate(64);
    inv
}

/// Keeps the agent connected until `shutdown` is cancelled.
pub async fn run(ctx: Arc<AgentCtx>, shutdown: CancellationToken) {
    let mut backoff = Backoff::new(ctx.max_backoff);
    let mut ws_blocked_until: Option<Instant> = None;
    loop {
        let use_ws = ctx.ws.is_some()
            && match ctx.transport {
                TransportChoice::Websocket => true,
                TransportChoice::Poll => false,
                TransportChoice::Auto => ws_blocked_until.is_none_or(|t| Instant::now() >= t),
            };
        let started = Instant::now();
        let end = if use_ws {
            ws_session(&ctx, &shutdown).await
        } else {
            poll_session(
                &ctx,
                &shutdown,
                ctx.transport == TransportChoice::Auto && ctx.ws.is_some(),
            )
            .await
        };
        *lock(&ctx.outbox) = None;
        if ctx.in_session.swap(false, Ordering::Relaxed) {
            ctx.event(AgentEvent::SessionEnded);
        }
        if started.elapsed() >= STABLE_SESSION {
            backoff.reset();
        }
        let wait = match end {
            SessionEnd::Shutdown => return,
            SessionEnd::Deferred(ms) => {
                tracing::debug!(
                    ms,
                    "hub is pacing admissions; coming back at the given slot"
                );
                let ms = ms.min(MAX_DEFERRAL_MS);
                let jitter = fastrand::u64(0..=(ms / 10).clamp(1, 1000));
                Duration::from_millis(ms + jitter)
            }
            SessionEnd::Replaced => {
                tracing::error!(
                    pause_secs = ctx.replaced_backoff.as_secs(),
                    "the hub closed this session because another process connected with the \
                     same device token; pausing before reconnecting"
                );
                ctx.replaced_backoff
            }
            SessionEnd::Revoked(_) if ctx.reload_token() => Duration::ZERO,
            SessionEnd::Revoked(why) => {
                tracing::error!(%why, "the hub refused this device; retrying later");
                ctx.max_backoff
            }
            SessionEnd::WsRefused(why) => {
                tracing::warn!(%why, "WebSocket unavailable; falling back to long polling");
                ws_blocked_until = Some(Instant::now() + WS_RETRY_AFTER_FALLBACK);
                Duration::ZERO
            }
            SessionEnd::RetryWebSocket => {
                ws_blocked_until = None;
                Duration::ZERO
            }
            SessionEnd::Lost(why) => {
                let wait = backoff.next_delay();
                tracing::info!(%why, retry_in_ms = wait.as_millis() as u64, "lost the hub");
                wait
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}

async fn ws_session(ctx: &Arc<AgentCtx>, shutdown: &CancellationToken) -> SessionEnd {
    let Some(target) = &ctx.ws else {
        return SessionEnd::WsRefused("no WebSocket target".into());
    };
    let mut ws = match target.connect(&ctx.token()).await {
        Ok(ws) => ws,
        Err(ConnectError::Deferred(ms)) => return SessionEnd::Deferred(ms),
        // Another connection of this device is still saying hello (ours, half-dead): retry.
        Err(ConnectError::Refused { status: 409 }) => {
            return SessionEnd::Lost("the hub is still setting up an earlier connection".into());
        }
        Err(ConnectError::Refused { status: 401 | 403 }) => {
            return SessionEnd::Revoked("the hub refused the device token".into());
        }
        Err(
            e
            @ (ConnectError::Refused { .. } | ConnectError::Handshake(_) | ConnectError::Proxy(_)),
        ) if ctx.transport == TransportChoice::Auto => {
            return SessionEnd::WsRefused(e.to_string());
        }
        Err(e) => return SessionEnd::Lost(e.to_string()),
    };
    let (tx, mut rx) = mpsc::unbounded_channel();
    *lock(&ctx.outbox) = Some(tx);
    let send = |msg: &AgentMessage| {
        serde_json::to_string(msg)
            .map(|t| Message::Text(t.into()))
            .map_err(|e| e.to_string())
    };
    match send(&ctx.hello()) {
        Ok(m) => {
            if let Err(e) = ws.send(m).await {
                return SessionEnd::Lost(e.to_string());
            }
        }
        Err(e) => return SessionEnd::Lost(e),
    }
    let mut ping = tokio::time::interval(Duration::from_secs(30));
    ping.reset();
    let mut awaiting_pong = false;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => {
                let _ = ws.close(None).await;
                return SessionEnd::Shutdown;
            }
            msg = ws.next() => match msg {
                Some(Ok(Message::Text(text))) => match serde_json::from_str(text.as_str()) {
                    Ok(value) => {
                        if let Some(secs) = handle_value(ctx, value) {
                            ping = tokio::time::interval(Duration::from_secs(secs.max(1).into()));
                            ping.reset();
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "unreadable message from the hub"),
                },
                Some(Ok(Message::Pong(_))) => awaiting_pong = false,
                Some(Ok(Message::Close(frame))) => {
                    let (code, reason) = frame
                        .map(|f| (u16::from(f.code), f.reason.to_string()))
                        .unwrap_or((1005, String::new()));
                    return match code {
                        ferry_proto::agent::CLOSE_REPLACED => SessionEnd::Replaced,
                        ferry_proto::agent::CLOSE_REVOKED => SessionEnd::Revoked(reason),
                        _ => SessionEnd::Lost(format!("the hub closed the session ({code} {reason})")),
                    };
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return SessionEnd::Lost(e.to_string()),
                None => return SessionEnd::Lost("connection closed".into()),
            },
            out = rx.recv() => {
                let Some(out) = out else { continue };
                let out = fit(ctx, out);
                match send(&out) {
                    Ok(m) => if let Err(e) = ws.send(m).await {
                        return SessionEnd::Lost(e.to_string());
                    },
                    Err(e) => tracing::error!(error = %e, "could not encode a message"),
                }
            }
            _ = ping.tick() => {
                if awaiting_pong {
                    return SessionEnd::Lost(
                        "no answer to a ping within one interval (half-open connection)".into(),
                    );
                }
                if let Err(e) = ws.send(Message::Ping(Default::default())).await {
                    return SessionEnd::Lost(e.to_string());
                }
                awaiting_pong = true;
            }
        }
    }
}

async fn poll_session(
    ctx: &Arc<AgentCtx>,
    shutdown: &CancellationToken,
    retry_ws: bool,
) -> SessionEnd {
    let (tx, mut rx) = mpsc::unbounded_channel();
    *lock(&ctx.outbox) = Some(tx);
    let started = Instant::now();
    let mut hello = true;
    loop {
        if retry_ws && started.elapsed() >= WS_RETRY_AFTER_FALLBACK {
            return SessionEnd::RetryWebSocket;
        }
        let mut pending = Vec::new();
        while let Ok(m) = rx.try_recv() {
            pending.push(fit(ctx, m));
        }
        let limit = ctx.max_message.load(Ordering::Relaxed) as usize / 2;
        let mut parts = by_size(pending, limit).into_iter();
        let mut batch = parts.next().unwrap_or_default();
        if hello {
            batch.insert(0, ctx.hello());
        }
        // What does not fit goes back in the queue, for the next request.
        for m in parts.flatten() {
            ctx.send(m);
        }
        let hold = if hello || ctx.poll_interval.is_some() {
            0
        } else {
            ctx.hold_secs
        };
        let session = (!hello).then(|| ctx.session_id.load(Ordering::Relaxed));
        let http = ctx.http();
        let poll = http.poll(hold, session, &batch);
        tokio::pin!(poll);
        let result = loop {
            tokio::select! {
                r = &mut poll => break r,
                _ = shutdown.cancelled() => return SessionEnd::Shutdown,
                Some(m) = rx.recv(), if !hello => {
                    if let Err(end) = side_request(ctx, m, &mut rx).await {
                        return end;
                    }
                }
            }
        };
        match result {
            Ok(msgs) => {
                let first = hello;
                hello = false;
                for m in msgs {
                    handle_value(ctx, m);
                }
                if let Some(every) = ctx.poll_interval {
                    // The first wait is random, so interval pollers do not move in step.
                    let wait = if first {
                        every.mul_f64(fastrand::f64())
                    } else {
                        every
                    };
                    let sleep = tokio::time::sleep(wait);
                    tokio::pin!(sleep);
                    loop {
                        tokio::select! {
                            _ = &mut sleep => break,
                            _ = shutdown.cancelled() => return SessionEnd::Shutdown,
                            Some(m) = rx.recv() => {
                                if let Err(end) = side_request(ctx, m, &mut rx).await {
                                    return end;
                                }
                            }
                        }
                    }
                }
            }
            Err(e) if e.code() == Some(ErrorCode::SessionRequired) => hello = true,
            Err(e) => return poll_error(e),
        }
    }
}

/// Sends reports at once on a request of their own, instead of waiting for the held (or
/// the next interval's) poll.
///
/// A failed side request ends the session: its reports (and whatever the hub put in the lost
/// answer) are recovered by the next session, which the hub starts by re-sending every
/// unfinished operation and the agent by repeating what it is running and has finished.
async fn side_request(
    ctx: &Arc<AgentCtx>,
    first: AgentMessage,
    rx: &mut mpsc::UnboundedReceiver<AgentMessage>,
) -> Result<(), SessionEnd> {
    let mut side = vec![fit(ctx, first)];
    while let Ok(m) = rx.try_recv() {
        side.push(fit(ctx, m));
    }
    let session = Some(ctx.session_id.load(Ordering::Relaxed));
    for batch in by_size(side, ctx.max_message.load(Ordering::Relaxed) as usize / 2) {
        let msgs = ctx
            .http()
            .poll(0, session, &batch)
            .await
            .map_err(poll_error)?;
        for m in msgs {
            handle_value(ctx, m);
        }
    }
    Ok(())
}

/// Splits messages into requests of at most `limit` bytes each (a larger message travels
/// alone; `fit` has already shrunk it below the hub's limit).
fn by_size(messages: Vec<AgentMessage>, limit: usize) -> Vec<Vec<AgentMessage>> {
    let mut out: Vec<Vec<AgentMessage>> = Vec::new();
    let mut size = 0;
    for m in messages {
        let len = serde_json::to_vec(&m).map(|v| v.len()).unwrap_or(0);
        match out.last_mut() {
            Some(batch) if size + len <= limit => {
                batch.push(m);
                size += len;
            }
            _ => {
                out.push(vec![m]);
                size = len;
            }
        }
    }
    out
}

fn poll_error(e: ClientError) -> SessionEnd {
    match e {
        ClientError::Deferred(ms) => SessionEnd::Deferred(ms),
        e if e.code() == Some(ErrorCode::SessionReplaced) => SessionEnd::Replaced,
        e if e.is_auth() => SessionEnd::Revoked(e.to_string()),
        e => SessionEnd::Lost(e.to_string()),
    }
}

/// Shrinks a result's output until the message fits the hub's limit.
fn fit(ctx: &AgentCtx, msg: AgentMessage) -> AgentMessage {
    let AgentMessage::Finished { op_id, mut outcome } = msg else {
        return msg;
    };
    let limit = ctx.max_message.load(Ordering::Relaxed) as usize - 4096;
    while serde_json::to_vec(&outcome).map(|v| v.len()).unwrap_or(0) > limit
        && (!outcome.output.is_empty() || !outcome.error.is_empty())
    {
        for s in [&mut outcome.output, &mut outcome.error] {
            let mut cut = s.len() / 2;
            while !s.is_char_boundary(cut) {
                cut -= 1;
            }
            s.truncate(cut);
        }
    }
    AgentMessage::Finished { op_id, outcome }
}

/// An operation this agent cannot read (a newer hub's kind): answered as failed, so the
/// operator sees why instead of a target that never moves.
pub fn unsupported(value: &serde_json::Value) -> Option<AgentMessage> {
    if value.get("type")?.as_str()? != "operation" {
        return None;
    }
    let op_id = Uuid::parse_str(value.get("op_id")?.as_str()?).ok()?;
    let kind = value.get("kind").and_then(|k| k.as_str()).unwrap_or("?");
    Some(AgentMessage::Finished {
        op_id,
        outcome: OpOutcome {
            state: OutcomeState::Failed,
            exit_code: None,
            output: String::new(),
            error: format!(
                "this agent (version {}) does not support operation kind {kind:?}",
                env!("CARGO_PKG_VERSION")
            ),
            reboot_required: false,
        },
    })
}

fn handle_value(ctx: &Arc<AgentCtx>, value: serde_json::Value) -> Option<u32> {
    match serde_json::from_value::<HubMessage>(value.clone()) {
        Ok(m) => handle(ctx, m),
        Err(e) => {
            match unsupported(&value) {
                Some(answer) => ctx.send(answer),
                None => tracing::warn!(error = %e, "unreadable message from the hub"),
            }
            None
        }
    }
}

/// Handles one hub message; returns a new ping interval when the hub announced one.
fn handle(ctx: &Arc<AgentCtx>, msg: HubMessage) -> Option<u32> {
    match msg {
        HubMessage::Welcome {
            ping_interval_secs,
            max_message_bytes,
            session_id,
            ..
        } => {
            ctx.session_id.store(session_id, Ordering::Relaxed);
            // What this agent is doing and has done, said again on every new session: the
            // hub answers a running operation it has closed meanwhile (cancelled while the
            // device was away) with a cancel, and confirms results whose confirmation was lost.
            let running: Vec<Uuid> = lock(&ctx.active).keys().copied().collect();
            for op_id in running {
                ctx.send(ctx.progress(op_id));
            }
            for (op_id, outcome) in ctx.journal.unconfirmed() {
                ctx.send(AgentMessage::Finished { op_id, outcome });
            }
            ctx.max_message
                .store(max_message_bytes.max(64 * 1024), Ordering::Relaxed);
            if !ctx.in_session.swap(true, Ordering::Relaxed) {
                ctx.event(AgentEvent::SessionStarted);
            }
            return Some(ping_interval_secs);
        }
        HubMessage::Operation(a) => {
            ctx.event(AgentEvent::Delivered(a.op_id));
            on_assignment(ctx, a);
        }
        HubMessage::Cancel { op_id } => {
            if let Some(token) = lock(&ctx.active).get(&op_id) {
                tracing::info!(op = %op_id, "cancelled by the hub");
                token.cancel();
            }
        }
        HubMessage::ResultStored { op_id } => ctx.journal.remove(op_id),
        HubMessage::Error { code, message } => {
            tracing::warn!(%code, %message, "the hub could not use a message");
        }
    }
    None
}

fn exclusive(spec: &OpSpec) -> bool {
    matches!(
        spec,
        OpSpec::Install { .. }
            | OpSpec::Uninstall { .. }
            | OpSpec::Advertise { .. }
            | OpSpec::RequestMachinePolicy
            | OpSpec::Restart
    )
}

fn on_assignment(ctx: &Arc<AgentCtx>, a: Assignment) {
    let op_id = a.op_id;
    let found = ctx.journal.get(op_id);
    let active = lock(&ctx.active).contains_key(&op_id);
    let decision = decide(
        found.as_ref().map(|(e, _)| e),
        found.as_ref().is_some_and(|(_, inherited)| *inherited),
        active,
        &a,
    );
    match decision {
        Decision::Run => {
            let attempts = found.as_ref().map(|(e, _)| e.attempts).unwrap_or(0);
            // A wait an earlier process began goes on from where it was.
            let waiting = found.and_then(|(e, _)| e.waiting);
            if let Err(e) = ctx.journal.put(Entry {
                op_id,
                stage: Stage::Received,
                attempts,
                outcome: None,
                updated_at: 0,
                processes: Vec::new(),
                waiting,
            }) {
                // Without a journal entry a restart could run it twice; refuse instead.
                tracing::error!(op = %op_id, error = %e, "cannot write the journal");
                ctx.send(AgentMessage::Finished {
                    op_id,
                    outcome: OpOutcome {
                        state: OutcomeState::Failed,
                        exit_code: None,
                        output: String::new(),
                        error: format!("the agent cannot write its journal: {e}"),
                        reboot_required: false,
                    },
                });
                return;
            }
            // `received` is said only if the operation has to wait its turn; one that starts
            // at once goes straight to `running` (a third fewer messages in a fan-out).
            let token = CancellationToken::new();
            // Before the spawn: a repeat of this delivery (or a new session's welcome) may be
            // handled before the new task first runs.
            lock(&ctx.not_started).insert(op_id);
            lock(&ctx.active).insert(op_id, token.clone());
            tokio::spawn(run_op(ctx.clone(), a, attempts, token));
        }
        Decision::StillRunning => {
            let progress = ctx.progress(op_id);
            let started = !matches!(progress, AgentMessage::Received { .. });
            tracing::info!(op = %op_id, started, "sent again while in hand");
            ctx.send(progress);
        }
        Decision::Report(outcome) => {
            if found.is_none_or(|(e, _)| e.stage != Stage::Finished) {
                let _ = ctx.journal.put(Entry {
                    op_id,
                    stage: Stage::Finished,
                    attempts: 0,
                    outcome: Some(outcome.clone()),
                    updated_at: 0,
                    processes: Vec::new(),
                    waiting: None,
                });
            }
            ctx.send(AgentMessage::Finished { op_id, outcome });
        }
    }
}

async fn run_op(ctx: Arc<AgentCtx>, a: Assignment, attempts: u32, cancel: CancellationToken) {
    let op_id = a.op_id;
    let mut moment = String::new();
    // A re-run after an interruption had its moment already.
    if a.wait.is_some() && attempts == 0 {
        // The hub shows it delivered while the device waits for its moment.
        ctx.send(AgentMessage::Received { op_id });
        tracing::info!(op = %op_id, "waiting for its moment");
        match ctx.runner.wait(&ctx, &a, &cancel).await {
            Ok(line) => moment = line,
            Err(outcome) => {
                finish(&ctx, op_id, attempts, outcome);
                return;
            }
        }
    }
    let _turn = if exclusive(&a.spec) {
        match ctx.exclusive.try_lock() {
            Ok(turn) => Some(turn),
            Err(_) => {
                ctx.send(AgentMessage::Received { op_id });
                Some(ctx.exclusive.lock().await)
            }
        }
    } else {
        None
    };
    if let Err(e) = ctx.journal.put(Entry {
        op_id,
        stage: Stage::Running,
        attempts: attempts + 1,
        outcome: None,
        updated_at: 0,
        processes: Vec::new(),
        waiting: None,
    }) {
        tracing::error!(op = %op_id, error = %e, "cannot write the journal");
    }
    lock(&ctx.not_started).remove(&op_id);
    ctx.send(AgentMessage::Running { op_id });
    tracing::info!(op = %op_id, kind = a.spec.kind(), "running");
    // The executors enforce the timeout themselves; this is the backstop.
    let backstop = Duration::from_secs(u64::from(a.timeout_secs) + 60);
    let hook: Arc<dyn Fn(u32) + Send + Sync> = {
        let ctx = ctx.clone();
        Arc::new(move |pid| {
            if let Err(e) = ctx.journal.note_process(op_id, pid) {
                tracing::warn!(op = %op_id, error = %e, "cannot record a process in the journal");
            }
        })
    };
    let run = crate::exec::process::ON_SPAWN.scope(hook, ctx.runner.run(&ctx, &a, cancel.clone()));
    let outcome = match tokio::time::timeout(backstop, run).await {
        Ok(o) => o,
        Err(_) => {
            cancel.cancel();
            OpOutcome {
                state: OutcomeState::Failed,
                exit_code: None,
                output: String::new(),
                error: format!("did not finish within {} s", a.timeout_secs),
                reboot_required: false,
            }
        }
    };
    let mut outcome = outcome;
    if !moment.is_empty() {
        outcome.output = format!("{moment}\n{}", outcome.output);
    }
    tracing::info!(op = %op_id, state = ?outcome.state, exit_code = ?outcome.exit_code, "finished");
    finish(&ctx, op_id, attempts + 1, outcome);
}

/// Journals an outcome, then reports it.
fn finish(ctx: &AgentCtx, op_id: Uuid, attempts: u32, outcome: OpOutcome) {
    if let Err(e) = ctx.journal.put(Entry {
        op_id,
        stage: Stage::Finished,
        attempts,
        outcome: Some(outcome.clone()),
        updated_at: 0,
        processes: Vec::new(),
        waiting: None,
    }) {
        tracing::error!(op = %op_id, error = %e, "cannot write the journal");
    }
    lock(&ctx.not_started).remove(&op_id);
    lock(&ctx.active).remove(&op_id);
    ctx.send(AgentMessage::Finished { op_id, outcome });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_operation_of_an_unknown_kind_is_answered_as_failed_naming_the_kind() {
        let op = Uuid::new_v4();
        let value = serde_json::json!({"type": "operation", "op_id": op, "kind": "format_disk"});
        assert!(serde_json::from_value::<HubMessage>(value.clone()).is_err());
        let Some(AgentMessage::Finished { op_id, outcome }) = unsupported(&value) else {
            panic!("expected an answer");
        };
        assert_eq!(op_id, op);
        assert_eq!(outcome.state, OutcomeState::Failed);
        assert!(outcome.error.contains("format_disk"), "{}", outcome.error);
    }

    #[test]
    fn other_unreadable_messages_get_no_answer() {
        assert!(unsupported(&serde_json::json!({"type": "surprise"})).is_none());
        assert!(unsupported(&serde_json::json!({"type": "operation"})).is_none());
    }
}
