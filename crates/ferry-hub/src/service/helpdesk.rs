//! The helpdesk integration: the catalogue, the script library, integrations and their signing
//! secrets, tasks from service requests (validated field by field, idempotent, turned into one
//! client operation), request closure, signed inbound status, and the task scheduler.
//!
//! Every refusal of a task names the field at fault (`422` with `field`), and nothing is
//! created: validation and target resolution finish before the one transaction that creates
//! the task, its operation and its first callback.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use ferry_proto::ErrorCode;
use ferry_proto::helpdesk::{
    CatalogDomain, CatalogPage, CatalogSoftware, CatalogUser, CatalogWorkstation, CloseRequest,
    Delivery, DeployFor, InboundStatus, Integration, IntegrationSecret, NewIntegration, NewScript,
    NewTask, RebootPolicy, Redelivered, RotateSigningSecret, RunWhen, Schedule, Script, Task,
    TaskAction, TaskStatus, installer_type,
};
use ferry_proto::helpdesk::{
    CreatedNotificationRule, NewNotificationRule, NotificationChannel, NotificationRule,
};
use ferry_proto::identity::Role;
use ferry_proto::ops::{AfterSuccess, Moment, OnInterrupt, OpSpec, WaitFor};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::check_printable;
use super::ops::{DEFAULT_OUTPUT_LIMIT, default_timeout};
use crate::AppState;
use crate::agents::lock;
use crate::callbacks::{check_url, is_internal, receiver_client};
use crate::error::{Error, Result};
use crate::secrets::Purpose;
use crate::store::Actor;
use crate::store::helpdesk::{
    HelpdeskError, IntegrationInsert, RuleInsert, ScriptInsert, TaskCreated, TaskInsert, TaskPlan,
};
use crate::time_util::now_ms;
use crate::webhooks;

/// Task creations waiting for a group commit, and the turn to run one (see
/// [`AppState::commit_task`]).
#[derive(Default)]
pub struct TaskGroup {
    queue: std::sync::Mutex<Vec<QueuedTask>>,
    turn: tokio::sync::Mutex<()>,
}

struct QueuedTask {
    actor: Actor,
    insert: std::sync::Arc<TaskInsert>,
    done: tokio::sync::oneshot::Sender<Result<TaskCreated>>,
}

/// `DOMAIN\\name` for a task's user target: kept when qualified, else under the task's
/// domain; `None` when it names no domain and the task gives none.
fn qualified_user(u: &str, domain: Option<&String>) -> Option<String> {
    match (u.contains('\\'), domain) {
        (true, _) => Some(u.trim().to_owned()),
        (false, Some(d)) => Some(format!("{}\\{}", d.trim(), u.trim())),
        (false, None) => None,
    }
}

/// Most task creations committed in one transaction.
const MAX_GROUP: usize = 256;
const MAX_REF: usize = 200;
const MAX_SCRIPT_BYTES: usize = 256 * 1024;
const MAX_PARAMETERS: usize = 32;
const MAX_ARG_BYTES: usize = 4096;
const MAX_PREFIXES: usize = 20;
const MAX_URL: usize = 2048;
const MAX_TARGETS: usize = 10_000;
const MAX_PAGE: u32 = 500;
/// An undelivered task operation expires this long after it starts.
const TASK_EXPIRY_SECS: u64 = 7 * 24 * 3600;
/// The furthest ahead a task may be scheduled.
const MAX_SCHEDULE_AHEAD_MS: i64 = 366 * 24 * 3600 * 1000;
const DEFAULT_GRACE_SECS: u64 = 24 * 3600;
const MAX_GRACE_SECS: u64 = 7 * 24 * 3600;

impl From<HelpdeskError> for Error {
    fn from(e: HelpdeskError) -> Self {
        match e {
            HelpdeskError::NotFound(what) => Error::NotFound(what),
            HelpdeskError::NameTaken(_) => Error::conflict(ErrorCode::NameTaken, e.to_string()),
            HelpdeskError::UnknownTechnician(_) => Error::Invalid {
                code: ErrorCode::UnknownReference,
                field: "technician_id".to_owned(),
                message: e.to_string(),
            },
            HelpdeskError::KeyReused(_) => {
                Error::conflict(ErrorCode::IdempotencyKeyReused, e.to_string())
            }
            HelpdeskError::Finished(_) => Error::conflict(ErrorCode::TaskFinished, e.to_string()),
            HelpdeskError::TooMany(..) => Error::conflict(ErrorCode::TooManyRules, e.to_string()),
            HelpdeskError::Op(op) => op.into(),
            HelpdeskError::Store(s) => s.into(),
        }
    }
}

/// 422 naming `field` unless `value` is 1–`max` printable characters.
fn printable(field: &str, value: &str, max: usize) -> Result<()> {
    if value.trim().is_empty() || value.chars().count() > max || value.chars().any(char::is_control)
    {
        return Err(Error::invalid(
            field,
            format!("must be 1–{max} printable characters"),
        ));
    }
    Ok(())
}

fn unsupported(field: &str, why: &str) -> Error {
    Error::Invalid {
        code: ErrorCode::UnsupportedSetting,
        field: field.to_owned(),
        message: why.to_owned(),
    }
}

/// A parameter name a PowerShell `param()` block and a shell script can both take.
fn valid_parameter_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= 64
}

/// `(date, time, zone)` → Unix ms, or 422 naming the part at fault.
pub fn schedule_ms(s: &Schedule) -> Result<i64> {
    use time::macros::format_description;
    let date =
        time::Date::parse(&s.date, format_description!("[year]-[month]-[day]")).map_err(|_| {
            Error::invalid(
                "deployment.schedule.date",
                format!("{:?} is not a date as YYYY-MM-DD", s.date),
            )
        })?;
    let t = time::Time::parse(&s.time, format_description!("[hour]:[minute]"))
        .or_else(|_| time::Time::parse(&s.time, format_description!("[hour]:[minute]:[second]")))
        .map_err(|_| {
            Error::invalid(
                "deployment.schedule.time",
                format!("{:?} is not a time as HH:MM or HH:MM:SS", s.time),
            )
        })?;
    let zone = s.time_zone.trim();
    let fixed = if zone.eq_ignore_ascii_case("utc") || zone == "Z" {
        Some(time::UtcOffset::UTC)
    } else {
        time::UtcOffset::parse(zone, format_description!("[offset_hour]:[offset_minute]")).ok()
    };
    if let Some(offset) = fixed {
        let at = time::PrimitiveDateTime::new(date, t).assume_offset(offset);
        return Ok((at.unix_timestamp_nanos() / 1_000_000) as i64);
    }
    // An IANA name (`Europe/Berlin`): the wall-clock time there, daylight saving included. A
    // time that does not exist (skipped by a spring-forward) or exists twice resolves as the
    // clocks do (jiff's "compatible" rule): the later and the earlier instant respectively.
    let bad_zone = || {
        Error::invalid(
            "deployment.schedule.time_zone",
            format!("{zone:?} is not UTC, an offset as +HH:MM or an IANA time zone name"),
        )
    };
    if zone.len() > 64 {
        return Err(bad_zone());
    }
    let tz = jiff::tz::TimeZone::get(zone).map_err(|_| bad_zone())?;
    let civil = jiff::civil::DateTime::new(
        date.year() as i16,
        date.month() as i8,
        date.day() as i8,
        t.hour() as i8,
        t.minute() as i8,
        t.second() as i8,
        0,
    )
    .map_err(|_| Error::invalid("deployment.schedule.date", "out of range"))?;
    let zoned = civil.to_zoned(tz).map_err(|_| bad_zone())?;
    Ok(zoned.timestamp().as_millisecond())
}

/// Whether `url` lies under `prefix`: the same scheme, host and port, and a path that is the
/// prefix's or continues it past a `/` (so `https://hd.example/cb` does not admit
/// `https://hd.example/cb-evil` nor `https://hd.example.evil.net/…`).
pub fn within_prefix(url: &reqwest::Url, prefix: &reqwest::Url) -> bool {
    if url.scheme() != prefix.scheme()
        || url.host_str() != prefix.host_str()
        || url.port_or_known_default() != prefix.port_or_known_default()
    {
        return false;
    }
    let (path, base) = (url.path(), prefix.path());
    path == base
        || (path.starts_with(base) && (base.ends_with('/') || path[base.len()..].starts_with('/')))
}

fn parse_prefix(p: &str, allow_http: bool) -> std::result::Result<reqwest::Url, String> {
    let url = check_url(p, allow_http).map_err(|e| e.to_string())?;
    if url.query().is_some() || url.fragment().is_some() {
        return Err("a prefix has no query or fragment".to_owned());
    }
    Ok(url)
}

impl AppState {
    // ----- catalogue ----------------------------------------------------------------------

    pub async fn catalog_software(&self) -> Result<Vec<CatalogSoftware>> {
        let mut out: Vec<CatalogSoftware> = self
            .store
            .list_packages()
            .await?
            .into_iter()
            .map(|p| {
                let proposal = &p.metadata.proposal;
                let kind = installer_type(proposal);
                CatalogSoftware {
                    package_id: p.id,
                    vendor: proposal.vendor.clone(),
                    name: proposal
                        .product
                        .clone()
                        .or_else(|| proposal.package_name.clone())
                        .unwrap_or(p.filename),
                    version: proposal.version.clone(),
                    language: proposal.language.clone(),
                    installer_type: kind,
                    actions: kind.actions().to_vec(),
                }
            })
            .collect();
        out.sort_by(|a, b| {
            (
                a.vendor.as_deref(),
                &a.name,
                a.version.as_deref(),
                a.package_id,
            )
                .cmp(&(
                    b.vendor.as_deref(),
                    &b.name,
                    b.version.as_deref(),
                    b.package_id,
                ))
        });
        Ok(out)
    }

    pub async fn catalog_domains(&self) -> Result<Vec<CatalogDomain>> {
        Ok(self.store.catalog_domains().await?)
    }

    pub async fn catalog_workstations(
        &self,
        domain: Option<&str>,
        q: Option<&str>,
        limit: Option<u32>,
        offset: Option<u64>,
    ) -> Result<CatalogPage<CatalogWorkstation>> {
        let limit = limit.unwrap_or(100).clamp(1, MAX_PAGE);
        let offset = offset.unwrap_or(0);
        let mut items = self
            .store
            .catalog_workstations(domain, q, limit + 1, offset)
            .await?;
        let next_offset = (items.len() > limit as usize).then(|| offset + u64::from(limit));
        items.truncate(limit as usize);
        for w in &mut items {
            w.online = self.agents.is_online(w.device_id);
        }
        Ok(CatalogPage { items, next_offset })
    }

    pub async fn catalog_users(
        &self,
        domain: Option<&str>,
        q: Option<&str>,
        limit: Option<u32>,
        offset: Option<u64>,
    ) -> Result<CatalogPage<CatalogUser>> {
        let limit = limit.unwrap_or(100).clamp(1, MAX_PAGE);
        let offset = offset.unwrap_or(0);
        let mut items = self
            .store
            .catalog_users(domain, q, limit + 1, offset)
            .await?;
        let next_offset = (items.len() > limit as usize).then(|| offset + u64::from(limit));
        items.truncate(limit as usize);
        Ok(CatalogPage { items, next_offset })
    }

    // ----- script library -----------------------------------------------------------------

    pub async fn add_script(&self, actor: &Actor, new: NewScript) -> Result<Script> {
        printable("name", &new.name, 128)?;
        if new.description.chars().count() > 2000 {
            return Err(Error::invalid("description", "at most 2,000 characters"));
        }
        if new.content.trim().is_empty() || new.content.len() > MAX_SCRIPT_BYTES {
            return Err(Error::invalid(
                "content",
                "must be non-empty and at most 256 KiB",
            ));
        }
        if new.content.contains('\0') {
            return Err(Error::invalid("content", "contains a NUL character"));
        }
        if new.parameters.len() > MAX_PARAMETERS {
            return Err(Error::invalid(
                "parameters",
                format!("at most {MAX_PARAMETERS} parameters"),
            ));
        }
        let mut seen = BTreeSet::new();
        for (i, p) in new.parameters.iter().enumerate() {
            if !valid_parameter_name(&p.name) || !seen.insert(p.name.to_ascii_lowercase()) {
                return Err(Error::invalid(
                    format!("parameters[{i}].name"),
                    "must be a unique identifier (letters, digits, _; at most 64)",
                ));
            }
            if p.description.chars().count() > 500 {
                return Err(Error::invalid(
                    format!("parameters[{i}].description"),
                    "at most 500 characters",
                ));
            }
            if let Some(d) = &p.default
                && (d.len() > MAX_ARG_BYTES || d.contains('\0'))
            {
                return Err(Error::invalid(
                    format!("parameters[{i}].default"),
                    "at most 4,096 bytes, no NUL",
                ));
            }
        }
        let sha256 = crate::blobs::hex(&Sha256::digest(new.content.as_bytes()));
        let insert = ScriptInsert {
            id: Uuid::new_v4(),
            name: new.name,
            description: new.description,
            content: new.content,
            sha256,
            parameters: new.parameters,
        };
        Ok(self.store.add_script(actor, &insert).await?)
    }

    pub async fn scripts(&self, include_retired: bool) -> Result<Vec<Script>> {
        Ok(self.store.scripts(include_retired).await?)
    }

    pub async fn script(&self, id: Uuid) -> Result<Script> {
        self.store
            .script(id, true)
            .await?
            .ok_or(Error::NotFound("script"))
    }

    pub async fn retire_script(&self, actor: &Actor, id: Uuid) -> Result<Script> {
        Ok(self.store.retire_script(actor, id).await?)
    }

    // ----- integrations -------------------------------------------------------------------

    pub async fn create_integration(
        &self,
        actor: &Actor,
        new: NewIntegration,
    ) -> Result<IntegrationSecret> {
        printable("name", &new.name, 128)?;
        if new.callback_prefixes.is_empty() || new.callback_prefixes.len() > MAX_PREFIXES {
            return Err(Error::invalid(
                "callback_prefixes",
                format!("name 1–{MAX_PREFIXES} URL prefixes"),
            ));
        }
        for (i, p) in new.callback_prefixes.iter().enumerate() {
            if p.len() > MAX_URL {
                return Err(Error::invalid(
                    format!("callback_prefixes[{i}]"),
                    "too long",
                ));
            }
            parse_prefix(p, new.allow_http)
                .map_err(|e| Error::invalid(format!("callback_prefixes[{i}]"), e))?;
        }
        if let Some(pem) = &new.ca_pem {
            if pem.len() > 64 * 1024 {
                return Err(Error::invalid("ca_pem", "at most 64 KiB"));
            }
            receiver_client(new.allow_private, Some(pem))
                .map_err(|e| Error::invalid("ca_pem", e))?;
        }
        let secret = webhooks::generate_secret();
        let insert = IntegrationInsert {
            id: Uuid::new_v4(),
            name: new.name,
            callback_prefixes: new.callback_prefixes,
            technician_id: new.technician_id,
            allow_http: new.allow_http,
            allow_private: new.allow_private,
            ca_pem: new.ca_pem,
            secret_sealed: self.sealer.seal(Purpose::SigningSecret, secret.as_bytes()),
        };
        let integration = self.store.create_integration(actor, &insert).await?;
        Ok(IntegrationSecret {
            integration,
            signing_secret: secret,
        })
    }

    pub async fn integrations(&self) -> Result<Vec<Integration>> {
        Ok(self.store.integrations().await?)
    }

    /// A new signing secret; the old one keeps signing beside it for the grace period.
    pub async fn rotate_signing_secret(
        &self,
        actor: &Actor,
        id: Uuid,
        req: RotateSigningSecret,
    ) -> Result<IntegrationSecret> {
        let grace = req.grace_secs.unwrap_or(DEFAULT_GRACE_SECS);
        if grace > MAX_GRACE_SECS {
            return Err(Error::invalid("grace_secs", "at most 604800 (7 days)"));
        }
        let secret = webhooks::generate_secret();
        let sealed = self.sealer.seal(Purpose::SigningSecret, secret.as_bytes());
        let until = now_ms() + (grace as i64) * 1000;
        let integration = self
            .store
            .rotate_integration_secret(actor, id, &sealed, until)
            .await?;
        self.outbox.forget(id);
        Ok(IntegrationSecret {
            integration,
            signing_secret: secret,
        })
    }

    // ----- tasks --------------------------------------------------------------------------

    /// Creates a task (or returns the one this caller created with the same idempotency key):
    /// `201`-worthy when `.1` is true.
    pub async fn create_task(
        &self,
        actor: &Actor,
        technician: Uuid,
        role: Role,
        new: NewTask,
    ) -> Result<(Task, bool)> {
        printable("request_ref", &new.request_ref, MAX_REF)?;
        printable("idempotency_key", &new.idempotency_key, MAX_REF)?;
        let request_hash =
            Sha256::digest(serde_json::to_vec(&new).map_err(|e| Error::Internal(e.into()))?)
                .to_vec();
        let idem_owner = format!("technician:{technician}");
        // A retry is answered before anything is validated again: what was valid when the
        // task was created (a user logged on, a script not yet retired) may not be now.
        if let Some((id, hash)) = self
            .store
            .task_by_key(&idem_owner, &new.idempotency_key)
            .await?
        {
            if hash != request_hash {
                return Err(HelpdeskError::KeyReused(id).into());
            }
            return Ok((self.task(id).await?, false));
        }

        // The integration, its callback URL. Its secret speaks for the helpdesk, so only the
        // helpdesk's own technician (or an administrator) may have Ferry sign with it.
        let integration = match new.integration_id {
            Some(id) => {
                let i = self
                    .store
                    .integration(id)
                    .await?
                    .ok_or_else(|| Error::invalid("integration_id", "no such integration"))?;
                if role != Role::Admin && i.technician_id != Some(technician) {
                    return Err(Error::forbidden(
                        "only the integration's own technician or an administrator may create tasks for it",
                    ));
                }
                Some(i)
            }
            None => match self.store.integration_of(technician).await? {
                Some(id) => self.store.integration(id).await?,
                None => None,
            },
        };
        if let Some(url) = &new.callback_url {
            let Some(integration) = &integration else {
                return Err(Error::invalid(
                    "callback_url",
                    "a callback needs an integration (to sign it and to bound where it may go): name `integration_id`",
                ));
            };
            self.check_callback(integration, url)?;
        }

        // What to run.
        let (mut spec, timeout) = self.task_spec(&new).await?;
        if let Some(unc) = &new.package_settings.copy_from_share {
            let field = "package_settings.copy_from_share";
            if unc.len() > 1024 {
                return Err(Error::invalid(field, "at most 1,024 characters"));
            }
            ferry_proto::ops::split_unc(unc).map_err(|why| Error::invalid(field, why))?;
            match &mut spec {
                OpSpec::Install { package }
                | OpSpec::Uninstall { package }
                | OpSpec::Advertise { package } => package.copy_from = Some(unc.clone()),
                _ => {
                    return Err(Error::invalid(
                        field,
                        "only a package's install, uninstall or advertisement copies from a share",
                    ));
                }
            }
        }

        // Deployment settings the agents cannot honour yet are refused, not ignored.
        if let Some(run_as) = &new.package_settings.run_as {
            printable("package_settings.run_as.user", &run_as.user, 256)?;
            return Err(unsupported(
                "package_settings.run_as",
                "running as another account is not supported by the agent yet; the task would run as the agent's service account",
            ));
        }
        let wait = self.wait_for(&new)?;
        // `allow_skip`: the device reports a restart it needs and leaves it to its user.
        let after = match new.deployment.reboot {
            None | Some(RebootPolicy::AllowSkip) => None,
            Some(RebootPolicy::ForceReboot) => Some(AfterSuccess::Restart),
            Some(RebootPolicy::ForceShutdown) => Some(AfterSuccess::Shutdown),
        };
        if let Some(d) = &new.deployment.domain {
            printable("deployment.domain", d, 255)?;
        }
        let scheduled_for = match &new.deployment.schedule {
            None => None,
            Some(s) => {
                let at = schedule_ms(s)?;
                let now = now_ms();
                if at <= now {
                    return Err(Error::invalid(
                        "deployment.schedule",
                        "the scheduled time has passed",
                    ));
                }
                if at > now + MAX_SCHEDULE_AHEAD_MS {
                    return Err(Error::invalid(
                        "deployment.schedule",
                        "at most a year ahead",
                    ));
                }
                Some(at)
            }
        };

        // Targets, resolved to enabled devices now (a later logon does not add devices).
        let devices = self.resolve_targets(&new).await?;

        let insert = TaskInsert {
            id: Uuid::new_v4(),
            request_ref: new.request_ref,
            idem_owner,
            idem_key: new.idempotency_key,
            request_hash,
            integration_id: integration.as_ref().map(|i| i.id),
            action: new.action,
            package_id: new.package_id,
            script_id: new.script_id,
            plan: TaskPlan {
                spec,
                timeout_secs: timeout,
                output_limit: DEFAULT_OUTPUT_LIMIT,
                on_interrupt: OnInterrupt::Fail,
                expires_in_secs: TASK_EXPIRY_SECS,
                devices,
                after,
                wait,
            },
            callback_url: new.callback_url,
            scheduled_for,
            owner_id: Some(technician),
        };
        let insert = std::sync::Arc::new(insert);
        let created = self.commit_task(actor, insert.clone()).await?;
        if created.created {
            tracing::info!(task = %created.task.id, request = %created.task.request_ref, action = created.task.action.as_str(), devices = insert.plan.devices.len(), "task created");
        }
        Ok((created.task, created.created))
    }

    /// The moment a task's action waits for on its devices. As in the helpdesk's form, a
    /// deployment for users runs at a logon and one for workstations at a startup; a logon
    /// wait for named users is a wait for one of *their* logons.
    fn wait_for(&self, new: &NewTask) -> Result<Option<WaitFor>> {
        let moment = match new.deployment.when {
            None | Some(RunWhen::Immediately) => return Ok(None),
            Some(RunWhen::DuringLogin) => Moment::DuringLogon,
            Some(RunWhen::AfterLogin) => Moment::AfterLogon,
            Some(RunWhen::DuringStartup) => Moment::DuringStartup,
            Some(RunWhen::AfterStartup) => Moment::AfterStartup,
        };
        match (new.deployment.deploy_for, moment.is_logon()) {
            (Some(DeployFor::User), false) => {
                return Err(Error::invalid(
                    "deployment.when",
                    "a deployment for users runs during or after a logon, not at a startup",
                ));
            }
            (Some(DeployFor::Workstation), true) => {
                return Err(Error::invalid(
                    "deployment.when",
                    "a deployment for workstations runs during or after a startup, not at a logon",
                ));
            }
            _ => {}
        }
        let users = if moment.is_logon() {
            new.targets
                .users
                .iter()
                .filter_map(|u| qualified_user(u, new.deployment.domain.as_ref()))
                .collect()
        } else {
            Vec::new()
        };
        Ok(Some(WaitFor {
            moment,
            users,
            within_secs: 0,
        }))
    }

    /// Creates a task in a group commit: concurrent creations queue up and one transaction
    /// commits everything queued by then, so a burst of requests pays one fsync instead of
    /// one each (the agents' reports are written the same way). What must follow a commit
    /// (the operation handed to connected agents, the scheduler and the outbox woken) is done
    /// by the commit, for every task in it, not by the caller.
    async fn commit_task(
        &self,
        actor: &Actor,
        insert: std::sync::Arc<TaskInsert>,
    ) -> Result<TaskCreated> {
        let (done, answer) = tokio::sync::oneshot::channel();
        lock(&self.task_group.queue).push(QueuedTask {
            actor: actor.clone(),
            insert,
            done,
        });
        // The queue is drained on a task of its own, not by this caller: a caller that goes
        // away (a client that hung up) must neither leave its task in the queue nor take
        // other callers' answers with it. Drainers take turns; the first takes all there is.
        let state = self.clone();
        tokio::spawn(async move {
            let committed = {
                let _turn = state.task_group.turn.lock().await;
                // At most a bounded group, so one commit never holds the writer for long; the
                // rest is left to the drainers queued behind (one per caller).
                let group: Vec<QueuedTask> = {
                    let mut queue = lock(&state.task_group.queue);
                    let n = queue.len().min(MAX_GROUP);
                    queue.drain(..n).collect()
                };
                if group.is_empty() {
                    return;
                }
                state.commit_group(group).await
            };
            // The next group commits while this one's operations go out.
            state.after_group(committed);
        });
        answer
            .await
            .map_err(|_| Error::Internal(anyhow::anyhow!("the task's group commit was lost")))?
    }

    /// Commits a group: each task with its result.
    async fn commit_group(&self, group: Vec<QueuedTask>) -> Vec<(QueuedTask, Result<TaskCreated>)> {
        // Only the group's own devices are looked up, not every connected one.
        let online: Vec<Uuid> = group
            .iter()
            .flat_map(|q| q.insert.plan.devices.iter())
            .filter(|d| self.agents.session(**d).is_some())
            .copied()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let refs: Vec<(&Actor, &TaskInsert)> =
            group.iter().map(|q| (&q.actor, &*q.insert)).collect();
        match self.store.create_tasks(&refs, &online).await {
            Ok(results) if results.len() == group.len() => group
                .into_iter()
                .zip(results)
                .map(|(q, r)| (q, r.map_err(Error::from)))
                .collect(),
            Ok(results) => {
                let why = format!("{} results for {} tasks", results.len(), group.len());
                tracing::error!(error = %why, "the store answered a group of tasks wrongly");
                group
                    .into_iter()
                    .map(|q| {
                        (
                            q,
                            Err(Error::Internal(anyhow::anyhow!("creating the task: {why}"))),
                        )
                    })
                    .collect()
            }
            Err(e) => {
                let why = e.to_string();
                tracing::error!(error = %why, tasks = group.len(), "could not create a group of tasks");
                group
                    .into_iter()
                    .map(|q| {
                        let e = Error::Internal(anyhow::anyhow!("creating the task: {why}"));
                        (q, Err(e))
                    })
                    .collect()
            }
        }
    }

    /// What follows a group's commit: its operations handed to the connected agents, the
    /// scheduler and the outbox woken, the callers answered.
    fn after_group(&self, committed: Vec<(QueuedTask, Result<TaskCreated>)>) {
        let mut any = false;
        for (q, r) in committed {
            if let Ok(created) = &r
                && created.created
            {
                any = true;
                if let Some(op) = created.task.op_id {
                    // The store gave it `now` as the start of its life; near enough here,
                    // where only the waiting time handed to the devices depends on it.
                    let mut announced = q.insert.plan.op_insert(now_ms());
                    announced.id = op;
                    self.announce_op(&announced, &created.targets);
                }
                if q.insert.scheduled_for.is_some() {
                    self.scheduler.notify_one();
                }
            }
            let _ = q.done.send(r);
        }
        if any {
            self.outbox.poke();
        }
    }

    fn check_callback(&self, integration: &Integration, url: &str) -> Result<()> {
        let not_allowed = |why: String| Error::Invalid {
            code: ErrorCode::CallbackNotAllowed,
            field: "callback_url".to_owned(),
            message: why,
        };
        if url.len() > MAX_URL {
            return Err(not_allowed("too long".to_owned()));
        }
        let parsed =
            check_url(url, integration.allow_http).map_err(|e| not_allowed(e.to_string()))?;
        let inside = integration
            .callback_prefixes
            .iter()
            .filter_map(|p| parse_prefix(p, integration.allow_http).ok())
            .any(|p| within_prefix(&parsed, &p));
        if !inside {
            return Err(not_allowed(format!(
                "not under any of the integration's callback prefixes ({})",
                integration.callback_prefixes.join(", ")
            )));
        }
        if let Some(ip) = parsed
            .host_str()
            .and_then(|h| h.trim_matches(['[', ']']).parse::<std::net::IpAddr>().ok())
            && is_internal(ip)
            && !integration.allow_private
        {
            return Err(not_allowed(format!(
                "{ip} is a loopback, private or link-local address"
            )));
        }
        Ok(())
    }

    /// The operation a task runs, and its timeout.
    async fn task_spec(&self, new: &NewTask) -> Result<(OpSpec, u32)> {
        let spec = match new.action {
            TaskAction::RunScript => {
                if new.package_id.is_some() {
                    return Err(Error::invalid(
                        "package_id",
                        "`run_script` takes `script_id`, not a package",
                    ));
                }
                let id = new
                    .script_id
                    .ok_or_else(|| Error::invalid("script_id", "`run_script` needs a script"))?;
                let script = self
                    .store
                    .script(id, true)
                    .await?
                    .ok_or_else(|| Error::invalid("script_id", "no such script"))?;
                if script.retired {
                    return Err(Error::Invalid {
                        code: ErrorCode::ScriptRetired,
                        field: "script_id".to_owned(),
                        message: format!(
                            "script {:?} version {} was retired",
                            script.name, script.version
                        ),
                    });
                }
                let declared: HashMap<String, usize> = script
                    .parameters
                    .iter()
                    .enumerate()
                    .map(|(i, p)| (p.name.to_ascii_lowercase(), i))
                    .collect();
                for (name, value) in &new.arguments {
                    if !declared.contains_key(&name.to_ascii_lowercase()) {
                        return Err(Error::invalid(
                            format!("arguments.{name}"),
                            "the script declares no such parameter",
                        ));
                    }
                    if value.len() > MAX_ARG_BYTES || value.contains('\0') {
                        return Err(Error::invalid(
                            format!("arguments.{name}"),
                            "at most 4,096 bytes, no NUL",
                        ));
                    }
                }
                let given: HashMap<String, &String> = new
                    .arguments
                    .iter()
                    .map(|(k, v)| (k.to_ascii_lowercase(), v))
                    .collect();
                let mut args = Vec::with_capacity(script.parameters.len());
                for p in &script.parameters {
                    match (given.get(&p.name.to_ascii_lowercase()), &p.default) {
                        (Some(v), _) => args.push((*v).clone()),
                        (None, Some(d)) => args.push(d.clone()),
                        (None, None) if p.required => {
                            return Err(Error::invalid(
                                format!("arguments.{}", p.name),
                                "required by the script",
                            ));
                        }
                        (None, None) => args.push(String::new()),
                    }
                }
                OpSpec::RunScript {
                    script: script.content.unwrap_or_default(),
                    args,
                }
            }
            action => {
                if new.script_id.is_some() {
                    return Err(Error::invalid(
                        "script_id",
                        "only `run_script` takes a script",
                    ));
                }
                if !new.arguments.is_empty() {
                    return Err(Error::invalid(
                        "arguments",
                        "only `run_script` takes arguments",
                    ));
                }
                let id = new.package_id.ok_or_else(|| {
                    Error::invalid(
                        "package_id",
                        format!("`{}` needs a package", action.as_str()),
                    )
                })?;
                let package = self
                    .store
                    .get_package(id)
                    .await?
                    .ok_or_else(|| Error::invalid("package_id", "no such package"))?;
                let kind = installer_type(&package.metadata.proposal);
                if let Some(declared) = new.package_settings.installer_type
                    && declared != kind
                {
                    return Err(Error::invalid(
                        "package_settings.installer_type",
                        format!(
                            "the package is `{}`, not `{}`",
                            kind.as_str(),
                            declared.as_str()
                        ),
                    ));
                }
                if !kind.actions().contains(&action) {
                    return Err(Error::invalid(
                        "action",
                        format!(
                            "a `{}` package cannot be `{}`d",
                            kind.as_str(),
                            action.as_str()
                        ),
                    ));
                }
                let package = self
                    .store
                    .package_ref(id)
                    .await?
                    .ok_or_else(|| Error::invalid("package_id", "no such package"))?;
                match action {
                    TaskAction::Install => OpSpec::Install { package },
                    TaskAction::Uninstall => OpSpec::Uninstall { package },
                    TaskAction::Advertise if package.msi_file.is_some() => {
                        OpSpec::Advertise { package }
                    }
                    TaskAction::Advertise => {
                        return Err(Error::invalid(
                            "action",
                            "the package has no MSI chosen to advertise",
                        ));
                    }
                    TaskAction::RunScript => unreachable!("handled above"),
                }
            }
        };
        let timeout = default_timeout(&spec);
        Ok((spec, timeout))
    }

    async fn resolve_targets(&self, new: &NewTask) -> Result<Vec<Uuid>> {
        let t = &new.targets;
        if t.workstations.is_empty() && t.users.is_empty() {
            return Err(Error::invalid(
                "targets",
                "name at least one workstation or user",
            ));
        }
        if t.workstations.len() + t.users.len() > MAX_TARGETS {
            return Err(Error::invalid(
                "targets",
                format!("at most {MAX_TARGETS} targets"),
            ));
        }
        let mut devices = BTreeSet::new();
        for (i, w) in t.workstations.iter().enumerate() {
            let field = format!("targets.workstations[{i}]");
            printable(&field, w, 255)?;
            let found = self.store.resolve_workstation(w.trim()).await?;
            if found.is_empty() {
                return Err(Error::invalid(
                    field,
                    format!("no enabled device named {w:?}"),
                ));
            }
            devices.extend(found);
        }
        for (i, u) in t.users.iter().enumerate() {
            let field = format!("targets.users[{i}]");
            printable(&field, u, 512)?;
            let user = qualified_user(u, new.deployment.domain.as_ref()).ok_or_else(|| {
                Error::invalid(
                    field.clone(),
                    "name the user as DOMAIN\\name, or give `deployment.domain`",
                )
            })?;
            let found = self.store.resolve_user(&user).await?;
            if found.is_empty() {
                return Err(Error::invalid(
                    field,
                    format!("no enabled workstation reports {user} logged on"),
                ));
            }
            devices.extend(found);
        }
        Ok(devices.into_iter().collect())
    }

    pub async fn tasks(
        &self,
        viewer: Role,
        request_ref: Option<&str>,
        status: Option<&str>,
        limit: Option<u32>,
    ) -> Result<Vec<Task>> {
        let status = match status {
            None => None,
            Some(s) => Some(TaskStatus::parse(s).ok_or_else(|| {
                Error::bad(ErrorCode::InvalidQuery, format!("unknown status {s:?}"))
            })?),
        };
        let limit = limit.unwrap_or(50).clamp(1, MAX_PAGE);
        let mut tasks = self.store.tasks(request_ref, status, limit).await?;
        for t in &mut tasks {
            redact(t, viewer);
        }
        Ok(tasks)
    }

    pub async fn task(&self, id: Uuid) -> Result<Task> {
        self.store.task(id).await?.ok_or(Error::NotFound("task"))
    }

    /// The task as `viewer` may see it.
    pub async fn task_for(&self, viewer: Role, id: Uuid) -> Result<Task> {
        let mut t = self.task(id).await?;
        redact(&mut t, viewer);
        Ok(t)
    }

    pub async fn cancel_task(&self, actor: &Actor, id: Uuid) -> Result<Task> {
        let (op, devices) = self.store.cancel_task(actor, id).await?;
        if let Some(op) = op {
            self.tell_cancelled(op, &devices);
        }
        self.outbox.poke();
        self.task(id).await
    }

    pub async fn deliveries(&self, id: Uuid) -> Result<Vec<Delivery>> {
        self.task(id).await?;
        Ok(self.store.deliveries(id).await?)
    }

    pub async fn redeliver(&self, actor: &Actor, id: Uuid, delivery: &str) -> Result<Redelivered> {
        if delivery.len() > 64 {
            return Err(Error::NotFound("delivery"));
        }
        let r = self.store.redeliver(actor, id, delivery).await?;
        self.outbox.poke();
        Ok(r)
    }

    /// The helpdesk deleted, archived or closed the request: its tasks send no more callbacks.
    pub async fn close_request(
        &self,
        actor: &Actor,
        request_ref: &str,
        req: CloseRequest,
    ) -> Result<u64> {
        printable("ref", request_ref, MAX_REF)?;
        printable("state", &req.state, 64)?;
        Ok(self
            .store
            .close_request(actor, request_ref, &req.state)
            .await?)
    }

    /// `POST /api/v1/tasks/{id}/status`: accepted only when signed by the task's integration
    /// (any live secret) within the tolerance window; anything else is `401` and changes
    /// nothing.
    pub async fn inbound_status(
        &self,
        actor: &Actor,
        id: Uuid,
        webhook_id: Option<&str>,
        timestamp: Option<&str>,
        signature: Option<&str>,
        body: &[u8],
    ) -> Result<Task> {
        const BAD: Error = Error::BadSignature(
            "missing or invalid webhook-id, webhook-timestamp or webhook-signature",
        );
        let (Some(wid), Some(ts), Some(sig)) = (webhook_id, timestamp, signature) else {
            return Err(BAD);
        };
        let task = self.store.task(id).await?.ok_or(Error::NotFound("task"))?;
        let Some(integration) = task.integration_id else {
            return Err(Error::conflict(
                ErrorCode::InvalidTask,
                "the task has no integration whose secret could sign its status",
            ));
        };
        let keys = self
            .store
            .integration_keys(integration)
            .await?
            .ok_or(Error::NotFound("integration"))?;
        let now = now_ms();
        let mut secrets = Vec::new();
        for (sealed, until) in std::iter::once((&keys.secret_sealed, i64::MAX))
            .chain(keys.previous.as_ref().map(|(s, u)| (s, *u)))
        {
            if until <= now {
                continue;
            }
            let key = self
                .sealer
                .open(Purpose::SigningSecret, sealed)
                .and_then(|s| String::from_utf8(s).ok())
                .and_then(|s| webhooks::secret_key(&s))
                .ok_or_else(|| Error::Internal(anyhow::anyhow!("signing secret does not open")))?;
            secrets.push(key);
        }
        let refs: Vec<&[u8]> = secrets.iter().map(Vec::as_slice).collect();
        webhooks::verify(&refs, wid, ts, sig, body, now / 1000).map_err(|_| BAD)?;
        let status: InboundStatus = serde_json::from_slice(body)
            .map_err(|e| Error::bad(ErrorCode::InvalidBody, format!("invalid body: {e}")))?;
        if status.task_id != id {
            return Err(Error::invalid(
                "task_id",
                "the signed report is for another task",
            ));
        }
        if !matches!(
            status.status,
            TaskStatus::Succeeded
                | TaskStatus::PartiallySucceeded
                | TaskStatus::Failed
                | TaskStatus::Cancelled
        ) {
            return Err(Error::invalid(
                "status",
                "report a final status: succeeded, partially_succeeded, failed or cancelled",
            ));
        }
        if let Some(r) = &status.reason {
            check_printable("reason", r, 1000, ErrorCode::InvalidField)?;
        }
        let (task, stopped) = self
            .store
            .set_task_status(actor, id, status.status, status.reason.as_deref())
            .await?;
        if let Some((op, devices)) = stopped {
            self.tell_cancelled(op, &devices);
        }
        self.outbox.poke();
        Ok(task)
    }
}

impl AppState {
    // ----- notification rules -------------------------------------------------------------

    /// A rule for `technician` (the caller themself, or an administrator for anyone). Plain
    /// HTTP and internal addresses are for administrators to allow.
    pub async fn create_notification_rule(
        &self,
        actor: &Actor,
        caller_role: Role,
        technician: Uuid,
        new: NewNotificationRule,
    ) -> Result<CreatedNotificationRule> {
        if (new.allow_http || new.allow_private) && caller_role != Role::Admin {
            return Err(Error::forbidden(
                "only administrators may allow plain HTTP or internal addresses",
            ));
        }
        printable("target", &new.target, MAX_URL)?;
        let secret = match new.channel {
            NotificationChannel::Webhook => {
                let url = check_url(&new.target, new.allow_http)
                    .map_err(|e| Error::invalid("target", e.to_string()))?;
                if let Some(ip) = url
                    .host_str()
                    .and_then(|h| h.trim_matches(['[', ']']).parse::<std::net::IpAddr>().ok())
                    && is_internal(ip)
                    && !new.allow_private
                {
                    return Err(Error::invalid(
                        "target",
                        format!("{ip} is a loopback, private or link-local address"),
                    ));
                }
                Some(webhooks::generate_secret())
            }
            NotificationChannel::Email => {
                if self.mailer.is_none() {
                    return Err(Error::invalid(
                        "channel",
                        "the hub has no SMTP server configured (smtp_server)",
                    ));
                }
                if new.target.parse::<lettre::Address>().is_err() {
                    return Err(Error::invalid("target", "not an e-mail address"));
                }
                if new.allow_http || new.allow_private {
                    return Err(Error::invalid(
                        "allow_http",
                        "only webhooks have addresses to allow",
                    ));
                }
                None
            }
        };
        let insert = RuleInsert {
            id: Uuid::new_v4(),
            technician_id: technician,
            channel: new.channel,
            target: new.target,
            on: new.on,
            allow_http: new.allow_http,
            allow_private: new.allow_private,
            secret_sealed: secret
                .as_ref()
                .map(|s| self.sealer.seal(Purpose::SigningSecret, s.as_bytes())),
        };
        let rule = self.store.create_notification_rule(actor, &insert).await?;
        Ok(CreatedNotificationRule {
            rule,
            signing_secret: secret,
        })
    }

    pub async fn notification_rules(&self, technician: Uuid) -> Result<Vec<NotificationRule>> {
        self.technician(technician).await?;
        Ok(self.store.notification_rules(technician).await?)
    }

    pub async fn delete_notification_rule(
        &self,
        actor: &Actor,
        technician: Uuid,
        id: Uuid,
    ) -> Result<()> {
        Ok(self
            .store
            .delete_notification_rule(actor, technician, id)
            .await?)
    }
}

/// A callback URL may carry the helpdesk's own token in its path: guests see only its origin.
fn redact(task: &mut Task, viewer: Role) {
    if viewer == Role::Guest
        && let Some(url) = &task.callback_url
    {
        task.callback_url = Some(match reqwest::Url::parse(url) {
            Ok(u) => format!("{}/…", u.origin().ascii_serialization()),
            Err(_) => "…".to_owned(),
        });
    }
}

/// Starts scheduled tasks when their time comes; sleeps until the next one.
pub async fn run_scheduler(state: AppState) {
    let mut shutdown = state.shutdown.clone();
    loop {
        let now = now_ms();
        let next = match state.store.due_scheduled(now).await {
            Ok((due, next)) => {
                for id in &due {
                    let online = state.agents.online_devices();
                    match state.store.start_scheduled(*id, &online).await {
                        Ok(Some((op, targets))) => {
                            state.announce_op(&op, &targets);
                            tracing::info!(task = %id, op = %op.id, "scheduled task started");
                        }
                        Ok(None) => {}
                        Err(e) => {
                            tracing::error!(task = %id, error = %e, "starting a scheduled task failed")
                        }
                    }
                }
                if !due.is_empty() {
                    state.outbox.poke();
                }
                if due.len() >= 100 {
                    now
                } else {
                    next.unwrap_or(i64::MAX)
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "reading scheduled tasks failed; retrying in a second");
                now + 1000
            }
        };
        let sleep = Duration::from_millis((next - now_ms()).clamp(0, 60_000) as u64);
        tokio::select! {
            _ = tokio::time::sleep(sleep) => {}
            _ = state.scheduler.notified() => {}
            _ = shutdown.changed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> reqwest::Url {
        reqwest::Url::parse(s).unwrap()
    }

    #[test]
    fn a_prefix_admits_its_own_path_and_below_only() {
        let p = url("https://hd.example/ferry");
        assert!(within_prefix(&url("https://hd.example/ferry"), &p));
        assert!(within_prefix(&url("https://hd.example/ferry/t/1"), &p));
        assert!(!within_prefix(&url("https://hd.example/ferry-evil"), &p));
        assert!(!within_prefix(
            &url("https://hd.example.evil.net/ferry"),
            &p
        ));
        assert!(!within_prefix(&url("http://hd.example/ferry"), &p));
        assert!(!within_prefix(&url("https://hd.example:8443/ferry"), &p));
        let slash = url("https://hd.example/");
        assert!(within_prefix(&url("https://hd.example/anything"), &slash));
    }

    #[test]
    fn an_impossible_date_names_the_date_field() {
        let e = schedule_ms(&Schedule {
            date: "2027-02-30".into(),
            time: "10:00".into(),
            time_zone: "UTC".into(),
        })
        .unwrap_err();
        assert_eq!(e.field(), Some("deployment.schedule.date"));
    }

    #[test]
    fn a_schedule_in_a_named_zone_follows_its_daylight_saving() {
        let at = |date: &str, zone: &str| {
            schedule_ms(&Schedule {
                date: date.into(),
                time: "12:00".into(),
                time_zone: zone.into(),
            })
        };
        // CET (+01:00) in January, CEST (+02:00) in July.
        let winter = at("2027-01-15", "UTC").unwrap() - at("2027-01-15", "Europe/Berlin").unwrap();
        let summer = at("2027-07-15", "UTC").unwrap() - at("2027-07-15", "Europe/Berlin").unwrap();
        assert_eq!((winter, summer), (3_600_000, 7_200_000));
        let unknown = at("2027-01-15", "Mars/Olympus_Mons").unwrap_err();
        assert_eq!(unknown.field(), Some("deployment.schedule.time_zone"));
    }

    #[test]
    fn a_schedule_honours_its_offset() {
        let utc = schedule_ms(&Schedule {
            date: "2027-01-01".into(),
            time: "10:00".into(),
            time_zone: "UTC".into(),
        })
        .unwrap();
        let plus_one = schedule_ms(&Schedule {
            date: "2027-01-01".into(),
            time: "11:00".into(),
            time_zone: "+01:00".into(),
        })
        .unwrap();
        assert_eq!(utc, plus_one);
        let bad = schedule_ms(&Schedule {
            date: "2027-01-01".into(),
            time: "25:00".into(),
            time_zone: "UTC".into(),
        })
        .unwrap_err();
        assert_eq!(bad.field(), Some("deployment.schedule.time"));
    }
}
