//! `run_script` with `sh`: arguments arrive verbatim, exit codes decide the outcome.
#![cfg(unix)]

use std::time::Duration;

use ferry_agent::exec::ExecSettings;
use ferry_agent::exec::script::run_script;
use ferry_proto::ops::OutcomeState;
use tokio_util::sync::CancellationToken;

const T: Duration = Duration::from_secs(30);

#[tokio::test]
async fn arguments_arrive_verbatim_without_shell_expansion() {
    let dir = tempfile::tempdir().expect("tempdir");
    let op_dir = dir.path().join("op");
    let args: Vec<String> = [
        "$(touch pwned)",
        "`touch pwned2`",
        "a b  c",
        "'single'",
        "\"double\"",
        "$HOME",
        "*",
        "; touch pwned3",
        "",
        "line\nbreak",
    ]
    .map(String::from)
    .to_vec();
    let outcome = run_script(
        &ExecSettings::default(),
        &op_dir,
        r#"for a in "$@"; do printf '%s\0' "$a"; done"#,
        &args,
        T,
        10_000,
        &CancellationToken::new(),
    )
    .await;
    assert_eq!(outcome.state, OutcomeState::Succeeded, "{outcome:?}");
    let received: Vec<&str> = outcome.output.split_terminator('\0').collect();
    assert_eq!(received, args);
    for marker in ["pwned", "pwned2", "pwned3"] {
        assert!(!op_dir.join(marker).exists(), "{marker} was created");
    }
}

#[tokio::test]
async fn the_script_runs_in_its_operation_folder_which_is_created() {
    let dir = tempfile::tempdir().expect("tempdir");
    let op_dir = dir.path().join("ops").join("1");
    let outcome = run_script(
        &ExecSettings::default(),
        &op_dir,
        "pwd; ls",
        &[],
        T,
        10_000,
        &CancellationToken::new(),
    )
    .await;
    let canonical = op_dir.canonicalize().expect("created");
    assert_eq!(
        outcome.output,
        format!("{}\nscript.sh\n", canonical.display())
    );
}

#[tokio::test]
async fn exit_zero_succeeds_with_output_and_stderr() {
    let dir = tempfile::tempdir().expect("tempdir");
    let outcome = run_script(
        &ExecSettings::default(),
        dir.path(),
        "echo hello; echo note >&2",
        &[],
        T,
        10_000,
        &CancellationToken::new(),
    )
    .await;
    assert_eq!(outcome.state, OutcomeState::Succeeded);
    assert_eq!(outcome.exit_code, Some(0));
    assert_eq!(outcome.output, "hello\n");
    assert_eq!(outcome.error, "note\n");
}

#[tokio::test]
async fn non_zero_exit_fails_with_the_exit_code_and_stderr() {
    let dir = tempfile::tempdir().expect("tempdir");
    let outcome = run_script(
        &ExecSettings::default(),
        dir.path(),
        "echo partial; echo oops >&2; exit 3",
        &[],
        T,
        10_000,
        &CancellationToken::new(),
    )
    .await;
    assert_eq!(outcome.state, OutcomeState::Failed);
    assert_eq!(outcome.exit_code, Some(3));
    assert_eq!(outcome.output, "partial\n");
    assert_eq!(outcome.error, "exited with code 3\noops");
}

#[tokio::test]
async fn a_script_past_its_timeout_fails_saying_so() {
    let dir = tempfile::tempdir().expect("tempdir");
    let outcome = run_script(
        &ExecSettings::default(),
        dir.path(),
        "echo started; sleep 100",
        &[],
        Duration::from_secs(1),
        10_000,
        &CancellationToken::new(),
    )
    .await;
    assert_eq!(outcome.state, OutcomeState::Failed);
    assert_eq!(outcome.exit_code, None);
    assert_eq!(outcome.error, "timed out after 1 s");
    assert_eq!(outcome.output, "started\n");
}

#[tokio::test]
async fn a_cancelled_script_is_cancelled() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        trigger.cancel();
    });
    let outcome = run_script(
        &ExecSettings::default(),
        dir.path(),
        "sleep 100",
        &[],
        T,
        10_000,
        &cancel,
    )
    .await;
    assert_eq!(outcome.state, OutcomeState::Cancelled);
    assert_eq!(outcome.error, "cancelled");
}

#[tokio::test]
async fn a_missing_shell_fails_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = ExecSettings {
        sh: "/nonexistent/sh".into(),
        ..ExecSettings::default()
    };
    let outcome = run_script(
        &s,
        dir.path(),
        "true",
        &[],
        T,
        100,
        &CancellationToken::new(),
    )
    .await;
    assert_eq!(outcome.state, OutcomeState::Failed);
    assert!(
        outcome.error.starts_with("cannot start /nonexistent/sh"),
        "{}",
        outcome.error
    );
}
