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
    if name.trim().is_empty() || name.chars().count() > max || name.chars().any(char::is_control) {
        return Err(Error::bad(
            ErrorCode::InvalidName,
            format!("`{field}` must be 1–{max} printable characters"),
        ));
    }
    Ok(())
}
