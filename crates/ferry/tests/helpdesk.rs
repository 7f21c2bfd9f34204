//! The helpdesk loop, end to end with real processes: a hub, devices on real WebSockets (or a
//! real agent), and a fake helpdesk that verifies every callback with the published Standard
//! Webhooks library.

mod common;

use std::time::Duration;

use common::TestHub;
use common::helpdesk::{FakeHelpdesk, python, statuses};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use uuid::Uuid;

type Ws = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

/// Fast retries, so that a receiver coming back is served within seconds.
const FAST_RETRIES: &str = "callback_retry_secs = [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]";
const LIMIT: Duration = Duration::from_secs(30);

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn send(hub: &TestHub, method: reqwest::Method, path: &str, body: Value) -> (u16, Value) {
    let r = hub.admin(method, path).json(&body).send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn get(hub: &TestHub, path: &str) -> Value {
    let r = hub.admin(reqwest::Method::GET, path).send().await.unwrap();
    assert_eq!(r.status(), 200, "GET {path}");
    r.json().await.unwrap()
}

fn inventory(hostname: &str, users: &[&str]) -> Value {
    json!({"hostname": hostname, "os_name": "Windows", "os_version": "10.0.19045",
           "domain": "CORP", "arch": "x86_64", "agent_version": "0.0.0",
           "ips": ["10.0.0.1"], "users": users})
}

/// A device on a hand-driven WebSocket, logged on by `users`.
struct Device {
    ws: Ws,
}

impl Device {
    async fn connect(hub: &TestHub, hostname: &str, users: &[&str]) -> Device {
        let secret = hub.enrollment_secret().await;
        let r = hub
            .http
            .post(format!("{}/api/v1/agent/enroll", hub.url))
            .json(&json!({"secret": secret, "inventory": inventory(hostname, users)}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        let v: Value = r.json().await.unwrap();
        let token = v["token"].as_str().unwrap().to_owned();
        let addr = hub.url.trim_start_matches("http://");
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut req = format!("ws://{addr}/api/v1/agent/ws")
            .into_client_request()
            .unwrap();
        req.headers_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
        let (mut ws, _) = tokio_tungstenite::client_async(req, tcp).await.unwrap();
        let hello =
            json!({"type": "hello", "protocol": 1, "inventory": inventory(hostname, users)});
        ws.send(Message::Text(hello.to_string().into()))
            .await
            .unwrap();
        let mut d = Device { ws };
        assert_eq!(d.next().await["type"], "welcome");
        // The hello's inventory (with its users) is committed in the writer's next batch.
        for user in users {
            let domain = user.split('\\').next().unwrap();
            let q = user.split('\\').nth(1).unwrap();
            wait_until(|| async {
                let page = get(hub, &format!("/api/v1/catalog/users?domain={domain}&q={q}")).await;
                page["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|u| u["user"].as_str().unwrap().eq_ignore_ascii_case(user))
            })
            .await;
        }
        d
    }

    async fn next(&mut self) -> Value {
        loop {
            let msg = tokio::time::timeout(Duration::from_secs(20), self.ws.next())
                .await
                .expect("no message within 20 s")
                .expect("connection ended")
                .expect("WebSocket error");
            if let Message::Text(t) = msg {
                return serde_json::from_str(t.as_str()).unwrap();
            }
        }
    }

    /// The next operation handed to the device.
    async fn operation(&mut self) -> Value {
        loop {
            let m = self.next().await;
            if m["type"] == "operation" {
                return m;
            }
        }
    }

    async fn say(&mut self, msg: Value) {
        self.ws
            .send(Message::Text(msg.to_string().into()))
            .await
            .unwrap();
    }

    /// Reports the operation received and running, as an agent would.
    async fn start(&mut self, op: &Value) {
        let op_id = op["op_id"].clone();
        self.say(json!({"type": "received", "op_id": op_id})).await;
        self.say(json!({"type": "running", "op_id": op_id})).await;
    }

    async fn finish(&mut self, op: &Value, outcome: Value) {
        let op_id = op["op_id"].clone();
        self.say(json!({"type": "finished", "op_id": op_id, "outcome": outcome}))
            .await;
    }

    /// Runs the operation through to `outcome`, letting the hub commit `in_progress` first
    /// (reports that arrive together are folded into the last, and a task that goes straight
    /// from queued to its end has no in-progress status to report).
    async fn run(&mut self, hub: &TestHub, task: &str, op: &Value, outcome: Value) {
        self.start(op).await;
        wait_status(hub, task, "in_progress").await;
        self.finish(op, outcome).await;
    }
}

async fn wait_status(hub: &TestHub, task: &str, status: &str) {
    wait_until(|| async { get(hub, &format!("/api/v1/tasks/{task}")).await["status"] == status })
        .await;
}

async fn wait_until<F, Fut>(f: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = std::time::Instant::now();
    while !f().await {
        assert!(started.elapsed() < LIMIT, "condition never held");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A hub with an integration whose callbacks go to a fake helpdesk on loopback, and a
/// library script with one required parameter.
struct Loop {
    hub: TestHub,
    helpdesk: FakeHelpdesk,
    integration: Value,
    secret: String,
    script: String,
}

async fn setup(retries: &str) -> Option<Loop> {
    let py = python()?;
    let hub = TestHub::start(if retries.is_empty() {
        FAST_RETRIES
    } else {
        retries
    })
    .await;
    let port = free_port();
    let (status, integration) = send(
        &hub,
        reqwest::Method::POST,
        "/api/v1/integrations",
        json!({"name": "servicedesk", "callback_prefixes": [format!("http://127.0.0.1:{port}/cb/")],
               "allow_http": true, "allow_private": true}),
    )
    .await;
    assert_eq!(status, 201, "{integration}");
    let secret = integration["signing_secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"));
    let mut helpdesk =
        FakeHelpdesk::start(&py, &hub.dir.path().join("helpdesk"), &[&secret], None).await;
    if helpdesk.port != port {
        helpdesk.port = port;
        helpdesk.restart().await;
    }
    let (status, script) = send(
        &hub,
        reqwest::Method::POST,
        "/api/v1/scripts",
        json!({"name": "Greet", "content": "echo hello \"$1\"",
               "parameters": [{"name": "Name", "required": true}]}),
    )
    .await;
    assert_eq!(status, 201, "{script}");
    Some(Loop {
        hub,
        helpdesk,
        integration,
        secret,
        script: script["id"].as_str().unwrap().to_owned(),
    })
}

impl Loop {
    fn task(&self, request: &str, key: &str, users: &[&str]) -> Value {
        json!({
            "request_ref": request,
            "idempotency_key": key,
            "integration_id": self.integration["id"],
            "action": "run_script",
            "script_id": self.script,
            "arguments": {"Name": "world"},
            "targets": {"users": users},
            "callback_url": format!("{}/cb/{request}", self.helpdesk.base()),
        })
    }

    async fn create(&self, body: Value) -> Value {
        let (status, task) = send(&self.hub, reqwest::Method::POST, "/api/v1/tasks", body).await;
        assert_eq!(status, 201, "{task}");
        task
    }
}

const OK: fn() -> Value = || json!({"state": "succeeded", "exit_code": 0, "output": "hello world"});

#[tokio::test]
async fn each_status_change_reaches_the_helpdesk_once_in_order_and_verified() {
    let Some(l) = setup("").await else { return };
    let mut pc = Device::connect(&l.hub, "PC-01", &["CORP\\alice"]).await;
    let task = l.create(l.task("REQ-1", "k-1", &["CORP\\alice"])).await;
    assert_eq!(task["status"], "queued");
    let id = task["id"].as_str().unwrap();
    let op = pc.operation().await;
    assert_eq!(op["kind"], "run_script");
    assert_eq!(
        op["args"],
        json!(["world"]),
        "declared parameters travel in order"
    );
    pc.run(&l.hub, id, &op, OK()).await;
    let got = l
        .helpdesk
        .wait_accepted(LIMIT, "the task succeed", |r| {
            statuses(r, id).last().map(String::as_str) == Some("succeeded")
        })
        .await;
    assert_eq!(statuses(&got, id), ["queued", "in_progress", "succeeded"]);
    let last = &got.last().unwrap()["body"];
    assert_eq!(last["type"], "task.status_changed");
    assert_eq!(last["data"]["request_ref"], "REQ-1");
    assert_eq!(last["data"]["previous_status"], "in_progress");
    assert_eq!(last["data"]["counts"]["succeeded"], 1);
    assert!(l.helpdesk.refused().is_empty());
    // Every attempt is visible, with its answer.
    let deliveries = get(&l.hub, &format!("/api/v1/tasks/{id}/deliveries")).await;
    let deliveries = deliveries.as_array().unwrap();
    assert_eq!(deliveries.len(), 3);
    for d in deliveries {
        assert_eq!(d["state"], "delivered");
        assert_eq!(d["attempts"][0]["status_code"], 204);
    }
    let shown = get(&l.hub, &format!("/api/v1/tasks/{id}")).await;
    assert_eq!(shown["status"], "succeeded");
    assert_eq!(shown["targets"][0]["hostname"], "PC-01");
}

#[tokio::test]
async fn a_user_target_reaches_every_workstation_the_user_is_logged_on_to() {
    let Some(l) = setup("").await else { return };
    let mut a = Device::connect(&l.hub, "PC-A", &["CORP\\bob"]).await;
    let mut b = Device::connect(&l.hub, "PC-B", &["CORP\\bob", "CORP\\carol"]).await;
    let _c = Device::connect(&l.hub, "PC-C", &["CORP\\carol"]).await;
    let task = l.create(l.task("REQ-2", "k-2", &["CORP\\bob"])).await;
    assert_eq!(task["counts"]["total"], 2);
    let (op_a, op_b) = (a.operation().await, b.operation().await);
    let id = task["id"].as_str().unwrap();
    a.run(&l.hub, id, &op_a, OK()).await;
    b.start(&op_b).await;
    b.finish(
        &op_b,
        json!({"state": "failed", "exit_code": 3, "error": "disk full"}),
    )
    .await;
    let got = l
        .helpdesk
        .wait_accepted(LIMIT, "the task end", |r| {
            statuses(r, id)
                .last()
                .is_some_and(|s| s == "partially_succeeded")
        })
        .await;
    let last = &got.last().unwrap()["body"]["data"];
    assert_eq!(last["failures"][0]["hostname"], "PC-B");
    assert!(
        last["reason"].as_str().unwrap().contains("disk full"),
        "{last}"
    );
}

#[tokio::test]
async fn bad_task_requests_get_422_naming_the_field_and_create_nothing() {
    let Some(l) = setup("").await else { return };
    let _pc = Device::connect(&l.hub, "PC-01", &["CORP\\alice"]).await;
    let package = l
        .hub
        .script_package("setup.ps1", "Write-Output hi", "powershell -File setup.ps1")
        .await;
    let base = l.task("REQ-9", "k-9", &["CORP\\alice"]);
    let with = |patch: Value| {
        let mut b = base.clone();
        for (k, v) in patch.as_object().unwrap() {
            b[k] = v.clone();
        }
        b
    };
    let cases = [
        (
            with(
                json!({"action": "advertise", "script_id": null, "arguments": {}, "package_id": package}),
            ),
            "action",
        ),
        (
            with(
                json!({"action": "install", "script_id": null, "arguments": {}, "package_id": Uuid::new_v4()}),
            ),
            "package_id",
        ),
        (with(json!({"arguments": {}})), "arguments.Name"),
        (
            with(json!({"arguments": {"Name": "x", "Other": "y"}})),
            "arguments.Other",
        ),
        (
            with(
                json!({"deployment": {"schedule": {"date": "2020-01-01", "time": "10:00", "time_zone": "UTC"}}}),
            ),
            "deployment.schedule",
        ),
        (
            with(
                json!({"deployment": {"schedule": {"date": "2031-02-30", "time": "10:00", "time_zone": "UTC"}}}),
            ),
            "deployment.schedule.date",
        ),
        (
            with(json!({"callback_url": "http://127.0.0.1:1/elsewhere"})),
            "callback_url",
        ),
        (
            with(json!({"callback_url": format!("{}/cb-evil/x", l.helpdesk.base())})),
            "callback_url",
        ),
        (
            with(json!({"targets": {"users": ["CORP\\nobody"]}})),
            "targets.users[0]",
        ),
        (
            with(json!({"targets": {"workstations": ["PC-99"]}})),
            "targets.workstations[0]",
        ),
        (with(json!({"targets": {}})), "targets"),
        (
            with(
                json!({"package_settings": {"run_as": {"user": "CORP\\svc", "password": "hunter2"}}}),
            ),
            "package_settings.run_as",
        ),
        (
            with(json!({"deployment": {"for": "workstation", "when": "during_login"}})),
            "deployment.when",
        ),
        (
            with(json!({"package_settings": {"copy_from_share": "\\\\fs01\\share"}})),
            "package_settings.copy_from_share",
        ),
    ];
    for (body, field) in cases {
        let (status, err) = send(&l.hub, reqwest::Method::POST, "/api/v1/tasks", body).await;
        assert_eq!(status, 422, "{field}: {err}");
        assert_eq!(err["field"], field, "{err}");
        assert!(!err.to_string().contains("hunter2"));
    }
    assert_eq!(get(&l.hub, "/api/v1/tasks").await, json!([]));
    assert!(
        !l.hub.log().contains("hunter2"),
        "a password reached the log"
    );
}

#[tokio::test]
async fn the_same_idempotency_key_returns_the_same_task_and_a_different_request_is_refused() {
    let Some(l) = setup("").await else { return };
    let _pc = Device::connect(&l.hub, "PC-01", &["CORP\\alice"]).await;
    let body = l.task("REQ-3", "same-key", &["CORP\\alice"]);
    let first = l.create(body.clone()).await;
    let (status, again) = send(&l.hub, reqwest::Method::POST, "/api/v1/tasks", body).await;
    assert_eq!(status, 200);
    assert_eq!(again["id"], first["id"]);
    let (status, err) = send(
        &l.hub,
        reqwest::Method::POST,
        "/api/v1/tasks",
        l.task("REQ-4", "same-key", &["CORP\\alice"]),
    )
    .await;
    assert_eq!(status, 409);
    assert_eq!(err["code"], "idempotency_key_reused");
    assert_eq!(
        get(&l.hub, "/api/v1/tasks").await.as_array().unwrap().len(),
        1
    );
}

#[tokio::test]
async fn changes_made_while_the_helpdesk_was_down_arrive_after_it_recovers_in_order_once_each() {
    let Some(mut l) = setup("").await else { return };
    let mut pc = Device::connect(&l.hub, "PC-01", &["CORP\\alice"]).await;
    l.helpdesk.kill();
    let task = l.create(l.task("REQ-5", "k-5", &["CORP\\alice"])).await;
    let id = task["id"].as_str().unwrap().to_owned();
    let op = pc.operation().await;
    pc.run(&l.hub, &id, &op, OK()).await;
    // Attempts fail while nobody listens; they are kept and visible.
    wait_until(|| async {
        let d = get(&l.hub, &format!("/api/v1/tasks/{id}/deliveries")).await;
        d[0]["attempts"].as_array().is_some_and(|a| a.len() >= 2)
    })
    .await;
    let d = get(&l.hub, &format!("/api/v1/tasks/{id}/deliveries")).await;
    assert!(d[0]["attempts"][0]["error"].is_string(), "{d}");
    l.helpdesk.restart().await;
    let got = l
        .helpdesk
        .wait_accepted(LIMIT, "all three changes", |r| statuses(r, &id).len() == 3)
        .await;
    assert_eq!(statuses(&got, &id), ["queued", "in_progress", "succeeded"]);
}

#[tokio::test]
async fn pending_callbacks_survive_a_hub_killed_with_sigkill_and_none_arrives_twice() {
    let Some(mut l) = setup("").await else { return };
    let mut pc = Device::connect(&l.hub, "PC-01", &["CORP\\alice"]).await;
    l.helpdesk.kill();
    let task = l.create(l.task("REQ-6", "k-6", &["CORP\\alice"])).await;
    let id = task["id"].as_str().unwrap().to_owned();
    let op = pc.operation().await;
    pc.run(&l.hub, &id, &op, OK()).await;
    // The result is committed once the device is told so.
    loop {
        if pc.next().await["type"] == "result_stored" {
            break;
        }
    }
    l.hub.kill9();
    l.helpdesk.restart().await;
    l.hub.restart().await;
    let got = l
        .helpdesk
        .wait_accepted(LIMIT, "all three changes after the restart", |r| {
            statuses(r, &id).len() == 3
        })
        .await;
    assert_eq!(statuses(&got, &id), ["queued", "in_progress", "succeeded"]);
    // Nothing more arrives once every delivery is recorded delivered.
    wait_until(|| async {
        let d = get(&l.hub, &format!("/api/v1/tasks/{id}/deliveries")).await;
        d.as_array()
            .unwrap()
            .iter()
            .all(|d| d["state"] == "delivered")
    })
    .await;
    let ids: std::collections::BTreeSet<_> = l
        .helpdesk
        .accepted()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 3);
}

#[tokio::test]
async fn a_tampered_body_a_wrong_secret_or_an_old_timestamp_is_refused_by_the_verifier() {
    let Some(l) = setup("").await else { return };
    let _pc = Device::connect(&l.hub, "PC-01", &["CORP\\alice"]).await;
    let task = l.create(l.task("REQ-7", "k-7", &["CORP\\alice"])).await;
    let id = task["id"].as_str().unwrap();
    let got = l
        .helpdesk
        .wait_accepted(LIMIT, "the first change", |r| !statuses(r, id).is_empty())
        .await;
    let genuine = &got[0];
    let raw = genuine["raw"].as_str().unwrap();
    let msg_id = genuine["id"].as_str().unwrap();
    let ts: i64 = genuine["timestamp"].as_str().unwrap().parse().unwrap();
    let key = ferry_hub::webhooks::secret_key(&l.secret).unwrap();
    let verify = |body: String, ts: i64, signature: String| {
        let url = format!("http://127.0.0.1:{}/verify", l.helpdesk.port);
        let msg_id = msg_id.to_owned();
        async move {
            reqwest::Client::new()
                .post(url)
                .header("webhook-id", msg_id)
                .header("webhook-timestamp", ts.to_string())
                .header("webhook-signature", signature)
                .body(body)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    // The genuine request verifies; each alteration does not.
    assert_eq!(
        verify(
            raw.to_owned(),
            ts,
            genuine["signature"].as_str().unwrap().to_owned()
        )
        .await,
        204
    );
    let tampered = raw.replace("queued", "succeeded");
    assert_eq!(
        verify(
            tampered,
            ts,
            genuine["signature"].as_str().unwrap().to_owned()
        )
        .await,
        401
    );
    let wrong = ferry_hub::webhooks::sign(b"not the secret", msg_id, ts, raw.as_bytes());
    assert_eq!(verify(raw.to_owned(), ts, wrong).await, 401);
    let old = ts - 3600;
    let stale = ferry_hub::webhooks::sign(&key, msg_id, old, raw.as_bytes());
    assert_eq!(verify(raw.to_owned(), old, stale).await, 401);
}

#[tokio::test]
async fn a_410_gone_stops_callbacks_and_the_task_says_why() {
    let Some(l) = setup("").await else { return };
    let mut pc = Device::connect(&l.hub, "PC-01", &["CORP\\alice"]).await;
    l.helpdesk.answer_with(410, None).await;
    let task = l.create(l.task("REQ-8", "k-8", &["CORP\\alice"])).await;
    let id = task["id"].as_str().unwrap().to_owned();
    wait_until(|| async {
        get(&l.hub, &format!("/api/v1/tasks/{id}")).await["callbacks_stopped"].is_string()
    })
    .await;
    l.helpdesk.answer_with(204, None).await;
    let op = pc.operation().await;
    pc.run(&l.hub, &id, &op, OK()).await;
    wait_until(|| async {
        get(&l.hub, &format!("/api/v1/tasks/{id}")).await["status"] == "succeeded"
    })
    .await;
    let shown = get(&l.hub, &format!("/api/v1/tasks/{id}")).await;
    assert!(shown["callbacks_stopped"].as_str().unwrap().contains("410"));
    // Only the first change was ever sent.
    assert_eq!(l.helpdesk.received().len(), 1);
    let d = get(&l.hub, &format!("/api/v1/tasks/{id}/deliveries")).await;
    assert_eq!(d[0]["state"], "stopped");
}

#[tokio::test]
async fn closing_the_request_stops_its_callbacks() {
    let Some(l) = setup("").await else { return };
    let mut pc = Device::connect(&l.hub, "PC-01", &["CORP\\alice"]).await;
    let task = l.create(l.task("REQ 10/ä", "k-10", &["CORP\\alice"])).await;
    let id = task["id"].as_str().unwrap().to_owned();
    l.helpdesk
        .wait_accepted(LIMIT, "the first change", |r| !statuses(r, &id).is_empty())
        .await;
    let (status, closed) = send(
        &l.hub,
        reqwest::Method::POST,
        "/api/v1/requests/REQ%2010%2F%C3%A4/close",
        json!({"state": "archived"}),
    )
    .await;
    assert_eq!((status, &closed["tasks"]), (200, &json!(1)), "{closed}");
    let op = pc.operation().await;
    pc.run(&l.hub, &id, &op, OK()).await;
    wait_until(|| async {
        get(&l.hub, &format!("/api/v1/tasks/{id}")).await["status"] == "succeeded"
    })
    .await;
    let shown = get(&l.hub, &format!("/api/v1/tasks/{id}")).await;
    assert!(
        shown["callbacks_stopped"]
            .as_str()
            .unwrap()
            .contains("archived")
    );
    assert_eq!(statuses(&l.helpdesk.accepted(), &id), ["queued"]);
    let d = get(&l.hub, &format!("/api/v1/tasks/{id}/deliveries")).await;
    assert!(
        d.as_array()
            .unwrap()
            .iter()
            .skip(1)
            .all(|d| d["attempts"] == json!([]))
    );
}

#[tokio::test]
async fn inbound_status_needs_a_valid_signature_and_a_refusal_changes_nothing() {
    let Some(l) = setup("").await else { return };
    let _pc = Device::connect(&l.hub, "PC-01", &["CORP\\alice"]).await;
    let task = l.create(l.task("REQ-11", "k-11", &["CORP\\alice"])).await;
    let id = task["id"].as_str().unwrap().to_owned();
    let key = ferry_hub::webhooks::secret_key(&l.secret).unwrap();
    let body = json!({"task_id": id, "status": "failed", "reason": "the endpoint manager gave up"})
        .to_string();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let post = |ts: i64, sig: String, body: String| {
        let req = l
            .hub
            .admin(reqwest::Method::POST, &format!("/api/v1/tasks/{id}/status"))
            .header("webhook-id", "msg_inbound1")
            .header("webhook-timestamp", ts.to_string())
            .header("webhook-signature", sig)
            .header("content-type", "application/json")
            .body(body);
        async move { req.send().await.unwrap().status().as_u16() }
    };
    let wrong = ferry_hub::webhooks::sign(b"wrong", "msg_inbound1", now, body.as_bytes());
    assert_eq!(post(now, wrong, body.clone()).await, 401);
    let stale = ferry_hub::webhooks::sign(&key, "msg_inbound1", now - 3600, body.as_bytes());
    assert_eq!(post(now - 3600, stale, body.clone()).await, 401);
    let good = ferry_hub::webhooks::sign(&key, "msg_inbound1", now, body.as_bytes());
    let tampered = body.replace("failed", "succeeded");
    assert_eq!(post(now, good.clone(), tampered).await, 401);
    assert_eq!(
        get(&l.hub, &format!("/api/v1/tasks/{id}")).await["status"],
        "queued"
    );
    // A report signed for another task is refused where it is replayed.
    let other = l.create(l.task("REQ-11b", "k-11b", &["CORP\\alice"])).await;
    let other_body = json!({"task_id": other["id"], "status": "succeeded"}).to_string();
    let other_sig = ferry_hub::webhooks::sign(&key, "msg_inbound1", now, other_body.as_bytes());
    assert_eq!(post(now, other_sig, other_body).await, 422);
    // Only final statuses are reported.
    let mid = json!({"task_id": id, "status": "in_progress"}).to_string();
    let mid_sig = ferry_hub::webhooks::sign(&key, "msg_inbound1", now, mid.as_bytes());
    assert_eq!(post(now, mid_sig, mid).await, 422);
    assert_eq!(post(now, good.clone(), body.clone()).await, 200);
    let shown = get(&l.hub, &format!("/api/v1/tasks/{id}")).await;
    assert_eq!(shown["status"], "failed");
    assert_eq!(shown["reason"], "the endpoint manager gave up");
    // The device's record was cancelled with the task; the same report again changes nothing.
    assert_eq!(shown["targets"][0]["state"], "cancelled");
    assert_eq!(post(now, good, body).await, 409);
}

#[tokio::test]
async fn only_the_integrations_own_technician_or_an_admin_may_create_tasks_for_it() {
    let Some(l) = setup("").await else { return };
    let _pc = Device::connect(&l.hub, "PC-01", &["CORP\\alice"]).await;
    let (_, olga) = send(
        &l.hub,
        reqwest::Method::POST,
        "/api/v1/technicians",
        json!({"name": "olga", "role": "operator"}),
    )
    .await;
    let (_, key) = send(
        &l.hub,
        reqwest::Method::POST,
        &format!("/api/v1/technicians/{}/keys", olga["id"].as_str().unwrap()),
        json!({"name": "k"}),
    )
    .await;
    let r = l
        .hub
        .http
        .post(format!("{}/api/v1/tasks", l.hub.url))
        .bearer_auth(key["token"].as_str().unwrap())
        .json(&l.task("REQ-40", "k-40", &["CORP\\alice"]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(get(&l.hub, "/api/v1/tasks").await, json!([]));
}

#[tokio::test]
async fn a_rotated_secret_signs_beside_the_old_one_during_the_grace_period() {
    let Some(l) = setup("").await else { return };
    let _pc = Device::connect(&l.hub, "PC-01", &["CORP\\alice"]).await;
    let integration = l.integration["id"].as_str().unwrap();
    let (status, rotated) = send(
        &l.hub,
        reqwest::Method::POST,
        &format!("/api/v1/integrations/{integration}/rotate-secret"),
        json!({"grace_secs": 3600}),
    )
    .await;
    assert_eq!(status, 200, "{rotated}");
    let new = rotated["signing_secret"].as_str().unwrap();
    assert_ne!(new, l.secret);
    assert!(rotated["previous_secret_until"].is_string());
    let task = l.create(l.task("REQ-12", "k-12", &["CORP\\alice"])).await;
    let id = task["id"].as_str().unwrap();
    // The helpdesk still verifies with its old secret…
    let got = l
        .helpdesk
        .wait_accepted(LIMIT, "a callback after the rotation", |r| {
            !statuses(r, id).is_empty()
        })
        .await;
    let r = &got[0];
    let signatures = r["signature"].as_str().unwrap();
    assert_eq!(signatures.split(' ').count(), 2, "{signatures}");
    // …and the new secret verifies the same header.
    let new_key = ferry_hub::webhooks::secret_key(new).unwrap();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    ferry_hub::webhooks::verify(
        &[&new_key],
        r["id"].as_str().unwrap(),
        r["timestamp"].as_str().unwrap(),
        signatures,
        r["raw"].as_str().unwrap().as_bytes(),
        now,
    )
    .unwrap();
    // The secrets are never shown again.
    let listed = get(&l.hub, "/api/v1/integrations").await;
    assert!(!listed.to_string().contains("whsec_"));
}

#[tokio::test]
async fn the_catalogue_answers_304_when_nothing_changed_and_lists_the_directory() {
    let Some(l) = setup("").await else { return };
    let _a = Device::connect(&l.hub, "PC-01", &["CORP\\alice"]).await;
    let _b = Device::connect(&l.hub, "PC-02", &["CORP\\alice", "CORP\\dave"]).await;
    let r = l
        .hub
        .admin(reqwest::Method::GET, "/api/v1/catalog/scripts")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let etag = r.headers()["etag"].to_str().unwrap().to_owned();
    let scripts: Value = r.json().await.unwrap();
    assert_eq!(scripts[0]["name"], "Greet");
    let again = l
        .hub
        .admin(reqwest::Method::GET, "/api/v1/catalog/scripts")
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
    assert!(again.text().await.unwrap().is_empty());
    let domains = get(&l.hub, "/api/v1/catalog/domains").await;
    assert_eq!(
        domains,
        json!([{"name": "CORP", "workstations": 2, "users": 2}])
    );
    let users = get(&l.hub, "/api/v1/catalog/users?domain=corp&q=ali").await;
    assert_eq!(
        users["items"],
        json!([{"user": "CORP\\alice", "workstations": ["PC-01", "PC-02"]}])
    );
    let page = get(&l.hub, "/api/v1/catalog/workstations?domain=CORP&limit=1").await;
    assert_eq!(page["items"][0]["hostname"], "PC-01");
    assert_eq!(page["items"][0]["online"], true);
    assert_eq!(page["next_offset"], 1);
    // A search for LIKE's wildcards matches them literally.
    let none = get(&l.hub, "/api/v1/catalog/workstations?q=%25").await;
    assert_eq!(none["items"], json!([]));
}

#[tokio::test]
async fn redirects_are_not_followed_and_the_attempt_is_retried() {
    let Some(l) = setup("").await else { return };
    let _pc = Device::connect(&l.hub, "PC-01", &["CORP\\alice"]).await;
    l.helpdesk.answer_with(302, None).await;
    let task = l.create(l.task("REQ-13", "k-13", &["CORP\\alice"])).await;
    let id = task["id"].as_str().unwrap().to_owned();
    wait_until(|| async {
        let d = get(&l.hub, &format!("/api/v1/tasks/{id}/deliveries")).await;
        d[0]["attempts"].as_array().is_some_and(|a| a.len() >= 2)
    })
    .await;
    let d = get(&l.hub, &format!("/api/v1/tasks/{id}/deliveries")).await;
    assert_eq!(d[0]["attempts"][0]["status_code"], 302);
    assert_eq!(d[0]["state"], "pending");
    l.helpdesk.answer_with(204, None).await;
    l.helpdesk
        .wait_accepted(LIMIT, "the change once redirects stop", |r| {
            !statuses(r, &id).is_empty()
        })
        .await;
}

#[tokio::test]
async fn a_failed_delivery_can_be_redelivered_with_the_same_webhook_id() {
    let Some(l) = setup("callback_retry_secs = [1]").await else {
        return;
    };
    let _pc = Device::connect(&l.hub, "PC-01", &["CORP\\alice"]).await;
    l.helpdesk.answer_with(500, None).await;
    let task = l.create(l.task("REQ-14", "k-14", &["CORP\\alice"])).await;
    let id = task["id"].as_str().unwrap().to_owned();
    wait_until(|| async {
        get(&l.hub, &format!("/api/v1/tasks/{id}/deliveries")).await[0]["state"] == "failed"
    })
    .await;
    l.helpdesk.answer_with(204, None).await;
    let d = get(&l.hub, &format!("/api/v1/tasks/{id}/deliveries")).await;
    let delivery = d[0]["id"].as_str().unwrap().to_owned();
    let (status, _) = send(
        &l.hub,
        reqwest::Method::POST,
        &format!("/api/v1/tasks/{id}/deliveries/{delivery}/redeliver"),
        json!({}),
    )
    .await;
    assert_eq!(status, 202);
    let got = l
        .helpdesk
        .wait_accepted(LIMIT, "the redelivery", |r| !statuses(r, &id).is_empty())
        .await;
    assert_eq!(got[0]["id"], delivery);
}

#[tokio::test]
async fn a_callback_to_a_private_address_is_refused_unless_the_integration_allows_it() {
    let hub = TestHub::start("").await;
    let (status, integration) = send(
        &hub,
        reqwest::Method::POST,
        "/api/v1/integrations",
        json!({"name": "strict", "callback_prefixes": ["https://127.0.0.1:8443/cb/"]}),
    )
    .await;
    assert_eq!(status, 201, "{integration}");
    let secret = hub.enrollment_secret().await;
    let r = hub
        .http
        .post(format!("{}/api/v1/agent/enroll", hub.url))
        .json(&json!({"secret": secret, "inventory": inventory("PC-01", &[])}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let (status, script) = send(
        &hub,
        reqwest::Method::POST,
        "/api/v1/scripts",
        json!({"name": "noop", "content": "true"}),
    )
    .await;
    assert_eq!(status, 201);
    let (status, err) = send(
        &hub,
        reqwest::Method::POST,
        "/api/v1/tasks",
        json!({"request_ref": "R", "idempotency_key": "k", "integration_id": integration["id"],
               "action": "run_script", "script_id": script["id"],
               "targets": {"workstations": ["PC-01"]},
               "callback_url": "https://127.0.0.1:8443/cb/R"}),
    )
    .await;
    assert_eq!(status, 422);
    assert_eq!(
        (err["code"].as_str(), err["field"].as_str()),
        (Some("callback_not_allowed"), Some("callback_url")),
        "{err}"
    );
    // Plain HTTP prefixes need allow_http.
    let (status, err) = send(
        &hub,
        reqwest::Method::POST,
        "/api/v1/integrations",
        json!({"name": "plain", "callback_prefixes": ["http://helpdesk.example/cb/"]}),
    )
    .await;
    assert_eq!(
        (status, err["field"].as_str()),
        (422, Some("callback_prefixes[0]"))
    );
}

#[tokio::test]
async fn callbacks_reach_a_helpdesk_served_with_a_private_ca_given_to_its_integration() {
    let Some(py) = python() else { return };
    let hub = TestHub::start(FAST_RETRIES).await;
    let dir = hub.dir.path().join("pki");
    std::fs::create_dir_all(&dir).unwrap();
    let (ca_pem, cert, key) = private_ca(&dir);
    let port = free_port();
    let mk = |name: &str, ca: Option<&str>| {
        let mut body = json!({"name": name,
            "callback_prefixes": [format!("https://localhost:{port}/cb/")],
            "allow_private": true});
        if let Some(ca) = ca {
            body["ca_pem"] = json!(ca);
        }
        body
    };
    let (status, with_ca) = send(
        &hub,
        reqwest::Method::POST,
        "/api/v1/integrations",
        mk("with-ca", Some(&ca_pem)),
    )
    .await;
    assert_eq!(status, 201, "{with_ca}");
    let (_, without) = send(
        &hub,
        reqwest::Method::POST,
        "/api/v1/integrations",
        mk("without-ca", None),
    )
    .await;
    let (status, _) = send(
        &hub,
        reqwest::Method::POST,
        "/api/v1/integrations",
        mk("bad-ca", Some("not a pem")),
    )
    .await;
    assert_eq!(status, 422);
    let mut helpdesk = FakeHelpdesk::start(
        &py,
        &hub.dir.path().join("helpdesk"),
        &[with_ca["signing_secret"].as_str().unwrap()],
        Some((cert, key)),
    )
    .await;
    if helpdesk.port != port {
        helpdesk.port = port;
        helpdesk.restart().await;
    }
    let secret = hub.enrollment_secret().await;
    hub.http
        .post(format!("{}/api/v1/agent/enroll", hub.url))
        .json(&json!({"secret": secret, "inventory": inventory("PC-01", &[])}))
        .send()
        .await
        .unwrap();
    let (_, script) = send(
        &hub,
        reqwest::Method::POST,
        "/api/v1/scripts",
        json!({"name": "noop", "content": "true"}),
    )
    .await;
    let task = |integration: &Value, key: &str| {
        json!({"request_ref": key, "idempotency_key": key, "integration_id": integration["id"],
               "action": "run_script", "script_id": script["id"],
               "targets": {"workstations": ["PC-01"]},
               "callback_url": format!("https://localhost:{port}/cb/{key}")})
    };
    let (_, trusted) = send(
        &hub,
        reqwest::Method::POST,
        "/api/v1/tasks",
        task(&with_ca, "a"),
    )
    .await;
    let (_, untrusted) = send(
        &hub,
        reqwest::Method::POST,
        "/api/v1/tasks",
        task(&without, "b"),
    )
    .await;
    let id = trusted["id"].as_str().unwrap().to_owned();
    helpdesk
        .wait_accepted(LIMIT, "a callback over HTTPS", |r| {
            !statuses(r, &id).is_empty()
        })
        .await;
    let other = untrusted["id"].as_str().unwrap().to_owned();
    wait_until(|| async {
        let d = get(&hub, &format!("/api/v1/tasks/{other}/deliveries")).await;
        d[0]["attempts"].as_array().is_some_and(|a| !a.is_empty())
    })
    .await;
    let d = get(&hub, &format!("/api/v1/tasks/{other}/deliveries")).await;
    assert!(d[0]["attempts"][0]["status_code"].is_null(), "{d}");
    assert!(statuses(&helpdesk.accepted(), &other).is_empty());
}

/// A CA and a `localhost` certificate it signed: (CA PEM, cert path, key path).
fn private_ca(dir: &std::path::Path) -> (String, std::path::PathBuf, std::path::PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let cert = params.signed_by(&key, &issuer).unwrap();
    let (cert_path, key_path) = (dir.join("helpdesk.pem"), dir.join("helpdesk.key"));
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    (ca.pem(), cert_path, key_path)
}

#[tokio::test]
async fn an_agent_killed_during_a_tasks_script_ends_the_task_failed_and_the_helpdesk_is_told() {
    let Some(l) = setup("").await else { return };
    let mut agent = l.hub.enroll_agent("pc-kill", |_| {}).await;
    agent.start();
    l.hub.wait_online(agent.device, true).await;
    let started = agent.path("started");
    let (status, script) = send(
        &l.hub,
        reqwest::Method::POST,
        "/api/v1/scripts",
        json!({"name": "Long", "content": "echo $$ > \"$1.tmp\"; mv \"$1.tmp\" \"$1\"; sleep 60",
               "parameters": [{"name": "Marker", "required": true}]}),
    )
    .await;
    assert_eq!(status, 201);
    let task = l
        .create(json!({
            "request_ref": "REQ-20", "idempotency_key": "k-20",
            "integration_id": l.integration["id"], "action": "run_script",
            "script_id": script["id"], "arguments": {"Marker": started.to_str().unwrap()},
            "targets": {"workstations": ["pc-kill"]},
            "callback_url": format!("{}/cb/REQ-20", l.helpdesk.base()),
        }))
        .await;
    let id = task["id"].as_str().unwrap().to_owned();
    let begun = std::time::Instant::now();
    while !started.exists() {
        assert!(
            begun.elapsed() < LIMIT,
            "the script never started: {}",
            agent.log()
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    wait_status(&l.hub, &id, "in_progress").await;
    agent.kill9();
    agent.start();
    let got = l
        .helpdesk
        .wait_accepted(LIMIT, "the task fail", |r| {
            statuses(r, &id).last().is_some_and(|s| s == "failed")
        })
        .await;
    let last = &got.last().unwrap()["body"]["data"];
    assert!(
        last["reason"]
            .as_str()
            .unwrap()
            .contains("stopped while this operation was running"),
        "{last}"
    );
    assert_eq!(last["failures"][0]["hostname"], "pc-kill");
}

#[tokio::test]
async fn notification_rules_mail_failures_through_starttls_and_post_every_change_signed() {
    let Some(py) = python() else { return };
    let pki = tempfile::tempdir().unwrap();
    let (ca_pem, cert, key) = private_ca(pki.path());
    let ca_path = pki.path().join("ca.pem");
    std::fs::write(&ca_path, &ca_pem).unwrap();
    let password = "smtp-Pa55word-never-shown";
    let smtp = common::helpdesk::SmtpServer::start(
        &py,
        &pki.path().join("smtp"),
        &cert,
        &key,
        "ferry",
        password,
    )
    .await;
    let password_file = pki.path().join("smtp.password");
    std::fs::write(&password_file, format!("{password}\n")).unwrap();
    let hub = TestHub::start(&format!(
        "{FAST_RETRIES}\nsmtp_server = \"localhost\"\nsmtp_port = {}\nsmtp_security = \"starttls\"\n\
         smtp_username = \"ferry\"\nsmtp_password_file = \"{}\"\nsmtp_from = \"ferry@example.org\"\n\
         smtp_ca_cert = \"{}\"\n",
        smtp.port,
        password_file.display(),
        ca_path.display()
    ))
    .await;
    let me: Value = get(&hub, "/api/v1/me").await;
    let me = me["technician"]["id"].as_str().unwrap().to_owned();
    let rules = format!("/api/v1/technicians/{me}/notifications");
    let (status, mail_rule) = send(
        &hub,
        reqwest::Method::POST,
        &rules,
        json!({"channel": "email", "target": "tech@example.org", "on": "failures"}),
    )
    .await;
    assert_eq!(status, 201, "{mail_rule}");
    assert!(mail_rule.get("signing_secret").is_none());
    let port = free_port();
    let (status, hook_rule) = send(
        &hub,
        reqwest::Method::POST,
        &rules,
        json!({"channel": "webhook", "target": format!("http://127.0.0.1:{port}/cb/notify"),
               "allow_http": true, "allow_private": true}),
    )
    .await;
    assert_eq!(status, 201, "{hook_rule}");
    let secret = hook_rule["signing_secret"].as_str().unwrap();
    let mut hook = FakeHelpdesk::start(&py, &hub.dir.path().join("hook"), &[secret], None).await;
    if hook.port != port {
        hook.port = port;
        hook.restart().await;
    }
    let (status, script) = send(
        &hub,
        reqwest::Method::POST,
        "/api/v1/scripts",
        json!({"name": "noop", "content": "true"}),
    )
    .await;
    assert_eq!(status, 201);
    let mut pc = Device::connect(&hub, "PC-01", &["CORP\\alice"]).await;
    let (status, task) = send(
        &hub,
        reqwest::Method::POST,
        "/api/v1/tasks",
        json!({"request_ref": "REQ-30", "idempotency_key": "k-30", "action": "run_script",
               "script_id": script["id"], "targets": {"users": ["CORP\\alice"]}}),
    )
    .await;
    assert_eq!(status, 201, "{task}");
    let id = task["id"].as_str().unwrap().to_owned();
    let op = pc.operation().await;
    pc.start(&op).await;
    wait_status(&hub, &id, "in_progress").await;
    pc.finish(
        &op,
        json!({"state": "failed", "exit_code": 5, "error": "access denied"}),
    )
    .await;
    // Every change by webhook, verified with the rule's own secret.
    let got = hook
        .wait_accepted(LIMIT, "every change", |r| {
            statuses(r, &id).last().is_some_and(|s| s == "failed")
        })
        .await;
    assert_eq!(statuses(&got, &id), ["queued", "in_progress", "failed"]);
    // The failure, and only it, by e-mail, after STARTTLS and AUTH.
    let started = std::time::Instant::now();
    while smtp.messages().is_empty() {
        assert!(
            started.elapsed() < LIMIT,
            "no e-mail arrived: {}",
            hub.log()
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let mails = smtp.messages();
    assert_eq!(mails.len(), 1, "{mails:#?}");
    let mail = &mails[0];
    assert!(mail.contains("X-Envelope-To: tech@example.org"), "{mail}");
    assert!(
        mail.contains("Subject: [Ferry] REQ-30: task failed"),
        "{mail}"
    );
    assert!(mail.contains("access denied"), "{mail}");
    assert!(smtp.auth_log().contains("ok"), "{}", smtp.auth_log());
    for text in [mail.as_str(), &hub.log()] {
        assert!(!text.contains(password), "the SMTP password leaked");
        assert!(!text.contains(secret), "a signing secret leaked");
    }
    // Rules are listed without their secrets and can be removed.
    let listed = get(&hub, &rules).await;
    assert_eq!(listed.as_array().unwrap().len(), 2);
    assert!(!listed.to_string().contains("whsec_"));
    let r = hub
        .admin(
            reqwest::Method::DELETE,
            &format!("{rules}/{}", mail_rule["id"].as_str().unwrap()),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
}

#[tokio::test]
async fn only_administrators_may_point_notifications_at_internal_addresses() {
    let hub = TestHub::start("").await;
    let (status, created) = send(
        &hub,
        reqwest::Method::POST,
        "/api/v1/technicians",
        json!({"name": "olga", "role": "operator"}),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let olga = created["id"].as_str().unwrap().to_owned();
    let (status, key) = send(
        &hub,
        reqwest::Method::POST,
        &format!("/api/v1/technicians/{olga}/keys"),
        json!({"name": "k"}),
    )
    .await;
    assert_eq!(status, 201, "{key}");
    let as_olga = |body: Value| {
        hub.http
            .post(format!(
                "{}/api/v1/technicians/{olga}/notifications",
                hub.url
            ))
            .bearer_auth(key["token"].as_str().unwrap())
            .json(&body)
            .send()
    };
    let r = as_olga(
        json!({"channel": "webhook", "target": "https://10.0.0.5/hook", "allow_private": true}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 403);
    let r = as_olga(json!({"channel": "webhook", "target": "https://10.0.0.5/hook"}))
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let r = as_olga(json!({"channel": "email", "target": "olga@example.org"}))
        .await
        .unwrap();
    assert_eq!(r.status(), 422, "no SMTP server is configured");
    let r = as_olga(json!({"channel": "webhook", "target": "https://helpdesk.example.com/hook"}))
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
}

#[tokio::test]
async fn a_forced_reboot_or_shutdown_follows_the_action_on_the_device() {
    let Some(l) = setup("").await else { return };
    // The harness's restart command writes `restarted` in the agent's folder; shutdown likewise.
    let marker = l.hub.dir.path().join("agent-pc-power").join("shutdown");
    let mut agent = l
        .hub
        .enroll_agent("pc-power", |c| {
            c.exec.shutdown_command = vec![
                "sh".into(),
                "-c".into(),
                format!("echo shutdown >> '{}'", marker.display()),
            ];
        })
        .await;
    agent.start();
    l.hub.wait_online(agent.device, true).await;
    for (policy, marker, request) in [
        ("force_reboot", "restarted", "REQ-50"),
        ("force_shutdown", "shutdown", "REQ-51"),
    ] {
        let task = l
            .create(json!({
                "request_ref": request, "idempotency_key": request,
                "integration_id": l.integration["id"], "action": "run_script",
                "script_id": l.script, "arguments": {"Name": "x"},
                "deployment": {"reboot": policy},
                "targets": {"workstations": ["pc-power"]},
                "callback_url": format!("{}/cb/{request}", l.helpdesk.base()),
            }))
            .await;
        let id = task["id"].as_str().unwrap().to_owned();
        wait_status(&l.hub, &id, "succeeded").await;
        let file = agent.path(marker);
        assert!(file.exists(), "no {marker} after {policy}: {}", agent.log());
        let shown = get(&l.hub, &format!("/api/v1/tasks/{id}")).await;
        assert_eq!(shown["status"], "succeeded");
    }
}

/// The per-device result of a task's operation on its one device.
async fn task_result(hub: &TestHub, task: &str) -> Value {
    let shown = get(hub, &format!("/api/v1/tasks/{task}")).await;
    let op = shown["op_id"].as_str().expect("the task has an operation");
    get(hub, &format!("/api/v1/ops/{op}/results")).await[0].clone()
}

/// Waits until the agent's journal entry for the task's operation holds `needle`.
async fn wait_journal(hub: &TestHub, agent: &common::agents::TestAgent, task: &str, needle: &str) {
    let shown = get(hub, &format!("/api/v1/tasks/{task}")).await;
    let op = shown["op_id"].as_str().unwrap().to_owned();
    let file = agent.path("journal").join(format!("{op}.json"));
    wait_until(|| {
        let file = file.clone();
        async move { std::fs::read_to_string(&file).is_ok_and(|t| t.contains(needle)) }
    })
    .await;
}

#[tokio::test]
async fn a_startup_task_waits_for_a_new_boot_not_a_restart_of_the_agent() {
    let Some(l) = setup("").await else { return };
    let boot = l.hub.dir.path().join("agent-pc-boot").join("boot_id");
    let mut agent = l
        .hub
        .enroll_agent("pc-boot", |c| {
            c.exec.boot_id_file = Some(boot.clone());
        })
        .await;
    std::fs::write(&boot, "boot-1\n").unwrap();
    agent.start();
    l.hub.wait_online(agent.device, true).await;
    let task = l
        .create(json!({
            "request_ref": "REQ-60", "idempotency_key": "REQ-60",
            "integration_id": l.integration["id"], "action": "run_script",
            "script_id": l.script, "arguments": {"Name": "boot"},
            "deployment": {"for": "workstation", "when": "during_startup"},
            "targets": {"workstations": ["pc-boot"]},
            "callback_url": format!("{}/cb/REQ-60", l.helpdesk.base()),
        }))
        .await;
    let id = task["id"].as_str().unwrap().to_owned();
    // Received and waiting: the hub shows it delivered, the journal holds the boot.
    wait_journal(&l.hub, &agent, &id, "boot-1").await;
    wait_until(|| async { task_result(&l.hub, &id).await["state"] == "delivered" }).await;
    // A restart of the agent alone is not a startup: the new process waits again…
    agent.kill9();
    agent.start();
    wait_until(|| async { agent.log().matches("waiting for its moment").count() == 2 }).await;
    // …and so does it across a restart of the hub, still showing the target delivered (not
    // running, which would give it only its timeout).
    let mut l = l;
    l.hub.restart().await;
    wait_until(|| async { agent.log().contains("sent again while in hand") }).await;
    assert!(agent.log().contains("\"started\":false"), "{}", agent.log());
    assert!(!agent.log().contains("\"started\":true"), "{}", agent.log());
    assert_eq!(task_result(&l.hub, &id).await["state"], "delivered");
    // …a new boot is.
    agent.kill9();
    std::fs::write(&boot, "boot-2\n").unwrap();
    agent.start();
    wait_status(&l.hub, &id, "succeeded").await;
    let result = task_result(&l.hub, &id).await;
    let output = result["output"].as_str().unwrap();
    assert!(
        output.contains("ran during_startup (boot boot-2)"),
        "{output}"
    );
    assert!(output.contains("hello boot"), "{output}");
}

#[tokio::test]
async fn a_logon_task_runs_at_the_targeted_users_next_logon_even_one_made_while_the_agent_was_stopped()
 {
    let Some(l) = setup("").await else { return };
    let users = l.hub.dir.path().join("agent-pc-logon").join("users");
    let mut agent = l
        .hub
        .enroll_agent("pc-logon", |c| {
            c.exec.users_command = vec!["cat".into(), users.display().to_string()];
            c.exec.logon_poll_secs = 1;
            c.exec.after_delay_secs = 1;
        })
        .await;
    std::fs::write(&users, "CORP\\ann\n").unwrap();
    agent.start();
    l.hub.wait_online(agent.device, true).await;
    // Ann is reported logged on to pc-logon (once the hub has stored the inventory), so a
    // task for her reaches it.
    let device = agent.device;
    wait_until(|| async {
        let d = get(&l.hub, &format!("/api/v1/devices/{device}")).await;
        d.to_string().contains("CORP\\\\ann")
    })
    .await;
    let mut body = l.task("REQ-61", "REQ-61", &["ann"]);
    body["arguments"] = json!({"Name": "ann"});
    body["deployment"] = json!({"domain": "CORP", "for": "user", "when": "after_login"});
    let task = l.create(body).await;
    let id = task["id"].as_str().unwrap().to_owned();
    wait_journal(&l.hub, &agent, &id, "CORP\\\\ann").await;
    // Ann logs off; the agent sees it…
    std::fs::write(&users, "").unwrap();
    wait_journal(&l.hub, &agent, &id, "\"users\":[]").await;
    // …then, while the agent is stopped, Bob (not targeted) and Ann log on.
    agent.kill9();
    std::fs::write(&users, "CORP\\bob\nCORP\\ann\n").unwrap();
    agent.start();
    wait_status(&l.hub, &id, "succeeded").await;
    let output = task_result(&l.hub, &id).await["output"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(output.contains("ran after_logon of CORP\\ann"), "{output}");
    assert!(!output.contains("bob"), "{output}");
    assert!(output.contains("hello ann"), "{output}");
}

#[tokio::test]
async fn a_user_deployment_at_startup_or_a_workstation_one_at_logon_is_refused() {
    let Some(l) = setup("").await else { return };
    for (deploy_for, when) in [("user", "during_startup"), ("workstation", "after_login")] {
        let mut body = l.task("REQ-62", &format!("k-{when}"), &["CORP\\nobody"]);
        body["deployment"] = json!({"for": deploy_for, "when": when});
        let (status, err) = send(&l.hub, reqwest::Method::POST, "/api/v1/tasks", body).await;
        assert_eq!(status, 422, "{err}");
        assert_eq!(err["field"], "deployment.when", "{err}");
    }
    let tasks = get(&l.hub, "/api/v1/tasks").await;
    assert_eq!(tasks.as_array().map(Vec::len), Some(0), "{tasks}");
}

#[tokio::test]
async fn an_install_copied_from_a_network_share_runs_the_shares_files_not_the_hubs() {
    let Some(l) = setup("").await else { return };
    let share = l.hub.dir.path().join("fileserver");
    let marker = l.hub.dir.path().join("installed-from");
    std::fs::create_dir_all(share.join("Apps").join("Tool")).unwrap();
    std::fs::write(
        share.join("Apps").join("Tool").join("install.sh"),
        format!("echo share > '{}'\n", marker.display()),
    )
    .unwrap();
    let package = l
        .hub
        .script_package(
            "install.sh",
            &format!("echo hub > '{}'\n", marker.display()),
            "sh install.sh",
        )
        .await;
    let mut agent = l
        .hub
        .enroll_agent("pc-share", |c| {
            c.exec
                .share_mounts
                .insert(r"\\FS01\Sources$".into(), share.clone());
        })
        .await;
    agent.start();
    l.hub.wait_online(agent.device, true).await;
    let body = |unc: &str, key: &str| {
        json!({
            "request_ref": "REQ-70", "idempotency_key": key,
            "integration_id": l.integration["id"], "action": "install",
            "package_id": package,
            "package_settings": {"copy_from_share": unc},
            "targets": {"workstations": ["pc-share"]},
            "callback_url": format!("{}/cb/REQ-70", l.helpdesk.base()),
        })
    };
    // A path that climbs out of its share is refused before anything is created.
    let (status, err) = send(
        &l.hub,
        reqwest::Method::POST,
        "/api/v1/tasks",
        body(r"\\fs01\Sources$\..\C$", "k-70-bad"),
    )
    .await;
    assert_eq!(status, 422, "{err}");
    assert_eq!(err["field"], "package_settings.copy_from_share");
    let task = l.create(body(r"\\fs01\Sources$\Apps\Tool", "k-70")).await;
    let id = task["id"].as_str().unwrap().to_owned();
    wait_status(&l.hub, &id, "succeeded").await;
    assert_eq!(std::fs::read_to_string(&marker).unwrap().trim(), "share");
}

#[tokio::test]
async fn concurrent_creations_with_one_key_make_one_task_and_each_other_reaches_its_connected_device()
 {
    let Some(l) = setup("").await else { return };
    let mut agent = l.hub.enroll_agent("pc-group", |_| {}).await;
    agent.start();
    l.hub.wait_online(agent.device, true).await;
    let body = |key: &str| {
        json!({
            "request_ref": format!("REQ-{key}"), "idempotency_key": key,
            "integration_id": l.integration["id"], "action": "run_script",
            "script_id": l.script, "arguments": {"Name": key},
            "targets": {"workstations": ["pc-group"]},
        })
    };
    // The same key twelve times at once: one task, created once.
    let same = futures_util::future::join_all(
        (0..12).map(|_| send(&l.hub, reqwest::Method::POST, "/api/v1/tasks", body("same"))),
    )
    .await;
    let ids: std::collections::BTreeSet<String> = same
        .iter()
        .map(|(_, t)| t["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 1, "{same:?}");
    assert_eq!(
        same.iter().filter(|(s, _)| *s == 201).count(),
        1,
        "{same:?}"
    );
    // Twelve different ones at once: each handed to the connected agent and run.
    let many = futures_util::future::join_all((0..12).map(|i| {
        send(
            &l.hub,
            reqwest::Method::POST,
            "/api/v1/tasks",
            body(&format!("k{i}")),
        )
    }))
    .await;
    for (status, task) in &many {
        assert_eq!(*status, 201, "{task}");
        wait_status(&l.hub, task["id"].as_str().unwrap(), "succeeded").await;
    }
}
