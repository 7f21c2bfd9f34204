//! The endpoint agent's protocol: enrolment, inventory, and the messages that travel over the
//! agent's one persistent channel.
//!
//! Transport: `GET /api/v1/agent/ws` upgrades to a WebSocket whose text frames each carry one
//! JSON [`AgentMessage`] (agent → hub) or [`HubMessage`] (hub → agent). Where WebSockets are
//! blocked, `POST /api/v1/agent/poll?hold=S` carries the same messages: the body is the agent's
//! outgoing messages (a JSON array, possibly empty), the answer is the hub's (held up to `hold`
//! seconds until there is one); every poll after the first carries `session=<session_id>`. Every session, on either transport, starts with
//! [`AgentMessage::Hello`] and is answered with [`HubMessage::Welcome`].
//!
//! Delivery: the hub re-sends every unfinished operation of a device when a session starts, so
//! an agent may see an operation more than once; it answers a repeat from its own journal
//! instead of running it again. The agent may forget an operation once the hub has sent
//! [`HubMessage::ResultStored`] for it (the result is committed).
//!
//! Admission: when too many agents open sessions at once, the hub answers `503` with a
//! `Retry-After` header and an [`ApiError`](crate::ApiError) whose code is
//! [`ErrorCode::AdmissionDeferred`](crate::ErrorCode::AdmissionDeferred); the [`RETRY_AFTER_MS_HEADER`] header gives the slot to the
//! millisecond.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::ops::{AfterSuccess, OnInterrupt, OpOutcome, OpSpec, WaitFor};

/// The version of the agent protocol; the hub refuses a `Hello` with a version it does not know.
pub const AGENT_PROTOCOL: u32 = 1;

/// The header carrying a paced-admission slot in milliseconds (`Retry-After` has seconds).
pub const RETRY_AFTER_MS_HEADER: &str = "ferry-retry-after-ms";

/// The WebSocket close code the hub uses when a newer session with the same device token
/// replaced this one. An agent that receives it waits a long time before reconnecting, so that
/// two processes sharing one token do not take turns forever.
pub const CLOSE_REPLACED: u16 = 4001;
/// The close code for a device that was disabled or whose token was rotated.
pub const CLOSE_REVOKED: u16 = 4003;

/// What the agent knows about its device, reported at every session start and when it changes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Inventory {
    pub hostname: String,
    /// e.g. `Windows` or `Debian GNU/Linux`.
    pub os_name: String,
    /// e.g. `10.0.19045` or `12`.
    pub os_version: String,
    /// The Windows domain or DNS domain; `None` when the device is in none.
    #[serde(default)]
    pub domain: Option<String>,
    /// `x86_64`, `aarch64`, …
    pub arch: String,
    pub agent_version: String,
    /// Addresses the device uses (the one it reaches the hub from first).
    #[serde(default)]
    pub ips: Vec<String>,
    /// Users logged on now, `DOMAIN\name` (the computer's name for local accounts): how a
    /// helpdesk's "install for this user" finds the user's workstations.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<String>,
}

/// `POST /api/v1/agent/enroll` (no Authorization header: the secret is in the body).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollRequest {
    pub secret: String,
    pub inventory: Inventory,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollResponse {
    pub device_id: Uuid,
    /// `<device id>:<secret>`; shown once, kept 0600 on the device, stored hashed on the hub.
    pub token: String,
}

/// `POST /api/v1/agent/token`: the agent replaces its own token (the old one stops working).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenResponse {
    pub token: String,
}

/// One operation handed to an agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Assignment {
    pub op_id: Uuid,
    #[serde(flatten)]
    pub spec: OpSpec,
    /// How long the agent lets it run before killing it.
    pub timeout_secs: u32,
    /// Output kept per stream, in bytes (the rest is cut, and the cut is marked).
    pub output_limit: u32,
    pub on_interrupt: OnInterrupt,
    /// Restart or shut the device down once the operation succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<AfterSuccess>,
    /// Hold the operation until this moment on the device (a startup, a logon).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait: Option<WaitFor>,
}

/// Hub → agent.
// `Operation` is the message the channel mostly carries; boxing it would only add a hop.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum HubMessage {
    /// The answer to `Hello`.
    Welcome {
        protocol: u32,
        device_id: Uuid,
        /// The agent pings this often; the hub drops a session it has not heard from in three
        /// intervals, and the agent reconnects when a ping is not answered within one.
        ping_interval_secs: u32,
        /// The largest message the hub accepts.
        max_message_bytes: u32,
        /// This session's number: long polls carry it (`?session=`), so that a poll from a
        /// process whose session was replaced is told so instead of joining the new one.
        session_id: u64,
    },
    Operation(Assignment),
    /// Stop the operation if it is running; the hub has already recorded it as cancelled.
    Cancel {
        op_id: Uuid,
    },
    /// The result is committed; the agent may forget the operation.
    ResultStored {
        op_id: Uuid,
    },
    /// A message could not be used; the session goes on.
    Error {
        code: crate::ErrorCode,
        message: String,
    },
}

/// Agent → hub.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AgentMessage {
    Hello {
        protocol: u32,
        inventory: Inventory,
    },
    /// The operation is in the agent's journal (it will run or has run).
    Received {
        op_id: Uuid,
    },
    Running {
        op_id: Uuid,
    },
    Finished {
        op_id: Uuid,
        outcome: OpOutcome,
    },
    /// The inventory changed during the session.
    Inventory {
        inventory: Inventory,
    },
}

/// `GET /api/v1/agent/policy`: the deployments assigned to the device's collections.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Policy {
    pub deployments: Vec<crate::ops::PolicyDeployment>,
}
