//! Who uses the hub: technicians with roles, their personal API keys, browser sessions, and
//! the audit log that names them.
//!
//! Credentials (`Authorization: Bearer …`):
//! - an API key, `fk_<key id>_<secret>` (see [`API_KEY_PREFIX`]);
//! - a connector's `<remote id>:<secret>`, a device's `<device id>:<secret>` (their own routes);
//! - or, from a browser, the session cookie [`SESSION_COOKIE`], with the [`CSRF_HEADER`] on every
//!   request that changes something.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::Timestamp;

/// API keys start with this, so that secret scanners and people recognise them.
pub const API_KEY_PREFIX: &str = "fk_";
/// The browser session cookie (`HttpOnly; Secure; SameSite=Strict`).
pub const SESSION_COOKIE: &str = "__Host-ferry_session";
/// The header carrying the CSRF token with cookie-authenticated state-changing requests.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// What a technician may do. Ordered: each role may do everything the ones below it may.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Reads everything, changes nothing.
    #[default]
    Guest,
    /// Uploads, pushes, imports, runs client operations and tasks.
    Operator,
    /// Everything, including connectors, enrolment, devices, collections, deployments,
    /// technicians and keys.
    Admin,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Guest, Role::Operator, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Guest => "guest",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A technician as the hub shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Technician {
    pub id: Uuid,
    /// The login name (unique).
    pub name: String,
    pub display_name: String,
    pub email: Option<String>,
    pub role: Role,
    pub enabled: bool,
    /// Whether a portal password is set.
    pub has_password: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: Timestamp,
}

/// `POST /api/v1/technicians`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewTechnician {
    pub name: String,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    pub role: Role,
    /// A portal password (at least 12 characters); without one the technician uses API keys.
    #[serde(default)]
    pub password: Option<String>,
}

/// `PATCH /api/v1/technicians/{id}`: absent fields are unchanged; `email: null` clears it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateTechnician {
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::double_option"
    )]
    pub email: Option<Option<String>>,
    #[serde(default)]
    pub role: Option<Role>,
    #[serde(default)]
    pub enabled: Option<bool>,
}

/// `POST /api/v1/technicians/{id}/password`. An administrator sets anyone's; a technician
/// changing their own must give the current one.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetPassword {
    pub password: String,
    #[serde(default)]
    pub current_password: Option<String>,
}

/// A personal API key as the hub shows it (never the secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKey {
    pub id: Uuid,
    pub technician_id: Uuid,
    pub name: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: Timestamp,
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<Timestamp>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_used_at: Option<Timestamp>,
    pub last_used_addr: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<Timestamp>,
}

/// `POST /api/v1/technicians/{id}/keys`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewApiKey {
    pub name: String,
    /// Lifetime in seconds; absent means the key does not expire.
    #[serde(default)]
    pub expires_in_secs: Option<u64>,
    /// The caller's password, required when the request comes through a browser session (a
    /// stolen session cookie must not become a lasting key); ignored with an API key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_password: Option<String>,
}

/// The optional body of `POST /api/v1/technicians/{id}/keys/{key}/regenerate`: through a
/// browser session it must carry the caller's password.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reauthenticate {
    #[serde(default)]
    pub current_password: Option<String>,
}

/// The answer to creating or regenerating a key: the only time the secret is shown.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatedApiKey {
    pub key: ApiKey,
    /// `fk_<key id>_<secret>`, for `Authorization: Bearer …`.
    pub token: String,
}

/// `POST /api/v1/login`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub name: String,
    pub password: String,
}

/// How a caller proved who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "id")]
pub enum Via {
    /// A personal API key (its id).
    ApiKey(Uuid),
    /// A browser session (its id).
    Session(Uuid),
    /// A connector's secret.
    ConnectorSecret,
    /// A device token.
    DeviceToken,
    /// An enrolment secret (its id).
    EnrollmentSecret(Uuid),
    /// The hub itself (sweeps, first start).
    Hub,
}

/// `GET /api/v1/me`, and the answer to a login.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Me {
    pub technician: Technician,
    pub via: Via,
    /// For a browser session: the token to send in [`CSRF_HEADER`] with every request that
    /// changes something.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub csrf_token: Option<String>,
    /// For a browser session: when it ends at the latest (its idle timeout may end it sooner).
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub session_expires_at: Option<Timestamp>,
}

/// What kind of caller did something.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActorKind {
    Technician,
    Connector,
    Device,
    /// The hub itself (first start, migrations).
    Hub,
}

impl ActorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ActorKind::Technician => "technician",
            ActorKind::Connector => "connector",
            ActorKind::Device => "device",
            ActorKind::Hub => "hub",
        }
    }

    pub fn parse(s: &str) -> Option<ActorKind> {
        [
            ActorKind::Technician,
            ActorKind::Connector,
            ActorKind::Device,
            ActorKind::Hub,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// One entry of the audit log: who did what to which object, how they proved who they were,
/// and from where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub id: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub at: Timestamp,
    pub actor_kind: ActorKind,
    /// The technician's, connector's or device's id.
    pub actor_id: Option<Uuid>,
    /// For people: the technician's name, `connector:<id>`, `device:<id>`, or `hub`.
    pub actor: String,
    pub via: Option<Via>,
    /// The caller's IP address.
    pub address: Option<String>,
    /// e.g. `connector.register`, `job.enqueue`, `package.update`.
    pub action: String,
    pub target: Option<String>,
    pub detail: Option<String>,
}

/// `GET /api/v1/audit` query: newest first, filtered.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// A technician's name, `connector:<id>`, `device:<id>`, or an actor id.
    #[serde(default)]
    pub actor: Option<String>,
    /// An action (`job.enqueue`), or a prefix ending in `.` (`job.`).
    #[serde(default)]
    pub action: Option<String>,
    /// Entries at or after this time.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub since: Option<Timestamp>,
    /// Entries before this time.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub until: Option<Timestamp>,
    /// Entries with an id below this (paging backwards).
    #[serde(default)]
    pub before: Option<i64>,
    #[serde(default)]
    pub limit: Option<u32>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_ordered_by_what_they_may_do() {
        assert!(Role::Guest < Role::Operator && Role::Operator < Role::Admin);
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
    }

    #[test]
    fn via_names_its_kind_and_id() {
        let id = Uuid::nil();
        let json = serde_json::to_value(Via::ApiKey(id)).unwrap();
        assert_eq!(json["kind"], "api_key");
        assert_eq!(
            serde_json::to_value(Via::Hub).unwrap(),
            serde_json::json!({"kind": "hub"})
        );
    }
}

// Types that carry a password or a secret print it as `***`: one `?req` in a log line must not
// leak it.
const HIDDEN: &str = "***";

fn hidden(v: &Option<String>) -> Option<&'static str> {
    v.as_ref().map(|_| HIDDEN)
}

impl std::fmt::Debug for NewTechnician {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewTechnician")
            .field("name", &self.name)
            .field("display_name", &self.display_name)
            .field("email", &self.email)
            .field("role", &self.role)
            .field("password", &hidden(&self.password))
            .finish()
    }
}

impl std::fmt::Debug for SetPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SetPassword")
            .field("password", &HIDDEN)
            .field("current_password", &hidden(&self.current_password))
            .finish()
    }
}

impl std::fmt::Debug for NewApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewApiKey")
            .field("name", &self.name)
            .field("expires_in_secs", &self.expires_in_secs)
            .field("current_password", &hidden(&self.current_password))
            .finish()
    }
}

impl std::fmt::Debug for Reauthenticate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reauthenticate")
            .field("current_password", &hidden(&self.current_password))
            .finish()
    }
}

impl std::fmt::Debug for CreatedApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedApiKey")
            .field("key", &self.key)
            .field("token", &HIDDEN)
            .finish()
    }
}

impl std::fmt::Debug for LoginRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginRequest")
            .field("name", &self.name)
            .field("password", &HIDDEN)
            .finish()
    }
}

#[cfg(test)]
mod debug_tests {
    use super::*;

    #[test]
    fn debug_output_hides_passwords_and_tokens() {
        let login = LoginRequest {
            name: "alice".into(),
            password: "correct horse battery".into(),
        };
        let set = SetPassword {
            password: "new secret words".into(),
            current_password: Some("old secret words".into()),
        };
        let printed = format!("{login:?} {set:?}");
        assert!(printed.contains("alice"));
        for secret in ["correct horse", "new secret", "old secret"] {
            assert!(!printed.contains(secret), "{printed}");
        }
    }
}
