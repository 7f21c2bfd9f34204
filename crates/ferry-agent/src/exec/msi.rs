//! What an installer's exit code means. Windows Installer's codes are the lingua franca of
//! Windows deployment: msiexec returns them, and so do PSADT and most wrappers, which is why
//! every installer's exit code goes through [`classify_msi_exit`], as ConfigMgr's default
//! return codes do.

use std::time::Duration;

use ferry_proto::ops::{OpOutcome, OutcomeState};

use super::{ProcessOutput, exit_description, interrupted, with_stderr};

/// What an installer's exit code asks the agent to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MsiExit {
    /// 0 (`ERROR_SUCCESS`) and 1707 ("Installation operation completed successfully").
    Success,
    /// 3010 (`ERROR_SUCCESS_REBOOT_REQUIRED`): installed; a restart finishes the job.
    SuccessRebootRequired,
    /// 1641 (`ERROR_SUCCESS_REBOOT_INITIATED`): installed, and the installer has started a
    /// restart itself.
    SuccessRebootInitiated,
    /// 1618 (`ERROR_INSTALL_ALREADY_RUNNING`): another installation holds the Windows Installer
    /// mutex; trying again later usually works (ConfigMgr's "fast retry").
    RetryLater,
    /// 1602 (`ERROR_INSTALL_USEREXIT`): a user cancelled the installation.
    UserCancelled,
    /// Anything else, e.g. 1603 (fatal error) or 1619 (package could not be opened).
    Failure(i32),
}

/// Classifies an installer's exit code (see [`MsiExit`] for each code's meaning).
pub fn classify_msi_exit(code: i32) -> MsiExit {
    match code {
        0 | 1707 => MsiExit::Success,
        3010 => MsiExit::SuccessRebootRequired,
        1641 => MsiExit::SuccessRebootInitiated,
        1618 => MsiExit::RetryLater,
        1602 => MsiExit::UserCancelled,
        other => MsiExit::Failure(other),
    }
}

/// The message for 1618 once retries are exhausted.
pub const BUSY_MESSAGE: &str = "another installation is in progress (1618)";

/// The outcome of a finished installer run: 0/1707 succeed; 3010/1641 succeed with
/// `reboot_required`; 1602 is `Cancelled`; 1618 fails as [`BUSY_MESSAGE`] (the caller retries
/// before calling this); others fail, named when Windows Installer documents them. Timeouts and
/// cancellations are reported as for any process.
pub fn outcome_for_msi_exit(out: ProcessOutput, timeout: Duration) -> OpOutcome {
    if let Some(outcome) = interrupted(&out, timeout) {
        return outcome;
    }
    let Some(code) = out.exit_code else {
        return OpOutcome {
            state: OutcomeState::Failed,
            exit_code: None,
            error: with_stderr(&exit_description(None), &out.stderr),
            output: out.stdout,
            reboot_required: false,
        };
    };
    let (state, reboot_required, reason) = match classify_msi_exit(code) {
        MsiExit::Success => (OutcomeState::Succeeded, false, None),
        MsiExit::SuccessRebootRequired | MsiExit::SuccessRebootInitiated => {
            (OutcomeState::Succeeded, true, None)
        }
        MsiExit::RetryLater => (OutcomeState::Failed, false, Some(BUSY_MESSAGE.to_owned())),
        MsiExit::UserCancelled => (
            OutcomeState::Cancelled,
            false,
            Some("the installation was cancelled by a user (1602)".to_owned()),
        ),
        MsiExit::Failure(code) => (
            OutcomeState::Failed,
            false,
            Some(match describe(code) {
                Some(text) => format!("{text} ({code})"),
                None => exit_description(Some(code)),
            }),
        ),
    };
    OpOutcome {
        state,
        exit_code: Some(code),
        error: match reason {
            Some(reason) => with_stderr(&reason, &out.stderr),
            None => out.stderr,
        },
        output: out.stdout,
        reboot_required,
    }
}

/// Windows Installer's wording for the failures an operator meets most.
fn describe(code: i32) -> Option<&'static str> {
    Some(match code {
        1601 => "the Windows Installer service could not be accessed",
        1603 => "fatal error during installation",
        1605 => "this action is only valid for products that are currently installed",
        1612 => "the installation source for this product is not available",
        1619 => "the installation package could not be opened",
        1620 => "the installation package could not be opened (not a valid package)",
        1625 => "the installation is forbidden by system policy",
        1633 => "this installation package is not supported on this platform",
        1638 => "another version of this product is already installed",
        1639 => "invalid command line argument",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn msi_exit_codes_classify_as_windows_installer_documents_them() {
        let table = [
            (0, MsiExit::Success),
            (1707, MsiExit::Success),
            (3010, MsiExit::SuccessRebootRequired),
            (1641, MsiExit::SuccessRebootInitiated),
            (1618, MsiExit::RetryLater),
            (1602, MsiExit::UserCancelled),
            (1603, MsiExit::Failure(1603)),
            (1, MsiExit::Failure(1)),
            (-1, MsiExit::Failure(-1)),
        ];
        for (code, expected) in table {
            assert_eq!(classify_msi_exit(code), expected, "code {code}");
        }
    }

    fn exited(code: i32) -> ProcessOutput {
        ProcessOutput {
            exit_code: Some(code),
            stdout: "out".into(),
            stderr: String::new(),
            ..ProcessOutput::default()
        }
    }

    #[test]
    fn outcomes_follow_the_classification() {
        let t = Duration::from_secs(1);
        let o = outcome_for_msi_exit(exited(3010), t);
        assert_eq!(
            (o.state, o.reboot_required),
            (OutcomeState::Succeeded, true)
        );
        let o = outcome_for_msi_exit(exited(1641), t);
        assert_eq!(
            (o.state, o.reboot_required),
            (OutcomeState::Succeeded, true)
        );
        let o = outcome_for_msi_exit(exited(0), t);
        assert_eq!(
            (o.state, o.reboot_required),
            (OutcomeState::Succeeded, false)
        );
        assert_eq!(
            outcome_for_msi_exit(exited(1602), t).state,
            OutcomeState::Cancelled
        );
        let o = outcome_for_msi_exit(exited(1618), t);
        assert_eq!(
            (o.state, o.error.as_str()),
            (OutcomeState::Failed, BUSY_MESSAGE)
        );
        let o = outcome_for_msi_exit(exited(1603), t);
        assert_eq!(o.state, OutcomeState::Failed);
        assert_eq!(o.exit_code, Some(1603));
        assert_eq!(o.error, "fatal error during installation (1603)");
        assert_eq!(
            outcome_for_msi_exit(exited(7), t).error,
            "exited with code 7"
        );
    }
}
