//! ClamAV scans for real, against a signature database the test writes itself: an MD5 hash
//! signature (`.hdb`, `md5:size:Name`) of a file it plants. Skipped, saying why, where
//! `clamscan` is not installed.
#![cfg(unix)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use ferry_agent::exec::av::av_scan;
use ferry_agent::exec::{AvSettings, ExecSettings};
use ferry_proto::ops::OutcomeState;
use tokio_util::sync::CancellationToken;

const T: Duration = Duration::from_secs(120);
const SAMPLE: &[u8] = b"ferry test sample: not a virus, but the test database says so\n";
const SIGNATURE: &str = "Ferry.Test.Sample";

fn clamscan() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("clamscan"))
        .find(|p| p.is_file())
}

macro_rules! require_clamscan {
    () => {
        match clamscan() {
            Some(path) => path,
            None => {
                // The test script installs ClamAV: in CI a missing scanner is a failure, not
                // a skip that would pass unnoticed.
                assert!(
                    std::env::var("CI").as_deref() != Ok("true"),
                    "clamscan is not installed, and CI=true: scripts/test.sh should have installed Debian's clamav"
                );
                eprintln!("SKIPPED: clamscan is not installed (apt-get install clamav)");
                return;
            }
        }
    };
}

/// A tree with a clean file (and, when `infected`, the sample two levels down) plus a database
/// that knows the sample.
struct Fixture {
    _dir: tempfile::TempDir,
    tree: PathBuf,
    database: PathBuf,
    sample: PathBuf,
}

fn fixture(infected: bool) -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let tree = dir.path().join("tree");
    let nested = tree.join("home").join("user");
    std::fs::create_dir_all(&nested).expect("mkdir");
    std::fs::write(tree.join("clean.txt"), "nothing to see\n").expect("write");
    let sample = nested.join("sample.bin");
    if infected {
        std::fs::write(&sample, SAMPLE).expect("write");
    }
    let database = dir.path().join("db");
    std::fs::create_dir(&database).expect("mkdir");
    std::fs::write(
        database.join("ferry-test.hdb"),
        format!("{}:{}:{SIGNATURE}\n", md5_hex(SAMPLE), SAMPLE.len()),
    )
    .expect("write");
    Fixture {
        _dir: dir,
        tree,
        database,
        sample,
    }
}

/// The MD5 ClamAV's hash signatures use, from coreutils' `md5sum` (not worth a dependency).
fn md5_hex(data: &[u8]) -> String {
    let out = std::process::Command::new("md5sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().expect("stdin").write_all(data)?;
            child.wait_with_output()
        })
        .expect("md5sum runs");
    let text = String::from_utf8(out.stdout).expect("utf-8");
    text.split_whitespace().next().expect("hash").to_owned()
}

fn settings(clamscan: &Path, f: &Fixture) -> ExecSettings {
    ExecSettings {
        av: AvSettings {
            clamscan: clamscan.to_path_buf(),
            clamav_database: Some(f.database.clone()),
            quick_paths: vec![f.tree.clone(), PathBuf::from("/nonexistent-quick-path")],
            full_paths: vec![f.tree.clone()],
            ..AvSettings::default()
        },
        ..ExecSettings::default()
    }
}

#[tokio::test]
async fn a_planted_sample_is_found_by_a_quick_scan() {
    let clamscan = require_clamscan!();
    let f = fixture(true);
    let outcome = av_scan(
        &settings(&clamscan, &f),
        false,
        T,
        64 * 1024,
        &CancellationToken::new(),
    )
    .await;
    assert_eq!(outcome.state, OutcomeState::Succeeded, "{outcome:?}");
    assert_eq!(outcome.exit_code, Some(1));
    let mut lines = outcome.output.lines();
    assert_eq!(lines.next(), Some("threats found: 1"));
    let found = lines.find(|l| l.ends_with(" FOUND")).expect("a FOUND line");
    assert!(
        found.starts_with(&format!("{}: ", f.sample.display())),
        "{found}"
    );
    assert!(found.contains(SIGNATURE), "{found}");
}

#[tokio::test]
async fn a_planted_sample_is_found_by_a_full_scan() {
    let clamscan = require_clamscan!();
    let f = fixture(true);
    let outcome = av_scan(
        &settings(&clamscan, &f),
        true,
        T,
        64 * 1024,
        &CancellationToken::new(),
    )
    .await;
    assert_eq!(outcome.state, OutcomeState::Succeeded, "{outcome:?}");
    assert_eq!(outcome.exit_code, Some(1));
    assert!(
        outcome.output.starts_with("threats found: 1\n"),
        "{}",
        outcome.output
    );
}

#[tokio::test]
async fn a_clean_tree_reports_no_threats() {
    let clamscan = require_clamscan!();
    let f = fixture(false);
    let outcome = av_scan(
        &settings(&clamscan, &f),
        false,
        T,
        64 * 1024,
        &CancellationToken::new(),
    )
    .await;
    assert_eq!(outcome.state, OutcomeState::Succeeded, "{outcome:?}");
    assert_eq!(outcome.exit_code, Some(0));
    assert!(
        outcome.output.starts_with("no threats found\n"),
        "{}",
        outcome.output
    );
    assert!(!outcome.output.contains("FOUND"));
}

#[tokio::test]
async fn a_scanner_without_signatures_fails() {
    let clamscan = require_clamscan!();
    let f = fixture(true);
    let empty = f.database.with_file_name("empty-db");
    std::fs::create_dir(&empty).expect("mkdir");
    let mut s = settings(&clamscan, &f);
    s.av.clamav_database = Some(empty);
    let outcome = av_scan(&s, false, T, 64 * 1024, &CancellationToken::new()).await;
    assert_eq!(outcome.state, OutcomeState::Failed, "{outcome:?}");
    assert_eq!(outcome.exit_code, Some(2));
    assert!(
        outcome.error.starts_with("the scanner exited with code 2"),
        "{}",
        outcome.error
    );
}

#[tokio::test]
async fn a_missing_scanner_is_unsupported_on_this_device() {
    let f = fixture(true);
    let outcome = av_scan(
        &settings(Path::new("/nonexistent/clamscan"), &f),
        false,
        T,
        1024,
        &CancellationToken::new(),
    )
    .await;
    assert_eq!(outcome.state, OutcomeState::Failed);
    assert_eq!(
        outcome.error,
        "unsupported on this device: /nonexistent/clamscan is not installed"
    );
}

#[tokio::test]
async fn a_quick_scan_with_no_existing_paths_fails_saying_so() {
    let f = fixture(false);
    let mut s = settings(Path::new("clamscan"), &f);
    s.av.quick_paths = vec![PathBuf::from("/nonexistent-a")];
    let outcome = av_scan(&s, false, T, 1024, &CancellationToken::new()).await;
    assert_eq!(outcome.state, OutcomeState::Failed);
    assert_eq!(
        outcome.error,
        "nothing to scan: none of /nonexistent-a exists"
    );
}
