//! `run_process` with real processes: output caps, timeouts and cancellation that take the
//! whole process tree down, exit codes.
#![cfg(unix)]

use std::path::Path;
use std::time::{Duration, Instant};

use ferry_agent::exec::process::run_process;
use tokio::process::Command;
use tokio_util::sync::CancellationToken;

fn sh(script: &str) -> Command {
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c").arg(script);
    cmd
}

/// A process is alive when it exists and is not a zombie (a container's init may never reap
/// the orphans we killed).
fn alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    let exists = unsafe { libc::kill(pid, 0) } == 0;
    let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(") ").map(|(_, rest)| rest.starts_with('Z')))
        .unwrap_or(false);
    exists && !zombie
}

/// Waits up to two seconds for every pid in `file` to be gone; returns the survivors.
async fn survivors(file: &Path) -> Vec<i32> {
    let pids: Vec<i32> = std::fs::read_to_string(file)
        .expect("pid file written")
        .split_whitespace()
        .map(|p| p.parse().expect("pid"))
        .collect();
    assert_eq!(pids.len(), 3, "the tree started: {pids:?}");
    let until = Instant::now() + Duration::from_secs(2);
    loop {
        let left: Vec<i32> = pids.iter().copied().filter(|&p| alive(p)).collect();
        if left.is_empty() || Instant::now() > until {
            return left;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A shell with two background sleepers; all three pids go to `pids`, then it waits.
fn tree(pids: &Path) -> Command {
    sh(&format!(
        "sleep 100 & echo $! > '{p}'; sleep 100 & echo $! >> '{p}'; echo $$ >> '{p}'; wait",
        p = pids.display()
    ))
}

async fn wait_for_file(path: &Path) {
    while std::fs::read_to_string(path).map_or(true, |s| s.lines().count() < 3) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn exit_codes_are_reported() {
    let cancel = CancellationToken::new();
    for code in [0, 1, 42, 255] {
        let out = run_process(
            sh(&format!("exit {code}")),
            Duration::from_secs(10),
            100,
            &cancel,
        )
        .await
        .expect("runs");
        assert_eq!(out.exit_code, Some(code));
        assert!(!out.timed_out && !out.cancelled);
    }
}

#[tokio::test]
async fn output_beyond_the_limit_is_cut_and_the_cut_is_marked() {
    let out = run_process(
        sh("head -c 100000 /dev/zero | tr '\\0' a; head -c 50 /dev/zero | tr '\\0' b >&2"),
        Duration::from_secs(10),
        1000,
        &CancellationToken::new(),
    )
    .await
    .expect("runs");
    assert_eq!(
        out.stdout,
        format!("{}\n[output cut: 99000 more bytes]", "a".repeat(1000))
    );
    assert_eq!(out.stderr, "b".repeat(50));
    assert_eq!(out.exit_code, Some(0));
}

#[tokio::test]
async fn a_full_stderr_pipe_does_not_block_stdout() {
    // 1 MB on stderr before a word on stdout: a reader that took the streams one after the
    // other would deadlock here.
    let out = run_process(
        sh("head -c 1000000 /dev/zero >&2; echo done"),
        Duration::from_secs(10),
        10,
        &CancellationToken::new(),
    )
    .await
    .expect("runs");
    assert_eq!(out.stdout, "done\n");
    assert!(out.stderr.ends_with("[output cut: 999990 more bytes]"));
}

#[tokio::test]
async fn output_is_lossy_utf8() {
    let out = run_process(
        sh("printf 'caf\\303\\251 \\377'"),
        Duration::from_secs(10),
        100,
        &CancellationToken::new(),
    )
    .await
    .expect("runs");
    assert_eq!(out.stdout, "café \u{fffd}");
}

#[tokio::test]
async fn timeout_kills_the_whole_process_group() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pids = dir.path().join("pids");
    let started = Instant::now();
    let out = run_process(
        tree(&pids),
        Duration::from_millis(500),
        100,
        &CancellationToken::new(),
    )
    .await
    .expect("runs");
    assert!(out.timed_out);
    assert!(!out.cancelled);
    assert_eq!(out.exit_code, None);
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(survivors(&pids).await, Vec::<i32>::new());
}

#[tokio::test]
async fn cancel_kills_the_whole_process_group() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pids = dir.path().join("pids");
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    let watch = pids.clone();
    tokio::spawn(async move {
        wait_for_file(&watch).await;
        trigger.cancel();
    });
    let started = Instant::now();
    let out = run_process(tree(&pids), Duration::from_secs(100), 100, &cancel)
        .await
        .expect("runs");
    assert!(out.cancelled);
    assert!(!out.timed_out);
    assert_eq!(out.exit_code, None);
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(survivors(&pids).await, Vec::<i32>::new());
}

#[tokio::test]
async fn dropping_the_future_kills_the_whole_process_group() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pids = dir.path().join("pids");
    let cancel = CancellationToken::new();
    let run = run_process(tree(&pids), Duration::from_secs(100), 100, &cancel);
    let abandoned = tokio::time::timeout(Duration::from_secs(10), async {
        tokio::select! {
            _ = run => {}
            _ = wait_for_file(&pids) => {}
        }
    })
    .await;
    assert!(abandoned.is_ok(), "the tree started");
    assert_eq!(survivors(&pids).await, Vec::<i32>::new());
}

#[tokio::test]
async fn a_background_process_holding_the_output_does_not_hold_the_result() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pid_file = dir.path().join("pid");
    let started = Instant::now();
    let out = run_process(
        sh(&format!(
            "sleep 100 & echo $! > '{}'; echo hi",
            pid_file.display()
        )),
        Duration::from_secs(60),
        100,
        &CancellationToken::new(),
    )
    .await
    .expect("runs");
    assert_eq!((out.exit_code, out.stdout.as_str()), (Some(0), "hi\n"));
    assert!(started.elapsed() < Duration::from_secs(10));
    // Tidy up the leftover (by design it outlives the operation).
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .expect("pid")
        .trim()
        .parse()
        .expect("pid");
    // SAFETY: signalling our own test's leftover sleeper.
    unsafe { libc::kill(pid, libc::SIGKILL) };
}

#[tokio::test]
async fn a_missing_program_is_not_found() {
    let err = run_process(
        Command::new("/nonexistent/program"),
        Duration::from_secs(1),
        100,
        &CancellationToken::new(),
    )
    .await
    .expect_err("cannot start");
    assert!(err.is_not_found(), "{err}");
    assert!(err.to_string().contains("/nonexistent/program"), "{err}");
}
