//! The command line's argument types (clap). What each command does is in [`crate::commands`].

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use ferry_proto::connector::SiteSettings;
use ferry_proto::identity::Role;
use uuid::Uuid;

use crate::admin_client::HubArgs;
use crate::logging;

#[derive(Debug, Parser)]
#[command(
    name = "ferry",
    version,
    about = "Packaged Windows applications from the packaging team into ConfigMgr and onto endpoints."
)]
pub struct Cli {
    /// Print data as JSON (for scripts) instead of tables for people.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the hub (REST API, job queue, long-poll endpoints).
    Serve(ServeArgs),
    /// Register, run and manage SCCM connectors.
    #[command(subcommand)]
    Connector(ConnectorCmd),
    /// Upload and inspect packages.
    #[command(subcommand)]
    Package(crate::commands::packages::PackageCmd),
    /// Push a package into a connector's ConfigMgr site (or show the exact script with --dry-run).
    Push {
        #[arg(long)]
        package: Uuid,
        #[arg(long)]
        connector: Uuid,
        /// A (partial) push specification in JSON laid over the one the hub proposes.
        #[arg(long)]
        spec: Option<PathBuf>,
        /// Print the specification and the exact script; queue nothing.
        #[arg(long)]
        dry_run: bool,
        /// Wait for the push job to end and print it.
        #[arg(long)]
        wait: bool,
        #[command(flatten)]
        hub: HubArgs,
    },
    /// Import applications from a connector's site as packages (by model name or display name,
    /// as listed by `ferry sccm apps`).
    Import {
        #[arg(long)]
        connector: Uuid,
        #[arg(required = true)]
        applications: Vec<String>,
        /// Wait for the import job to end and print it.
        #[arg(long)]
        wait: bool,
        #[command(flatten)]
        hub: HubArgs,
    },
    /// Who did what, newest first, filtered by actor, action and time.
    Audit(AuditArgs),
    /// Technicians (people who use the hub), their roles and personal API keys.
    #[command(subcommand)]
    Technician(TechnicianCmd),
    /// Who the hub thinks you are (the technician and role behind your API key).
    Me {
        #[command(flatten)]
        hub: HubArgs,
    },
    /// Enrol this device and run the endpoint agent.
    #[command(subcommand)]
    Agent(crate::commands::agent::AgentCmd),
    /// Enrolment secrets for new devices.
    #[command(subcommand, name = "enrollment-secret")]
    EnrollmentSecret(crate::commands::fleet::SecretCmd),
    /// Enrolled devices.
    #[command(subcommand)]
    Device(crate::commands::fleet::DeviceCmd),
    /// Device collections (static lists, or rules on inventory).
    #[command(subcommand)]
    Collection(crate::commands::fleet::CollectionCmd),
    /// Packages deployed to collections (applied at each policy request).
    #[command(subcommand)]
    Deployment(crate::commands::fleet::DeploymentCmd),
    /// Client operations: policy, antivirus scans, scripts, installs, restarts.
    #[command(subcommand)]
    Ops(crate::commands::fleet::OpsCmd),
    /// What a helpdesk may offer: software, scripts, and the directory of domains,
    /// workstations and users.
    Catalog(crate::commands::helpdesk::CatalogArgs),
    /// The script library helpdesk tasks run from.
    #[command(subcommand)]
    Script(crate::commands::helpdesk::ScriptCmd),
    /// Helpdesk integrations: callback prefixes and signing secrets.
    #[command(subcommand)]
    Integration(crate::commands::helpdesk::IntegrationCmd),
    /// Tasks from service requests, their status and callbacks.
    #[command(subcommand)]
    Task(crate::commands::helpdesk::TaskCmd),
    /// Your notification rules: changes of your tasks by webhook or e-mail.
    #[command(subcommand)]
    Notification(crate::commands::helpdesk::NotificationCmd),
    /// Enqueue, inspect and cancel jobs.
    #[command(subcommand)]
    Job(JobCmd),
    /// Run hub and connector together on this machine and show a job going through.
    Demo(crate::demo::DemoArgs),
    /// Measure Ferry's performance against a baseline in the same run.
    #[command(subcommand)]
    Bench(BenchCmd),
    /// ConfigMgr tools: parse SDMPackageXML, generate scripts, run them on the emulated site.
    #[command(subcommand)]
    Sccm(crate::commands::sccm::SccmCmd),
}

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// TOML configuration file; `FERRY_*` environment variables override it.
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Data directory (overrides the file and FERRY_DATA_DIR).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Listen address (overrides the file and FERRY_LISTEN).
    #[arg(long)]
    pub listen: Option<std::net::SocketAddr>,
    /// Print the effective configuration as TOML (every option) and exit.
    #[arg(long)]
    pub print_config: bool,
}

#[derive(Debug, Subcommand)]
pub enum ConnectorCmd {
    /// Register a connector with the hub; prints its remote ID and its secret (shown once).
    Register {
        #[arg(long)]
        name: String,
        #[command(flatten)]
        site: SiteArgs,
        /// Also write a ready-to-run connector config file (mode 0600) here.
        #[arg(long)]
        write_config: Option<PathBuf>,
        #[command(flatten)]
        hub: HubArgs,
    },
    /// Run the connector.
    Run {
        #[arg(long, short)]
        config: PathBuf,
        #[arg(long, value_enum, default_value = "human")]
        log_format: logging::Format,
    },
    /// List registered connectors.
    List {
        #[command(flatten)]
        hub: HubArgs,
    },
    /// Show one connector.
    Show {
        id: Uuid,
        #[command(flatten)]
        hub: HubArgs,
    },
    /// Change a connector's SCCM site settings.
    SetSite {
        id: Uuid,
        #[command(flatten)]
        site: SiteArgs,
        #[command(flatten)]
        hub: HubArgs,
    },
    /// Issue a new secret; the old one stops working at once.
    RotateSecret {
        id: Uuid,
        #[command(flatten)]
        hub: HubArgs,
    },
    /// Refuse the connector's requests (403) until enabled again.
    Disable {
        id: Uuid,
        #[command(flatten)]
        hub: HubArgs,
    },
    /// Accept the connector's requests again.
    Enable {
        id: Uuid,
        #[command(flatten)]
        hub: HubArgs,
    },
}

#[derive(Debug, Clone, Default, clap::Args)]
pub struct SiteArgs {
    /// ConfigMgr site code, e.g. DEM.
    #[arg(long)]
    pub site_code: Option<String>,
    /// The admin console's bin folder.
    #[arg(long)]
    pub console_path: Option<String>,
    /// Network share for package sources.
    #[arg(long)]
    pub share_path: Option<String>,
    #[arg(long)]
    pub distribution_point_group: Option<String>,
    #[arg(long)]
    pub collection: Option<String>,
    /// Console folder, e.g. "Applications/Test 1".
    #[arg(long)]
    pub folder: Option<String>,
}

impl SiteArgs {
    pub fn settings(&self) -> SiteSettings {
        SiteSettings {
            site_code: self.site_code.clone(),
            console_path: self.console_path.clone(),
            share_path: self.share_path.clone(),
            distribution_point_group: self.distribution_point_group.clone(),
            collection: self.collection.clone(),
            folder: self.folder.clone(),
        }
    }

    pub fn patch(&self) -> ferry_proto::connector::SiteSettingsPatch {
        let keep = |v: &Option<String>| v.clone().map(Some);
        ferry_proto::connector::SiteSettingsPatch {
            site_code: keep(&self.site_code),
            console_path: keep(&self.console_path),
            share_path: keep(&self.share_path),
            distribution_point_group: keep(&self.distribution_point_group),
            collection: keep(&self.collection),
            folder: keep(&self.folder),
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum JobCmd {
    /// Queue a job for a connector.
    Enqueue {
        #[arg(long)]
        connector: Uuid,
        #[arg(long, default_value = "diagnostics")]
        kind: String,
        /// Kind-specific parameters as JSON.
        #[arg(long)]
        payload: Option<String>,
        /// Wait for the job to end and print it.
        #[arg(long)]
        wait: bool,
        #[command(flatten)]
        hub: HubArgs,
    },
    /// Show a job with its history.
    Show {
        id: Uuid,
        #[command(flatten)]
        hub: HubArgs,
    },
    /// List recent jobs.
    List {
        #[arg(long)]
        connector: Option<Uuid>,
        #[command(flatten)]
        hub: HubArgs,
    },
    /// Cancel a job (a running job is cancelled at its connector's next contact).
    Cancel {
        id: Uuid,
        #[command(flatten)]
        hub: HubArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum BenchCmd {
    /// Job pickup latency: long polls against a 10 s interval poll, on loopback.
    Dispatch(crate::bench::dispatch::DispatchArgs),
    /// Upload and download through the hub with verification, against sha256sum; and an
    /// inventory of a large emulated site end to end.
    Transfer(crate::bench::transfer::TransferArgs),
    /// SDMPackageXML parsing and script generate/read throughput.
    Sccm(crate::commands::sccm::SccmBenchArgs),
    /// What two attacks cost a hub (idle sockets against few file descriptors, an oversized
    /// report), for any hub binary: compare builds with `--hub-binary`.
    Abuse(crate::bench::abuse::AbuseArgs),
    /// One client operation to N connected agents, against agents polling every 10 s.
    Fanout(crate::bench::fanout::FanoutArgs),
    /// Helpdesk task status callbacks: verified deliveries per second and commit-to-receipt
    /// delay, healthy and with a receiver failing half its requests, against polling.
    Callbacks(crate::bench::callbacks::CallbacksArgs),
    /// The fan-out benchmark's load process: many simulated agents in one process.
    #[command(hide = true)]
    Swarm(crate::bench::swarm::SwarmArgs),
}

#[derive(Debug, clap::Args)]
pub struct AuditArgs {
    /// A technician's name, `connector:<id>`, `device:<id>`, or an actor's id.
    #[arg(long)]
    pub actor: Option<String>,
    /// An action (`job.enqueue`), or a prefix ending in `.` (`job.`).
    #[arg(long)]
    pub action: Option<String>,
    /// Entries at or after this time (RFC 3339, e.g. 2026-12-01T08:00:00Z).
    #[arg(long)]
    pub since: Option<String>,
    /// Entries before this time (RFC 3339).
    #[arg(long)]
    pub until: Option<String>,
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
    #[command(flatten)]
    pub hub: HubArgs,
}

/// `guest` reads; `operator` uploads, pushes, imports and runs operations; `admin` does
/// everything, including connectors, enrolment, devices, collections and technicians.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum RoleArg {
    Guest,
    Operator,
    Admin,
}

impl From<RoleArg> for Role {
    fn from(r: RoleArg) -> Role {
        match r {
            RoleArg::Guest => Role::Guest,
            RoleArg::Operator => Role::Operator,
            RoleArg::Admin => Role::Admin,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum TechnicianCmd {
    /// Create a technician (with --password-stdin, a portal password read from stdin).
    Create {
        /// Login name: letters, digits, `.`, `_`, `-`, `@`.
        name: String,
        #[arg(long, value_enum)]
        role: RoleArg,
        #[arg(long)]
        display_name: Option<String>,
        #[arg(long)]
        email: Option<String>,
        /// Set a portal password, read from stdin (one line).
        #[arg(long)]
        password_stdin: bool,
        #[command(flatten)]
        hub: HubArgs,
    },
    /// List technicians.
    List {
        #[command(flatten)]
        hub: HubArgs,
    },
    /// Show one technician (by id or name).
    Show {
        technician: String,
        #[command(flatten)]
        hub: HubArgs,
    },
    /// Change a technician's role (the change applies to their next request).
    SetRole {
        technician: String,
        #[arg(value_enum)]
        role: RoleArg,
        #[command(flatten)]
        hub: HubArgs,
    },
    /// Refuse the technician's keys and sessions at once, until enabled again.
    Disable {
        technician: String,
        #[command(flatten)]
        hub: HubArgs,
    },
    /// Let a disabled technician's keys and logins work again.
    Enable {
        technician: String,
        #[command(flatten)]
        hub: HubArgs,
    },
    /// Set the portal password (read from stdin); ends the technician's sessions.
    SetPassword {
        technician: String,
        /// Your current password, when you change your own (read as the second stdin line).
        #[arg(long)]
        current: bool,
        #[command(flatten)]
        hub: HubArgs,
    },
    /// Personal API keys.
    #[command(subcommand)]
    Key(KeyCmd),
}

#[derive(Debug, Subcommand)]
pub enum KeyCmd {
    /// Create a key; its secret is printed once.
    Create {
        /// The technician (id or name); yourself when absent.
        #[arg(long)]
        technician: Option<String>,
        #[arg(long)]
        name: String,
        /// Lifetime in seconds (no expiry when absent).
        #[arg(long)]
        expires_in: Option<u64>,
        #[command(flatten)]
        hub: HubArgs,
    },
    /// List a technician's keys (yours when --technician is absent).
    List {
        #[arg(long)]
        technician: Option<String>,
        #[command(flatten)]
        hub: HubArgs,
    },
    /// A new secret for the key; the old one stops working at once.
    Regenerate {
        key: Uuid,
        #[arg(long)]
        technician: Option<String>,
        #[command(flatten)]
        hub: HubArgs,
    },
    /// Revoke a key: it stops working at once.
    Revoke {
        key: Uuid,
        #[arg(long)]
        technician: Option<String>,
        #[command(flatten)]
        hub: HubArgs,
    },
}
