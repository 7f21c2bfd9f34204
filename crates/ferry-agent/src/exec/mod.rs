//! What an agent does for each kind of client operation: the code that runs things on the
//! device.
//!
//! Every executor ends in [`process::run_process`], which owns the rules that keep a device
//! safe from its own operations: no shell ever sees untrusted text (scripts are files, arguments
//! are separate argv entries), output is capped, and a timeout or cancellation kills the whole
//! process tree, not just its first process.
//!
//! Executors return an [`OpOutcome`] rather than an error: a failed install is a result to
//! report, not a fault of the agent. Only [`detect::detect`], whose answer feeds a decision
//! rather than a report, returns a `Result`.

pub mod av;
pub mod detect;
pub mod msi;
pub mod package;
pub mod process;
pub mod restart;
pub mod script;
pub mod share;

use std::path::PathBuf;
use std::time::Duration;

use ferry_proto::ops::{OpOutcome, OutcomeState};
use serde::{Deserialize, Serialize};

pub use process::ProcessOutput;

/// How the agent runs things on this device; the `[exec]` part of the agent's configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExecSettings {
    /// Where packages are unpacked and scripts written (one folder per operation).
    pub work_dir: PathBuf,
    /// The command that restarts the device (program and arguments, no shell).
    pub restart_command: Vec<String>,
    /// The command that shuts the device down (a task's `force_shutdown`).
    pub shutdown_command: Vec<String>,
    /// Windows PowerShell, for scripts and detection scripts on Windows.
    pub powershell: PathBuf,
    /// The POSIX shell, for scripts elsewhere.
    pub sh: PathBuf,
    pub av: AvSettings,
    /// How often, and how far apart, msiexec is retried when it answers 1618 (another
    /// installation is in progress).
    pub msi_busy_retries: u32,
    pub msi_busy_delay_secs: u64,
    /// Who is logged on, instead of the platform's own way (the owners of `explorer.exe` on
    /// Windows, `who` elsewhere): a command (program and arguments, no shell) that prints
    /// one user per line. Empty: the platform's way.
    pub users_command: Vec<String>,
    /// A file holding this boot's identity, instead of the platform's own (Linux:
    /// `/proc/sys/kernel/random/boot_id`; Windows: the boot time). An operation waiting for
    /// a startup runs once the identity differs from the one it was received under.
    pub boot_id_file: Option<PathBuf>,
    /// How long "after startup" and "after logon" let the device settle (seconds): after a
    /// startup, until the device has been up this long; after a logon, this long after it.
    pub after_delay_secs: u64,
    /// How often an operation waiting for a logon looks at who is logged on (seconds).
    pub logon_poll_secs: u64,
    /// Network shares as this device reaches them, for `copy_from_share` on a device that
    /// does not speak UNC: `\\server\share` → the folder it is mounted at. Windows reads
    /// UNC paths directly and needs none.
    pub share_mounts: std::collections::BTreeMap<String, PathBuf>,
}

impl Default for ExecSettings {
    /// Windows: under `%ProgramData%\Ferry`, Windows PowerShell, `shutdown /r` with a minute's
    /// warning. Elsewhere: under `/var/lib/ferry-agent`, `/bin/sh`, `shutdown -r +1`.
    /// msiexec's 1618 is retried 5 times a minute apart, ConfigMgr's "fast retry" spirit: another
    /// installation usually finishes within minutes.
    fn default() -> Self {
        ExecSettings {
            work_dir: default_work_dir(),
            restart_command: default_restart_command(),
            shutdown_command: default_shutdown_command(),
            powershell: default_powershell(),
            sh: PathBuf::from("/bin/sh"),
            av: AvSettings::default(),
            msi_busy_retries: 5,
            msi_busy_delay_secs: 60,
            users_command: Vec::new(),
            boot_id_file: None,
            after_delay_secs: 120,
            logon_poll_secs: 10,
            share_mounts: std::collections::BTreeMap::new(),
        }
    }
}

/// Antivirus scanners and what quick and full scans cover.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AvSettings {
    /// Windows Defender's command-line tool.
    pub mpcmdrun: PathBuf,
    /// ClamAV's scanner (looked up on PATH when relative).
    pub clamscan: PathBuf,
    /// A ClamAV signature database folder or file, instead of ClamAV's default.
    pub clamav_database: Option<PathBuf>,
    /// What a quick scan covers with ClamAV (the usual malware locations).
    pub quick_paths: Vec<PathBuf>,
    /// What a full scan covers with ClamAV.
    pub full_paths: Vec<PathBuf>,
}

impl Default for AvSettings {
    /// Quick scans cover the world-writable drop zones and home folders, where malware lands
    /// first; full scans cover `/` (minus the kernel's virtual file systems, see
    /// [`av`]). Windows scans with Defender, which chooses its own paths.
    fn default() -> Self {
        let quick_paths = if cfg!(windows) {
            Vec::new()
        } else {
            ["/tmp", "/var/tmp", "/dev/shm", "/home", "/root"]
                .into_iter()
                .map(PathBuf::from)
                .collect()
        };
        let full_paths = if cfg!(windows) {
            Vec::new()
        } else {
            vec![PathBuf::from("/")]
        };
        AvSettings {
            mpcmdrun: default_mpcmdrun(),
            clamscan: PathBuf::from("clamscan"),
            clamav_database: None,
            quick_paths,
            full_paths,
        }
    }
}

#[cfg(windows)]
fn default_work_dir() -> PathBuf {
    let base = std::env::var_os("ProgramData").unwrap_or_else(|| r"C:\ProgramData".into());
    PathBuf::from(base).join("Ferry").join("work")
}

#[cfg(not(windows))]
fn default_work_dir() -> PathBuf {
    PathBuf::from("/var/lib/ferry-agent/work")
}

#[cfg(windows)]
fn default_restart_command() -> Vec<String> {
    // A minute's warning lets a logged-on user save their work, as ConfigMgr's restart does.
    [
        "shutdown",
        "/r",
        "/t",
        "60",
        "/c",
        "Ferry: restart requested",
    ]
    .into_iter()
    .map(String::from)
    .collect()
}

#[cfg(not(windows))]
fn default_restart_command() -> Vec<String> {
    ["shutdown", "-r", "+1", "Ferry: restart requested"]
        .into_iter()
        .map(String::from)
        .collect()
}

#[cfg(windows)]
fn default_shutdown_command() -> Vec<String> {
    [
        "shutdown",
        "/s",
        "/t",
        "60",
        "/c",
        "Ferry: shutdown requested",
    ]
    .into_iter()
    .map(String::from)
    .collect()
}

#[cfg(not(windows))]
fn default_shutdown_command() -> Vec<String> {
    ["shutdown", "-h", "+1", "Ferry: shutdown requested"]
        .into_iter()
        .map(String::from)
        .collect()
}

#[cfg(windows)]
pub(crate) fn default_powershell() -> PathBuf {
    // The full path, so a `powershell.exe` planted in an operation's folder or on a user's
    // PATH is never the one that runs.
    let root = std::env::var_os("SystemRoot").unwrap_or_else(|| r"C:\Windows".into());
    PathBuf::from(root).join(r"System32\WindowsPowerShell\v1.0\powershell.exe")
}

#[cfg(not(windows))]
pub(crate) fn default_powershell() -> PathBuf {
    PathBuf::from("powershell.exe")
}

#[cfg(windows)]
fn default_mpcmdrun() -> PathBuf {
    let base = std::env::var_os("ProgramFiles").unwrap_or_else(|| r"C:\Program Files".into());
    PathBuf::from(base).join(r"Windows Defender\MpCmdRun.exe")
}

#[cfg(not(windows))]
fn default_mpcmdrun() -> PathBuf {
    PathBuf::from(r"C:\Program Files\Windows Defender\MpCmdRun.exe")
}

/// Why an executor could not get an answer (as opposed to getting a negative one).
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("cannot start {program}: {source}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("unsupported on this device: {0}")]
    Unsupported(String),
    #[error("invalid {what}: {reason}")]
    Invalid { what: &'static str, reason: String },
    #[error("timed out after {0} s")]
    TimedOut(u64),
    #[error("cancelled")]
    Cancelled,
}

impl ExecError {
    /// The program to start does not exist (not on PATH, or no such file).
    pub fn is_not_found(&self) -> bool {
        matches!(self, ExecError::Spawn { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
    }

    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        ExecError::Io {
            context: context.into(),
            source,
        }
    }
}

/// A failure the agent explains itself (no process ran, or none could).
pub fn failed(error: impl Into<String>) -> OpOutcome {
    OpOutcome {
        state: OutcomeState::Failed,
        exit_code: None,
        output: String::new(),
        error: error.into(),
        reboot_required: false,
    }
}

/// The outcome of a plain process (a script, a restart command): exit 0 succeeds, anything else
/// fails with the exit code, a timeout fails saying so, a cancellation is `Cancelled`.
pub fn outcome_from_process(out: ProcessOutput, timeout: Duration) -> OpOutcome {
    if let Some(outcome) = interrupted(&out, timeout) {
        return outcome;
    }
    match out.exit_code {
        Some(0) => OpOutcome {
            state: OutcomeState::Succeeded,
            exit_code: Some(0),
            output: out.stdout,
            error: out.stderr,
            reboot_required: false,
        },
        code => OpOutcome {
            state: OutcomeState::Failed,
            exit_code: code,
            error: with_stderr(&exit_description(code), &out.stderr),
            output: out.stdout,
            reboot_required: false,
        },
    }
}

/// The outcome of a process that was stopped by a timeout or a cancellation, if it was.
pub(crate) fn interrupted(out: &ProcessOutput, timeout: Duration) -> Option<OpOutcome> {
    let (state, reason) = if out.cancelled {
        (OutcomeState::Cancelled, "cancelled".to_owned())
    } else if out.timed_out {
        (OutcomeState::Failed, timed_out_message(timeout))
    } else {
        return None;
    };
    Some(OpOutcome {
        state,
        exit_code: None,
        output: out.stdout.clone(),
        error: with_stderr(&reason, &out.stderr),
        reboot_required: false,
    })
}

pub(crate) fn timed_out_message(timeout: Duration) -> String {
    format!("timed out after {} s", timeout.as_secs())
}

/// `reason`, then the process's own standard error on the following lines: the agent's
/// explanation first, the program's detail after it.
pub(crate) fn with_stderr(reason: &str, stderr: &str) -> String {
    let stderr = stderr.trim_end();
    if stderr.is_empty() {
        reason.to_owned()
    } else {
        format!("{reason}\n{stderr}")
    }
}

pub(crate) fn exit_description(code: Option<i32>) -> String {
    match code {
        Some(code) => format!("exited with code {code}"),
        None => "ended without an exit code (killed by a signal)".to_owned(),
    }
}

/// An [`OpOutcome`] for an [`ExecError`] that kept a process from running.
pub(crate) fn failed_to_run(e: &ExecError) -> OpOutcome {
    failed(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_round_trip_through_toml_with_defaults_for_missing_fields() {
        let parsed: ExecSettings =
            toml::from_str("msi_busy_retries = 2\n[av]\nclamscan = \"/x\"").expect("parses");
        assert_eq!(parsed.msi_busy_retries, 2);
        assert_eq!(parsed.av.clamscan, PathBuf::from("/x"));
        assert_eq!(parsed.av.quick_paths, AvSettings::default().quick_paths);
        let text = toml::to_string(&ExecSettings::default()).expect("serialises");
        let back: ExecSettings = toml::from_str(&text).expect("parses back");
        assert_eq!(back, ExecSettings::default());
    }

    #[test]
    fn unknown_settings_are_refused() {
        assert!(toml::from_str::<ExecSettings>("restart = []").is_err());
    }

    #[test]
    fn timeout_outcome_names_the_timeout_and_keeps_stderr() {
        let out = ProcessOutput {
            exit_code: None,
            stdout: "partial".into(),
            stderr: "last words".into(),
            timed_out: true,
            cancelled: false,
        };
        let outcome = outcome_from_process(out, Duration::from_secs(7));
        assert_eq!(outcome.state, OutcomeState::Failed);
        assert_eq!(outcome.error, "timed out after 7 s\nlast words");
        assert_eq!(outcome.output, "partial");
    }
}
