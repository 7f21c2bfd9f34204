//! The service layer: every business rule of the hub, once, between the front ends (the JSON
//! API in [`crate::http`], and the web pages next) and the [`crate::store`].
//!
//! Each function validates its input (errors name the field), calls the store (which commits
//! the change and its audit entry together), and then does what must follow a commit: wake a
//! connector's long poll, schedule the sweeper, deliver to connected agents, count metrics.
//! Handlers parse, call one service function and render; they hold no rules of their own.
//!
//! Functions are methods on [`AppState`](crate::AppState), grouped by resource:
//! [`connectors`], [`queue`] (jobs and the connector's side of them), [`packages`] (uploads,
//! packages, push), [`site`] (inventory and import), [`fleet`] (enrolment, devices,
//! collections, deployments), [`ops`] (client operations) and [`identity`].

pub mod connectors;
pub mod fleet;
pub mod helpdesk;
pub mod identity;
pub mod ops;
pub mod packages;
pub mod queue;
pub mod site;

use ferry_proto::ErrorCode;

use crate::error::{Error, Result};

/// `value` if it lies in `range`, `default` if absent, else a 400 naming the field.
pub(crate) fn in_range<T: PartialOrd + std::fmt::Display + Copy>(
    field: &str,
    code: ErrorCode,
    value: Option<T>,
    range: std::ops::RangeInclusive<T>,
    default: T,
) -> Result<T> {
    match value {
        None => Ok(default),
        Some(v) if range.contains(&v) => Ok(v),
        Some(_) => Err(Error::bad(
            code,
            format!(
                "`{field}` must be between {} and {}",
                range.start(),
                range.end()
            ),
        )),
    }
}

/// A name for people: non-blank, at most `max` characters, no control characters.
pub(crate) fn check_name(field: &str, name: &str, max: usize) -> Result<()> {
    check_printable(field, name, max, ErrorCode::InvalidName)
}

/// Non-blank, at most `max` characters, no control characters; else a 400 with `code`.
pub(crate) fn check_printable(field: &str, value: &str, max: usize, code: ErrorCode) -> Result<()> {
    if value.trim().is_empty() || value.chars().count() > max || value.chars().any(char::is_control)
    {
        return Err(Error::bad(
            code,
            format!("`{field}` must be 1–{max} printable characters"),
        ));
    }
    Ok(())
}

/// Runs a closure when dropped: after a store call returns, or when the request future is
/// dropped midway (the client went away, the shutdown drain ended). Cache invalidations that
/// must follow a commit use it, because a commit can land even when its caller never resumes.
pub(crate) struct OnDrop<F: FnOnce()>(Option<F>);

impl<F: FnOnce()> OnDrop<F> {
    pub(crate) fn new(f: F) -> Self {
        OnDrop(Some(f))
    }
}

impl<F: FnOnce()> Drop for OnDrop<F> {
    fn drop(&mut self) {
        if let Some(f) = self.0.take() {
            f();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::OnDrop;

    #[tokio::test]
    async fn on_drop_runs_when_the_guarded_future_is_cancelled_midway() {
        let ran = Arc::new(AtomicBool::new(false));
        let flag = ran.clone();
        let (armed, is_armed) = tokio::sync::oneshot::channel();
        let work = tokio::spawn(async move {
            let _guard = OnDrop::new(move || flag.store(true, Ordering::SeqCst));
            let _ = armed.send(());
            std::future::pending::<()>().await;
        });
        is_armed.await.unwrap();
        assert!(!ran.load(Ordering::SeqCst));
        work.abort();
        let _ = work.await;
        assert!(ran.load(Ordering::SeqCst));
    }
}
