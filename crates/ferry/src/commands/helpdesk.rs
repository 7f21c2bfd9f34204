//! The helpdesk from the command line: `ferry catalog`, `ferry script`, `ferry integration`,
//! `ferry task`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use ferry_proto::helpdesk::{
    CatalogDomain, CatalogPage, CatalogSoftware, CatalogUser, CatalogWorkstation,
    CreatedNotificationRule, Delivery, DeploymentSettings, Integration, IntegrationSecret,
    NewIntegration, NewNotificationRule, NewScript, NewTask, NotificationChannel, NotificationRule,
    NotifyOn, Redelivered, RotateSigningSecret, Schedule, Script, ScriptParameter, Task,
    TaskAction, TaskTargets,
};
use uuid::Uuid;

use crate::admin_client::HubArgs;
use crate::commands::fleet::counts_line;
use crate::output::emit;

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum CatalogList {
    Software,
    Scripts,
    Domains,
    Workstations,
    Users,
}

#[derive(Debug, clap::Args)]
pub struct CatalogArgs {
    /// What to list.
    #[arg(value_enum, default_value = "software")]
    pub list: CatalogList,
    /// Workstations and users: only this domain.
    #[arg(long)]
    pub domain: Option<String>,
    /// Workstations and users: names containing this.
    #[arg(long)]
    pub search: Option<String>,
    #[arg(long)]
    pub limit: Option<u32>,
    #[arg(long)]
    pub offset: Option<u64>,
    #[command(flatten)]
    pub hub: HubArgs,
}

#[derive(Debug, Subcommand)]
pub enum ScriptCmd {
    /// Add a script to the library (a new version when the name exists).
    Add {
        name: String,
        /// The script file.
        #[arg(long)]
        file: PathBuf,
        #[arg(long, default_value = "")]
        description: String,
        /// A declared parameter, `Name`, `Name!` (required) or `Name=default` (repeat; values
        /// are passed in this order).
        #[arg(long = "param")]
        params: Vec<String>,
        #[command(flatten)]
        hub: HubArgs,
    },
    /// List the library (retired versions too with --retired).
    List {
        #[arg(long)]
        retired: bool,
        #[command(flatten)]
        hub: HubArgs,
    },
    /// Show a script with its content.
    Show {
        id: Uuid,
        #[command(flatten)]
        hub: HubArgs,
    },
    /// Retire a script version: no new task may use it.
    Retire {
        id: Uuid,
        #[command(flatten)]
        hub: HubArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum IntegrationCmd {
    /// Register a helpdesk; its signing secret is printed once.
    Create {
        name: String,
        /// A URL prefix its callbacks may use (repeat for more).
        #[arg(long = "callback-prefix", required = true)]
        prefixes: Vec<String>,
        /// The technician whose API keys the helpdesk uses.
        #[arg(long)]
        technician: Option<Uuid>,
        /// The helpdesk's private CA certificate (PEM), trusted for its callbacks only.
        #[arg(long)]
        ca_cert: Option<PathBuf>,
        /// Allow plain-HTTP callbacks.
        #[arg(long)]
        allow_http: bool,
        /// Allow callbacks to loopback, private and link-local addresses.
        #[arg(long)]
        allow_private: bool,
        #[command(flatten)]
        hub: HubArgs,
    },
    List {
        #[command(flatten)]
        hub: HubArgs,
    },
    /// A new signing secret (printed once); the old one signs too during the grace period.
    RotateSecret {
        id: Uuid,
        /// Seconds the old secret keeps signing (default 86400).
        #[arg(long)]
        grace: Option<u64>,
        #[command(flatten)]
        hub: HubArgs,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ActionArg {
    Install,
    Uninstall,
    Advertise,
    RunScript,
}

// One value per process, parsed once: its size does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum TaskCmd {
    /// Create a task for a service request.
    Create {
        #[arg(value_enum)]
        action: ActionArg,
        /// The service request.
        #[arg(long)]
        request: String,
        /// Makes retries safe: the same key returns the same task (default: the request).
        #[arg(long)]
        idempotency_key: Option<String>,
        #[arg(long)]
        package: Option<Uuid>,
        #[arg(long)]
        script: Option<Uuid>,
        /// A script argument, `Name=value` (repeat).
        #[arg(long = "arg")]
        args: Vec<String>,
        /// A workstation, by hostname or device ID (repeat).
        #[arg(long = "workstation")]
        workstations: Vec<String>,
        /// A user, `DOMAIN\name` (repeat): the workstations they are logged on to.
        #[arg(long = "user")]
        users: Vec<String>,
        /// The domain of users named without one.
        #[arg(long)]
        domain: Option<String>,
        /// Start at this date and time (`2026-12-24T18:30`) ...
        #[arg(long)]
        at: Option<String>,
        /// ... in this time zone (`UTC`, `+01:00` or `Europe/Berlin`).
        #[arg(long, default_value = "UTC")]
        time_zone: String,
        #[arg(long)]
        integration: Option<Uuid>,
        #[arg(long)]
        callback_url: Option<String>,
        #[command(flatten)]
        hub: HubArgs,
    },
    List {
        #[arg(long)]
        request: Option<String>,
        #[arg(long)]
        status: Option<String>,
        #[command(flatten)]
        hub: HubArgs,
    },
    Show {
        id: Uuid,
        #[command(flatten)]
        hub: HubArgs,
    },
    Cancel {
        id: Uuid,
        #[command(flatten)]
        hub: HubArgs,
    },
    /// Every status change's callback and each attempt to deliver it.
    Deliveries {
        id: Uuid,
        #[command(flatten)]
        hub: HubArgs,
    },
    /// Send a callback again (same webhook-id).
    Redeliver {
        id: Uuid,
        delivery: String,
        #[command(flatten)]
        hub: HubArgs,
    },
}

/// `?k=v&…` of the present values, percent-encoded.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ChannelArg {
    Webhook,
    Email,
}

#[derive(Debug, Subcommand)]
pub enum NotificationCmd {
    /// Notify on changes of your tasks (or --technician's), by webhook or e-mail. A webhook's
    /// signing secret is printed once.
    Add {
        #[arg(value_enum)]
        channel: ChannelArg,
        /// The webhook's URL or the e-mail address.
        target: String,
        /// Only failures (failed, partially succeeded, expired).
        #[arg(long)]
        failures_only: bool,
        #[arg(long)]
        technician: Option<String>,
        /// Webhook over plain HTTP (administrators).
        #[arg(long)]
        allow_http: bool,
        /// Webhook to internal addresses (administrators).
        #[arg(long)]
        allow_private: bool,
        #[command(flatten)]
        hub: HubArgs,
    },
    List {
        #[arg(long)]
        technician: Option<String>,
        #[command(flatten)]
        hub: HubArgs,
    },
    Remove {
        id: Uuid,
        #[arg(long)]
        technician: Option<String>,
        #[command(flatten)]
        hub: HubArgs,
    },
}

pub async fn notification(cmd: NotificationCmd) -> anyhow::Result<ExitCode> {
    use crate::commands::identity::key_owner;
    match cmd {
        NotificationCmd::Add {
            channel,
            target,
            failures_only,
            technician,
            allow_http,
            allow_private,
            hub,
        } => {
            let client = crate::admin_client::connect(&hub)?;
            let who = key_owner(&client, technician.as_deref()).await?;
            let new = NewNotificationRule {
                channel: match channel {
                    ChannelArg::Webhook => NotificationChannel::Webhook,
                    ChannelArg::Email => NotificationChannel::Email,
                },
                target,
                on: if failures_only {
                    NotifyOn::Failures
                } else {
                    NotifyOn::All
                },
                allow_http,
                allow_private,
            };
            let r: CreatedNotificationRule = client
                .post(&format!("/api/v1/technicians/{who}/notifications"), &new)
                .await?;
            emit(&r, |r| {
                println!(
                    "rule {}  {:?} {}  {:?}",
                    r.rule.id, r.rule.channel, r.rule.target, r.rule.on
                );
                if let Some(s) = &r.signing_secret {
                    println!("signing secret (shown once): {s}");
                }
            })?;
        }
        NotificationCmd::List { technician, hub } => {
            let client = crate::admin_client::connect(&hub)?;
            let who = key_owner(&client, technician.as_deref()).await?;
            let list: Vec<NotificationRule> = client
                .get(&format!("/api/v1/technicians/{who}/notifications"))
                .await?;
            emit(&list, |list| {
                for r in list {
                    println!(
                        "{}  {:<8} {:<40} {:?}",
                        r.id,
                        format!("{:?}", r.channel).to_lowercase(),
                        r.target,
                        r.on
                    );
                }
            })?;
        }
        NotificationCmd::Remove {
            id,
            technician,
            hub,
        } => {
            let client = crate::admin_client::connect(&hub)?;
            let who = key_owner(&client, technician.as_deref()).await?;
            client
                .delete(&format!("/api/v1/technicians/{who}/notifications/{id}"))
                .await?;
            println!("removed {id}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn query(pairs: &[(&str, Option<String>)]) -> String {
    fn encode(s: &str) -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect()
    }
    let q: Vec<String> = pairs
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={}", encode(v))))
        .collect();
    if q.is_empty() {
        String::new()
    } else {
        format!("?{}", q.join("&"))
    }
}

pub async fn catalog(args: CatalogArgs) -> anyhow::Result<ExitCode> {
    let client = crate::admin_client::connect(&args.hub)?;
    let page = query(&[
        ("domain", args.domain.clone()),
        ("q", args.search.clone()),
        ("limit", args.limit.map(|l| l.to_string())),
        ("offset", args.offset.map(|o| o.to_string())),
    ]);
    match args.list {
        CatalogList::Software => {
            let list: Vec<CatalogSoftware> = client.get("/api/v1/catalog/software").await?;
            emit(&list, |list| {
                for s in list {
                    let actions: Vec<&str> = s.actions.iter().map(|a| a.as_str()).collect();
                    println!(
                        "{}  {:<6} {} {} {}  [{}]",
                        s.package_id,
                        s.installer_type.as_str(),
                        s.vendor.as_deref().unwrap_or("-"),
                        s.name,
                        s.version.as_deref().unwrap_or(""),
                        actions.join(", ")
                    );
                }
            })?;
        }
        CatalogList::Scripts => {
            let list: Vec<Script> = client.get("/api/v1/catalog/scripts").await?;
            emit(&list, print_scripts)?;
        }
        CatalogList::Domains => {
            let list: Vec<CatalogDomain> = client.get("/api/v1/catalog/domains").await?;
            emit(&list, |list| {
                for d in list {
                    let name = if d.name.is_empty() { "(none)" } else { &d.name };
                    println!(
                        "{name:<24} {} workstations  {} users",
                        d.workstations, d.users
                    );
                }
            })?;
        }
        CatalogList::Workstations => {
            let p: CatalogPage<CatalogWorkstation> = client
                .get(&format!("/api/v1/catalog/workstations{page}"))
                .await?;
            emit(&p, |p| {
                for w in &p.items {
                    println!(
                        "{}  {:<20} {:<8} {}",
                        w.device_id,
                        w.hostname,
                        if w.online { "online" } else { "offline" },
                        w.users.join(", ")
                    );
                }
                if let Some(n) = p.next_offset {
                    println!("(more: --offset {n})");
                }
            })?;
        }
        CatalogList::Users => {
            let p: CatalogPage<CatalogUser> =
                client.get(&format!("/api/v1/catalog/users{page}")).await?;
            emit(&p, |p| {
                for u in &p.items {
                    println!("{:<32} {}", u.user, u.workstations.join(", "));
                }
                if let Some(n) = p.next_offset {
                    println!("(more: --offset {n})");
                }
            })?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_scripts(list: &Vec<Script>) {
    for s in list {
        let params: Vec<&str> = s.parameters.iter().map(|p| p.name.as_str()).collect();
        println!(
            "{}  {} v{}{}  ({})  sha256 {}",
            s.id,
            s.name,
            s.version,
            if s.retired { " [retired]" } else { "" },
            params.join(", "),
            &s.sha256[..16.min(s.sha256.len())]
        );
    }
}

/// `Name`, `Name!` (required) or `Name=default`.
fn parse_param(p: &str) -> ScriptParameter {
    let (name, default) = match p.split_once('=') {
        Some((n, d)) => (n, Some(d.to_owned())),
        None => (p, None),
    };
    let (name, required) = match name.strip_suffix('!') {
        Some(n) => (n, true),
        None => (name, false),
    };
    ScriptParameter {
        name: name.to_owned(),
        description: String::new(),
        required,
        default,
    }
}

pub async fn script(cmd: ScriptCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        ScriptCmd::Add {
            name,
            file,
            description,
            params,
            hub,
        } => {
            let content = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let new = NewScript {
                name,
                description,
                content,
                parameters: params.iter().map(|p| parse_param(p)).collect(),
            };
            let s: Script = crate::admin_client::connect(&hub)?
                .post("/api/v1/scripts", &new)
                .await?;
            emit(&s, |s| {
                println!("{} {} v{}  sha256 {}", s.id, s.name, s.version, s.sha256)
            })?;
        }
        ScriptCmd::List { retired, hub } => {
            let path = if retired {
                "/api/v1/scripts?retired=true"
            } else {
                "/api/v1/scripts"
            };
            let list: Vec<Script> = crate::admin_client::connect(&hub)?.get(path).await?;
            emit(&list, print_scripts)?;
        }
        ScriptCmd::Show { id, hub } => {
            let s: Script = crate::admin_client::connect(&hub)?
                .get(&format!("/api/v1/scripts/{id}"))
                .await?;
            emit(&s, |s| {
                println!("{} v{}  sha256 {}", s.name, s.version, s.sha256);
                for p in &s.parameters {
                    println!(
                        "  param {}{}{}",
                        p.name,
                        if p.required { " (required)" } else { "" },
                        p.default
                            .as_deref()
                            .map(|d| format!(" = {d}"))
                            .unwrap_or_default()
                    );
                }
                println!("{}", s.content.as_deref().unwrap_or(""));
            })?;
        }
        ScriptCmd::Retire { id, hub } => {
            let s: Script = crate::admin_client::connect(&hub)?
                .post(&format!("/api/v1/scripts/{id}/retire"), &())
                .await?;
            emit(&s, |s| println!("{} v{} retired", s.name, s.version))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_secret(s: &IntegrationSecret) {
    println!("integration {}  {}", s.integration.id, s.integration.name);
    println!(
        "signing secret (shown once; give it to the helpdesk): {}",
        s.signing_secret
    );
    if let Some(until) = s.integration.previous_secret_until {
        println!("the previous secret also signs until {until}");
    }
}

pub async fn integration(cmd: IntegrationCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        IntegrationCmd::Create {
            name,
            prefixes,
            technician,
            ca_cert,
            allow_http,
            allow_private,
            hub,
        } => {
            let ca_pem = match ca_cert {
                Some(p) => Some(
                    std::fs::read_to_string(&p)
                        .with_context(|| format!("reading {}", p.display()))?,
                ),
                None => None,
            };
            let new = NewIntegration {
                name,
                callback_prefixes: prefixes,
                technician_id: technician,
                allow_http,
                allow_private,
                ca_pem,
            };
            let s: IntegrationSecret = crate::admin_client::connect(&hub)?
                .post("/api/v1/integrations", &new)
                .await?;
            emit(&s, print_secret)?;
        }
        IntegrationCmd::List { hub } => {
            let list: Vec<Integration> = crate::admin_client::connect(&hub)?
                .get("/api/v1/integrations")
                .await?;
            emit(&list, |list| {
                for i in list {
                    println!(
                        "{}  {:<20} {}{}{}",
                        i.id,
                        i.name,
                        i.callback_prefixes.join(" "),
                        if i.has_ca { "  [private CA]" } else { "" },
                        if i.allow_private {
                            "  [private addresses]"
                        } else {
                            ""
                        }
                    );
                }
            })?;
        }
        IntegrationCmd::RotateSecret { id, grace, hub } => {
            let s: IntegrationSecret = crate::admin_client::connect(&hub)?
                .post(
                    &format!("/api/v1/integrations/{id}/rotate-secret"),
                    &RotateSigningSecret { grace_secs: grace },
                )
                .await?;
            emit(&s, print_secret)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_task(t: &Task) {
    println!(
        "{}  {:<20} {:<10} {:<19} {}",
        t.id,
        t.request_ref,
        t.action.as_str(),
        t.status.as_str(),
        counts_line(&t.counts)
    );
    if let Some(r) = &t.reason {
        println!("  reason: {r}");
    }
    if let Some(s) = &t.callbacks_stopped {
        println!("  callbacks stopped: {s}");
    }
}

pub async fn task(cmd: TaskCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        TaskCmd::Create {
            action,
            request,
            idempotency_key,
            package,
            script,
            args,
            workstations,
            users,
            domain,
            at,
            time_zone,
            integration,
            callback_url,
            hub,
        } => {
            let mut arguments = BTreeMap::new();
            for a in args {
                let (k, v) = a
                    .split_once('=')
                    .with_context(|| format!("--arg {a:?}: write Name=value"))?;
                arguments.insert(k.to_owned(), v.to_owned());
            }
            let schedule = match at {
                None => None,
                Some(at) => {
                    let (date, time) = at
                        .split_once('T')
                        .with_context(|| format!("--at {at:?}: write 2026-12-24T18:30"))?;
                    Some(Schedule {
                        date: date.to_owned(),
                        time: time.to_owned(),
                        time_zone,
                    })
                }
            };
            let new = NewTask {
                idempotency_key: idempotency_key.unwrap_or_else(|| request.clone()),
                request_ref: request,
                integration_id: integration,
                action: match action {
                    ActionArg::Install => TaskAction::Install,
                    ActionArg::Uninstall => TaskAction::Uninstall,
                    ActionArg::Advertise => TaskAction::Advertise,
                    ActionArg::RunScript => TaskAction::RunScript,
                },
                package_id: package,
                script_id: script,
                arguments,
                package_settings: Default::default(),
                deployment: DeploymentSettings {
                    domain,
                    schedule,
                    ..Default::default()
                },
                targets: TaskTargets {
                    workstations,
                    users,
                },
                callback_url,
            };
            let t: Task = crate::admin_client::connect(&hub)?
                .post("/api/v1/tasks", &new)
                .await?;
            emit(&t, print_task)?;
        }
        TaskCmd::List {
            request,
            status,
            hub,
        } => {
            let q = query(&[("request_ref", request), ("status", status)]);
            let list: Vec<Task> = crate::admin_client::connect(&hub)?
                .get(&format!("/api/v1/tasks{q}"))
                .await?;
            emit(&list, |list| list.iter().for_each(print_task))?;
        }
        TaskCmd::Show { id, hub } => {
            let t: Task = crate::admin_client::connect(&hub)?
                .get(&format!("/api/v1/tasks/{id}"))
                .await?;
            emit(&t, |t| {
                print_task(t);
                for d in t.targets.iter().flatten() {
                    println!(
                        "  {:<20} {:<10} {}",
                        d.hostname,
                        d.state.as_str(),
                        d.error.as_deref().unwrap_or("")
                    );
                }
            })?;
        }
        TaskCmd::Cancel { id, hub } => {
            let t: Task = crate::admin_client::connect(&hub)?
                .post(&format!("/api/v1/tasks/{id}/cancel"), &())
                .await?;
            emit(&t, print_task)?;
        }
        TaskCmd::Deliveries { id, hub } => {
            let list: Vec<Delivery> = crate::admin_client::connect(&hub)?
                .get(&format!("/api/v1/tasks/{id}/deliveries"))
                .await?;
            emit(&list, |list| {
                for d in list {
                    println!(
                        "{}  #{} {:<19} {:?}",
                        d.id,
                        d.sequence,
                        d.status.as_str(),
                        d.state
                    );
                    for a in &d.attempts {
                        println!(
                            "    {}  {}  {} ms  {}",
                            a.at,
                            a.status_code.map(|c| c.to_string()).unwrap_or("-".into()),
                            a.latency_ms,
                            a.error.as_deref().unwrap_or("")
                        );
                    }
                }
            })?;
        }
        TaskCmd::Redeliver { id, delivery, hub } => {
            let r: Redelivered = crate::admin_client::connect(&hub)?
                .post(
                    &format!("/api/v1/tasks/{id}/deliveries/{delivery}/redeliver"),
                    &(),
                )
                .await?;
            emit(&r, |r| println!("{} queued again", r.id))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
