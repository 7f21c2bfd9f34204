//! Devices, collections, deployments and client operations: the administrator's side of the
//! endpoint agents.
//!
//! A client operation targets collections and devices; the hub expands the targets once, when
//! the operation starts, into one durable record per device that moves
//! `pending|offline → delivered → running → succeeded | failed | expired | cancelled`.
//! `offline` is `pending` for a device that was not connected: it is delivered when the device
//! returns, unless the operation expired first.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::Timestamp;
use crate::agent::Inventory;

// ----- enrolment secrets ------------------------------------------------------------------

/// `POST /api/v1/enrollment-secrets`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewEnrollmentSecret {
    pub name: String,
    /// Seconds from now after which the secret no longer enrols devices.
    #[serde(default)]
    pub expires_in_secs: Option<u64>,
    /// How many devices it may enrol.
    #[serde(default)]
    pub max_uses: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollmentSecret {
    pub id: Uuid,
    pub name: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: Timestamp,
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<Timestamp>,
    pub max_uses: Option<u32>,
    pub uses: u32,
    pub revoked: bool,
}

/// The answer to creating a secret: the only time the secret itself is shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatedEnrollmentSecret {
    #[serde(flatten)]
    pub info: EnrollmentSecret,
    pub secret: String,
}

// ----- devices ----------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Device {
    pub id: Uuid,
    #[serde(flatten)]
    pub inventory: Inventory,
    pub enabled: bool,
    /// Has a live session (WebSocket or long poll) on this hub now.
    pub online: bool,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_seen: Option<Timestamp>,
    /// The address the hub saw the last session come from.
    pub remote_addr: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub enrolled_at: Timestamp,
    /// Collections the device belongs to.
    #[serde(default)]
    pub collections: Vec<Uuid>,
    /// Present while the device reports rule-matched fields (hostname, domain, OS, OS
    /// version, architecture) that differ from the ones the hub vouches for: what rule
    /// collections still match, until an administrator approves the change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved: Option<RuleFacts>,
}

/// `POST /api/v1/devices/{id}/approve-inventory` (the body may be left out).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApproveInventory {
    /// The reported values the administrator saw: refused (409) if the device reported
    /// others since.
    #[serde(default)]
    pub expected: Option<RuleFacts>,
}

/// The inventory fields rule collections match. The agent declares them itself, so the hub
/// matches them as enrolled (the enrolment secret's holder vouched for the device) or as an
/// administrator approved a change — never as merely reported.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleFacts {
    pub hostname: String,
    pub os_name: String,
    pub os_version: String,
    pub domain: Option<String>,
    pub arch: String,
}

impl RuleFacts {
    pub fn of(inventory: &crate::agent::Inventory) -> Self {
        RuleFacts {
            hostname: inventory.hostname.clone(),
            os_name: inventory.os_name.clone(),
            os_version: inventory.os_version.clone(),
            domain: inventory.domain.clone(),
            arch: inventory.arch.clone(),
        }
    }

    /// `inventory` with these facts in place of its own rule-matched fields.
    pub fn over(&self, inventory: &crate::agent::Inventory) -> crate::agent::Inventory {
        crate::agent::Inventory {
            hostname: self.hostname.clone(),
            os_name: self.os_name.clone(),
            os_version: self.os_version.clone(),
            domain: self.domain.clone(),
            arch: self.arch.clone(),
            ..inventory.clone()
        }
    }
}

/// `PATCH /api/v1/devices/{id}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateDevice {
    #[serde(default)]
    pub enabled: Option<bool>,
}

/// `POST /api/v1/devices/import`: pre-registers devices (imaging, bulk provisioning) without
/// enrolment secrets. Each gets its token in the answer, once, to install on the device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportDevices {
    pub devices: Vec<crate::agent::Inventory>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportedDevice {
    pub device_id: Uuid,
    /// `<device id>:<secret>`, the device's `device.token`.
    pub token: String,
}

// ----- collections ------------------------------------------------------------------------

/// A rule on inventory fields. Each present field is a case-insensitive glob (`*` any run of
/// characters, `?` one character) that must match; an empty rule matches every device.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CollectionRule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os_version: Option<String>,
    /// Matches the device's domain; a device without one has the empty domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arch: Option<String>,
}

/// `POST /api/v1/collections`: a rule collection (`rule`) or a static one (`devices`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewCollection {
    pub name: String,
    #[serde(default)]
    pub rule: Option<CollectionRule>,
    #[serde(default)]
    pub devices: Vec<Uuid>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Collection {
    pub id: Uuid,
    pub name: String,
    /// `None` for a static collection.
    pub rule: Option<CollectionRule>,
    pub member_count: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: Timestamp,
}

/// `POST /api/v1/collections/{id}/members` (static collections only).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MembershipChange {
    #[serde(default)]
    pub add: Vec<Uuid>,
    #[serde(default)]
    pub remove: Vec<Uuid>,
}

// ----- deployments ------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeploymentAction {
    Install,
    Uninstall,
}

/// How an agent tells whether a package is installed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Detection {
    /// Windows Installer knows this product code (Windows only).
    MsiProductCode(String),
    /// This file exists.
    File(String),
    /// This script (PowerShell on Windows, `sh` elsewhere) exits 0 and prints something.
    Script(String),
}

/// `POST /api/v1/deployments`: a package, assigned to a collection, with an action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewDeployment {
    pub package_id: Uuid,
    pub collection_id: Uuid,
    pub action: DeploymentAction,
    pub detection: Detection,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deployment {
    pub id: Uuid,
    pub package_id: Uuid,
    pub collection_id: Uuid,
    pub action: DeploymentAction,
    pub detection: Detection,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: Timestamp,
}

/// What an agent needs to run a package: where to get it and how.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageRef {
    pub id: Uuid,
    pub filename: String,
    pub size: u64,
    pub sha256: String,
    /// Command lines and installer details from the package's metadata.
    pub install_command: Option<String>,
    pub uninstall_command: Option<String>,
    /// The MSI inside the package (relative path), when it has one.
    pub msi_file: Option<String>,
    pub product_code: Option<String>,
    /// Copy the package's files from this network folder (`\\server\share\…`) instead of
    /// downloading it from the hub (a helpdesk task's `copy_from_share`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copy_from: Option<String>,
}

/// `\\server\share\rest…` split into `(\\server\share, [rest…])`, or why it is not a UNC
/// folder path Ferry accepts (no `.` or `..` components, nothing empty).
pub fn split_unc(unc: &str) -> Result<(String, Vec<&str>), String> {
    let bad = |why: &str| format!("{unc:?} is not a UNC path (\\\\server\\share\\folder): {why}");
    let rest = unc
        .strip_prefix("\\\\")
        .ok_or_else(|| bad("it must start with \\\\"))?;
    let parts: Vec<&str> = rest.trim_end_matches('\\').split('\\').collect();
    if parts.len() < 2 {
        return Err(bad("it must name a server and a share"));
    }
    for p in &parts {
        if p.is_empty() || *p == "." || *p == ".." {
            return Err(bad("empty, `.` and `..` parts are not allowed"));
        }
        if p.chars()
            .any(|c| c.is_control() || matches!(c, '/' | '<' | '>' | ':' | '"' | '|' | '?' | '*'))
        {
            return Err(bad("a part holds a character Windows paths cannot"));
        }
    }
    Ok((
        format!("\\\\{}\\{}", parts[0], parts[1]),
        parts[2..].to_vec(),
    ))
}

/// One entry of an agent's policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyDeployment {
    pub deployment_id: Uuid,
    pub action: DeploymentAction,
    pub detection: Detection,
    pub package: PackageRef,
}

// ----- client operations ------------------------------------------------------------------

/// What an operation does. ConfigMgr's client-notification task types are 1 (machine policy),
/// 2 (full scan) and 3 (quick scan); see [`OpSpec::task_type`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum OpSpec {
    RequestMachinePolicy,
    FullAvScan,
    QuickAvScan,
    RunScript {
        script: String,
        #[serde(default)]
        args: Vec<String>,
    },
    Install {
        package: PackageRef,
    },
    Uninstall {
        package: PackageRef,
    },
    /// Windows Installer advertisement (`msiexec /jm`); MSI packages only.
    Advertise {
        package: PackageRef,
    },
    Restart,
}

impl OpSpec {
    /// The kind's name on the wire.
    pub fn kind(&self) -> &'static str {
        match self {
            OpSpec::RequestMachinePolicy => "request_machine_policy",
            OpSpec::FullAvScan => "full_av_scan",
            OpSpec::QuickAvScan => "quick_av_scan",
            OpSpec::RunScript { .. } => "run_script",
            OpSpec::Install { .. } => "install",
            OpSpec::Uninstall { .. } => "uninstall",
            OpSpec::Advertise { .. } => "advertise",
            OpSpec::Restart => "restart",
        }
    }

    /// The ConfigMgr client-notification task type, for the kinds it has.
    pub fn task_type(&self) -> Option<u8> {
        match self {
            OpSpec::RequestMachinePolicy => Some(1),
            OpSpec::FullAvScan => Some(2),
            OpSpec::QuickAvScan => Some(3),
            _ => None,
        }
    }

    /// The package the operation installs, uninstalls or advertises.
    pub fn package(&self) -> Option<&PackageRef> {
        match self {
            OpSpec::Install { package }
            | OpSpec::Uninstall { package }
            | OpSpec::Advertise { package } => Some(package),
            _ => None,
        }
    }

    /// Safe to run twice: re-run after an interrupted agent by default.
    pub fn idempotent(&self) -> bool {
        matches!(
            self,
            OpSpec::RequestMachinePolicy | OpSpec::FullAvScan | OpSpec::QuickAvScan
        )
    }
}

/// What the device does once an operation succeeded: a helpdesk task's reboot policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AfterSuccess {
    /// Restart the device (the agent's restart command, a minute's warning by default).
    Restart,
    /// Shut it down (the agent's shutdown command).
    Shutdown,
}

impl AfterSuccess {
    pub fn as_str(self) -> &'static str {
        match self {
            AfterSuccess::Restart => "restart",
            AfterSuccess::Shutdown => "shutdown",
        }
    }
}

/// A moment on the device that an operation waits for before it runs: a helpdesk task's
/// `when`. "During" runs as soon as the moment is seen; "after" lets the device settle first
/// (the agent's `after_delay_secs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Moment {
    /// The next start of the device (a new boot, not a restart of the agent alone).
    DuringStartup,
    AfterStartup,
    /// The next logon of a user.
    DuringLogon,
    AfterLogon,
}

impl Moment {
    pub fn is_logon(self) -> bool {
        matches!(self, Moment::DuringLogon | Moment::AfterLogon)
    }

    pub fn is_after(self) -> bool {
        matches!(self, Moment::AfterStartup | Moment::AfterLogon)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Moment::DuringStartup => "during_startup",
            Moment::AfterStartup => "after_startup",
            Moment::DuringLogon => "during_logon",
            Moment::AfterLogon => "after_logon",
        }
    }
}

/// What a waiting operation waits for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WaitFor {
    pub moment: Moment,
    /// For logons: only these users' (`DOMAIN\name`, any case); empty: anyone's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<String>,
    /// How long the device waits before it gives up and fails the operation (seconds): the
    /// rest of the operation's life, set by the hub when it hands the operation out.
    #[serde(default)]
    pub within_secs: u64,
}

/// What an agent does with an operation that was running when the agent stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnInterrupt {
    /// Report it failed (the default for scripts, installs and restarts).
    Fail,
    /// Run it again, up to three attempts (the default for policy requests and scans).
    Rerun,
}

/// What to run, as the operator asks for it: a package is named by ID and resolved by the hub.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum OpRequest {
    RequestMachinePolicy,
    FullAvScan,
    QuickAvScan,
    RunScript {
        script: String,
        #[serde(default)]
        args: Vec<String>,
    },
    Install {
        package_id: Uuid,
    },
    Uninstall {
        package_id: Uuid,
    },
    Advertise {
        package_id: Uuid,
    },
    Restart,
}

/// `POST /api/v1/ops`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewOperation {
    pub op: OpRequest,
    #[serde(default)]
    pub collections: Vec<Uuid>,
    #[serde(default)]
    pub devices: Vec<Uuid>,
    /// Seconds until undelivered targets expire (default 24 h).
    #[serde(default)]
    pub expires_in_secs: Option<u64>,
    /// How long each device may run it (default depends on the kind).
    #[serde(default)]
    pub timeout_secs: Option<u32>,
    /// Bytes of output kept per device and stream (default 64 KiB, at most 256 KiB).
    #[serde(default)]
    pub output_limit: Option<u32>,
    #[serde(default)]
    pub on_interrupt: Option<OnInterrupt>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetState {
    Pending,
    Offline,
    Delivered,
    Running,
    Succeeded,
    Failed,
    Expired,
    Cancelled,
}

impl TargetState {
    pub const ALL: [TargetState; 8] = [
        TargetState::Pending,
        TargetState::Offline,
        TargetState::Delivered,
        TargetState::Running,
        TargetState::Succeeded,
        TargetState::Failed,
        TargetState::Expired,
        TargetState::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TargetState::Pending => "pending",
            TargetState::Offline => "offline",
            TargetState::Delivered => "delivered",
            TargetState::Running => "running",
            TargetState::Succeeded => "succeeded",
            TargetState::Failed => "failed",
            TargetState::Expired => "expired",
            TargetState::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<TargetState> {
        TargetState::ALL.into_iter().find(|t| t.as_str() == s)
    }

    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            TargetState::Succeeded
                | TargetState::Failed
                | TargetState::Expired
                | TargetState::Cancelled
        )
    }
}

/// Live counts of an operation's targets, by state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpCounts {
    pub total: u64,
    pub pending: u64,
    pub offline: u64,
    pub delivered: u64,
    pub running: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub expired: u64,
    pub cancelled: u64,
}

impl OpCounts {
    pub fn add(&mut self, state: TargetState, n: u64) {
        self.total += n;
        *match state {
            TargetState::Pending => &mut self.pending,
            TargetState::Offline => &mut self.offline,
            TargetState::Delivered => &mut self.delivered,
            TargetState::Running => &mut self.running,
            TargetState::Succeeded => &mut self.succeeded,
            TargetState::Failed => &mut self.failed,
            TargetState::Expired => &mut self.expired,
            TargetState::Cancelled => &mut self.cancelled,
        } += n;
    }

    /// Every target has reached a final state.
    pub fn finished(&self) -> bool {
        self.succeeded + self.failed + self.expired + self.cancelled == self.total
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Operation {
    pub id: Uuid,
    pub spec: OpSpec,
    pub created_by: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: Timestamp,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: Timestamp,
    pub timeout_secs: u32,
    pub output_limit: u32,
    pub on_interrupt: OnInterrupt,
    pub cancelled: bool,
    pub counts: OpCounts,
}

/// How a device's run of an operation ended, as the agent reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutcomeState {
    Succeeded,
    Failed,
    Cancelled,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpOutcome {
    pub state: OutcomeState,
    /// The process's exit code, when a process ran.
    #[serde(default)]
    pub exit_code: Option<i32>,
    /// Standard output (capped; a cut is marked).
    #[serde(default)]
    pub output: String,
    /// Standard error, or the agent's own explanation of a failure.
    #[serde(default)]
    pub error: String,
    /// Succeeded, but the device must restart to finish (msiexec 3010 and 1641).
    #[serde(default)]
    pub reboot_required: bool,
}

/// One device's record of an operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetResult {
    pub device_id: Uuid,
    pub hostname: String,
    pub state: TargetState,
    pub exit_code: Option<i32>,
    pub output: Option<String>,
    pub error: Option<String>,
    pub reboot_required: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: Timestamp,
}

/// `GET /api/v1/ops/{id}/watch?since=V`: the operation once its version passed `since`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpWatch {
    pub version: u64,
    pub operation: Operation,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_unc_path_splits_into_its_share_and_folders() {
        let (share, rest) = split_unc(r"\\fs01\Sources$\Apps\7zip\").unwrap();
        assert_eq!(share, r"\\fs01\Sources$");
        assert_eq!(rest, ["Apps", "7zip"]);
    }

    #[test]
    fn paths_that_climb_or_are_not_unc_are_refused() {
        for bad in [
            r"C:\Apps",
            r"\\fs01",
            r"\\fs01\share\..\other",
            r"\\fs01\share\.\x",
            r"\\fs01\\share",
            "\\\\fs01\\share\\a/../b",
            "\\\\fs01\\share\\x\u{0}",
        ] {
            assert!(split_unc(bad).is_err(), "{bad:?} accepted");
        }
    }
}
