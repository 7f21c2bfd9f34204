//! Live agent sessions, paced admission, and the batched writer for agent reports.
//!
//! * **Sessions.** Each connected device has one [`Session`] (WebSocket or long poll): a small
//!   outbox of serialised frames and a [`Notify`]. Whoever has something for the device (a
//!   new operation, a cancel, an acknowledgement) pushes a frame and notifies; the session's
//!   own task writes it out. A frame for an operation is serialised once and shared by every
//!   target (`Bytes` clones are reference counts), which is what makes a 20,000-device
//!   fan-out cheap. Per idle session the hub holds the outbox (a few dozen bytes) and whatever
//!   the socket, TLS and WebSocket layers need; buffer sizes are set small on purpose.
//! * **Admission.** A generic cell rate algorithm: sessions start at `agent_admission_rate`
//!   per second after a burst; a refused agent is given its own future slot, so a thundering
//!   herd comes back as an orderly queue.
//! * **Writer.** Agent reports go to one task that commits whatever has accumulated in one
//!   transaction (group commit), then acknowledges results to their agents. While one commit
//!   is being fsynced the next batch fills up, so throughput grows with load instead of
//!   collapsing under it.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use ferry_proto::agent::{HubMessage, Inventory};
use tokio::sync::{Notify, mpsc, watch};
use uuid::Uuid;

use crate::AppState;
use crate::store::{AgentWrite, DeviceAuthRow};
use crate::time_util::now_ms;

/// Frames waiting for one agent before its session is closed instead.
pub const MAX_OUTBOX: usize = 10_000;
/// Longest wait paced admission promises; beyond it, agents are told this (they come back
/// and are paced again), so a flood of refused attempts cannot push slots out for hours.
const MAX_PROMISE: Duration = Duration::from_secs(300);

/// How a session reaches its agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    WebSocket,
    LongPoll,
}

/// One connected device.
pub struct Session {
    pub id: u64,
    pub device: Uuid,
    pub transport: Transport,
    outbox: Mutex<VecDeque<Bytes>>,
    pub notify: Notify,
    /// Set when the hub wants this session gone (replaced, revoked, shutting down).
    close: Mutex<Option<(u16, &'static str)>>,
    /// When the agent was last heard from ([`mono_ms`]).
    pub last_heard: AtomicI64,
}

impl Session {
    /// Queues a frame. An agent that lets more than [`MAX_OUTBOX`] frames pile up (it stopped
    /// reading) loses its session instead of the hub's memory.
    pub fn push(&self, frame: Bytes) {
        let overflow = {
            let mut outbox = lock(&self.outbox);
            outbox.push_back(frame);
            outbox.len() > MAX_OUTBOX
        };
        if overflow {
            lock(&self.outbox).clear();
            self.request_close(1008, "the agent is not reading its messages");
        }
        self.notify.notify_one();
    }

    pub fn push_message(&self, message: &HubMessage) {
        if let Ok(json) = serde_json::to_vec(message) {
            self.push(Bytes::from(json));
        }
    }

    pub fn drain(&self) -> Vec<Bytes> {
        lock(&self.outbox).drain(..).collect()
    }

    pub fn has_frames(&self) -> bool {
        !lock(&self.outbox).is_empty()
    }

    pub fn request_close(&self, code: u16, reason: &'static str) {
        *lock(&self.close) = Some((code, reason));
        self.notify.notify_one();
    }

    pub fn close_requested(&self) -> Option<(u16, &'static str)> {
        *lock(&self.close)
    }

    pub fn heard(&self) {
        self.last_heard.store(mono_ms(), Ordering::Relaxed);
    }
}

/// Milliseconds on a monotonic clock (since the first call): liveness must not jump with the
/// wall clock, or a clock correction would close every session at once.
pub fn mono_ms() -> i64 {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as i64
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding one of these locks cannot leave the data half-updated (every
    // critical section is a single push, drain or insert), so a poisoned lock is still usable.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A report waiting for the writer, and the result to acknowledge once it is committed.
struct Pending {
    write: AgentWrite,
    /// (device, operation): told `result_stored` on the device's session at that moment (the
    /// one that carried the report may have been replaced since).
    ack: Option<(Uuid, Uuid)>,
}

/// Generic cell rate algorithm with promised slots.
struct Admission {
    interval: Duration,
    tolerance: Duration,
    /// Theoretical arrival time of the next admitted session.
    tat: Instant,
    /// The last slot promised to a refused agent.
    promised: Instant,
}

impl Admission {
    fn new(rate: u32, burst: u32) -> Self {
        let interval = Duration::from_secs_f64(1.0 / f64::from(rate.max(1)));
        let now = Instant::now();
        Admission {
            interval,
            tolerance: interval * burst,
            tat: now,
            promised: now,
        }
    }

    /// `Ok` to admit now, or how long to wait for the slot reserved for this caller.
    fn admit(&mut self, now: Instant) -> Result<(), Duration> {
        let tat = self.tat.max(now);
        if tat.duration_since(now) <= self.tolerance {
            self.tat = tat + self.interval;
            return Ok(());
        }
        let slot = (self.promised.max(tat) + self.interval).min(now + MAX_PROMISE);
        self.promised = slot;
        Err(slot.duration_since(now))
    }
}

/// See [`Agents::connecting`].
pub struct Connecting {
    agents: Arc<Agents>,
    device: Uuid,
}

impl Drop for Connecting {
    fn drop(&mut self) {
        lock(&self.agents.connecting).remove(&self.device);
    }
}

#[derive(Default)]
struct AuthCache {
    rows: HashMap<Uuid, DeviceAuthRow>,
    generation: u64,
}

pub struct Agents {
    sessions: Mutex<HashMap<Uuid, Arc<Session>>>,
    /// Devices with a connection between upgrade and hello (one at a time per device).
    connecting: Mutex<std::collections::HashSet<Uuid>>,
    next_session: AtomicU64,
    admission: Mutex<Admission>,
    writes: mpsc::Sender<Pending>,
    writes_rx: Mutex<Option<mpsc::Receiver<Pending>>>,
    /// Bumped (to a Unix-µs value, so it grows across restarts) whenever an operation's
    /// counts change; `versions` says which operation changed when.
    op_clock: watch::Sender<u64>,
    versions: Mutex<HashMap<Uuid, u64>>,
    auth: Mutex<AuthCache>,
    /// Wakes the operation sweeper early (a new operation with a near expiry).
    pub sweeper: Notify,
    pub admitted: AtomicU64,
    pub deferred: AtomicU64,
    started_us: u64,
}

fn now_us() -> u64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1000) as u64
}

impl Agents {
    pub fn new(rate: u32, burst: u32) -> Self {
        let (tx, rx) = mpsc::channel(WRITE_QUEUE);
        Agents {
            sessions: Mutex::new(HashMap::new()),
            connecting: Mutex::new(std::collections::HashSet::new()),
            next_session: AtomicU64::new(1),
            admission: Mutex::new(Admission::new(rate, burst)),
            writes: tx,
            writes_rx: Mutex::new(Some(rx)),
            op_clock: watch::channel(now_us()).0,
            versions: Mutex::new(HashMap::new()),
            auth: Mutex::new(AuthCache::default()),
            sweeper: Notify::new(),
            admitted: AtomicU64::new(0),
            deferred: AtomicU64::new(0),
            started_us: now_us(),
        }
    }

    /// Paced admission of a new session: `Err(ms)` tells the agent when to come back.
    pub fn admit(&self) -> Result<(), u64> {
        let verdict = lock(&self.admission).admit(Instant::now());
        match verdict {
            Ok(()) => {
                self.admitted.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(wait) => {
                self.deferred.fetch_add(1, Ordering::Relaxed);
                Err((wait.as_millis() as u64).max(1))
            }
        }
    }

    /// Marks a connection of `device` as being set up; `None` if one already is. The mark
    /// goes when the returned guard is dropped (hello received, or the attempt abandoned).
    pub fn connecting(self: &Arc<Self>, device: Uuid) -> Option<Connecting> {
        lock(&self.connecting).insert(device).then(|| Connecting {
            agents: self.clone(),
            device,
        })
    }

    /// Registers a new session for `device`, closing the one it replaces (a device token used
    /// by two processes: the newer session wins, the older is told why).
    pub fn open(&self, device: Uuid, transport: Transport) -> Arc<Session> {
        let session = Arc::new(Session {
            id: self.next_session.fetch_add(1, Ordering::Relaxed),
            device,
            transport,
            outbox: Mutex::new(VecDeque::new()),
            notify: Notify::new(),
            close: Mutex::new(None),
            last_heard: AtomicI64::new(mono_ms()),
        });
        let old = lock(&self.sessions).insert(device, session.clone());
        if let Some(old) = old {
            old.request_close(
                ferry_proto::agent::CLOSE_REPLACED,
                "another session with this device token replaced this one",
            );
        }
        session
    }

    /// Removes the session if it is still the device's current one.
    pub fn close(&self, session: &Session) -> bool {
        let mut sessions = lock(&self.sessions);
        if sessions
            .get(&session.device)
            .is_some_and(|s| s.id == session.id)
        {
            sessions.remove(&session.device);
            true
        } else {
            false
        }
    }

    pub fn session(&self, device: Uuid) -> Option<Arc<Session>> {
        lock(&self.sessions).get(&device).cloned()
    }

    pub fn is_online(&self, device: Uuid) -> bool {
        lock(&self.sessions).contains_key(&device)
    }

    pub fn online_devices(&self) -> Vec<Uuid> {
        lock(&self.sessions).keys().copied().collect()
    }

    pub fn connected(&self) -> usize {
        lock(&self.sessions).len()
    }

    /// Closes the device's session (disabled device, rotated token).
    pub fn revoke(&self, device: Uuid) {
        self.forget_auth(device);
        if let Some(s) = lock(&self.sessions).remove(&device) {
            s.request_close(
                ferry_proto::agent::CLOSE_REVOKED,
                "this device was disabled or its token replaced",
            );
        }
    }

    /// Hands one pre-serialised frame to each listed device that is connected.
    pub fn send_to(&self, devices: &[Uuid], frame: &Bytes) -> usize {
        let sessions = lock(&self.sessions);
        let mut sent = 0;
        for d in devices {
            if let Some(s) = sessions.get(d) {
                s.push(frame.clone());
                sent += 1;
            }
        }
        sent
    }

    /// Queues a report for the writer; `ack` (device, operation) is told `ResultStored` once
    /// it is committed.
    ///
    /// The queue is bounded: when the writer falls behind, sessions wait here, which stops
    /// them reading from their sockets, which slows their agents down (backpressure instead
    /// of memory).
    pub async fn record(&self, write: AgentWrite, ack: Option<(Uuid, Uuid)>) {
        // The receiver lives as long as the hub; a send can only fail during shutdown, when
        // the agent will report again on its next session anyway.
        let _ = self.writes.send(Pending { write, ack }).await;
    }

    pub async fn note_seen(&self, device: Uuid, addr: Option<SocketAddr>) {
        self.record(
            AgentWrite::Seen {
                device,
                at: now_ms(),
                remote_addr: addr.map(|a| a.ip().to_string()),
            },
            None,
        )
        .await;
    }

    pub async fn note_inventory(&self, device: Uuid, inventory: Inventory) {
        self.record(AgentWrite::Inventory { device, inventory }, None)
            .await;
    }

    /// Prometheus lines for agent sessions and admission.
    pub fn render_metrics(&self) -> String {
        format!(
            "# HELP ferry_agents_connected Agent sessions open on this hub.\n\
             # TYPE ferry_agents_connected gauge\nferry_agents_connected {}\n\
             # HELP ferry_agent_sessions_admitted_total Agent sessions admitted.\n\
             # TYPE ferry_agent_sessions_admitted_total counter\nferry_agent_sessions_admitted_total {}\n\
             # HELP ferry_agent_sessions_deferred_total Agent sessions told to come back later (paced admission).\n\
             # TYPE ferry_agent_sessions_deferred_total counter\nferry_agent_sessions_deferred_total {}\n",
            self.connected(),
            self.admitted.load(Ordering::Relaxed),
            self.deferred.load(Ordering::Relaxed),
        )
    }

    // ----- operation versions (for live watching) -------------------------------------

    pub fn touch_ops(&self, ops: impl IntoIterator<Item = Uuid>) {
        // One lock around read, update and publish, so versions never go backwards.
        let mut versions = lock(&self.versions);
        let version = now_us().max(*self.op_clock.borrow() + 1);
        for op in ops {
            versions.insert(op, version);
        }
        self.op_clock.send_replace(version);
    }

    /// The version of an operation: when its counts last changed, or the hub's start if
    /// not since (so versions only grow, across restarts too).
    pub fn op_version(&self, op: Uuid) -> u64 {
        lock(&self.versions)
            .get(&op)
            .copied()
            .unwrap_or(self.started_us)
    }

    pub fn subscribe_ops(&self) -> watch::Receiver<u64> {
        self.op_clock.subscribe()
    }

    // ----- device credentials cache ---------------------------------------------------

    pub fn cached_auth(&self, device: Uuid) -> (Option<DeviceAuthRow>, u64) {
        let cache = lock(&self.auth);
        (cache.rows.get(&device).cloned(), cache.generation)
    }

    pub fn cache_auth(&self, device: Uuid, row: DeviceAuthRow, generation: u64) {
        let mut cache = lock(&self.auth);
        if cache.generation == generation {
            cache.rows.insert(device, row);
        }
    }

    pub fn forget_auth(&self, device: Uuid) {
        let mut cache = lock(&self.auth);
        cache.generation += 1;
        cache.rows.remove(&device);
    }
}

/// Reports waiting for the writer before sessions have to wait (see [`Agents::record`]).
const WRITE_QUEUE: usize = 65_536;

/// Largest number of reports committed in one transaction.
const MAX_BATCH: usize = 5000;

/// The writer task: commits reports in batches, acknowledges results, bumps versions.
pub async fn run_writer(state: AppState) {
    let Some(mut rx) = lock(&state.agents.writes_rx).take() else {
        return;
    };
    let mut batch: Vec<Pending> = Vec::with_capacity(MAX_BATCH);
    loop {
        if batch.is_empty() {
            match rx.recv().await {
                Some(p) => batch.push(p),
                None => return,
            }
        }
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(p) => batch.push(p),
                Err(_) => break,
            }
        }
        let writes = coalesce(&batch);
        match state.store.apply_agent_batch(&writes).await {
            Ok(effect) => {
                for p in batch.drain(..) {
                    if let Some((device, op_id)) = p.ack
                        && let Some(session) = state.agents.session(device)
                    {
                        session.push_message(&HubMessage::ResultStored { op_id });
                    }
                }
                for (device, op_id) in effect.stop {
                    if let Some(session) = state.agents.session(device) {
                        session.push_message(&HubMessage::Cancel { op_id });
                    }
                }
                if !effect.ops.is_empty() {
                    state.agents.touch_ops(effect.ops);
                }
            }
            Err(e) => {
                // Keep the batch and try again: the reports are only acknowledged after a
                // commit, so nothing is lost meanwhile (agents re-send after a hub restart).
                tracing::error!(error = %e, reports = batch.len(), "could not store agent reports; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// The batch's writes with each (operation, device)'s steps folded into its last one: an agent
/// that answers quickly reports `received`, `running` and `finished` within milliseconds, and
/// only the final state needs writing. (Forward-only transitions make this exact: the later
/// step's update applies from every state the earlier one would have left.)
fn coalesce(batch: &[Pending]) -> Vec<AgentWrite> {
    fn rank(w: &AgentWrite) -> Option<(Uuid, Uuid, u8)> {
        match w {
            AgentWrite::Received { op, device } => Some((*op, *device, 1)),
            AgentWrite::Running { op, device } => Some((*op, *device, 2)),
            AgentWrite::Finished { op, device, .. } => Some((*op, *device, 3)),
            _ => None,
        }
    }
    let mut strongest: HashMap<(Uuid, Uuid), (u8, usize)> = HashMap::new();
    for (i, p) in batch.iter().enumerate() {
        if let Some((op, device, r)) = rank(&p.write) {
            let e = strongest.entry((op, device)).or_insert((r, i));
            if r >= e.0 {
                *e = (r, i);
            }
        }
    }
    batch
        .iter()
        .enumerate()
        .filter(|(i, p)| match rank(&p.write) {
            Some((op, device, _)) => strongest.get(&(op, device)).is_some_and(|e| e.1 == *i),
            None => true,
        })
        .map(|(_, p)| p.write.clone())
        .collect()
}

/// Upper bound on the operation sweeper's sleep (new deadlines are never nearer than the
/// result grace, five minutes, so this only matters for expiries, which also wake it).
const MAX_SWEEP_SLEEP_MS: i64 = 30_000;

/// Expires undelivered targets and fails overdue ones, sleeping until the next deadline.
pub async fn run_sweeper(state: AppState) {
    let mut shutdown = state.shutdown.clone();
    loop {
        let next = match state.store.sweep_ops().await {
            Ok(sweep) => {
                if sweep.expired + sweep.timed_out > 0 {
                    tracing::info!(
                        expired = sweep.expired,
                        timed_out = sweep.timed_out,
                        "operation targets expired or timed out"
                    );
                }
                if !sweep.ops.is_empty() {
                    state.agents.touch_ops(sweep.ops);
                }
                sweep
                    .next_deadline_ms
                    .unwrap_or(i64::MAX)
                    .min(now_ms() + MAX_SWEEP_SLEEP_MS)
            }
            Err(e) => {
                tracing::error!(error = %e, "operation sweep failed; retrying in a second");
                now_ms() + 1000
            }
        };
        let sleep = Duration::from_millis(next.saturating_sub(now_ms()).max(0) as u64);
        tokio::select! {
            _ = tokio::time::sleep(sleep) => {}
            _ = state.agents.sweeper.notified() => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// Gives memory back to the OS once a wave of connections has settled.
///
/// A reconnection storm allocates and frees a great deal (TLS handshakes, first reads, the
/// writer's batches); glibc keeps the freed pages inside its heaps, so a hub that took 20,000
/// agents at once would otherwise keep the storm's peak for good. `malloc_trim` returns them,
/// but walks the whole heap, so it runs only when the number of sessions moved and then held
/// still for one check (and every ten minutes otherwise).
pub async fn run_memory_trim(state: AppState) {
    let mut shutdown = state.shutdown.clone();
    let mut last = 0usize;
    let mut moved = false;
    let mut since_trim = 0u32;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(10)) => {}
            _ = shutdown.changed() => return,
        }
        let now = state.agents.connected();
        since_trim += 1;
        if now.abs_diff(last) >= (last / 20).max(500) {
            moved = true;
            last = now;
        } else if moved || since_trim >= 60 {
            moved = false;
            since_trim = 0;
            trim();
        }
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim() {
    // SAFETY: malloc_trim only releases pages the allocator holds unused.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() {}

/// Ends long-poll sessions whose agent stopped polling (WebSocket sessions end themselves).
pub async fn run_poll_reaper(state: AppState) {
    let mut shutdown = state.shutdown.clone();
    let stale_ms = i64::from(state.config.max_hold_secs + 3 * state.config.agent_ping_secs) * 1000;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
            _ = shutdown.changed() => return,
        }
        let cutoff = mono_ms() - stale_ms;
        let stale: Vec<Arc<Session>> = lock(&state.agents.sessions)
            .values()
            .filter(|s| {
                s.transport == Transport::LongPoll && s.last_heard.load(Ordering::Relaxed) < cutoff
            })
            .cloned()
            .collect();
        for s in stale {
            if state.agents.close(&s) {
                state.agents.note_seen(s.device, None).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_writes_only_the_last_step_of_each_target() {
        let (op, a, b) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let outcome = ferry_proto::ops::OpOutcome {
            state: ferry_proto::ops::OutcomeState::Succeeded,
            exit_code: Some(0),
            output: String::new(),
            error: String::new(),
            reboot_required: false,
        };
        let p = |write| Pending { write, ack: None };
        let batch = vec![
            p(AgentWrite::Received { op, device: a }),
            p(AgentWrite::Received { op, device: b }),
            p(AgentWrite::Running { op, device: a }),
            p(AgentWrite::Finished {
                op,
                device: a,
                outcome,
            }),
            p(AgentWrite::Seen {
                device: a,
                at: 1,
                remote_addr: None,
            }),
        ];
        let kept = coalesce(&batch);
        assert_eq!(kept.len(), 3);
        assert!(matches!(kept[0], AgentWrite::Received { device, .. } if device == b));
        assert!(matches!(kept[1], AgentWrite::Finished { device, .. } if device == a));
        assert!(matches!(kept[2], AgentWrite::Seen { .. }));
    }

    #[test]
    fn admission_admits_the_burst_then_promises_distinct_slots_at_the_rate() {
        let mut a = Admission::new(100, 5);
        let now = Instant::now();
        let admitted = (0..6).filter(|_| a.admit(now).is_ok()).count();
        assert_eq!(admitted, 6, "burst of 5 plus the slot due now");
        let waits: Vec<Duration> = (0..3).map(|_| a.admit(now).unwrap_err()).collect();
        assert!(waits[0] < waits[1] && waits[1] < waits[2]);
        assert_eq!(waits[1] - waits[0], Duration::from_millis(10));
    }

    #[test]
    fn admission_admits_again_once_time_has_passed() {
        let mut a = Admission::new(10, 0);
        let now = Instant::now();
        assert!(a.admit(now).is_ok());
        assert!(a.admit(now).is_err());
        assert!(a.admit(now + Duration::from_secs(1)).is_ok());
    }

    #[test]
    fn a_newer_session_replaces_and_closes_the_older_one() {
        let agents = Agents::new(10, 10);
        let device = Uuid::new_v4();
        let first = agents.open(device, Transport::WebSocket);
        let second = agents.open(device, Transport::WebSocket);
        assert_eq!(
            first.close_requested().map(|c| c.0),
            Some(ferry_proto::agent::CLOSE_REPLACED)
        );
        assert!(
            !agents.close(&first),
            "the old session no longer owns the device"
        );
        assert_eq!(agents.session(device).map(|s| s.id), Some(second.id));
        assert!(agents.close(&second));
        assert!(!agents.is_online(device));
    }

    #[test]
    fn one_frame_reaches_every_connected_target_and_only_them() {
        let agents = Agents::new(10, 10);
        let (a, b, offline) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let sa = agents.open(a, Transport::WebSocket);
        let sb = agents.open(b, Transport::LongPoll);
        let frame = Bytes::from_static(b"{}");
        assert_eq!(agents.send_to(&[a, b, offline], &frame), 2);
        assert_eq!(sa.drain(), vec![frame.clone()]);
        assert_eq!(sb.drain(), vec![frame]);
    }
}
