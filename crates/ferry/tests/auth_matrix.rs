//! The authorization matrix: every route of the hub's route table (`ferry_hub::http::ROUTES`,
//! the list the router is built from, so a new route is in here the day it is added) against
//! every kind of credential, checked against what the route's declared access allows; and
//! no refused call changes anything.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::TestHub;
use ferry_hub::http::ROUTES;
use ferry_hub::http::auth::Access;
use ferry_proto::identity::Role;
use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

/// The kinds of caller the matrix tries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cred {
    None,
    Malformed,
    UnknownKey,
    Guest,
    Operator,
    Admin,
    AdminCookie,
    AdminCookieNoCsrf,
    DisabledTechnician,
    ExpiredKey,
    Connector,
    Device,
}

const CREDS: [Cred; 12] = [
    Cred::None,
    Cred::Malformed,
    Cred::UnknownKey,
    Cred::Guest,
    Cred::Operator,
    Cred::Admin,
    Cred::AdminCookie,
    Cred::AdminCookieNoCsrf,
    Cred::DisabledTechnician,
    Cred::ExpiredKey,
    Cred::Connector,
    Cred::Device,
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// Through the door: neither 401 nor 403.
    Allowed,
    Unauthorized,
    Forbidden,
}

/// What the declared access lets `cred` do on a route with `method`.
fn expect(access: Access, method: &str, cred: Cred) -> Expect {
    use Expect::*;
    let open = matches!(access, Access::Public | Access::Login | Access::Enrollment);
    if open {
        return Allowed;
    }
    let tech_role = match cred {
        Cred::Guest => Some(Role::Guest),
        // The operator is the technician the `{id}` of technician routes names.
        Cred::Operator => Some(Role::Operator),
        Cred::Admin | Cred::AdminCookie | Cred::AdminCookieNoCsrf => Some(Role::Admin),
        _ => None,
    };
    match cred {
        Cred::None
        | Cred::Malformed
        | Cred::UnknownKey
        | Cred::DisabledTechnician
        | Cred::ExpiredKey => Unauthorized,
        Cred::Connector => match access {
            Access::Connector | Access::TechnicianOrConnector(_) => Allowed,
            _ => Forbidden,
        },
        Cred::Device => match access {
            Access::Device => Allowed,
            _ => Forbidden,
        },
        // Cookies are for technicians' routes; elsewhere there is no credential at all.
        Cred::AdminCookie | Cred::AdminCookieNoCsrf
            if matches!(access, Access::Connector | Access::Device) =>
        {
            Unauthorized
        }
        Cred::AdminCookieNoCsrf if method != "get" => Forbidden,
        _ => {
            let role = tech_role.unwrap_or(Role::Guest);
            match access {
                Access::Technician(least) | Access::TechnicianOrConnector(least) => {
                    if role >= least { Allowed } else { Forbidden }
                }
                Access::SelfOrAdmin => {
                    if matches!(cred, Cred::Operator) || role == Role::Admin {
                        Allowed
                    } else {
                        Forbidden
                    }
                }
                Access::Connector | Access::Device => Forbidden,
                Access::Public | Access::Login | Access::Enrollment => Allowed,
            }
        }
    }
}

struct Fixture {
    hub: TestHub,
    guest_key: String,
    operator_key: String,
    operator_id: String,
    operator_key_id: String,
    disabled_key: String,
    expired_key: String,
    cookie: String,
    csrf: String,
    connector: String,
    device: String,
    /// Real IDs for the `{id}` of each route family (reads must find them).
    ids: HashMap<&'static str, String>,
}

impl Fixture {
    async fn api(&self, method: Method, path: &str, body: Value) -> Value {
        let r = self
            .hub
            .admin(method, path)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status();
        let text = r.text().await.unwrap();
        assert!(status.is_success(), "{path}: {status} {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    fn request(&self, method: &str, path: &str, cred: Cred) -> reqwest::RequestBuilder {
        let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let url = format!("{}{path}", self.hub.url);
        let r = self.hub.http.request(method, url);
        let bearer = |t: &str| format!("Bearer {t}");
        match cred {
            Cred::None => r,
            Cred::Malformed => r.header("authorization", "Basic YWRtaW46YWRtaW4="),
            Cred::UnknownKey => r.header(
                "authorization",
                bearer(&format!(
                    "fk_{}_{}",
                    Uuid::new_v4().simple(),
                    "x".repeat(43)
                )),
            ),
            Cred::Guest => r.header("authorization", bearer(&self.guest_key)),
            Cred::Operator => r.header("authorization", bearer(&self.operator_key)),
            Cred::Admin => r.header("authorization", bearer(&self.hub.token)),
            Cred::AdminCookie => r
                .header("cookie", format!("__Host-ferry_session={}", self.cookie))
                .header("x-csrf-token", &self.csrf),
            Cred::AdminCookieNoCsrf => {
                r.header("cookie", format!("__Host-ferry_session={}", self.cookie))
            }
            Cred::DisabledTechnician => r.header("authorization", bearer(&self.disabled_key)),
            Cred::ExpiredKey => r.header("authorization", bearer(&self.expired_key)),
            Cred::Connector => r.header("authorization", bearer(&self.connector)),
            Cred::Device => r.header("authorization", bearer(&self.device)),
        }
    }

    /// The route's path with real IDs (`real`) or random ones in place of its parameters.
    fn path(&self, template: &str, real: bool) -> String {
        let family = template
            .trim_start_matches("/api/v1/")
            .split('/')
            .next()
            .unwrap_or("");
        let id = if real {
            self.ids
                .get(family)
                .cloned()
                .unwrap_or_else(|| Uuid::new_v4().to_string())
        } else if family == "technicians" {
            // Technician routes name the operator: self-or-admin decides on it.
            self.operator_id.clone()
        } else {
            Uuid::new_v4().to_string()
        };
        let key = if real {
            self.operator_key_id.clone()
        } else {
            Uuid::new_v4().to_string()
        };
        let mut path = template.replace("{id}", &id).replace("{key}", &key);
        // Long polls answer at once.
        if path.ends_with("/connector/jobs/next") {
            path.push_str("?hold=0");
        }
        if path.ends_with("/watch") {
            path.push_str("?hold=0");
        }
        path
    }

    /// What an administrator sees of the hub's state: every change is audited in the same
    /// transaction, and the lists catch anything else.
    async fn snapshot(&self) -> Value {
        let mut all = serde_json::Map::new();
        for path in [
            "/api/v1/audit?limit=1000",
            "/api/v1/connectors",
            "/api/v1/jobs",
            "/api/v1/packages",
            "/api/v1/technicians",
            "/api/v1/devices",
            "/api/v1/collections",
            "/api/v1/deployments",
            "/api/v1/ops",
            "/api/v1/enrollment-secrets",
            "/api/v1/scripts?retired=true",
            "/api/v1/integrations",
            "/api/v1/tasks",
        ] {
            let mut v = self.api(Method::GET, path, Value::Null).await;
            strip_volatile(&mut v);
            all.insert(path.to_owned(), v);
        }
        Value::Object(all)
    }
}

/// Fields that change with time or presence, not with what a caller did.
fn strip_volatile(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for k in [
                "last_seen",
                "last_seen_at",
                "online",
                "updated_at",
                "lease_expires_at",
            ] {
                m.remove(k);
            }
            m.values_mut().for_each(strip_volatile);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_volatile),
        _ => {}
    }
}

async fn fixture() -> Fixture {
    // The matrix sends hundreds of refused credentials from one address on purpose; the
    // failure throttle (tested on its own) must not answer for the routes.
    let hub = TestHub::start(
        "auth_failures_per_address = 1000000\nauth_failures_per_credential = 1000000",
    )
    .await;
    let mut f = Fixture {
        guest_key: String::new(),
        operator_key: String::new(),
        operator_id: String::new(),
        operator_key_id: String::new(),
        disabled_key: String::new(),
        expired_key: String::new(),
        cookie: String::new(),
        csrf: String::new(),
        connector: String::new(),
        device: String::new(),
        ids: HashMap::new(),
        hub,
    };
    let technician = async |f: &Fixture, name: &str, role: &str, password: Option<&str>| {
        let t = f
            .api(
                Method::POST,
                "/api/v1/technicians",
                json!({"name": name, "role": role, "password": password}),
            )
            .await;
        let id = t["id"].as_str().unwrap().to_owned();
        let k = f
            .api(
                Method::POST,
                &format!("/api/v1/technicians/{id}/keys"),
                json!({"name": "matrix"}),
            )
            .await;
        (
            id,
            k["token"].as_str().unwrap().to_owned(),
            k["key"]["id"].as_str().unwrap().to_owned(),
        )
    };
    let (_, guest_key, _) = technician(&f, "guest", "guest", None).await;
    let (operator_id, operator_key, operator_key_id) =
        technician(&f, "operator", "operator", None).await;
    let (disabled_id, disabled_key, _) = technician(&f, "gone", "admin", None).await;
    let (admin2_id, _, _) = technician(&f, "admin2", "admin", Some("a long enough password")).await;
    f.api(
        Method::PATCH,
        &format!("/api/v1/technicians/{disabled_id}"),
        json!({"enabled": false}),
    )
    .await;
    let expired = f
        .api(
            Method::POST,
            &format!("/api/v1/technicians/{admin2_id}/keys"),
            json!({"name": "short-lived", "expires_in_secs": 1}),
        )
        .await;
    f.guest_key = guest_key;
    f.operator_key = operator_key;
    f.operator_id = operator_id.clone();
    f.operator_key_id = operator_key_id;
    f.disabled_key = disabled_key;
    f.expired_key = expired["token"].as_str().unwrap().to_owned();

    // A browser session of an administrator.
    let r = f
        .hub
        .http
        .post(format!("{}/api/v1/login", f.hub.url))
        .json(&json!({"name": "admin2", "password": "a long enough password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    f.cookie = cookie
        .strip_prefix("__Host-ferry_session=")
        .and_then(|c| c.split(';').next())
        .unwrap()
        .to_owned();
    f.csrf = r.json::<Value>().await.unwrap()["csrf_token"]
        .as_str()
        .unwrap()
        .to_owned();

    // A connector, a device, and one of everything the routes read.
    let creds = f.hub.register("matrix").await;
    f.connector = format!("{}:{}", creds.remote_id, creds.secret);
    let secret = f.hub.enrollment_secret().await;
    let enrolled = f
        .api(
            Method::POST,
            "/api/v1/agent/enroll",
            json!({"secret": secret, "inventory": {
                "hostname": "matrix-pc", "os_name": "Linux", "os_version": "12",
                "arch": "x86_64", "agent_version": "test"}}),
        )
        .await;
    f.device = enrolled["token"].as_str().unwrap().to_owned();
    let device_id = enrolled["device_id"].as_str().unwrap().to_owned();
    let package = f
        .hub
        .upload_package(ferry_package::sample::filezilla_like().unwrap())
        .await;
    let package_id = package["id"].as_str().unwrap().to_owned();
    let upload = f
        .api(
            Method::POST,
            "/api/v1/uploads",
            json!({"filename": "open.zip", "size": 10}),
        )
        .await;
    let job = f
        .api(
            Method::POST,
            "/api/v1/jobs",
            json!({"connector_id": creds.remote_id, "kind": "diagnostics"}),
        )
        .await;
    let collection = f
        .api(
            Method::POST,
            "/api/v1/collections",
            json!({"name": "matrix", "devices": [device_id]}),
        )
        .await;
    // An install for the device, so that it may read the package.
    let op = f
        .api(
            Method::POST,
            "/api/v1/ops",
            json!({"op": {"kind": "install", "package_id": package_id}, "devices": [device_id]}),
        )
        .await;
    // A library script and a task on the device (no callback: nothing leaves the hub).
    let script = f
        .api(
            Method::POST,
            "/api/v1/scripts",
            json!({"name": "matrix", "content": "true"}),
        )
        .await;
    let task = f
        .api(
            Method::POST,
            "/api/v1/tasks",
            json!({"request_ref": "REQ-matrix", "idempotency_key": "matrix",
                   "action": "run_script", "script_id": script["id"],
                   "targets": {"workstations": [device_id]}}),
        )
        .await;
    let integration = f
        .api(
            Method::POST,
            "/api/v1/integrations",
            json!({"name": "matrix", "callback_prefixes": ["https://helpdesk.example/cb/"]}),
        )
        .await;
    let ids = [
        ("scripts", script["id"].as_str().unwrap().to_owned()),
        ("tasks", task["id"].as_str().unwrap().to_owned()),
        (
            "integrations",
            integration["id"].as_str().unwrap().to_owned(),
        ),
        ("connectors", creds.remote_id.to_string()),
        ("jobs", job["id"].as_str().unwrap().to_owned()),
        ("connector", job["id"].as_str().unwrap().to_owned()),
        ("packages", package_id.clone()),
        ("uploads", upload["id"].as_str().unwrap().to_owned()),
        ("devices", device_id),
        ("collections", collection["id"].as_str().unwrap().to_owned()),
        ("ops", op["id"].as_str().unwrap().to_owned()),
        ("agent", package_id),
        ("technicians", operator_id),
    ];
    f.ids = ids.into_iter().collect();

    // The short-lived key is past its end.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let r = f
            .request("get", "/api/v1/me", Cred::ExpiredKey)
            .send()
            .await
            .unwrap();
        if r.status() == 401 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the key never expired"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    f
}

/// Reads that must find their fixture (`2xx`) for a caller who may use them, apart from
/// these, which answer otherwise by design.
fn read_may_refuse(path: &str, cred: Cred) -> bool {
    // No inventory was taken; the WebSocket needs an upgrade; a connector sees neither an
    // administrator's upload nor a package it was not asked to push (404, like a missing one).
    path.ends_with("/applications")
        || path.ends_with("/agent/ws")
        || (cred == Cred::Connector && (path.contains("/uploads/") || path.contains("/packages/")))
}

#[tokio::test]
async fn every_route_admits_exactly_the_callers_its_access_declares_and_refusals_change_nothing() {
    let f = fixture().await;
    let before = f.snapshot().await;
    let mut failures = Vec::new();
    let mut tried = 0;

    // Refusals first, with real IDs: nothing may change.
    for route in ROUTES {
        for cred in CREDS {
            let want = expect(route.access, route.method, cred);
            if want == Expect::Allowed {
                continue;
            }
            let path = f.path(route.path, true);
            let r = f
                .request(route.method, &path, cred)
                .json(&json!({}))
                .send()
                .await
                .unwrap();
            tried += 1;
            let status = r.status().as_u16();
            let ok = match want {
                Expect::Unauthorized => {
                    status == 401 && r.headers().contains_key("www-authenticate")
                }
                Expect::Forbidden => status == 403,
                Expect::Allowed => unreachable!(),
            };
            if !ok {
                let body = r.text().await.unwrap_or_default();
                failures.push(format!(
                    "{} {path} as {cred:?}: want {want:?}, got {status} {body}",
                    route.method
                ));
            }
        }
    }
    let after = f.snapshot().await;
    assert_eq!(
        before, after,
        "a refused call changed the hub's state (audit log or lists differ)"
    );

    // Admissions: reads find their fixture; writes go to IDs that do not exist (or carry an
    // empty body), so that passing the door shows without changing the fixture.
    for route in ROUTES {
        for cred in CREDS {
            if expect(route.access, route.method, cred) != Expect::Allowed {
                continue;
            }
            if route.path == "/api/v1/logout" {
                continue; // would end the session the other rows use; covered by the identity tests
            }
            let read = route.method == "get";
            let path = f.path(route.path, read);
            // Minting a key through a browser session asks for the password again; passing
            // that second check is part of getting through.
            let body = if cred == Cred::AdminCookie {
                json!({ "current_password": "a long enough password" })
            } else {
                json!({})
            };
            let r = f
                .request(route.method, &path, cred)
                .json(&body)
                .send()
                .await
                .unwrap();
            tried += 1;
            let status = r.status().as_u16();
            let success = r.status().is_success();
            let body = r.text().await.unwrap_or_default();
            // A signed route's own refusal of a missing signature comes after the door.
            let signature_refused = status == 401 && body.contains("\"bad_signature\"");
            let ok = if (status == 401 && !signature_refused) || status == 403 || status >= 500 {
                false
            } else if read {
                success || read_may_refuse(&path, cred)
            } else {
                true
            };
            if !ok {
                failures.push(format!(
                    "{} {path} as {cred:?}: want through, got {status} {body}",
                    route.method
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {tried} requests answered wrongly:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(tried >= ROUTES.len() * CREDS.len() - 10, "{tried}");
}

#[test]
fn every_route_declares_an_access_and_the_table_has_no_duplicates() {
    let mut seen = std::collections::HashSet::new();
    for r in ROUTES {
        assert!(
            seen.insert((r.method, r.path)),
            "{} {} is declared twice",
            r.method,
            r.path
        );
        assert!(r.path == "/healthz" || r.path == "/metrics" || r.path.starts_with("/api/v1/"));
    }
    // Only these answer without any credential.
    let open: Vec<_> = ROUTES
        .iter()
        .filter(|r| {
            matches!(
                r.access,
                Access::Public | Access::Login | Access::Enrollment
            )
        })
        .map(|r| r.path)
        .collect();
    assert_eq!(
        open,
        [
            "/healthz",
            "/metrics",
            "/api/v1/login",
            "/api/v1/agent/enroll"
        ]
    );
}
