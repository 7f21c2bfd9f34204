//! Technicians, their API keys, who you are, and the audit log.

use std::io::BufRead;
use std::process::ExitCode;

use anyhow::{Context, bail};
use ferry_proto::identity::{
    ApiKey, AuditEntry, CreatedApiKey, Me, NewApiKey, NewTechnician, Role, SetPassword, Technician,
    UpdateTechnician,
};

use crate::admin_client::{AdminClient, HubArgs, connect};
use crate::cli::{AuditArgs, KeyCmd, TechnicianCmd};
use crate::output::{emit, record};

/// The technician named by id or login name.
async fn resolve(client: &AdminClient, who: &str) -> anyhow::Result<Technician> {
    if let Ok(id) = uuid::Uuid::parse_str(who) {
        return Ok(client.get(&format!("/api/v1/technicians/{id}")).await?);
    }
    let all: Vec<Technician> = client.get("/api/v1/technicians").await?;
    all.into_iter()
        .find(|t| t.name.eq_ignore_ascii_case(who))
        .with_context(|| format!("no technician named {who:?}"))
}

/// The technician a key command is about: the one named, or the caller.
pub(crate) async fn key_owner(
    client: &AdminClient,
    who: Option<&str>,
) -> anyhow::Result<uuid::Uuid> {
    Ok(match who {
        Some(w) => resolve(client, w).await?.id,
        None => client.get::<Me>("/api/v1/me").await?.technician.id,
    })
}

/// Reads `n` lines from stdin (passwords are never command-line arguments: those show in
/// process lists and shell histories).
fn read_lines(n: usize) -> anyhow::Result<Vec<String>> {
    let stdin = std::io::stdin();
    let mut lines = Vec::with_capacity(n);
    for line in stdin.lock().lines().take(n) {
        lines.push(line.context("reading stdin")?);
    }
    if lines.len() < n {
        bail!("expected {n} line(s) on stdin");
    }
    Ok(lines)
}

fn print_technicians(list: &[Technician]) {
    for t in list {
        println!(
            "{}  {:<20} {:<8} {:<8} {}{}",
            t.id,
            t.name,
            t.role,
            if t.enabled { "enabled" } else { "disabled" },
            t.display_name,
            t.email
                .as_deref()
                .map(|e| format!(" <{e}>"))
                .unwrap_or_default()
        );
    }
}

fn print_keys(keys: &[ApiKey]) {
    for k in keys {
        let state = if k.revoked_at.is_some() {
            "revoked".to_owned()
        } else {
            match k.expires_at {
                Some(e) => format!("expires {e}"),
                None => "no expiry".to_owned(),
            }
        };
        let used = match (&k.last_used_at, &k.last_used_addr) {
            (Some(at), Some(addr)) => format!("last used {at} from {addr}"),
            (Some(at), None) => format!("last used {at}"),
            _ => "never used".to_owned(),
        };
        println!("{}  {:<24} {:<30} {}", k.id, k.name, state, used);
    }
}

fn print_created_key(created: &CreatedApiKey) {
    println!("key:   {}  ({})", created.key.id, created.key.name);
    println!("token: {}", created.token);
    println!("(the token is shown once; the hub keeps only a hash of it)");
}

pub async fn technician(cmd: TechnicianCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        TechnicianCmd::Create {
            name,
            role,
            display_name,
            email,
            password_stdin,
            hub,
        } => {
            let password = if password_stdin {
                read_lines(1)?.pop()
            } else {
                None
            };
            let created: Technician = connect(&hub)?
                .post(
                    "/api/v1/technicians",
                    &NewTechnician {
                        name,
                        display_name,
                        email,
                        role: role.into(),
                        password,
                    },
                )
                .await?;
            emit(&created, |t| print_technicians(std::slice::from_ref(t)))?;
        }
        TechnicianCmd::List { hub } => {
            let list: Vec<Technician> = connect(&hub)?.get("/api/v1/technicians").await?;
            emit(&list, |l| print_technicians(l))?;
        }
        TechnicianCmd::Show { technician, hub } => {
            let t = resolve(&connect(&hub)?, &technician).await?;
            record(&t)?;
        }
        TechnicianCmd::SetRole {
            technician,
            role,
            hub,
        } => {
            let role: Role = role.into();
            update(
                &hub,
                &technician,
                UpdateTechnician {
                    role: Some(role),
                    ..Default::default()
                },
            )
            .await?;
        }
        TechnicianCmd::Disable { technician, hub } => {
            update(
                &hub,
                &technician,
                UpdateTechnician {
                    enabled: Some(false),
                    ..Default::default()
                },
            )
            .await?;
        }
        TechnicianCmd::Enable { technician, hub } => {
            update(
                &hub,
                &technician,
                UpdateTechnician {
                    enabled: Some(true),
                    ..Default::default()
                },
            )
            .await?;
        }
        TechnicianCmd::SetPassword {
            technician,
            current,
            hub,
        } => {
            let client = connect(&hub)?;
            let t = resolve(&client, &technician).await?;
            let mut lines = read_lines(if current { 2 } else { 1 })?.into_iter();
            let password = lines.next().unwrap_or_default();
            let current_password = lines.next();
            let _: serde_json::Value = client
                .post(
                    &format!("/api/v1/technicians/{}/password", t.id),
                    &SetPassword {
                        password,
                        current_password,
                    },
                )
                .await?;
            if !crate::output::json() {
                println!("password set for {}; their sessions have ended", t.name);
            }
        }
        TechnicianCmd::Key(cmd) => key(cmd).await?,
    }
    Ok(ExitCode::SUCCESS)
}

async fn update(hub: &HubArgs, who: &str, update: UpdateTechnician) -> anyhow::Result<()> {
    let client = connect(hub)?;
    let t = resolve(&client, who).await?;
    let t: Technician = client
        .patch(&format!("/api/v1/technicians/{}", t.id), &update)
        .await?;
    emit(&t, |t| print_technicians(std::slice::from_ref(t)))
}

async fn key(cmd: KeyCmd) -> anyhow::Result<()> {
    match cmd {
        KeyCmd::Create {
            technician,
            name,
            expires_in,
            hub,
        } => {
            let client = connect(&hub)?;
            let owner = key_owner(&client, technician.as_deref()).await?;
            let created: CreatedApiKey = client
                .post(
                    &format!("/api/v1/technicians/{owner}/keys"),
                    &NewApiKey {
                        name,
                        expires_in_secs: expires_in,
                        current_password: None,
                    },
                )
                .await?;
            emit(&created, print_created_key)?;
        }
        KeyCmd::List { technician, hub } => {
            let client = connect(&hub)?;
            let owner = key_owner(&client, technician.as_deref()).await?;
            let keys: Vec<ApiKey> = client
                .get(&format!("/api/v1/technicians/{owner}/keys"))
                .await?;
            emit(&keys, |k| print_keys(k))?;
        }
        KeyCmd::Regenerate {
            key,
            technician,
            hub,
        } => {
            let client = connect(&hub)?;
            let owner = key_owner(&client, technician.as_deref()).await?;
            let created: CreatedApiKey = client
                .post(
                    &format!("/api/v1/technicians/{owner}/keys/{key}/regenerate"),
                    &serde_json::json!({}),
                )
                .await?;
            emit(&created, print_created_key)?;
        }
        KeyCmd::Revoke {
            key,
            technician,
            hub,
        } => {
            let client = connect(&hub)?;
            let owner = key_owner(&client, technician.as_deref()).await?;
            let revoked: ApiKey = client
                .post(
                    &format!("/api/v1/technicians/{owner}/keys/{key}/revoke"),
                    &serde_json::json!({}),
                )
                .await?;
            emit(&revoked, |k| print_keys(std::slice::from_ref(k)))?;
        }
    }
    Ok(())
}

pub async fn me(hub: &HubArgs) -> anyhow::Result<ExitCode> {
    let me: Me = connect(hub)?.get("/api/v1/me").await?;
    emit(&me, |m| {
        println!(
            "{} ({}), role {}",
            m.technician.name, m.technician.display_name, m.technician.role
        )
    })?;
    Ok(ExitCode::SUCCESS)
}

pub async fn audit(args: AuditArgs) -> anyhow::Result<ExitCode> {
    let mut query = vec![format!("limit={}", args.limit)];
    let mut param = |name: &str, value: Option<String>| {
        if let Some(v) = value {
            query.push(format!("{name}={}", encode(&v)));
        }
    };
    param("actor", args.actor);
    param("action", args.action);
    param("since", args.since);
    param("until", args.until);
    let entries: Vec<AuditEntry> = connect(&args.hub)?
        .get(&format!("/api/v1/audit?{}", query.join("&")))
        .await?;
    emit(&entries, |entries| {
        for e in entries {
            println!(
                "{}  {:<24} {:<16} {:<22} {} {}",
                e.at,
                e.actor,
                e.address.as_deref().unwrap_or("-"),
                e.action,
                e.target.as_deref().unwrap_or_default(),
                e.detail.as_deref().unwrap_or_default()
            );
        }
    })?;
    Ok(ExitCode::SUCCESS)
}

/// Percent-encodes a query value (RFC 3986 unreserved characters stay).
fn encode(v: &str) -> String {
    v.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
