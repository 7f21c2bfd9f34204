//! Connectors: registration, site settings, secrets, health.

use ferry_proto::ErrorCode;
use ferry_proto::connector::{
    Connector, ConnectorCredentials, NewConnector, SiteSettings, UpdateConnector,
};
use uuid::Uuid;

use crate::AppState;
use crate::error::{Error, Result};
use crate::secrets::generate_secret;
use crate::store::{Actor, JobError};
use crate::time_util::{from_ms, now_ms, to_ms};

const MAX_NAME: usize = 128;
const MAX_SETTING: usize = 1024;

fn validate_name(name: &str) -> Result<()> {
    let trimmed = name.trim();
    if trimmed.is_empty() || trimmed.len() != name.len() {
        return Err(Error::bad(
            ErrorCode::InvalidField,
            "`name` must be non-empty with no leading or trailing spaces",
        ));
    }
    if name.chars().count() > MAX_NAME || name.chars().any(char::is_control) {
        return Err(Error::bad(
            ErrorCode::InvalidField,
            format!("`name` must be at most {MAX_NAME} characters with no control characters"),
        ));
    }
    Ok(())
}

fn validate_site(site: &SiteSettings) -> Result<()> {
    let fields = [
        ("site.site_code", &site.site_code),
        ("site.console_path", &site.console_path),
        ("site.share_path", &site.share_path),
        (
            "site.distribution_point_group",
            &site.distribution_point_group,
        ),
        ("site.collection", &site.collection),
        ("site.folder", &site.folder),
    ];
    for (field, value) in fields {
        if let Some(v) = value
            && (v.chars().count() > MAX_SETTING || v.chars().any(char::is_control))
        {
            return Err(Error::bad(
                ErrorCode::InvalidField,
                format!(
                    "`{field}` must be at most {MAX_SETTING} characters with no control characters"
                ),
            ));
        }
    }
    if let Some(code) = &site.site_code {
        // ConfigMgr site codes are three letters or digits.
        if code.len() != 3 || !code.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(Error::bad(
                ErrorCode::InvalidField,
                "`site.site_code` must be three letters or digits, e.g. DEM",
            ));
        }
    }
    Ok(())
}

fn not_found(e: JobError) -> Error {
    match e {
        JobError::NotFound => Error::NotFound("connector"),
        other => other.into(),
    }
}

impl AppState {
    /// Registers a connector; its secret is in the answer and nowhere else.
    pub async fn register_connector(
        &self,
        actor: &Actor,
        req: &NewConnector,
    ) -> Result<ConnectorCredentials> {
        validate_name(&req.name)?;
        validate_site(&req.site)?;
        let id = Uuid::new_v4();
        let secret = generate_secret();
        self.store
            .create_connector(actor, id, &req.name, &self.key.hash(&secret), &req.site)
            .await?;
        tracing::info!(connector = %id, name = %req.name, "connector registered");
        Ok(ConnectorCredentials {
            remote_id: id,
            secret,
        })
    }

    pub async fn connectors(&self) -> Result<Vec<Connector>> {
        let list = self.store.list_connectors().await?;
        Ok(list
            .into_iter()
            .map(|c| self.connector_with_presence(c))
            .collect())
    }

    pub async fn connector(&self, id: Uuid) -> Result<Connector> {
        self.store
            .get_connector(id)
            .await?
            .map(|c| self.connector_with_presence(c))
            .ok_or(Error::NotFound("connector"))
    }

    pub async fn update_connector(
        &self,
        actor: &Actor,
        id: Uuid,
        req: &UpdateConnector,
    ) -> Result<Connector> {
        if let Some(name) = &req.name {
            validate_name(name)?;
        }
        if let Some(site) = &req.site {
            let mut probe = SiteSettings::default();
            probe.apply(site);
            validate_site(&probe)?;
        }
        let connector = {
            let _forget = self.forget_connector_after(id);
            self.store
                .update_connector(actor, id, req)
                .await
                .map_err(not_found)?
        };
        // Wake its waiting long poll: a disabled connector gets its 403 at once rather than at
        // the end of its hold, and a re-enabled one looks for jobs again.
        self.waiters.wake(id);
        Ok(self.connector_with_presence(connector))
    }

    /// A new secret; the old one stops working at once.
    pub async fn rotate_connector_secret(
        &self,
        actor: &Actor,
        id: Uuid,
    ) -> Result<ConnectorCredentials> {
        let secret = generate_secret();
        {
            let _forget = self.forget_connector_after(id);
            self.store
                .set_connector_secret(actor, id, &self.key.hash(&secret))
                .await
                .map_err(not_found)?;
        }
        // A long poll held with the old secret ends now rather than at its deadline.
        self.waiters.wake(id);
        tracing::info!(connector = %id, "connector secret rotated");
        Ok(ConnectorCredentials {
            remote_id: id,
            secret,
        })
    }

    /// The store's `last_seen_at` lags by up to the presence flush interval; the hub's
    /// memory does not.
    fn connector_with_presence(&self, mut connector: Connector) -> Connector {
        if let Some(at) = self.presence.latest(connector.id) {
            connector.last_seen_at = Some(from_ms(at));
        }
        let window_ms = (i64::from(self.config.max_hold_secs) + 30) * 1000;
        connector.online = connector
            .last_seen_at
            .is_some_and(|t| now_ms() - to_ms(t) <= window_ms);
        connector
    }
}

/// Connector credential hashes by ID, so that a long poll does not read the database to
/// authenticate. The generation counter closes a race: a request that read the row just
/// before an administrator rotated the secret must not put the old hash back into the cache
/// after [`AppState::forget_connector`] removed it.
#[derive(Default)]
pub struct ConnectorAuthCache {
    rows: std::collections::HashMap<Uuid, (crate::store::ConnectorAuthRow, std::time::Instant)>,
    generation: u64,
}

impl AppState {
    /// The connector behind `<remote id>:<secret>`: 401 for wrong credentials, then 403 if
    /// it is disabled (so a disabled connector's existence is revealed only to its secret's
    /// holder). Every long poll authenticates: this is a keyed hash and a cache, never argon2.
    pub async fn authenticate_connector(&self, credential: &str) -> Result<Uuid> {
        const INVALID: Error = Error::Unauthorized("invalid connector credentials");
        let (id, secret) = credential.split_once(':').ok_or(Error::Unauthorized(
            "connector credentials must be <remote id>:<secret>",
        ))?;
        let id = Uuid::parse_str(id).map_err(|_| INVALID)?;
        let row = self.connector_auth_row(id).await?.ok_or(INVALID)?;
        if !self.key.verify(secret, &row.secret_hash) {
            return Err(INVALID);
        }
        if !row.enabled {
            return Err(Error::forbidden("this connector is disabled"));
        }
        self.presence.note(id, now_ms());
        Ok(id)
    }

    /// The connector's credential row, from the cache or the store.
    pub async fn connector_auth_row(
        &self,
        id: Uuid,
    ) -> Result<Option<crate::store::ConnectorAuthRow>> {
        let generation = {
            let cache = self
                .connector_auth
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            // Fresh rows only: the TTL bounds staleness should an invalidation ever be missed.
            if let Some((row, at)) = cache.rows.get(&id)
                && at.elapsed() < crate::service::identity::CACHE_TTL
            {
                return Ok(Some(row.clone()));
            }
            cache.generation
        };
        let row = self.store.connector_auth(id).await?;
        if let Some(row) = &row {
            let mut cache = self
                .connector_auth
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if cache.generation == generation {
                cache
                    .rows
                    .insert(id, (row.clone(), std::time::Instant::now()));
            }
        }
        Ok(row)
    }

    /// A guard that forgets the connector's cached credentials when it goes, however the
    /// change it guards ends: arm it just before the store call.
    fn forget_connector_after(&self, id: Uuid) -> crate::service::OnDrop<impl FnOnce() + '_> {
        crate::service::OnDrop::new(move || self.forget_connector(id))
    }

    /// Forgets a connector's cached credentials; call after (not before) any change to its
    /// secret or state is committed.
    pub fn forget_connector(&self, id: Uuid) {
        let mut cache = self
            .connector_auth
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        cache.generation += 1;
        cache.rows.remove(&id);
    }
}
