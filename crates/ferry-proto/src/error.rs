//! The error body every API route answers with, and the closed list of its codes.
//!
//! Why an enum: clients (the CLI, the connector, the agent, helpdesks) branch on the code —
//! "resume at the offset the hub has", "this lease is gone, stop", "come back later". A code
//! that is a free string can be renamed on one side and silently never match on the other; an
//! enum makes that a compile error. The wire form is the snake_case name, stable across
//! versions; a code a newer hub invents reads as [`ErrorCode::Unknown`] in an older client.

use serde::{Deserialize, Serialize};

/// The body of every error response: a stable machine-readable `code` and a sentence for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    /// The request field at fault, as a path (`targets.users[2]`), when one is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

macro_rules! error_codes {
    ($($(#[$doc:meta])* $variant:ident = $wire:literal,)*) => {
        /// Every error code the hub sends (see the module documentation).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum ErrorCode {
            $($(#[$doc])* #[serde(rename = $wire)] $variant,)*
            /// A code this build does not know (sent by a newer hub).
            #[serde(other)]
            Unknown,
        }

        impl ErrorCode {
            /// Every known code, for documentation and tests.
            pub const ALL: &[ErrorCode] = &[$(ErrorCode::$variant,)*];

            /// The wire name, e.g. `stale_lease`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $wire,)*
                    ErrorCode::Unknown => "unknown",
                }
            }
        }
    };
}

error_codes! {
    // ----- who is calling -----
    /// Missing, malformed, unknown, expired or revoked credentials (401).
    Unauthorized = "unauthorized",
    /// A signed request whose signature or timestamp does not verify (401).
    BadSignature = "bad_signature",
    /// Valid credentials without the role this route needs (403).
    Forbidden = "forbidden",
    /// A state-changing request made with a session cookie lacks a valid CSRF token (403).
    CsrfRequired = "csrf_required",
    /// Too many failed attempts from this address or for this account; retry later (429).
    TooManyAttempts = "too_many_attempts",
    // ----- malformed requests (400) -----
    BodyTooLarge = "body_too_large",
    BadContentType = "bad_content_type",
    InvalidBody = "invalid_body",
    InvalidQuery = "invalid_query",
    InvalidPath = "invalid_path",
    InvalidId = "invalid_id",
    InvalidField = "invalid_field",
    InvalidSpec = "invalid_spec",
    InvalidName = "invalid_name",
    InvalidRule = "invalid_rule",
    InvalidCollection = "invalid_collection",
    InvalidDetection = "invalid_detection",
    InvalidOperation = "invalid_operation",
    InvalidExpiry = "invalid_expiry",
    InvalidTimeout = "invalid_timeout",
    InvalidOutputLimit = "invalid_output_limit",
    InvalidMaxUses = "invalid_max_uses",
    InvalidInventory = "invalid_inventory",
    WeakPassword = "weak_password",
    TooManyTargets = "too_many_targets",
    TooManyBytes = "too_many_bytes",
    NoTargets = "no_targets",
    NotAWebsocket = "not_a_websocket",
    UnsupportedProtocol = "unsupported_protocol",
    UnknownConnector = "unknown_connector",
    UnknownPackage = "unknown_package",
    UnknownApplication = "unknown_application",
    AmbiguousApplication = "ambiguous_application",
    IncompleteSite = "incomplete_site",
    NoInventory = "no_inventory",
    UsePushEndpoint = "use_push_endpoint",
    UseImportEndpoint = "use_import_endpoint",
    // ----- state conflicts (409) -----
    NameTaken = "name_taken",
    RuleCollection = "rule_collection",
    StaleLease = "stale_lease",
    JobFinished = "job_finished",
    UploadCompleted = "upload_completed",
    UploadIncomplete = "upload_incomplete",
    OffsetMismatch = "offset_mismatch",
    AlreadyConnecting = "already_connecting",
    SessionRequired = "session_required",
    SessionReplaced = "session_replaced",
    SessionClosed = "session_closed",
    LastAdmin = "last_admin",
    /// A device reported other inventory since the administrator looked (409).
    InventoryChanged = "inventory_changed",
    /// A technician holds the most live API keys allowed; revoke one first.
    TooManyKeys = "too_many_keys",
    /// The idempotency key was used before for a different task request.
    IdempotencyKeyReused = "idempotency_key_reused",
    /// A technician has as many notification rules as allowed; delete one first.
    TooManyRules = "too_many_rules",
    /// The script was retired; use its newest version.
    ScriptRetired = "script_retired",
    /// The task has finished; it can no longer change.
    TaskFinished = "task_finished",
    // ----- content that cannot be accepted (422) -----
    UnknownReference = "unknown_reference",
    NotAnMsi = "not_an_msi",
    InvalidPackage = "invalid_package",
    /// A field of a task, script or integration cannot be accepted; `field` names it.
    InvalidTask = "invalid_task",
    /// A callback URL outside the integration's prefixes, or to an address it may not use.
    CallbackNotAllowed = "callback_not_allowed",
    /// A setting this hub and its agents cannot honour yet; `field` names it.
    UnsupportedSetting = "unsupported_setting",
    Sha256Mismatch = "sha256_mismatch",
    // ----- refusals a caller can act on (403) -----
    EnrollmentSecretExpired = "enrollment_secret_expired",
    EnrollmentSecretUsedUp = "enrollment_secret_used_up",
    EnrollmentSecretRevoked = "enrollment_secret_revoked",
    // ----- other -----
    NotFound = "not_found",
    ShuttingDown = "shutting_down",
    /// The caller has as many uploads open as it may (429): finish or abandon one.
    TooManyUploads = "too_many_uploads",
    /// The hub is too busy to verify a password now; retry after `Retry-After` (503).
    Busy = "busy",
    /// Paced admission: come back after `Retry-After` (503).
    AdmissionDeferred = "admission_deferred",
    Internal = "internal",
    // ----- agent channel error frames -----
    BadMessage = "bad_message",
    UnexpectedHello = "unexpected_hello",
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_travel_as_their_snake_case_names() {
        for code in ErrorCode::ALL {
            let json = serde_json::to_string(code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
            let back: ErrorCode = serde_json::from_str(&json).unwrap();
            assert_eq!(back, *code);
        }
    }

    #[test]
    fn a_code_from_a_newer_hub_reads_as_unknown() {
        let e: ApiError =
            serde_json::from_str(r#"{"code":"brand_new_code","message":"m"}"#).unwrap();
        assert_eq!(e.code, ErrorCode::Unknown);
    }

    #[test]
    fn wire_names_are_unique() {
        let mut names: Vec<_> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        names.sort_unstable();
        let n = names.len();
        names.dedup();
        assert_eq!(names.len(), n);
    }
}
