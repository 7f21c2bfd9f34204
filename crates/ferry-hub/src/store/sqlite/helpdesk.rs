//! Scripts, integrations, tasks and the callback outbox (see [`crate::store::HelpdeskStore`]).

use std::collections::{BTreeSet, HashMap};

use async_trait::async_trait;
use ferry_proto::helpdesk::{
    CallbackEvent, CatalogDomain, CatalogUser, CatalogWorkstation, Delivery, DeliveryAttempt,
    DeliveryState, Integration, NotificationChannel, NotificationRule, NotifyOn, Redelivered,
    Script, Task, TaskAction, TaskChange, TaskStatus, TaskTarget,
};
use ferry_proto::ops::{OpCounts, TargetState};
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, Sqlite, Transaction};
use uuid::Uuid;

use super::ops::{cancel_op_in, insert_op};
use super::{SqliteStore, audit, corrupt, parse_json, parse_opt_uuid, parse_uuid, to_json};
use crate::store::helpdesk::{
    AttemptNext, AttemptRecord, DueDelivery, DueNotification, HelpdeskError, HelpdeskStore,
    IntegrationInsert, IntegrationKeys, Queued, RuleInsert, ScriptInsert, TaskCreated, TaskInsert,
    TaskPlan, parse_delivery_state,
};
use crate::store::{Actor, OpError, StoreError};
use crate::time_util::{from_ms, now_ms};

/// Most notification rules one technician may have.
const MAX_RULES: i64 = 20;

fn channel_str(c: NotificationChannel) -> &'static str {
    match c {
        NotificationChannel::Webhook => "webhook",
        NotificationChannel::Email => "email",
    }
}

fn parse_channel(s: &str) -> Result<NotificationChannel, StoreError> {
    match s {
        "webhook" => Ok(NotificationChannel::Webhook),
        "email" => Ok(NotificationChannel::Email),
        _ => Err(corrupt(format!("notification channel {s:?}"))),
    }
}

/// Most failed devices a callback lists.
const MAX_CALLBACK_FAILURES: i64 = 100;
/// Most targets `GET /api/v1/tasks/{id}` lists.
const MAX_TASK_TARGETS: i64 = 1000;

fn action_str(a: TaskAction) -> &'static str {
    a.as_str()
}

fn parse_action(s: &str) -> Result<TaskAction, StoreError> {
    [
        TaskAction::Install,
        TaskAction::Uninstall,
        TaskAction::Advertise,
        TaskAction::RunScript,
    ]
    .into_iter()
    .find(|a| a.as_str() == s)
    .ok_or_else(|| corrupt(format!("task action {s:?}")))
}

fn parse_status(s: &str) -> Result<TaskStatus, StoreError> {
    TaskStatus::parse(s).ok_or_else(|| corrupt(format!("task status {s:?}")))
}

fn script_from_row(row: &SqliteRow, content: bool) -> Result<Script, StoreError> {
    Ok(Script {
        id: parse_uuid(row.get("id"))?,
        name: row.get("name"),
        version: row.get::<i64, _>("version") as u32,
        description: row.get("description"),
        sha256: row.get("sha256"),
        parameters: parse_json(row.get("parameters"), "script parameters")?,
        created_by: row.get("created_by"),
        created_at: from_ms(row.get("created_at")),
        retired: row.get::<i64, _>("retired") != 0,
        content: content.then(|| row.get("content")),
    })
}

fn integration_from_row(row: &SqliteRow) -> Result<Integration, StoreError> {
    let now = now_ms();
    Ok(Integration {
        id: parse_uuid(row.get("id"))?,
        name: row.get("name"),
        callback_prefixes: parse_json(row.get("callback_prefixes"), "callback prefixes")?,
        technician_id: parse_opt_uuid(row.get("technician_id"))?,
        allow_http: row.get::<i64, _>("allow_http") != 0,
        allow_private: row.get::<i64, _>("allow_private") != 0,
        has_ca: row.get::<Option<String>, _>("ca_pem").is_some(),
        created_at: from_ms(row.get("created_at")),
        previous_secret_until: row
            .get::<Option<i64>, _>("previous_until")
            .filter(|&t| t > now)
            .map(from_ms),
    })
}

/// `SELECT <a task's columns> FROM tasks <rest>`, as a literal (sqlx takes static SQL only).
macro_rules! select_tasks {
    ($rest:literal) => {
        concat!(
            "SELECT id, request_ref, integration_id, action, package_id, script_id, status, \
             reason, callback_url, callbacks_stopped, scheduled_for, op_id, created_by, \
             created_at, updated_at FROM tasks ",
            $rest
        )
    };
}

fn task_from_row(row: &SqliteRow, counts: OpCounts) -> Result<Task, StoreError> {
    Ok(Task {
        id: parse_uuid(row.get("id"))?,
        request_ref: row.get("request_ref"),
        integration_id: parse_opt_uuid(row.get("integration_id"))?,
        action: parse_action(row.get("action"))?,
        package_id: parse_opt_uuid(row.get("package_id"))?,
        script_id: parse_opt_uuid(row.get("script_id"))?,
        status: parse_status(row.get("status"))?,
        reason: row.get("reason"),
        callback_url: row.get("callback_url"),
        callbacks_stopped: row.get("callbacks_stopped"),
        scheduled_for: row.get::<Option<i64>, _>("scheduled_for").map(from_ms),
        op_id: parse_opt_uuid(row.get("op_id"))?,
        counts,
        created_by: row.get("created_by"),
        created_at: from_ms(row.get("created_at")),
        updated_at: from_ms(row.get("updated_at")),
        targets: None,
    })
}

async fn counts_in(conn: &mut sqlx::SqliteConnection, op: &str) -> Result<OpCounts, StoreError> {
    let rows = sqlx::query("SELECT state, count(*) FROM op_targets WHERE op_id = ? GROUP BY state")
        .bind(op)
        .fetch_all(&mut *conn)
        .await?;
    let mut counts = OpCounts::default();
    for row in rows {
        let state = TargetState::parse(row.get(0))
            .ok_or_else(|| corrupt(format!("target state {:?}", row.get::<&str, _>(0))))?;
        counts.add(state, row.get::<i64, _>(1) as u64);
    }
    Ok(counts)
}

async fn targets_in(
    conn: &mut sqlx::SqliteConnection,
    op: &str,
    failures_only: bool,
    limit: i64,
) -> Result<Vec<TaskTarget>, StoreError> {
    let sql = if failures_only {
        "SELECT t.device_id, d.hostname, t.state, t.exit_code, t.error, t.reboot_required \
         FROM op_targets t JOIN devices d ON d.id = t.device_id \
         WHERE t.op_id = ? AND t.state IN ('failed', 'expired', 'cancelled') \
         ORDER BY d.hostname, t.device_id LIMIT ?"
    } else {
        "SELECT t.device_id, d.hostname, t.state, t.exit_code, t.error, t.reboot_required \
         FROM op_targets t JOIN devices d ON d.id = t.device_id \
         WHERE t.op_id = ? ORDER BY d.hostname, t.device_id LIMIT ?"
    };
    let rows = sqlx::query(sql)
        .bind(op)
        .bind(limit)
        .fetch_all(&mut *conn)
        .await?;
    rows.iter()
        .map(|r| {
            Ok(TaskTarget {
                device_id: parse_uuid(r.get(0))?,
                hostname: r.get(1),
                state: TargetState::parse(r.get(2))
                    .ok_or_else(|| corrupt(format!("target state {:?}", r.get::<&str, _>(2))))?,
                exit_code: r.get::<Option<i64>, _>(3).map(|c| c as i32),
                error: r.get(4),
                reboot_required: r.get::<i64, _>(5) != 0,
            })
        })
        .collect()
}

/// Moves a task to `status` (one more in its sequence) and, if it has a callback URL and
/// callbacks go on, queues the callback in the same transaction. Returns whether it queued one.
async fn change_status(
    tx: &mut Transaction<'static, Sqlite>,
    task: &str,
    previous: Option<TaskStatus>,
    status: TaskStatus,
    reason: Option<&str>,
    known_counts: Option<&OpCounts>,
    now: i64,
) -> Result<Queued, StoreError> {
    let row = sqlx::query(
        "UPDATE tasks SET status = ?1, reason = ?2, seq = seq + 1, \
         updated_at = ?3 WHERE id = ?4 \
         RETURNING seq, request_ref, callback_url, callbacks_stopped, op_id, reason, owner_id",
    )
    .bind(status.as_str())
    .bind(reason)
    .bind(now)
    .bind(task)
    .fetch_one(&mut **tx)
    .await?;
    let seq: i64 = row.get("seq");
    let callback = row.get::<Option<String>, _>("callback_url").is_some()
        && row.get::<Option<String>, _>("callbacks_stopped").is_none();
    let failure = matches!(
        status,
        TaskStatus::Failed | TaskStatus::PartiallySucceeded | TaskStatus::Expired
    );
    let rules: Vec<String> = match row.get::<Option<String>, _>("owner_id") {
        Some(owner) => {
            sqlx::query_scalar(
                "SELECT id FROM notification_rules WHERE technician_id = ? \
                 AND (failures_only = 0 OR ?)",
            )
            .bind(owner)
            .bind(failure)
            .fetch_all(&mut **tx)
            .await?
        }
        None => Vec::new(),
    };
    if !callback && rules.is_empty() {
        return Ok(Queued::default());
    }
    let op: Option<String> = row.get("op_id");
    let (counts, failures) = match &op {
        Some(op) => {
            let counts = match known_counts {
                Some(c) => c.clone(),
                None => counts_in(tx, op).await?,
            };
            let failures = if counts.failed + counts.expired + counts.cancelled > 0 {
                targets_in(tx, op, true, MAX_CALLBACK_FAILURES).await?
            } else {
                Vec::new()
            };
            (counts, failures)
        }
        None => (OpCounts::default(), Vec::new()),
    };
    let event = CallbackEvent {
        kind: "task.status_changed".to_owned(),
        timestamp: from_ms(now),
        data: TaskChange {
            task_id: parse_uuid(task)?,
            request_ref: row.get("request_ref"),
            sequence: seq as u64,
            status,
            previous_status: previous,
            reason: row.get("reason"),
            counts,
            failures,
        },
    };
    let body = to_json(&event)?;
    if callback {
        sqlx::query(
            "INSERT INTO task_events (id, task_id, seq, status, body, created_at, state, \
             next_attempt_at) VALUES (?, ?, ?, ?, ?, ?, 'pending', ?)",
        )
        .bind(format!("msg_{}", Uuid::new_v4().simple()))
        .bind(task)
        .bind(seq)
        .bind(status.as_str())
        .bind(&body)
        .bind(now)
        .bind(now)
        .execute(&mut **tx)
        .await?;
    }
    for rule in &rules {
        sqlx::query(
            "INSERT INTO notifications (id, rule_id, task_id, body, created_at, state, \
             next_attempt_at) VALUES (?, ?, ?, ?, ?, 'pending', ?)",
        )
        .bind(format!("msg_{}", Uuid::new_v4().simple()))
        .bind(rule)
        .bind(task)
        .bind(&body)
        .bind(now)
        .bind(now)
        .execute(&mut **tx)
        .await?;
    }
    Ok(Queued {
        callbacks: callback,
        notifications: !rules.is_empty(),
    })
}

/// Recomputes the status of every unfinished task driven by these operations, in the
/// transaction that changed their targets. Returns whether a callback was queued.
pub(super) async fn refresh_tasks(
    tx: &mut Transaction<'static, Sqlite>,
    ops: &BTreeSet<Uuid>,
    reason: Option<&str>,
    now: i64,
) -> Result<Queued, StoreError> {
    if ops.is_empty() {
        return Ok(Queued::default());
    }
    let ids = to_json(&ops.iter().map(Uuid::to_string).collect::<Vec<_>>())?;
    let rows = sqlx::query(
        "SELECT id, op_id, status FROM tasks WHERE op_id IN (SELECT value FROM json_each(?)) \
         AND status NOT IN ('succeeded', 'partially_succeeded', 'failed', 'cancelled', 'expired')",
    )
    .bind(ids)
    .fetch_all(&mut **tx)
    .await?;
    let mut queued = Queued::default();
    for row in rows {
        let task: String = row.get("id");
        let op: String = row.get("op_id");
        let old = parse_status(row.get("status"))?;
        let counts = counts_in(tx, &op).await?;
        let new = TaskStatus::aggregate(&counts);
        if new == old {
            continue;
        }
        let why = match (reason, new) {
            (Some(r), _) => Some(r.to_owned()),
            (None, TaskStatus::Failed | TaskStatus::PartiallySucceeded | TaskStatus::Expired) => {
                failure_reason(tx, &op, &counts).await?
            }
            _ => None,
        };
        queued.merge(
            change_status(
                tx,
                &task,
                Some(old),
                new,
                why.as_deref(),
                Some(&counts),
                now,
            )
            .await?,
        );
    }
    Ok(queued)
}

/// "2 of 3 devices failed; PC-07: <its error>".
async fn failure_reason(
    tx: &mut Transaction<'static, Sqlite>,
    op: &str,
    counts: &OpCounts,
) -> Result<Option<String>, StoreError> {
    let first = targets_in(tx, op, true, 1).await?;
    let not_ok = counts.total - counts.succeeded;
    Ok(first.first().map(|t| {
        let detail = t
            .error
            .as_deref()
            .map(|e| e.lines().next().unwrap_or("").to_owned())
            .or_else(|| t.exit_code.map(|c| format!("exit code {c}")))
            .unwrap_or_else(|| t.state.as_str().to_owned());
        let mut s = format!(
            "{not_ok} of {} devices did not succeed; {}: {detail}",
            counts.total, t.hostname
        );
        s.truncate(s.floor_char_boundary(1000));
        s
    }))
}

fn due_from_row(r: &SqliteRow) -> Result<DueDelivery, StoreError> {
    Ok(DueDelivery {
        event_id: r.get("id"),
        task_id: parse_uuid(r.get("task_id"))?,
        seq: r.get("seq"),
        body: r.get("body"),
        attempts: r.get::<i64, _>("attempts") as u32,
        created_at: r.get("created_at"),
        callback_url: r
            .get::<Option<String>, _>("callback_url")
            .ok_or_else(|| corrupt("a callback queued for a task without a URL"))?,
        integration_id: parse_opt_uuid(r.get("integration_id"))?,
    })
}

/// Replaces the device's logged-on users (`DOMAIN\name`).
pub(super) async fn sync_device_users(
    tx: &mut Transaction<'static, Sqlite>,
    device: &str,
    users: &[String],
) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM device_users WHERE device_id = ?")
        .bind(device)
        .execute(&mut **tx)
        .await?;
    for user in users {
        let domain = user.split_once('\\').map_or("", |(d, _)| d);
        sqlx::query(
            "INSERT OR IGNORE INTO device_users (device_id, user, domain) VALUES (?, ?, ?)",
        )
        .bind(device)
        .bind(user)
        .bind(domain)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// Records one attempt and moves its event on (only a pending event moves: an operator's
/// close or a concurrent redelivery wins).
async fn record_one(
    tx: &mut Transaction<'static, Sqlite>,
    event_id: &str,
    a: &AttemptRecord,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO delivery_attempts (event_id, at, status_code, latency_ms, error) \
         VALUES (?, ?, ?, ?, ?)",
    )
    .bind(event_id)
    .bind(a.at)
    .bind(a.status_code.map(i64::from))
    .bind(a.latency_ms as i64)
    .bind(&a.error)
    .execute(&mut **tx)
    .await?;
    let (state, next) = match a.next {
        AttemptNext::Delivered => ("delivered", None),
        AttemptNext::RetryAt(t) => ("pending", Some(t)),
        AttemptNext::Failed => ("failed", None),
        AttemptNext::Gone => ("stopped", None),
    };
    // Only a pending event moves: an operator's close or a concurrent redelivery wins.
    let task: Option<String> = sqlx::query_scalar(
        "UPDATE task_events SET state = ?, next_attempt_at = ?, attempts = attempts + 1 \
         WHERE id = ? AND state = 'pending' RETURNING task_id",
    )
    .bind(state)
    .bind(next)
    .bind(event_id)
    .fetch_optional(&mut **tx)
    .await?;
    if let (AttemptNext::Gone, Some(task)) = (&a.next, task) {
        sqlx::query(
            "UPDATE tasks SET callbacks_stopped = 'the helpdesk answered 410 Gone' \
             WHERE id = ? AND callbacks_stopped IS NULL",
        )
        .bind(&task)
        .execute(&mut **tx)
        .await?;
        sqlx::query(
            "UPDATE task_events SET state = 'stopped', next_attempt_at = NULL \
             WHERE task_id = ? AND state = 'pending'",
        )
        .bind(&task)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// `%text%` for LIKE, with LIKE's own characters escaped by `\`.
fn like_pattern(q: &str) -> String {
    let mut s = String::with_capacity(q.len() + 2);
    s.push('%');
    for c in q.chars() {
        if matches!(c, '%' | '_' | '\\') {
            s.push('\\');
        }
        s.push(c);
    }
    s.push('%');
    s
}

impl SqliteStore {
    async fn counts_for(&self, ops: &[String]) -> Result<HashMap<String, OpCounts>, StoreError> {
        let mut out: HashMap<String, OpCounts> = HashMap::new();
        if ops.is_empty() {
            return Ok(out);
        }
        let rows = sqlx::query(
            "SELECT op_id, state, count(*) FROM op_targets WHERE op_id IN \
             (SELECT value FROM json_each(?)) GROUP BY op_id, state",
        )
        .bind(to_json(&ops)?)
        .fetch_all(&self.read)
        .await?;
        for row in rows {
            let state = TargetState::parse(row.get(1))
                .ok_or_else(|| corrupt(format!("target state {:?}", row.get::<&str, _>(1))))?;
            out.entry(row.get(0))
                .or_default()
                .add(state, row.get::<i64, _>(2) as u64);
        }
        Ok(out)
    }

    async fn tasks_from_rows(&self, rows: Vec<SqliteRow>) -> Result<Vec<Task>, StoreError> {
        let ops: Vec<String> = rows
            .iter()
            .filter_map(|r| r.get::<Option<String>, _>("op_id"))
            .collect();
        let counts = self.counts_for(&ops).await?;
        rows.iter()
            .map(|r| {
                let c = r
                    .get::<Option<String>, _>("op_id")
                    .and_then(|op| counts.get(&op).cloned())
                    .unwrap_or_default();
                task_from_row(r, c)
            })
            .collect()
    }

    async fn task_in(
        tx: &mut Transaction<'static, Sqlite>,
        id: &str,
    ) -> Result<Option<Task>, StoreError> {
        let Some(row) = sqlx::query(select_tasks!("WHERE id = ?"))
            .bind(id)
            .fetch_optional(&mut **tx)
            .await?
        else {
            return Ok(None);
        };
        let counts = match row.get::<Option<String>, _>("op_id") {
            Some(op) => counts_in(tx, &op).await?,
            None => OpCounts::default(),
        };
        task_from_row(&row, counts).map(Some)
    }
}

#[async_trait]
impl HelpdeskStore for SqliteStore {
    async fn add_script(&self, actor: &Actor, s: &ScriptInsert) -> Result<Script, StoreError> {
        let now = now_ms();
        let mut tx = self.begin().await?;
        let version: i64 =
            sqlx::query_scalar("SELECT coalesce(max(version), 0) + 1 FROM scripts WHERE name = ?")
                .bind(&s.name)
                .fetch_one(&mut *tx)
                .await?;
        sqlx::query(
            "INSERT INTO scripts (id, name, version, description, content, sha256, parameters, \
             created_by, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(s.id.to_string())
        .bind(&s.name)
        .bind(version)
        .bind(&s.description)
        .bind(&s.content)
        .bind(&s.sha256)
        .bind(to_json(&s.parameters)?)
        .bind(&actor.name)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        audit(
            &mut tx,
            actor,
            "script.add",
            Some(&s.id.to_string()),
            Some(&format!(
                "name={} version={version} sha256={}",
                s.name, s.sha256
            )),
        )
        .await?;
        tx.commit().await?;
        self.script(s.id, false)
            .await?
            .ok_or_else(|| corrupt("script vanished after insert"))
    }

    async fn scripts(&self, include_retired: bool) -> Result<Vec<Script>, StoreError> {
        let rows =
            sqlx::query("SELECT * FROM scripts WHERE retired = 0 OR ? ORDER BY name, version DESC")
                .bind(include_retired)
                .fetch_all(&self.read)
                .await?;
        rows.iter().map(|r| script_from_row(r, false)).collect()
    }

    async fn script(&self, id: Uuid, content: bool) -> Result<Option<Script>, StoreError> {
        let row = sqlx::query("SELECT * FROM scripts WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&self.read)
            .await?;
        row.map(|r| script_from_row(&r, content)).transpose()
    }

    async fn retire_script(&self, actor: &Actor, id: Uuid) -> Result<Script, HelpdeskError> {
        let mut tx = self.begin().await?;
        let n = sqlx::query("UPDATE scripts SET retired = 1 WHERE id = ?")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n == 0 {
            return Err(HelpdeskError::NotFound("script"));
        }
        audit(&mut tx, actor, "script.retire", Some(&id.to_string()), None).await?;
        tx.commit().await?;
        self.script(id, false)
            .await?
            .ok_or(HelpdeskError::NotFound("script"))
    }

    async fn create_integration(
        &self,
        actor: &Actor,
        i: &IntegrationInsert,
    ) -> Result<Integration, HelpdeskError> {
        let mut tx = self.begin().await?;
        let taken: Option<i64> = sqlx::query_scalar("SELECT 1 FROM integrations WHERE name = ?")
            .bind(&i.name)
            .fetch_optional(&mut *tx)
            .await?;
        if taken.is_some() {
            return Err(HelpdeskError::NameTaken(i.name.clone()));
        }
        if let Some(t) = i.technician_id {
            let found: Option<i64> = sqlx::query_scalar("SELECT 1 FROM technicians WHERE id = ?")
                .bind(t.to_string())
                .fetch_optional(&mut *tx)
                .await?;
            if found.is_none() {
                return Err(HelpdeskError::UnknownTechnician(t));
            }
        }
        sqlx::query(
            "INSERT INTO integrations (id, name, callback_prefixes, technician_id, allow_http, \
             allow_private, ca_pem, secret_sealed, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(i.id.to_string())
        .bind(&i.name)
        .bind(to_json(&i.callback_prefixes)?)
        .bind(i.technician_id.map(|t| t.to_string()))
        .bind(i.allow_http)
        .bind(i.allow_private)
        .bind(&i.ca_pem)
        .bind(&i.secret_sealed)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        audit(
            &mut tx,
            actor,
            "integration.create",
            Some(&i.id.to_string()),
            Some(&format!(
                "name={} prefixes={} allow_http={} allow_private={} ca={}",
                i.name,
                i.callback_prefixes.join(","),
                i.allow_http,
                i.allow_private,
                i.ca_pem.is_some()
            )),
        )
        .await?;
        tx.commit().await?;
        self.integration(i.id)
            .await?
            .ok_or(HelpdeskError::NotFound("integration"))
    }

    async fn integrations(&self) -> Result<Vec<Integration>, StoreError> {
        let rows = sqlx::query("SELECT * FROM integrations ORDER BY name")
            .fetch_all(&self.read)
            .await?;
        rows.iter().map(integration_from_row).collect()
    }

    async fn integration(&self, id: Uuid) -> Result<Option<Integration>, StoreError> {
        let row = sqlx::query("SELECT * FROM integrations WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&self.read)
            .await?;
        row.as_ref().map(integration_from_row).transpose()
    }

    async fn integration_keys(&self, id: Uuid) -> Result<Option<IntegrationKeys>, StoreError> {
        let row = sqlx::query(
            "SELECT allow_http, allow_private, ca_pem, secret_sealed, previous_sealed, \
             previous_until FROM integrations WHERE id = ?",
        )
        .bind(id.to_string())
        .fetch_optional(&self.read)
        .await?;
        Ok(row.map(|r| IntegrationKeys {
            id,
            allow_http: r.get::<i64, _>("allow_http") != 0,
            allow_private: r.get::<i64, _>("allow_private") != 0,
            ca_pem: r.get("ca_pem"),
            secret_sealed: r.get("secret_sealed"),
            previous: match (
                r.get::<Option<Vec<u8>>, _>("previous_sealed"),
                r.get::<Option<i64>, _>("previous_until"),
            ) {
                (Some(s), Some(until)) => Some((s, until)),
                _ => None,
            },
        }))
    }

    async fn integration_of(&self, technician: Uuid) -> Result<Option<Uuid>, StoreError> {
        let id: Option<String> = sqlx::query_scalar(
            "SELECT id FROM integrations WHERE technician_id = ? ORDER BY created_at LIMIT 1",
        )
        .bind(technician.to_string())
        .fetch_optional(&self.read)
        .await?;
        id.as_deref().map(parse_uuid).transpose()
    }

    async fn rotate_integration_secret(
        &self,
        actor: &Actor,
        id: Uuid,
        secret_sealed: &[u8],
        previous_until: i64,
    ) -> Result<Integration, HelpdeskError> {
        let mut tx = self.begin().await?;
        let n = sqlx::query(
            "UPDATE integrations SET previous_sealed = secret_sealed, previous_until = ?, \
             secret_sealed = ? WHERE id = ?",
        )
        .bind(previous_until)
        .bind(secret_sealed)
        .bind(id.to_string())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 0 {
            return Err(HelpdeskError::NotFound("integration"));
        }
        audit(
            &mut tx,
            actor,
            "integration.rotate_secret",
            Some(&id.to_string()),
            Some(&format!("previous_until={}", from_ms(previous_until))),
        )
        .await?;
        tx.commit().await?;
        self.integration(id)
            .await?
            .ok_or(HelpdeskError::NotFound("integration"))
    }

    async fn create_tasks(
        &self,
        batch: &[(&Actor, &TaskInsert)],
        online: &[Uuid],
    ) -> Result<Vec<Result<TaskCreated, HelpdeskError>>, StoreError> {
        let now = now_ms();
        let mut tx = self.begin().await?;
        let mut out = Vec::with_capacity(batch.len());
        for (actor, t) in batch {
            // Each task in a savepoint of its own: one refused (a key reused, a device gone)
            // leaves the others of the group standing.
            sqlx::query("SAVEPOINT task").execute(&mut *tx).await?;
            match create_task_in(&mut tx, actor, t, online, now).await {
                Ok(created) => {
                    sqlx::query("RELEASE task").execute(&mut *tx).await?;
                    out.push(Ok(created));
                }
                Err(e) => {
                    sqlx::query("ROLLBACK TO task").execute(&mut *tx).await?;
                    sqlx::query("RELEASE task").execute(&mut *tx).await?;
                    out.push(Err(e));
                }
            }
        }
        tx.commit().await?;
        Ok(out)
    }

    async fn task(&self, id: Uuid) -> Result<Option<Task>, StoreError> {
        let mut conn = self.read.acquire().await?;
        let Some(row) = sqlx::query(select_tasks!("WHERE id = ?"))
            .bind(id.to_string())
            .fetch_optional(&mut *conn)
            .await?
        else {
            return Ok(None);
        };
        let op: Option<String> = row.get("op_id");
        let (counts, targets) = match &op {
            Some(op) => (
                counts_in(&mut conn, op).await?,
                targets_in(&mut conn, op, false, MAX_TASK_TARGETS).await?,
            ),
            None => (OpCounts::default(), Vec::new()),
        };
        let mut task = task_from_row(&row, counts)?;
        task.targets = Some(targets);
        Ok(Some(task))
    }

    async fn tasks(
        &self,
        request_ref: Option<&str>,
        status: Option<TaskStatus>,
        limit: u32,
    ) -> Result<Vec<Task>, StoreError> {
        let rows = sqlx::query(select_tasks!(
            "WHERE (?1 IS NULL OR request_ref = ?1) \
             AND (?2 IS NULL OR status = ?2) ORDER BY created_at DESC, id LIMIT ?3"
        ))
        .bind(request_ref)
        .bind(status.map(TaskStatus::as_str))
        .bind(i64::from(limit))
        .fetch_all(&self.read)
        .await?;
        self.tasks_from_rows(rows).await
    }

    async fn cancel_task(
        &self,
        actor: &Actor,
        id: Uuid,
    ) -> Result<(Option<Uuid>, Vec<Uuid>), HelpdeskError> {
        let now = now_ms();
        let mut tx = self.begin().await?;
        let row = sqlx::query("SELECT op_id, status FROM tasks WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(HelpdeskError::NotFound("task"))?;
        let status = parse_status(row.get("status"))?;
        if status.is_final() {
            return Err(HelpdeskError::Finished(status.as_str()));
        }
        let reason = format!("cancelled by {}", actor.name);
        let op = parse_opt_uuid(row.get("op_id"))?;
        let devices = match op {
            Some(op) => {
                let devices = cancel_op_in(&mut tx, actor, op, now).await?;
                refresh_tasks(&mut tx, &BTreeSet::from([op]), Some(&reason), now).await?;
                devices
            }
            None => {
                change_status(
                    &mut tx,
                    &id.to_string(),
                    Some(status),
                    TaskStatus::Cancelled,
                    Some(&reason),
                    None,
                    now,
                )
                .await?;
                Vec::new()
            }
        };
        audit(&mut tx, actor, "task.cancel", Some(&id.to_string()), None).await?;
        tx.commit().await?;
        Ok((op, devices))
    }

    async fn due_scheduled(&self, now: i64) -> Result<(Vec<Uuid>, Option<i64>), StoreError> {
        let due: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM tasks WHERE status = 'scheduled' AND scheduled_for <= ? \
             ORDER BY scheduled_for LIMIT 100",
        )
        .bind(now)
        .fetch_all(&self.read)
        .await?;
        let next: Option<i64> = sqlx::query_scalar(
            "SELECT min(scheduled_for) FROM tasks WHERE status = 'scheduled' AND scheduled_for > ?",
        )
        .bind(now)
        .fetch_one(&self.read)
        .await?;
        let due = due
            .iter()
            .map(|s| parse_uuid(s))
            .collect::<Result<_, _>>()?;
        Ok((due, next))
    }

    async fn start_scheduled(
        &self,
        id: Uuid,
        online: &[Uuid],
    ) -> Result<Option<(crate::store::OpInsert, Vec<Uuid>)>, HelpdeskError> {
        let now = now_ms();
        let mut tx = self.begin().await?;
        let Some(row) = sqlx::query("SELECT plan FROM tasks WHERE id = ? AND status = 'scheduled'")
            .bind(id.to_string())
            .fetch_optional(&mut *tx)
            .await?
        else {
            return Ok(None);
        };
        let plan: TaskPlan = parse_json(row.get("plan"), "task plan")?;
        let op = plan.op_insert(now);
        let task = id.to_string();
        match insert_op(&mut tx, &Actor::hub(), &op, online, now).await {
            Ok(targets) => {
                sqlx::query("UPDATE tasks SET op_id = ? WHERE id = ?")
                    .bind(op.id.to_string())
                    .bind(&task)
                    .execute(&mut *tx)
                    .await?;
                change_status(
                    &mut tx,
                    &task,
                    Some(TaskStatus::Scheduled),
                    TaskStatus::Queued,
                    None,
                    None,
                    now,
                )
                .await?;
                tx.commit().await?;
                Ok(Some((op, targets)))
            }
            Err(OpError::NoTargets | OpError::UnknownDevice(_)) => {
                // Every device was disabled or deleted since the task was made.
                change_status(
                    &mut tx,
                    &task,
                    Some(TaskStatus::Scheduled),
                    TaskStatus::Failed,
                    Some("at the scheduled time none of the task's devices was enabled"),
                    None,
                    now,
                )
                .await?;
                tx.commit().await?;
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn close_request(
        &self,
        actor: &Actor,
        request_ref: &str,
        state: &str,
    ) -> Result<u64, StoreError> {
        let mut tx = self.begin().await?;
        let reason = format!("the helpdesk reported the request {state}");
        let tasks: Vec<String> = sqlx::query_scalar(
            "UPDATE tasks SET callbacks_stopped = ?, updated_at = ? \
             WHERE request_ref = ? AND callbacks_stopped IS NULL RETURNING id",
        )
        .bind(&reason)
        .bind(now_ms())
        .bind(request_ref)
        .fetch_all(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE task_events SET state = 'stopped', next_attempt_at = NULL \
             WHERE state = 'pending' AND task_id IN (SELECT value FROM json_each(?))",
        )
        .bind(to_json(&tasks)?)
        .execute(&mut *tx)
        .await?;
        audit(
            &mut tx,
            actor,
            "request.close",
            Some(request_ref),
            Some(&format!("state={state} tasks={}", tasks.len())),
        )
        .await?;
        tx.commit().await?;
        Ok(tasks.len() as u64)
    }

    async fn set_task_status(
        &self,
        actor: &Actor,
        id: Uuid,
        status: TaskStatus,
        reason: Option<&str>,
    ) -> Result<(Task, Option<(Uuid, Vec<Uuid>)>), HelpdeskError> {
        let now = now_ms();
        let task = id.to_string();
        let mut tx = self.begin().await?;
        let row = sqlx::query("SELECT status, op_id FROM tasks WHERE id = ?")
            .bind(&task)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(HelpdeskError::NotFound("task"))?;
        let old = parse_status(row.get("status"))?;
        if old.is_final() {
            return Err(HelpdeskError::Finished(old.as_str()));
        }
        // The task ends here: what its devices have not finished is cancelled with it.
        let stopped = match parse_opt_uuid(row.get("op_id"))? {
            Some(op) => Some((op, cancel_op_in(&mut tx, actor, op, now).await?)),
            None => None,
        };
        change_status(&mut tx, &task, Some(old), status, reason, None, now).await?;
        audit(
            &mut tx,
            actor,
            "task.status",
            Some(&task),
            Some(&format!("status={}", status.as_str())),
        )
        .await?;
        let out = Self::task_in(&mut tx, &task)
            .await?
            .ok_or(HelpdeskError::NotFound("task"))?;
        tx.commit().await?;
        Ok((out, stopped))
    }

    async fn task_by_key(
        &self,
        owner: &str,
        key: &str,
    ) -> Result<Option<(Uuid, Vec<u8>)>, StoreError> {
        let row =
            sqlx::query("SELECT id, request_hash FROM tasks WHERE idem_owner = ? AND idem_key = ?")
                .bind(owner)
                .bind(key)
                .fetch_optional(&self.read)
                .await?;
        row.map(|r| Ok((parse_uuid(r.get("id"))?, r.get("request_hash"))))
            .transpose()
    }

    async fn due_deliveries(
        &self,
        now: i64,
        busy: &[Uuid],
        limit: u32,
    ) -> Result<Vec<DueDelivery>, StoreError> {
        let busy = to_json(&busy.iter().map(Uuid::to_string).collect::<Vec<_>>())?;
        let rows = sqlx::query(
            "SELECT e.id, e.task_id, e.seq, e.body, e.attempts, e.created_at, t.callback_url, \
             t.integration_id FROM task_events e JOIN tasks t ON t.id = e.task_id \
             WHERE e.state = 'pending' AND e.next_attempt_at <= ?1 \
             AND e.task_id NOT IN (SELECT value FROM json_each(?3)) AND NOT EXISTS \
             (SELECT 1 FROM task_events p WHERE p.task_id = e.task_id AND p.state = 'pending' \
              AND p.seq < e.seq) ORDER BY e.next_attempt_at, e.seq LIMIT ?2",
        )
        .bind(now)
        .bind(i64::from(limit))
        .bind(busy)
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(due_from_row).collect()
    }

    async fn next_in_line(
        &self,
        task: Uuid,
        seq: i64,
        now: i64,
    ) -> Result<Option<DueDelivery>, StoreError> {
        let row = sqlx::query(
            "SELECT e.id, e.task_id, e.seq, e.body, e.attempts, e.created_at, t.callback_url, \
             t.integration_id FROM task_events e JOIN tasks t ON t.id = e.task_id \
             WHERE e.task_id = ? AND e.seq > ? AND e.state = 'pending' AND e.next_attempt_at <= ? \
             ORDER BY e.seq LIMIT 1",
        )
        .bind(task.to_string())
        .bind(seq)
        .bind(now)
        .fetch_optional(&self.read)
        .await?;
        row.as_ref().map(due_from_row).transpose()
    }

    async fn next_delivery_at(&self, now: i64) -> Result<Option<i64>, StoreError> {
        // A range scan of the partial index: its first row.
        Ok(sqlx::query_scalar(
            "SELECT min(next_attempt_at) FROM task_events WHERE state = 'pending' \
             AND next_attempt_at > ?",
        )
        .bind(now)
        .fetch_one(&self.read)
        .await?)
    }

    async fn record_attempts(
        &self,
        attempts: &[(String, AttemptRecord)],
    ) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        for (event_id, a) in attempts {
            record_one(&mut tx, event_id, a).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn deliveries(&self, task: Uuid) -> Result<Vec<Delivery>, StoreError> {
        let events = sqlx::query(
            "SELECT id, seq, status, state, created_at, next_attempt_at FROM task_events \
             WHERE task_id = ? ORDER BY seq",
        )
        .bind(task.to_string())
        .fetch_all(&self.read)
        .await?;
        let attempts = sqlx::query(
            "SELECT a.event_id, a.at, a.status_code, a.latency_ms, a.error \
             FROM delivery_attempts a JOIN task_events e ON e.id = a.event_id \
             WHERE e.task_id = ? ORDER BY a.at, a.rowid",
        )
        .bind(task.to_string())
        .fetch_all(&self.read)
        .await?;
        let mut by_event: HashMap<String, Vec<DeliveryAttempt>> = HashMap::new();
        for a in &attempts {
            by_event
                .entry(a.get("event_id"))
                .or_default()
                .push(DeliveryAttempt {
                    at: from_ms(a.get("at")),
                    status_code: a.get::<Option<i64>, _>("status_code").map(|c| c as u16),
                    latency_ms: a.get::<i64, _>("latency_ms") as u64,
                    error: a.get("error"),
                });
        }
        events
            .iter()
            .map(|e| {
                let id: String = e.get("id");
                Ok(Delivery {
                    sequence: e.get::<i64, _>("seq") as u64,
                    status: parse_status(e.get("status"))?,
                    state: parse_delivery_state(e.get("state"))
                        .ok_or_else(|| corrupt("delivery state"))?,
                    created_at: from_ms(e.get("created_at")),
                    next_attempt_at: e.get::<Option<i64>, _>("next_attempt_at").map(from_ms),
                    attempts: by_event.remove(&id).unwrap_or_default(),
                    id,
                })
            })
            .collect()
    }

    async fn redeliver(
        &self,
        actor: &Actor,
        task: Uuid,
        event_id: &str,
    ) -> Result<Redelivered, HelpdeskError> {
        let mut tx = self.begin().await?;
        let stopped: Option<Option<String>> =
            sqlx::query_scalar("SELECT callbacks_stopped FROM tasks WHERE id = ?")
                .bind(task.to_string())
                .fetch_optional(&mut *tx)
                .await?;
        match stopped {
            None => return Err(HelpdeskError::NotFound("task")),
            Some(Some(_)) => return Err(HelpdeskError::Finished("callbacks stopped")),
            Some(None) => {}
        }
        let n = sqlx::query(
            "UPDATE task_events SET state = 'pending', next_attempt_at = ?, attempts = 0 \
             WHERE id = ? AND task_id = ?",
        )
        .bind(now_ms())
        .bind(event_id)
        .bind(task.to_string())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 0 {
            return Err(HelpdeskError::NotFound("delivery"));
        }
        audit(
            &mut tx,
            actor,
            "task.redeliver",
            Some(&task.to_string()),
            Some(&format!("delivery={event_id}")),
        )
        .await?;
        tx.commit().await?;
        Ok(Redelivered {
            id: event_id.to_owned(),
            state: DeliveryState::Pending,
        })
    }

    async fn create_notification_rule(
        &self,
        actor: &Actor,
        r: &RuleInsert,
    ) -> Result<NotificationRule, HelpdeskError> {
        let now = now_ms();
        let mut tx = self.begin().await?;
        let found: Option<i64> = sqlx::query_scalar("SELECT 1 FROM technicians WHERE id = ?")
            .bind(r.technician_id.to_string())
            .fetch_optional(&mut *tx)
            .await?;
        if found.is_none() {
            return Err(HelpdeskError::NotFound("technician"));
        }
        let count: i64 =
            sqlx::query_scalar("SELECT count(*) FROM notification_rules WHERE technician_id = ?")
                .bind(r.technician_id.to_string())
                .fetch_one(&mut *tx)
                .await?;
        if count >= MAX_RULES {
            return Err(HelpdeskError::TooMany(
                "notification rules",
                MAX_RULES as u64,
            ));
        }
        sqlx::query(
            "INSERT INTO notification_rules (id, technician_id, channel, target, failures_only, \
             allow_http, allow_private, secret_sealed, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(r.id.to_string())
        .bind(r.technician_id.to_string())
        .bind(channel_str(r.channel))
        .bind(&r.target)
        .bind(r.on == NotifyOn::Failures)
        .bind(r.allow_http)
        .bind(r.allow_private)
        .bind(&r.secret_sealed)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        audit(
            &mut tx,
            actor,
            "notification.create",
            Some(&r.id.to_string()),
            Some(&format!(
                "technician={} channel={} on={:?}",
                r.technician_id,
                channel_str(r.channel),
                r.on
            )),
        )
        .await?;
        tx.commit().await?;
        Ok(NotificationRule {
            id: r.id,
            technician_id: r.technician_id,
            channel: r.channel,
            target: r.target.clone(),
            on: r.on,
            allow_http: r.allow_http,
            allow_private: r.allow_private,
            created_at: from_ms(now),
        })
    }

    async fn notification_rules(
        &self,
        technician: Uuid,
    ) -> Result<Vec<NotificationRule>, StoreError> {
        let rows = sqlx::query(
            "SELECT * FROM notification_rules WHERE technician_id = ? ORDER BY created_at, id",
        )
        .bind(technician.to_string())
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(NotificationRule {
                    id: parse_uuid(r.get("id"))?,
                    technician_id: parse_uuid(r.get("technician_id"))?,
                    channel: parse_channel(r.get("channel"))?,
                    target: r.get("target"),
                    on: if r.get::<i64, _>("failures_only") != 0 {
                        NotifyOn::Failures
                    } else {
                        NotifyOn::All
                    },
                    allow_http: r.get::<i64, _>("allow_http") != 0,
                    allow_private: r.get::<i64, _>("allow_private") != 0,
                    created_at: from_ms(r.get("created_at")),
                })
            })
            .collect()
    }

    async fn delete_notification_rule(
        &self,
        actor: &Actor,
        technician: Uuid,
        id: Uuid,
    ) -> Result<(), HelpdeskError> {
        let mut tx = self.begin().await?;
        let n = sqlx::query("DELETE FROM notification_rules WHERE id = ? AND technician_id = ?")
            .bind(id.to_string())
            .bind(technician.to_string())
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n == 0 {
            return Err(HelpdeskError::NotFound("notification rule"));
        }
        audit(
            &mut tx,
            actor,
            "notification.delete",
            Some(&id.to_string()),
            None,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn due_notifications(
        &self,
        now: i64,
        limit: u32,
    ) -> Result<Vec<DueNotification>, StoreError> {
        let rows = sqlx::query(
            "SELECT n.id, n.body, n.attempts, r.channel, r.target, r.allow_http, \
             r.allow_private, r.secret_sealed FROM notifications n \
             JOIN notification_rules r ON r.id = n.rule_id \
             WHERE n.state = 'pending' AND n.next_attempt_at <= ? \
             ORDER BY n.next_attempt_at LIMIT ?",
        )
        .bind(now)
        .bind(i64::from(limit))
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(DueNotification {
                    id: r.get("id"),
                    body: r.get("body"),
                    attempts: r.get::<i64, _>("attempts") as u32,
                    channel: parse_channel(r.get("channel"))?,
                    target: r.get("target"),
                    allow_http: r.get::<i64, _>("allow_http") != 0,
                    allow_private: r.get::<i64, _>("allow_private") != 0,
                    secret_sealed: r.get("secret_sealed"),
                })
            })
            .collect()
    }

    async fn next_notification_at(&self) -> Result<Option<i64>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT min(next_attempt_at) FROM notifications WHERE state = 'pending'",
        )
        .fetch_one(&self.read)
        .await?)
    }

    async fn record_notification(
        &self,
        id: &str,
        next: &AttemptNext,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        let (state, at) = match next {
            AttemptNext::Delivered => ("delivered", None),
            AttemptNext::RetryAt(t) => ("pending", Some(*t)),
            AttemptNext::Failed | AttemptNext::Gone => ("failed", None),
        };
        let mut tx = self.begin().await?;
        sqlx::query(
            "UPDATE notifications SET state = ?, next_attempt_at = ?, attempts = attempts + 1, \
             last_error = ? WHERE id = ? AND state = 'pending'",
        )
        .bind(state)
        .bind(at)
        .bind(error)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn catalog_domains(&self) -> Result<Vec<CatalogDomain>, StoreError> {
        let rows = sqlx::query(
            "SELECT coalesce(domain, '') AS d, count(*) FROM devices WHERE enabled = 1 \
             GROUP BY d COLLATE NOCASE ORDER BY d COLLATE NOCASE",
        )
        .fetch_all(&self.read)
        .await?;
        let users = sqlx::query(
            "SELECT u.domain, count(DISTINCT u.user) FROM device_users u \
             JOIN devices d ON d.id = u.device_id WHERE d.enabled = 1 GROUP BY u.domain",
        )
        .fetch_all(&self.read)
        .await?;
        let users: HashMap<String, u64> = users
            .iter()
            .map(|r| {
                (
                    r.get::<String, _>(0).to_lowercase(),
                    r.get::<i64, _>(1) as u64,
                )
            })
            .collect();
        Ok(rows
            .iter()
            .map(|r| {
                let name: String = r.get(0);
                CatalogDomain {
                    users: users.get(&name.to_lowercase()).copied().unwrap_or(0),
                    workstations: r.get::<i64, _>(1) as u64,
                    name,
                }
            })
            .collect())
    }

    async fn catalog_workstations(
        &self,
        domain: Option<&str>,
        query: Option<&str>,
        limit: u32,
        offset: u64,
    ) -> Result<Vec<CatalogWorkstation>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, hostname, domain, users FROM devices WHERE enabled = 1 \
             AND (?1 IS NULL OR coalesce(domain, '') = ?1 COLLATE NOCASE) \
             AND (?2 IS NULL OR hostname LIKE ?2 ESCAPE '\\') \
             ORDER BY hostname COLLATE NOCASE, id LIMIT ?3 OFFSET ?4",
        )
        .bind(domain)
        .bind(query.map(like_pattern))
        .bind(i64::from(limit))
        .bind(offset as i64)
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(CatalogWorkstation {
                    device_id: parse_uuid(r.get("id"))?,
                    hostname: r.get("hostname"),
                    domain: r.get("domain"),
                    online: false,
                    users: parse_json(r.get("users"), "device users")?,
                })
            })
            .collect()
    }

    async fn catalog_users(
        &self,
        domain: Option<&str>,
        query: Option<&str>,
        limit: u32,
        offset: u64,
    ) -> Result<Vec<CatalogUser>, StoreError> {
        let rows = sqlx::query(
            "SELECT min(u.user), json_group_array(d.hostname) FROM device_users u \
             JOIN devices d ON d.id = u.device_id WHERE d.enabled = 1 \
             AND (?1 IS NULL OR u.domain = ?1) AND (?2 IS NULL OR u.user LIKE ?2 ESCAPE '\\') \
             GROUP BY u.user ORDER BY u.user LIMIT ?3 OFFSET ?4",
        )
        .bind(domain)
        .bind(query.map(like_pattern))
        .bind(i64::from(limit))
        .bind(offset as i64)
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| {
                let mut workstations: Vec<String> = parse_json(r.get(1), "user workstations")?;
                workstations.sort();
                Ok(CatalogUser {
                    user: r.get(0),
                    workstations,
                })
            })
            .collect()
    }

    async fn resolve_workstation(&self, name: &str) -> Result<Vec<Uuid>, StoreError> {
        let ids: Vec<String> = match Uuid::parse_str(name) {
            Ok(id) => {
                sqlx::query_scalar("SELECT id FROM devices WHERE id = ? AND enabled = 1")
                    .bind(id.to_string())
                    .fetch_all(&self.read)
                    .await?
            }
            Err(_) => {
                sqlx::query_scalar(
                    "SELECT id FROM devices WHERE hostname = ? COLLATE NOCASE AND enabled = 1",
                )
                .bind(name)
                .fetch_all(&self.read)
                .await?
            }
        };
        ids.iter().map(|s| parse_uuid(s)).collect()
    }

    async fn resolve_user(&self, user: &str) -> Result<Vec<Uuid>, StoreError> {
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT u.device_id FROM device_users u JOIN devices d ON d.id = u.device_id \
             WHERE u.user = ? AND d.enabled = 1 ORDER BY u.device_id",
        )
        .bind(user)
        .fetch_all(&self.read)
        .await?;
        ids.iter().map(|s| parse_uuid(s)).collect()
    }
}

/// One task of a group commit (see [`HelpdeskStore::create_tasks`]), inside `tx`.
async fn create_task_in(
    tx: &mut Transaction<'static, Sqlite>,
    actor: &Actor,
    t: &TaskInsert,
    online: &[Uuid],
    now: i64,
) -> Result<TaskCreated, HelpdeskError> {
    let existing =
        sqlx::query("SELECT id, request_hash FROM tasks WHERE idem_owner = ? AND idem_key = ?")
            .bind(&t.idem_owner)
            .bind(&t.idem_key)
            .fetch_optional(&mut **tx)
            .await?;
    if let Some(row) = existing {
        let id = parse_uuid(row.get("id"))?;
        if row.get::<Vec<u8>, _>("request_hash") != t.request_hash {
            return Err(HelpdeskError::KeyReused(id));
        }
        // Possibly created earlier in this same group: read it inside the transaction.
        let task = SqliteStore::task_in(tx, &id.to_string())
            .await?
            .ok_or(HelpdeskError::NotFound("task"))?;
        return Ok(TaskCreated {
            task,
            created: false,
            targets: Vec::new(),
        });
    }
    let id = t.id.to_string();
    let (op_id, targets) = if t.scheduled_for.is_some() {
        (None, Vec::new())
    } else {
        let op = t.plan.op_insert(now);
        let targets = insert_op(tx, actor, &op, online, now).await?;
        (Some(op.id.to_string()), targets)
    };
    sqlx::query(
        "INSERT INTO tasks (id, request_ref, idem_owner, idem_key, request_hash, \
         integration_id, action, package_id, script_id, plan, status, callback_url, \
         scheduled_for, op_id, created_by, owner_id, created_at, updated_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'queued', ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&id)
    .bind(&t.request_ref)
    .bind(&t.idem_owner)
    .bind(&t.idem_key)
    .bind(&t.request_hash)
    .bind(t.integration_id.map(|i| i.to_string()))
    .bind(action_str(t.action))
    .bind(t.package_id.map(|i| i.to_string()))
    .bind(t.script_id.map(|i| i.to_string()))
    .bind(to_json(&t.plan)?)
    .bind(&t.callback_url)
    .bind(t.scheduled_for)
    .bind(&op_id)
    .bind(&actor.name)
    .bind(t.owner_id.map(|o| o.to_string()))
    .bind(now)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    let first = if t.scheduled_for.is_some() {
        TaskStatus::Scheduled
    } else {
        TaskStatus::Queued
    };
    change_status(tx, &id, None, first, None, None, now).await?;
    audit(
        tx,
        actor,
        "task.create",
        Some(&id),
        Some(&format!(
            "request={} action={} devices={}",
            t.request_ref,
            t.action.as_str(),
            t.plan.devices.len()
        )),
    )
    .await?;
    let task = SqliteStore::task_in(tx, &id)
        .await?
        .ok_or_else(|| corrupt("task vanished after insert"))?;
    Ok(TaskCreated {
        task,
        created: true,
        targets,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Synchronous;
    use ferry_proto::ops::{OnInterrupt, OpSpec};

    #[test]
    fn like_patterns_escape_wildcards_so_a_search_matches_literally() {
        assert_eq!(like_pattern("a_b%c\\"), "%a\\_b\\%c\\\\%");
    }

    fn task(key: &str, scheduled: bool, devices: Vec<Uuid>) -> TaskInsert {
        TaskInsert {
            id: Uuid::new_v4(),
            request_ref: format!("REQ-{key}"),
            idem_owner: "technician:t".into(),
            idem_key: key.into(),
            request_hash: key.as_bytes().to_vec(),
            integration_id: None,
            action: TaskAction::RunScript,
            package_id: None,
            script_id: None,
            plan: TaskPlan {
                spec: OpSpec::QuickAvScan,
                timeout_secs: 60,
                output_limit: 1024,
                on_interrupt: OnInterrupt::Fail,
                expires_in_secs: 3600,
                devices,
                after: None,
                wait: None,
            },
            callback_url: None,
            scheduled_for: scheduled.then(|| now_ms() + 3_600_000),
            owner_id: None,
        }
    }

    #[tokio::test]
    async fn a_refused_task_in_a_group_commit_leaves_the_others_created() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path(), Synchronous::Normal)
            .await
            .unwrap();
        let actor = Actor::hub();
        let device = Uuid::new_v4();
        sqlx::query(
            "INSERT INTO devices (id, token_hash, hostname, os_name, os_version, arch, \
             agent_version, enrolled_at) VALUES (?, x'00', 'pc', 'Linux', '1', 'x86_64', '0', 0)",
        )
        .bind(device.to_string())
        .execute(&store.write)
        .await
        .unwrap();
        let (a, mut bad, c) = (
            task("a", true, Vec::new()),
            task("b", false, vec![device]),
            task("c", true, Vec::new()),
        );
        // Refused only after its operation was written: the task's ID is taken.
        bad.id = a.id;
        // The same key again, in the same group: answered with the first, not created twice.
        let mut again = task("a", true, Vec::new());
        again.id = Uuid::new_v4();
        let group = [(&actor, &a), (&actor, &bad), (&actor, &c), (&actor, &again)];
        let results = store.create_tasks(&group, &[]).await.unwrap();
        assert!(results[0].as_ref().is_ok_and(|r| r.created));
        assert!(
            matches!(results[1], Err(HelpdeskError::Store(_))),
            "{:?}",
            results[1].as_ref().err()
        );
        assert!(results[2].as_ref().is_ok_and(|r| r.created));
        let repeat = results[3].as_ref().unwrap();
        assert!(!repeat.created);
        assert_eq!(repeat.task.id, a.id);
        let stored = store.tasks(None, None, 10).await.unwrap();
        let mut ids: Vec<Uuid> = stored.iter().map(|t| t.id).collect();
        ids.sort();
        let mut want = vec![a.id, c.id];
        want.sort();
        assert_eq!(ids, want);
        // The refused task's operation and its target went with it.
        let ops: i64 = sqlx::query_scalar(
            "SELECT (SELECT count(*) FROM ops) + (SELECT count(*) FROM op_targets)",
        )
        .fetch_one(&store.read)
        .await
        .unwrap();
        assert_eq!(ops, 0);
    }
}
