//! `run_package` on Linux: the package's own command, split without a shell, run in the
//! package folder. (Windows Installer's codes 1602/1618/1641/3010 cannot come from a Unix
//! process, whose exit status is 8 bits; their handling is tested in `exec::msi` and
//! `exec::package`'s unit tests.)
#![cfg(unix)]

use std::path::Path;
use std::time::Duration;

use ferry_agent::exec::ExecSettings;
use ferry_agent::exec::package::{PackageAction, run_package};
use ferry_proto::ops::{OutcomeState, PackageRef};
use tokio_util::sync::CancellationToken;

const T: Duration = Duration::from_secs(30);

fn package(install: Option<&str>, uninstall: Option<&str>) -> PackageRef {
    PackageRef {
        id: uuid::Uuid::nil(),
        filename: "app.zip".into(),
        size: 0,
        sha256: String::new(),
        install_command: install.map(String::from),
        uninstall_command: uninstall.map(String::from),
        msi_file: None,
        product_code: None,
        copy_from: None,
    }
}

/// A package folder holding `install.sh` with `body`.
fn folder(body: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("install.sh"), body).expect("write");
    dir
}

async fn run(action: PackageAction, p: &PackageRef, dir: &Path) -> ferry_proto::ops::OpOutcome {
    run_package(
        &ExecSettings::default(),
        action,
        p,
        dir,
        T,
        10_000,
        &CancellationToken::new(),
    )
    .await
}

#[tokio::test]
async fn install_runs_the_package_command_with_its_arguments_in_the_package_folder() {
    let dir = folder("printf '%s\\n' \"$@\" > marker; pwd >> marker; echo installed");
    let p = package(Some("sh install.sh --flag 'a b' '$(x)\"'"), None);
    let outcome = run(PackageAction::Install, &p, dir.path()).await;
    assert_eq!(outcome.state, OutcomeState::Succeeded, "{outcome:?}");
    assert_eq!(outcome.output, "installed\n");
    let marker = std::fs::read_to_string(dir.path().join("marker")).expect("marker");
    let cwd = dir.path().canonicalize().expect("canonical");
    assert_eq!(marker, format!("--flag\na b\n$(x)\"\n{}\n", cwd.display()));
}

#[tokio::test]
async fn uninstall_runs_the_uninstall_command() {
    let dir = folder("echo \"$1\" > marker");
    let p = package(Some("sh install.sh install"), Some("sh install.sh remove"));
    let outcome = run(PackageAction::Uninstall, &p, dir.path()).await;
    assert_eq!(outcome.state, OutcomeState::Succeeded, "{outcome:?}");
    let marker = std::fs::read_to_string(dir.path().join("marker")).expect("marker");
    assert_eq!(marker, "remove\n");
}

#[tokio::test]
async fn a_relative_program_is_taken_from_the_package_folder() {
    let dir = folder("");
    let program = dir.path().join("setup");
    std::fs::write(&program, "#!/bin/sh\necho from the package\n").expect("write");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let outcome = run(
        PackageAction::Install,
        &package(Some("setup"), None),
        dir.path(),
    )
    .await;
    assert_eq!(outcome.state, OutcomeState::Succeeded, "{outcome:?}");
    assert_eq!(outcome.output, "from the package\n");
}

#[tokio::test]
async fn a_non_executable_package_program_fails_with_a_hint() {
    let dir = folder("echo hi");
    let outcome = run(
        PackageAction::Install,
        &package(Some("./install.sh"), None),
        dir.path(),
    )
    .await;
    assert_eq!(outcome.state, OutcomeState::Failed);
    assert!(
        outcome.error.contains("Permission denied"),
        "{}",
        outcome.error
    );
    assert!(
        outcome.error.contains("`sh install.sh`"),
        "{}",
        outcome.error
    );
}

#[tokio::test]
async fn a_non_zero_exit_fails_with_the_exit_code() {
    let dir = folder("echo broken >&2; exit 5");
    let outcome = run(
        PackageAction::Install,
        &package(Some("sh install.sh"), None),
        dir.path(),
    )
    .await;
    assert_eq!(outcome.state, OutcomeState::Failed);
    assert_eq!(outcome.exit_code, Some(5));
    assert_eq!(outcome.error, "exited with code 5\nbroken");
}

#[tokio::test]
async fn a_package_without_the_command_fails_saying_which() {
    let dir = folder("");
    let outcome = run(
        PackageAction::Uninstall,
        &package(Some("sh install.sh"), None),
        dir.path(),
    )
    .await;
    assert_eq!(outcome.state, OutcomeState::Failed);
    assert_eq!(outcome.error, "the package has no uninstall command");
    let outcome = run(
        PackageAction::Install,
        &package(Some("  "), None),
        dir.path(),
    )
    .await;
    assert_eq!(outcome.error, "the package has no install command");
}

#[tokio::test]
async fn shell_syntax_in_the_command_is_refused_and_nothing_runs() {
    let dir = folder("touch marker");
    let p = package(Some("sh install.sh; touch pwned"), None);
    let outcome = run(PackageAction::Install, &p, dir.path()).await;
    assert_eq!(outcome.state, OutcomeState::Failed);
    assert!(
        outcome
            .error
            .starts_with("the package's install command: `;` at column 14"),
        "{}",
        outcome.error
    );
    assert!(!dir.path().join("marker").exists());
    assert!(!dir.path().join("pwned").exists());
}

#[tokio::test]
async fn advertise_needs_an_msi_package_on_windows() {
    let dir = folder("");
    let mut p = package(Some("sh install.sh"), None);
    p.msi_file = Some("app.msi".into());
    let outcome = run(PackageAction::Advertise, &p, dir.path()).await;
    assert_eq!(outcome.state, OutcomeState::Failed);
    assert_eq!(outcome.error, "advertise needs an MSI package on Windows");
}

#[tokio::test]
async fn an_installer_past_its_timeout_fails_saying_so() {
    let dir = folder("sleep 100");
    let outcome = run_package(
        &ExecSettings::default(),
        PackageAction::Install,
        &package(Some("sh install.sh"), None),
        dir.path(),
        Duration::from_secs(1),
        100,
        &CancellationToken::new(),
    )
    .await;
    assert_eq!(outcome.state, OutcomeState::Failed);
    assert_eq!(outcome.error, "timed out after 1 s");
}

#[tokio::test]
async fn a_cancelled_installer_is_cancelled() {
    let dir = folder("sleep 100");
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        trigger.cancel();
    });
    let outcome = run_package(
        &ExecSettings::default(),
        PackageAction::Install,
        &package(Some("sh install.sh"), None),
        dir.path(),
        T,
        100,
        &cancel,
    )
    .await;
    assert_eq!(outcome.state, OutcomeState::Cancelled);
}
