//! Endpoints: enrolment secrets, enrolment, devices and their credentials, collections and
//! deployments.

use std::net::IpAddr;

use ferry_proto::ErrorCode;
use ferry_proto::agent::{EnrollRequest, EnrollResponse, Inventory, Policy, TokenResponse};
use ferry_proto::identity::Via;
use ferry_proto::ops::{
    Collection, CreatedEnrollmentSecret, Deployment, Detection, Device, EnrollmentSecret,
    ImportDevices, ImportedDevice, MembershipChange, NewCollection, NewDeployment,
    NewEnrollmentSecret, UpdateDevice,
};
use uuid::Uuid;

use crate::AppState;
use crate::collections;
use crate::error::{Error, Result};
use crate::secrets::generate_secret;
use crate::store::Actor;
use crate::time_util::now_ms;

/// Longest name of a secret or collection.
const MAX_NAME: usize = 200;
/// Longest inventory string field, and most addresses kept.
const MAX_FIELD: usize = 255;
const MAX_IPS: usize = 64;
const MAX_USERS: usize = 64;
/// Most devices one import takes.
pub const MAX_IMPORT_DEVICES: usize = 20_000;
/// Longest detection path or script.
const MAX_DETECTION_BYTES: usize = 256 * 1024;

/// A device that proved who it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceCaller {
    pub id: Uuid,
    /// The stored hash the token matched (a session re-checks it once registered, in case
    /// the token was rotated or the device disabled meanwhile).
    pub token_hash: Vec<u8>,
}

pub fn validate_inventory(inv: &Inventory) -> Result<()> {
    let fields = [
        ("hostname", inv.hostname.as_str()),
        ("os_name", inv.os_name.as_str()),
        ("os_version", inv.os_version.as_str()),
        ("domain", inv.domain.as_deref().unwrap_or("")),
        ("arch", inv.arch.as_str()),
        ("agent_version", inv.agent_version.as_str()),
    ];
    for (name, value) in fields {
        if value.chars().count() > MAX_FIELD || value.chars().any(char::is_control) {
            return Err(Error::bad(
                ErrorCode::InvalidInventory,
                format!(
                    "inventory field `{name}` must be at most {MAX_FIELD} printable characters"
                ),
            ));
        }
    }
    if inv.hostname.trim().is_empty() {
        return Err(Error::bad(
            ErrorCode::InvalidInventory,
            "inventory `hostname` is empty",
        ));
    }
    if inv.users.len() > MAX_USERS
        || inv.users.iter().any(|u| {
            u.trim().is_empty() || u.chars().count() > MAX_FIELD || u.chars().any(char::is_control)
        })
    {
        return Err(Error::bad(
            ErrorCode::InvalidInventory,
            format!(
                "inventory `users` must be at most {MAX_USERS} names of at most {MAX_FIELD} printable characters"
            ),
        ));
    }
    if inv.ips.len() > MAX_IPS
        || inv
            .ips
            .iter()
            .any(|ip| ip.parse::<std::net::IpAddr>().is_err())
    {
        return Err(Error::bad(
            ErrorCode::InvalidInventory,
            format!("inventory `ips` must be at most {MAX_IPS} IP addresses"),
        ));
    }
    Ok(())
}

pub(crate) fn check_no_nul(field: &str, s: &str) -> Result<()> {
    // A NUL cannot travel in a process argument or a file name; refuse it up front.
    if s.contains('\0') {
        return Err(Error::bad(
            ErrorCode::InvalidOperation,
            format!("`{field}` contains a NUL character"),
        ));
    }
    Ok(())
}

pub(crate) fn check_detection(d: &Detection) -> Result<()> {
    match d {
        Detection::MsiProductCode(code) => {
            let inner = code.strip_prefix('{').and_then(|c| c.strip_suffix('}'));
            if inner.and_then(|g| Uuid::parse_str(g).ok()).is_none() || code.len() != 38 {
                return Err(Error::bad(
                    ErrorCode::InvalidDetection,
                    "an MSI product code is a GUID in braces, e.g. {12345678-1234-1234-1234-123456789012}",
                ));
            }
        }
        Detection::File(path) | Detection::Script(path) => {
            if path.trim().is_empty() || path.len() > MAX_DETECTION_BYTES {
                return Err(Error::bad(
                    ErrorCode::InvalidDetection,
                    "a file or script detection must be non-empty and at most 256 KiB",
                ));
            }
            check_no_nul("detection", path)?;
        }
    }
    Ok(())
}

impl AppState {
    /// Whether reported changes to rule-matched inventory fields count at once.
    pub fn trusts_inventory(&self) -> bool {
        self.config.inventory_changes == crate::config::InventoryChanges::Trust
    }

    /// Accepts a device's reported rule-matched fields (hostname, domain, OS, version,
    /// architecture): rule collections match them from now on. With `expected` (what the
    /// administrator saw), a device that reported something else meanwhile is refused (409),
    /// so an approval never covers a change nobody looked at.
    pub async fn approve_inventory(
        &self,
        actor: &Actor,
        id: Uuid,
        expected: Option<&ferry_proto::ops::RuleFacts>,
    ) -> Result<Device> {
        let device = self
            .store
            .get_device(id)
            .await?
            .ok_or(Error::NotFound("device"))?;
        let reported = ferry_proto::ops::RuleFacts::of(&device.inventory);
        if let Some(expected) = expected
            && *expected != reported
        {
            return Err(Error::conflict(
                ErrorCode::InventoryChanged,
                "the device reported other values since: look again before approving",
            ));
        }
        self.store
            .approve_inventory(actor, id, &reported)
            .await?
            .ok_or(Error::NotFound("device"))
    }

    // ----- enrolment secrets ----------------------------------------------------------

    pub async fn create_enrollment_secret(
        &self,
        actor: &Actor,
        new: &NewEnrollmentSecret,
    ) -> Result<CreatedEnrollmentSecret> {
        super::check_name("name", &new.name, MAX_NAME)?;
        let expires_at = match new.expires_in_secs {
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
        if new.max_uses == Some(0) {
            return Err(Error::bad(
                ErrorCode::InvalidMaxUses,
                "`max_uses` must be at least 1",
            ));
        }
        let id = Uuid::new_v4();
        let secret = generate_secret();
        let info = self
            .store
            .create_enrollment_secret(
                actor,
                id,
                new.name.trim(),
                &self.key.hash(&secret),
                expires_at,
                new.max_uses,
            )
            .await?;
        Ok(CreatedEnrollmentSecret {
            info,
            secret: format!("{id}:{secret}"),
        })
    }

    pub async fn enrollment_secrets(&self) -> Result<Vec<EnrollmentSecret>> {
        Ok(self.store.list_enrollment_secrets().await?)
    }

    pub async fn revoke_enrollment_secret(
        &self,
        actor: &Actor,
        id: Uuid,
    ) -> Result<EnrollmentSecret> {
        self.store
            .revoke_enrollment_secret(actor, id)
            .await?
            .ok_or(Error::NotFound("enrolment secret"))
    }

    // ----- enrolment and device credentials -------------------------------------------

    /// An enrolment secret buys a device token (shown once; the hub keeps its keyed hash).
    pub async fn enroll(
        &self,
        req: &EnrollRequest,
        addr: Option<IpAddr>,
    ) -> Result<EnrollResponse> {
        validate_inventory(&req.inventory)?;
        const INVALID: Error = Error::Unauthorized("invalid enrolment secret");
        let (id, secret) = req.secret.trim().split_once(':').ok_or(INVALID)?;
        let secret_id = Uuid::parse_str(id).map_err(|_| INVALID)?;
        let hash = self
            .store
            .enrollment_secret_hash(secret_id)
            .await?
            .ok_or(INVALID)?;
        if !self.key.verify(secret, &hash) {
            return Err(INVALID);
        }
        let device_id = Uuid::new_v4();
        let token_secret = generate_secret();
        let actor = Actor::device(device_id, Via::EnrollmentSecret(secret_id), addr);
        let device = self
            .store
            .enroll_device(
                &actor,
                secret_id,
                device_id,
                &self.key.hash(&token_secret),
                &req.inventory,
            )
            .await?;
        tracing::info!(device = %device.id, hostname = %device.inventory.hostname, "device enrolled");
        Ok(EnrollResponse {
            device_id,
            token: format!("{device_id}:{token_secret}"),
        })
    }

    /// The device behind `<device id>:<secret>` (the current token, or the first use of a
    /// token it asked for, which then becomes its only one): 401, then 403 if disabled.
    pub async fn authenticate_device(&self, credential: &str) -> Result<DeviceCaller> {
        const INVALID: Error = Error::Unauthorized("invalid device token");
        let (id, secret) = credential.split_once(':').ok_or(Error::Unauthorized(
            "device tokens have the form <device id>:<secret>",
        ))?;
        let id = Uuid::parse_str(id).map_err(|_| INVALID)?;
        let row = match self.agents.cached_auth(id) {
            (Some(row), _) => row,
            (None, generation) => {
                let row = self.store.device_auth(id).await?.ok_or(INVALID)?;
                self.agents.cache_auth(id, row.clone(), generation);
                row
            }
        };
        let token_hash = if self.key.verify(secret, &row.token_hash) {
            row.token_hash
        } else if let Some(pending) = row
            .pending_token_hash
            .filter(|p| self.key.verify(secret, p))
        {
            // First use of a token the device asked for: it becomes the only one, and the
            // session still holding the old one is closed (the agent reconnects with the new).
            if !self.store.promote_pending_token(id, &pending).await? {
                return Err(INVALID);
            }
            self.agents.revoke(id);
            pending
        } else {
            return Err(INVALID);
        };
        if !row.enabled {
            return Err(Error::forbidden("this device is disabled"));
        }
        Ok(DeviceCaller { id, token_hash })
    }

    /// The agent asks for a new token. The old one keeps working until the new one is first
    /// used, so an answer lost on the way cannot lock the device out (it asks again); from
    /// that first use on, only the new one works.
    pub async fn request_device_token(&self, actor: &Actor, device: Uuid) -> Result<TokenResponse> {
        let secret = generate_secret();
        if !self
            .store
            .set_pending_token(actor, device, &self.key.hash(&secret))
            .await?
        {
            return Err(Error::NotFound("device"));
        }
        self.agents.forget_auth(device);
        Ok(TokenResponse {
            token: format!("{device}:{secret}"),
        })
    }

    /// The deployments assigned to the device's collections.
    pub async fn policy(&self, device: Uuid) -> Result<Policy> {
        Ok(Policy {
            deployments: self.store.policy(device).await?,
        })
    }

    // ----- devices --------------------------------------------------------------------

    fn device_with_presence(&self, mut d: Device) -> Device {
        d.online = self.agents.is_online(d.id);
        if d.online {
            d.last_seen = Some(time::OffsetDateTime::now_utc());
        }
        d
    }

    pub async fn devices(&self, collection: Option<Uuid>) -> Result<Vec<Device>> {
        if let Some(c) = collection
            && self.store.get_collection(c).await?.is_none()
        {
            return Err(Error::NotFound("collection"));
        }
        let devices = self.store.list_devices(collection).await?;
        Ok(devices
            .into_iter()
            .map(|d| self.device_with_presence(d))
            .collect())
    }

    pub async fn device(&self, id: Uuid) -> Result<Device> {
        let device = self
            .store
            .get_device(id)
            .await?
            .ok_or(Error::NotFound("device"))?;
        Ok(self.device_with_presence(device))
    }

    /// Enables or disables a device (a disabled device's session is closed and its token
    /// refused until it is enabled again).
    pub async fn update_device(
        &self,
        actor: &Actor,
        id: Uuid,
        patch: &UpdateDevice,
    ) -> Result<Device> {
        if let Some(enabled) = patch.enabled {
            if !self.store.set_device_enabled(actor, id, enabled).await? {
                return Err(Error::NotFound("device"));
            }
            self.agents.forget_auth(id);
            if !enabled {
                self.agents.revoke(id);
            }
        }
        self.device(id).await
    }

    /// A new token for a device whose token may have leaked. The old one stops working at
    /// once; the new one must be installed on the device.
    pub async fn rotate_device_token(&self, actor: &Actor, id: Uuid) -> Result<TokenResponse> {
        let secret = generate_secret();
        if !self
            .store
            .set_device_token(actor, id, &self.key.hash(&secret))
            .await?
        {
            return Err(Error::NotFound("device"));
        }
        self.agents.revoke(id);
        Ok(TokenResponse {
            token: format!("{id}:{secret}"),
        })
    }

    /// Pre-registers devices; each token is in the answer and nowhere else.
    pub async fn import_devices(
        &self,
        actor: &Actor,
        req: &ImportDevices,
    ) -> Result<Vec<ImportedDevice>> {
        if req.devices.is_empty() || req.devices.len() > MAX_IMPORT_DEVICES {
            return Err(Error::bad(
                ErrorCode::InvalidField,
                format!("`devices` must hold 1 to {MAX_IMPORT_DEVICES} inventories"),
            ));
        }
        for (i, inv) in req.devices.iter().enumerate() {
            validate_inventory(inv).map_err(|e| match e {
                Error::BadRequest { code, message } => Error::BadRequest {
                    code,
                    message: format!("devices[{i}]: {message}"),
                },
                other => other,
            })?;
        }
        let mut rows = Vec::with_capacity(req.devices.len());
        let mut answer = Vec::with_capacity(req.devices.len());
        for inv in &req.devices {
            let id = Uuid::new_v4();
            let secret = generate_secret();
            rows.push((id, self.key.hash(&secret), inv.clone()));
            answer.push(ImportedDevice {
                device_id: id,
                token: format!("{id}:{secret}"),
            });
        }
        self.store.import_devices(actor, &rows).await?;
        tracing::info!(count = rows.len(), "devices imported");
        Ok(answer)
    }

    // ----- collections ----------------------------------------------------------------

    pub async fn create_collection(
        &self,
        actor: &Actor,
        new: &NewCollection,
    ) -> Result<Collection> {
        super::check_name("name", &new.name, MAX_NAME)?;
        if let Some(rule) = &new.rule {
            collections::validate(rule)
                .map_err(|e| Error::bad(ErrorCode::InvalidRule, e.to_string()))?;
            if !new.devices.is_empty() {
                return Err(Error::bad(
                    ErrorCode::InvalidCollection,
                    "a collection has either a rule or a list of devices, not both",
                ));
            }
        }
        Ok(self
            .store
            .create_collection(
                actor,
                Uuid::new_v4(),
                new.name.trim(),
                new.rule.as_ref(),
                &new.devices,
            )
            .await?)
    }

    pub async fn collections(&self) -> Result<Vec<Collection>> {
        Ok(self.store.list_collections().await?)
    }

    pub async fn collection(&self, id: Uuid) -> Result<Collection> {
        self.store
            .get_collection(id)
            .await?
            .ok_or(Error::NotFound("collection"))
    }

    pub async fn delete_collection(&self, actor: &Actor, id: Uuid) -> Result<()> {
        if self.store.delete_collection(actor, id).await? {
            Ok(())
        } else {
            Err(Error::NotFound("collection"))
        }
    }

    pub async fn change_members(
        &self,
        actor: &Actor,
        id: Uuid,
        change: &MembershipChange,
    ) -> Result<Collection> {
        Ok(self
            .store
            .change_members(actor, id, &change.add, &change.remove)
            .await?)
    }

    // ----- deployments ----------------------------------------------------------------

    pub async fn create_deployment(
        &self,
        actor: &Actor,
        new: &NewDeployment,
    ) -> Result<Deployment> {
        check_detection(&new.detection)?;
        Ok(self
            .store
            .create_deployment(actor, Uuid::new_v4(), new)
            .await?)
    }

    pub async fn deployments(&self) -> Result<Vec<Deployment>> {
        Ok(self.store.list_deployments().await?)
    }

    pub async fn delete_deployment(&self, actor: &Actor, id: Uuid) -> Result<()> {
        if self.store.delete_deployment(actor, id).await? {
            Ok(())
        } else {
            Err(Error::NotFound("deployment"))
        }
    }
}
