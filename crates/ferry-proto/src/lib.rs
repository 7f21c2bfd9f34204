//! Ferry's wire types, defined once and shared by the hub, the connector and the CLI.
//!
//! Everything here is plain data with serde derives: no I/O, no HTTP, no storage. Every
//! request body the hub accepts is `deny_unknown_fields`, so a typo in a client is a 400
//! that names the field instead of a silently ignored option.
//!
//! Versioning: every route lives under [`API_PREFIX`]. Additive changes (a new optional field
//! in a response) keep the version; anything a v1 client could misread gets a new prefix.

pub mod agent;
pub mod backoff;
pub mod connector;
pub mod diagnostics;
pub mod inventory;
pub mod job;
pub mod ops;
pub mod package;
pub mod push;

use serde::{Deserialize, Serialize};

/// The prefix of every versioned API route.
pub const API_PREFIX: &str = "/api/v1";

/// The body of every error response: a stable machine-readable `code` and a sentence for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    pub code: String,
    pub message: String,
}

/// One entry of the audit log: who did what to which object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub id: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub at: Timestamp,
    /// `admin`, or `connector:<id>` for what a connector did (uploads of imports).
    pub actor: String,
    /// e.g. `connector.register`, `job.enqueue`, `package.create`.
    pub action: String,
    pub target: Option<String>,
    pub detail: Option<String>,
}

/// Timestamps travel as RFC 3339 strings (UTC).
pub type Timestamp = time::OffsetDateTime;

/// A proxy or hub URL with its password replaced by `***`, for logs and errors.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{}:***{}", &url[..scheme_end + 3], user, &url[at..])
        }
        _ => url.to_owned(),
    }
}
