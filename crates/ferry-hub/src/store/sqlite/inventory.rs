//! The latest site inventory each connector reported.

use async_trait::async_trait;
use ferry_proto::inventory::InventoryResult;
use uuid::Uuid;

use super::{SqliteStore, parse_json, to_json};
use crate::store::{InventoryStore, StoreError};

#[async_trait]
impl InventoryStore for SqliteStore {
    async fn save_inventory(
        &self,
        connector: Uuid,
        job: Uuid,
        taken_at_ms: i64,
        data: &InventoryResult,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO site_inventories (connector_id, job_id, taken_at, data) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (connector_id) DO UPDATE SET job_id = ?2, taken_at = ?3, data = ?4 \
             WHERE site_inventories.taken_at <= ?3",
        )
        .bind(connector.to_string())
        .bind(job.to_string())
        .bind(taken_at_ms)
        .bind(to_json(data)?)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    async fn inventory(&self, connector: Uuid) -> Result<Option<InventoryResult>, StoreError> {
        let data: Option<String> =
            sqlx::query_scalar("SELECT data FROM site_inventories WHERE connector_id = ?")
                .bind(connector.to_string())
                .fetch_optional(&self.read)
                .await?;
        data.map(|d| parse_json(&d, "site inventory")).transpose()
    }
}
