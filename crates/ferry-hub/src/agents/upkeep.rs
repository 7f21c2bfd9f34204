//! The agents' upkeep: the operation sweeper (expiries, overdue results), the long-poll
//! session reaper, and giving memory back after a reconnection storm.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::{Session, Transport, lock, mono_ms};
use crate::AppState;
use crate::time_util::now_ms;

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
                state.outbox.poke_for(sweep.queued);
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
