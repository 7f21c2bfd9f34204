//! Technicians, their API keys and browser sessions.
//!
//! Secrets (API keys, session cookies) are stored as keyed hashes; passwords as argon2id PHC
//! strings. Authentication reads [`ApiKeyAuthRow`] / [`SessionAuthRow`], which join the
//! technician's current role and state, so that a disabled technician or a role change takes
//! effect on the very next request.

use async_trait::async_trait;
use ferry_proto::identity::{ApiKey, Role, Technician, UpdateTechnician};
use uuid::Uuid;

use super::{Actor, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("not found")]
    NotFound,
    #[error("{0} is already taken")]
    NameTaken(String),
    /// The change would leave no enabled administrator.
    #[error("this would leave the hub without an enabled administrator")]
    LastAdmin,
    /// The technician already holds this many live (neither revoked nor expired) keys.
    #[error("a technician may hold at most {0} live keys; revoke one first")]
    TooManyKeys(usize),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for IdentityError {
    fn from(e: sqlx::Error) -> Self {
        IdentityError::Store(e.into())
    }
}

/// A new technician, validated.
#[derive(Debug, Clone)]
pub struct TechnicianInsert {
    pub id: Uuid,
    pub name: String,
    pub display_name: String,
    pub email: Option<String>,
    pub role: Role,
    /// argon2id PHC string.
    pub password_hash: Option<String>,
}

/// What authenticating an API key needs, joined with its technician.
#[derive(Debug, Clone)]
pub struct ApiKeyAuthRow {
    pub key_id: Uuid,
    pub technician_id: Uuid,
    pub technician_name: String,
    pub role: Role,
    pub technician_enabled: bool,
    pub secret_hash: Vec<u8>,
    pub expires_at_ms: Option<i64>,
    pub revoked: bool,
}

/// What authenticating a session cookie needs, joined with its technician.
#[derive(Debug, Clone)]
pub struct SessionAuthRow {
    pub session_id: Uuid,
    pub technician_id: Uuid,
    pub technician_name: String,
    pub role: Role,
    pub technician_enabled: bool,
    pub secret_hash: Vec<u8>,
    pub last_seen_ms: i64,
    /// The absolute end.
    pub expires_at_ms: i64,
    pub revoked: bool,
}

/// A new browser session.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub id: Uuid,
    pub technician_id: Uuid,
    pub secret_hash: Vec<u8>,
    pub expires_at_ms: i64,
    pub user_agent: Option<String>,
}

/// Whether anyone can still administer the hub (checked at every start).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminAccess {
    /// No technician yet: the hub's first start.
    FirstStart,
    /// An enabled administrator has a password or a live API key.
    Usable,
    /// No enabled administrator has a password or a live key (a first start cut short, or
    /// every key revoked): `admin` is the first enabled administrator, if any.
    Unusable { admin: Option<Uuid> },
}

#[async_trait]
pub trait IdentityStore {
    async fn admin_access(&self, now_ms: i64) -> Result<AdminAccess, StoreError>;

    /// [`IdentityError::NameTaken`] if the name is in use.
    async fn create_technician(
        &self,
        actor: &Actor,
        new: &TechnicianInsert,
    ) -> Result<Technician, IdentityError>;

    async fn get_technician(&self, id: Uuid) -> Result<Option<Technician>, StoreError>;

    /// The technician and their password hash, by login name.
    async fn technician_login(
        &self,
        name: &str,
    ) -> Result<Option<(Technician, Option<String>)>, StoreError>;

    /// By name.
    async fn list_technicians(&self) -> Result<Vec<Technician>, StoreError>;

    /// Changes display name, e-mail, role or enabled state. [`IdentityError::LastAdmin`] if
    /// it would leave no enabled administrator. Disabling ends the technician's sessions.
    async fn update_technician(
        &self,
        actor: &Actor,
        id: Uuid,
        update: &UpdateTechnician,
    ) -> Result<Technician, IdentityError>;

    /// Sets (or clears) the portal password and ends every session of the technician.
    async fn set_password(
        &self,
        actor: &Actor,
        id: Uuid,
        password_hash: Option<&str>,
    ) -> Result<(), IdentityError>;

    /// [`IdentityError::NameTaken`] if the technician has a key of that name;
    /// [`IdentityError::TooManyKeys`] if they hold `max_live` live keys already (counted in
    /// the same transaction, so concurrent creations cannot pass the cap).
    #[allow(clippy::too_many_arguments)]
    async fn create_api_key(
        &self,
        actor: &Actor,
        technician: Uuid,
        key_id: Uuid,
        name: &str,
        secret_hash: &[u8],
        expires_at_ms: Option<i64>,
        max_live: usize,
    ) -> Result<ApiKey, IdentityError>;

    /// Replaces a live key's secret: the old one dies at once.
    async fn regenerate_api_key(
        &self,
        actor: &Actor,
        technician: Uuid,
        key_id: Uuid,
        secret_hash: &[u8],
    ) -> Result<ApiKey, IdentityError>;

    async fn revoke_api_key(
        &self,
        actor: &Actor,
        technician: Uuid,
        key_id: Uuid,
    ) -> Result<ApiKey, IdentityError>;

    async fn list_api_keys(&self, technician: Uuid) -> Result<Vec<ApiKey>, StoreError>;

    async fn api_key_auth(&self, key_id: Uuid) -> Result<Option<ApiKeyAuthRow>, StoreError>;

    /// Records keys' last use `(key, unix ms, address)` in one statement.
    async fn record_key_uses(&self, uses: &[(Uuid, i64, Option<String>)])
    -> Result<(), StoreError>;

    /// Opens a session (a login), audited.
    async fn create_session(&self, actor: &Actor, new: &NewSession) -> Result<(), StoreError>;

    async fn session_auth(&self, id: Uuid) -> Result<Option<SessionAuthRow>, StoreError>;

    /// Records sessions' last activity `(session, unix ms)` in one statement.
    async fn touch_sessions(&self, touches: &[(Uuid, i64)]) -> Result<(), StoreError>;

    /// Ends one session (a logout). `false` if it was already over.
    async fn revoke_session(&self, actor: &Actor, id: Uuid) -> Result<bool, StoreError>;

    /// Ends every session of a technician; returns how many.
    async fn revoke_sessions_of(&self, actor: &Actor, technician: Uuid) -> Result<u64, StoreError>;

    /// Deletes sessions that ended before `cutoff_ms` (they can never be used again).
    async fn prune_sessions(&self, cutoff_ms: i64) -> Result<u64, StoreError>;
}
