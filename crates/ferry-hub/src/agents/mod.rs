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
//!
//! Layout: [`session`] (one connected device), `admission` (pacing), [`writer`] (the batched
//! writer), [`upkeep`] (the operation sweeper, the long-poll reaper, the memory trim); this
//! module holds the registry of sessions that ties them together.

mod admission;
pub mod session;
pub mod upkeep;
pub mod writer;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use ferry_proto::agent::Inventory;
use tokio::sync::{Notify, mpsc, watch};
use uuid::Uuid;

use self::admission::Admission;
pub use self::session::{Connecting, MAX_OUTBOX, Session, Transport, mono_ms};
pub use self::upkeep::{run_memory_trim, run_poll_reaper, run_sweeper};
pub use self::writer::run_writer;
use self::writer::{Pending, WRITE_QUEUE};
use crate::store::{AgentWrite, DeviceAuthRow};
use crate::time_util::now_ms;

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding one of these locks cannot leave the data half-updated (every
    // critical section is a single push, drain or insert), so a poisoned lock is still usable.
    m.lock().unwrap_or_else(|p| p.into_inner())
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
    /// Tells the writer to commit what is queued and stop (the hub is shutting down).
    writer_stop: Notify,
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
            writer_stop: Notify::new(),
            op_clock: watch::channel(now_us()).0,
            versions: Mutex::new(HashMap::new()),
            auth: Mutex::new(AuthCache::default()),
            sweeper: Notify::new(),
            admitted: AtomicU64::new(0),
            deferred: AtomicU64::new(0),
            started_us: now_us(),
        }
    }

    /// Asks the writer to commit what is queued and stop (after the server has stopped
    /// taking requests).
    pub fn stop_writer(&self) {
        self.writer_stop.notify_one();
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
        let session = Arc::new(Session::new(
            self.next_session.fetch_add(1, Ordering::Relaxed),
            device,
            transport,
        ));
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

    /// Records a device's reported inventory; `trust` says whether changes to the
    /// rule-matched fields count at once (see `HubConfig::inventory_changes`).
    pub async fn note_inventory(&self, device: Uuid, inventory: Inventory, trust: bool) {
        self.record(
            AgentWrite::Inventory {
                device,
                inventory,
                trust,
            },
            None,
        )
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

#[cfg(test)]
mod tests {
    use super::*;

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
