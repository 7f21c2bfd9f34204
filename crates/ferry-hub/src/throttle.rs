//! Failures counted in a sliding window, per key ("name:alice", "addr:10.0.0.7"), for refusing
//! a caller that keeps failing: portal logins and credentials in general.
//!
//! Memory is bounded whatever callers send: each key keeps at most its limit (plus one) of
//! timestamps, keys with nothing left in the window are pruned by the periodic flush, and at
//! [`MAX_KEYS`] the keys whose last failure is oldest are dropped a tenth at a time.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Most keys remembered; beyond it, the keys whose last failure is oldest go.
pub const MAX_KEYS: usize = 100_000;

pub struct Failures {
    window: Duration,
    map: Mutex<HashMap<String, VecDeque<Instant>>>,
    /// Keys held, readable without the lock: with none, every check passes at once (the
    /// common case costs a request nothing).
    keys: AtomicUsize,
}

impl Failures {
    pub fn new(window: Duration) -> Self {
        Failures {
            window,
            map: Mutex::new(HashMap::new()),
            keys: AtomicUsize::new(0),
        }
    }

    /// Whether any failure is remembered at all.
    pub fn any(&self) -> bool {
        self.keys.load(Ordering::Relaxed) > 0
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, VecDeque<Instant>>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `Err(seconds to wait)` if any `(key, limit)` has `limit` failures in the window; else,
    /// with `record`, counts one more failure for every key (stamped with the returned time).
    pub fn check(&self, keys: &[(&str, usize)], record: bool) -> Result<Instant, u64> {
        let now = Instant::now();
        let mut map = self.map();
        let mut wait = Duration::ZERO;
        for (key, limit) in keys {
            if let Some(q) = map.get_mut(*key) {
                while q
                    .front()
                    .is_some_and(|t| now.duration_since(*t) >= self.window)
                {
                    q.pop_front();
                }
                if q.len() >= *limit
                    && let Some(oldest) = q.front()
                {
                    wait = wait.max(self.window.saturating_sub(now.duration_since(*oldest)));
                }
            }
        }
        if !wait.is_zero() {
            return Err(wait.as_secs().max(1));
        }
        if record {
            // Published before the keys exist, so a concurrent `any()` errs towards checking.
            self.keys.store(map.len() + keys.len(), Ordering::Relaxed);
            self.make_room(&mut map, now);
            for (key, limit) in keys {
                let q = map.entry((*key).to_owned()).or_default();
                q.push_back(now);
                // Only the newest `limit` failures matter.
                while q.len() > limit.saturating_add(1) {
                    q.pop_front();
                }
            }
            self.keys.store(map.len(), Ordering::Relaxed);
        }
        Ok(now)
    }

    /// Forgets every failure of `key`.
    pub fn clear(&self, key: &str) {
        let mut map = self.map();
        map.remove(key);
        self.keys.store(map.len(), Ordering::Relaxed);
    }

    /// Takes back the one failure of `key` stamped `at`.
    pub fn take_back(&self, key: &str, at: Instant) {
        let mut map = self.map();
        if let Some(q) = map.get_mut(key)
            && let Some(i) = q.iter().rposition(|t| *t == at)
        {
            q.remove(i);
        }
    }

    /// Forgets the keys with no failure left in the window (called by the periodic flush).
    pub fn prune(&self) {
        let now = Instant::now();
        let window = self.window;
        let mut map = self.map();
        map.retain(|_, q| q.back().is_some_and(|t| now.duration_since(*t) < window));
        self.keys.store(map.len(), Ordering::Relaxed);
    }

    /// At [`MAX_KEYS`]: drops the keys out of the window, then, if that is not enough, the
    /// tenth whose last failure is oldest. Amortised: the next tenth of inserts are free.
    fn make_room(&self, map: &mut HashMap<String, VecDeque<Instant>>, now: Instant) {
        if map.len() < MAX_KEYS {
            return;
        }
        let window = self.window;
        map.retain(|_, q| q.back().is_some_and(|t| now.duration_since(*t) < window));
        if map.len() < MAX_KEYS {
            return;
        }
        let mut last: Vec<Instant> = map.values().filter_map(|q| q.back().copied()).collect();
        let cut = last.len() / 10;
        let (_, threshold, _) = last.select_nth_unstable(cut);
        let threshold = *threshold;
        map.retain(|_, q| q.back().is_some_and(|t| *t > threshold));
    }

    #[cfg(test)]
    pub fn keys(&self) -> usize {
        self.map().len()
    }

    #[cfg(test)]
    pub fn contains(&self, key: &str) -> bool {
        self.map().contains_key(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_at_its_limit_is_refused_until_the_window_moves() {
        let f = Failures::new(Duration::from_secs(60));
        for _ in 0..3 {
            assert!(f.check(&[("k", 3)], true).is_ok());
        }
        assert!(f.check(&[("k", 3)], true).is_err());
        assert!(f.check(&[("other", 3)], true).is_ok());
        f.clear("k");
        assert!(f.check(&[("k", 3)], false).is_ok());
    }

    #[test]
    fn the_oldest_keys_go_when_full() {
        let f = Failures::new(Duration::from_secs(600));
        for i in 0..MAX_KEYS + 10 {
            assert!(f.check(&[(&format!("n{i}"), 3)], true).is_ok());
        }
        assert!(f.keys() <= MAX_KEYS, "{}", f.keys());
        assert!(f.contains(&format!("n{}", MAX_KEYS + 9)), "the newest stay");
        assert!(!f.contains("n0"), "the oldest go");
    }

    #[test]
    fn pruning_drops_keys_whose_failures_left_the_window() {
        let f = Failures::new(Duration::ZERO);
        assert!(f.check(&[("k", 3)], true).is_ok());
        f.prune();
        assert_eq!(f.keys(), 0);
    }
}
