//! Presence: when each connector was last heard from (and, through
//! [`crate::service::identity::Usage`], when each API key and session was last used), kept in
//! memory and written to the store in one batch every [`FLUSH_INTERVAL`]. The same task
//! deletes portal sessions that ended more than a day ago.
//!
//! Why batch: 10,000 idle connectors long-polling every 25 s make 400 requests a second. A
//! write per request (or even one per connector every few seconds) would keep the single
//! SQLite writer busy for information nobody needs to the millisecond. The API overlays the
//! in-memory value, so what administrators see is current anyway.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use uuid::Uuid;

use crate::AppState;

pub const FLUSH_INTERVAL: Duration = Duration::from_secs(30);

#[derive(Default)]
pub struct Presence {
    /// Latest contact (Unix ms) and whether it has been written yet.
    seen: Mutex<HashMap<Uuid, (i64, bool)>>,
}

impl Presence {
    pub fn note(&self, connector: Uuid, at_ms: i64) {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.insert(connector, (at_ms, true));
    }

    pub fn latest(&self, connector: Uuid) -> Option<i64> {
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.get(&connector).map(|(at, _)| *at)
    }

    /// The contacts not yet written, marked as written.
    fn take_dirty(&self) -> Vec<(Uuid, i64)> {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.iter_mut()
            .filter(|(_, (_, dirty))| *dirty)
            .map(|(id, (at, dirty))| {
                *dirty = false;
                (*id, *at)
            })
            .collect()
    }

    /// Writes what changed since the last flush.
    pub async fn flush(&self, state: &AppState) {
        let dirty = self.take_dirty();
        if dirty.is_empty() {
            return;
        }
        if let Err(e) = state.store.record_contacts(&dirty).await {
            tracing::warn!(error = %e, count = dirty.len(), "could not record connector contacts");
            let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
            for (id, at) in dirty {
                seen.entry(id).and_modify(|e| e.1 |= e.0 == at);
            }
        }
    }
}

/// Flushes every [`FLUSH_INTERVAL`] until shutdown, then once more.
pub async fn run(state: AppState) {
    let mut shutdown = state.shutdown.clone();
    let mut tick = tokio::time::interval(FLUSH_INTERVAL);
    loop {
        tokio::select! {
            _ = tick.tick() => flush_all(&state).await,
            _ = shutdown.changed() => {
                flush_all(&state).await;
                return;
            }
        }
    }
}

async fn flush_all(state: &AppState) {
    state.presence.flush(state).await;
    state.usage.flush(state).await;
    state.login_throttle.prune();
    state.auth_failures.prune();
    state
        .identity_cache
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .prune();
    // Ended sessions can never be used again; a day's grace keeps them visible in between.
    let cutoff = crate::time_util::now_ms() - 24 * 3600 * 1000;
    if let Err(e) = state.store.prune_sessions(cutoff).await {
        tracing::warn!(error = %e, "could not prune ended sessions");
    }
}
