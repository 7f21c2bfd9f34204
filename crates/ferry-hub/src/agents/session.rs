//! One connected device: a small outbox of serialised frames and a [`Notify`] its own task
//! waits on.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use ferry_proto::agent::HubMessage;
use tokio::sync::Notify;
use uuid::Uuid;

use super::{Agents, lock};

/// Frames waiting for one agent before its session is closed instead.
pub const MAX_OUTBOX: usize = 10_000;

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
    pub(super) fn new(id: u64, device: Uuid, transport: Transport) -> Self {
        Session {
            id,
            device,
            transport,
            outbox: Mutex::new(VecDeque::new()),
            notify: Notify::new(),
            close: Mutex::new(None),
            last_heard: AtomicI64::new(mono_ms()),
        }
    }

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

/// See [`Agents::connecting`].
pub struct Connecting {
    pub(super) agents: Arc<Agents>,
    pub(super) device: Uuid,
}

impl Drop for Connecting {
    fn drop(&mut self) {
        lock(&self.agents.connecting).remove(&self.device);
    }
}
