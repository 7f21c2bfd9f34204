//! Event-driven wake-ups for long polls: one [`Notify`] per connector.
//!
//! A long poll registers interest *before* it looks in the queue (`Notified::enable`), then
//! sleeps until notified or until its hold time passes. Enqueueing a job commits first and
//! then notifies that connector's waiters only, so no wake-up is lost between "queue empty"
//! and "sleeping", and no other connector is disturbed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;
use uuid::Uuid;

#[derive(Default)]
pub struct Waiters {
    map: Mutex<HashMap<Uuid, Arc<Notify>>>,
}

impl Waiters {
    /// The connector's notifier, created on first use. Entries live as long as the hub:
    /// one small allocation per connector that ever polled.
    pub fn get(&self, connector: Uuid) -> Arc<Notify> {
        let mut map = self.map.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        map.entry(connector).or_default().clone()
    }

    /// Wakes every long poll of `connector` now waiting.
    pub fn wake(&self, connector: Uuid) {
        let notify = {
            let map = self.map.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            map.get(&connector).cloned()
        };
        if let Some(n) = notify {
            n.notify_waiters();
        }
    }
}
