//! `ferry demo --exit-after` runs the whole demo over HTTPS and ends with a JSON summary.

use std::process::Command;

#[test]
fn demo_runs_end_to_end_over_https_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["demo", "--exit-after", "--port", "0", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "stdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let last = stdout.lines().last().unwrap();
    let summary: serde_json::Value = serde_json::from_str(last).unwrap();
    assert_eq!(summary["ok"], true, "{stdout}");
    assert!(summary["hub"].as_str().unwrap().starts_with("https://"));
    assert!(stdout.contains("the job succeeded"), "{stdout}");
    assert_eq!(
        summary["pushed"],
        "TimKosse_FileZilla_3.46.3_English(United States)"
    );
    assert!(summary["ci_id"].as_u64().is_some(), "{summary}");
    assert!(summary["imported_package"].as_str().is_some(), "{summary}");
    // Three agents ran a ClamAV quick scan (when ClamAV is installed) and a script.
    assert_eq!(summary["agents"]["devices"], 3, "{summary}");
    assert_eq!(summary["agents"]["script_succeeded"], 3, "{stdout}");
    assert!(
        stdout.contains("started quick_av_scan on 3 devices"),
        "{stdout}"
    );
}
