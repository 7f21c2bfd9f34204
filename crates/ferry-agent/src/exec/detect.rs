//! Is a package installed? The three detection methods of a deployment, with ConfigMgr's
//! meanings.

use std::path::Path;
use std::time::Duration;

use ferry_proto::ops::Detection;
use tokio_util::sync::CancellationToken;

use super::process::run_process;
use super::script::script_command;
use super::{ExecError, ExecSettings};

/// Detection scripts say "installed" by printing; a few lines are plenty.
const DETECT_OUTPUT_LIMIT: usize = 4096;

/// Answers whether `d` finds the package installed:
/// - `File`: the path exists.
/// - `Script`: the script (written to `op_dir`, run like `run_script`) exits 0 *and* prints
///   something other than whitespace on standard output, ConfigMgr's rule: exit 0 with no
///   output means "not installed", so a script can say no without failing. Any other exit
///   code is also "not installed".
/// - `MsiProductCode`: Windows Installer's uninstall key for the (braced GUID) product code
///   exists, in the 64-bit or the 32-bit registry view. Unsupported off Windows.
///
/// Errors mean "could not tell": a script that cannot start or runs past `timeout`, an invalid
/// product code, an unsupported method. Dropping the future stops a running script.
pub async fn detect(
    s: &ExecSettings,
    d: &Detection,
    op_dir: &Path,
    timeout: Duration,
) -> Result<bool, ExecError> {
    match d {
        Detection::File(path) => {
            // ConfigMgr's file rules name folders like `%ProgramFiles%`; so may ours.
            #[cfg(windows)]
            let path = &expand_percent_vars(path, |name| std::env::var(name).ok());
            tokio::fs::try_exists(path)
                .await
                .map_err(|e| ExecError::io(format!("cannot check {path}"), e))
        }
        Detection::Script(text) => {
            let cmd = script_command(s, op_dir, "detect", text).await?;
            let out =
                run_process(cmd, timeout, DETECT_OUTPUT_LIMIT, &CancellationToken::new()).await?;
            if out.timed_out {
                return Err(ExecError::TimedOut(timeout.as_secs()));
            }
            Ok(out.exit_code == Some(0) && !out.stdout.trim().is_empty())
        }
        Detection::MsiProductCode(code) => {
            if !is_braced_guid(code) {
                return Err(ExecError::Invalid {
                    what: "product code",
                    reason: format!("{code:?} is not a GUID in braces"),
                });
            }
            msi_product_installed(code, timeout).await
        }
    }
}

/// Replaces each `%NAME%` whose variable `lookup` knows, leaving the others as they are (as
/// `cmd` does).
#[cfg_attr(not(windows), allow(dead_code))]
fn expand_percent_vars(text: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find('%') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        match after.find('%') {
            Some(end) => match lookup(&after[..end]).filter(|_| end > 0) {
                Some(value) => {
                    out.push_str(&value);
                    rest = &after[end + 1..];
                }
                None => {
                    // Not a variable: keep the first `%`, and let the second start a name.
                    out.push('%');
                    rest = after;
                }
            },
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// `{XXXXXXXX-XXXX-XXXX-XXXX-XXXXXXXXXXXX}` with hex digits: the only form Windows Installer
/// uses, and one that cannot smuggle anything into a registry path.
pub fn is_braced_guid(s: &str) -> bool {
    let Some(inner) = s.strip_prefix('{').and_then(|r| r.strip_suffix('}')) else {
        return false;
    };
    let groups: Vec<&str> = inner.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, len)| g.len() == len && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(windows)]
async fn msi_product_installed(code: &str, timeout: Duration) -> Result<bool, ExecError> {
    const UNINSTALL: [&str; 2] = [
        r"HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Uninstall",
        r"HKLM\SOFTWARE\WOW6432Node\Microsoft\Windows\CurrentVersion\Uninstall",
    ];
    let cancel = CancellationToken::new();
    for key in UNINSTALL {
        let mut cmd = tokio::process::Command::new(super::package::system32("reg.exe"));
        cmd.arg("query").arg(format!(r"{key}\{code}"));
        let out = run_process(cmd, timeout, DETECT_OUTPUT_LIMIT, &cancel).await?;
        if out.timed_out {
            return Err(ExecError::TimedOut(timeout.as_secs()));
        }
        if out.exit_code == Some(0) {
            return Ok(true);
        }
    }
    Ok(false)
}

#[cfg(not(windows))]
async fn msi_product_installed(_code: &str, _timeout: Duration) -> Result<bool, ExecError> {
    Err(ExecError::Unsupported(
        "MSI product code detection needs Windows".to_owned(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_variables_expand_and_unknown_ones_stay() {
        let lookup = |name: &str| (name == "ProgramFiles").then(|| r"C:\Program Files".to_owned());
        assert_eq!(
            expand_percent_vars(r"%ProgramFiles%\App\a.exe", lookup),
            r"C:\Program Files\App\a.exe"
        );
        assert_eq!(
            expand_percent_vars("50% %Nope% %%x", lookup),
            "50% %Nope% %%x"
        );
        assert_eq!(
            expand_percent_vars("100%%ProgramFiles%", lookup),
            r"100%C:\Program Files"
        );
    }

    #[test]
    fn only_braced_hex_guids_are_product_codes() {
        assert!(is_braced_guid("{12345678-9ABC-DEF0-1234-56789abcdef0}"));
        for bad in [
            "12345678-9ABC-DEF0-1234-56789ABCDEF0",
            "{12345678-9ABC-DEF0-1234-56789ABCDEF}",
            "{12345678-9ABC-DEF0-1234-56789ABCDEFG}",
            "{12345678-9ABC-DEF0-1234-56789ABCDEF0}\\..",
            "{12345678-9ABC-DEF0-123456789ABCDEF0}",
            "{}",
            "",
        ] {
            assert!(!is_braced_guid(bad), "{bad}");
        }
    }
}
