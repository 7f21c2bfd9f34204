//! The helpdesk's side of Ferry: the catalogue it offers technicians, the script library,
//! integrations (where status callbacks go and how they are signed), tasks made from service
//! requests, and the callbacks themselves.
//!
//! A task is a client operation with a service request attached: the hub turns it into one
//! operation on the devices its targets resolve to, aggregates the devices' states into one
//! [`TaskStatus`], and POSTs every change of that status to the task's callback URL, signed
//! as the Standard Webhooks specification describes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::Timestamp;
use crate::ops::{OpCounts, TargetState};

// ----- catalogue --------------------------------------------------------------------------

/// How a package installs, as a helpdesk form shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InstallerType {
    Msi,
    Exe,
    Script,
}

impl InstallerType {
    pub fn as_str(self) -> &'static str {
        match self {
            InstallerType::Msi => "msi",
            InstallerType::Exe => "exe",
            InstallerType::Script => "script",
        }
    }

    /// What a helpdesk may ask of a package of this type: Windows Installer can also advertise.
    pub fn actions(self) -> &'static [TaskAction] {
        match self {
            InstallerType::Msi => &[
                TaskAction::Install,
                TaskAction::Advertise,
                TaskAction::Uninstall,
            ],
            InstallerType::Exe | InstallerType::Script => {
                &[TaskAction::Install, TaskAction::Uninstall]
            }
        }
    }
}

/// How a package installs: Windows Installer when its installer is the MSI itself, `exe` for a
/// setup program without a wrapper, `script` for wrappers (PSADT) and scripts.
pub fn installer_type(p: &crate::package::Proposal) -> InstallerType {
    match (p.installer, &p.wrapper, &p.exe_file) {
        (Some(crate::package::Installer::Msi), _, _) => InstallerType::Msi,
        (_, None, Some(_)) => InstallerType::Exe,
        _ => InstallerType::Script,
    }
}

/// `GET /api/v1/catalog/software`: one offerable package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogSoftware {
    pub package_id: Uuid,
    pub vendor: Option<String>,
    pub name: String,
    pub version: Option<String>,
    pub language: Option<String>,
    pub installer_type: InstallerType,
    pub actions: Vec<TaskAction>,
}

/// `GET /api/v1/catalog/domains`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogDomain {
    /// The domain as devices report it; devices in none are listed under `""`.
    pub name: String,
    pub workstations: u64,
    pub users: u64,
}

/// `GET /api/v1/catalog/workstations?domain=&q=`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogWorkstation {
    pub device_id: Uuid,
    pub hostname: String,
    pub domain: Option<String>,
    pub online: bool,
    /// Users last reported logged on, `DOMAIN\name`.
    pub users: Vec<String>,
}

/// `GET /api/v1/catalog/users?domain=&q=`: a user known from agent inventory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogUser {
    /// `DOMAIN\name`, as a task's `targets.users` takes it.
    pub user: String,
    /// The workstations the user was last reported logged on to.
    pub workstations: Vec<String>,
}

/// One page of a catalogue list. Lists are ordered and stable; `next_offset` is present while
/// more follow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogPage<T> {
    pub items: Vec<T>,
    pub next_offset: Option<u64>,
}

// ----- script library ---------------------------------------------------------------------

/// A parameter a library script declares; values are passed positionally, in declared order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScriptParameter {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub default: Option<String>,
}

/// `POST /api/v1/scripts`: a new script, or a new version of the script with this name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewScript {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub content: String,
    #[serde(default)]
    pub parameters: Vec<ScriptParameter>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Script {
    pub id: Uuid,
    pub name: String,
    /// 1 for the first script of this name, then one more for each new version.
    pub version: u32,
    pub description: String,
    /// SHA-256 of the content, hex.
    pub sha256: String,
    pub parameters: Vec<ScriptParameter>,
    pub created_by: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: Timestamp,
    pub retired: bool,
    /// Only in `GET /api/v1/scripts/{id}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
}

// ----- integrations -----------------------------------------------------------------------

/// `POST /api/v1/integrations` (administrators).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewIntegration {
    pub name: String,
    /// Callback URLs of its tasks must start with one of these.
    pub callback_prefixes: Vec<String>,
    /// The technician whose API keys the helpdesk calls Ferry with; tasks that technician
    /// creates use this integration unless they name another.
    #[serde(default)]
    pub technician_id: Option<Uuid>,
    /// Callbacks over plain `http://` (default: HTTPS only).
    #[serde(default)]
    pub allow_http: bool,
    /// Callbacks to loopback, private and link-local addresses (default: refused).
    #[serde(default)]
    pub allow_private: bool,
    /// PEM certificate(s) of the private CA the helpdesk's HTTPS certificate chains to; when
    /// given, only these roots are trusted for its callbacks.
    #[serde(default)]
    pub ca_pem: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Integration {
    pub id: Uuid,
    pub name: String,
    pub callback_prefixes: Vec<String>,
    pub technician_id: Option<Uuid>,
    pub allow_http: bool,
    pub allow_private: bool,
    pub has_ca: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: Timestamp,
    /// While set, callbacks carry a signature by the previous secret too.
    #[serde(with = "time::serde::rfc3339::option")]
    pub previous_secret_until: Option<Timestamp>,
}

/// The answer to creating an integration or rotating its secret: the only time the signing
/// secret (`whsec_<base64>`) is shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntegrationSecret {
    #[serde(flatten)]
    pub integration: Integration,
    pub signing_secret: String,
}

/// `POST /api/v1/integrations/{id}/rotate-secret`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotateSigningSecret {
    /// How long the old secret keeps signing beside the new one (default 24 h, at most 7 d).
    #[serde(default)]
    pub grace_secs: Option<u64>,
}

// ----- tasks ------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskAction {
    Install,
    Uninstall,
    Advertise,
    RunScript,
}

impl TaskAction {
    pub fn as_str(self) -> &'static str {
        match self {
            TaskAction::Install => "install",
            TaskAction::Uninstall => "uninstall",
            TaskAction::Advertise => "advertise",
            TaskAction::RunScript => "run_script",
        }
    }
}

/// Whom a deployment is for, as the helpdesk form says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeployFor {
    User,
    Workstation,
}

/// When on the device the action runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunWhen {
    /// As soon as the device has it (the default).
    Immediately,
    DuringLogin,
    AfterLogin,
    DuringStartup,
    AfterStartup,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RebootPolicy {
    ForceReboot,
    ForceShutdown,
    AllowSkip,
}

/// A date and a wall-clock time in a time zone: `{"date": "2026-12-24", "time": "18:30",
/// "time_zone": "Europe/Berlin"}`. The time zone is `UTC`, a fixed offset `±HH:MM` or an
/// IANA name (daylight saving applies).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    pub date: String,
    pub time: String,
    pub time_zone: String,
}

/// The run-as account. The password is encrypted at rest and never returned.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunAs {
    pub user: String,
    pub password: String,
}

impl std::fmt::Debug for RunAs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunAs")
            .field("user", &self.user)
            .field("password", &"***")
            .finish()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackageSettings {
    /// When given, must match the package's installer type.
    #[serde(default)]
    pub installer_type: Option<InstallerType>,
    #[serde(default)]
    pub run_as: Option<RunAs>,
    /// Install from this UNC share (`\\server\share\…`) instead of downloading from the hub.
    #[serde(default)]
    pub copy_from_share: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeploymentSettings {
    /// The domain users and workstations are named in when they carry none.
    #[serde(default)]
    pub domain: Option<String>,
    #[serde(default, rename = "for")]
    pub deploy_for: Option<DeployFor>,
    #[serde(default)]
    pub when: Option<RunWhen>,
    #[serde(default)]
    pub schedule: Option<Schedule>,
    #[serde(default)]
    pub reboot: Option<RebootPolicy>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskTargets {
    /// Hostnames or device IDs.
    #[serde(default)]
    pub workstations: Vec<String>,
    /// `DOMAIN\name` (or `name` with `deployment.domain`): the workstations the user is
    /// reported logged on to.
    #[serde(default)]
    pub users: Vec<String>,
}

/// `POST /api/v1/tasks`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewTask {
    /// The service request this task serves.
    pub request_ref: String,
    /// The same key (per caller) returns the same task instead of creating another.
    pub idempotency_key: String,
    /// Which integration's callbacks apply (default: the caller's own integration, if any).
    #[serde(default)]
    pub integration_id: Option<Uuid>,
    pub action: TaskAction,
    #[serde(default)]
    pub package_id: Option<Uuid>,
    #[serde(default)]
    pub script_id: Option<Uuid>,
    /// Values of the script's declared parameters.
    #[serde(default)]
    pub arguments: BTreeMap<String, String>,
    #[serde(default)]
    pub package_settings: PackageSettings,
    #[serde(default)]
    pub deployment: DeploymentSettings,
    pub targets: TaskTargets,
    #[serde(default)]
    pub callback_url: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    Queued,
    Scheduled,
    InProgress,
    Succeeded,
    PartiallySucceeded,
    Failed,
    Cancelled,
    Expired,
}

impl TaskStatus {
    pub const ALL: [TaskStatus; 8] = [
        TaskStatus::Queued,
        TaskStatus::Scheduled,
        TaskStatus::InProgress,
        TaskStatus::Succeeded,
        TaskStatus::PartiallySucceeded,
        TaskStatus::Failed,
        TaskStatus::Cancelled,
        TaskStatus::Expired,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Queued => "queued",
            TaskStatus::Scheduled => "scheduled",
            TaskStatus::InProgress => "in_progress",
            TaskStatus::Succeeded => "succeeded",
            TaskStatus::PartiallySucceeded => "partially_succeeded",
            TaskStatus::Failed => "failed",
            TaskStatus::Cancelled => "cancelled",
            TaskStatus::Expired => "expired",
        }
    }

    pub fn parse(s: &str) -> Option<TaskStatus> {
        TaskStatus::ALL.into_iter().find(|t| t.as_str() == s)
    }

    pub fn is_final(self) -> bool {
        matches!(
            self,
            TaskStatus::Succeeded
                | TaskStatus::PartiallySucceeded
                | TaskStatus::Failed
                | TaskStatus::Cancelled
                | TaskStatus::Expired
        )
    }

    /// The task's status from its operation's per-device counts.
    pub fn aggregate(counts: &OpCounts) -> TaskStatus {
        if counts.total == 0 {
            return TaskStatus::Queued;
        }
        if !counts.finished() {
            let started = counts.running
                + counts.succeeded
                + counts.failed
                + counts.expired
                + counts.cancelled;
            return if started == 0 {
                TaskStatus::Queued
            } else {
                TaskStatus::InProgress
            };
        }
        if counts.succeeded == counts.total {
            TaskStatus::Succeeded
        } else if counts.succeeded > 0 {
            TaskStatus::PartiallySucceeded
        } else if counts.cancelled == counts.total {
            TaskStatus::Cancelled
        } else if counts.expired == counts.total {
            TaskStatus::Expired
        } else {
            TaskStatus::Failed
        }
    }
}

/// One device of a task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskTarget {
    pub device_id: Uuid,
    pub hostname: String,
    pub state: TargetState,
    pub exit_code: Option<i32>,
    /// Why it failed, when it did.
    pub error: Option<String>,
    pub reboot_required: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task {
    pub id: Uuid,
    pub request_ref: String,
    pub integration_id: Option<Uuid>,
    pub action: TaskAction,
    pub package_id: Option<Uuid>,
    pub script_id: Option<Uuid>,
    pub status: TaskStatus,
    /// Why the task is where it is (a failure's cause, why callbacks stopped).
    pub reason: Option<String>,
    pub callback_url: Option<String>,
    /// Why callbacks stopped, once they did (the helpdesk answered 410 Gone, or closed the
    /// request).
    pub callbacks_stopped: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub scheduled_for: Option<Timestamp>,
    pub op_id: Option<Uuid>,
    pub counts: OpCounts,
    pub created_by: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: Timestamp,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: Timestamp,
    /// Only in `GET /api/v1/tasks/{id}` (the first 1,000 devices by hostname).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub targets: Option<Vec<TaskTarget>>,
}

/// `POST /api/v1/requests/{ref}/close`: the helpdesk deleted or archived the request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloseRequest {
    /// e.g. `deleted`, `archived`, `closed`.
    pub state: String,
}

/// `POST /api/v1/tasks/{id}/status` (signed by the integration's secret): an external endpoint
/// manager reporting the task's outcome. The task's ID is part of the signed body, so that a
/// signed report cannot be replayed against another task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InboundStatus {
    pub task_id: Uuid,
    /// A final status: `succeeded`, `partially_succeeded`, `failed` or `cancelled`.
    pub status: TaskStatus,
    #[serde(default)]
    pub reason: Option<String>,
}

// ----- callbacks --------------------------------------------------------------------------

/// The body of every callback: a Standard Webhooks event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallbackEvent {
    /// `task.status_changed`.
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(with = "time::serde::rfc3339")]
    pub timestamp: Timestamp,
    pub data: TaskChange,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskChange {
    pub task_id: Uuid,
    pub request_ref: String,
    /// 1 for the task's first status, one more per change: a receiver can discard anything
    /// not newer than what it holds.
    pub sequence: u64,
    pub status: TaskStatus,
    pub previous_status: Option<TaskStatus>,
    pub reason: Option<String>,
    pub counts: OpCounts,
    /// Devices that failed, expired or were cancelled, with the reason (at most 100).
    pub failures: Vec<TaskTarget>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// Waiting for its turn or its next attempt.
    Pending,
    Delivered,
    /// Given up after the retry window.
    Failed,
    /// Not sent: callbacks for the request stopped.
    Stopped,
}

/// One attempt to deliver a callback.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryAttempt {
    #[serde(with = "time::serde::rfc3339")]
    pub at: Timestamp,
    pub status_code: Option<u16>,
    pub latency_ms: u64,
    pub error: Option<String>,
}

/// `GET /api/v1/tasks/{id}/deliveries`: one status change and its delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    /// The `webhook-id`, the same on every attempt.
    pub id: String,
    pub sequence: u64,
    pub status: TaskStatus,
    pub state: DeliveryState,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: Timestamp,
    #[serde(with = "time::serde::rfc3339::option")]
    pub next_attempt_at: Option<Timestamp>,
    pub attempts: Vec<DeliveryAttempt>,
}

/// `POST /api/v1/tasks/{id}/deliveries/{delivery}/redeliver` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Redelivered {
    pub id: String,
    pub state: DeliveryState,
}

// ----- notification rules -------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotificationChannel {
    /// POST the same signed event a callback carries.
    Webhook,
    /// An e-mail through the hub's SMTP server.
    Email,
}

/// Which changes of a technician's tasks notify.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotifyOn {
    #[default]
    All,
    /// `failed`, `partially_succeeded` and `expired` only.
    Failures,
}

/// `POST /api/v1/technicians/{id}/notifications`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewNotificationRule {
    pub channel: NotificationChannel,
    /// The webhook's URL, or the e-mail address.
    pub target: String,
    #[serde(default)]
    pub on: NotifyOn,
    /// Webhook over plain HTTP (administrators only).
    #[serde(default)]
    pub allow_http: bool,
    /// Webhook to loopback, private or link-local addresses (administrators only).
    #[serde(default)]
    pub allow_private: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotificationRule {
    pub id: Uuid,
    pub technician_id: Uuid,
    pub channel: NotificationChannel,
    pub target: String,
    pub on: NotifyOn,
    pub allow_http: bool,
    pub allow_private: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: Timestamp,
}

/// The answer to creating a rule: a webhook's signing secret is shown this once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatedNotificationRule {
    #[serde(flatten)]
    pub rule: NotificationRule,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_secret: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(pairs: &[(TargetState, u64)]) -> OpCounts {
        let mut c = OpCounts::default();
        for (s, n) in pairs {
            c.add(*s, *n);
        }
        c
    }

    #[test]
    fn a_task_is_queued_until_a_device_starts() {
        let c = counts(&[(TargetState::Offline, 1), (TargetState::Delivered, 2)]);
        assert_eq!(TaskStatus::aggregate(&c), TaskStatus::Queued);
    }

    #[test]
    fn a_task_is_in_progress_once_one_device_runs_or_finishes() {
        let c = counts(&[(TargetState::Pending, 1), (TargetState::Succeeded, 1)]);
        assert_eq!(TaskStatus::aggregate(&c), TaskStatus::InProgress);
    }

    #[test]
    fn a_task_where_some_devices_succeeded_partially_succeeded() {
        let c = counts(&[(TargetState::Failed, 1), (TargetState::Succeeded, 1)]);
        assert_eq!(TaskStatus::aggregate(&c), TaskStatus::PartiallySucceeded);
    }

    #[test]
    fn a_task_where_no_device_succeeded_failed_unless_all_cancelled_or_expired() {
        let all = |s| counts(&[(s, 2)]);
        assert_eq!(
            TaskStatus::aggregate(&all(TargetState::Cancelled)),
            TaskStatus::Cancelled
        );
        assert_eq!(
            TaskStatus::aggregate(&all(TargetState::Expired)),
            TaskStatus::Expired
        );
        let mixed = counts(&[(TargetState::Expired, 1), (TargetState::Cancelled, 1)]);
        assert_eq!(TaskStatus::aggregate(&mixed), TaskStatus::Failed);
    }

    #[test]
    fn a_run_as_password_never_appears_in_debug_output() {
        let r = RunAs {
            user: "CORP\\svc".into(),
            password: "hunter2".into(),
        };
        assert!(!format!("{r:?}").contains("hunter2"));
    }
}
