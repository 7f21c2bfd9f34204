//! Prometheus metrics, in the text exposition format, without a metrics framework: the hub
//! has a handful of counters and gauges, and a framework would cost more than it saves.

use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use ferry_proto::job::JobState;

#[derive(Default)]
pub struct Metrics {
    pub jobs_enqueued: AtomicU64,
    pub jobs_leased: AtomicU64,
    pub jobs_finished: AtomicU64,
    pub leases_requeued: AtomicU64,
    pub long_polls_started: AtomicU64,
    pub long_polls_empty: AtomicU64,
    pub long_polls_waiting: AtomicI64,
    pub stale_reports_refused: AtomicU64,
    /// Requests refused with 401 (missing, malformed, unknown or revoked credentials).
    pub auth_failures: AtomicU64,
    pub logins_failed: AtomicU64,
    /// Requests refused with 429 for too many recent authentication failures.
    pub auth_throttled: AtomicU64,
    pub logins_throttled: AtomicU64,
    /// Task callbacks the receiver acknowledged (2xx).
    pub callbacks_delivered: AtomicU64,
    /// Task callback attempts, whatever their answer.
    pub callback_attempts: AtomicU64,
}

impl Metrics {
    pub fn render(&self, job_counts: &[(JobState, i64)], connectors: i64) -> String {
        let mut out = String::new();
        let mut counter = |name: &str, help: &str, v: &AtomicU64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                v.load(Ordering::Relaxed)
            );
        };
        counter(
            "ferry_auth_failures_total",
            "Requests refused for missing or invalid credentials (401).",
            &self.auth_failures,
        );
        counter(
            "ferry_auth_throttled_total",
            "Requests refused (429) because their address or credential failed to authenticate too often.",
            &self.auth_throttled,
        );
        counter(
            "ferry_callbacks_delivered_total",
            "Task status callbacks acknowledged by their receiver (2xx).",
            &self.callbacks_delivered,
        );
        counter(
            "ferry_callback_attempts_total",
            "Task status callback attempts, whatever their answer.",
            &self.callback_attempts,
        );
        counter(
            "ferry_logins_failed_total",
            "Portal logins refused for a wrong name or password.",
            &self.logins_failed,
        );
        counter(
            "ferry_logins_throttled_total",
            "Portal logins refused because of too many recent failures (429).",
            &self.logins_throttled,
        );
        counter(
            "ferry_jobs_enqueued_total",
            "Jobs enqueued.",
            &self.jobs_enqueued,
        );
        counter(
            "ferry_jobs_leased_total",
            "Leases handed to connectors.",
            &self.jobs_leased,
        );
        counter(
            "ferry_jobs_finished_total",
            "Jobs finished by a connector report.",
            &self.jobs_finished,
        );
        counter(
            "ferry_leases_requeued_total",
            "Lapsed leases whose job was queued again.",
            &self.leases_requeued,
        );
        counter(
            "ferry_long_polls_total",
            "Long polls received.",
            &self.long_polls_started,
        );
        counter(
            "ferry_long_polls_empty_total",
            "Long polls that ended with no job (204).",
            &self.long_polls_empty,
        );
        counter(
            "ferry_stale_reports_refused_total",
            "Connector reports refused because their lease was no longer valid.",
            &self.stale_reports_refused,
        );
        let _ = writeln!(
            out,
            "# HELP ferry_long_polls_waiting Long polls currently held open.\n# TYPE ferry_long_polls_waiting gauge\nferry_long_polls_waiting {}",
            self.long_polls_waiting.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP ferry_jobs Jobs in the store by state.\n# TYPE ferry_jobs gauge"
        );
        for state in JobState::ALL {
            let n = job_counts
                .iter()
                .find(|(s, _)| *s == state)
                .map_or(0, |(_, n)| *n);
            let _ = writeln!(out, "ferry_jobs{{state=\"{}\"}} {n}", state.as_str());
        }
        let _ = writeln!(
            out,
            "# HELP ferry_connectors Registered connectors.\n# TYPE ferry_connectors gauge\nferry_connectors {connectors}"
        );
        out
    }
}
