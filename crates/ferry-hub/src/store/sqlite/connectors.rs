//! Connectors: registration, site settings, secrets and last contact.

use async_trait::async_trait;
use ferry_proto::connector::{Connector, SiteSettings, UpdateConnector};
use sqlx::Row;
use sqlx::sqlite::SqliteRow;
use uuid::Uuid;

use super::{SqliteStore, audit, parse_uuid};
use crate::store::{Actor, ConnectorAuthRow, ConnectorStore, JobError, StoreError};
use crate::time_util::{from_ms, now_ms};

#[async_trait]
impl ConnectorStore for SqliteStore {
    async fn create_connector(
        &self,
        actor: &Actor,
        id: Uuid,
        name: &str,
        secret_hash: &[u8],
        site: &SiteSettings,
    ) -> Result<Connector, JobError> {
        let mut tx = self.begin().await?;
        let now = now_ms();
        let site_json =
            serde_json::to_string(site).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let inserted = sqlx::query(
            "INSERT INTO connectors (id, name, secret_hash, enabled, site, created_at) \
             VALUES (?, ?, ?, 1, ?, ?) ON CONFLICT (name) DO NOTHING",
        )
        .bind(id.to_string())
        .bind(name)
        .bind(secret_hash)
        .bind(site_json)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if inserted.rows_affected() == 0 {
            return Err(JobError::NameTaken);
        }
        audit(
            &mut tx,
            actor,
            "connector.register",
            Some(&id.to_string()),
            Some(name),
        )
        .await?;
        tx.commit().await?;
        Ok(Connector {
            id,
            name: name.to_owned(),
            enabled: true,
            site: site.clone(),
            created_at: from_ms(now),
            last_seen_at: None,
            secret_rotated_at: None,
            online: false,
        })
    }

    async fn connector_auth(&self, id: Uuid) -> Result<Option<ConnectorAuthRow>, StoreError> {
        let row = sqlx::query("SELECT secret_hash, enabled FROM connectors WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&self.read)
            .await?;
        Ok(row.map(|r| ConnectorAuthRow {
            secret_hash: r.get(0),
            enabled: r.get::<i64, _>(1) != 0,
        }))
    }

    async fn get_connector(&self, id: Uuid) -> Result<Option<Connector>, StoreError> {
        let row = sqlx::query(
            "SELECT id, name, enabled, site, created_at, last_seen_at, secret_rotated_at \
             FROM connectors WHERE id = ?",
        )
        .bind(id.to_string())
        .fetch_optional(&self.read)
        .await?;
        row.as_ref().map(connector_from_row).transpose()
    }

    async fn list_connectors(&self) -> Result<Vec<Connector>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, name, enabled, site, created_at, last_seen_at, secret_rotated_at \
             FROM connectors ORDER BY name",
        )
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(connector_from_row).collect()
    }

    async fn update_connector(
        &self,
        actor: &Actor,
        id: Uuid,
        update: &UpdateConnector,
    ) -> Result<Connector, JobError> {
        let mut tx = self.begin().await?;
        let row = sqlx::query(
            "SELECT id, name, enabled, site, created_at, last_seen_at, secret_rotated_at \
             FROM connectors WHERE id = ?",
        )
        .bind(id.to_string())
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(JobError::NotFound)?;
        let mut connector = connector_from_row(&row)?;
        if let Some(name) = &update.name {
            connector.name.clone_from(name);
        }
        if let Some(enabled) = update.enabled {
            connector.enabled = enabled;
        }
        if let Some(patch) = &update.site {
            connector.site.apply(patch);
        }
        let site_json = serde_json::to_string(&connector.site)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let result =
            sqlx::query("UPDATE connectors SET name = ?, enabled = ?, site = ? WHERE id = ?")
                .bind(&connector.name)
                .bind(connector.enabled)
                .bind(site_json)
                .bind(id.to_string())
                .execute(&mut *tx)
                .await;
        match result {
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                return Err(JobError::NameTaken);
            }
            other => other?,
        };
        let detail = serde_json::to_string(update).ok();
        audit(
            &mut tx,
            actor,
            "connector.update",
            Some(&id.to_string()),
            detail.as_deref(),
        )
        .await?;
        tx.commit().await?;
        Ok(connector)
    }

    async fn set_connector_secret(
        &self,
        actor: &Actor,
        id: Uuid,
        secret_hash: &[u8],
    ) -> Result<(), JobError> {
        let mut tx = self.begin().await?;
        let done = sqlx::query(
            "UPDATE connectors SET secret_hash = ?, secret_rotated_at = ? WHERE id = ?",
        )
        .bind(secret_hash)
        .bind(now_ms())
        .bind(id.to_string())
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(JobError::NotFound);
        }
        audit(
            &mut tx,
            actor,
            "connector.rotate_secret",
            Some(&id.to_string()),
            None,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records connectors' last contacts in one statement: the batch travels as one JSON
    /// array `[[id, at_ms], …]`, so thousands of contacts cost one round trip.
    async fn record_contacts(&self, contacts: &[(Uuid, i64)]) -> Result<(), StoreError> {
        let batch: Vec<(String, i64)> = contacts
            .iter()
            .map(|(id, at)| (id.to_string(), *at))
            .collect();
        let json = serde_json::to_string(&batch).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        sqlx::query(
            "UPDATE connectors SET last_seen_at = MAX(COALESCE(connectors.last_seen_at, 0), c.at) \
             FROM (SELECT json_extract(value, '$[0]') AS id, json_extract(value, '$[1]') AS at \
                   FROM json_each(?)) AS c \
             WHERE connectors.id = c.id",
        )
        .bind(json)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    async fn connector_count(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM connectors")
            .fetch_one(&self.read)
            .await?)
    }
}

fn connector_from_row(r: &SqliteRow) -> Result<Connector, StoreError> {
    let site: SiteSettings = serde_json::from_str(&r.get::<String, _>(3))
        .map_err(|e| StoreError::Corrupt(format!("bad site settings: {e}")))?;
    Ok(Connector {
        id: parse_uuid(&r.get::<String, _>(0))?,
        name: r.get(1),
        enabled: r.get::<i64, _>(2) != 0,
        site,
        created_at: from_ms(r.get(4)),
        last_seen_at: r.get::<Option<i64>, _>(5).map(from_ms),
        secret_rotated_at: r.get::<Option<i64>, _>(6).map(from_ms),
        online: false,
    })
}
