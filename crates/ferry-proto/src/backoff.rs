//! Exponential backoff with full jitter (AWS architecture blog, "Exponential Backoff and
//! Jitter"): each pause is uniform in `[0, min(cap, base·2^n)]`, so a hub coming back is not
//! met by every connector at the same instant. A floor keeps a connector from spinning.

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    floor: Duration,
    failures: u32,
}

impl Backoff {
    pub fn new(cap: Duration) -> Self {
        Backoff {
            base: Duration::from_millis(500),
            cap,
            floor: Duration::from_millis(100),
            failures: 0,
        }
    }

    /// The pause before the next retry; grows with each consecutive failure.
    pub fn next_delay(&mut self) -> Duration {
        let exp = self.base.saturating_mul(1u32 << self.failures.min(16));
        self.failures = self.failures.saturating_add(1);
        let ceiling = exp.min(self.cap).max(self.floor);
        let jittered = ceiling.mul_f64(fastrand::f64());
        jittered.max(self.floor)
    }

    pub fn reset(&mut self) {
        self.failures = 0;
    }

    pub fn failures(&self) -> u32 {
        self.failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_stay_between_floor_and_cap() {
        let mut b = Backoff::new(Duration::from_secs(5));
        for _ in 0..100 {
            let d = b.next_delay();
            assert!(
                d >= Duration::from_millis(100) && d <= Duration::from_secs(5),
                "{d:?}"
            );
        }
    }

    #[test]
    fn ceiling_grows_until_the_cap() {
        let mut b = Backoff::new(Duration::from_secs(60));
        let early: Duration = (0..3).map(|_| b.next_delay()).max().unwrap();
        assert!(early <= Duration::from_secs(2), "{early:?}");
        b.reset();
        assert_eq!(b.failures(), 0);
    }
}
