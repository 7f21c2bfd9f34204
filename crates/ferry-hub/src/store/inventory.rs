//! The latest site inventory each connector reported.

use async_trait::async_trait;
use ferry_proto::inventory::InventoryResult;
use uuid::Uuid;

use super::StoreError;

#[async_trait]
pub trait InventoryStore {
    /// Keeps `data` as the connector's latest inventory, unless a newer one (by `taken_at_ms`,
    /// the job's creation) is already stored: two inventory jobs may finish out of order.
    async fn save_inventory(
        &self,
        connector: Uuid,
        job: Uuid,
        taken_at_ms: i64,
        data: &InventoryResult,
    ) -> Result<(), StoreError>;

    async fn inventory(&self, connector: Uuid) -> Result<Option<InventoryResult>, StoreError>;
}
