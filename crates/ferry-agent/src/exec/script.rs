//! `run_script`: an operator's script, written to a file in the operation's folder and run by
//! the platform's script host with its arguments as separate argv entries. The script text is
//! the operator's code by intent; the arguments are data, and no shell ever parses them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use ferry_proto::ops::OpOutcome;
use tokio::process::Command;
use tokio_util::sync::CancellationToken;

use super::process::run_process;
use super::{ExecError, ExecSettings, failed_to_run, outcome_from_process};

/// Runs `script` with `args` in `op_dir` (created if missing): PowerShell on Windows
/// (`script.ps1`), `sh` elsewhere (`script.sh`). Exit 0 succeeds; another exit code fails with
/// it; a timeout fails with "timed out after N s"; a cancellation is `Cancelled`.
pub async fn run_script(
    s: &ExecSettings,
    op_dir: &Path,
    script: &str,
    args: &[String],
    timeout: Duration,
    output_limit: usize,
    cancel: &CancellationToken,
) -> OpOutcome {
    let mut cmd = match script_command(s, op_dir, "script", script).await {
        Ok(cmd) => cmd,
        Err(e) => return failed_to_run(&e),
    };
    // Each argument is one argv entry. (On Windows, PowerShell 5.1 rebuilds its own command
    // line from them with the usual MSVC quoting rules.)
    cmd.args(args);
    match run_process(cmd, timeout, output_limit, cancel).await {
        Ok(out) => outcome_from_process(out, timeout),
        Err(e) => failed_to_run(&e),
    }
}

/// Writes `text` to `<op_dir>/<stem>.ps1|.sh` and returns the command that runs it (cwd
/// `op_dir`), ready for arguments.
pub(crate) async fn script_command(
    s: &ExecSettings,
    op_dir: &Path,
    stem: &str,
    text: &str,
) -> Result<Command, ExecError> {
    tokio::fs::create_dir_all(op_dir)
        .await
        .map_err(|e| ExecError::io(format!("cannot create {}", op_dir.display()), e))?;
    let (path, bytes) = script_file(op_dir, stem, text);
    tokio::fs::write(&path, bytes)
        .await
        .map_err(|e| ExecError::io(format!("cannot write {}", path.display()), e))?;
    let mut cmd = host_command(s, &path);
    cmd.current_dir(op_dir);
    Ok(cmd)
}

#[cfg(windows)]
fn script_file(op_dir: &Path, stem: &str, text: &str) -> (PathBuf, Vec<u8>) {
    // Windows PowerShell 5.1 reads a BOM-less script as ANSI; the BOM keeps every non-ASCII
    // character intact.
    let mut bytes = vec![0xEF, 0xBB, 0xBF];
    bytes.extend_from_slice(text.as_bytes());
    (op_dir.join(format!("{stem}.ps1")), bytes)
}

#[cfg(not(windows))]
fn script_file(op_dir: &Path, stem: &str, text: &str) -> (PathBuf, Vec<u8>) {
    (op_dir.join(format!("{stem}.sh")), text.as_bytes().to_vec())
}

#[cfg(windows)]
fn host_command(s: &ExecSettings, path: &Path) -> Command {
    let mut cmd = Command::new(&s.powershell);
    cmd.args([
        "-NoProfile",
        "-NonInteractive",
        "-ExecutionPolicy",
        "Bypass",
        "-File",
    ])
    .arg(path);
    cmd
}

#[cfg(not(windows))]
fn host_command(s: &ExecSettings, path: &Path) -> Command {
    let mut cmd = Command::new(&s.sh);
    cmd.arg(path);
    cmd
}
