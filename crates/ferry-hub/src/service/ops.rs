//! Client operations: start one against collections and devices, watch its counts live,
//! read per-device results, cancel it.

use std::time::Duration;

use bytes::Bytes;
use ferry_proto::ErrorCode;
use ferry_proto::agent::{Assignment, HubMessage};
use ferry_proto::ops::{
    NewOperation, OnInterrupt, OpRequest, OpSpec, OpWatch, Operation, PackageRef, TargetResult,
    TargetState,
};
use uuid::Uuid;

use super::fleet::check_no_nul;
use super::in_range;
use crate::AppState;
use crate::error::{Error, Result};
use crate::store::{Actor, OpInsert};
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
/// Most per-device records one page returns.
const MAX_PAGE: u32 = 1000;

/// How long a device may run each kind of operation unless the operator says otherwise.
pub(crate) fn default_timeout(spec: &OpSpec) -> u32 {
    match spec {
        OpSpec::FullAvScan => 6 * 3600,
        OpSpec::RunScript { .. } => 600,
        OpSpec::Restart => 300,
        _ => 3600,
    }
}

async fn package(state: &AppState, id: Uuid) -> Result<PackageRef> {
    state.store.package_ref(id).await?.ok_or_else(|| {
        Error::unprocessable(
            ErrorCode::UnknownReference,
            format!("no package with ID {id}"),
        )
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
            check_no_nul("script", &script)?;
            for a in &args {
                check_no_nul("args", a)?;
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
                return Err(Error::unprocessable(
                    ErrorCode::NotAnMsi,
                    "advertising needs a package with an MSI",
                ));
            }
            OpSpec::Advertise { package }
        }
    })
}

impl AppState {
    /// Starts an operation; connected targets get it at once.
    pub async fn start_op(&self, actor: &Actor, new: NewOperation) -> Result<Operation> {
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
        let spec = resolve(self, new.op).await?;
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
            expires_at: now_ms() + (expires_in as i64) * 1000,
            timeout_secs,
            output_limit,
            on_interrupt,
            after: None,
            wait: None,
            collections: new.collections,
            devices: new.devices,
        };
        let online = self.agents.online_devices();
        let (operation, targets) = self.store.create_op(actor, &insert, &online).await?;
        let sent = self.announce_op(&insert, &targets);
        tracing::info!(op = %operation.id, kind = operation.spec.kind(), targets = operation.counts.total, sent, "operation started");
        Ok(operation)
    }

    /// After an operation committed: hands it to every target connected now, including any
    /// whose session opened since the online list was taken (`send_to` skips the rest; a
    /// duplicate is answered from the agent's journal). Returns how many were sent.
    pub(crate) fn announce_op(&self, op: &OpInsert, targets: &[Uuid]) -> usize {
        let op_id = op.id;
        // One serialisation for every target.
        let sent = match serde_json::to_vec(&HubMessage::Operation(Assignment {
            op_id,
            spec: op.spec.clone(),
            timeout_secs: op.timeout_secs,
            output_limit: op.output_limit,
            on_interrupt: op.on_interrupt,
            after: op.after,
            wait: op.wait.clone().map(|mut w| {
                w.within_secs = op.expires_at.saturating_sub(now_ms()).max(0) as u64 / 1000;
                w
            }),
        })) {
            Ok(frame) => self.agents.send_to(targets, &Bytes::from(frame)),
            // Agents get it at their next session start (open assignments are re-sent).
            Err(e) => {
                tracing::error!(op = %op_id, error = %e, "could not serialise an operation");
                0
            }
        };
        self.agents.sweeper.notify_one();
        self.agents.touch_ops([op_id]);
        sent
    }

    /// After a cancellation committed: devices running it are told to stop.
    pub(crate) fn tell_cancelled(&self, op_id: Uuid, devices: &[Uuid]) {
        if let Ok(frame) = serde_json::to_vec(&HubMessage::Cancel { op_id }) {
            self.agents.send_to(devices, &Bytes::from(frame));
        }
        self.agents.touch_ops([op_id]);
    }

    pub async fn ops(&self, limit: Option<u32>) -> Result<Vec<Operation>> {
        let limit = limit.unwrap_or(50).clamp(1, 500);
        Ok(self.store.list_ops(limit).await?)
    }

    pub async fn op(&self, id: Uuid) -> Result<Operation> {
        self.store
            .get_op(id)
            .await?
            .ok_or(Error::NotFound("operation"))
    }

    /// Per-device records, by hostname, optionally of one state.
    pub async fn op_results(
        &self,
        id: Uuid,
        state: Option<&str>,
        limit: Option<u32>,
        offset: Option<u32>,
    ) -> Result<Vec<TargetResult>> {
        let filter = match state {
            None => None,
            Some(s) => Some(TargetState::parse(s).ok_or_else(|| {
                Error::bad(
                    ErrorCode::InvalidQuery,
                    format!("unknown state {s:?}; one of pending, offline, delivered, running, succeeded, failed, expired, cancelled"),
                )
            })?),
        };
        self.op(id).await?;
        let limit = limit.unwrap_or(100).clamp(1, MAX_PAGE);
        Ok(self
            .store
            .op_results(id, filter, limit, offset.unwrap_or(0))
            .await?)
    }

    /// A long poll for live counts: answers when the operation moves past version `since`,
    /// or after `hold` seconds.
    pub async fn watch_op(
        &self,
        id: Uuid,
        since: Option<u64>,
        hold: Option<u32>,
    ) -> Result<OpWatch> {
        let since = since.unwrap_or(0);
        let hold = hold
            .unwrap_or(self.config.default_hold_secs)
            .min(self.config.max_hold_secs);
        let mut clock = self.agents.subscribe_ops();
        let mut shutdown = self.shutdown.clone();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(hold.into());
        while self.agents.op_version(id) <= since {
            tokio::select! {
                changed = clock.changed() => if changed.is_err() { break },
                _ = tokio::time::sleep_until(deadline) => break,
                _ = shutdown.changed() => break,
            }
        }
        let version = self.agents.op_version(id);
        let operation = self.op(id).await?;
        Ok(OpWatch { version, operation })
    }

    /// Unfinished targets become `cancelled`; agents running it are told to stop.
    pub async fn cancel_op(&self, actor: &Actor, id: Uuid) -> Result<Operation> {
        let (devices, queued) = self.store.cancel_op(actor, id).await?;
        self.tell_cancelled(id, &devices);
        self.outbox.poke_for(queued);
        self.op(id).await
    }
}
