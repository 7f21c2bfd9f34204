//! `restart` runs the configured command as argv; here a script that leaves a marker stands
//! in for `shutdown`.
#![cfg(unix)]

use std::time::Duration;

use ferry_agent::exec::ExecSettings;
use ferry_agent::exec::restart::restart;
use ferry_proto::ops::OutcomeState;
use tokio_util::sync::CancellationToken;

const T: Duration = Duration::from_secs(30);

fn settings(command: &[&str]) -> ExecSettings {
    ExecSettings {
        restart_command: command.iter().map(|s| s.to_string()).collect(),
        ..ExecSettings::default()
    }
}

#[tokio::test]
async fn the_restart_command_runs_with_its_arguments_as_given() {
    let dir = tempfile::tempdir().expect("tempdir");
    let script = dir.path().join("fake-shutdown.sh");
    let marker = dir.path().join("restarted");
    std::fs::write(
        &script,
        "printf '%s\\n' \"$@\" > \"$(dirname \"$0\")/restarted\"",
    )
    .expect("write");
    let script = script.display().to_string();
    let s = settings(&[
        "/bin/sh",
        &script,
        "-r",
        "+1",
        "Ferry: restart $(requested)",
    ]);
    let outcome = restart(&s, T, 1000, &CancellationToken::new()).await;
    assert_eq!(outcome.state, OutcomeState::Succeeded, "{outcome:?}");
    assert!(!outcome.reboot_required);
    let got = std::fs::read_to_string(marker).expect("marker");
    assert_eq!(got, "-r\n+1\nFerry: restart $(requested)\n");
}

#[tokio::test]
async fn an_empty_restart_command_fails() {
    let outcome = restart(&settings(&[]), T, 1000, &CancellationToken::new()).await;
    assert_eq!(outcome.state, OutcomeState::Failed);
    assert_eq!(outcome.error, "no restart command configured");
}

#[tokio::test]
async fn a_failing_restart_command_fails_with_its_exit_code() {
    let outcome = restart(
        &settings(&["/bin/sh", "-c", "echo refused >&2; exit 1"]),
        T,
        1000,
        &CancellationToken::new(),
    )
    .await;
    assert_eq!(outcome.state, OutcomeState::Failed);
    assert_eq!(outcome.exit_code, Some(1));
    assert_eq!(outcome.error, "exited with code 1\nrefused");
}
