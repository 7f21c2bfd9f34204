//! The sweeper resolves everything that happens because time passed: lapsed leases go back
//! to the queue (or fail after their last attempt), queued jobs past `expires_at` expire, and
//! connectors are woken when a delayed job becomes due.
//!
//! It sleeps until the earliest such deadline the store reports (never polling on a fixed
//! tick), and is woken early when a new lease or timer is earlier than its plan.

use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::AppState;
use crate::time_util::now_ms;

/// Upper bound on a sleep: a safety net against clock jumps, not the mechanism.
const MAX_SLEEP_MS: i64 = 30_000;

pub async fn run(state: AppState) {
    let mut shutdown = state.shutdown.clone();
    let mut since = now_ms();
    loop {
        let started = now_ms();
        // While sweeping, any new deadline must notify (its commit may come after our query).
        state.sweeper_next_ms.store(i64::MAX, Ordering::Relaxed);
        let next = match state.store.sweep(since).await {
            Ok(sweep) => {
                since = started;
                if sweep.requeued + sweep.failed + sweep.expired > 0 {
                    tracing::info!(
                        requeued = sweep.requeued,
                        failed = sweep.failed,
                        expired = sweep.expired,
                        "sweeper resolved lapsed leases and expired jobs"
                    );
                }
                state
                    .metrics
                    .leases_requeued
                    .fetch_add(sweep.requeued, Ordering::Relaxed);
                for connector in sweep.wake {
                    state.waiters.wake(connector);
                }
                sweep
                    .next_deadline_ms
                    .unwrap_or(i64::MAX)
                    .min(now_ms() + MAX_SLEEP_MS)
            }
            Err(e) => {
                tracing::error!(error = %e, "sweep failed; retrying in a second");
                now_ms() + 1000
            }
        };
        state.sweeper_next_ms.store(next, Ordering::Relaxed);
        let sleep = Duration::from_millis(next.saturating_sub(now_ms()).max(0) as u64);
        tokio::select! {
            _ = tokio::time::sleep(sleep) => {}
            _ = state.sweeper.notified() => {}
            _ = shutdown.changed() => return,
        }
    }
}
