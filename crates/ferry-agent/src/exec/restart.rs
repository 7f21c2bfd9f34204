//! Restarting the device: the configured command, run as argv (no shell). The default commands
//! schedule the restart a minute ahead, so the agent has time to report that it succeeded.

use std::time::Duration;

use ferry_proto::ops::OpOutcome;
use tokio::process::Command;
use tokio_util::sync::CancellationToken;

use super::process::run_process;
use super::{ExecSettings, failed, failed_to_run, outcome_from_process};

/// Runs `restart_command`; exit 0 succeeds (the restart is scheduled). An empty command fails
/// with "no restart command configured".
pub async fn restart(
    s: &ExecSettings,
    timeout: Duration,
    output_limit: usize,
    cancel: &CancellationToken,
) -> OpOutcome {
    run_command(&s.restart_command, "restart", timeout, output_limit, cancel).await
}

/// Runs `shutdown_command`, like [`restart`].
pub async fn shutdown(
    s: &ExecSettings,
    timeout: Duration,
    output_limit: usize,
    cancel: &CancellationToken,
) -> OpOutcome {
    run_command(
        &s.shutdown_command,
        "shutdown",
        timeout,
        output_limit,
        cancel,
    )
    .await
}

async fn run_command(
    command: &[String],
    what: &str,
    timeout: Duration,
    output_limit: usize,
    cancel: &CancellationToken,
) -> OpOutcome {
    let Some((program, args)) = command.split_first() else {
        return failed(format!("no {what} command configured"));
    };
    let mut cmd = Command::new(program);
    cmd.args(args);
    match run_process(cmd, timeout, output_limit, cancel).await {
        Ok(out) => outcome_from_process(out, timeout),
        Err(e) => failed_to_run(&e),
    }
}
