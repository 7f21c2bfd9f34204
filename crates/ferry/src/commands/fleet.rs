//! Administrators' commands for endpoint agents: enrolment secrets, devices, collections,
//! deployments and client operations (`ferry ops start|show|watch|list|cancel`).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use ferry_proto::ops::{
    Collection, CollectionRule, CreatedEnrollmentSecret, Deployment, DeploymentAction, Detection,
    Device, EnrollmentSecret, MembershipChange, NewCollection, NewDeployment, NewEnrollmentSecret,
    NewOperation, OnInterrupt, OpCounts, OpRequest, OpWatch, Operation, TargetResult, UpdateDevice,
};
use uuid::Uuid;

use crate::admin_client::{AdminClient, HubArgs};
use crate::output::emit;

#[derive(Debug, Subcommand)]
pub enum SecretCmd {
    /// Create an enrolment secret (shown once).
    Create {
        #[arg(long)]
        name: String,
        /// Seconds until it stops enrolling devices.
        #[arg(long)]
        expires_in: Option<u64>,
        /// How many devices it may enrol.
        #[arg(long)]
        max_uses: Option<u32>,
        #[command(flatten)]
        hub: HubArgs,
    },
    List {
        #[command(flatten)]
        hub: HubArgs,
    },
    Revoke {
        id: Uuid,
        #[command(flatten)]
        hub: HubArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum DeviceCmd {
    /// List devices (optionally one collection's members).
    List {
        #[arg(long)]
        collection: Option<Uuid>,
        #[command(flatten)]
        hub: HubArgs,
    },
    Show {
        id: Uuid,
        #[command(flatten)]
        hub: HubArgs,
    },
    /// Refuse the device's token and close its session.
    Disable {
        id: Uuid,
        #[command(flatten)]
        hub: HubArgs,
    },
    Enable {
        id: Uuid,
        #[command(flatten)]
        hub: HubArgs,
    },
    /// Replace the device's token (prints the new one, to be installed on the device).
    RotateToken {
        id: Uuid,
        #[command(flatten)]
        hub: HubArgs,
    },
    /// Accept the device's reported hostname, domain, OS and architecture: rule collections
    /// match them from now on (until then they match what the device enrolled with).
    Approve {
        id: Uuid,
        #[command(flatten)]
        hub: HubArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum CollectionCmd {
    /// Create a static collection (`--device`) or a rule collection (`--hostname`, `--os`, …:
    /// case-insensitive globs, all of which must match).
    Create {
        name: String,
        #[arg(long = "device")]
        devices: Vec<Uuid>,
        #[arg(long)]
        hostname: Option<String>,
        #[arg(long)]
        os: Option<String>,
        #[arg(long)]
        os_version: Option<String>,
        #[arg(long)]
        domain: Option<String>,
        #[arg(long)]
        arch: Option<String>,
        #[command(flatten)]
        hub: HubArgs,
    },
    List {
        #[command(flatten)]
        hub: HubArgs,
    },
    Delete {
        id: Uuid,
        #[command(flatten)]
        hub: HubArgs,
    },
    /// Add devices to a static collection.
    Add {
        id: Uuid,
        #[arg(required = true)]
        devices: Vec<Uuid>,
        #[command(flatten)]
        hub: HubArgs,
    },
    /// Remove devices from a static collection.
    Remove {
        id: Uuid,
        #[arg(required = true)]
        devices: Vec<Uuid>,
        #[command(flatten)]
        hub: HubArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum DeploymentCmd {
    /// Deploy a package to a collection; agents apply it at their next policy request.
    Create {
        #[arg(long)]
        package: Uuid,
        #[arg(long)]
        collection: Uuid,
        #[arg(long, value_enum, default_value = "install")]
        action: Action,
        /// Installed when this file exists.
        #[arg(long, group = "detection")]
        detect_file: Option<String>,
        /// Installed when this script exits 0 and prints something.
        #[arg(long, group = "detection")]
        detect_script: Option<String>,
        /// Installed when Windows Installer knows this product code.
        #[arg(long, group = "detection")]
        detect_msi: Option<String>,
        #[command(flatten)]
        hub: HubArgs,
    },
    List {
        #[command(flatten)]
        hub: HubArgs,
    },
    Delete {
        id: Uuid,
        #[command(flatten)]
        hub: HubArgs,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Action {
    Install,
    Uninstall,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Kind {
    RequestMachinePolicy,
    FullAvScan,
    QuickAvScan,
    RunScript,
    Install,
    Uninstall,
    Advertise,
    Restart,
}

#[derive(Debug, Subcommand)]
pub enum OpsCmd {
    /// Start a client operation on collections and/or devices.
    Start {
        #[arg(value_enum)]
        kind: Kind,
        #[arg(long = "collection")]
        collections: Vec<Uuid>,
        #[arg(long = "device")]
        devices: Vec<Uuid>,
        /// run-script: the script text.
        #[arg(long, conflicts_with = "script_file")]
        script: Option<String>,
        /// run-script: read the script from this file.
        #[arg(long)]
        script_file: Option<PathBuf>,
        /// run-script: an argument (repeat for more); passed verbatim, never through a shell.
        #[arg(long = "arg", allow_hyphen_values = true)]
        args: Vec<String>,
        /// install / uninstall / advertise: the package.
        #[arg(long)]
        package: Option<Uuid>,
        /// Seconds until targets not yet reached expire (default 24 h).
        #[arg(long)]
        expires_in: Option<u64>,
        /// Seconds each device may run it.
        #[arg(long)]
        timeout: Option<u32>,
        /// Bytes of output kept per device and stream.
        #[arg(long)]
        output_limit: Option<u32>,
        /// What an agent does with it after being stopped mid-run.
        #[arg(long, value_enum)]
        on_interrupt: Option<Interrupt>,
        /// Follow the live counts until every target has finished.
        #[arg(long)]
        watch: bool,
        #[command(flatten)]
        hub: HubArgs,
    },
    /// Show an operation's counts and per-device results.
    Show {
        id: Uuid,
        /// Only results in this state (pending, offline, delivered, running, succeeded, …).
        #[arg(long)]
        state: Option<String>,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        hub: HubArgs,
    },
    /// Follow an operation's counts live until every target has finished.
    Watch {
        id: Uuid,
        #[command(flatten)]
        hub: HubArgs,
    },
    List {
        #[command(flatten)]
        hub: HubArgs,
    },
    Cancel {
        id: Uuid,
        #[command(flatten)]
        hub: HubArgs,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Interrupt {
    Fail,
    Rerun,
}

fn pretty<T: serde::Serialize>(v: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

pub async fn secrets(cmd: SecretCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        SecretCmd::Create {
            name,
            expires_in,
            max_uses,
            hub,
        } => {
            let created: CreatedEnrollmentSecret = crate::admin_client::connect(&hub)?
                .post(
                    "/api/v1/enrollment-secrets",
                    &NewEnrollmentSecret {
                        name,
                        expires_in_secs: expires_in,
                        max_uses,
                    },
                )
                .await?;
            pretty(&created)?;
        }
        SecretCmd::List { hub } => {
            let list: Vec<EnrollmentSecret> = crate::admin_client::connect(&hub)?
                .get("/api/v1/enrollment-secrets")
                .await?;
            emit(&list, |list| {
                for s in list {
                    println!(
                        "{}  {:<24} uses {}/{}  {}{}",
                        s.id,
                        s.name,
                        s.uses,
                        s.max_uses.map_or("∞".to_owned(), |m| m.to_string()),
                        s.expires_at
                            .map_or("no expiry".to_owned(), |e| format!("expires {e}")),
                        if s.revoked { "  REVOKED" } else { "" }
                    );
                }
            })?;
        }
        SecretCmd::Revoke { id, hub } => {
            let s: EnrollmentSecret = crate::admin_client::connect(&hub)?
                .post(&format!("/api/v1/enrollment-secrets/{id}/revoke"), &())
                .await?;
            pretty(&s)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn devices(cmd: DeviceCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        DeviceCmd::List { collection, hub } => {
            let path = match collection {
                Some(c) => format!("/api/v1/devices?collection={c}"),
                None => "/api/v1/devices".to_owned(),
            };
            let list: Vec<Device> = crate::admin_client::connect(&hub)?.get(&path).await?;
            emit(&list, |list| {
                for d in list {
                    let pending = match &d.approved {
                        Some(a) => {
                            format!(" CHANGE AWAITS APPROVAL (rules still see {})", a.hostname)
                        }
                        None => String::new(),
                    };
                    println!(
                        "{}  {:<20} {:<8} {} {} {}  {}{pending}",
                        d.id,
                        d.inventory.hostname,
                        if d.online { "online" } else { "offline" },
                        d.inventory.os_name,
                        d.inventory.os_version,
                        d.inventory.domain.as_deref().unwrap_or("-"),
                        if d.enabled { "" } else { "DISABLED" }
                    );
                }
            })?;
        }
        DeviceCmd::Show { id, hub } => {
            let d: Device = crate::admin_client::connect(&hub)?
                .get(&format!("/api/v1/devices/{id}"))
                .await?;
            pretty(&d)?;
        }
        DeviceCmd::Disable { id, hub } => set_enabled(id, &hub, false).await?,
        DeviceCmd::Enable { id, hub } => set_enabled(id, &hub, true).await?,
        DeviceCmd::Approve { id, hub } => {
            // Approve what is shown: the hub refuses if the device reported otherwise since.
            let client = crate::admin_client::connect(&hub)?;
            let d: Device = client.get(&format!("/api/v1/devices/{id}")).await?;
            let facts = ferry_proto::ops::RuleFacts::of(&d.inventory);
            eprintln!(
                "approving hostname {}, domain {}, {} {}, {}",
                facts.hostname,
                facts.domain.as_deref().unwrap_or("-"),
                facts.os_name,
                facts.os_version,
                facts.arch
            );
            let d: Device = client
                .post(
                    &format!("/api/v1/devices/{id}/approve-inventory"),
                    &ferry_proto::ops::ApproveInventory {
                        expected: Some(facts),
                    },
                )
                .await?;
            pretty(&d)?;
        }
        DeviceCmd::RotateToken { id, hub } => {
            let t: ferry_proto::agent::TokenResponse = crate::admin_client::connect(&hub)?
                .post(&format!("/api/v1/devices/{id}/rotate-token"), &())
                .await?;
            println!("{}", t.token);
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn set_enabled(id: Uuid, hub: &HubArgs, enabled: bool) -> anyhow::Result<()> {
    let d: Device = crate::admin_client::connect(hub)?
        .patch(
            &format!("/api/v1/devices/{id}"),
            &UpdateDevice {
                enabled: Some(enabled),
            },
        )
        .await?;
    println!(
        "device {} ({}) is {}",
        d.id,
        d.inventory.hostname,
        if d.enabled { "enabled" } else { "disabled" }
    );
    Ok(())
}

pub async fn collections(cmd: CollectionCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        CollectionCmd::Create {
            name,
            devices,
            hostname,
            os,
            os_version,
            domain,
            arch,
            hub,
        } => {
            let rule = CollectionRule {
                hostname,
                os_name: os,
                os_version,
                domain,
                arch,
            };
            let rule = (rule != CollectionRule::default()).then_some(rule);
            let c: Collection = crate::admin_client::connect(&hub)?
                .post(
                    "/api/v1/collections",
                    &NewCollection {
                        name,
                        rule,
                        devices,
                    },
                )
                .await?;
            pretty(&c)?;
        }
        CollectionCmd::List { hub } => {
            let list: Vec<Collection> = crate::admin_client::connect(&hub)?
                .get("/api/v1/collections")
                .await?;
            emit(&list, |list| {
                for c in list {
                    println!(
                        "{}  {:<24} {:>6} members  {}",
                        c.id,
                        c.name,
                        c.member_count,
                        c.rule
                            .as_ref()
                            .map(|r| format!(
                                "rule {}",
                                serde_json::to_string(&r).unwrap_or_default()
                            ))
                            .unwrap_or_else(|| "static".to_owned())
                    );
                }
            })?;
        }
        CollectionCmd::Delete { id, hub } => {
            crate::admin_client::connect(&hub)?
                .delete(&format!("/api/v1/collections/{id}"))
                .await?;
            println!("collection {id} deleted");
        }
        CollectionCmd::Add { id, devices, hub } => {
            members(id, &hub, devices, Vec::new()).await?;
        }
        CollectionCmd::Remove { id, devices, hub } => {
            members(id, &hub, Vec::new(), devices).await?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn members(id: Uuid, hub: &HubArgs, add: Vec<Uuid>, remove: Vec<Uuid>) -> anyhow::Result<()> {
    let c: Collection = crate::admin_client::connect(hub)?
        .post(
            &format!("/api/v1/collections/{id}/members"),
            &MembershipChange { add, remove },
        )
        .await?;
    println!("collection {} now has {} members", c.name, c.member_count);
    Ok(())
}

pub async fn deployments(cmd: DeploymentCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        DeploymentCmd::Create {
            package,
            collection,
            action,
            detect_file,
            detect_script,
            detect_msi,
            hub,
        } => {
            let detection = match (detect_file, detect_script, detect_msi) {
                (Some(f), _, _) => Detection::File(f),
                (_, Some(s), _) => Detection::Script(s),
                (_, _, Some(m)) => Detection::MsiProductCode(m),
                _ => anyhow::bail!(
                    "say how agents detect the package: --detect-file, --detect-script or --detect-msi"
                ),
            };
            let d: Deployment = crate::admin_client::connect(&hub)?
                .post(
                    "/api/v1/deployments",
                    &NewDeployment {
                        package_id: package,
                        collection_id: collection,
                        action: match action {
                            Action::Install => DeploymentAction::Install,
                            Action::Uninstall => DeploymentAction::Uninstall,
                        },
                        detection,
                    },
                )
                .await?;
            pretty(&d)?;
        }
        DeploymentCmd::List { hub } => {
            let list: Vec<Deployment> = crate::admin_client::connect(&hub)?
                .get("/api/v1/deployments")
                .await?;
            emit(&list, |list| {
                for d in list {
                    println!(
                        "{}  package {}  collection {}  {:?}  {:?}",
                        d.id, d.package_id, d.collection_id, d.action, d.detection
                    );
                }
            })?;
        }
        DeploymentCmd::Delete { id, hub } => {
            crate::admin_client::connect(&hub)?
                .delete(&format!("/api/v1/deployments/{id}"))
                .await?;
            println!("deployment {id} deleted");
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn ops(cmd: OpsCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        OpsCmd::Start {
            kind,
            collections,
            devices,
            script,
            script_file,
            args,
            package,
            expires_in,
            timeout,
            output_limit,
            on_interrupt,
            watch,
            hub,
        } => {
            let need_package = || package.context("this kind of operation needs --package");
            let op = match kind {
                Kind::RequestMachinePolicy => OpRequest::RequestMachinePolicy,
                Kind::FullAvScan => OpRequest::FullAvScan,
                Kind::QuickAvScan => OpRequest::QuickAvScan,
                Kind::Restart => OpRequest::Restart,
                Kind::RunScript => {
                    let script = match (script, script_file) {
                        (Some(s), _) => s,
                        (None, Some(f)) => std::fs::read_to_string(&f)
                            .with_context(|| format!("reading {}", f.display()))?,
                        (None, None) => anyhow::bail!("run-script needs --script or --script-file"),
                    };
                    OpRequest::RunScript { script, args }
                }
                Kind::Install => OpRequest::Install {
                    package_id: need_package()?,
                },
                Kind::Uninstall => OpRequest::Uninstall {
                    package_id: need_package()?,
                },
                Kind::Advertise => OpRequest::Advertise {
                    package_id: need_package()?,
                },
            };
            let client = crate::admin_client::connect(&hub)?;
            let started: Operation = client
                .post(
                    "/api/v1/ops",
                    &NewOperation {
                        op,
                        collections,
                        devices,
                        expires_in_secs: expires_in,
                        timeout_secs: timeout,
                        output_limit,
                        on_interrupt: on_interrupt.map(|i| match i {
                            Interrupt::Fail => OnInterrupt::Fail,
                            Interrupt::Rerun => OnInterrupt::Rerun,
                        }),
                    },
                )
                .await?;
            println!(
                "operation {} ({}) started on {} device(s)",
                started.id,
                started.spec.kind(),
                started.counts.total
            );
            if watch {
                follow(&client, started.id).await?;
                print_results(&client, started.id, None).await?;
            }
        }
        OpsCmd::Show {
            id,
            state,
            json,
            hub,
        } => {
            let client = crate::admin_client::connect(&hub)?;
            let op: Operation = client.get(&format!("/api/v1/ops/{id}")).await?;
            if json {
                let results = results(&client, id, state.as_deref()).await?;
                pretty(&serde_json::json!({ "operation": op, "results": results }))?;
            } else {
                println!(
                    "operation {} ({}) by {} at {}{}",
                    op.id,
                    op.spec.kind(),
                    op.created_by,
                    op.created_at,
                    if op.cancelled { ", cancelled" } else { "" }
                );
                println!("{}", counts_line(&op.counts));
                print_results(&client, id, state.as_deref()).await?;
            }
        }
        OpsCmd::Watch { id, hub } => {
            let client = crate::admin_client::connect(&hub)?;
            follow(&client, id).await?;
        }
        OpsCmd::List { hub } => {
            let list: Vec<Operation> = crate::admin_client::connect(&hub)?
                .get("/api/v1/ops")
                .await?;
            emit(&list, |list| {
                for op in list {
                    println!(
                        "{}  {:<22} {}  {}",
                        op.id,
                        op.spec.kind(),
                        op.created_at,
                        counts_line(&op.counts)
                    );
                }
            })?;
        }
        OpsCmd::Cancel { id, hub } => {
            let op: Operation = crate::admin_client::connect(&hub)?
                .post(&format!("/api/v1/ops/{id}/cancel"), &())
                .await?;
            println!("{}", counts_line(&op.counts));
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn counts_line(c: &OpCounts) -> String {
    format!(
        "total {}  pending {}  offline {}  delivered {}  running {}  succeeded {}  failed {}  expired {}  cancelled {}",
        c.total,
        c.pending,
        c.offline,
        c.delivered,
        c.running,
        c.succeeded,
        c.failed,
        c.expired,
        c.cancelled
    )
}

/// Prints the counts each time they change (one long poll per change) until every target
/// has finished.
pub async fn follow(client: &AdminClient, id: Uuid) -> anyhow::Result<Operation> {
    let tty = std::io::stdout().is_terminal();
    let mut since = 0u64;
    loop {
        let w: OpWatch = client
            .get(&format!("/api/v1/ops/{id}/watch?since={since}&hold=25"))
            .await?;
        if w.version != since {
            let line = counts_line(&w.operation.counts);
            if tty {
                print!("\r\x1b[2K{line}");
                use std::io::Write;
                let _ = std::io::stdout().flush();
            } else {
                println!("{line}");
            }
        }
        since = w.version;
        if w.operation.counts.finished() {
            if tty {
                println!();
            }
            return Ok(w.operation);
        }
    }
}

async fn results(
    client: &AdminClient,
    id: Uuid,
    state: Option<&str>,
) -> anyhow::Result<Vec<TargetResult>> {
    let mut all = Vec::new();
    loop {
        let mut path = format!("/api/v1/ops/{id}/results?limit=1000&offset={}", all.len());
        if let Some(s) = state {
            path.push_str(&format!("&state={s}"));
        }
        let page: Vec<TargetResult> = client.get(&path).await?;
        let n = page.len();
        all.extend(page);
        if n < 1000 {
            return Ok(all);
        }
    }
}

async fn print_results(client: &AdminClient, id: Uuid, state: Option<&str>) -> anyhow::Result<()> {
    for r in results(client, id, state).await? {
        println!(
            "  {:<20} {:<10} exit {:<5} {}{}",
            r.hostname,
            format!("{:?}", r.state).to_lowercase(),
            r.exit_code.map_or("-".to_owned(), |c| c.to_string()),
            first_line(r.output.as_deref().or(r.error.as_deref()).unwrap_or("")),
            if r.reboot_required {
                "  (restart required)"
            } else {
                ""
            }
        );
    }
    Ok(())
}

fn first_line(s: &str) -> String {
    let line = s.lines().next().unwrap_or("");
    if line.chars().count() > 100 {
        format!("{}…", line.chars().take(100).collect::<String>())
    } else {
        line.to_owned()
    }
}
