//! Technicians, roles, personal API keys, portal sessions and the audit log that names them,
//! against a real `ferry serve`: who may do what, how credentials end, how logins are
//! throttled, and that no secret reaches the hub's log.

mod common;

use std::time::{Duration, Instant};

use common::TestHub;
use reqwest::Method;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use uuid::Uuid;

/// A password long enough for the hub (at least 12 characters).
const PASSWORD: &str = "correct horse battery staple";

struct Answer {
    status: u16,
    headers: HeaderMap,
    body: Value,
}

async fn send(r: reqwest::RequestBuilder) -> Answer {
    let r = r.send().await.unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let text = r.text().await.unwrap();
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    Answer {
        status,
        headers,
        body,
    }
}

/// A request with `token` as the bearer API key.
fn with_key(hub: &TestHub, token: &str, method: Method, path: &str) -> reqwest::RequestBuilder {
    hub.http
        .request(method, format!("{}{path}", hub.url))
        .bearer_auth(token)
}

/// A request carrying only the session cookie (no CSRF header).
fn with_cookie(hub: &TestHub, cookie: &str, method: Method, path: &str) -> reqwest::RequestBuilder {
    hub.http
        .request(method, format!("{}{path}", hub.url))
        .header("cookie", format!("__Host-ferry_session={cookie}"))
}

/// A logged-in browser: the cookie's value and the session's CSRF token.
struct Session {
    cookie: String,
    csrf: String,
}

impl Session {
    /// A cookie-authenticated request that changes something, with its CSRF header.
    fn change(&self, hub: &TestHub, method: Method, path: &str) -> reqwest::RequestBuilder {
        with_cookie(hub, &self.cookie, method, path).header("x-csrf-token", &self.csrf)
    }
}

/// Creates a technician as the initial admin; returns its id.
async fn create_technician(
    hub: &TestHub,
    name: &str,
    role: &str,
    password: Option<&str>,
) -> String {
    let mut body = json!({ "name": name, "role": role });
    if let Some(p) = password {
        body["password"] = json!(p);
    }
    let a = send(hub.admin(Method::POST, "/api/v1/technicians").json(&body)).await;
    assert_eq!(a.status, 201, "{}", a.body);
    assert_eq!(a.body["name"], name);
    assert_eq!(a.body["role"], role);
    assert_eq!(a.body["has_password"], password.is_some());
    a.body["id"].as_str().unwrap().to_owned()
}

/// Creates an API key for `technician` as the initial admin; returns (key id, token).
async fn create_key(hub: &TestHub, technician: &str, name: &str) -> (String, String) {
    let a = send(
        hub.admin(
            Method::POST,
            &format!("/api/v1/technicians/{technician}/keys"),
        )
        .json(&json!({ "name": name })),
    )
    .await;
    assert_eq!(a.status, 201, "{}", a.body);
    let token = a.body["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("fk_"), "{token}");
    (a.body["key"]["id"].as_str().unwrap().to_owned(), token)
}

/// A technician with a key, created by the initial admin; returns (id, token).
async fn technician_with_key(hub: &TestHub, name: &str, role: &str) -> (String, String) {
    let id = create_technician(hub, name, role, Some(PASSWORD)).await;
    let (_, token) = create_key(hub, &id, "test").await;
    (id, token)
}

/// The value of the session cookie a response sets, if any.
fn session_cookie_value(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix("__Host-ferry_session="))
        .map(|rest| rest.split(';').next().unwrap_or("").to_owned())
}

async fn login_answer(hub: &TestHub, name: &str, password: &str) -> Answer {
    send(
        hub.http
            .post(format!("{}/api/v1/login", hub.url))
            .json(&json!({ "name": name, "password": password })),
    )
    .await
}

async fn login(hub: &TestHub, name: &str, password: &str) -> Session {
    let a = login_answer(hub, name, password).await;
    assert_eq!(a.status, 200, "{}", a.body);
    Session {
        cookie: session_cookie_value(&a.headers).expect("a session cookie"),
        csrf: a.body["csrf_token"].as_str().unwrap().to_owned(),
    }
}

async fn me_status_with_key(hub: &TestHub, token: &str) -> u16 {
    send(with_key(hub, token, Method::GET, "/api/v1/me"))
        .await
        .status
}

async fn me_status_with_cookie(hub: &TestHub, cookie: &str) -> u16 {
    send(with_cookie(hub, cookie, Method::GET, "/api/v1/me"))
        .await
        .status
}

async fn connector_names(hub: &TestHub) -> Vec<String> {
    let a = send(hub.admin(Method::GET, "/api/v1/connectors")).await;
    assert_eq!(a.status, 200, "{}", a.body);
    a.body
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn initial_admin_key_from_admin_token_file_is_the_admin_technician() {
    let hub = TestHub::start("").await;
    assert!(hub.token.starts_with("fk_"), "{}", hub.token);
    let a = send(hub.admin(Method::GET, "/api/v1/me")).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["technician"]["name"], "admin");
    assert_eq!(a.body["technician"]["role"], "admin");
    assert_eq!(a.body["technician"]["enabled"], true);
    assert_eq!(a.body["via"]["kind"], "api_key");
    assert!(a.body.get("csrf_token").is_none(), "{}", a.body);
}

#[tokio::test]
async fn each_role_may_do_what_it_allows_and_gets_403_beyond_it() {
    let hub = TestHub::start("").await;
    let (_, guest) = technician_with_key(&hub, "gina", "guest").await;
    let (_, operator) = technician_with_key(&hub, "otto", "operator").await;
    let (_, admin) = technician_with_key(&hub, "ada", "admin").await;
    let new_connector = json!({ "name": "site-a" });

    // A guest reads, changes nothing.
    let a = send(with_key(&hub, &guest, Method::GET, "/api/v1/connectors")).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let a =
        send(with_key(&hub, &guest, Method::POST, "/api/v1/connectors").json(&new_connector)).await;
    assert_eq!(a.status, 403, "{}", a.body);
    assert_eq!(a.body["code"], "forbidden");
    let job = serde_json::to_value(common::diagnostics_job(Uuid::new_v4())).unwrap();
    let a = send(with_key(&hub, &guest, Method::POST, "/api/v1/jobs").json(&job)).await;
    assert_eq!(a.status, 403, "{}", a.body);

    // An operator queues jobs (this one names no connector, so it is refused on its merits,
    // not for the role) but does not register connectors.
    let a =
        send(with_key(&hub, &operator, Method::POST, "/api/v1/connectors").json(&new_connector))
            .await;
    assert_eq!(a.status, 403, "{}", a.body);
    let a = send(with_key(&hub, &operator, Method::POST, "/api/v1/jobs").json(&job)).await;
    assert_eq!(a.status, 400, "{}", a.body);
    assert_eq!(a.body["code"], "unknown_connector");

    // Only administrators list technicians.
    for token in [&guest, &operator] {
        let a = send(with_key(&hub, token, Method::GET, "/api/v1/technicians")).await;
        assert_eq!(a.status, 403, "{}", a.body);
    }
    assert!(connector_names(&hub).await.is_empty());

    // An administrator created by the admin may do both.
    let a = send(with_key(&hub, &admin, Method::GET, "/api/v1/technicians")).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let names: Vec<&str> = a
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    for n in ["admin", "gina", "otto", "ada"] {
        assert!(names.contains(&n), "{names:?}");
    }
    let a =
        send(with_key(&hub, &admin, Method::POST, "/api/v1/connectors").json(&new_connector)).await;
    assert_eq!(a.status, 201, "{}", a.body);
}

#[tokio::test]
async fn regenerated_key_replaces_the_old_token_at_once_and_revoked_key_stops_working() {
    let hub = TestHub::start("").await;
    let id = create_technician(&hub, "otto", "operator", None).await;
    let (key, old) = create_key(&hub, &id, "laptop").await;
    assert_eq!(
        me_status_with_key(&hub, &old).await,
        200,
        "works (and is now cached)"
    );

    let a = send(hub.admin(
        Method::POST,
        &format!("/api/v1/technicians/{id}/keys/{key}/regenerate"),
    ))
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(
        a.body["key"]["id"],
        key.as_str(),
        "the same key, a new secret"
    );
    let new = a.body["token"].as_str().unwrap().to_owned();
    assert_ne!(new, old);
    assert_eq!(me_status_with_key(&hub, &old).await, 401);
    assert_eq!(me_status_with_key(&hub, &new).await, 200);

    let a = send(hub.admin(
        Method::POST,
        &format!("/api/v1/technicians/{id}/keys/{key}/revoke"),
    ))
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(a.body["revoked_at"].is_string(), "{}", a.body);
    let a = send(with_key(&hub, &new, Method::GET, "/api/v1/me")).await;
    assert_eq!(a.status, 401, "{}", a.body);
    assert_eq!(a.body["code"], "unauthorized");
    assert!(a.headers.contains_key("www-authenticate"));
    assert_eq!(me_status_with_key(&hub, &old).await, 401);
}

#[tokio::test]
async fn disabled_technician_loses_its_keys_and_session_at_once() {
    let hub = TestHub::start("").await;
    let (id, token) = technician_with_key(&hub, "otto", "operator").await;
    let session = login(&hub, "otto", PASSWORD).await;
    assert_eq!(me_status_with_key(&hub, &token).await, 200);
    assert_eq!(me_status_with_cookie(&hub, &session.cookie).await, 200);

    let a = send(
        hub.admin(Method::PATCH, &format!("/api/v1/technicians/{id}"))
            .json(&json!({ "enabled": false })),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["enabled"], false);
    assert_eq!(me_status_with_key(&hub, &token).await, 401);
    assert_eq!(me_status_with_cookie(&hub, &session.cookie).await, 401);
    // Nor can it log in again.
    assert_eq!(login_answer(&hub, "otto", PASSWORD).await.status, 401);

    // Enabled again, its keys work again; the session it had is over for good.
    let a = send(
        hub.admin(Method::PATCH, &format!("/api/v1/technicians/{id}"))
            .json(&json!({ "enabled": true })),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(me_status_with_key(&hub, &token).await, 200);
    assert_eq!(me_status_with_cookie(&hub, &session.cookie).await, 401);
}

#[tokio::test]
async fn expired_key_is_refused() {
    let hub = TestHub::start("").await;
    let id = create_technician(&hub, "otto", "operator", None).await;
    let a = send(
        hub.admin(Method::POST, &format!("/api/v1/technicians/{id}/keys"))
            .json(&json!({ "name": "short", "expires_in_secs": 1 })),
    )
    .await;
    assert_eq!(a.status, 201, "{}", a.body);
    assert!(a.body["key"]["expires_at"].is_string(), "{}", a.body);
    let token = a.body["token"].as_str().unwrap().to_owned();
    let started = Instant::now();
    loop {
        let status = me_status_with_key(&hub, &token).await;
        if status == 401 {
            break;
        }
        assert_eq!(status, 200, "before it expires the key works");
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the key never expired"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A key that cannot live is refused outright.
    let a = send(
        hub.admin(Method::POST, &format!("/api/v1/technicians/{id}/keys"))
            .json(&json!({ "name": "none", "expires_in_secs": 0 })),
    )
    .await;
    assert_eq!(a.status, 400, "{}", a.body);
}

#[tokio::test]
async fn login_sets_a_strict_session_cookie_and_changes_need_the_csrf_header() {
    let hub = TestHub::start("").await;
    let id = create_technician(&hub, "ada", "admin", Some(PASSWORD)).await;

    let a = login_answer(&hub, "ada", PASSWORD).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let set_cookie = a.headers.get("set-cookie").unwrap().to_str().unwrap();
    let cookie = session_cookie_value(&a.headers).unwrap();
    assert!(!cookie.is_empty(), "{set_cookie}");
    for attribute in ["Path=/", "HttpOnly", "Secure", "SameSite=Strict"] {
        assert!(
            set_cookie.split(';').any(|p| p.trim() == attribute),
            "{attribute} missing in {set_cookie}"
        );
    }
    assert_eq!(a.body["technician"]["id"], id.as_str());
    assert_eq!(a.body["via"]["kind"], "session");
    assert!(a.body["session_expires_at"].is_string(), "{}", a.body);
    let csrf = a.body["csrf_token"].as_str().unwrap().to_owned();
    assert!(!csrf.is_empty());
    let session = Session { cookie, csrf };

    // Reading needs only the cookie.
    let a = send(with_cookie(
        &hub,
        &session.cookie,
        Method::GET,
        "/api/v1/me",
    ))
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["technician"]["name"], "ada");
    assert_eq!(a.body["csrf_token"], session.csrf.as_str());

    // A change without the header, or with another token, is refused and changes nothing.
    let body = json!({ "name": "site-a" });
    let a =
        send(with_cookie(&hub, &session.cookie, Method::POST, "/api/v1/connectors").json(&body))
            .await;
    assert_eq!(a.status, 403, "{}", a.body);
    assert_eq!(a.body["code"], "csrf_required");
    let a = send(
        with_cookie(&hub, &session.cookie, Method::POST, "/api/v1/connectors")
            .header("x-csrf-token", "bm90LXRoZS10b2tlbg")
            .json(&body),
    )
    .await;
    assert_eq!(a.status, 403, "{}", a.body);
    assert_eq!(a.body["code"], "csrf_required");
    assert!(connector_names(&hub).await.is_empty());

    // Another session's token does not fit this cookie.
    let other = login(&hub, "ada", PASSWORD).await;
    assert_ne!(other.csrf, session.csrf);
    let a = send(
        with_cookie(&hub, &session.cookie, Method::POST, "/api/v1/connectors")
            .header("x-csrf-token", &other.csrf)
            .json(&body),
    )
    .await;
    assert_eq!(a.status, 403, "{}", a.body);
    assert_eq!(a.body["code"], "csrf_required");
    assert!(connector_names(&hub).await.is_empty());

    // With it, the change is made.
    let a = send(
        session
            .change(&hub, Method::POST, "/api/v1/connectors")
            .json(&body),
    )
    .await;
    assert_eq!(a.status, 201, "{}", a.body);
    assert_eq!(connector_names(&hub).await, vec!["site-a".to_owned()]);
}

#[tokio::test]
async fn logout_ends_the_session() {
    let hub = TestHub::start("").await;
    create_technician(&hub, "otto", "operator", Some(PASSWORD)).await;
    let session = login(&hub, "otto", PASSWORD).await;
    assert_eq!(me_status_with_cookie(&hub, &session.cookie).await, 200);

    // Logging out changes something: without the CSRF header it is refused.
    let a = send(with_cookie(
        &hub,
        &session.cookie,
        Method::POST,
        "/api/v1/logout",
    ))
    .await;
    assert_eq!(a.status, 403, "{}", a.body);
    assert_eq!(a.body["code"], "csrf_required");
    assert_eq!(me_status_with_cookie(&hub, &session.cookie).await, 200);

    let a = send(session.change(&hub, Method::POST, "/api/v1/logout")).await;
    assert_eq!(a.status, 204, "{}", a.body);
    assert_eq!(
        session_cookie_value(&a.headers).as_deref(),
        Some(""),
        "the cookie is cleared"
    );
    let a = send(with_cookie(
        &hub,
        &session.cookie,
        Method::GET,
        "/api/v1/me",
    ))
    .await;
    assert_eq!(a.status, 401, "{}", a.body);
    assert_eq!(a.body["code"], "unauthorized");
}

#[tokio::test]
async fn failed_logins_look_alike_and_lock_the_name_after_the_limit() {
    let hub = TestHub::start(
        "login_failures_per_name = 3\nlogin_window_secs = 600\nlogin_failures_per_address = 100",
    )
    .await;
    create_technician(&hub, "otto", "operator", Some(PASSWORD)).await;
    create_technician(&hub, "bea", "guest", Some(PASSWORD)).await;

    let unknown = login_answer(&hub, "nobody", PASSWORD).await;
    let wrong = login_answer(&hub, "otto", "not the right password").await;
    assert_eq!(unknown.status, 401, "{}", unknown.body);
    assert_eq!(wrong.status, unknown.status);
    assert_eq!(wrong.body, unknown.body);
    assert!(session_cookie_value(&wrong.headers).is_none());

    for _ in 1..3 {
        let a = login_answer(&hub, "otto", "not the right password").await;
        assert_eq!(a.status, 401, "{}", a.body);
    }
    // Three failures for the name: even the right password is refused now, in any case.
    for name in ["otto", "OTTO"] {
        let a = login_answer(&hub, name, PASSWORD).await;
        assert_eq!(a.status, 429, "{}", a.body);
        assert_eq!(a.body["code"], "too_many_attempts");
        assert!(session_cookie_value(&a.headers).is_none());
        let retry: u64 = a
            .headers
            .get("retry-after")
            .expect("Retry-After")
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=600).contains(&retry), "Retry-After: {retry}");
    }

    // Another name from the same address is not affected.
    let a = login_answer(&hub, "bea", PASSWORD).await;
    assert_eq!(a.status, 200, "{}", a.body);
}

#[tokio::test]
async fn failed_logins_from_one_address_lock_every_name_from_it() {
    let hub = TestHub::start(
        "login_failures_per_address = 4\nlogin_failures_per_name = 5\nlogin_window_secs = 600",
    )
    .await;
    create_technician(&hub, "otto", "operator", Some(PASSWORD)).await;
    for i in 0..4 {
        let a = login_answer(&hub, &format!("nobody{i}"), PASSWORD).await;
        assert_eq!(a.status, 401, "{}", a.body);
    }
    let a = login_answer(&hub, "nobody4", PASSWORD).await;
    assert_eq!(a.status, 429, "{}", a.body);
    assert!(a.headers.contains_key("retry-after"));
    // Whatever the name and the password.
    let a = login_answer(&hub, "otto", PASSWORD).await;
    assert_eq!(a.status, 429, "{}", a.body);
    assert!(session_cookie_value(&a.headers).is_none());
}

#[tokio::test]
async fn revoking_sessions_or_setting_a_password_ends_the_technicians_sessions() {
    // The idle timeout at its least (a minute) is too long to wait for here; it must not get
    // in the way of the rest.
    let hub = TestHub::start("session_idle_mins = 1").await;
    let id = create_technician(&hub, "otto", "operator", Some(PASSWORD)).await;
    let (_, token) = create_key(&hub, &id, "laptop").await;

    let first = login(&hub, "otto", PASSWORD).await;
    let second = login(&hub, "otto", PASSWORD).await;
    assert_eq!(me_status_with_cookie(&hub, &first.cookie).await, 200);
    assert_eq!(me_status_with_cookie(&hub, &second.cookie).await, 200);
    let a = send(hub.admin(
        Method::POST,
        &format!("/api/v1/technicians/{id}/sessions/revoke"),
    ))
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["sessions_ended"], 2);
    assert_eq!(me_status_with_cookie(&hub, &first.cookie).await, 401);
    assert_eq!(me_status_with_cookie(&hub, &second.cookie).await, 401);
    assert_eq!(
        me_status_with_key(&hub, &token).await,
        200,
        "keys are not sessions"
    );

    let session = login(&hub, "otto", PASSWORD).await;
    assert_eq!(me_status_with_cookie(&hub, &session.cookie).await, 200);
    let new_password = "a brand new passphrase";
    let a = send(
        hub.admin(Method::POST, &format!("/api/v1/technicians/{id}/password"))
            .json(&json!({ "password": new_password })),
    )
    .await;
    assert_eq!(a.status, 204, "{}", a.body);
    assert_eq!(me_status_with_cookie(&hub, &session.cookie).await, 401);
    assert_eq!(login_answer(&hub, "otto", PASSWORD).await.status, 401);
    let session = login(&hub, "otto", new_password).await;
    assert_eq!(me_status_with_cookie(&hub, &session.cookie).await, 200);
}

#[tokio::test]
async fn changing_ones_own_password_needs_the_current_one_but_an_admin_does_not() {
    let hub = TestHub::start("").await;
    let (id, token) = technician_with_key(&hub, "otto", "operator").await;
    let path = format!("/api/v1/technicians/{id}/password");
    let new_password = "a brand new passphrase";

    let a = send(
        with_key(&hub, &token, Method::POST, &path).json(&json!({ "password": new_password })),
    )
    .await;
    assert_eq!(a.status, 403, "{}", a.body);
    let a = send(
        with_key(&hub, &token, Method::POST, &path)
            .json(&json!({ "password": new_password, "current_password": "not the right one" })),
    )
    .await;
    assert_eq!(a.status, 403, "{}", a.body);
    assert_eq!(login_answer(&hub, "otto", new_password).await.status, 401);

    let a = send(
        with_key(&hub, &token, Method::POST, &path)
            .json(&json!({ "password": new_password, "current_password": PASSWORD })),
    )
    .await;
    assert_eq!(a.status, 204, "{}", a.body);
    login(&hub, "otto", new_password).await;

    // An administrator sets another technician's password without knowing it.
    let admin_set = "set by the administrator";
    let a = send(
        hub.admin(Method::POST, &path)
            .json(&json!({ "password": admin_set })),
    )
    .await;
    assert_eq!(a.status, 204, "{}", a.body);
    login(&hub, "otto", admin_set).await;
    assert_eq!(login_answer(&hub, "otto", new_password).await.status, 401);
}

#[tokio::test]
async fn the_last_enabled_admin_cannot_be_demoted_or_disabled() {
    let hub = TestHub::start("").await;
    let me = send(hub.admin(Method::GET, "/api/v1/me")).await;
    let admin_id = me.body["technician"]["id"].as_str().unwrap().to_owned();
    // Another administrator, but disabled: it does not count.
    let other = create_technician(&hub, "ada", "admin", None).await;
    let a = send(
        hub.admin(Method::PATCH, &format!("/api/v1/technicians/{other}"))
            .json(&json!({ "enabled": false })),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);

    for change in [json!({ "role": "operator" }), json!({ "enabled": false })] {
        let a = send(
            hub.admin(Method::PATCH, &format!("/api/v1/technicians/{admin_id}"))
                .json(&change),
        )
        .await;
        assert_eq!(a.status, 409, "{change}: {}", a.body);
        assert_eq!(a.body["code"], "last_admin");
    }
    let me = send(hub.admin(Method::GET, "/api/v1/me")).await;
    assert_eq!(me.status, 200, "{}", me.body);
    assert_eq!(me.body["technician"]["role"], "admin");
    assert_eq!(me.body["technician"]["enabled"], true);
}

#[tokio::test]
async fn technicians_manage_their_own_keys_but_not_anothers() {
    let hub = TestHub::start("").await;
    let (own, token) = technician_with_key(&hub, "otto", "operator").await;
    let (other, _) = technician_with_key(&hub, "olga", "operator").await;
    let (other_key, _) = create_key(&hub, &other, "second").await;

    let a = send(with_key(
        &hub,
        &token,
        Method::GET,
        &format!("/api/v1/technicians/{own}/keys"),
    ))
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body.as_array().unwrap().len(), 1, "{}", a.body);
    let a = send(
        with_key(
            &hub,
            &token,
            Method::POST,
            &format!("/api/v1/technicians/{own}/keys"),
        )
        .json(&json!({ "name": "ci" })),
    )
    .await;
    assert_eq!(a.status, 201, "{}", a.body);
    let made = a.body["token"].as_str().unwrap().to_owned();
    assert_eq!(me_status_with_key(&hub, &made).await, 200);
    let a = send(with_key(
        &hub,
        &token,
        Method::GET,
        &format!("/api/v1/technicians/{own}"),
    ))
    .await;
    assert_eq!(a.status, 200, "{}", a.body);

    for (method, path, body) in [
        (
            Method::GET,
            format!("/api/v1/technicians/{other}/keys"),
            None,
        ),
        (
            Method::POST,
            format!("/api/v1/technicians/{other}/keys"),
            Some(json!({ "name": "sneaky" })),
        ),
        (
            Method::POST,
            format!("/api/v1/technicians/{other}/keys/{other_key}/regenerate"),
            None,
        ),
        (
            Method::POST,
            format!("/api/v1/technicians/{other}/keys/{other_key}/revoke"),
            None,
        ),
        (Method::GET, format!("/api/v1/technicians/{other}"), None),
    ] {
        let mut r = with_key(&hub, &token, method.clone(), &path);
        if let Some(b) = &body {
            r = r.json(b);
        }
        let a = send(r).await;
        assert_eq!(a.status, 403, "{method} {path}: {}", a.body);
    }
    // Nothing was done to the other technician's keys.
    let a = send(hub.admin(Method::GET, &format!("/api/v1/technicians/{other}/keys"))).await;
    let keys = a.body.as_array().unwrap();
    assert_eq!(keys.len(), 2, "{}", a.body);
    assert!(keys.iter().all(|k| k["revoked_at"].is_null()), "{}", a.body);
}

#[tokio::test]
async fn audit_entries_name_the_technician_its_key_and_its_address() {
    let hub = TestHub::start("").await;
    let id = create_technician(&hub, "ada", "admin", None).await;
    let (key, token) = create_key(&hub, &id, "laptop").await;
    let a = send(
        with_key(&hub, &token, Method::POST, "/api/v1/connectors")
            .json(&json!({ "name": "site-a" })),
    )
    .await;
    assert_eq!(a.status, 201, "{}", a.body);
    let connector = a.body["remote_id"].as_str().unwrap().to_owned();

    let a = send(hub.admin(Method::GET, "/api/v1/audit?action=connector.register")).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let entries = a.body.as_array().unwrap();
    assert_eq!(entries.len(), 1, "{}", a.body);
    let e = &entries[0];
    assert_eq!(e["action"], "connector.register");
    assert_eq!(e["actor"], "ada");
    assert_eq!(e["actor_kind"], "technician");
    assert_eq!(e["actor_id"], id.as_str());
    assert_eq!(e["via"], json!({ "kind": "api_key", "id": key }));
    assert_eq!(e["address"], "127.0.0.1");
    assert_eq!(e["target"], connector.as_str(), "{e}");

    // Filtered by name: only ada's entries, and among them the registration; the key the
    // initial admin made for ada is the admin's entry, not hers.
    let a = send(hub.admin(Method::GET, "/api/v1/audit?actor=ada")).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let entries = a.body.as_array().unwrap();
    assert!(!entries.is_empty());
    assert!(entries.iter().all(|e| e["actor"] == "ada"), "{}", a.body);
    assert!(
        entries.iter().any(|e| e["action"] == "connector.register"),
        "{}",
        a.body
    );
    let a = send(hub.admin(Method::GET, "/api/v1/audit?actor=admin")).await;
    let entries = a.body.as_array().unwrap();
    assert!(entries.iter().all(|e| e["actor"] == "admin"), "{}", a.body);
    assert!(
        !entries.iter().any(|e| e["action"] == "connector.register"),
        "{}",
        a.body
    );
}

#[tokio::test]
async fn weak_passwords_bad_names_and_duplicate_names_are_refused() {
    let hub = TestHub::start("").await;
    let a = send(
        hub.admin(Method::POST, "/api/v1/technicians")
            .json(&json!({ "name": "otto", "role": "operator", "password": "elevenchars" })),
    )
    .await;
    assert_eq!(a.status, 400, "{}", a.body);
    assert_eq!(a.body["code"], "weak_password");

    let a = send(
        hub.admin(Method::POST, "/api/v1/technicians")
            .json(&json!({ "name": "otto smith", "role": "operator" })),
    )
    .await;
    assert_eq!(a.status, 400, "{}", a.body);
    assert_eq!(a.body["code"], "invalid_name");

    let id = create_technician(&hub, "otto", "operator", Some(PASSWORD)).await;
    let a = send(
        hub.admin(Method::POST, "/api/v1/technicians")
            .json(&json!({ "name": "otto", "role": "guest" })),
    )
    .await;
    assert_eq!(a.status, 409, "{}", a.body);
    assert_eq!(a.body["code"], "name_taken");
    // Login names are one whatever their case.
    let a = send(
        hub.admin(Method::POST, "/api/v1/technicians")
            .json(&json!({ "name": "OTTO", "role": "guest" })),
    )
    .await;
    assert_eq!(a.status, 409, "{}", a.body);
    assert_eq!(a.body["code"], "name_taken");

    // A new password is held to the same rule.
    let a = send(
        hub.admin(Method::POST, &format!("/api/v1/technicians/{id}/password"))
            .json(&json!({ "password": "short" })),
    )
    .await;
    assert_eq!(a.status, 400, "{}", a.body);
    assert_eq!(a.body["code"], "weak_password");
    login(&hub, "otto", PASSWORD).await;

    let a = send(hub.admin(Method::GET, "/api/v1/technicians")).await;
    let names: Vec<&str> = a
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names.iter().filter(|n| **n == "otto").count(),
        1,
        "{names:?}"
    );
    assert!(!names.contains(&"otto smith"), "{names:?}");
}

#[tokio::test]
async fn no_password_key_or_session_reaches_the_hub_log() {
    let hub = TestHub::start("").await;
    let (id, token) = technician_with_key(&hub, "otto", "operator").await;
    let wrong = "a wrong password that must not be logged";
    assert_eq!(login_answer(&hub, "otto", wrong).await.status, 401);
    let session = login(&hub, "otto", PASSWORD).await;
    assert_eq!(me_status_with_key(&hub, &token).await, 200);
    assert_eq!(me_status_with_cookie(&hub, &session.cookie).await, 200);
    let a = send(
        session
            .change(
                &hub,
                Method::POST,
                &format!("/api/v1/technicians/{id}/keys"),
            )
            .json(&json!({ "name": "second", "current_password": PASSWORD })),
    )
    .await;
    assert_eq!(a.status, 201, "{}", a.body);
    let second = a.body["token"].as_str().unwrap().to_owned();
    // The hub did log these requests' outcomes (so the log is the live one).
    let log = hub.log();
    assert!(log.contains("portal login"), "{log}");

    let key_secret = token.rsplit('_').next().unwrap();
    let cookie_secret = session.cookie.split('.').nth(1).unwrap();
    for (what, secret) in [
        ("the password", PASSWORD),
        ("a wrong password", wrong),
        ("the API key", token.as_str()),
        ("the API key's secret", key_secret),
        ("the second API key", second.as_str()),
        ("the initial admin key", hub.token.as_str()),
        ("the session cookie", session.cookie.as_str()),
        ("the session secret", cookie_secret),
        ("the CSRF token", session.csrf.as_str()),
    ] {
        assert!(!secret.is_empty());
        assert!(!log.contains(secret), "{what} is in the hub log:\n{log}");
    }
}

#[tokio::test]
async fn a_role_change_takes_effect_at_once_for_keys_and_sessions() {
    let hub = TestHub::start("").await;
    let (id, token) = technician_with_key(&hub, "otto", "operator").await;
    let session = login(&hub, "otto", PASSWORD).await;
    let job = serde_json::to_value(common::diagnostics_job(Uuid::new_v4())).unwrap();
    // Both credentials are used (and cached) as an operator.
    let a = send(with_key(&hub, &token, Method::POST, "/api/v1/jobs").json(&job)).await;
    assert_eq!(a.body["code"], "unknown_connector", "{}", a.body);
    let a = send(
        session
            .change(&hub, Method::POST, "/api/v1/jobs")
            .json(&job),
    )
    .await;
    assert_eq!(a.body["code"], "unknown_connector", "{}", a.body);

    let a = send(
        hub.admin(Method::PATCH, &format!("/api/v1/technicians/{id}"))
            .json(&json!({ "role": "guest" })),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["role"], "guest");
    let a = send(with_key(&hub, &token, Method::POST, "/api/v1/jobs").json(&job)).await;
    assert_eq!(a.status, 403, "{}", a.body);
    let a = send(
        session
            .change(&hub, Method::POST, "/api/v1/jobs")
            .json(&job),
    )
    .await;
    assert_eq!(a.status, 403, "{}", a.body);
    let a = send(with_key(&hub, &token, Method::GET, "/api/v1/me")).await;
    assert_eq!(a.body["technician"]["role"], "guest", "{}", a.body);
}

#[tokio::test]
async fn a_technician_cannot_reach_anothers_key_through_its_own_path() {
    let hub = TestHub::start("").await;
    let (own, token) = technician_with_key(&hub, "otto", "operator").await;
    let other = create_technician(&hub, "olga", "operator", None).await;
    let (other_key, other_token) = create_key(&hub, &other, "laptop").await;
    for action in ["revoke", "regenerate"] {
        let a = send(with_key(
            &hub,
            &token,
            Method::POST,
            &format!("/api/v1/technicians/{own}/keys/{other_key}/{action}"),
        ))
        .await;
        assert_eq!(a.status, 404, "{action}: {}", a.body);
        assert!(a.body.get("token").is_none(), "{}", a.body);
    }
    assert_eq!(me_status_with_key(&hub, &other_token).await, 200);
}

#[tokio::test]
async fn keys_and_sessions_survive_a_hub_restart() {
    let mut hub = TestHub::start("").await;
    let admin_token = hub.token.clone();
    let (_, token) = technician_with_key(&hub, "otto", "operator").await;
    let session = login(&hub, "otto", PASSWORD).await;
    hub.restart().await;
    assert_eq!(
        hub.token, admin_token,
        "admin.token is written on the first start only"
    );
    assert_eq!(me_status_with_key(&hub, &hub.token).await, 200);
    assert_eq!(me_status_with_key(&hub, &token).await, 200);
    assert_eq!(me_status_with_cookie(&hub, &session.cookie).await, 200);
    let a = send(session.change(&hub, Method::POST, "/api/v1/logout")).await;
    assert_eq!(
        a.status, 204,
        "the CSRF token outlives the restart too: {}",
        a.body
    );
    let a = send(hub.admin(Method::GET, "/api/v1/technicians")).await;
    assert_eq!(a.body.as_array().unwrap().len(), 2, "{}", a.body);
}

#[tokio::test]
async fn concurrent_failed_logins_cannot_exceed_the_per_name_limit() {
    // However the guesses are timed, at most `login_failures_per_name` of them may be checked
    // within the window: guesses sent all at once must not each pass the throttle before any
    // of them has failed.
    let hub = TestHub::start(
        "login_failures_per_name = 3\nlogin_window_secs = 600\nlogin_failures_per_address = 1000",
    )
    .await;
    create_technician(&hub, "otto", "operator", Some(PASSWORD)).await;
    let guesses = (0..12).map(|i| {
        let hub = &hub;
        async move { login_answer(hub, "otto", &format!("wrong guess number {i}")).await }
    });
    let answers = futures_util::future::join_all(guesses).await;
    let checked = answers.iter().filter(|a| a.status == 401).count();
    let throttled = answers.iter().filter(|a| a.status == 429).count();
    assert_eq!(checked + throttled, answers.len());
    assert!(
        checked <= 3,
        "{checked} of {} concurrent guesses were checked against the password; the limit is 3",
        answers.len()
    );
    assert_eq!(login_answer(&hub, "otto", PASSWORD).await.status, 429);
}

/// The CLI drives the same API: technicians, keys, `me` and a filtered audit, as JSON.
#[tokio::test]
async fn the_cli_manages_technicians_and_keys_and_filters_the_audit_log() {
    let hub = TestHub::start("").await;
    let data = hub.data_dir();
    let ferry = |args: &[&str]| {
        let out = std::process::Command::new(common::FERRY)
            .args(args)
            .arg("--data-dir")
            .arg(&data)
            .arg("--json")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "ferry {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    let bob = ferry(&["technician", "create", "bob", "--role", "operator"]);
    assert_eq!(bob["role"], "operator");
    let key = ferry(&[
        "technician",
        "key",
        "create",
        "--technician",
        "bob",
        "--name",
        "ci",
    ]);
    let token = key["token"].as_str().unwrap();
    assert!(token.starts_with("fk_"));
    let listed = ferry(&["technician", "list"]);
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["admin", "bob"]);
    // `me` with bob's key (given explicitly, overriding the data dir's admin key).
    let me = ferry(&["me", "--token", token]);
    assert_eq!(me["technician"]["name"], "bob");
    assert_eq!(me["technician"]["role"], "operator");
    ferry(&["technician", "set-role", "bob", "guest"]);
    let audit = ferry(&["audit", "--actor", "admin", "--action", "technician."]);
    let actions: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["technician.update", "technician.create"]);
    // A window in the past holds nothing.
    let old = ferry(&["audit", "--until", "2000-01-01T00:00:00Z"]);
    assert_eq!(old, json!([]));
    let keys = ferry(&["technician", "key", "list", "--technician", "bob"]);
    let key_id = keys[0]["id"].as_str().unwrap();
    ferry(&["technician", "key", "revoke", key_id, "--technician", "bob"]);
    assert_eq!(me_status_with_key(&hub, token).await, 401);
}

#[tokio::test]
async fn minting_a_key_through_a_browser_session_needs_the_password_again() {
    let hub = TestHub::start("").await;
    let id = create_technician(&hub, "mona", "operator", Some(PASSWORD)).await;
    let session = login(&hub, "mona", PASSWORD).await;
    let path = format!("/api/v1/technicians/{id}/keys");
    for body in [
        json!({ "name": "k" }),
        json!({ "name": "k", "current_password": "not the password at all" }),
    ] {
        let a = send(session.change(&hub, Method::POST, &path).json(&body)).await;
        assert_eq!(a.status, 403, "{}", a.body);
    }
    let keys = send(hub.admin(Method::GET, &path)).await;
    assert_eq!(keys.body, json!([]), "refusals created nothing");
    let a = send(
        session
            .change(&hub, Method::POST, &path)
            .json(&json!({ "name": "k", "current_password": PASSWORD })),
    )
    .await;
    assert_eq!(a.status, 201, "{}", a.body);
    let key = a.body["key"]["id"].as_str().unwrap().to_owned();
    let regenerate = format!("{path}/{key}/regenerate");
    let a = send(session.change(&hub, Method::POST, &regenerate)).await;
    assert_eq!(a.status, 403, "{}", a.body);
    let a = send(
        session
            .change(&hub, Method::POST, &regenerate)
            .json(&json!({ "current_password": PASSWORD })),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    // With an API key the credential itself is the proof.
    let token = a.body["token"].as_str().unwrap().to_owned();
    let a = send(with_key(&hub, &token, Method::POST, &path).json(&json!({ "name": "k2" }))).await;
    assert_eq!(a.status, 201, "{}", a.body);
}

#[tokio::test]
async fn a_hub_no_administrator_can_sign_in_to_writes_a_new_key_at_its_next_start() {
    let mut hub = TestHub::start("").await;
    let me = send(hub.admin(Method::GET, "/api/v1/me")).await;
    let admin = me.body["technician"]["id"].as_str().unwrap().to_owned();
    let Value::Array(keys) =
        send(hub.admin(Method::GET, &format!("/api/v1/technicians/{admin}/keys")))
            .await
            .body
    else {
        panic!("keys are a list");
    };
    let key = keys[0]["id"].as_str().unwrap().to_owned();
    let old = hub.token.clone();
    let a = send(hub.admin(
        Method::POST,
        &format!("/api/v1/technicians/{admin}/keys/{key}/revoke"),
    ))
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(me_status_with_key(&hub, &old).await, 401);
    hub.restart().await;
    assert_ne!(hub.token, old, "admin.token holds a new key");
    assert_eq!(me_status_with_key(&hub, &hub.token).await, 200);
    assert_eq!(me_status_with_key(&hub, &old).await, 401);
    // Once someone can sign in again, a restart leaves the file alone.
    let token = hub.token.clone();
    hub.restart().await;
    assert_eq!(hub.token, token);
}
