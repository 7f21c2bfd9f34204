//! Client operations and their per-device records.
//!
//! Agent reports arrive by the thousand when an operation fans out, so they are not written
//! one transaction each: [`OpStore::apply_agent_batch`] takes everything the hub heard in the
//! last few milliseconds and commits it at once (one fsync for the lot). A report is only
//! acknowledged to its agent after that commit.

use async_trait::async_trait;
use ferry_proto::agent::Assignment;
use ferry_proto::ops::{
    AfterSuccess, OnInterrupt, OpCounts, OpSpec, Operation, OutcomeState, TargetResult,
    TargetState, WaitFor,
};
use std::collections::BTreeSet;

use sqlx::sqlite::SqliteRow;
use sqlx::{Row, Sqlite, Transaction};
use uuid::Uuid;

use super::devices::sync_rule_memberships;
use super::helpdesk::{refresh_tasks, sync_device_users};
use super::{SqliteStore, audit, corrupt, parse_uuid};
use crate::store::{
    Actor, AgentWrite, BatchEffect, OpError, OpInsert, OpStore, OpSweep, RESULT_GRACE_MS,
    StoreError,
};
use crate::time_util::{from_ms, now_ms};

/// `… state IN <targets still to be delivered or finished> <rest>`, as a literal.
macro_rules! open_states {
    ($before:literal, $after:literal) => {
        concat!(
            $before,
            " ('pending', 'offline', 'delivered', 'running') ",
            $after
        )
    };
}

fn interrupt_str(p: OnInterrupt) -> &'static str {
    match p {
        OnInterrupt::Fail => "fail",
        OnInterrupt::Rerun => "rerun",
    }
}

fn parse_interrupt(s: &str) -> Result<OnInterrupt, StoreError> {
    match s {
        "fail" => Ok(OnInterrupt::Fail),
        "rerun" => Ok(OnInterrupt::Rerun),
        other => Err(corrupt(format!("on_interrupt {other:?}"))),
    }
}

fn parse_spec(s: &str) -> Result<OpSpec, StoreError> {
    serde_json::from_str(s).map_err(|e| corrupt(format!("operation spec: {e}")))
}

fn op_from_row(row: &SqliteRow, counts: OpCounts) -> Result<Operation, StoreError> {
    Ok(Operation {
        id: parse_uuid(row.get("id"))?,
        spec: parse_spec(row.get("spec"))?,
        created_by: row.get("created_by"),
        created_at: from_ms(row.get("created_at")),
        expires_at: from_ms(row.get("expires_at")),
        timeout_secs: row.get::<i64, _>("timeout_secs") as u32,
        output_limit: row.get::<i64, _>("output_limit") as u32,
        on_interrupt: parse_interrupt(row.get("on_interrupt"))?,
        cancelled: row.get::<i64, _>("cancelled") != 0,
        counts,
    })
}

#[async_trait]
impl OpStore for SqliteStore {
    async fn create_op(
        &self,
        actor: &Actor,
        op: &OpInsert,
        online: &[Uuid],
    ) -> Result<(Operation, Vec<Uuid>), OpError> {
        let mut tx = self.begin().await?;
        let targets = insert_op(&mut tx, actor, op, online, now_ms()).await?;
        tx.commit().await?;
        let operation = self.get_op(op.id).await?.ok_or(OpError::NotFound)?;
        Ok((operation, targets))
    }

    async fn get_op(&self, id: Uuid) -> Result<Option<Operation>, StoreError> {
        let Some(row) = sqlx::query("SELECT * FROM ops WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&self.read)
            .await?
        else {
            return Ok(None);
        };
        let counts = self.op_counts(id).await?;
        Ok(Some(op_from_row(&row, counts)?))
    }

    /// The newest operations first.
    async fn list_ops(&self, limit: u32) -> Result<Vec<Operation>, StoreError> {
        let rows = sqlx::query("SELECT * FROM ops ORDER BY created_at DESC, id LIMIT ?")
            .bind(i64::from(limit))
            .fetch_all(&self.read)
            .await?;
        let mut ops = Vec::with_capacity(rows.len());
        for row in &rows {
            let counts = self.op_counts(parse_uuid(row.get("id"))?).await?;
            ops.push(op_from_row(row, counts)?);
        }
        Ok(ops)
    }

    /// Per-device records, by hostname; `after` pages on (hostname, device id).
    async fn op_results(
        &self,
        id: Uuid,
        state: Option<TargetState>,
        limit: u32,
        offset: u32,
    ) -> Result<Vec<TargetResult>, StoreError> {
        let rows = sqlx::query(
            "SELECT t.device_id, d.hostname, t.state, t.exit_code, t.output, t.error, \
             t.reboot_required, t.updated_at FROM op_targets t JOIN devices d ON d.id = t.device_id \
             WHERE t.op_id = ?1 AND (?2 IS NULL OR t.state = ?2) \
             ORDER BY d.hostname, t.device_id LIMIT ?3 OFFSET ?4",
        )
        .bind(id.to_string())
        .bind(state.map(TargetState::as_str))
        .bind(i64::from(limit))
        .bind(i64::from(offset))
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(TargetResult {
                    device_id: parse_uuid(row.get("device_id"))?,
                    hostname: row.get("hostname"),
                    state: TargetState::parse(row.get("state"))
                        .ok_or_else(|| corrupt("target state"))?,
                    exit_code: row.get::<Option<i64>, _>("exit_code").map(|c| c as i32),
                    output: row.get("output"),
                    error: row.get("error"),
                    reboot_required: row.get::<i64, _>("reboot_required") != 0,
                    updated_at: from_ms(row.get("updated_at")),
                })
            })
            .collect()
    }

    /// Cancels every unfinished target. Returns the devices that already had the operation
    /// (they are told to stop).
    async fn cancel_op(
        &self,
        actor: &Actor,
        id: Uuid,
    ) -> Result<(Vec<Uuid>, crate::store::helpdesk::Queued), OpError> {
        let now = now_ms();
        let mut tx = self.begin().await?;
        let devices = cancel_op_in(&mut tx, actor, id, now).await?;
        let reason = format!("cancelled by {}", actor.name);
        let queued = refresh_tasks(&mut tx, &BTreeSet::from([id]), Some(&reason), now).await?;
        tx.commit().await?;
        Ok((devices, queued))
    }

    /// What the device still has to do (or report): sent again at every session start.
    async fn open_assignments(&self, device: Uuid) -> Result<Vec<Assignment>, StoreError> {
        let rows = sqlx::query(open_states!(
            "SELECT o.id, o.spec, o.timeout_secs, o.output_limit, o.on_interrupt, t.state, \
             o.expires_at, o.after_success, o.wait_for FROM op_targets t JOIN ops o ON o.id = t.op_id \
             WHERE t.device_id = ? AND t.state IN",
            "ORDER BY o.created_at"
        ))
        .bind(device.to_string())
        .fetch_all(&self.read)
        .await?;
        let now = now_ms();
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let state: &str = row.get("state");
            // Not yet delivered and past its expiry: the sweeper is about to expire it.
            if matches!(state, "pending" | "offline") && row.get::<i64, _>("expires_at") <= now {
                continue;
            }
            out.push(Assignment {
                op_id: parse_uuid(row.get("id"))?,
                spec: parse_spec(row.get("spec"))?,
                timeout_secs: row.get::<i64, _>("timeout_secs") as u32,
                output_limit: row.get::<i64, _>("output_limit") as u32,
                on_interrupt: parse_interrupt(row.get("on_interrupt"))?,
                after: match row.get::<Option<&str>, _>("after_success") {
                    None => None,
                    Some("restart") => Some(AfterSuccess::Restart),
                    Some("shutdown") => Some(AfterSuccess::Shutdown),
                    Some(other) => return Err(corrupt(format!("after_success {other:?}"))),
                },
                wait: match row.get::<Option<&str>, _>("wait_for") {
                    None => None,
                    Some(json) => {
                        let mut w: WaitFor =
                            serde_json::from_str(json).map_err(|e| corrupt(e.to_string()))?;
                        // The device waits as long as the operation lives.
                        w.within_secs =
                            (row.get::<i64, _>("expires_at") - now).max(0) as u64 / 1000;
                        Some(w)
                    }
                },
            });
        }
        Ok(out)
    }

    /// Commits a batch of agent reports in one transaction.
    async fn apply_agent_batch(&self, batch: &[AgentWrite]) -> Result<BatchEffect, StoreError> {
        let now = now_ms();
        let mut effect = BatchEffect::default();
        let mut tx = self.begin().await?;
        for write in batch {
            match write {
                AgentWrite::Received { op, device } | AgentWrite::Running { op, device } => {
                    let sql = match write {
                        AgentWrite::Received { .. } => {
                            // Delivered operations may queue behind others on the device, so
                            // they are given up only after the operation's expiry.
                            "UPDATE op_targets SET state = 'delivered', updated_at = ?1, \
                             deadline = max(?1, (SELECT expires_at FROM ops WHERE id = ?3)) + ?2 \
                               + 1000 * (SELECT timeout_secs FROM ops WHERE id = ?3) \
                             WHERE op_id = ?3 AND device_id = ?4 AND state IN ('pending', 'offline')"
                        }
                        // A re-run after an interrupted agent restarts the clock.
                        _ => open_states!(
                            "UPDATE op_targets SET state = 'running', updated_at = ?1, \
                             deadline = ?1 + ?2 + 1000 * (SELECT timeout_secs FROM ops WHERE id = ?3) \
                             WHERE op_id = ?3 AND device_id = ?4 AND state IN",
                            ""
                        ),
                    };
                    let n = sqlx::query(sql)
                        .bind(now)
                        .bind(RESULT_GRACE_MS)
                        .bind(op.to_string())
                        .bind(device.to_string())
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                    if n > 0 {
                        effect.ops.insert(*op);
                    } else {
                        // Received or running something the hub has already closed
                        // (cancelled while the device was away, expired, given up): stop it.
                        let state: Option<String> = sqlx::query_scalar(
                            "SELECT state FROM op_targets WHERE op_id = ? AND device_id = ?",
                        )
                        .bind(op.to_string())
                        .bind(device.to_string())
                        .fetch_optional(&mut *tx)
                        .await?;
                        if state.is_some_and(|s| {
                            TargetState::parse(&s).is_some_and(TargetState::is_terminal)
                        }) {
                            effect.stop.push((*device, *op));
                        }
                    }
                }
                AgentWrite::Finished {
                    op,
                    device,
                    outcome,
                } => {
                    let state = match outcome.state {
                        OutcomeState::Succeeded => "succeeded",
                        OutcomeState::Failed => "failed",
                        OutcomeState::Cancelled => "cancelled",
                    };
                    let n = sqlx::query(open_states!(
                        "UPDATE op_targets SET state = ?1, exit_code = ?2, \
                         output = substr(?3, 1, (SELECT output_limit FROM ops WHERE id = ?7)), \
                         error = substr(?4, 1, (SELECT output_limit FROM ops WHERE id = ?7)), \
                         reboot_required = ?5, updated_at = ?6, deadline = NULL \
                         WHERE op_id = ?7 AND device_id = ?8 AND state IN",
                        ""
                    ))
                    .bind(state)
                    .bind(outcome.exit_code.map(i64::from))
                    .bind(non_empty(&outcome.output))
                    .bind(non_empty(&outcome.error))
                    .bind(i64::from(outcome.reboot_required))
                    .bind(now)
                    .bind(op.to_string())
                    .bind(device.to_string())
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                    if n > 0 {
                        effect.ops.insert(*op);
                    }
                }
                AgentWrite::Inventory {
                    device,
                    inventory,
                    trust,
                } => {
                    let ips = serde_json::to_string(&inventory.ips)
                        .map_err(|e| corrupt(e.to_string()))?;
                    let users = serde_json::to_string(&inventory.users)
                        .map_err(|e| corrupt(e.to_string()))?;
                    let users_changed =
                        sqlx::query("UPDATE devices SET users = ? WHERE id = ? AND users IS NOT ?")
                            .bind(&users)
                            .bind(device.to_string())
                            .bind(&users)
                            .execute(&mut *tx)
                            .await?
                            .rows_affected();
                    if users_changed > 0 {
                        sync_device_users(&mut tx, &device.to_string(), &inventory.users).await?;
                    }
                    let changed = sqlx::query(
                        "UPDATE devices SET hostname = ?, os_name = ?, os_version = ?, domain = ?, \
                         arch = ?, agent_version = ?, ips = ? WHERE id = ? AND NOT \
                         (hostname = ? AND os_name = ? AND os_version = ? AND domain IS ? AND \
                          arch = ? AND agent_version = ? AND ips = ?)",
                    )
                    .bind(&inventory.hostname)
                    .bind(&inventory.os_name)
                    .bind(&inventory.os_version)
                    .bind(&inventory.domain)
                    .bind(&inventory.arch)
                    .bind(&inventory.agent_version)
                    .bind(&ips)
                    .bind(device.to_string())
                    .bind(&inventory.hostname)
                    .bind(&inventory.os_name)
                    .bind(&inventory.os_version)
                    .bind(&inventory.domain)
                    .bind(&inventory.arch)
                    .bind(&inventory.agent_version)
                    .bind(&ips)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                    // Rule collections follow the vouched fields: reported changes count at
                    // once only when the hub is told to trust them.
                    if changed > 0 && *trust {
                        sqlx::query("UPDATE devices SET vouched = ? WHERE id = ?")
                            .bind(
                                serde_json::to_string(&ferry_proto::ops::RuleFacts::of(inventory))
                                    .map_err(|e| corrupt(e.to_string()))?,
                            )
                            .bind(device.to_string())
                            .execute(&mut *tx)
                            .await?;
                        sync_rule_memberships(&mut tx, *device, inventory).await?;
                    }
                }
                AgentWrite::Seen {
                    device,
                    at,
                    remote_addr,
                } => {
                    sqlx::query(
                        "UPDATE devices SET last_seen = max(coalesce(last_seen, 0), ?), \
                         remote_addr = coalesce(?, remote_addr) WHERE id = ?",
                    )
                    .bind(at)
                    .bind(remote_addr)
                    .bind(device.to_string())
                    .execute(&mut *tx)
                    .await?;
                }
            }
        }
        effect.queued = refresh_tasks(&mut tx, &effect.ops, None, now).await?;
        tx.commit().await?;
        Ok(effect)
    }

    /// Expires undelivered targets of expired operations and fails delivered or running
    /// targets whose result is overdue.
    async fn sweep_ops(&self) -> Result<OpSweep, StoreError> {
        let now = now_ms();
        let mut sweep = OpSweep::default();
        let mut tx = self.begin().await?;
        let expired = sqlx::query(
            "UPDATE op_targets SET state = 'expired', updated_at = ?1, \
             error = 'the operation expired before the device came online' \
             WHERE state IN ('pending', 'offline') AND op_id IN \
             (SELECT id FROM ops WHERE expires_at <= ?1) RETURNING op_id",
        )
        .bind(now)
        .fetch_all(&mut *tx)
        .await?;
        let overdue = sqlx::query(
            "UPDATE op_targets SET state = 'failed', updated_at = ?1, deadline = NULL, \
             error = 'no result from the device before the deadline (the agent stopped or lost \
             its connection while running it)' \
             WHERE deadline IS NOT NULL AND deadline <= ?1 AND state IN ('delivered', 'running') \
             RETURNING op_id",
        )
        .bind(now)
        .fetch_all(&mut *tx)
        .await?;
        sweep.expired = expired.len() as u64;
        sweep.timed_out = overdue.len() as u64;
        for row in expired.iter().chain(&overdue) {
            sweep.ops.insert(parse_uuid(row.get(0))?);
        }
        sweep.queued = refresh_tasks(&mut tx, &sweep.ops, None, now).await?;
        let next_expiry: Option<i64> = sqlx::query_scalar(
            "SELECT min(o.expires_at) FROM ops o WHERE o.cancelled = 0 AND EXISTS \
             (SELECT 1 FROM op_targets t WHERE t.op_id = o.id AND t.state IN ('pending', 'offline'))",
        )
        .fetch_one(&mut *tx)
        .await?;
        let next_deadline: Option<i64> =
            sqlx::query_scalar("SELECT min(deadline) FROM op_targets WHERE deadline IS NOT NULL")
                .fetch_one(&mut *tx)
                .await?;
        tx.commit().await?;
        sweep.next_deadline_ms = match (next_expiry, next_deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        Ok(sweep)
    }
}

fn non_empty(s: &str) -> Option<&str> {
    (!s.is_empty()).then_some(s)
}

fn json_ids(ids: &[Uuid]) -> Result<String, StoreError> {
    serde_json::to_string(&ids.iter().map(Uuid::to_string).collect::<Vec<_>>())
        .map_err(|e| corrupt(e.to_string()))
}

impl SqliteStore {
    async fn op_counts(&self, id: Uuid) -> Result<OpCounts, StoreError> {
        let rows =
            sqlx::query("SELECT state, count(*) FROM op_targets WHERE op_id = ? GROUP BY state")
                .bind(id.to_string())
                .fetch_all(&self.read)
                .await?;
        let mut counts = OpCounts::default();
        for row in rows {
            let state = TargetState::parse(row.get(0))
                .ok_or_else(|| corrupt(format!("target state {:?}", row.get::<&str, _>(0))))?;
            counts.add(state, row.get::<i64, _>(1) as u64);
        }
        Ok(counts)
    }
}

/// Inserts the operation and one record per target device (see [`OpStore::create_op`]) in
/// `tx`, with its audit entry. Tasks start their operations through this too.
pub(super) async fn insert_op(
    tx: &mut Transaction<'static, Sqlite>,
    actor: &Actor,
    op: &OpInsert,
    online: &[Uuid],
    now: i64,
) -> Result<Vec<Uuid>, OpError> {
    let spec = serde_json::to_string(&op.spec).map_err(|e| corrupt(e.to_string()))?;
    let id = op.id.to_string();
    for c in &op.collections {
        let found: Option<i64> = sqlx::query_scalar("SELECT 1 FROM collections WHERE id = ?")
            .bind(c.to_string())
            .fetch_optional(&mut **tx)
            .await?;
        if found.is_none() {
            return Err(OpError::UnknownCollection(*c));
        }
    }
    for d in &op.devices {
        let found: Option<i64> = sqlx::query_scalar("SELECT 1 FROM devices WHERE id = ?")
            .bind(d.to_string())
            .fetch_optional(&mut **tx)
            .await?;
        if found.is_none() {
            return Err(OpError::UnknownDevice(*d));
        }
    }
    sqlx::query(
        "INSERT INTO ops (id, spec, package_id, created_by, created_at, expires_at, \
             timeout_secs, output_limit, on_interrupt, after_success, wait_for) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&id)
    .bind(&spec)
    .bind(op.spec.package().map(|p| p.id.to_string()))
    .bind(&actor.name)
    .bind(now)
    .bind(op.expires_at)
    .bind(i64::from(op.timeout_secs))
    .bind(i64::from(op.output_limit))
    .bind(interrupt_str(op.on_interrupt))
    .bind(op.after.map(AfterSuccess::as_str))
    .bind(match &op.wait {
        Some(w) => Some(serde_json::to_string(w).map_err(|e| corrupt(e.to_string()))?),
        None => None,
    })
    .execute(&mut **tx)
    .await?;
    // Targets are expanded in SQL (one statement, whatever the collection's size); the
    // ID lists travel as JSON arrays rather than as thousands of bound parameters.
    let collections = json_ids(&op.collections)?;
    let devices = json_ids(&op.devices)?;
    let targets: Vec<String> = sqlx::query_scalar(
        "INSERT INTO op_targets (op_id, device_id, state, updated_at) \
             SELECT ?1, d.id, 'offline', ?2 FROM devices d WHERE d.enabled = 1 AND ( \
               d.id IN (SELECT value FROM json_each(?3)) OR d.id IN \
               (SELECT device_id FROM collection_members WHERE collection_id IN \
                 (SELECT value FROM json_each(?4)))) RETURNING device_id",
    )
    .bind(&id)
    .bind(now)
    .bind(&devices)
    .bind(&collections)
    .fetch_all(&mut **tx)
    .await?;
    let inserted = targets.len();
    if inserted == 0 {
        // A caller may go on in the same transaction (a scheduled task recording that it
        // could not start): leave no empty operation behind.
        sqlx::query("DELETE FROM ops WHERE id = ?")
            .bind(&id)
            .execute(&mut **tx)
            .await?;
        return Err(OpError::NoTargets);
    }
    sqlx::query(
        "UPDATE op_targets SET state = 'pending' WHERE op_id = ?1 \
             AND device_id IN (SELECT value FROM json_each(?2))",
    )
    .bind(&id)
    .bind(json_ids(online)?)
    .execute(&mut **tx)
    .await?;
    audit(
        tx,
        actor,
        "op.start",
        Some(&id),
        Some(&format!("kind={} targets={inserted}", op.spec.kind())),
    )
    .await?;
    targets
        .iter()
        .map(|s| parse_uuid(s))
        .collect::<Result<Vec<_>, _>>()
        .map_err(OpError::from)
}

/// Marks the operation cancelled and its unfinished records `cancelled`, in `tx`; returns the
/// devices whose records were cancelled.
pub(super) async fn cancel_op_in(
    tx: &mut Transaction<'static, Sqlite>,
    actor: &Actor,
    id: Uuid,
    now: i64,
) -> Result<Vec<Uuid>, OpError> {
    let n = sqlx::query("UPDATE ops SET cancelled = 1 WHERE id = ?")
        .bind(id.to_string())
        .execute(&mut **tx)
        .await?
        .rows_affected();
    if n == 0 {
        return Err(OpError::NotFound);
    }
    let rows = sqlx::query(open_states!(
        "UPDATE op_targets SET state = 'cancelled', deadline = NULL, updated_at = ?, \
         error = 'cancelled by ' || ? WHERE op_id = ? AND state IN",
        "RETURNING device_id, state"
    ))
    .bind(now)
    .bind(&actor.name)
    .bind(id.to_string())
    .fetch_all(&mut **tx)
    .await?;
    audit(tx, actor, "op.cancel", Some(&id.to_string()), None).await?;
    rows.iter()
        .map(|r| parse_uuid(r.get("device_id")))
        .collect::<Result<_, _>>()
        .map_err(OpError::from)
}
