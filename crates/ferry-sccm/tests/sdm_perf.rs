//! Throughput quick-checks. Ignored by default (meaningful only in release mode):
//!
//! ```text
//! cargo test --release -p ferry-sccm --test sdm_perf -- --ignored --nocapture
//! ```
//!
//! Targets: ≥ 100 MB/s parse throughput, 10 000 applications parsed in ≤ 2 s.

use std::path::PathBuf;
use std::time::Instant;

use ferry_sccm::sdm;

fn corpus() -> Vec<Vec<u8>> {
    let dir =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/reference/sdmpackagexml");
    let mut docs: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "xml"))
                .filter_map(|p| std::fs::read(p).ok())
                .collect()
        })
        .unwrap_or_default();
    if docs.is_empty() {
        println!(
            "note: {} not found, using a generated document",
            dir.display()
        );
        let app = sdm::Application {
            title: "generated".into(),
            ..sdm::Application::default()
        };
        docs.push(sdm::to_xml(&app).into_bytes());
    }
    docs
}

#[test]
#[ignore = "performance check; run in release mode with --ignored"]
fn parse_throughput_is_at_least_100_mb_per_second() {
    let docs = corpus();
    let total: usize = docs.iter().map(Vec::len).sum();
    let rounds = (64 * 1024 * 1024 / total.max(1)).max(1);
    let start = Instant::now();
    for _ in 0..rounds {
        for d in &docs {
            std::hint::black_box(sdm::parse(std::hint::black_box(d)).expect("parse"));
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let mbps = (total * rounds) as f64 / secs / 1e6;
    println!(
        "parsed {} MB in {secs:.3} s: {mbps:.0} MB/s",
        total * rounds / 1_000_000
    );
    assert!(mbps >= 100.0, "{mbps:.0} MB/s");
}

#[test]
#[ignore = "performance check; run in release mode with --ignored"]
fn ten_thousand_applications_parse_within_two_seconds() {
    let docs = corpus();
    let start = Instant::now();
    for i in 0..10_000 {
        std::hint::black_box(sdm::parse(&docs[i % docs.len()]).expect("parse"));
    }
    let secs = start.elapsed().as_secs_f64();
    println!("10 000 applications in {secs:.3} s");
    assert!(secs <= 2.0, "{secs:.3} s");
}

#[test]
#[ignore = "performance check; run in release mode with --ignored"]
fn to_xml_throughput() {
    let apps: Vec<_> = corpus()
        .iter()
        .map(|d| sdm::parse(d).expect("parse"))
        .collect();
    let start = Instant::now();
    let mut bytes = 0;
    for i in 0..10_000 {
        bytes += std::hint::black_box(sdm::to_xml(&apps[i % apps.len()])).len();
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "10 000 documents generated in {secs:.3} s ({:.0} MB/s)",
        bytes as f64 / secs / 1e6
    );
}
