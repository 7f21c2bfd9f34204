//! The audit log: written inside the transaction of the change it records, read with filters.

use async_trait::async_trait;
use ferry_proto::identity::{ActorKind, AuditEntry, AuditQuery, Via};
use sqlx::{Row, Sqlite, Transaction};

use super::{SqliteStore, parse_json, parse_opt_uuid};
use crate::store::{Actor, AuditStore, StoreError};
use crate::time_util::{from_ms, now_ms, to_ms};

/// Records `actor` doing `action` to `target`, inside the caller's transaction.
pub(crate) async fn audit(
    tx: &mut Transaction<'static, Sqlite>,
    actor: &Actor,
    action: &str,
    target: Option<&str>,
    detail: Option<&str>,
) -> Result<(), sqlx::Error> {
    let via = actor.via.and_then(|v| serde_json::to_string(&v).ok());
    sqlx::query(
        "INSERT INTO audit_log (at, actor_kind, actor_id, actor, via, address, action, target, detail) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(now_ms())
    .bind(actor.kind.as_str())
    .bind(actor.id.map(|id| id.to_string()))
    .bind(&actor.name)
    .bind(via)
    .bind(actor.address.map(|a| a.to_string()))
    .bind(action)
    .bind(target)
    .bind(detail)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

#[async_trait]
impl AuditStore for SqliteStore {
    async fn audit_log(&self, q: &AuditQuery) -> Result<Vec<AuditEntry>, StoreError> {
        let limit = q.limit.unwrap_or(100).clamp(1, 1000);
        // `action` ending in '.' is a prefix (`job.` finds every job action).
        let rows = sqlx::query(
            "SELECT id, at, actor_kind, actor_id, actor, via, address, action, target, detail \
             FROM audit_log \
             WHERE (?1 IS NULL OR id < ?1) \
               AND (?2 IS NULL OR actor = ?2 COLLATE NOCASE OR actor_id = ?2) \
               AND (?3 IS NULL OR action = ?3 \
                    OR (substr(?3, -1) = '.' AND substr(action, 1, length(?3)) = ?3)) \
               AND (?4 IS NULL OR at >= ?4) AND (?5 IS NULL OR at < ?5) \
             ORDER BY id DESC LIMIT ?6",
        )
        .bind(q.before)
        .bind(q.actor.as_deref())
        .bind(q.action.as_deref())
        .bind(q.since.map(to_ms))
        .bind(q.until.map(to_ms))
        .bind(limit)
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| {
                let kind: String = r.get("actor_kind");
                Ok(AuditEntry {
                    id: r.get("id"),
                    at: from_ms(r.get("at")),
                    actor_kind: ActorKind::parse(&kind)
                        .ok_or_else(|| StoreError::Corrupt(format!("actor kind {kind:?}")))?,
                    actor_id: parse_opt_uuid(r.get("actor_id"))?,
                    actor: r.get("actor"),
                    via: r
                        .get::<Option<String>, _>("via")
                        .map(|v| parse_json::<Via>(&v, "audit via"))
                        .transpose()?,
                    address: r.get("address"),
                    action: r.get("action"),
                    target: r.get("target"),
                    detail: r.get("detail"),
                })
            })
            .collect()
    }
}
