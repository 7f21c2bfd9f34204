//! Faults with real processes: killed connectors and hubs lose no work, an unreachable hub
//! is retried with backoff, and a stopping connector gives its job back.

mod common;

use std::time::Duration;

use common::TestHub;
use ferry_proto::job::JobState;
use serde_json::{Value, json};

/// A diagnostics job that takes about `secs` seconds (timed hub round trips).
fn slow_payload(secs: u32) -> Value {
    json!({ "rtt_samples": secs * 4, "rtt_interval_ms": 250 })
}

#[tokio::test]
async fn a_connector_runs_a_diagnostics_job_and_reports_its_findings() {
    let hub = TestHub::start("").await;
    let c = hub.register("c").await;
    let _connector = hub.spawn_connector(&c, "");
    let job = hub.enqueue(c.remote_id, json!({ "rtt_samples": 2 })).await;
    let done = hub
        .wait_job(job.id, Duration::from_secs(20), |j| j.state.is_terminal())
        .await;
    assert_eq!(done.state, JobState::Succeeded, "{done:#?}");
    let result = done.result_value().unwrap();
    assert_eq!(result["os"], std::env::consts::OS);
    assert_eq!(result["hub_rtt_ms"]["samples"], 2);
    assert!(result["work_dir_free_bytes"].as_u64().unwrap() > 0);
    assert!(
        done.events
            .iter()
            .any(|e| e.step.as_deref() == Some("hub_rtt")),
        "progress reached the hub"
    );
}

#[tokio::test]
async fn a_killed_connectors_job_returns_to_the_queue_and_runs_again() {
    let hub = TestHub::start("lease_secs = 2").await;
    let c = hub.register("c").await;
    let mut first = hub.spawn_connector(&c, "");
    let job = hub.enqueue(c.remote_id, slow_payload(3)).await;
    hub.wait_job(job.id, Duration::from_secs(20), |j| {
        j.state == JobState::Running
    })
    .await;
    first.kill9();
    let requeued = hub
        .wait_job(job.id, Duration::from_secs(10), |j| {
            j.state == JobState::Queued
        })
        .await;
    assert_eq!(requeued.attempts, 1);
    let _second = hub.spawn_connector(&c, "");
    let done = hub
        .wait_job(job.id, Duration::from_secs(30), |j| j.state.is_terminal())
        .await;
    assert_eq!(done.state, JobState::Succeeded, "{done:#?}");
    assert_eq!(done.attempts, 2);
}

#[tokio::test]
async fn a_killed_hub_restarts_with_every_job_and_resolves_old_leases() {
    let mut hub = TestHub::start("lease_secs = 3").await;
    let c = hub.register("c").await;
    let leased = hub.enqueue(c.remote_id, Value::Null).await;
    let queued = hub.enqueue(c.remote_id, Value::Null).await;
    let (status, lease) = hub.poll(&c, 1).await;
    assert_eq!(status, 200);
    assert_eq!(lease["id"], leased.id.to_string());

    hub.restart().await; // SIGKILL, then start on the same data dir

    assert_eq!(hub.job(queued.id).await.state, JobState::Queued);
    assert_eq!(hub.job(leased.id).await.state, JobState::Leased);
    // The old lease still lapses on time after the restart, and both jobs then run.
    let _connector = hub.spawn_connector(&c, "");
    for id in [leased.id, queued.id] {
        let done = hub
            .wait_job(id, Duration::from_secs(30), |j| j.state.is_terminal())
            .await;
        assert_eq!(done.state, JobState::Succeeded, "{done:#?}");
    }
    // The first lease's answer never reached a connector that confirmed it: it lapsed
    // without using up an attempt.
    assert_eq!(hub.job(leased.id).await.attempts, 1);
    assert_eq!(hub.job(queued.id).await.attempts, 1);
}

#[tokio::test]
async fn an_unreachable_hub_is_retried_with_backoff_not_in_a_spin() {
    // A port nothing listens on: bind, read the port, close.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "hub_url = \"http://127.0.0.1:{port}\"\nremote_id = \"{}\"\nsecret = \"x\"\nmax_backoff_secs = 2\nwork_dir = \"{}\"\n",
        uuid::Uuid::new_v4(),
        dir.path().join("work").display()
    );
    let connector = common::TestConnector::spawn(dir.path(), &config);
    tokio::time::sleep(Duration::from_secs(4)).await;
    let retries: Vec<Value> = connector
        .log()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["message"] == "hub unreachable; backing off")
        .collect();
    // With a 100 ms floor and a 2 s cap, 4 s allow at most ~40 attempts; a spinning loop
    // would make thousands. At least two prove it keeps trying.
    assert!(
        retries.len() >= 2 && retries.len() <= 40,
        "{} retries: {}",
        retries.len(),
        connector.log()
    );
    let delays: Vec<u64> = retries
        .iter()
        .filter_map(|v| v["retry_in_ms"].as_u64())
        .collect();
    assert!(
        delays.iter().all(|d| (100..=2000).contains(d)),
        "{delays:?}"
    );
}

#[tokio::test]
async fn a_connector_with_a_wrong_secret_stops_and_says_why() {
    let hub = TestHub::start("").await;
    let mut c = hub.register("c").await;
    c.secret = "wrong".into();
    let mut connector = hub.spawn_connector(&c, "");
    let code = connector.wait_exit(Duration::from_secs(10)).await;
    assert_eq!(code, Some(1));
    assert!(
        connector.log().contains("invalid connector credentials"),
        "{}",
        connector.log()
    );
}

#[tokio::test]
async fn sigterm_gives_a_running_job_back_to_the_hub() {
    let hub = TestHub::start("").await;
    let c = hub.register("c").await;
    let mut connector = hub.spawn_connector(&c, "shutdown_grace_secs = 0");
    let job = hub.enqueue(c.remote_id, slow_payload(20)).await;
    hub.wait_job(job.id, Duration::from_secs(20), |j| {
        j.state == JobState::Running
    })
    .await;
    connector.sigterm();
    assert_eq!(connector.wait_exit(Duration::from_secs(10)).await, Some(0));
    let released = hub.job(job.id).await;
    assert_eq!(released.state, JobState::Queued, "{released:#?}");
    assert_eq!(released.attempts, 0, "a release is not a failed attempt");
}

#[tokio::test]
async fn sigterm_lets_a_short_job_finish_within_the_grace_period() {
    let hub = TestHub::start("").await;
    let c = hub.register("c").await;
    let mut connector = hub.spawn_connector(&c, "shutdown_grace_secs = 20");
    let job = hub.enqueue(c.remote_id, slow_payload(2)).await;
    hub.wait_job(job.id, Duration::from_secs(20), |j| {
        j.state == JobState::Running
    })
    .await;
    connector.sigterm();
    assert_eq!(connector.wait_exit(Duration::from_secs(20)).await, Some(0));
    assert_eq!(hub.job(job.id).await.state, JobState::Succeeded);
}

#[tokio::test]
async fn a_cancelled_job_is_stopped_by_its_connector() {
    let hub = TestHub::start("lease_secs = 3").await;
    let c = hub.register("c").await;
    let _connector = hub.spawn_connector(&c, "");
    let job = hub.enqueue(c.remote_id, slow_payload(30)).await;
    hub.wait_job(job.id, Duration::from_secs(20), |j| {
        j.state == JobState::Running
    })
    .await;
    hub.admin(
        reqwest::Method::POST,
        &format!("/api/v1/jobs/{}/cancel", job.id),
    )
    .send()
    .await
    .unwrap();
    let done = hub
        .wait_job(job.id, Duration::from_secs(10), |j| j.state.is_terminal())
        .await;
    assert_eq!(done.state, JobState::Cancelled, "{done:#?}");
}

#[tokio::test]
async fn interval_polling_mode_still_delivers_jobs() {
    let hub = TestHub::start("").await;
    let c = hub.register("c").await;
    let _connector = hub.spawn_connector(&c, "poll_interval_secs = 1");
    let job = hub.enqueue(c.remote_id, json!({ "rtt_samples": 1 })).await;
    let done = hub
        .wait_job(job.id, Duration::from_secs(20), |j| j.state.is_terminal())
        .await;
    assert_eq!(done.state, JobState::Succeeded);
}

#[tokio::test]
async fn a_hub_down_longer_than_a_lease_gives_open_leases_their_full_time_again() {
    let mut hub = TestHub::start("lease_secs = 3").await;
    let c = hub.register("c").await;
    let job = hub.enqueue(c.remote_id, Value::Null).await;
    let (status, lease) = hub.poll(&c, 1).await;
    assert_eq!(status, 200);
    let renew = |hub: &TestHub| {
        hub.as_connector(
            &c,
            reqwest::Method::POST,
            &format!("/api/v1/connector/jobs/{}/lease", job.id),
        )
        .json(&serde_json::json!({ "lease_token": lease["lease_token"] }))
        .send()
    };
    // Confirmed by a renewal, so a lapse would count an attempt.
    assert_eq!(renew(&hub).await.unwrap().status(), 200);
    hub.kill9();
    // The hub stays away longer than the lease (an upgrade, say).
    tokio::time::sleep(Duration::from_secs(4)).await;
    hub.restart().await;
    assert_eq!(hub.job(job.id).await.state, JobState::Leased);
    assert_eq!(
        renew(&hub).await.unwrap().status(),
        200,
        "the connector's lease survived the outage"
    );
    assert_eq!(hub.job(job.id).await.attempts, 1);
}
