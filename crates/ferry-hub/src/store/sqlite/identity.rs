//! Technicians, API keys and browser sessions.

use async_trait::async_trait;
use ferry_proto::identity::{ApiKey, Role, Technician, UpdateTechnician};
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, Sqlite, Transaction};
use uuid::Uuid;

use super::{SqliteStore, audit, corrupt, parse_uuid, to_json};
use crate::store::{
    Actor, AdminAccess, ApiKeyAuthRow, IdentityError, IdentityStore, NewSession, SessionAuthRow,
    StoreError, TechnicianInsert,
};
use crate::time_util::{from_ms, now_ms};

fn parse_role(s: &str) -> Result<Role, StoreError> {
    Role::parse(s).ok_or_else(|| corrupt(format!("role {s:?}")))
}

fn technician_from_row(r: &SqliteRow) -> Result<Technician, StoreError> {
    Ok(Technician {
        id: parse_uuid(r.get("id"))?,
        name: r.get("name"),
        display_name: r.get("display_name"),
        email: r.get("email"),
        role: parse_role(r.get("role"))?,
        enabled: r.get::<i64, _>("enabled") != 0,
        has_password: r.get::<Option<String>, _>("password_hash").is_some(),
        created_at: from_ms(r.get("created_at")),
    })
}

fn key_from_row(r: &SqliteRow) -> Result<ApiKey, StoreError> {
    Ok(ApiKey {
        id: parse_uuid(r.get("id"))?,
        technician_id: parse_uuid(r.get("technician_id"))?,
        name: r.get("name"),
        created_at: from_ms(r.get("created_at")),
        expires_at: r.get::<Option<i64>, _>("expires_at").map(from_ms),
        last_used_at: r.get::<Option<i64>, _>("last_used_at").map(from_ms),
        last_used_addr: r.get("last_used_addr"),
        revoked_at: r.get::<Option<i64>, _>("revoked_at").map(from_ms),
    })
}

async fn technician_in(
    tx: &mut Transaction<'static, Sqlite>,
    id: Uuid,
) -> Result<Option<Technician>, StoreError> {
    let row = sqlx::query("SELECT * FROM technicians WHERE id = ?")
        .bind(id.to_string())
        .fetch_optional(&mut **tx)
        .await?;
    row.as_ref().map(technician_from_row).transpose()
}

/// The end of a change to one live key: `NotFound` if it touched no row (no such live key of
/// that technician), else the audit entry, the key as it is now, and the commit.
async fn key_changed(
    mut tx: Transaction<'static, Sqlite>,
    actor: &Actor,
    action: &str,
    technician: Uuid,
    key_id: Uuid,
    rows: u64,
) -> Result<ApiKey, IdentityError> {
    if rows == 0 {
        return Err(IdentityError::NotFound);
    }
    audit(
        &mut tx,
        actor,
        action,
        Some(&key_id.to_string()),
        Some(&format!("technician={technician}")),
    )
    .await?;
    let key = key_in(&mut tx, technician, key_id)
        .await?
        .ok_or(IdentityError::NotFound)?;
    tx.commit().await?;
    Ok(key)
}

async fn key_in(
    tx: &mut Transaction<'static, Sqlite>,
    technician: Uuid,
    key: Uuid,
) -> Result<Option<ApiKey>, StoreError> {
    let row = sqlx::query("SELECT * FROM api_keys WHERE id = ? AND technician_id = ?")
        .bind(key.to_string())
        .bind(technician.to_string())
        .fetch_optional(&mut **tx)
        .await?;
    row.as_ref().map(key_from_row).transpose()
}

/// Enabled administrators other than `except`.
async fn other_admins(
    tx: &mut Transaction<'static, Sqlite>,
    except: Uuid,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT count(*) FROM technicians WHERE role = 'admin' AND enabled = 1 AND id <> ?",
    )
    .bind(except.to_string())
    .fetch_one(&mut **tx)
    .await
}

async fn end_sessions(
    tx: &mut Transaction<'static, Sqlite>,
    technician: Uuid,
) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query(
        "UPDATE sessions SET revoked_at = ? WHERE technician_id = ? AND revoked_at IS NULL",
    )
    .bind(now_ms())
    .bind(technician.to_string())
    .execute(&mut **tx)
    .await?
    .rows_affected())
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

#[async_trait]
impl IdentityStore for SqliteStore {
    async fn admin_access(&self, now_ms: i64) -> Result<AdminAccess, StoreError> {
        let technicians: i64 = sqlx::query_scalar("SELECT count(*) FROM technicians")
            .fetch_one(&self.write)
            .await?;
        if technicians == 0 {
            return Ok(AdminAccess::FirstStart);
        }
        let usable: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM technicians t WHERE t.role = 'admin' AND t.enabled = 1 \
             AND (t.password_hash IS NOT NULL OR EXISTS (SELECT 1 FROM api_keys k \
                  WHERE k.technician_id = t.id AND k.revoked_at IS NULL \
                  AND (k.expires_at IS NULL OR k.expires_at > ?)))",
        )
        .bind(now_ms)
        .fetch_one(&self.write)
        .await?;
        if usable > 0 {
            return Ok(AdminAccess::Usable);
        }
        let admin: Option<String> = sqlx::query_scalar(
            "SELECT id FROM technicians WHERE role = 'admin' AND enabled = 1 \
             ORDER BY created_at, id LIMIT 1",
        )
        .fetch_optional(&self.write)
        .await?;
        let admin = admin
            .map(|id| Uuid::parse_str(&id).map_err(|_| corrupt("technician id")))
            .transpose()?;
        Ok(AdminAccess::Unusable { admin })
    }

    async fn create_technician(
        &self,
        actor: &Actor,
        new: &TechnicianInsert,
    ) -> Result<Technician, IdentityError> {
        let mut tx = self.begin().await?;
        let now = now_ms();
        let inserted = sqlx::query(
            "INSERT INTO technicians (id, name, display_name, email, role, enabled, password_hash, \
             created_at, updated_at) VALUES (?, ?, ?, ?, ?, 1, ?, ?, ?)",
        )
        .bind(new.id.to_string())
        .bind(&new.name)
        .bind(&new.display_name)
        .bind(&new.email)
        .bind(new.role.as_str())
        .bind(&new.password_hash)
        .bind(now)
        .bind(now)
        .execute(&mut *tx)
        .await;
        match inserted {
            Err(e) if is_unique_violation(&e) => {
                return Err(IdentityError::NameTaken(format!("the name {:?}", new.name)));
            }
            other => other?,
        };
        audit(
            &mut tx,
            actor,
            "technician.create",
            Some(&new.id.to_string()),
            Some(&format!("name={} role={}", new.name, new.role)),
        )
        .await?;
        let created = technician_in(&mut tx, new.id)
            .await?
            .ok_or_else(|| corrupt("new technician vanished"))?;
        tx.commit().await?;
        Ok(created)
    }

    async fn get_technician(&self, id: Uuid) -> Result<Option<Technician>, StoreError> {
        let row = sqlx::query("SELECT * FROM technicians WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&self.read)
            .await?;
        row.as_ref().map(technician_from_row).transpose()
    }

    async fn technician_login(
        &self,
        name: &str,
    ) -> Result<Option<(Technician, Option<String>)>, StoreError> {
        let row = sqlx::query("SELECT * FROM technicians WHERE name = ?")
            .bind(name)
            .fetch_optional(&self.read)
            .await?;
        row.as_ref()
            .map(|r| Ok((technician_from_row(r)?, r.get("password_hash"))))
            .transpose()
    }

    async fn list_technicians(&self) -> Result<Vec<Technician>, StoreError> {
        let rows = sqlx::query("SELECT * FROM technicians ORDER BY name")
            .fetch_all(&self.read)
            .await?;
        rows.iter().map(technician_from_row).collect()
    }

    async fn update_technician(
        &self,
        actor: &Actor,
        id: Uuid,
        update: &UpdateTechnician,
    ) -> Result<Technician, IdentityError> {
        let mut tx = self.begin().await?;
        let mut t = technician_in(&mut tx, id)
            .await?
            .ok_or(IdentityError::NotFound)?;
        if let Some(d) = &update.display_name {
            t.display_name.clone_from(d);
        }
        if let Some(e) = &update.email {
            t.email.clone_from(e);
        }
        let was_admin = t.role == Role::Admin && t.enabled;
        if let Some(r) = update.role {
            t.role = r;
        }
        if let Some(e) = update.enabled {
            t.enabled = e;
        }
        let still_admin = t.role == Role::Admin && t.enabled;
        if was_admin && !still_admin && other_admins(&mut tx, id).await? == 0 {
            return Err(IdentityError::LastAdmin);
        }
        sqlx::query(
            "UPDATE technicians SET display_name = ?, email = ?, role = ?, enabled = ?, \
             updated_at = ? WHERE id = ?",
        )
        .bind(&t.display_name)
        .bind(&t.email)
        .bind(t.role.as_str())
        .bind(t.enabled)
        .bind(now_ms())
        .bind(id.to_string())
        .execute(&mut *tx)
        .await?;
        if !t.enabled {
            end_sessions(&mut tx, id).await?;
        }
        audit(
            &mut tx,
            actor,
            "technician.update",
            Some(&id.to_string()),
            Some(&to_json(update)?),
        )
        .await?;
        tx.commit().await?;
        Ok(t)
    }

    async fn set_password(
        &self,
        actor: &Actor,
        id: Uuid,
        password_hash: Option<&str>,
    ) -> Result<(), IdentityError> {
        let mut tx = self.begin().await?;
        let n =
            sqlx::query("UPDATE technicians SET password_hash = ?, updated_at = ? WHERE id = ?")
                .bind(password_hash)
                .bind(now_ms())
                .bind(id.to_string())
                .execute(&mut *tx)
                .await?
                .rows_affected();
        if n == 0 {
            return Err(IdentityError::NotFound);
        }
        let ended = end_sessions(&mut tx, id).await?;
        audit(
            &mut tx,
            actor,
            if password_hash.is_some() {
                "technician.set_password"
            } else {
                "technician.clear_password"
            },
            Some(&id.to_string()),
            Some(&format!("{ended} sessions ended")),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn create_api_key(
        &self,
        actor: &Actor,
        technician: Uuid,
        key_id: Uuid,
        name: &str,
        secret_hash: &[u8],
        expires_at_ms: Option<i64>,
        max_live: usize,
    ) -> Result<ApiKey, IdentityError> {
        let mut tx = self.begin().await?;
        if technician_in(&mut tx, technician).await?.is_none() {
            return Err(IdentityError::NotFound);
        }
        let live: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM api_keys WHERE technician_id = ? AND revoked_at IS NULL \
             AND (expires_at IS NULL OR expires_at > ?)",
        )
        .bind(technician.to_string())
        .bind(now_ms())
        .fetch_one(&mut *tx)
        .await?;
        if usize::try_from(live).unwrap_or(usize::MAX) >= max_live {
            return Err(IdentityError::TooManyKeys(max_live));
        }
        let inserted = sqlx::query(
            "INSERT INTO api_keys (id, technician_id, name, secret_hash, created_at, expires_at) \
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(key_id.to_string())
        .bind(technician.to_string())
        .bind(name)
        .bind(secret_hash)
        .bind(now_ms())
        .bind(expires_at_ms)
        .execute(&mut *tx)
        .await;
        match inserted {
            Err(e) if is_unique_violation(&e) => {
                return Err(IdentityError::NameTaken(format!("the key name {name:?}")));
            }
            other => other?,
        };
        audit(
            &mut tx,
            actor,
            "api_key.create",
            Some(&key_id.to_string()),
            Some(&format!("technician={technician} name={name}")),
        )
        .await?;
        let key = key_in(&mut tx, technician, key_id)
            .await?
            .ok_or_else(|| corrupt("new key vanished"))?;
        tx.commit().await?;
        Ok(key)
    }

    async fn regenerate_api_key(
        &self,
        actor: &Actor,
        technician: Uuid,
        key_id: Uuid,
        secret_hash: &[u8],
    ) -> Result<ApiKey, IdentityError> {
        let mut tx = self.begin().await?;
        let n = sqlx::query(
            "UPDATE api_keys SET secret_hash = ?, created_at = ?, last_used_at = NULL, \
             last_used_addr = NULL WHERE id = ? AND technician_id = ? AND revoked_at IS NULL",
        )
        .bind(secret_hash)
        .bind(now_ms())
        .bind(key_id.to_string())
        .bind(technician.to_string())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        key_changed(tx, actor, "api_key.regenerate", technician, key_id, n).await
    }

    async fn revoke_api_key(
        &self,
        actor: &Actor,
        technician: Uuid,
        key_id: Uuid,
    ) -> Result<ApiKey, IdentityError> {
        let mut tx = self.begin().await?;
        let n = sqlx::query(
            "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND technician_id = ? \
             AND revoked_at IS NULL",
        )
        .bind(now_ms())
        .bind(key_id.to_string())
        .bind(technician.to_string())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        key_changed(tx, actor, "api_key.revoke", technician, key_id, n).await
    }

    async fn list_api_keys(&self, technician: Uuid) -> Result<Vec<ApiKey>, StoreError> {
        let rows = sqlx::query(
            "SELECT * FROM api_keys WHERE technician_id = ? ORDER BY revoked_at IS NOT NULL, name",
        )
        .bind(technician.to_string())
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(key_from_row).collect()
    }

    async fn api_key_auth(&self, key_id: Uuid) -> Result<Option<ApiKeyAuthRow>, StoreError> {
        let row = sqlx::query(
            "SELECT k.id, k.technician_id, t.name, t.role, t.enabled, k.secret_hash, \
             k.expires_at, k.revoked_at FROM api_keys k JOIN technicians t ON t.id = k.technician_id \
             WHERE k.id = ?",
        )
        .bind(key_id.to_string())
        .fetch_optional(&self.read)
        .await?;
        row.map(|r| {
            Ok(ApiKeyAuthRow {
                key_id: parse_uuid(r.get(0))?,
                technician_id: parse_uuid(r.get(1))?,
                technician_name: r.get(2),
                role: parse_role(r.get(3))?,
                technician_enabled: r.get::<i64, _>(4) != 0,
                secret_hash: r.get(5),
                expires_at_ms: r.get(6),
                revoked: r.get::<Option<i64>, _>(7).is_some(),
            })
        })
        .transpose()
    }

    async fn record_key_uses(
        &self,
        uses: &[(Uuid, i64, Option<String>)],
    ) -> Result<(), StoreError> {
        if uses.is_empty() {
            return Ok(());
        }
        // One statement for the batch: the rows travel as a JSON array.
        let batch: Vec<(String, i64, Option<&str>)> = uses
            .iter()
            .map(|(id, at, addr)| (id.to_string(), *at, addr.as_deref()))
            .collect();
        sqlx::query(
            "UPDATE api_keys SET last_used_at = u.at, last_used_addr = u.addr \
             FROM (SELECT json_extract(value, '$[0]') AS id, json_extract(value, '$[1]') AS at, \
                          json_extract(value, '$[2]') AS addr FROM json_each(?)) AS u \
             WHERE api_keys.id = u.id AND COALESCE(api_keys.last_used_at, 0) <= u.at",
        )
        .bind(to_json(&batch)?)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    async fn create_session(&self, actor: &Actor, new: &NewSession) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        let now = now_ms();
        sqlx::query(
            "INSERT INTO sessions (id, technician_id, secret_hash, created_at, last_seen_at, \
             expires_at, user_agent) VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(new.id.to_string())
        .bind(new.technician_id.to_string())
        .bind(&new.secret_hash)
        .bind(now)
        .bind(now)
        .bind(new.expires_at_ms)
        .bind(&new.user_agent)
        .execute(&mut *tx)
        .await?;
        audit(
            &mut tx,
            actor,
            "session.login",
            Some(&new.id.to_string()),
            None,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn session_auth(&self, id: Uuid) -> Result<Option<SessionAuthRow>, StoreError> {
        let row = sqlx::query(
            "SELECT s.id, s.technician_id, t.name, t.role, t.enabled, s.secret_hash, \
             s.last_seen_at, s.expires_at, s.revoked_at FROM sessions s \
             JOIN technicians t ON t.id = s.technician_id WHERE s.id = ?",
        )
        .bind(id.to_string())
        .fetch_optional(&self.read)
        .await?;
        row.map(|r| {
            Ok(SessionAuthRow {
                session_id: parse_uuid(r.get(0))?,
                technician_id: parse_uuid(r.get(1))?,
                technician_name: r.get(2),
                role: parse_role(r.get(3))?,
                technician_enabled: r.get::<i64, _>(4) != 0,
                secret_hash: r.get(5),
                last_seen_ms: r.get(6),
                expires_at_ms: r.get(7),
                revoked: r.get::<Option<i64>, _>(8).is_some(),
            })
        })
        .transpose()
    }

    async fn touch_sessions(&self, touches: &[(Uuid, i64)]) -> Result<(), StoreError> {
        if touches.is_empty() {
            return Ok(());
        }
        let batch: Vec<(String, i64)> = touches
            .iter()
            .map(|(id, at)| (id.to_string(), *at))
            .collect();
        sqlx::query(
            "UPDATE sessions SET last_seen_at = MAX(sessions.last_seen_at, u.at) \
             FROM (SELECT json_extract(value, '$[0]') AS id, json_extract(value, '$[1]') AS at \
                   FROM json_each(?)) AS u WHERE sessions.id = u.id",
        )
        .bind(to_json(&batch)?)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    async fn revoke_session(&self, actor: &Actor, id: Uuid) -> Result<bool, StoreError> {
        let mut tx = self.begin().await?;
        let n =
            sqlx::query("UPDATE sessions SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL")
                .bind(now_ms())
                .bind(id.to_string())
                .execute(&mut *tx)
                .await?
                .rows_affected();
        if n > 0 {
            audit(
                &mut tx,
                actor,
                "session.logout",
                Some(&id.to_string()),
                None,
            )
            .await?;
        }
        tx.commit().await?;
        Ok(n > 0)
    }

    async fn revoke_sessions_of(&self, actor: &Actor, technician: Uuid) -> Result<u64, StoreError> {
        let mut tx = self.begin().await?;
        let n = end_sessions(&mut tx, technician).await?;
        audit(
            &mut tx,
            actor,
            "session.revoke_all",
            Some(&technician.to_string()),
            Some(&format!("{n} sessions ended")),
        )
        .await?;
        tx.commit().await?;
        Ok(n)
    }

    async fn prune_sessions(&self, cutoff_ms: i64) -> Result<u64, StoreError> {
        Ok(sqlx::query(
            "DELETE FROM sessions WHERE expires_at < ?1 OR (revoked_at IS NOT NULL AND revoked_at < ?1)",
        )
        .bind(cutoff_ms)
        .execute(&self.write)
        .await?
        .rows_affected())
    }
}
