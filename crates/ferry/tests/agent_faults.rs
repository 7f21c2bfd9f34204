//! Agents and bad input: malformed frames, oversized messages, unknown kinds, wrong
//! credentials, expired secrets; and a hub restarted under 1,000 connected agents.

mod common;

use std::time::{Duration, Instant};

use common::{FERRY, TestHub};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use uuid::Uuid;

type Ws = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

/// Enrols a device through the API and returns (device id, token).
async fn enroll(hub: &TestHub, hostname: &str) -> (Uuid, String) {
    let secret = hub.enrollment_secret().await;
    let r = hub
        .http
        .post(format!("{}/api/v1/agent/enroll", hub.url))
        .json(&json!({"secret": secret, "inventory": inventory(hostname)}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let v: Value = r.json().await.unwrap();
    (
        Uuid::parse_str(v["device_id"].as_str().unwrap()).unwrap(),
        v["token"].as_str().unwrap().to_owned(),
    )
}

fn inventory(hostname: &str) -> Value {
    json!({"hostname": hostname, "os_name": "Test OS", "os_version": "1", "arch": "x86_64",
           "agent_version": "0.0.0", "ips": ["10.0.0.1"]})
}

/// A hand-driven agent WebSocket, after hello/welcome.
async fn raw_session(hub: &TestHub, token: &str, hostname: &str) -> Ws {
    let addr = hub.url.trim_start_matches("http://");
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut req = format!("ws://{addr}/api/v1/agent/ws")
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::client_async(req, tcp).await.unwrap();
    let hello = json!({"type": "hello", "protocol": 1, "inventory": inventory(hostname)});
    ws.send(Message::Text(hello.to_string().into()))
        .await
        .unwrap();
    let welcome = next_json(&mut ws).await;
    assert_eq!(welcome["type"], "welcome");
    ws
}

/// Reads until the hub closes the WebSocket (within `secs`); the close code it gave.
async fn close_code(ws: &mut Ws, secs: u64) -> Option<u16> {
    while let Ok(Some(Ok(msg))) = tokio::time::timeout(Duration::from_secs(secs), ws.next()).await {
        if let Message::Close(frame) = msg {
            return frame.map(|f| u16::from(f.code));
        }
    }
    None
}

async fn next_json(ws: &mut Ws) -> Value {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("no message within 10 s")
            .expect("connection ended")
            .expect("WebSocket error");
        if let Message::Text(t) = msg {
            return serde_json::from_str(t.as_str()).unwrap();
        }
    }
}

#[tokio::test]
async fn malformed_and_binary_frames_get_an_error_and_the_session_goes_on() {
    let hub = TestHub::start("").await;
    let (device, token) = enroll(&hub, "raw-1").await;
    let mut ws = raw_session(&hub, &token, "raw-1").await;
    ws.send(Message::Text("{not json".into())).await.unwrap();
    let e = next_json(&mut ws).await;
    assert_eq!(
        (e["type"].as_str(), e["code"].as_str()),
        (Some("error"), Some("bad_message"))
    );
    ws.send(Message::Text(r#"{"type":"launch_missiles"}"#.into()))
        .await
        .unwrap();
    let e = next_json(&mut ws).await;
    assert!(
        e["message"].as_str().unwrap().contains("launch_missiles"),
        "{e}"
    );
    ws.send(Message::Binary(vec![1, 2, 3].into()))
        .await
        .unwrap();
    assert_eq!(next_json(&mut ws).await["code"], "bad_message");
    // Still the device's live session: an operation arrives on it.
    let op = hub
        .start_op(json!({"op": {"kind": "quick_av_scan"}, "devices": [device]}))
        .await;
    let m = next_json(&mut ws).await;
    assert_eq!(m["type"], "operation");
    assert_eq!(m["op_id"], op.id.to_string());
    assert_eq!(m["kind"], "quick_av_scan");
}

#[tokio::test]
async fn an_oversized_message_closes_the_session_with_1009_and_the_device_can_reconnect() {
    let hub = TestHub::start("agent_max_message_bytes = 1048576").await;
    let (device, token) = enroll(&hub, "raw-2").await;
    let mut ws = raw_session(&hub, &token, "raw-2").await;
    let huge = json!({"type": "inventory", "inventory": inventory(&"x".repeat(2 * 1024 * 1024))});
    let _ = ws.send(Message::Text(huge.to_string().into())).await;
    assert_eq!(close_code(&mut ws, 10).await, Some(1009));
    hub.wait_online(device, false).await;
    let _ws = raw_session(&hub, &token, "raw-2").await;
    hub.wait_online(device, true).await;
}

#[tokio::test]
async fn results_are_acknowledged_once_stored_and_a_repeat_is_acknowledged_too() {
    let hub = TestHub::start("").await;
    let (device, token) = enroll(&hub, "raw-3").await;
    let mut ws = raw_session(&hub, &token, "raw-3").await;
    let op = hub
        .start_op(json!({"op": {"kind": "run_script", "script": "true"}, "devices": [device]}))
        .await;
    assert_eq!(next_json(&mut ws).await["type"], "operation");
    let finished = json!({"type": "finished", "op_id": op.id,
                          "outcome": {"state": "succeeded", "exit_code": 0, "output": "done"}});
    for _ in 0..2 {
        ws.send(Message::Text(finished.to_string().into()))
            .await
            .unwrap();
        let ack = next_json(&mut ws).await;
        assert_eq!(
            (ack["type"].as_str(), ack["op_id"].as_str()),
            (Some("result_stored"), Some(op.id.to_string().as_str()))
        );
    }
    let op = hub.op(op.id).await;
    assert_eq!((op.counts.succeeded, op.counts.total), (1, 1));
}

#[tokio::test]
async fn a_device_cannot_report_on_another_devices_operation() {
    let hub = TestHub::start("").await;
    let (victim, _) = enroll(&hub, "victim").await;
    let (_, token) = enroll(&hub, "attacker").await;
    let mut ws = raw_session(&hub, &token, "attacker").await;
    let op = hub
        .start_op(json!({"op": {"kind": "run_script", "script": "true"}, "devices": [victim]}))
        .await;
    let forged = json!({"type": "finished", "op_id": op.id,
                        "outcome": {"state": "succeeded", "output": "forged"}});
    ws.send(Message::Text(forged.to_string().into()))
        .await
        .unwrap();
    assert_eq!(next_json(&mut ws).await["type"], "result_stored");
    let op = hub.op(op.id).await;
    assert_eq!((op.counts.offline, op.counts.succeeded), (1, 0));
}

#[tokio::test]
async fn operations_with_unknown_kinds_or_no_targets_are_refused_and_nothing_is_created() {
    let hub = TestHub::start("").await;
    let (device, _) = enroll(&hub, "d1").await;
    let post = |body: Value| {
        hub.admin(reqwest::Method::POST, "/api/v1/ops")
            .json(&body)
            .send()
    };
    let cases = [
        (
            json!({"op": {"kind": "format_disk"}, "devices": [device]}),
            400,
            "format_disk",
        ),
        (json!({"op": {"kind": "quick_av_scan"}}), 400, "no_targets"),
        (
            json!({"op": {"kind": "quick_av_scan"}, "devices": [Uuid::new_v4()]}),
            422,
            "unknown_reference",
        ),
        (
            json!({"op": {"kind": "run_script", "script": ""}, "devices": [device]}),
            400,
            "invalid_operation",
        ),
        (
            json!({"op": {"kind": "install", "package_id": Uuid::new_v4()}, "devices": [device]}),
            422,
            "unknown_reference",
        ),
        (
            json!({"op": {"kind": "quick_av_scan"}, "devices": [device], "output_limit": 10}),
            400,
            "invalid_output_limit",
        ),
    ];
    for (body, status, needle) in cases {
        let r = post(body.clone()).await.unwrap();
        assert_eq!(r.status(), status, "{body}");
        let text = r.text().await.unwrap();
        assert!(text.contains(needle), "{body}: {text}");
    }
    let list: Vec<Value> = hub
        .admin(reqwest::Method::GET, "/api/v1/ops")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(list.is_empty());
}

#[tokio::test]
async fn agent_routes_refuse_admin_tokens_and_admin_routes_refuse_device_tokens() {
    let hub = TestHub::start("").await;
    let (_, token) = enroll(&hub, "d2").await;
    // A real device token on a technician's route: known, but not for this route.
    let r = hub
        .http
        .get(format!("{}/api/v1/devices", hub.url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // A technician's real key on the agent's route: known, but not for it.
    let r = hub
        .admin(reqwest::Method::GET, "/api/v1/agent/policy")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = hub
        .http
        .get(format!(
            "{}/api/v1/agent/packages/{}/content",
            hub.url,
            Uuid::new_v4()
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "a device reads only packages it was given");
}

#[tokio::test]
async fn an_expired_or_used_up_enrolment_secret_is_refused_with_its_reason() {
    let hub_owned = TestHub::start("").await;
    let hub = &hub_owned;
    let create = |body: Value| async move {
        hub.admin(reqwest::Method::POST, "/api/v1/enrollment-secrets")
            .json(&body)
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()["secret"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let expiring = create(json!({"name": "short", "expires_in_secs": 1})).await;
    let once = create(json!({"name": "once", "max_uses": 1})).await;
    let try_enroll = |secret: String| async move {
        let r = hub
            .http
            .post(format!("{}/api/v1/agent/enroll", hub.url))
            .json(&json!({"secret": secret, "inventory": inventory("x")}))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    };
    assert_eq!(try_enroll(once.clone()).await.0, 201);
    let (status, body) = try_enroll(once).await;
    assert_eq!(status, 403);
    assert!(body.contains("enrollment_secret_used_up"), "{body}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (status, body) = try_enroll(expiring).await;
    assert_eq!(status, 403);
    assert!(body.contains("enrollment_secret_expired"), "{body}");
    let (status, _) = try_enroll("00000000-0000-0000-0000-000000000000:nope".into()).await;
    assert_eq!(status, 401);
    // The CLI says why, too.
    let secret = create(json!({"name": "gone", "expires_in_secs": 1})).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let out = std::process::Command::new(FERRY)
        .args([
            "agent",
            "enroll",
            "--hub",
            &hub.url,
            "--secret",
            &secret,
            "--data-dir",
        ])
        .arg(hub.dir.path().join("cli-agent"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("expired"));
}

/// 1,000 simulated agents (one `ferry bench swarm` process running the real session code)
/// connected; the hub is killed with SIGKILL while an operation fans out and restarted with
/// admission paced at 200/s. All come back (some told to wait), and every device ends with
/// exactly one result.
#[tokio::test]
async fn a_hub_restarted_under_1000_agents_readmits_them_at_the_paced_rate_and_loses_nothing() {
    const N: usize = 1000;
    let mut hub = TestHub::start("agent_admission_rate = 200\nagent_admission_burst = 50").await;
    // Pre-register the devices in one request (enrolling 1,000 one by one is not what this
    // test is about).
    let devices: Vec<Value> = (0..N).map(|i| inventory(&format!("sim-{i}"))).collect();
    let r = hub
        .admin(reqwest::Method::POST, "/api/v1/devices/import")
        .json(&json!({ "devices": devices }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), reqwest::StatusCode::CREATED);
    let imported: Vec<Value> = r.json().await.unwrap();
    let tokens: Vec<String> = imported
        .iter()
        .map(|d| d["token"].as_str().unwrap().to_owned())
        .collect();
    let all: Value = hub
        .admin(reqwest::Method::POST, "/api/v1/collections")
        .json(&json!({ "name": "all", "rule": {} }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let all_id = all["id"].as_str().unwrap().to_owned();
    let tokens_file = hub.dir.path().join("tokens.txt");
    std::fs::write(&tokens_file, tokens.join("\n")).unwrap();
    let mut swarm = std::process::Command::new(FERRY)
        .args(["bench", "swarm", "--hub", &hub.url, "--tokens"])
        .arg(&tokens_file)
        .env("FERRY_LOG", "error")
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_metric(&hub, "ferry_agents_connected", N as f64).await;

    let op = hub
        .start_op(
            json!({"op": {"kind": "run_script", "script": "exit 0"}, "collections": [all_id]}),
        )
        .await;
    hub.restart().await; // SIGKILL, then start again
    let readmit = Instant::now();
    wait_metric(&hub, "ferry_agents_connected", N as f64).await;
    let took = readmit.elapsed();
    let deferred = hub.metric("ferry_agent_sessions_deferred_total").await;
    let op = hub
        .wait_op(op.id, Duration::from_secs(60), |o| o.counts.finished())
        .await;
    let _ = swarm.kill();
    let _ = swarm.wait();
    assert!(deferred > 0.0, "paced admission never deferred anyone");
    // 50 at once, then 200/s: 950 more take at least 4.75 s.
    assert!(
        took >= Duration::from_secs(4),
        "readmitted too fast: {took:?}"
    );
    assert_eq!(
        (op.counts.total, op.counts.succeeded),
        (N as u64, N as u64),
        "{:?}",
        op.counts
    );
}

async fn wait_metric(hub: &TestHub, name: &str, value: f64) {
    let started = Instant::now();
    loop {
        if hub.metric(name).await == value {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{name} never reached {value} (now {})",
            hub.metric(name).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn an_operation_cancelled_while_its_device_was_away_is_stopped_when_it_returns() {
    let hub = TestHub::start("").await;
    let (device, token) = enroll(&hub, "away-1").await;
    let mut ws = raw_session(&hub, &token, "away-1").await;
    let op = hub
        .start_op(json!({"op": {"kind": "run_script", "script": "sleep 600"}, "devices": [device]}))
        .await;
    assert_eq!(next_json(&mut ws).await["type"], "operation");
    let running = json!({"type": "running", "op_id": op.id}).to_string();
    ws.send(Message::Text(running.clone().into()))
        .await
        .unwrap();
    hub.wait_op(op.id, Duration::from_secs(10), |o| o.counts.running == 1)
        .await;
    drop(ws);
    hub.wait_online(device, false).await;
    let r = hub
        .admin(
            reqwest::Method::POST,
            &format!("/api/v1/ops/{}/cancel", op.id),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Back again, still running it: the hub says stop.
    let mut ws = raw_session(&hub, &token, "away-1").await;
    ws.send(Message::Text(running.into())).await.unwrap();
    let m = next_json(&mut ws).await;
    assert_eq!(
        (m["type"].as_str(), m["op_id"].as_str()),
        (Some("cancel"), Some(op.id.to_string().as_str()))
    );
}

#[tokio::test]
async fn a_poll_from_a_replaced_session_is_told_so_instead_of_joining_the_new_one() {
    let hub = TestHub::start("").await;
    let (_, token) = enroll(&hub, "poll-1").await;
    let hello = json!([{"type": "hello", "protocol": 1, "inventory": inventory("poll-1")}]);
    let poll = |query: String, body: Value| {
        hub.http
            .post(format!("{}/api/v1/agent/poll?hold=0{query}", hub.url))
            .bearer_auth(&token)
            .json(&body)
            .send()
    };
    let first: Value = poll(String::new(), hello.clone())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let first_id = first[0]["session_id"].as_u64().unwrap();
    let second: Value = poll(String::new(), hello)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let second_id = second[0]["session_id"].as_u64().unwrap();
    assert_ne!(first_id, second_id);
    let r = poll(format!("&session={first_id}"), json!([]))
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    assert!(r.text().await.unwrap().contains("session_replaced"));
    let r = poll(format!("&session={second_id}"), json!([]))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn stored_output_is_cut_at_the_operations_output_limit() {
    let hub = TestHub::start("").await;
    let (device, token) = enroll(&hub, "out-1").await;
    let mut ws = raw_session(&hub, &token, "out-1").await;
    let op = hub
        .start_op(json!({"op": {"kind": "run_script", "script": "true"}, "devices": [device], "output_limit": 1024}))
        .await;
    assert_eq!(next_json(&mut ws).await["type"], "operation");
    let finished = json!({"type": "finished", "op_id": op.id,
                          "outcome": {"state": "succeeded", "output": "y".repeat(100_000)}});
    ws.send(Message::Text(finished.to_string().into()))
        .await
        .unwrap();
    assert_eq!(next_json(&mut ws).await["type"], "result_stored");
    let r = &hub.op_results(op.id).await[0];
    assert_eq!(r.output.as_deref().map(str::len), Some(1024));
}

#[tokio::test]
async fn a_session_that_sends_only_garbage_is_closed_after_a_hundred_unreadable_messages() {
    let hub = TestHub::start("").await;
    let (_, token) = enroll(&hub, "junk-1").await;
    let mut ws = raw_session(&hub, &token, "junk-1").await;
    // One past the limit, and no more: writing after the hub closed would reset the
    // connection before its close frame is read.
    for _ in 0..101 {
        ws.send(Message::Text("junk".into())).await.unwrap();
    }
    assert_eq!(close_code(&mut ws, 10).await, Some(1008));
}

#[tokio::test]
async fn a_silent_agent_connection_is_closed_after_three_ping_intervals() {
    let hub = TestHub::start("agent_ping_secs = 5").await;
    let (device, token) = enroll(&hub, "silent-1").await;
    // A half-open connection looks like this from the hub: nothing arrives, not even pings.
    let mut ws = raw_session(&hub, &token, "silent-1").await;
    let started = Instant::now();
    assert_eq!(close_code(&mut ws, 25).await, Some(1001));
    assert!(
        started.elapsed() >= Duration::from_secs(14),
        "{:?}",
        started.elapsed()
    );
    hub.wait_online(device, false).await;
}

#[tokio::test]
async fn a_device_may_have_only_one_connection_waiting_to_say_hello() {
    let hub = TestHub::start("").await;
    let (_, token) = enroll(&hub, "slow-1").await;
    let addr = hub.url.trim_start_matches("http://").to_owned();
    let upgrade = || async {
        let tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let mut req = format!("ws://{addr}/api/v1/agent/ws")
            .into_client_request()
            .unwrap();
        req.headers_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
        tokio_tungstenite::client_async(req, tcp).await
    };
    let (silent, _) = upgrade().await.unwrap();
    match upgrade().await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 409),
        other => panic!("expected 409, got {:?}", other.map(|_| ())),
    }
    drop(silent);
    // Once the silent one is gone, the device connects normally.
    let started = Instant::now();
    loop {
        let tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let mut req = format!("ws://{addr}/api/v1/agent/ws")
            .into_client_request()
            .unwrap();
        req.headers_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
        if tokio_tungstenite::client_async(req, tcp).await.is_ok() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "never released"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_token_the_device_asked_for_replaces_the_old_one_only_when_first_used() {
    let hub = TestHub::start("").await;
    let (_, old) = enroll(&hub, "rot-1").await;
    let policy = |token: String| {
        let url = format!("{}/api/v1/agent/policy", hub.url);
        let http = hub.http.clone();
        async move {
            http.get(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    let rotate = hub
        .http
        .post(format!("{}/api/v1/agent/token", hub.url))
        .bearer_auth(&old)
        .send()
        .await
        .unwrap();
    assert_eq!(rotate.status(), 200);
    let new = rotate.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    // The answer could have been lost: the old token still works until the new one is used.
    assert_eq!(policy(old.clone()).await, 200);
    assert_eq!(policy(new.clone()).await, 200);
    assert_eq!(policy(old).await, 401);
    assert_eq!(policy(new).await, 200);
}
