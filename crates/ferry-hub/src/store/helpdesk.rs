//! The helpdesk's state: the script library, integrations, tasks and the callback outbox.
//!
//! The outbox is what makes callbacks durable and exactly-once: every change of a task's
//! status (made here, or by an operation's targets moving in [`super::OpStore`]) writes one
//! `task_events` row *in the transaction that made the change*, so a status that committed has
//! its callback queued, and one that did not has none. The delivery worker then sends a task's
//! events strictly in sequence: only the oldest pending event of each task is ever due.

use async_trait::async_trait;
use ferry_proto::helpdesk::{
    CatalogDomain, CatalogUser, CatalogWorkstation, Delivery, DeliveryState, Integration,
    NotificationChannel, NotificationRule, NotifyOn, Redelivered, Script, ScriptParameter, Task,
    TaskAction, TaskStatus,
};
use ferry_proto::ops::{OnInterrupt, OpSpec};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Actor, OpInsert, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum HelpdeskError {
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("the name {0:?} is taken")]
    NameTaken(String),
    #[error("no technician with ID {0}")]
    UnknownTechnician(Uuid),
    #[error("the idempotency key was used before for a different request (task {0})")]
    KeyReused(Uuid),
    #[error("the task has finished ({0})")]
    Finished(&'static str),
    #[error("at most {1} {0}")]
    TooMany(&'static str, u64),
    #[error(transparent)]
    Op(#[from] super::OpError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for HelpdeskError {
    fn from(e: sqlx::Error) -> Self {
        HelpdeskError::Store(e.into())
    }
}

pub struct ScriptInsert {
    pub id: Uuid,
    pub name: String,
    pub description: String,
    pub content: String,
    pub sha256: String,
    pub parameters: Vec<ScriptParameter>,
}

pub struct IntegrationInsert {
    pub id: Uuid,
    pub name: String,
    pub callback_prefixes: Vec<String>,
    pub technician_id: Option<Uuid>,
    pub allow_http: bool,
    pub allow_private: bool,
    pub ca_pem: Option<String>,
    pub secret_sealed: Vec<u8>,
}

/// What the delivery worker needs of an integration: its rules and sealed secrets.
#[derive(Clone)]
pub struct IntegrationKeys {
    pub id: Uuid,
    pub allow_http: bool,
    pub allow_private: bool,
    pub ca_pem: Option<String>,
    pub secret_sealed: Vec<u8>,
    /// The previous secret while its grace period lasts (ms since the epoch).
    pub previous: Option<(Vec<u8>, i64)>,
}

/// What a status change put in the outboxes: its workers are woken only for what they have.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Queued {
    pub callbacks: bool,
    pub notifications: bool,
}

impl Queued {
    pub fn merge(&mut self, other: Queued) {
        self.callbacks |= other.callbacks;
        self.notifications |= other.notifications;
    }
}

/// The operation a task starts (now, or at its scheduled time), targets resolved.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskPlan {
    pub spec: OpSpec,
    pub timeout_secs: u32,
    pub output_limit: u32,
    pub on_interrupt: OnInterrupt,
    pub expires_in_secs: u64,
    pub devices: Vec<Uuid>,
    /// The task's reboot policy, when it forces one.
    #[serde(default)]
    pub after: Option<ferry_proto::ops::AfterSuccess>,
    /// The task's `when`, when it waits for a startup or a logon.
    #[serde(default)]
    pub wait: Option<ferry_proto::ops::WaitFor>,
}

impl TaskPlan {
    pub fn op_insert(&self, now_ms: i64) -> OpInsert {
        OpInsert {
            id: Uuid::new_v4(),
            spec: self.spec.clone(),
            expires_at: now_ms + (self.expires_in_secs as i64) * 1000,
            timeout_secs: self.timeout_secs,
            output_limit: self.output_limit,
            on_interrupt: self.on_interrupt,
            after: self.after,
            wait: self.wait.clone(),
            collections: Vec::new(),
            devices: self.devices.clone(),
        }
    }
}

pub struct TaskInsert {
    pub id: Uuid,
    pub request_ref: String,
    pub idem_owner: String,
    pub idem_key: String,
    pub request_hash: Vec<u8>,
    pub integration_id: Option<Uuid>,
    pub action: TaskAction,
    pub package_id: Option<Uuid>,
    pub script_id: Option<Uuid>,
    pub plan: TaskPlan,
    pub callback_url: Option<String>,
    /// Start at this time (ms) instead of now.
    pub scheduled_for: Option<i64>,
    /// The technician who created it: their notification rules apply.
    pub owner_id: Option<Uuid>,
}

pub struct RuleInsert {
    pub id: Uuid,
    pub technician_id: Uuid,
    pub channel: NotificationChannel,
    pub target: String,
    pub on: NotifyOn,
    pub allow_http: bool,
    pub allow_private: bool,
    pub secret_sealed: Option<Vec<u8>>,
}

/// One notification due for an attempt, with its rule.
#[derive(Debug, Clone)]
pub struct DueNotification {
    pub id: String,
    pub body: String,
    pub attempts: u32,
    pub channel: NotificationChannel,
    pub target: String,
    pub allow_http: bool,
    pub allow_private: bool,
    pub secret_sealed: Option<Vec<u8>>,
}

/// The result of creating a task.
pub struct TaskCreated {
    pub task: Task,
    /// False when the idempotency key returned an existing task.
    pub created: bool,
    /// Devices given the operation now (the caller delivers it to those connected).
    pub targets: Vec<Uuid>,
}

/// One callback due for an attempt.
#[derive(Debug, Clone)]
pub struct DueDelivery {
    pub event_id: String,
    pub task_id: Uuid,
    pub seq: i64,
    pub body: String,
    pub attempts: u32,
    pub created_at: i64,
    pub callback_url: String,
    pub integration_id: Option<Uuid>,
}

/// One attempt's record and what follows it.
pub struct AttemptRecord {
    pub at: i64,
    pub status_code: Option<u16>,
    pub latency_ms: u64,
    pub error: Option<String>,
    pub next: AttemptNext,
}

pub enum AttemptNext {
    Delivered,
    RetryAt(i64),
    /// Given up: the retry window is over.
    Failed,
    /// `410 Gone`: the helpdesk no longer wants updates for this task's request.
    Gone,
}

#[async_trait]
pub trait HelpdeskStore {
    /// Adds the script as the next version of its name.
    async fn add_script(&self, actor: &Actor, script: &ScriptInsert) -> Result<Script, StoreError>;
    async fn scripts(&self, include_retired: bool) -> Result<Vec<Script>, StoreError>;
    /// The script; its content only when `content`.
    async fn script(&self, id: Uuid, content: bool) -> Result<Option<Script>, StoreError>;
    async fn retire_script(&self, actor: &Actor, id: Uuid) -> Result<Script, HelpdeskError>;

    async fn create_integration(
        &self,
        actor: &Actor,
        integration: &IntegrationInsert,
    ) -> Result<Integration, HelpdeskError>;
    async fn integrations(&self) -> Result<Vec<Integration>, StoreError>;
    async fn integration(&self, id: Uuid) -> Result<Option<Integration>, StoreError>;
    async fn integration_keys(&self, id: Uuid) -> Result<Option<IntegrationKeys>, StoreError>;
    /// The integration this technician's keys act for, if any.
    async fn integration_of(&self, technician: Uuid) -> Result<Option<Uuid>, StoreError>;
    /// The new secret signs from now on; the old one alongside it until `previous_until`.
    async fn rotate_integration_secret(
        &self,
        actor: &Actor,
        id: Uuid,
        secret_sealed: &[u8],
        previous_until: i64,
    ) -> Result<Integration, HelpdeskError>;

    /// Creates each task, its first status and (unless scheduled) its operation; or returns
    /// the task its owner created before under the same key (`KeyReused` when the request
    /// differs). The whole group commits in one transaction (one fsync for many tasks), each
    /// task with its own result: one refused leaves the others created.
    async fn create_tasks(
        &self,
        batch: &[(&Actor, &TaskInsert)],
        online: &[Uuid],
    ) -> Result<Vec<Result<TaskCreated, HelpdeskError>>, StoreError>;
    /// The task with its first 1,000 targets.
    async fn task(&self, id: Uuid) -> Result<Option<Task>, StoreError>;
    async fn tasks(
        &self,
        request_ref: Option<&str>,
        status: Option<TaskStatus>,
        limit: u32,
    ) -> Result<Vec<Task>, StoreError>;
    /// Cancels the task: its unfinished targets become `cancelled` (returned: the devices
    /// running it are told to stop), or a scheduled task never starts.
    async fn cancel_task(
        &self,
        actor: &Actor,
        id: Uuid,
    ) -> Result<(Option<Uuid>, Vec<Uuid>), HelpdeskError>;
    /// Scheduled tasks whose time has come, with the time of the next one after them.
    async fn due_scheduled(&self, now: i64) -> Result<(Vec<Uuid>, Option<i64>), StoreError>;
    /// Starts a scheduled task's operation (nothing if it is no longer scheduled): the
    /// operation started and the devices to hand it to.
    async fn start_scheduled(
        &self,
        id: Uuid,
        online: &[Uuid],
    ) -> Result<Option<(OpInsert, Vec<Uuid>)>, HelpdeskError>;
    /// Stops callbacks for every task of the request; returns how many tasks.
    async fn close_request(
        &self,
        actor: &Actor,
        request_ref: &str,
        state: &str,
    ) -> Result<u64, StoreError>;
    /// An external endpoint manager's report: the task ends with this (final) status; its
    /// operation's unfinished targets are cancelled in the same transaction (returned: the
    /// operation and the devices to tell). A final task refuses with `Finished`.
    async fn set_task_status(
        &self,
        actor: &Actor,
        id: Uuid,
        status: TaskStatus,
        reason: Option<&str>,
    ) -> Result<(Task, Option<(Uuid, Vec<Uuid>)>), HelpdeskError>;
    /// The task this owner created under this idempotency key, with its request's hash.
    async fn task_by_key(
        &self,
        owner: &str,
        key: &str,
    ) -> Result<Option<(Uuid, Vec<u8>)>, StoreError>;

    /// At most `limit` callbacks due now, at most one per task (its oldest pending), leaving
    /// out the tasks in `busy` (those the worker has an attempt in flight for).
    async fn due_deliveries(
        &self,
        now: i64,
        busy: &[Uuid],
        limit: u32,
    ) -> Result<Vec<DueDelivery>, StoreError>;
    /// The task's next pending callback after `seq`, if it is due by `now` (the worker goes on
    /// with it as soon as `seq` was acknowledged, before that is recorded).
    async fn next_in_line(
        &self,
        task: Uuid,
        seq: i64,
        now: i64,
    ) -> Result<Option<DueDelivery>, StoreError>;
    /// When the next pending callback due after `now` is (a retry's time). A task's blocked
    /// events wait behind its oldest, which is either due later (counted here) or in flight.
    async fn next_delivery_at(&self, now: i64) -> Result<Option<i64>, StoreError>;
    /// Records attempts (event id, attempt) in one transaction and moves their events on.
    async fn record_attempts(&self, attempts: &[(String, AttemptRecord)])
    -> Result<(), StoreError>;
    async fn deliveries(&self, task: Uuid) -> Result<Vec<Delivery>, StoreError>;
    /// Queues the delivery again, now (its `webhook-id` unchanged).
    async fn redeliver(
        &self,
        actor: &Actor,
        task: Uuid,
        event_id: &str,
    ) -> Result<Redelivered, HelpdeskError>;

    async fn create_notification_rule(
        &self,
        actor: &Actor,
        rule: &RuleInsert,
    ) -> Result<NotificationRule, HelpdeskError>;
    async fn notification_rules(
        &self,
        technician: Uuid,
    ) -> Result<Vec<NotificationRule>, StoreError>;
    async fn delete_notification_rule(
        &self,
        actor: &Actor,
        technician: Uuid,
        id: Uuid,
    ) -> Result<(), HelpdeskError>;
    /// At most `limit` notifications due now.
    async fn due_notifications(
        &self,
        now: i64,
        limit: u32,
    ) -> Result<Vec<DueNotification>, StoreError>;
    async fn next_notification_at(&self) -> Result<Option<i64>, StoreError>;
    async fn record_notification(
        &self,
        id: &str,
        next: &AttemptNext,
        error: Option<&str>,
    ) -> Result<(), StoreError>;

    /// The directory: domains with their workstation and user counts.
    async fn catalog_domains(&self) -> Result<Vec<CatalogDomain>, StoreError>;
    async fn catalog_workstations(
        &self,
        domain: Option<&str>,
        query: Option<&str>,
        limit: u32,
        offset: u64,
    ) -> Result<Vec<CatalogWorkstation>, StoreError>;
    async fn catalog_users(
        &self,
        domain: Option<&str>,
        query: Option<&str>,
        limit: u32,
        offset: u64,
    ) -> Result<Vec<CatalogUser>, StoreError>;
    /// Enabled devices by hostname (case-insensitive) or ID string.
    async fn resolve_workstation(&self, name: &str) -> Result<Vec<Uuid>, StoreError>;
    /// Enabled devices the user (`DOMAIN\name`) is reported logged on to.
    async fn resolve_user(&self, user: &str) -> Result<Vec<Uuid>, StoreError>;
}

/// A delivery state's name in the database.
pub fn delivery_state_str(s: DeliveryState) -> &'static str {
    match s {
        DeliveryState::Pending => "pending",
        DeliveryState::Delivered => "delivered",
        DeliveryState::Failed => "failed",
        DeliveryState::Stopped => "stopped",
    }
}

pub fn parse_delivery_state(s: &str) -> Option<DeliveryState> {
    [
        DeliveryState::Pending,
        DeliveryState::Delivered,
        DeliveryState::Failed,
        DeliveryState::Stopped,
    ]
    .into_iter()
    .find(|d| delivery_state_str(*d) == s)
}
