//! The real agent's [`OpRunner`]: each operation kind mapped to its executor, plus the two
//! that need the hub (packages are downloaded and verified, and a policy request fetches
//! the device's deployments and applies those not yet detected).

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferry_proto::agent::Assignment;
use ferry_proto::ops::{
    AfterSuccess, DeploymentAction, OpOutcome, OpSpec, OutcomeState, PackageRef,
};
use tokio_util::sync::CancellationToken;

use crate::exec::package::PackageAction;
use crate::exec::{self, ExecSettings, failed};
use crate::session::{AgentCtx, OpRunner};

pub struct DeviceRunner {
    pub exec: ExecSettings,
}

impl OpRunner for DeviceRunner {
    fn run<'a>(
        &'a self,
        ctx: &'a Arc<AgentCtx>,
        a: &'a Assignment,
        cancel: CancellationToken,
    ) -> Pin<Box<dyn Future<Output = OpOutcome> + Send + 'a>> {
        Box::pin(async move {
            let op_dir = self.exec.work_dir.join(a.op_id.to_string());
            if let Err(e) = std::fs::create_dir_all(&op_dir) {
                return failed(format!("cannot create {}: {e}", op_dir.display()));
            }
            let mut outcome = self.dispatch(ctx, a, &op_dir, &cancel).await;
            // The work folder holds a copy of the package and scripts; nothing to keep.
            let _ = tokio::fs::remove_dir_all(&op_dir).await;
            if let Some(after) = a.after
                && outcome.state == OutcomeState::Succeeded
            {
                self.after_success(after, &mut outcome, &cancel).await;
            }
            outcome
        })
    }

    fn wait<'a>(
        &'a self,
        ctx: &'a Arc<AgentCtx>,
        a: &'a Assignment,
        cancel: &'a CancellationToken,
    ) -> Pin<Box<dyn Future<Output = Result<String, OpOutcome>> + Send + 'a>> {
        Box::pin(async move {
            let Some(wait) = &a.wait else {
                return Ok(String::new());
            };
            // Users are named as the inventory names them (local accounts under this name).
            let hostname = crate::inventory::hostname();
            let state = JournalWait { ctx, op: a.op_id };
            crate::moments::wait_for(&self.exec, &hostname, wait, &state, cancel).await
        })
    }
}

/// A wait's state, kept in the operation's journal entry.
struct JournalWait<'a> {
    ctx: &'a AgentCtx,
    op: uuid::Uuid,
}

impl crate::moments::WaitState for JournalWait<'_> {
    fn load(&self) -> Option<crate::journal::Waiting> {
        self.ctx.journal.get(self.op).and_then(|(e, _)| e.waiting)
    }

    fn save(&self, w: crate::journal::Waiting) {
        if let Err(e) = self.ctx.journal.set_waiting(self.op, w) {
            // Only a restart while waiting is affected: it would wait for the moment anew.
            tracing::warn!(op = %self.op, error = %e, "cannot record a wait in the journal");
        }
    }
}

impl DeviceRunner {
    /// A task's reboot policy: schedules the restart or shutdown once the action succeeded
    /// (the default commands give a minute's warning, time enough to report). Failing to
    /// schedule it fails the operation: the helpdesk asked for the device to go down.
    async fn after_success(
        &self,
        after: AfterSuccess,
        outcome: &mut OpOutcome,
        cancel: &CancellationToken,
    ) {
        let timeout = Duration::from_secs(60);
        let power = match after {
            AfterSuccess::Restart => {
                exec::restart::restart(&self.exec, timeout, 4096, cancel).await
            }
            AfterSuccess::Shutdown => {
                exec::restart::shutdown(&self.exec, timeout, 4096, cancel).await
            }
        };
        if power.state == OutcomeState::Succeeded {
            if !outcome.output.is_empty() && !outcome.output.ends_with('\n') {
                outcome.output.push('\n');
            }
            outcome
                .output
                .push_str(&format!("[ferry] {} scheduled\n", after.as_str()));
        } else {
            outcome.state = OutcomeState::Failed;
            outcome.error = format!(
                "the action succeeded, but the {} could not be scheduled: {}",
                after.as_str(),
                power.error
            );
        }
    }

    async fn dispatch(
        &self,
        ctx: &Arc<AgentCtx>,
        a: &Assignment,
        op_dir: &Path,
        cancel: &CancellationToken,
    ) -> OpOutcome {
        let timeout = Duration::from_secs(a.timeout_secs.into());
        let limit = a.output_limit as usize;
        let s = &self.exec;
        match &a.spec {
            OpSpec::RunScript { script, args } => {
                exec::script::run_script(s, op_dir, script, args, timeout, limit, cancel).await
            }
            OpSpec::QuickAvScan => exec::av::av_scan(s, false, timeout, limit, cancel).await,
            OpSpec::FullAvScan => exec::av::av_scan(s, true, timeout, limit, cancel).await,
            OpSpec::Restart => exec::restart::restart(s, timeout, limit, cancel).await,
            OpSpec::Install { package }
            | OpSpec::Uninstall { package }
            | OpSpec::Advertise { package } => {
                let action = match &a.spec {
                    OpSpec::Install { .. } => PackageAction::Install,
                    OpSpec::Uninstall { .. } => PackageAction::Uninstall,
                    _ => PackageAction::Advertise,
                };
                self.package(ctx, action, package, op_dir, timeout, limit, cancel)
                    .await
            }
            OpSpec::RequestMachinePolicy => self.policy(ctx, op_dir, timeout, limit, cancel).await,
        }
    }

    /// Downloads, verifies and unpacks a package into `<op_dir>/<name>`; or, for a package
    /// to be copied from a network share, copies the share's folder there.
    async fn fetch(
        &self,
        ctx: &AgentCtx,
        package: &PackageRef,
        op_dir: &Path,
        deadline: Instant,
        cancel: &CancellationToken,
    ) -> Result<PathBuf, String> {
        if let Some(unc) = &package.copy_from {
            let (root, src) = exec::share::resolve(unc, &self.exec.share_mounts)?;
            let dest = op_dir.join(package.id.to_string());
            let dest2 = dest.clone();
            // Stops the copy when the operation is cancelled, runs out of time or is dropped.
            let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let _stop_on_drop = StopOnDrop(stop.clone());
            let stop2 = stop.clone();
            let copying = tokio::task::spawn_blocking(move || {
                let stopped = || {
                    stop2.load(std::sync::atomic::Ordering::Relaxed) || Instant::now() > deadline
                };
                exec::share::copy_tree(&src, &dest2, root.as_deref(), &stopped)
            });
            let bytes = tokio::select! {
                r = copying => r
                    .map_err(|e| e.to_string())?
                    .map_err(|e| format!("copying from {unc}: {e}"))?,
                _ = cancel.cancelled() => return Err("cancelled while copying from the share".into()),
            };
            tracing::info!(share = %unc, bytes, "package copied from the network share");
            return Ok(dest);
        }
        let zip = op_dir.join(format!("{}.zip", package.id));
        ctx.http()
            .download_agent_package(package, &zip, patience(deadline))
            .await
            .map_err(|e| format!("downloading package {}: {e}", package.filename))?;
        let dest = op_dir.join(package.id.to_string());
        let zip2 = zip.clone();
        let dest2 = dest.clone();
        tokio::task::spawn_blocking(move || {
            let file = std::fs::File::open(&zip2).map_err(|e| e.to_string())?;
            ferry_package::archive::extract(
                std::io::BufReader::new(file),
                &dest2,
                &ferry_package::archive::Limits::default(),
            )
            .map(|_| ())
            .map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("unpacking package {}: {e}", package.filename))?;
        let _ = std::fs::remove_file(&zip);
        Ok(dest)
    }

    #[allow(clippy::too_many_arguments)]
    async fn package(
        &self,
        ctx: &AgentCtx,
        action: PackageAction,
        package: &PackageRef,
        op_dir: &Path,
        timeout: Duration,
        limit: usize,
        cancel: &CancellationToken,
    ) -> OpOutcome {
        let dir = match self
            .fetch(ctx, package, op_dir, Instant::now() + timeout, cancel)
            .await
        {
            Ok(dir) => dir,
            Err(e) => return failed(e),
        };
        exec::package::run_package(&self.exec, action, package, &dir, timeout, limit, cancel).await
    }

    /// Fetches the device's deployments and applies each one whose detection says it is
    /// not in the wanted state yet; one line per deployment in the output.
    async fn policy(
        &self,
        ctx: &AgentCtx,
        op_dir: &Path,
        timeout: Duration,
        limit: usize,
        cancel: &CancellationToken,
    ) -> OpOutcome {
        let policy = match ctx.http().policy(patience(Instant::now() + timeout)).await {
            Ok(p) => p,
            Err(e) => return failed(format!("fetching the machine policy: {e}")),
        };
        let mut lines = vec![format!(
            "{} deployment(s) assigned",
            policy.deployments.len()
        )];
        let mut all_ok = true;
        let mut reboot = false;
        for d in &policy.deployments {
            if cancel.is_cancelled() {
                return OpOutcome {
                    state: OutcomeState::Cancelled,
                    exit_code: None,
                    output: lines.join("\n"),
                    error: "cancelled".into(),
                    reboot_required: reboot,
                };
            }
            let name = &d.package.filename;
            let detect_timeout = Duration::from_secs(120).min(timeout);
            let detected = match exec::detect::detect(
                &self.exec,
                &d.detection,
                op_dir,
                detect_timeout,
            )
            .await
            {
                Ok(v) => v,
                Err(e) => {
                    all_ok = false;
                    lines.push(format!("{name}: detection failed: {e}"));
                    continue;
                }
            };
            let (wanted, action) = match d.action {
                DeploymentAction::Install => (true, PackageAction::Install),
                DeploymentAction::Uninstall => (false, PackageAction::Uninstall),
            };
            if detected == wanted {
                lines.push(format!(
                    "{name}: already {}",
                    if wanted { "installed" } else { "absent" }
                ));
                continue;
            }
            let outcome = self
                .package(ctx, action, &d.package, op_dir, timeout, limit, cancel)
                .await;
            reboot |= outcome.reboot_required;
            let now = exec::detect::detect(&self.exec, &d.detection, op_dir, detect_timeout)
                .await
                .unwrap_or(!wanted);
            if outcome.state == OutcomeState::Succeeded && now == wanted {
                lines.push(format!(
                    "{name}: {} (exit {})",
                    if wanted { "installed" } else { "uninstalled" },
                    outcome.exit_code.unwrap_or(0)
                ));
            } else {
                all_ok = false;
                let why = if outcome.state != OutcomeState::Succeeded {
                    outcome.error.lines().next().unwrap_or("failed").to_owned()
                } else {
                    "the command succeeded but detection still disagrees".to_owned()
                };
                lines.push(format!("{name}: failed: {why}"));
            }
        }
        OpOutcome {
            state: if all_ok {
                OutcomeState::Succeeded
            } else {
                OutcomeState::Failed
            },
            exit_code: None,
            output: lines.join("\n"),
            error: if all_ok {
                String::new()
            } else {
                "one or more deployments could not be applied".into()
            },
            reboot_required: reboot,
        }
    }
}

/// Sets its flag when dropped.
struct StopOnDrop(Arc<std::sync::atomic::AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Transfers for an operation ride out transient faults (the hub restarting, a cut
/// connection) until the operation's own deadline.
fn patience(deadline: Instant) -> ferry_client::transfer::Patience {
    ferry_client::transfer::Patience::While(std::sync::Arc::new(move || Instant::now() < deadline))
}
