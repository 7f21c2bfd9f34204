//! Technicians, API keys and browser sessions: who may call the hub, and proof of it.
//!
//! - **API keys** are `fk_<key id>_<secret>`: the id finds the row without a scan, the secret
//!   (256 random bits) is checked against its keyed hash (HMAC, like every other secret here:
//!   fast enough for every request, useless without the server key). Keys can expire, are
//!   revoked or regenerated (the old secret dies at once), and stop working the moment their
//!   technician is disabled, because authentication joins the technician's current state.
//! - **Passwords** (portal logins) are argon2id, verified on a blocking thread, at most two at
//!   a time. An unknown name is verified against a fixed dummy hash, so that it costs and
//!   answers exactly like a wrong password; failures are throttled per name and per address.
//! - **Sessions** are server-side rows; the cookie holds `<session id>.<secret>`. They end on
//!   logout, after [`HubConfig::session_idle_mins`] without a request, after
//!   [`HubConfig::session_absolute_hours`], on a password change or when the technician is
//!   disabled. Cookie-authenticated requests that change something must carry the CSRF token
//!   derived from the session ([`Hub::csrf_token`]).
//!
//! Verified rows are cached in memory for at most [`CACHE_TTL`] (an idle portal or a script
//! polling the API must not cost a database read per request) and the whole cache is dropped
//! on any identity change, after its commit, with a generation counter so that a read racing
//! the change cannot put a stale row back. The drop is armed before the store call and runs
//! however the call ends ([`OnDrop`]): a client that disconnects between the commit and the
//! answer must not leave a revoked key cached. A request already past authentication when a
//! revocation commits still finishes: the revocation holds for every request after it.
//!
//! [`HubConfig::session_idle_mins`]: crate::HubConfig::session_idle_mins
//! [`HubConfig::session_absolute_hours`]: crate::HubConfig::session_absolute_hours
//! [`Hub::csrf_token`]: crate::AppState::csrf_token

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

use ferry_proto::ErrorCode;
use ferry_proto::identity::{
    API_KEY_PREFIX, ApiKey, CreatedApiKey, LoginRequest, Me, NewApiKey, NewTechnician, Role,
    SetPassword, Technician, UpdateTechnician, Via,
};
use uuid::Uuid;

use crate::AppState;
use crate::error::{Error, Result};
use crate::secrets::generate_secret;
use crate::service::{OnDrop, check_printable};
use crate::store::{Actor, ApiKeyAuthRow, NewSession, SessionAuthRow, TechnicianInsert};
use crate::throttle::Failures;
use crate::time_util::{from_ms, now_ms};

/// Who a technician credential belongs to, as routes see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TechnicianCaller {
    pub id: Uuid,
    pub name: String,
    pub role: Role,
    pub via: Via,
    /// For a session: when it ends at the latest.
    pub session_expires_at_ms: Option<i64>,
}

const MAX_NAME: usize = 64;
const MAX_DISPLAY: usize = 128;
const MAX_KEY_NAME: usize = 128;
const MIN_PASSWORD: usize = 12;
/// argon2's cost grows with the input; a password longer than this is not a password.
const MAX_PASSWORD: usize = 1024;
/// Most keys a technician may hold at once (a loop creating keys must not fill the table).
const MAX_LIVE_KEYS: usize = 50;

/// Longest a verified key or session row is used from memory before it is read again: the
/// bound on how stale a cached row can be if an invalidation were ever missed.
pub const CACHE_TTL: Duration = Duration::from_secs(60);

// ----- caches and usage -------------------------------------------------------------------

/// Verified key and session rows with when they were read, dropped on every identity change
/// and after [`CACHE_TTL`] (see the module docs).
#[derive(Default)]
pub struct IdentityCache {
    keys: HashMap<Uuid, (ApiKeyAuthRow, Instant)>,
    sessions: HashMap<Uuid, (SessionAuthRow, Instant)>,
    generation: u64,
}

impl IdentityCache {
    /// Drops the rows read more than [`CACHE_TTL`] ago (called by the periodic flush, so that
    /// the cache holds only what was used lately).
    pub fn prune(&mut self) {
        self.keys.retain(|_, (_, at)| at.elapsed() < CACHE_TTL);
        self.sessions.retain(|_, (_, at)| at.elapsed() < CACHE_TTL);
    }
}

/// When keys and sessions were last used, kept in memory and written by the presence flush
/// (an API key used every second must not cost a write every second).
#[derive(Default)]
pub struct Usage {
    keys: Mutex<HashMap<Uuid, KeyUse>>,
    /// Last activity (unix ms) and whether it is yet to be written.
    sessions: Mutex<HashMap<Uuid, (i64, bool)>>,
}

/// When (unix ms) and from where a key was last used, and whether that is yet to be written.
type KeyUse = (i64, Option<String>, bool);

impl Usage {
    fn note_key(&self, key: Uuid, at: i64, addr: Option<IpAddr>) {
        let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        keys.insert(key, (at, addr.map(|a| a.to_string()), true));
    }

    fn note_session(&self, session: Uuid, at: i64) {
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        sessions.insert(session, (at, true));
    }

    fn session_last(&self, session: Uuid) -> Option<i64> {
        let sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        sessions.get(&session).map(|(at, _)| *at)
    }

    fn key_last(&self, key: Uuid) -> Option<(i64, Option<String>)> {
        let keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        keys.get(&key).map(|(at, addr, _)| (*at, addr.clone()))
    }

    /// Writes what changed since the last flush; what fails to be written is kept for the
    /// next one.
    pub async fn flush(&self, state: &AppState) {
        let keys: Vec<(Uuid, i64, Option<String>)> = {
            let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
            keys.iter_mut()
                .filter(|(_, v)| v.2)
                .map(|(id, v)| {
                    v.2 = false;
                    (*id, v.0, v.1.clone())
                })
                .collect()
        };
        if let Err(e) = state.store.record_key_uses(&keys).await {
            tracing::warn!(error = %e, "could not record API key use");
            let mut map = self.keys.lock().unwrap_or_else(|p| p.into_inner());
            for (id, at, _) in keys {
                map.entry(id).and_modify(|v| v.2 |= v.0 == at);
            }
        } else {
            // Written: the store has it now, and memory holds only what is yet to be written.
            let mut map = self.keys.lock().unwrap_or_else(|p| p.into_inner());
            map.retain(|_, v| v.2);
        }
        let sessions: Vec<(Uuid, i64)> = {
            let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
            sessions
                .iter_mut()
                .filter(|(_, v)| v.1)
                .map(|(id, v)| {
                    v.1 = false;
                    (*id, v.0)
                })
                .collect()
        };
        if let Err(e) = state.store.touch_sessions(&sessions).await {
            tracing::warn!(error = %e, "could not record session activity");
            let mut map = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
            for (id, at) in sessions {
                map.entry(id).and_modify(|v| v.1 |= v.0 == at);
            }
        }
        // A session idle past its timeout is over whatever memory says; a cached session row
        // may still predate the last write, so activity is kept until then.
        let idle_ms = i64::from(state.config.session_idle_mins) * 60_000;
        let cutoff = now_ms() - idle_ms;
        let mut map = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, v| v.1 || v.0 > cutoff);
    }

    /// Forgets a key's last use (its secret was replaced).
    fn forget_key(&self, key: Uuid) {
        let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        keys.remove(&key);
    }
}

// ----- throttling -------------------------------------------------------------------------

/// Failed logins per name and per address in a sliding window. Past the limit, logins are
/// refused (429) until the oldest failure leaves the window, whatever the password: the answer
/// must not tell whether a guess was right.
///
/// An attempt counts as failed from the moment it is let through ([`LoginThrottle::begin`])
/// and is taken back only if it succeeds: guesses sent all at once cannot all pass the check
/// while the first ones are still being verified.
pub struct LoginThrottle {
    per_name: usize,
    per_addr: usize,
    failures: Failures,
}

impl LoginThrottle {
    pub fn new(window: Duration, per_name: usize, per_addr: usize) -> Self {
        LoginThrottle {
            per_name,
            per_addr,
            failures: Failures::new(window),
        }
    }

    /// The two keys of an attempt. The name is cut to the longest login name, so that a
    /// megabyte-long "name" costs the throttle no more than a real one.
    fn keys(name: &str, addr: Option<IpAddr>) -> [String; 2] {
        let name: String = name.chars().take(MAX_NAME + 1).collect();
        [
            format!("name:{}", name.to_lowercase()),
            format!("addr:{}", addr.map(|a| a.to_string()).unwrap_or_default()),
        ]
    }

    /// Forgets the keys with no failure left in the window (called by the periodic flush).
    pub fn prune(&self) {
        self.failures.prune();
    }

    /// Lets an attempt through and counts it as failed, or `Err(seconds)` if the name or
    /// the address is at its limit. The returned stamp takes the attempt back on success.
    fn begin(&self, name: &str, addr: Option<IpAddr>) -> std::result::Result<Instant, u64> {
        let [n, a] = Self::keys(name, addr);
        self.failures
            .check(&[(&n, self.per_name), (&a, self.per_addr)], true)
    }

    /// The attempt stamped `at` succeeded: the name's failures are forgotten, and the
    /// attempt no longer counts against the address.
    fn succeed(&self, name: &str, addr: Option<IpAddr>, at: Instant) {
        let [n, a] = Self::keys(name, addr);
        self.failures.clear(&n);
        self.failures.take_back(&a, at);
    }
}

// ----- passwords --------------------------------------------------------------------------

/// argon2id with the crate's defaults (m = 19 MiB, t = 2, p = 1: OWASP's recommendation).
fn hash_password_blocking(password: &str) -> std::result::Result<String, String> {
    use argon2::PasswordHasher;
    argon2::Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

fn verify_password_blocking(password: &str, phc: &str) -> bool {
    use argon2::PasswordVerifier;
    match argon2::password_hash::phc::PasswordHash::new(phc) {
        Ok(hash) => argon2::Argon2::default()
            .verify_password(password.as_bytes(), &hash)
            .is_ok(),
        Err(_) => false,
    }
}

/// The hash an unknown name is checked against, so that it costs what a real one does.
static DUMMY_HASH: LazyLock<String> = LazyLock::new(|| {
    hash_password_blocking("no technician has this password: it only takes time")
        .unwrap_or_default()
});

/// At most two argon2 computations at once: a login flood must not take every core.
static ARGON2_SLOTS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);
/// Longest a password check waits for a slot; past it the caller is told to come back (503)
/// rather than queue behind a flood for minutes.
const ARGON2_WAIT: Duration = Duration::from_secs(10);

async fn on_argon2_slot<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    let _slot = tokio::time::timeout(ARGON2_WAIT, ARGON2_SLOTS.acquire())
        .await
        .map_err(|_| Error::Busy(ARGON2_WAIT.as_secs()))?
        .map_err(|e| anyhow::anyhow!("argon2 slots closed: {e}"))?;
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| Error::Internal(anyhow::anyhow!("password hashing failed: {e}")))
}

async fn hash_password(password: &str) -> Result<String> {
    let password = password.to_owned();
    on_argon2_slot(move || hash_password_blocking(&password))
        .await?
        .map_err(|e| Error::Internal(anyhow::anyhow!("hashing a password: {e}")))
}

async fn verify_password(password: &str, phc: Option<String>) -> Result<bool> {
    let password = password.to_owned();
    on_argon2_slot(move || {
        let real = phc.is_some();
        let ok = verify_password_blocking(&password, phc.as_deref().unwrap_or(&DUMMY_HASH));
        ok && real
    })
    .await
}

// ----- validation -------------------------------------------------------------------------

fn check_login_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.chars().count() <= MAX_NAME
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'));
    if ok {
        Ok(())
    } else {
        Err(Error::bad(
            ErrorCode::InvalidName,
            format!(
                "`name` must be 1–{MAX_NAME} letters, digits or . _ - @ (it is the login name)"
            ),
        ))
    }
}

fn check_text(field: &str, value: &str, max: usize) -> Result<()> {
    check_printable(field, value, max, ErrorCode::InvalidField)
}

fn check_email(email: &str) -> Result<()> {
    let ok = email.len() <= 254
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && domain.contains('.') && !domain.starts_with('.')
        })
        && !email.chars().any(|c| c.is_whitespace() || c.is_control());
    if ok {
        Ok(())
    } else {
        Err(Error::bad(
            ErrorCode::InvalidField,
            "`email` is not an e-mail address",
        ))
    }
}

fn check_password(password: &str) -> Result<()> {
    if password.chars().count() < MIN_PASSWORD || password.len() > MAX_PASSWORD {
        return Err(Error::bad(
            ErrorCode::WeakPassword,
            format!(
                "a password must be at least {MIN_PASSWORD} characters (and at most {MAX_PASSWORD} bytes)"
            ),
        ));
    }
    Ok(())
}

/// Whether a session may still be used at `now`: not revoked, its technician enabled, before
/// its absolute end, and last active (`last`, the later of the stored and the in-memory
/// activity) no more than `idle_ms` ago.
fn session_live(row: &SessionAuthRow, last: i64, now: i64, idle_ms: i64) -> bool {
    !row.revoked && row.technician_enabled && now < row.expires_at_ms && now - last <= idle_ms
}

/// `fk_<32 hex key id>_<secret>`.
fn format_key(id: Uuid, secret: &str) -> String {
    format!("{API_KEY_PREFIX}{}_{secret}", id.simple())
}

/// The key id and secret of an API key, or `None` if it is not shaped like one.
pub fn parse_key(token: &str) -> Option<(Uuid, &str)> {
    let rest = token.strip_prefix(API_KEY_PREFIX)?;
    let (id, secret) = rest.split_at_checked(32)?;
    let secret = secret.strip_prefix('_')?;
    Some((Uuid::try_parse(id).ok()?, secret))
}

/// `<session id>.<secret>`.
pub fn parse_session_cookie(value: &str) -> Option<(Uuid, &str)> {
    let (id, secret) = value.split_once('.')?;
    Some((Uuid::try_parse(id).ok()?, secret))
}

// ----- the service ------------------------------------------------------------------------

/// What a login returns: the answer for the client and the cookie to set.
pub struct LoggedIn {
    pub me: Me,
    /// `<session id>.<secret>`, for the session cookie.
    pub cookie: String,
    pub max_age_secs: i64,
}

impl AppState {
    // --- authentication ---

    /// `Err(seconds)` when the address has failed to authenticate too often lately
    /// ([`HubConfig::auth_failures_per_address`]); checked before any credential is.
    ///
    /// [`HubConfig::auth_failures_per_address`]: crate::HubConfig::auth_failures_per_address
    pub fn auth_gate(&self, addr: Option<IpAddr>) -> std::result::Result<(), u64> {
        let key = address_key(addr);
        match self.auth_failures.check(
            &[(&key, self.config.auth_failures_per_address as usize)],
            false,
        ) {
            Ok(_) => Ok(()),
            Err(secs) => {
                self.metrics
                    .auth_throttled
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                Err(secs)
            }
        }
    }

    /// Counts a failed authentication (a `401`) against the address and the credential id,
    /// and logs it with both (the id, never the secret). `Err(seconds)` when the credential
    /// id has now failed too often: the caller answers 429 instead of 401 (a real holder of
    /// the credential still gets in: only failures are throttled by id).
    pub fn auth_failed(
        &self,
        addr: Option<IpAddr>,
        credential: Option<&str>,
        path: &str,
    ) -> std::result::Result<(), u64> {
        let per_credential = self.config.auth_failures_per_credential as usize;
        let address = address_key(addr);
        let mut keys = vec![(
            address.as_str(),
            self.config.auth_failures_per_address as usize,
        )];
        if let Some(c) = credential {
            keys.push((c, per_credential));
        }
        let _ = self.auth_failures.check(&keys, true);
        self.metrics
            .auth_failures
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path: String = path.chars().take(120).collect();
        tracing::warn!(address = ?addr, credential = credential.unwrap_or("-"), %path, "authentication failed");
        match credential {
            Some(c) => self
                .auth_failures
                .check(&[(c, per_credential)], false)
                .map(|_| ())
                .inspect_err(|_| {
                    self.metrics
                        .auth_throttled
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }),
            None => Ok(()),
        }
    }

    /// A guard that drops every cached key and session when it goes, whether the change it
    /// guards committed, failed or was cancelled: arm it just before the store call.
    fn forget_identities_after(&self) -> OnDrop<impl FnOnce() + '_> {
        OnDrop::new(move || self.forget_identities())
    }

    /// Drops every cached key and session; call after (not before) an identity change commits.
    pub fn forget_identities(&self) {
        let mut cache = self
            .identity_cache
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        cache.generation += 1;
        cache.keys.clear();
        cache.sessions.clear();
    }

    /// A verified row from the cache if read less than [`CACHE_TTL`] ago, else from `load`
    /// (the store), cached unless an identity change happened meanwhile (the generation).
    async fn cached_row<T: Clone>(
        &self,
        map: fn(&mut IdentityCache) -> &mut HashMap<Uuid, (T, Instant)>,
        id: Uuid,
        load: impl std::future::Future<
            Output = std::result::Result<Option<T>, crate::store::StoreError>,
        >,
    ) -> Result<Option<T>> {
        let lock = || {
            self.identity_cache
                .lock()
                .unwrap_or_else(|p| p.into_inner())
        };
        let generation = {
            let mut cache = lock();
            if let Some((row, _)) = map(&mut cache)
                .get(&id)
                .filter(|(_, at)| at.elapsed() < CACHE_TTL)
            {
                return Ok(Some(row.clone()));
            }
            cache.generation
        };
        let Some(row) = load.await? else {
            return Ok(None);
        };
        let mut cache = lock();
        if cache.generation == generation {
            map(&mut cache).insert(id, (row.clone(), Instant::now()));
        }
        Ok(Some(row))
    }

    /// The technician behind an API key, or `Unauthorized` (an unknown, wrong, expired or
    /// revoked key, or a disabled technician: all the same to the caller).
    pub async fn authenticate_key(&self, token: &str) -> Result<TechnicianCaller> {
        const INVALID: Error = Error::Unauthorized("invalid API key (unknown, expired or revoked)");
        let (key_id, secret) = parse_key(token).ok_or(INVALID)?;
        let row = self
            .cached_row(|c| &mut c.keys, key_id, self.store.api_key_auth(key_id))
            .await?
            .ok_or(INVALID)?;
        let now = now_ms();
        if !self.key.verify(secret, &row.secret_hash)
            || row.revoked
            || !row.technician_enabled
            || row.expires_at_ms.is_some_and(|e| e <= now)
        {
            return Err(INVALID);
        }
        Ok(TechnicianCaller {
            id: row.technician_id,
            name: row.technician_name,
            role: row.role,
            via: Via::ApiKey(key_id),
            session_expires_at_ms: None,
        })
    }

    /// The technician behind a session cookie, or `Unauthorized` (unknown, revoked, idle
    /// too long, past its end, or a disabled technician).
    pub async fn authenticate_session(&self, cookie: &str) -> Result<TechnicianCaller> {
        const INVALID: Error = Error::Unauthorized("the session has ended; log in again");
        let (session_id, secret) = parse_session_cookie(cookie).ok_or(INVALID)?;
        let row = self
            .cached_row(
                |c| &mut c.sessions,
                session_id,
                self.store.session_auth(session_id),
            )
            .await?
            .ok_or(INVALID)?;
        let now = now_ms();
        let last = self
            .usage
            .session_last(session_id)
            .unwrap_or(0)
            .max(row.last_seen_ms);
        let idle_ms = i64::from(self.config.session_idle_mins) * 60_000;
        if !self.key.verify(secret, &row.secret_hash) || !session_live(&row, last, now, idle_ms) {
            return Err(INVALID);
        }
        Ok(TechnicianCaller {
            id: row.technician_id,
            name: row.technician_name,
            role: row.role,
            via: Via::Session(session_id),
            session_expires_at_ms: Some(row.expires_at_ms),
        })
    }

    /// Records that a technician's key or session was used (once the request is let through):
    /// a key's last use and address, a session's last activity (its idle timeout).
    pub fn note_use(&self, caller: &TechnicianCaller, addr: Option<IpAddr>) {
        match caller.via {
            Via::ApiKey(key) => self.usage.note_key(key, now_ms(), addr),
            Via::Session(session) => self.usage.note_session(session, now_ms()),
            _ => {}
        }
    }

    /// What kind of caller `token` is a valid credential of (`technician`, `connector` or
    /// `device`), checked without any side effect (no use recorded, no contact noted, no
    /// pending device token promoted): for telling a caller that its real credential is for
    /// other routes (403) rather than unknown (401).
    pub async fn credential_kind(&self, token: &str) -> Option<&'static str> {
        if token.starts_with(API_KEY_PREFIX) {
            return self
                .authenticate_key(token)
                .await
                .ok()
                .map(|_| "technician");
        }
        let (id, secret) = token.split_once(':')?;
        let id = Uuid::parse_str(id).ok()?;
        if let Ok(Some(row)) = self.connector_auth_row(id).await
            && self.key.verify(secret, &row.secret_hash)
        {
            return Some("connector");
        }
        let row = self.store.device_auth(id).await.ok()??;
        let valid = self.key.verify(secret, &row.token_hash)
            || row
                .pending_token_hash
                .is_some_and(|p| self.key.verify(secret, &p));
        valid.then_some("device")
    }

    /// The CSRF token of a session: derived from it with the server key, so nothing is
    /// stored and it dies with the session.
    pub fn csrf_token(&self, session: Uuid) -> String {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(self.key.hash(&format!("csrf:{session}")))
    }

    /// Whether `token` is the CSRF token of `session` (constant time).
    pub fn csrf_ok(&self, session: Uuid, token: &str) -> bool {
        use base64::Engine;
        match base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token) {
            Ok(bytes) => self.key.verify(&format!("csrf:{session}"), &bytes),
            Err(_) => false,
        }
    }

    // --- sessions ---

    /// Checks name and password and opens a session. Unknown names and wrong passwords get
    /// the same answer after the same work; too many failures get 429 either way.
    pub async fn login(
        &self,
        req: &LoginRequest,
        addr: Option<IpAddr>,
        user_agent: Option<&str>,
    ) -> Result<LoggedIn> {
        const INVALID: Error = Error::Unauthorized("invalid name or password");
        let attempt = match self.login_throttle.begin(&req.name, addr) {
            Ok(at) => at,
            Err(secs) => {
                self.metrics
                    .logins_throttled
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                return Err(Error::Throttled(secs));
            }
        };
        let found = if req.name.len() <= MAX_NAME && req.password.len() <= MAX_PASSWORD {
            self.store.technician_login(&req.name).await?
        } else {
            None
        };
        let (technician, hash) = match found {
            Some((t, h)) if t.enabled => (Some(t), h),
            _ => (None, None),
        };
        let password = if req.password.len() <= MAX_PASSWORD {
            req.password.as_str()
        } else {
            ""
        };
        let ok = verify_password(password, hash).await?;
        let Some(technician) = technician.filter(|_| ok) else {
            self.metrics
                .logins_failed
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::warn!(name = %req.name.chars().take(MAX_NAME).collect::<String>(), address = ?addr, "failed portal login");
            return Err(INVALID);
        };
        self.login_throttle.succeed(&req.name, addr, attempt);
        let session_id = Uuid::new_v4();
        let secret = generate_secret();
        let max_age_secs = i64::from(self.config.session_absolute_hours) * 3600;
        let expires_at_ms = now_ms() + max_age_secs * 1000;
        let via = Via::Session(session_id);
        let actor = Actor::technician(technician.id, &technician.name, via, addr);
        self.store
            .create_session(
                &actor,
                &NewSession {
                    id: session_id,
                    technician_id: technician.id,
                    secret_hash: self.key.hash(&secret),
                    expires_at_ms,
                    user_agent: user_agent.map(|u| u.chars().take(256).collect()),
                },
            )
            .await?;
        tracing::info!(technician = %technician.name, address = ?addr, "portal login");
        Ok(LoggedIn {
            me: Me {
                technician,
                via,
                csrf_token: Some(self.csrf_token(session_id)),
                session_expires_at: Some(from_ms(expires_at_ms)),
            },
            cookie: format!("{session_id}.{secret}"),
            max_age_secs,
        })
    }

    /// Ends the caller's session (a no-op for API keys, which are revoked instead).
    pub async fn logout(&self, actor: &Actor) -> Result<()> {
        if let Some(Via::Session(id)) = actor.via {
            let _forget = self.forget_identities_after();
            self.store.revoke_session(actor, id).await?;
        }
        Ok(())
    }

    /// `GET /api/v1/me`.
    pub async fn me(&self, caller: &TechnicianCaller) -> Result<Me> {
        let technician = self
            .store
            .get_technician(caller.id)
            .await?
            .ok_or(Error::NotFound("technician"))?;
        let session = match caller.via {
            Via::Session(id) => Some(id),
            _ => None,
        };
        Ok(Me {
            technician,
            via: caller.via,
            csrf_token: session.map(|s| self.csrf_token(s)),
            session_expires_at: caller.session_expires_at_ms.map(from_ms),
        })
    }

    // --- technicians ---

    pub async fn create_technician(
        &self,
        actor: &Actor,
        new: &NewTechnician,
    ) -> Result<Technician> {
        check_login_name(&new.name)?;
        let display_name = new.display_name.clone().unwrap_or_else(|| new.name.clone());
        check_text("display_name", &display_name, MAX_DISPLAY)?;
        if let Some(e) = &new.email {
            check_email(e)?;
        }
        let password_hash = match &new.password {
            Some(p) => {
                check_password(p)?;
                Some(hash_password(p).await?)
            }
            None => None,
        };
        let insert = TechnicianInsert {
            id: Uuid::new_v4(),
            name: new.name.clone(),
            display_name,
            email: new.email.clone(),
            role: new.role,
            password_hash,
        };
        Ok(self.store.create_technician(actor, &insert).await?)
    }

    pub async fn technicians(&self) -> Result<Vec<Technician>> {
        Ok(self.store.list_technicians().await?)
    }

    pub async fn technician(&self, id: Uuid) -> Result<Technician> {
        self.store
            .get_technician(id)
            .await?
            .ok_or(Error::NotFound("technician"))
    }

    pub async fn update_technician(
        &self,
        actor: &Actor,
        id: Uuid,
        update: &UpdateTechnician,
    ) -> Result<Technician> {
        if let Some(d) = &update.display_name {
            check_text("display_name", d, MAX_DISPLAY)?;
        }
        if let Some(Some(e)) = &update.email {
            check_email(e)?;
        }
        let _forget = self.forget_identities_after();
        Ok(self.store.update_technician(actor, id, update).await?)
    }

    /// Sets a technician's portal password. Technicians changing their own must prove the
    /// current one (a stolen session must not be enough to lock the owner out); every session
    /// of the technician ends.
    pub async fn set_password(
        &self,
        caller: &TechnicianCaller,
        actor: &Actor,
        id: Uuid,
        req: &SetPassword,
    ) -> Result<()> {
        check_password(&req.password)?;
        if caller.id == id {
            self.reauthenticate(
                caller,
                actor,
                req.current_password.as_deref(),
                "changing your own password",
            )
            .await?;
        }
        let hash = hash_password(&req.password).await?;
        let _forget = self.forget_identities_after();
        self.store.set_password(actor, id, Some(&hash)).await?;
        Ok(())
    }

    /// Proves that the person behind `caller` knows their password, where it matters more
    /// than holding the credential: changing one's own password, and minting an API key
    /// through a browser session (a stolen session cookie must not become a lasting key).
    /// A guess is a login attempt: throttled alike. Technicians without a password pass.
    async fn reauthenticate(
        &self,
        caller: &TechnicianCaller,
        actor: &Actor,
        given: Option<&str>,
        doing: &str,
    ) -> Result<()> {
        let current = self
            .store
            .get_technician(caller.id)
            .await?
            .ok_or(Error::NotFound("technician"))?;
        let (_, hash) = self
            .store
            .technician_login(&current.name)
            .await?
            .ok_or(Error::NotFound("technician"))?;
        if hash.is_none() {
            return Ok(());
        }
        let attempt = self
            .login_throttle
            .begin(&current.name, actor.address)
            .map_err(Error::Throttled)?;
        if !verify_password(given.unwrap_or(""), hash).await? {
            return Err(Error::forbidden(format!(
                "`current_password` is missing or wrong; {doing} needs it"
            )));
        }
        self.login_throttle
            .succeed(&current.name, actor.address, attempt);
        Ok(())
    }

    pub async fn end_sessions(&self, actor: &Actor, technician: Uuid) -> Result<u64> {
        self.technician(technician).await?;
        let _forget = self.forget_identities_after();
        Ok(self.store.revoke_sessions_of(actor, technician).await?)
    }

    // --- API keys ---

    pub async fn create_api_key(
        &self,
        caller: &TechnicianCaller,
        actor: &Actor,
        technician: Uuid,
        new: &NewApiKey,
    ) -> Result<CreatedApiKey> {
        check_text("name", &new.name, MAX_KEY_NAME)?;
        let expires_at_ms = match new.expires_in_secs {
            Some(0) => {
                return Err(Error::bad(
                    ErrorCode::InvalidExpiry,
                    "`expires_in_secs` must be at least 1",
                ));
            }
            Some(s) if s > 10 * 365 * 24 * 3600 => {
                return Err(Error::bad(
                    ErrorCode::InvalidExpiry,
                    "`expires_in_secs` is more than ten years",
                ));
            }
            Some(s) => Some(now_ms() + (s as i64) * 1000),
            None => None,
        };
        if matches!(caller.via, Via::Session(_)) {
            self.reauthenticate(
                caller,
                actor,
                new.current_password.as_deref(),
                "creating an API key in the browser",
            )
            .await?;
        }
        let key_id = Uuid::new_v4();
        let secret = generate_secret();
        let key = self
            .store
            .create_api_key(
                actor,
                technician,
                key_id,
                &new.name,
                &self.key.hash(&secret),
                expires_at_ms,
                MAX_LIVE_KEYS,
            )
            .await?;
        Ok(CreatedApiKey {
            key,
            token: format_key(key_id, &secret),
        })
    }

    /// A new secret for the key; the old one stops working at once.
    pub async fn regenerate_api_key(
        &self,
        caller: &TechnicianCaller,
        actor: &Actor,
        technician: Uuid,
        key_id: Uuid,
        current_password: Option<&str>,
    ) -> Result<CreatedApiKey> {
        if matches!(caller.via, Via::Session(_)) {
            self.reauthenticate(
                caller,
                actor,
                current_password,
                "regenerating an API key in the browser",
            )
            .await?;
        }
        let secret = generate_secret();
        let key = {
            let _forget = self.forget_identities_after();
            self.store
                .regenerate_api_key(actor, technician, key_id, &self.key.hash(&secret))
                .await?
        };
        // The old secret's last use is not the new one's.
        self.usage.forget_key(key_id);
        Ok(CreatedApiKey {
            key,
            token: format_key(key_id, &secret),
        })
    }

    pub async fn revoke_api_key(
        &self,
        actor: &Actor,
        technician: Uuid,
        key_id: Uuid,
    ) -> Result<ApiKey> {
        let _forget = self.forget_identities_after();
        Ok(self.store.revoke_api_key(actor, technician, key_id).await?)
    }

    /// A technician's keys, with last use as of now (the store lags by one flush).
    pub async fn api_keys(&self, technician: Uuid) -> Result<Vec<ApiKey>> {
        self.technician(technician).await?;
        let mut keys = self.store.list_api_keys(technician).await?;
        for k in &mut keys {
            if let Some((at, addr)) = self.usage.key_last(k.id)
                && k.last_used_at
                    .is_none_or(|t| crate::time_util::to_ms(t) < at)
            {
                k.last_used_at = Some(from_ms(at));
                k.last_used_addr = addr;
            }
        }
        Ok(keys)
    }

    /// Makes sure someone can administer the hub, at every start. On the first start (no
    /// technician yet) it creates the administrator `admin`; whenever no enabled administrator
    /// has a password or a live key (a first start cut short, every key revoked) it mints a
    /// key for the first enabled administrator. The key's token goes to `save` (the data dir's
    /// `admin.token`, 0600) *before* the key is committed, so a failed write leaves no live key
    /// nobody knows: the next start simply tries again. Returns whether a key was minted.
    ///
    /// Whoever can start the hub on its data directory can already read everything in it;
    /// this gives them nothing new.
    pub async fn ensure_admin_access(
        &self,
        save: impl FnOnce(&str) -> anyhow::Result<()>,
    ) -> Result<bool> {
        use crate::store::AdminAccess;
        let actor = Actor::hub();
        let (admin, key_name) = match self.store.admin_access(now_ms()).await? {
            AdminAccess::Usable => return Ok(false),
            AdminAccess::FirstStart => (None, crate::ADMIN_TOKEN_FILE.to_owned()),
            AdminAccess::Unusable { admin } => {
                tracing::warn!(
                    "no enabled administrator has a password or a live key; minting one"
                );
                let stamp = time::OffsetDateTime::now_utc().unix_timestamp();
                (
                    admin,
                    format!("{} (recovered {stamp})", crate::ADMIN_TOKEN_FILE),
                )
            }
        };
        let key_id = Uuid::new_v4();
        let secret = generate_secret();
        let token = format_key(key_id, &secret);
        save(&token)?;
        let admin = match admin {
            Some(id) => id,
            None => {
                self.create_technician(
                    &actor,
                    &NewTechnician {
                        name: "admin".to_owned(),
                        display_name: Some("Initial administrator".to_owned()),
                        email: None,
                        role: Role::Admin,
                        password: None,
                    },
                )
                .await?
                .id
            }
        };
        let _forget = self.forget_identities_after();
        self.store
            .create_api_key(
                &actor,
                admin,
                key_id,
                &key_name,
                &self.key.hash(&secret),
                None,
                MAX_LIVE_KEYS,
            )
            .await?;
        Ok(true)
    }
}

/// The throttle's key for an address: IPv4 as it is, IPv6 by its /64 (one host usually
/// holds a whole /64 and could rotate within it).
fn address_key(addr: Option<IpAddr>) -> String {
    match addr {
        Some(IpAddr::V6(v6)) => {
            let s = v6.segments();
            format!("addr:{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
        Some(v4) => format!("addr:{v4}"),
        None => "addr:".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_keys_parse_back_into_id_and_secret() {
        let id = Uuid::new_v4();
        let secret = generate_secret();
        let token = format_key(id, &secret);
        assert_eq!(parse_key(&token), Some((id, secret.as_str())));
        for bad in [
            "",
            "fk_",
            "fk_xyz_abc",
            &token[..token.len() - secret.len() - 1],
            "ab:cd",
        ] {
            assert!(parse_key(bad).is_none_or(|(_, s)| s.is_empty()), "{bad}");
        }
    }

    #[test]
    fn a_huge_login_name_costs_the_throttle_no_more_than_a_real_one() {
        let [name, _] = LoginThrottle::keys(&"x".repeat(1 << 20), None);
        assert!(name.len() <= "name:".len() + MAX_NAME + 1, "{}", name.len());
    }

    #[test]
    fn throttle_counts_failures_per_name_and_per_address() {
        let t = LoginThrottle::new(Duration::from_secs(60), 3, 5);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        for _ in 0..3 {
            assert!(t.begin("alice", Some(a)).is_ok());
        }
        // The name is locked from any address, whatever the case it is typed in.
        assert!(t.begin("ALICE", Some(b)).is_err());
        // Another name from the first address is still allowed, until the address's limit.
        assert!(t.begin("bob", Some(a)).is_ok());
        assert!(t.begin("carol", Some(a)).is_ok());
        assert!(t.begin("dave", Some(a)).is_err());
        assert!(t.begin("dave", Some(b)).is_ok());
    }

    #[test]
    fn a_successful_attempt_is_taken_back() {
        let t = LoginThrottle::new(Duration::from_secs(60), 2, 2);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        for _ in 0..5 {
            let at = t.begin("alice", Some(a)).unwrap();
            t.succeed("alice", Some(a), at);
        }
        assert!(t.begin("alice", Some(a)).is_ok());
    }

    fn session(last_seen_ms: i64, expires_at_ms: i64) -> SessionAuthRow {
        SessionAuthRow {
            session_id: Uuid::nil(),
            technician_id: Uuid::nil(),
            technician_name: "t".into(),
            role: Role::Guest,
            technician_enabled: true,
            secret_hash: Vec::new(),
            last_seen_ms,
            expires_at_ms,
            revoked: false,
        }
    }

    #[test]
    fn a_session_idle_longer_than_the_timeout_has_ended() {
        let idle = 30 * 60_000;
        let row = session(0, 12 * 3_600_000);
        assert!(session_live(&row, 0, idle, idle));
        assert!(!session_live(&row, 0, idle + 1, idle));
        // Activity the hub noted in memory (not yet flushed) counts.
        assert!(session_live(&row, idle, 2 * idle, idle));
    }

    #[test]
    fn a_session_ends_at_its_absolute_end_however_active() {
        let row = session(0, 1_000);
        assert!(session_live(&row, 999, 999, 60_000));
        assert!(!session_live(&row, 1_000, 1_000, 60_000));
    }

    #[test]
    fn a_revoked_session_or_a_disabled_technicians_session_is_over() {
        let mut row = session(0, 1_000);
        row.revoked = true;
        assert!(!session_live(&row, 0, 0, 60_000));
        let mut row = session(0, 1_000);
        row.technician_enabled = false;
        assert!(!session_live(&row, 0, 0, 60_000));
    }

    #[test]
    fn passwords_verify_only_against_their_own_hash() {
        let h = hash_password_blocking("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password_blocking("correct horse battery", &h));
        assert!(!verify_password_blocking("correct horse batterY", &h));
        assert!(!verify_password_blocking("x", "not a phc string"));
    }
}
