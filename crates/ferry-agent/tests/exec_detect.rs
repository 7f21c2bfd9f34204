//! `detect` with real files and scripts.
#![cfg(unix)]

use std::time::Duration;

use ferry_agent::exec::detect::detect;
use ferry_agent::exec::{ExecError, ExecSettings};
use ferry_proto::ops::Detection;

const T: Duration = Duration::from_secs(30);

async fn script(text: &str) -> Result<bool, ExecError> {
    let dir = tempfile::tempdir().expect("tempdir");
    detect(
        &ExecSettings::default(),
        &Detection::Script(text.into()),
        dir.path(),
        T,
    )
    .await
}

#[tokio::test]
async fn a_file_rule_detects_an_existing_file_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("app.bin");
    std::fs::write(&file, "x").expect("write");
    let s = ExecSettings::default();
    let present = Detection::File(file.display().to_string());
    let absent = Detection::File(dir.path().join("nope").display().to_string());
    assert!(detect(&s, &present, dir.path(), T).await.expect("answers"));
    assert!(!detect(&s, &absent, dir.path(), T).await.expect("answers"));
}

#[tokio::test]
async fn a_script_that_exits_zero_and_prints_detects() {
    assert!(script("echo installed").await.expect("answers"));
}

#[tokio::test]
async fn a_script_that_exits_zero_silently_does_not_detect() {
    assert!(!script("exit 0").await.expect("answers"));
    assert!(!script("echo '  '").await.expect("answers"));
    assert!(!script("echo on stderr >&2").await.expect("answers"));
}

#[tokio::test]
async fn a_script_that_prints_but_fails_does_not_detect() {
    assert!(!script("echo installed; exit 1").await.expect("answers"));
}

#[tokio::test]
async fn a_script_past_its_timeout_is_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let err = detect(
        &ExecSettings::default(),
        &Detection::Script("sleep 100".into()),
        dir.path(),
        Duration::from_secs(1),
    )
    .await
    .expect_err("times out");
    assert!(matches!(err, ExecError::TimedOut(1)), "{err}");
}

#[tokio::test]
async fn msi_product_codes_are_unsupported_off_windows() {
    let dir = tempfile::tempdir().expect("tempdir");
    let code = Detection::MsiProductCode("{12345678-9ABC-DEF0-1234-56789ABCDEF0}".into());
    let err = detect(&ExecSettings::default(), &code, dir.path(), T)
        .await
        .expect_err("unsupported");
    assert!(matches!(err, ExecError::Unsupported(_)), "{err}");
    assert_eq!(
        err.to_string(),
        "unsupported on this device: MSI product code detection needs Windows"
    );
}

#[tokio::test]
async fn a_malformed_product_code_is_refused_before_anything_runs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let code = Detection::MsiProductCode(r"{1}\..\..\Run".into());
    let err = detect(&ExecSettings::default(), &code, dir.path(), T)
        .await
        .expect_err("invalid");
    assert!(matches!(err, ExecError::Invalid { .. }), "{err}");
}
