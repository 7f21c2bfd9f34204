//! Enrolment secrets, devices, collections and deployments.

use async_trait::async_trait;
use ferry_proto::agent::Inventory;
use ferry_proto::ops::{
    Collection, CollectionRule, Deployment, DeploymentAction, Detection, Device, EnrollmentSecret,
    NewDeployment, PolicyDeployment, RuleFacts,
};
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, Sqlite, Transaction};
use uuid::Uuid;

use super::packages::package_ref_from_row;
use super::{SqliteStore, audit, corrupt, parse_uuid, to_json};
use crate::collections;
use crate::store::{Actor, CatalogError, DeviceAuthRow, DeviceStore, EnrollError, StoreError};
use crate::time_util::{from_ms, now_ms};

/// `SELECT <device columns> FROM devices <rest>`, as a literal (sqlx refuses dynamic SQL).
macro_rules! select_devices {
    ($rest:literal) => {
        concat!(
            "SELECT id, enabled, hostname, os_name, os_version, domain, arch, agent_version, ips, \
             users, enrolled_at, last_seen, remote_addr, vouched FROM devices ",
            $rest
        )
    };
}

fn device_from_row(row: &SqliteRow) -> Result<Device, StoreError> {
    let ips: Vec<String> = serde_json::from_str(row.get::<&str, _>("ips"))
        .map_err(|e| corrupt(format!("device ips: {e}")))?;
    Ok(Device {
        id: parse_uuid(row.get("id"))?,
        inventory: Inventory {
            hostname: row.get("hostname"),
            os_name: row.get("os_name"),
            os_version: row.get("os_version"),
            domain: row.get("domain"),
            arch: row.get("arch"),
            agent_version: row.get("agent_version"),
            ips,
            users: serde_json::from_str(row.get::<&str, _>("users"))
                .map_err(|e| corrupt(format!("device users: {e}")))?,
        },
        enabled: row.get::<i64, _>("enabled") != 0,
        online: false,
        last_seen: row.get::<Option<i64>, _>("last_seen").map(from_ms),
        remote_addr: row.get("remote_addr"),
        enrolled_at: from_ms(row.get("enrolled_at")),
        collections: Vec::new(),
        approved: None,
    })
    .and_then(|mut d| {
        let vouched = vouched_from_row(row)?;
        if let Some(v) = vouched.filter(|v| *v != RuleFacts::of(&d.inventory)) {
            d.approved = Some(v);
        }
        Ok(d)
    })
}

/// The rule-matched fields the hub vouches for (`None` for a row written before they were
/// kept: then the reported ones count).
fn vouched_from_row(row: &SqliteRow) -> Result<Option<RuleFacts>, StoreError> {
    row.get::<Option<&str>, _>("vouched")
        .map(|v| serde_json::from_str(v).map_err(|e| corrupt(format!("device vouched: {e}"))))
        .transpose()
}

/// What rule collections match for a device: its inventory with the vouched fields.
pub(crate) fn matched_inventory(device: &Device) -> Inventory {
    match &device.approved {
        Some(facts) => facts.over(&device.inventory),
        None => device.inventory.clone(),
    }
}

fn secret_from_row(row: &SqliteRow) -> Result<EnrollmentSecret, StoreError> {
    Ok(EnrollmentSecret {
        id: parse_uuid(row.get("id"))?,
        name: row.get("name"),
        created_at: from_ms(row.get("created_at")),
        expires_at: row.get::<Option<i64>, _>("expires_at").map(from_ms),
        max_uses: row.get::<Option<i64>, _>("max_uses").map(|n| n as u32),
        uses: row.get::<i64, _>("uses") as u32,
        revoked: row.get::<i64, _>("revoked") != 0,
    })
}

fn collection_from_row(row: &SqliteRow) -> Result<Collection, StoreError> {
    let rule = match row.get::<Option<&str>, _>("rule") {
        Some(json) => Some(
            serde_json::from_str::<CollectionRule>(json)
                .map_err(|e| corrupt(format!("collection rule: {e}")))?,
        ),
        None => None,
    };
    Ok(Collection {
        id: parse_uuid(row.get("id"))?,
        name: row.get("name"),
        rule,
        member_count: row.get::<i64, _>("member_count") as u64,
        created_at: from_ms(row.get("created_at")),
    })
}

fn deployment_from_row(row: &SqliteRow) -> Result<Deployment, StoreError> {
    Ok(Deployment {
        id: parse_uuid(row.get("id"))?,
        package_id: parse_uuid(row.get("package_id"))?,
        collection_id: parse_uuid(row.get("collection_id"))?,
        action: parse_action(row.get("action"))?,
        detection: serde_json::from_str(row.get::<&str, _>("detection"))
            .map_err(|e| corrupt(format!("deployment detection: {e}")))?,
        created_at: from_ms(row.get("created_at")),
    })
}

fn parse_action(s: &str) -> Result<DeploymentAction, StoreError> {
    match s {
        "install" => Ok(DeploymentAction::Install),
        "uninstall" => Ok(DeploymentAction::Uninstall),
        other => Err(corrupt(format!("deployment action {other:?}"))),
    }
}

fn action_str(a: DeploymentAction) -> &'static str {
    match a {
        DeploymentAction::Install => "install",
        DeploymentAction::Uninstall => "uninstall",
    }
}

impl SqliteStore {
    /// Runs one change of the row `id` and, if it touched a row, its audit entry, in one
    /// transaction. Returns whether a row was touched.
    async fn audited(
        &self,
        query: sqlx::query::Query<'_, Sqlite, sqlx::sqlite::SqliteArguments>,
        actor: &Actor,
        action: &str,
        id: Uuid,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin().await?;
        let n = query.execute(&mut *tx).await?.rows_affected();
        if n > 0 {
            audit(&mut tx, actor, action, Some(&id.to_string()), None).await?;
        }
        tx.commit().await?;
        Ok(n > 0)
    }
}

#[async_trait]
impl DeviceStore for SqliteStore {
    // ----- enrolment secrets --------------------------------------------------------------

    async fn create_enrollment_secret(
        &self,
        actor: &Actor,
        id: Uuid,
        name: &str,
        hash: &[u8],
        expires_at: Option<i64>,
        max_uses: Option<u32>,
    ) -> Result<EnrollmentSecret, StoreError> {
        let mut tx = self.begin().await?;
        let row = sqlx::query(
            "INSERT INTO enrollment_secrets (id, name, secret_hash, created_at, expires_at, max_uses) \
             VALUES (?, ?, ?, ?, ?, ?) RETURNING *",
        )
        .bind(id.to_string())
        .bind(name)
        .bind(hash)
        .bind(now_ms())
        .bind(expires_at)
        .bind(max_uses.map(i64::from))
        .fetch_one(&mut *tx)
        .await?;
        audit(
            &mut tx,
            actor,
            "enrollment_secret.create",
            Some(&id.to_string()),
            Some(name),
        )
        .await?;
        tx.commit().await?;
        secret_from_row(&row)
    }

    async fn list_enrollment_secrets(&self) -> Result<Vec<EnrollmentSecret>, StoreError> {
        let rows = sqlx::query("SELECT * FROM enrollment_secrets ORDER BY created_at")
            .fetch_all(&self.read)
            .await?;
        rows.iter().map(secret_from_row).collect()
    }

    async fn revoke_enrollment_secret(
        &self,
        actor: &Actor,
        id: Uuid,
    ) -> Result<Option<EnrollmentSecret>, StoreError> {
        let mut tx = self.begin().await?;
        let row = sqlx::query("UPDATE enrollment_secrets SET revoked = 1 WHERE id = ? RETURNING *")
            .bind(id.to_string())
            .fetch_optional(&mut *tx)
            .await?;
        if row.is_some() {
            audit(
                &mut tx,
                actor,
                "enrollment_secret.revoke",
                Some(&id.to_string()),
                None,
            )
            .await?;
        }
        tx.commit().await?;
        row.as_ref().map(secret_from_row).transpose()
    }

    async fn enrollment_secret_hash(&self, id: Uuid) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT secret_hash FROM enrollment_secrets WHERE id = ?")
                .bind(id.to_string())
                .fetch_optional(&self.read)
                .await?,
        )
    }

    async fn enroll_device(
        &self,
        actor: &Actor,
        secret_id: Uuid,
        device_id: Uuid,
        token_hash: &[u8],
        inv: &Inventory,
    ) -> Result<Device, EnrollError> {
        let now = now_ms();
        let mut tx = self.begin().await?;
        let used = sqlx::query(
            "UPDATE enrollment_secrets SET uses = uses + 1 WHERE id = ? AND revoked = 0 \
             AND (expires_at IS NULL OR expires_at > ?) AND (max_uses IS NULL OR uses < max_uses)",
        )
        .bind(secret_id.to_string())
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if used == 0 {
            let row = sqlx::query(
                "SELECT revoked, expires_at, max_uses, uses FROM enrollment_secrets WHERE id = ?",
            )
            .bind(secret_id.to_string())
            .fetch_optional(&mut *tx)
            .await?;
            return Err(match row {
                Some(r) if r.get::<i64, _>("revoked") != 0 => EnrollError::Revoked,
                Some(r)
                    if r.get::<Option<i64>, _>("expires_at")
                        .is_some_and(|e| e <= now) =>
                {
                    EnrollError::Expired
                }
                _ => EnrollError::UsedUp,
            });
        }
        let ips = to_json(&inv.ips)?;
        sqlx::query(
            "INSERT INTO devices (id, token_hash, hostname, os_name, os_version, domain, arch, \
             agent_version, ips, enrolled_at, enrolled_with, remote_addr, vouched) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(device_id.to_string())
        .bind(token_hash)
        .bind(&inv.hostname)
        .bind(&inv.os_name)
        .bind(&inv.os_version)
        .bind(&inv.domain)
        .bind(&inv.arch)
        .bind(&inv.agent_version)
        .bind(ips)
        .bind(now)
        .bind(secret_id.to_string())
        .bind(actor.address.map(|a| a.to_string()))
        .bind(to_json(&RuleFacts::of(inv))?)
        .execute(&mut *tx)
        .await?;
        sync_rule_memberships(&mut tx, device_id, inv).await?;
        audit(
            &mut tx,
            actor,
            "device.enroll",
            Some(&device_id.to_string()),
            Some(&format!("hostname={} secret={secret_id}", inv.hostname)),
        )
        .await?;
        tx.commit().await?;
        Ok(self
            .get_device(device_id)
            .await?
            .ok_or_else(|| corrupt("enrolled device vanished"))?)
    }

    // ----- devices ------------------------------------------------------------------------

    async fn approve_inventory(
        &self,
        actor: &Actor,
        id: Uuid,
        facts: &RuleFacts,
    ) -> Result<Option<Device>, StoreError> {
        let mut tx = self.begin().await?;
        let Some(row) = sqlx::query(select_devices!("WHERE id = ?"))
            .bind(id.to_string())
            .fetch_optional(&mut *tx)
            .await?
        else {
            return Ok(None);
        };
        let device = device_from_row(&row)?;
        // Exactly the facts approved, even if the device reported others since.
        sqlx::query("UPDATE devices SET vouched = ? WHERE id = ?")
            .bind(to_json(facts)?)
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        sync_rule_memberships(&mut tx, id, &facts.over(&device.inventory)).await?;
        audit(
            &mut tx,
            actor,
            "device.approve_inventory",
            Some(&id.to_string()),
            Some(&format!(
                "hostname={} domain={} os={} {} arch={}",
                facts.hostname,
                facts.domain.as_deref().unwrap_or("-"),
                facts.os_name,
                facts.os_version,
                facts.arch
            )),
        )
        .await?;
        tx.commit().await?;
        self.get_device(id).await
    }

    async fn device_auth(&self, id: Uuid) -> Result<Option<DeviceAuthRow>, StoreError> {
        let row =
            sqlx::query("SELECT token_hash, enabled, pending_token_hash FROM devices WHERE id = ?")
                .bind(id.to_string())
                .fetch_optional(&self.read)
                .await?;
        Ok(row.map(|r| DeviceAuthRow {
            token_hash: r.get(0),
            enabled: r.get::<i64, _>(1) != 0,
            pending_token_hash: r.get(2),
        }))
    }

    async fn get_device(&self, id: Uuid) -> Result<Option<Device>, StoreError> {
        let Some(row) = sqlx::query(select_devices!("WHERE id = ?"))
            .bind(id.to_string())
            .fetch_optional(&self.read)
            .await?
        else {
            return Ok(None);
        };
        let mut device = device_from_row(&row)?;
        device.collections = sqlx::query_scalar::<_, String>(
            "SELECT collection_id FROM collection_members WHERE device_id = ? ORDER BY collection_id",
        )
        .bind(id.to_string())
        .fetch_all(&self.read)
        .await?
        .iter()
        .map(|s| parse_uuid(s))
        .collect::<Result<_, _>>()?;
        Ok(Some(device))
    }

    /// Every device, or a collection's members; ordered by hostname.
    async fn list_devices(&self, collection: Option<Uuid>) -> Result<Vec<Device>, StoreError> {
        let rows = match collection {
            Some(c) => {
                sqlx::query(select_devices!(
                    "WHERE id IN (SELECT device_id FROM collection_members \
                     WHERE collection_id = ?) ORDER BY hostname, id"
                ))
                .bind(c.to_string())
                .fetch_all(&self.read)
                .await?
            }
            None => {
                sqlx::query(select_devices!("ORDER BY hostname, id"))
                    .fetch_all(&self.read)
                    .await?
            }
        };
        rows.iter().map(device_from_row).collect()
    }

    async fn set_device_enabled(
        &self,
        actor: &Actor,
        id: Uuid,
        enabled: bool,
    ) -> Result<bool, StoreError> {
        let action = if enabled {
            "device.enable"
        } else {
            "device.disable"
        };
        let query = sqlx::query("UPDATE devices SET enabled = ? WHERE id = ?")
            .bind(i64::from(enabled))
            .bind(id.to_string());
        self.audited(query, actor, action, id).await
    }

    async fn set_device_token(
        &self,
        actor: &Actor,
        id: Uuid,
        hash: &[u8],
    ) -> Result<bool, StoreError> {
        let query = sqlx::query(
            "UPDATE devices SET token_hash = ?, pending_token_hash = NULL WHERE id = ?",
        )
        .bind(hash)
        .bind(id.to_string());
        self.audited(query, actor, "device.rotate_token", id).await
    }

    async fn set_pending_token(
        &self,
        actor: &Actor,
        id: Uuid,
        hash: &[u8],
    ) -> Result<bool, StoreError> {
        let query = sqlx::query("UPDATE devices SET pending_token_hash = ? WHERE id = ?")
            .bind(hash)
            .bind(id.to_string());
        self.audited(query, actor, "device.request_token", id).await
    }

    async fn promote_pending_token(&self, id: Uuid, hash: &[u8]) -> Result<bool, StoreError> {
        let mut tx = self.begin().await?;
        let n = sqlx::query(
            "UPDATE devices SET token_hash = pending_token_hash, pending_token_hash = NULL \
             WHERE id = ? AND pending_token_hash = ?",
        )
        .bind(id.to_string())
        .bind(hash)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n > 0 {
            let actor = Actor::device(id, ferry_proto::identity::Via::DeviceToken, None);
            audit(
                &mut tx,
                &actor,
                "device.rotate_token",
                Some(&id.to_string()),
                Some("the device's new token is in use; the old one no longer works"),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(n > 0)
    }

    // ----- collections --------------------------------------------------------------------

    async fn create_collection(
        &self,
        actor: &Actor,
        id: Uuid,
        name: &str,
        rule: Option<&CollectionRule>,
        devices: &[Uuid],
    ) -> Result<Collection, CatalogError> {
        let rule_json = rule
            .map(serde_json::to_string)
            .transpose()
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let mut tx = self.begin().await?;
        // Evaluated under the write lock, so a device enrolling at the same moment is either
        // seen here or sees the new collection when its own memberships are computed.
        let members: Vec<Uuid> = match rule {
            Some(rule) => {
                let rows = sqlx::query(select_devices!("")).fetch_all(&mut *tx).await?;
                let mut members = Vec::new();
                for row in &rows {
                    let d = device_from_row(row)?;
                    if collections::matches(rule, &matched_inventory(&d)) {
                        members.push(d.id);
                    }
                }
                members
            }
            None => devices.to_vec(),
        };
        let taken: Option<String> = sqlx::query_scalar("SELECT id FROM collections WHERE name = ?")
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?;
        if taken.is_some() {
            return Err(CatalogError::NameTaken(name.to_owned()));
        }
        sqlx::query("INSERT INTO collections (id, name, rule, created_at) VALUES (?, ?, ?, ?)")
            .bind(id.to_string())
            .bind(name)
            .bind(rule_json)
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
        add_members(&mut tx, id, &members).await?;
        audit(
            &mut tx,
            actor,
            "collection.create",
            Some(&id.to_string()),
            Some(name),
        )
        .await?;
        tx.commit().await?;
        self.get_collection(id).await?.ok_or(CatalogError::NotFound)
    }

    async fn get_collection(&self, id: Uuid) -> Result<Option<Collection>, StoreError> {
        let row = sqlx::query(
            "SELECT c.*, (SELECT count(*) FROM collection_members m WHERE m.collection_id = c.id) \
             AS member_count FROM collections c WHERE c.id = ?",
        )
        .bind(id.to_string())
        .fetch_optional(&self.read)
        .await?;
        row.as_ref().map(collection_from_row).transpose()
    }

    async fn list_collections(&self) -> Result<Vec<Collection>, StoreError> {
        let rows = sqlx::query(
            "SELECT c.*, (SELECT count(*) FROM collection_members m WHERE m.collection_id = c.id) \
             AS member_count FROM collections c ORDER BY c.name",
        )
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(collection_from_row).collect()
    }

    async fn delete_collection(&self, actor: &Actor, id: Uuid) -> Result<bool, StoreError> {
        let query = sqlx::query("DELETE FROM collections WHERE id = ?").bind(id.to_string());
        self.audited(query, actor, "collection.delete", id).await
    }

    /// Adds and removes members of a static collection.
    async fn change_members(
        &self,
        actor: &Actor,
        id: Uuid,
        add: &[Uuid],
        remove: &[Uuid],
    ) -> Result<Collection, CatalogError> {
        let mut tx = self.begin().await?;
        let rule: Option<Option<String>> =
            sqlx::query_scalar("SELECT rule FROM collections WHERE id = ?")
                .bind(id.to_string())
                .fetch_optional(&mut *tx)
                .await?;
        match rule {
            None => return Err(CatalogError::NotFound),
            Some(Some(_)) => return Err(CatalogError::NotStatic),
            Some(None) => {}
        }
        add_members(&mut tx, id, add).await?;
        for device in remove {
            sqlx::query("DELETE FROM collection_members WHERE collection_id = ? AND device_id = ?")
                .bind(id.to_string())
                .bind(device.to_string())
                .execute(&mut *tx)
                .await?;
        }
        audit(
            &mut tx,
            actor,
            "collection.members",
            Some(&id.to_string()),
            Some(&format!("added {} removed {}", add.len(), remove.len())),
        )
        .await?;
        tx.commit().await?;
        self.get_collection(id).await?.ok_or(CatalogError::NotFound)
    }

    // ----- deployments --------------------------------------------------------------------

    async fn create_deployment(
        &self,
        actor: &Actor,
        id: Uuid,
        new: &NewDeployment,
    ) -> Result<Deployment, CatalogError> {
        let detection = serde_json::to_string(&new.detection)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let mut tx = self.begin().await?;
        if !exists(&mut tx, Table::Packages, new.package_id).await? {
            return Err(CatalogError::UnknownPackage(new.package_id));
        }
        if !exists(&mut tx, Table::Collections, new.collection_id).await? {
            return Err(CatalogError::UnknownCollection(new.collection_id));
        }
        let row = sqlx::query(
            "INSERT INTO deployments (id, package_id, collection_id, action, detection, created_at) \
             VALUES (?, ?, ?, ?, ?, ?) RETURNING *",
        )
        .bind(id.to_string())
        .bind(new.package_id.to_string())
        .bind(new.collection_id.to_string())
        .bind(action_str(new.action))
        .bind(detection)
        .bind(now_ms())
        .fetch_one(&mut *tx)
        .await?;
        audit(
            &mut tx,
            actor,
            "deployment.create",
            Some(&id.to_string()),
            Some(&format!(
                "package={} collection={} action={}",
                new.package_id,
                new.collection_id,
                action_str(new.action)
            )),
        )
        .await?;
        tx.commit().await?;
        Ok(deployment_from_row(&row)?)
    }

    async fn list_deployments(&self) -> Result<Vec<Deployment>, StoreError> {
        let rows = sqlx::query("SELECT * FROM deployments ORDER BY created_at")
            .fetch_all(&self.read)
            .await?;
        rows.iter().map(deployment_from_row).collect()
    }

    async fn delete_deployment(&self, actor: &Actor, id: Uuid) -> Result<bool, StoreError> {
        let query = sqlx::query("DELETE FROM deployments WHERE id = ?").bind(id.to_string());
        self.audited(query, actor, "deployment.delete", id).await
    }

    /// The deployments assigned to the device's collections.
    async fn policy(&self, device: Uuid) -> Result<Vec<PolicyDeployment>, StoreError> {
        let rows = sqlx::query(
            "SELECT d.id AS deployment_id, d.action, d.detection, p.id, p.filename, p.size, \
             p.sha256, p.metadata FROM deployments d JOIN packages p ON p.id = d.package_id \
             WHERE d.collection_id IN (SELECT collection_id FROM collection_members WHERE device_id = ?) \
             ORDER BY d.created_at",
        )
        .bind(device.to_string())
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(PolicyDeployment {
                    deployment_id: parse_uuid(row.get("deployment_id"))?,
                    action: parse_action(row.get("action"))?,
                    detection: serde_json::from_str::<Detection>(row.get::<&str, _>("detection"))
                        .map_err(|e| corrupt(format!("deployment detection: {e}")))?,
                    package: package_ref_from_row(row)?,
                })
            })
            .collect()
    }

    /// A device may download a package deployed to one of its collections, or one an
    /// unfinished operation addressed to it installs.
    async fn device_may_read_package(
        &self,
        device: Uuid,
        package: Uuid,
    ) -> Result<bool, StoreError> {
        let hit: Option<i64> = sqlx::query_scalar(
            "SELECT 1 FROM deployments WHERE package_id = ?1 AND collection_id IN \
               (SELECT collection_id FROM collection_members WHERE device_id = ?2) \
             UNION ALL \
             SELECT 1 FROM op_targets t JOIN ops o ON o.id = t.op_id WHERE t.device_id = ?2 \
               AND t.state IN ('pending', 'offline', 'delivered', 'running') \
               AND o.package_id = ?1 \
             LIMIT 1",
        )
        .bind(package.to_string())
        .bind(device.to_string())
        .fetch_optional(&self.read)
        .await?;
        Ok(hit.is_some())
    }

    async fn import_devices(
        &self,
        actor: &Actor,
        devices: &[(Uuid, Vec<u8>, Inventory)],
    ) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        let now = now_ms();
        let rules = rule_collections(&mut tx).await?;
        for (id, hash, inv) in devices {
            let ips = to_json(&inv.ips)?;
            sqlx::query(
                "INSERT INTO devices (id, token_hash, hostname, os_name, os_version, domain, arch, \
                 agent_version, ips, enrolled_at, vouched) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(id.to_string())
            .bind(hash)
            .bind(&inv.hostname)
            .bind(&inv.os_name)
            .bind(&inv.os_version)
            .bind(&inv.domain)
            .bind(&inv.arch)
            .bind(&inv.agent_version)
            .bind(ips)
            .bind(now)
            .bind(to_json(&RuleFacts::of(inv))?)
            .execute(&mut *tx)
            .await?;
            add_rule_memberships(&mut tx, &rules, *id, inv).await?;
        }
        audit(
            &mut tx,
            actor,
            "device.import",
            None,
            Some(&format!("{} devices", devices.len())),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }
}

#[derive(Clone, Copy)]
enum Table {
    Packages,
    Collections,
    Devices,
}

async fn exists(
    tx: &mut Transaction<'static, Sqlite>,
    table: Table,
    id: Uuid,
) -> Result<bool, sqlx::Error> {
    let sql = match table {
        Table::Packages => "SELECT 1 FROM packages WHERE id = ?",
        Table::Collections => "SELECT 1 FROM collections WHERE id = ?",
        Table::Devices => "SELECT 1 FROM devices WHERE id = ?",
    };
    Ok(sqlx::query(sql)
        .bind(id.to_string())
        .fetch_optional(&mut **tx)
        .await?
        .is_some())
}

async fn add_members(
    tx: &mut Transaction<'static, Sqlite>,
    collection: Uuid,
    devices: &[Uuid],
) -> Result<(), CatalogError> {
    for device in devices {
        if !exists(tx, Table::Devices, *device).await? {
            return Err(CatalogError::UnknownDevice(*device));
        }
        sqlx::query(
            "INSERT OR IGNORE INTO collection_members (collection_id, device_id) VALUES (?, ?)",
        )
        .bind(collection.to_string())
        .bind(device.to_string())
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// Every rule collection: its id and rule.
async fn rule_collections(
    tx: &mut Transaction<'static, Sqlite>,
) -> Result<Vec<(String, CollectionRule)>, StoreError> {
    let rows = sqlx::query("SELECT id, rule FROM collections WHERE rule IS NOT NULL")
        .fetch_all(&mut **tx)
        .await?;
    rows.iter()
        .map(|row| {
            let rule: CollectionRule = serde_json::from_str(row.get::<&str, _>("rule"))
                .map_err(|e| corrupt(format!("collection rule: {e}")))?;
            Ok((row.get::<String, _>("id"), rule))
        })
        .collect()
}

/// Adds the device to the rule collections among `rules` its inventory matches.
async fn add_rule_memberships(
    tx: &mut Transaction<'static, Sqlite>,
    rules: &[(String, CollectionRule)],
    device: Uuid,
    inv: &Inventory,
) -> Result<(), StoreError> {
    for (id, rule) in rules {
        if collections::matches(rule, inv) {
            sqlx::query("INSERT INTO collection_members (collection_id, device_id) VALUES (?, ?)")
                .bind(id)
                .bind(device.to_string())
                .execute(&mut **tx)
                .await?;
        }
    }
    Ok(())
}

/// Puts the device into exactly the rule collections its inventory matches.
pub(crate) async fn sync_rule_memberships(
    tx: &mut Transaction<'static, Sqlite>,
    device: Uuid,
    inv: &Inventory,
) -> Result<(), StoreError> {
    let rules = rule_collections(tx).await?;
    sqlx::query(
        "DELETE FROM collection_members WHERE device_id = ? AND collection_id IN \
         (SELECT id FROM collections WHERE rule IS NOT NULL)",
    )
    .bind(device.to_string())
    .execute(&mut **tx)
    .await?;
    add_rule_memberships(tx, &rules, device, inv).await
}
