//! How commands print data: a table or sentence for people, or JSON with `--json` (one
//! document, the API's own shape) for scripts.

use std::sync::atomic::{AtomicBool, Ordering};

use serde::Serialize;

static JSON: AtomicBool = AtomicBool::new(false);

pub fn set_json(on: bool) {
    JSON.store(on, Ordering::Relaxed);
}

pub fn json() -> bool {
    JSON.load(Ordering::Relaxed)
}

/// Prints `value` as JSON with `--json`, else as `human` prints it.
pub fn emit<T: Serialize + ?Sized>(value: &T, human: impl FnOnce(&T)) -> anyhow::Result<()> {
    if json() {
        println!("{}", serde_json::to_string_pretty(value)?);
    } else {
        human(value);
    }
    Ok(())
}

/// Prints `value` as JSON either way (records whose every field matters, like a job).
pub fn record<T: Serialize + ?Sized>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}
