//! Client operations: start one against collections and devices, watch its counts live,
//! read per-device results, cancel it.

use ferry_proto::ErrorCode;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use bytes::Bytes;
use ferry_proto::agent::{Assignment, HubMessage};
use ferry_proto::ops::{
    Detection, NewOperation, OnInterrupt, OpRequest, OpSpec, OpWatch, Operation, PackageRef,
    TargetResult, TargetState,
};
use uuid::Uuid;

use super::auth::Admin;
use super::error::{Error, Result};
use super::extract::{ApiJson, ApiQuery, IdPath};
use crate::AppState;
use crate::store::{OpError, OpInsert};
use crate::time_util::now_ms;

/// Output kept per device and stream unless the operator says otherwise.
pub const DEFAULT_OUTPUT_LIMIT: u32 = 64 * 1024;
/// Most output an operator may ask to keep per device and stream.
pub const MAX_OUTPUT_LIMIT: u32 = 256 * 1024;
const DEFAULT_EXPIRY_SECS: u64 = 24 * 3600;
const MAX_EXPIRY_SECS: u64 = 30 * 24 * 3600;
const MAX_TIMEOUT_SECS: u32 = 24 * 3600;
const MAX_SCRIPT_BYTES: usize = 256 * 1024;
const MAX_ARGS: usize = 64;
const MAX_ARG_BYTES: usize = 4096;
const MAX_TARGET_IDS: usize = 100_000;

impl From<OpError> for Error {
    fn from(e: OpError) -> Self {
        match e {
            OpError::NotFound => Error::NotFound("operation"),
            OpError::UnknownCollection(_) | OpError::UnknownDevice(_) => Error::Unprocessable {
                code: ErrorCode::UnknownReference,
                message: e.to_string(),
            },
            OpError::NoTargets => Error::Unprocessable {
                code: ErrorCode::NoTargets,
                message: e.to_string(),
            },
            OpError::Store(s) => s.into(),
        }
    }
}

/// How long a device may run each kind of operation unless the operator says otherwise.
fn default_timeout(spec: &OpSpec) -> u32 {
    match spec {
        OpSpec::FullAvScan => 6 * 3600,
        OpSpec::RunScript { .. } => 600,
        OpSpec::Restart => 300,
        _ => 3600,
    }
}

fn no_nul(field: &str, s: &str) -> Result<()> {
    // A NUL cannot travel in a process argument or a script file name; refuse it up front.
    if s.contains('\0') {
        return Err(Error::bad(
            ErrorCode::InvalidOperation,
            format!("`{field}` contains a NUL character"),
        ));
    }
    Ok(())
}

pub fn check_detection(d: &Detection) -> Result<()> {
    match d {
        Detection::MsiProductCode(code) => {
            let inner = code.strip_prefix('{').and_then(|c| c.strip_suffix('}'));
            if inner.and_then(|g| Uuid::parse_str(g).ok()).is_none() || code.len() != 38 {
                return Err(Error::bad(
                    ErrorCode::InvalidDetection,
                    "an MSI product code is a GUID in braces, e.g. {12345678-1234-1234-1234-123456789012}",
                ));
            }
        }
        Detection::File(path) | Detection::Script(path) => {
            if path.trim().is_empty() || path.len() > MAX_SCRIPT_BYTES {
                return Err(Error::bad(
                    ErrorCode::InvalidDetection,
                    "a file or script detection must be non-empty and at most 256 KiB",
                ));
            }
            no_nul("detection", path)?;
        }
    }
    Ok(())
}

async fn package(state: &AppState, id: Uuid) -> Result<PackageRef> {
    state
        .store
        .package_ref(id)
        .await?
        .ok_or_else(|| Error::Unprocessable {
            code: ErrorCode::UnknownReference,
            message: format!("no package with ID {id}"),
        })
}

/// Checks the request and resolves package IDs to what an agent needs to fetch them.
async fn resolve(state: &AppState, op: OpRequest) -> Result<OpSpec> {
    Ok(match op {
        OpRequest::RequestMachinePolicy => OpSpec::RequestMachinePolicy,
        OpRequest::FullAvScan => OpSpec::FullAvScan,
        OpRequest::QuickAvScan => OpSpec::QuickAvScan,
        OpRequest::Restart => OpSpec::Restart,
        OpRequest::RunScript { script, args } => {
            if script.trim().is_empty() || script.len() > MAX_SCRIPT_BYTES {
                return Err(Error::bad(
                    ErrorCode::InvalidOperation,
                    "`script` must be non-empty and at most 256 KiB",
                ));
            }
            if args.len() > MAX_ARGS || args.iter().any(|a| a.len() > MAX_ARG_BYTES) {
                return Err(Error::bad(
                    ErrorCode::InvalidOperation,
                    format!("at most {MAX_ARGS} arguments of at most {MAX_ARG_BYTES} bytes each"),
                ));
            }
            no_nul("script", &script)?;
            for a in &args {
                no_nul("args", a)?;
            }
            OpSpec::RunScript { script, args }
        }
        OpRequest::Install { package_id } => OpSpec::Install {
            package: package(state, package_id).await?,
        },
        OpRequest::Uninstall { package_id } => OpSpec::Uninstall {
            package: package(state, package_id).await?,
        },
        OpRequest::Advertise { package_id } => {
            let package = package(state, package_id).await?;
            if package.msi_file.is_none() {
                return Err(Error::Unprocessable {
                    code: ErrorCode::NotAnMsi,
                    message: "advertising needs a package with an MSI".into(),
                });
            }
            OpSpec::Advertise { package }
        }
    })
}

/// `value` if it lies in `range`, `default` if absent, else a 400 naming the field.
fn in_range<T: PartialOrd + std::fmt::Display + Copy>(
    field: &str,
    code: ErrorCode,
    value: Option<T>,
    range: std::ops::RangeInclusive<T>,
    default: T,
) -> Result<T> {
    match value {
        None => Ok(default),
        Some(v) if range.contains(&v) => Ok(v),
        Some(_) => Err(Error::bad(
            code,
            format!(
                "`{field}` must be between {} and {}",
                range.start(),
                range.end()
            ),
        )),
    }
}

/// `POST /api/v1/ops`: starts an operation; connected targets get it at once.
pub async fn start(
    admin: Admin,
    State(state): State<AppState>,
    ApiJson(new): ApiJson<NewOperation>,
) -> Result<(StatusCode, Json<Operation>)> {
    if new.collections.is_empty() && new.devices.is_empty() {
        return Err(Error::bad(
            ErrorCode::NoTargets,
            "name at least one collection or device",
        ));
    }
    if new.collections.len() + new.devices.len() > MAX_TARGET_IDS {
        return Err(Error::bad(
            ErrorCode::TooManyTargets,
            format!("at most {MAX_TARGET_IDS} collection and device IDs"),
        ));
    }
    let spec = resolve(&state, new.op).await?;
    let timeout_secs = in_range(
        "timeout_secs",
        ErrorCode::InvalidTimeout,
        new.timeout_secs,
        1..=MAX_TIMEOUT_SECS,
        default_timeout(&spec),
    )?;
    let output_limit = in_range(
        "output_limit",
        ErrorCode::InvalidOutputLimit,
        new.output_limit,
        1024..=MAX_OUTPUT_LIMIT,
        DEFAULT_OUTPUT_LIMIT,
    )?;
    let expires_in = in_range(
        "expires_in_secs",
        ErrorCode::InvalidExpiry,
        new.expires_in_secs,
        1..=MAX_EXPIRY_SECS,
        DEFAULT_EXPIRY_SECS,
    )?;
    let on_interrupt = new.on_interrupt.unwrap_or(if spec.idempotent() {
        OnInterrupt::Rerun
    } else {
        OnInterrupt::Fail
    });
    let insert = OpInsert {
        id: Uuid::new_v4(),
        spec,
        actor: admin.actor().to_owned(),
        expires_at: now_ms() + (expires_in as i64) * 1000,
        timeout_secs,
        output_limit,
        on_interrupt,
        collections: new.collections,
        devices: new.devices,
    };
    let online = state.agents.online_devices();
    let (operation, targets) = state.store.create_op(&insert, &online).await?;
    // One serialisation for every target.
    let frame = serde_json::to_vec(&HubMessage::Operation(Assignment {
        op_id: insert.id,
        spec: insert.spec,
        timeout_secs,
        output_limit,
        on_interrupt,
    }))
    .map_err(anyhow::Error::from)?;
    // Every target connected now, including any whose session opened since `online` was
    // taken (`send_to` skips the rest); a duplicate is answered from the agent's journal.
    let sent = state.agents.send_to(&targets, &Bytes::from(frame));
    tracing::info!(op = %operation.id, kind = operation.spec.kind(), targets = operation.counts.total, sent, "operation started");
    state.agents.sweeper.notify_one();
    state.agents.touch_ops([operation.id]);
    Ok((StatusCode::CREATED, Json(operation)))
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    limit: Option<u32>,
}

pub async fn list(
    _: Admin,
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<Vec<Operation>>> {
    let limit = q.limit.unwrap_or(50).clamp(1, 500);
    Ok(Json(state.store.list_ops(limit).await?))
}

pub async fn show(
    _: Admin,
    State(state): State<AppState>,
    IdPath(id): IdPath,
) -> Result<Json<Operation>> {
    state
        .store
        .get_op(id)
        .await?
        .map(Json)
        .ok_or(Error::NotFound("operation"))
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResultsQuery {
    state: Option<String>,
    limit: Option<u32>,
    offset: Option<u32>,
}

/// `GET /api/v1/ops/{id}/results?state=&limit=&offset=`: per-device records.
pub async fn results(
    _: Admin,
    State(state): State<AppState>,
    IdPath(id): IdPath,
    ApiQuery(q): ApiQuery<ResultsQuery>,
) -> Result<Json<Vec<TargetResult>>> {
    let filter = match q.state.as_deref() {
        None => None,
        Some(s) => Some(TargetState::parse(s).ok_or_else(|| {
            Error::bad(
                ErrorCode::InvalidQuery,
                format!("unknown state {s:?}; one of pending, offline, delivered, running, succeeded, failed, expired, cancelled"),
            )
        })?),
    };
    if state.store.get_op(id).await?.is_none() {
        return Err(Error::NotFound("operation"));
    }
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    Ok(Json(
        state
            .store
            .op_results(id, filter, limit, q.offset.unwrap_or(0))
            .await?,
    ))
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatchQuery {
    /// The version the caller has; the answer waits until the operation moves past it.
    since: Option<u64>,
    hold: Option<u32>,
}

/// `GET /api/v1/ops/{id}/watch?since=V&hold=S`: a long poll for live counts.
pub async fn watch(
    _: Admin,
    State(state): State<AppState>,
    IdPath(id): IdPath,
    ApiQuery(q): ApiQuery<WatchQuery>,
) -> Result<Json<OpWatch>> {
    let since = q.since.unwrap_or(0);
    let hold = q
        .hold
        .unwrap_or(state.config.default_hold_secs)
        .min(state.config.max_hold_secs);
    let mut clock = state.agents.subscribe_ops();
    let mut shutdown = state.shutdown.clone();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(hold.into());
    while state.agents.op_version(id) <= since {
        tokio::select! {
            changed = clock.changed() => if changed.is_err() { break },
            _ = tokio::time::sleep_until(deadline) => break,
            _ = shutdown.changed() => break,
        }
    }
    let version = state.agents.op_version(id);
    let operation = state
        .store
        .get_op(id)
        .await?
        .ok_or(Error::NotFound("operation"))?;
    Ok(Json(OpWatch { version, operation }))
}

/// `POST /api/v1/ops/{id}/cancel`: unfinished targets become `cancelled`; agents running it
/// are told to stop.
pub async fn cancel(
    admin: Admin,
    State(state): State<AppState>,
    IdPath(id): IdPath,
) -> Result<Json<Operation>> {
    let devices = state.store.cancel_op(admin.actor(), id).await?;
    if let Ok(frame) = serde_json::to_vec(&HubMessage::Cancel { op_id: id }) {
        state.agents.send_to(&devices, &Bytes::from(frame));
    }
    state.agents.touch_ops([id]);
    state
        .store
        .get_op(id)
        .await?
        .map(Json)
        .ok_or(Error::NotFound("operation"))
}
