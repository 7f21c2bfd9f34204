//! Installing, uninstalling and advertising a package that is already unpacked in a folder.
//!
//! Which command runs: the package's own install (uninstall) command when it has one, else,
//! on Windows, msiexec on its MSI. The command comes first because a wrapped package (PSADT)
//! carries an MSI *and* a launcher, and only the launcher knows the whole installation; for a
//! bare MSI, the proposed command is the very msiexec line the fallback would run.
//!
//! No shell runs the command. On Windows, the program is taken off the line (as
//! `CreateProcess` does) and the rest is passed through untouched, because every Windows
//! program parses its own command line. Elsewhere the line is split with
//! [`cmdline::split`](crate::cmdline::split) into argv. A relative program is looked up in the
//! package folder first, which is also the working directory.
//!
//! Every installer's exit code goes through [`msi`](super::msi) (PSADT and most wrappers
//! return Windows Installer's codes), and 1618 is retried.

use std::ffi::OsString;
use std::future::Future;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use ferry_proto::ops::{OpOutcome, OutcomeState, PackageRef};
use tokio::process::Command;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::msi::{BUSY_MESSAGE, outcome_for_msi_exit};
use super::process::run_process;
use super::{ExecError, ExecSettings, ProcessOutput, failed, timed_out_message};

/// What to do with a package.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PackageAction {
    Install,
    Uninstall,
    /// Windows Installer advertisement (`msiexec /jm`): MSI packages on Windows only.
    Advertise,
}

impl PackageAction {
    fn verb(self) -> &'static str {
        match self {
            PackageAction::Install => "install",
            PackageAction::Uninstall => "uninstall",
            PackageAction::Advertise => "advertise",
        }
    }
}

/// Runs `action` for `package`, unpacked in `dir` (see the module docs for which command).
/// Exit codes map as Windows Installer's do: 3010/1641 succeed with `reboot_required`, 1602 is
/// `Cancelled`, and 1618 is retried `msi_busy_retries` times `msi_busy_delay_secs` apart
/// (within `timeout`, which covers every attempt and wait) before failing.
pub async fn run_package(
    s: &ExecSettings,
    action: PackageAction,
    package: &PackageRef,
    dir: &Path,
    timeout: Duration,
    output_limit: usize,
    cancel: &CancellationToken,
) -> OpOutcome {
    let plan = match plan(action, package, dir) {
        Ok(plan) => plan,
        Err(reason) => return failed(reason),
    };
    retry_while_busy(s, timeout, cancel, |remaining| {
        let cmd = plan.command(dir);
        let plan = &plan;
        async move {
            run_process(cmd, remaining, output_limit, cancel)
                .await
                .map_err(|e| plan.explain(&e))
        }
    })
    .await
}

/// Runs `attempt` (given the time left) until it answers something other than 1618, or the
/// retries, the time or the operation run out; then maps the last answer with
/// [`outcome_for_msi_exit`]. An attempt that cannot start fails the operation at once.
async fn retry_while_busy<F, Fut>(
    s: &ExecSettings,
    timeout: Duration,
    cancel: &CancellationToken,
    mut attempt: F,
) -> OpOutcome
where
    F: FnMut(Duration) -> Fut,
    Fut: Future<Output = Result<ProcessOutput, String>>,
{
    let deadline = Instant::now() + timeout;
    let delay = Duration::from_secs(s.msi_busy_delay_secs);
    let mut retries_left = s.msi_busy_retries;
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return failed(timed_out_message(timeout));
        }
        let out = match attempt(remaining).await {
            Ok(out) => out,
            Err(reason) => return failed(reason),
        };
        let busy = out.exit_code == Some(1618) && !out.timed_out && !out.cancelled;
        if busy && retries_left > 0 && Instant::now() + delay < deadline {
            retries_left -= 1;
            tracing::info!(
                retries_left,
                "another installation is in progress (1618); retrying in {} s",
                delay.as_secs()
            );
            tokio::select! {
                _ = tokio::time::sleep(delay) => continue,
                _ = cancel.cancelled() => {
                    return OpOutcome {
                        state: OutcomeState::Cancelled,
                        exit_code: Some(1618),
                        output: out.stdout,
                        error: format!("cancelled while waiting to retry: {BUSY_MESSAGE}"),
                        reboot_required: false,
                    };
                }
            }
        }
        return outcome_for_msi_exit(out, timeout);
    }
}

/// The process to start, rebuilt for every attempt.
#[derive(Debug)]
struct Plan {
    program: PathBuf,
    args: Vec<OsString>,
    /// The rest of a Windows command line, passed to the program verbatim.
    #[cfg(windows)]
    raw: Option<String>,
    /// The program was found in the package folder.
    in_package: bool,
}

impl Plan {
    fn command(&self, dir: &Path) -> Command {
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args).current_dir(dir);
        #[cfg(windows)]
        if let Some(raw) = &self.raw {
            cmd.raw_arg(raw);
        }
        cmd
    }

    /// The failure to start, with a hint where one helps.
    fn explain(&self, e: &ExecError) -> String {
        let not_executable = matches!(e, ExecError::Spawn { source, .. }
            if source.kind() == std::io::ErrorKind::PermissionDenied);
        if self.in_package && not_executable && cfg!(unix) {
            format!(
                "{e} (unpacked package files are not executable; start it through its \
                 interpreter, e.g. `sh {}`)",
                self.program
                    .file_name()
                    .map(|n| n.to_string_lossy())
                    .unwrap_or_default()
            )
        } else {
            e.to_string()
        }
    }
}

fn plan(action: PackageAction, package: &PackageRef, dir: &Path) -> Result<Plan, String> {
    let command = match action {
        PackageAction::Install => package.install_command.as_deref(),
        PackageAction::Uninstall => package.uninstall_command.as_deref(),
        PackageAction::Advertise => return msi_plan(action, package, dir),
    };
    match command {
        Some(line) if !line.trim().is_empty() => command_plan(line, dir)
            .map_err(|e| format!("the package's {} command: {e}", action.verb())),
        _ if cfg!(windows) && (package.msi_file.is_some() || package.product_code.is_some()) => {
            msi_plan(action, package, dir)
        }
        _ => Err(format!("the package has no {} command", action.verb())),
    }
}

#[cfg(windows)]
fn command_plan(line: &str, dir: &Path) -> Result<Plan, crate::cmdline::SplitError> {
    let (program, rest) = crate::cmdline::split_windows_program(line)?;
    let (program, in_package) = resolve(&program, dir);
    Ok(Plan {
        program,
        args: Vec::new(),
        raw: (!rest.is_empty()).then(|| rest.to_owned()),
        in_package,
    })
}

#[cfg(not(windows))]
fn command_plan(line: &str, dir: &Path) -> Result<Plan, crate::cmdline::SplitError> {
    let mut words = crate::cmdline::split(line)?.into_iter();
    let program = words.next().ok_or(crate::cmdline::SplitError::Empty)?;
    let (program, in_package) = resolve(&program, dir);
    Ok(Plan {
        program,
        args: words.map(OsString::from).collect(),
        in_package,
    })
}

/// A relative program is the package's own when the package folder has it (on Windows also
/// with `.exe` added, as `CreateProcess` would). A relative path with a separator always
/// means the package folder: the child's working directory does not apply to the program
/// path itself. A bare name the folder lacks is left to the PATH search.
fn resolve(program: &str, dir: &Path) -> (PathBuf, bool) {
    let path = Path::new(program);
    if path.is_absolute() {
        return (path.to_path_buf(), false);
    }
    let inside = dir.join(path);
    if inside.is_file() {
        return (inside, true);
    }
    if cfg!(windows) && path.extension().is_none() {
        let exe = dir.join(format!("{program}.exe"));
        if exe.is_file() {
            return (exe, true);
        }
    }
    if path.components().count() > 1 {
        return (inside, true);
    }
    (path.to_path_buf(), false)
}

/// msiexec on the package's MSI (or, to uninstall, its product code).
fn msi_plan(action: PackageAction, package: &PackageRef, dir: &Path) -> Result<Plan, String> {
    if !cfg!(windows) {
        return Err(match action {
            PackageAction::Advertise => "advertise needs an MSI package on Windows".to_owned(),
            _ => format!("the package has no {} command", action.verb()),
        });
    }
    let msi = || -> Result<PathBuf, String> {
        let file = package
            .msi_file
            .as_deref()
            .ok_or_else(|| format!("{} needs an MSI package on Windows", action.verb()))?;
        inside(dir, file)
    };
    let target: OsString = match action {
        PackageAction::Uninstall => match &package.product_code {
            Some(code) if super::detect::is_braced_guid(code) => code.into(),
            Some(code) => return Err(format!("invalid product code {code:?}")),
            None => msi()?.into_os_string(),
        },
        PackageAction::Install | PackageAction::Advertise => msi()?.into_os_string(),
    };
    let switch = match action {
        PackageAction::Install => "/i",
        PackageAction::Uninstall => "/x",
        PackageAction::Advertise => "/jm",
    };
    let mut args: Vec<OsString> = vec![switch.into(), target, "/qn".into()];
    if action != PackageAction::Advertise {
        args.push("/norestart".into());
    }
    Ok(Plan {
        program: system32("msiexec.exe"),
        args,
        #[cfg(windows)]
        raw: None,
        in_package: false,
    })
}

/// `file` (from the package's metadata) inside `dir`, refusing anything that would leave it.
fn inside(dir: &Path, file: &str) -> Result<PathBuf, String> {
    let path = Path::new(file);
    if file.is_empty() || !path.components().all(|c| matches!(c, Component::Normal(_))) {
        return Err(format!(
            "invalid MSI path {file:?} (must stay inside the package)"
        ));
    }
    Ok(dir.join(path))
}

/// A Windows system program by its full path, so that a file of the same name in the package
/// or the agent's own folder is never the one that runs.
pub(crate) fn system32(name: &str) -> PathBuf {
    let root = std::env::var_os("SystemRoot").unwrap_or_else(|| r"C:\Windows".into());
    PathBuf::from(root).join("System32").join(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    // A Unix process cannot exit with 1618 or 3010 (exit statuses are 8 bits), so the retry
    // loop is exercised here with attempts that answer what msiexec would.

    fn answer(code: i32) -> Result<ProcessOutput, String> {
        Ok(ProcessOutput {
            exit_code: Some(code),
            stdout: format!("attempt answered {code}"),
            ..ProcessOutput::default()
        })
    }

    fn settings(retries: u32, delay_secs: u64) -> ExecSettings {
        ExecSettings {
            msi_busy_retries: retries,
            msi_busy_delay_secs: delay_secs,
            ..ExecSettings::default()
        }
    }

    /// Runs the loop over `answers`, returning the outcome and how many attempts were made.
    async fn run(
        s: &ExecSettings,
        answers: &[i32],
        cancel: &CancellationToken,
    ) -> (OpOutcome, usize) {
        let mut calls = 0;
        let outcome = retry_while_busy(s, Duration::from_secs(30), cancel, |_| {
            let code = answers[calls.min(answers.len() - 1)];
            calls += 1;
            async move { answer(code) }
        })
        .await;
        (outcome, calls)
    }

    #[tokio::test]
    async fn busy_installer_is_retried_until_it_succeeds() {
        let (o, calls) = run(&settings(3, 0), &[1618, 1618, 0], &CancellationToken::new()).await;
        assert_eq!(
            (o.state, o.exit_code, calls),
            (OutcomeState::Succeeded, Some(0), 3)
        );
    }

    #[tokio::test]
    async fn busy_installer_fails_once_retries_run_out() {
        let (o, calls) = run(&settings(2, 0), &[1618], &CancellationToken::new()).await;
        assert_eq!((o.state, calls), (OutcomeState::Failed, 3));
        assert_eq!(o.error, BUSY_MESSAGE);
        assert_eq!(o.exit_code, Some(1618));
    }

    #[tokio::test]
    async fn a_retry_that_would_pass_the_deadline_is_not_made() {
        let (o, calls) = run(&settings(5, 3600), &[1618, 0], &CancellationToken::new()).await;
        assert_eq!((o.state, calls), (OutcomeState::Failed, 1));
    }

    #[tokio::test]
    async fn cancelling_while_waiting_to_retry_cancels() {
        let cancel = CancellationToken::new();
        let trigger = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            trigger.cancel();
        });
        let started = Instant::now();
        let (o, calls) = run(&settings(5, 20), &[1618, 0], &cancel).await;
        assert_eq!((o.state, calls), (OutcomeState::Cancelled, 1));
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[tokio::test]
    async fn reboot_codes_and_user_cancel_are_not_retried() {
        let (o, calls) = run(&settings(3, 0), &[3010], &CancellationToken::new()).await;
        assert_eq!(
            (o.state, o.reboot_required, calls),
            (OutcomeState::Succeeded, true, 1)
        );
        let (o, calls) = run(&settings(3, 0), &[1602], &CancellationToken::new()).await;
        assert_eq!((o.state, calls), (OutcomeState::Cancelled, 1));
    }

    #[test]
    fn msi_paths_must_stay_inside_the_package() {
        let dir = Path::new("pkg");
        assert_eq!(inside(dir, "Files/a.msi"), Ok(dir.join("Files/a.msi")));
        assert!(inside(dir, "../a.msi").is_err());
        assert!(inside(dir, "/a.msi").is_err());
        assert!(inside(dir, "").is_err());
    }

    #[cfg(not(windows))]
    #[test]
    fn a_relative_path_with_a_separator_means_the_package_folder() {
        let dir = Path::new("/nonexistent-pkg");
        assert_eq!(resolve("bin/setup", dir), (dir.join("bin/setup"), true));
        assert_eq!(resolve("sh", dir), (PathBuf::from("sh"), false));
        assert_eq!(resolve("/bin/sh", dir), (PathBuf::from("/bin/sh"), false));
    }
}
