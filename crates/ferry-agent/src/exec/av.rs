//! Antivirus scans: Microsoft Defender on Windows, ClamAV elsewhere.
//!
//! A scan that finds threats *succeeded* (it did its job); the operator reads the verdict from
//! the first line of the output (`threats found: N` or `no threats found`) and the exit code.
//! A scanner that is not installed is reported as "unsupported on this device", not as a fault.

use std::path::Path;
use std::time::Duration;

use ferry_proto::ops::{OpOutcome, OutcomeState};
use tokio::process::Command;
use tokio_util::sync::CancellationToken;

use super::process::run_process;
use super::{ExecError, ExecSettings, ProcessOutput, exit_description, failed, with_stderr};

/// Runs a quick or a full scan (see the module docs for the scanners and the verdict).
pub async fn av_scan(
    s: &ExecSettings,
    full: bool,
    timeout: Duration,
    output_limit: usize,
    cancel: &CancellationToken,
) -> OpOutcome {
    let (cmd, scanner) = match scan_command(s, full) {
        Ok(found) => found,
        Err(reason) => return failed(reason),
    };
    let out = match run_process(cmd, timeout, output_limit, cancel).await {
        Ok(out) => out,
        Err(e) if e.is_not_found() => {
            return failed(
                ExecError::Unsupported(format!("{scanner} is not installed")).to_string(),
            );
        }
        Err(e) => return failed(e.to_string()),
    };
    if let Some(outcome) = super::interrupted(&out, timeout) {
        return outcome;
    }
    verdict(out)
}

#[cfg(windows)]
fn scan_command(s: &ExecSettings, full: bool) -> Result<(Command, String), String> {
    let mut cmd = Command::new(&s.av.mpcmdrun);
    cmd.args(["-Scan", "-ScanType", if full { "2" } else { "1" }]);
    Ok((cmd, s.av.mpcmdrun.display().to_string()))
}

#[cfg(not(windows))]
fn scan_command(s: &ExecSettings, full: bool) -> Result<(Command, String), String> {
    let configured = if full {
        &s.av.full_paths
    } else {
        &s.av.quick_paths
    };
    // A default list names places some devices lack (no /root, no /dev/shm): scan the rest.
    let paths: Vec<&std::path::PathBuf> = configured.iter().filter(|p| p.exists()).collect();
    if paths.is_empty() {
        return Err(format!(
            "nothing to scan: none of {} exists",
            configured
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let mut cmd = Command::new(&s.av.clamscan);
    cmd.args(clamscan_args(
        s.av.clamav_database.as_deref(),
        full,
        paths.iter().map(|p| p.as_path()),
    ));
    Ok((cmd, s.av.clamscan.display().to_string()))
}

/// The kernel's virtual file systems: endless or blocking pseudo-files, and nothing a virus
/// can live in. Matched as ClamAV's POSIX regular expressions on directory paths. (`/dev` stays:
/// clamscan skips device files, and `/dev/shm` holds real files, a favourite drop zone.)
#[cfg_attr(windows, allow(dead_code))]
const FULL_SCAN_EXCLUDES: [&str; 2] = ["^/proc($|/)", "^/sys($|/)"];

/// clamscan's arguments: recurse, list only infected files, print to stdout (so the verdict is
/// in one stream), the optional database, and for full scans the virtual file systems left out.
#[cfg_attr(windows, allow(dead_code))]
fn clamscan_args<'a>(
    database: Option<&Path>,
    full: bool,
    paths: impl Iterator<Item = &'a Path>,
) -> Vec<std::ffi::OsString> {
    let mut args: Vec<std::ffi::OsString> =
        vec!["--recursive".into(), "--infected".into(), "--stdout".into()];
    if let Some(db) = database {
        let mut arg = std::ffi::OsString::from("--database=");
        arg.push(db);
        args.push(arg);
    }
    if full {
        args.extend(
            FULL_SCAN_EXCLUDES
                .iter()
                .map(|re| format!("--exclude-dir={re}").into()),
        );
    }
    // `--` so that no path is taken for an option.
    args.push("--".into());
    args.extend(paths.map(|p| p.as_os_str().to_owned()));
    args
}

/// Defender: 0 clean, 2 threats found. ClamAV: 0 clean, 1 threats found, 2 an error.
fn verdict(out: ProcessOutput) -> OpOutcome {
    let threats = found_lines(&out.stdout);
    let (state, summary, error) = match (cfg!(windows), out.exit_code) {
        (_, Some(0)) => (
            OutcomeState::Succeeded,
            "no threats found".to_owned(),
            out.stderr,
        ),
        (true, Some(2)) => (
            OutcomeState::Succeeded,
            "threats found".to_owned(),
            out.stderr,
        ),
        (false, Some(1)) => (
            OutcomeState::Succeeded,
            format!("threats found: {threats}"),
            out.stderr,
        ),
        (_, code) => {
            // An error can come after threats were found (an unreadable file late in a full
            // scan); say so, the FOUND lines are in the output.
            let summary = if threats > 0 {
                format!("threats found: {threats} (the scan did not finish cleanly)")
            } else {
                "the scan failed".to_owned()
            };
            let error = with_stderr(
                &format!("the scanner {}", exit_description(code)),
                &out.stderr,
            );
            (OutcomeState::Failed, summary, error)
        }
    };
    OpOutcome {
        state,
        exit_code: out.exit_code,
        output: format!("{summary}\n{}", out.stdout),
        error,
        reboot_required: false,
    }
}

/// ClamAV's `<path>: <signature> FOUND` lines.
fn found_lines(stdout: &str) -> usize {
    stdout
        .lines()
        .filter(|l| l.ends_with(" FOUND") && l.contains(": "))
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_scans_leave_out_virtual_file_systems_and_paths_follow_a_double_dash() {
        let args = clamscan_args(
            Some(Path::new("/db")),
            true,
            [Path::new("/"), Path::new("-x")].into_iter(),
        );
        let args: Vec<String> = args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            args,
            [
                "--recursive",
                "--infected",
                "--stdout",
                "--database=/db",
                "--exclude-dir=^/proc($|/)",
                "--exclude-dir=^/sys($|/)",
                "--",
                "/",
                "-x",
            ]
        );
    }

    #[test]
    fn quick_scans_exclude_nothing() {
        let args = clamscan_args(None, false, [Path::new("/tmp")].into_iter());
        assert_eq!(
            args,
            ["--recursive", "--infected", "--stdout", "--", "/tmp"]
        );
    }
}
