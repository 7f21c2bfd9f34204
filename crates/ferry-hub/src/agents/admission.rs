//! Paced admission: a generic cell rate algorithm. Sessions start at `agent_admission_rate`
//! per second after a burst; a refused agent is given its own future slot, so a thundering
//! herd comes back as an orderly queue.

use std::time::{Duration, Instant};

/// Longest wait paced admission promises; beyond it, agents are told this (they come back
/// and are paced again), so a flood of refused attempts cannot push slots out for hours.
const MAX_PROMISE: Duration = Duration::from_secs(300);

/// Generic cell rate algorithm with promised slots.
pub(super) struct Admission {
    interval: Duration,
    tolerance: Duration,
    /// Theoretical arrival time of the next admitted session.
    tat: Instant,
    /// The last slot promised to a refused agent.
    promised: Instant,
}

impl Admission {
    pub(super) fn new(rate: u32, burst: u32) -> Self {
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
    pub(super) fn admit(&mut self, now: Instant) -> Result<(), Duration> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
