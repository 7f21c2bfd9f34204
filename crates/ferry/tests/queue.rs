//! The durable job queue and its long poll, driven over HTTP as a connector would.

mod common;

use std::time::{Duration, Instant};

use common::TestHub;
use ferry_proto::job::{JobState, NewJob};
use reqwest::Method;
use serde_json::{Value, json};

#[tokio::test]
async fn long_poll_without_a_job_answers_204_after_the_hold() {
    let hub = TestHub::start("").await;
    let c = hub.register("c").await;
    let (status, _) = hub.poll(&c, 1).await;
    assert_eq!(status, 204);
}

#[tokio::test]
async fn enqueueing_wakes_the_waiting_long_poll() {
    let hub = TestHub::start("").await;
    let c = hub.register("c").await;
    let waiting = {
        let hub_url = hub.url.clone();
        let auth = format!("Bearer {}:{}", c.remote_id, c.secret);
        tokio::spawn(async move {
            let r = reqwest::Client::new()
                .get(format!("{hub_url}/api/v1/connector/jobs/next?hold=30"))
                .header("authorization", auth)
                .send()
                .await
                .unwrap();
            (
                r.status().as_u16(),
                r.json::<Value>().await.unwrap_or(Value::Null),
            )
        })
    };
    // Make sure the poll is parked before enqueueing.
    let started = Instant::now();
    while hub.metric("ferry_long_polls_waiting").await < 1.0 {
        assert!(started.elapsed() < Duration::from_secs(10));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let job = hub.enqueue(c.remote_id, Value::Null).await;
    // A 30 s hold that was not woken would answer 204; a 200 with the job proves the wake-up.
    let (status, body) = waiting.await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(body["id"], job.id.to_string());
    assert_eq!(body["attempt"], 1);
}

#[tokio::test]
async fn jobs_are_handed_out_oldest_first() {
    let hub = TestHub::start("").await;
    let c = hub.register("c").await;
    let first = hub.enqueue(c.remote_id, Value::Null).await;
    let second = hub.enqueue(c.remote_id, Value::Null).await;
    assert_eq!(hub.poll(&c, 1).await.1["id"], first.id.to_string());
    assert_eq!(hub.poll(&c, 1).await.1["id"], second.id.to_string());
    assert_eq!(hub.poll(&c, 1).await.0, 204);
}

#[tokio::test]
async fn a_late_result_from_a_lapsed_lease_is_refused() {
    let hub = TestHub::start("lease_secs = 2").await;
    let c = hub.register("c").await;
    let job = hub.enqueue(c.remote_id, Value::Null).await;
    let (_, first) = hub.poll(&c, 1).await;
    confirm(&hub, &c, &first).await;
    // The lease lapses; the sweeper queues the job again; a second lease is handed out.
    let (status, second) = hub.poll(&c, 10).await;
    assert_eq!(status, 200);
    assert_eq!(second["attempt"], 2);
    assert_ne!(first["lease_token"], second["lease_token"]);
    let (status, body) = hub
        .report(&c, &first["id"], &first["lease_token"], "succeeded")
        .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["code"], "stale_lease");
    let (status, _) = hub
        .report(&c, &second["id"], &second["lease_token"], "succeeded")
        .await;
    assert_eq!(status, 200);
    assert_eq!(hub.job(job.id).await.state, JobState::Succeeded);
}

#[tokio::test]
async fn the_same_result_sent_twice_is_accepted_once() {
    let hub = TestHub::start("").await;
    let c = hub.register("c").await;
    let job = hub.enqueue(c.remote_id, Value::Null).await;
    let (_, leased) = hub.poll(&c, 1).await;
    let (s1, b1) = hub
        .report(&c, &leased["id"], &leased["lease_token"], "succeeded")
        .await;
    let (s2, b2) = hub
        .report(&c, &leased["id"], &leased["lease_token"], "succeeded")
        .await;
    assert_eq!((s1, s2), (200, 200));
    assert_eq!(
        b1["finished_at"], b2["finished_at"],
        "the replay must not change the job"
    );
    let (s3, b3) = hub
        .report(&c, &leased["id"], &leased["lease_token"], "failed")
        .await;
    assert_eq!(
        s3, 409,
        "a different outcome after the end is a conflict: {b3}"
    );
    let events = hub.job(job.id).await.events;
    assert_eq!(
        events
            .iter()
            .filter(|e| e.state == Some(JobState::Succeeded))
            .count(),
        1
    );
}

#[tokio::test]
async fn a_lease_that_lapses_on_the_last_attempt_fails_the_job_with_the_reason() {
    let hub = TestHub::start("lease_secs = 2").await;
    let c = hub.register("c").await;
    let job = hub
        .enqueue_job(NewJob {
            max_attempts: Some(1),
            ..common::diagnostics_job(c.remote_id)
        })
        .await;
    let (status, lease) = hub.poll(&c, 1).await;
    assert_eq!(status, 200);
    confirm(&hub, &c, &lease).await;
    let failed = hub
        .wait_job(job.id, Duration::from_secs(10), |j| j.state.is_terminal())
        .await;
    assert_eq!(failed.state, JobState::Failed);
    assert!(failed.error.unwrap().contains("attempt 1 of 1"));
}

/// Renews a lease once: the connector confirms it received the job.
async fn confirm(hub: &TestHub, c: &ferry_proto::connector::ConnectorCredentials, lease: &Value) {
    let r = hub
        .as_connector(
            c,
            Method::POST,
            &format!(
                "/api/v1/connector/jobs/{}/lease",
                lease["id"].as_str().unwrap()
            ),
        )
        .json(&serde_json::json!({ "lease_token": lease["lease_token"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn a_lease_the_connector_never_confirmed_lapses_without_using_up_an_attempt() {
    // The answer to a long poll can be lost (a cut connection, a hub killed between commit
    // and reply): the job must not be failed by the network.
    let hub = TestHub::start("lease_secs = 2").await;
    let c = hub.register("c").await;
    let job = hub
        .enqueue_job(NewJob {
            max_attempts: Some(1),
            ..common::diagnostics_job(c.remote_id)
        })
        .await;
    assert_eq!(hub.poll(&c, 1).await.0, 200);
    let (status, again) = hub.poll(&c, 10).await;
    assert_eq!(status, 200, "leased again after the silent lapse");
    assert_eq!(again["id"], job.id.to_string());
    assert_eq!(again["attempt"], 1);
}

#[tokio::test]
async fn cancelling_a_queued_job_ends_it_at_once() {
    let hub = TestHub::start("").await;
    let c = hub.register("c").await;
    let job = hub.enqueue(c.remote_id, Value::Null).await;
    let r = hub
        .admin(Method::POST, &format!("/api/v1/jobs/{}/cancel", job.id))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(hub.job(job.id).await.state, JobState::Cancelled);
    assert_eq!(hub.poll(&c, 1).await.0, 204);
}

#[tokio::test]
async fn cancelling_a_leased_job_tells_the_connector_at_its_next_contact() {
    let hub = TestHub::start("").await;
    let c = hub.register("c").await;
    let job = hub.enqueue(c.remote_id, Value::Null).await;
    let (_, leased) = hub.poll(&c, 1).await;
    hub.admin(Method::POST, &format!("/api/v1/jobs/{}/cancel", job.id))
        .send()
        .await
        .unwrap();
    assert_eq!(
        hub.job(job.id).await.state,
        JobState::Leased,
        "the connector decides when it stops"
    );
    let r = hub
        .as_connector(
            &c,
            Method::POST,
            &format!("/api/v1/connector/jobs/{}/lease", job.id),
        )
        .json(&json!({ "lease_token": leased["lease_token"] }))
        .send()
        .await
        .unwrap();
    let status: Value = r.json().await.unwrap();
    assert_eq!(status["cancel_requested"], true);
    let (code, _) = hub
        .report(&c, &leased["id"], &leased["lease_token"], "cancelled")
        .await;
    assert_eq!(code, 200);
    assert_eq!(hub.job(job.id).await.state, JobState::Cancelled);
}

#[tokio::test]
async fn cancelling_a_finished_job_is_a_conflict() {
    let hub = TestHub::start("").await;
    let c = hub.register("c").await;
    let job = hub.enqueue(c.remote_id, Value::Null).await;
    let (_, leased) = hub.poll(&c, 1).await;
    hub.report(&c, &leased["id"], &leased["lease_token"], "succeeded")
        .await;
    let r = hub
        .admin(Method::POST, &format!("/api/v1/jobs/{}/cancel", job.id))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
}

#[tokio::test]
async fn a_job_past_its_expiry_is_never_handed_out() {
    let hub = TestHub::start("").await;
    let c = hub.register("c").await;
    let expires = time::OffsetDateTime::now_utc() + time::Duration::milliseconds(800);
    let job = hub
        .enqueue_job(NewJob {
            expires_at: Some(expires),
            ..common::diagnostics_job(c.remote_id)
        })
        .await;
    let expired = hub
        .wait_job(job.id, Duration::from_secs(10), |j| j.state.is_terminal())
        .await;
    assert_eq!(expired.state, JobState::Expired);
    assert_eq!(hub.poll(&c, 1).await.0, 204);
}

#[tokio::test]
async fn a_delayed_job_reaches_a_waiting_connector_when_it_becomes_due() {
    let hub = TestHub::start("").await;
    let c = hub.register("c").await;
    let not_before = time::OffsetDateTime::now_utc() + time::Duration::milliseconds(1500);
    let job = hub
        .enqueue_job(NewJob {
            not_before: Some(not_before),
            ..common::diagnostics_job(c.remote_id)
        })
        .await;
    let (status, body) = hub.poll(&c, 20).await;
    assert_eq!(
        status, 200,
        "the sweeper must wake the waiting poll when the job is due"
    );
    assert_eq!(body["id"], job.id.to_string());
    assert!(
        time::OffsetDateTime::now_utc() >= not_before,
        "handed out before not_before"
    );
}

#[tokio::test]
async fn released_job_is_queued_again_without_using_up_an_attempt() {
    let hub = TestHub::start("").await;
    let c = hub.register("c").await;
    let job = hub.enqueue(c.remote_id, Value::Null).await;
    let (_, leased) = hub.poll(&c, 1).await;
    let r = hub
        .as_connector(
            &c,
            Method::POST,
            &format!("/api/v1/connector/jobs/{}/release", job.id),
        )
        .json(&json!({ "lease_token": leased["lease_token"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let again = hub.job(job.id).await;
    assert_eq!(again.state, JobState::Queued);
    assert_eq!(again.attempts, 0);
    assert_eq!(hub.poll(&c, 1).await.1["attempt"], 1);
}

#[tokio::test]
async fn progress_moves_the_job_to_running_and_is_kept_in_its_history() {
    let hub = TestHub::start("").await;
    let c = hub.register("c").await;
    let job = hub.enqueue(c.remote_id, Value::Null).await;
    let (_, leased) = hub.poll(&c, 1).await;
    let r = hub
        .as_connector(&c, Method::POST, &format!("/api/v1/connector/jobs/{}/progress", job.id))
        .json(&json!({ "lease_token": leased["lease_token"], "step": "download", "message": "12 of 40 MiB", "percent": 30 }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let running = hub.job(job.id).await;
    assert_eq!(running.state, JobState::Running);
    let step = running
        .events
        .iter()
        .find(|e| e.step.as_deref() == Some("download"))
        .unwrap();
    assert_eq!(step.percent, Some(30));
    assert_eq!(step.message.as_deref(), Some("12 of 40 MiB"));
}

#[tokio::test]
async fn metrics_are_served_in_prometheus_text_format() {
    let hub = TestHub::start("").await;
    let c = hub.register("c").await;
    hub.enqueue(c.remote_id, Value::Null).await;
    assert_eq!(hub.metric("ferry_jobs_enqueued_total").await, 1.0);
    assert_eq!(hub.metric("ferry_jobs{state=\"queued\"}").await, 1.0);
    assert_eq!(hub.metric("ferry_connectors").await, 1.0);
}
