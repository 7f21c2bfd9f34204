//! Test harness: real `ferry` processes in temporary folders, talked to over real HTTP.
#![allow(dead_code)]

pub mod agents;
pub mod chaos_proxy;
pub mod helpdesk;
pub mod proxy;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ferry_proto::connector::{ConnectorCredentials, NewConnector};
use ferry_proto::job::{Job, JobKind, NewJob};
use serde_json::{Value, json};
use uuid::Uuid;

pub const FERRY: &str = env!("CARGO_BIN_EXE_ferry");

/// A diagnostics job for `connector` with every option at its default; tests override fields.
pub fn diagnostics_job(connector: Uuid) -> NewJob {
    NewJob {
        connector_id: connector,
        kind: JobKind::Diagnostics,
        payload: Value::Null,
        not_before: None,
        expires_at: None,
        max_attempts: None,
    }
}

pub struct TestHub {
    pub dir: tempfile::TempDir,
    pub child: Option<Child>,
    pub url: String,
    pub token: String,
    pub http: reqwest::Client,
    extra_config: String,
}

impl TestHub {
    /// Starts `ferry serve` on a free port with `extra` TOML lines (e.g. `lease_secs = 2`).
    pub async fn start(extra: &str) -> TestHub {
        let dir = tempfile::tempdir().unwrap();
        let mut hub = TestHub {
            dir,
            child: None,
            url: String::new(),
            token: String::new(),
            http: reqwest::Client::new(),
            extra_config: extra.to_owned(),
        };
        hub.spawn().await;
        hub
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    async fn spawn(&mut self) {
        let config = format!(
            "listen = \"127.0.0.1:{port}\"\ndata_dir = \"{data}\"\nlog_level = \"info\"\n{extra}\n",
            port = self
                .url
                .rsplit(':')
                .next()
                .filter(|_| !self.url.is_empty())
                .unwrap_or("0"),
            data = self.data_dir().display(),
            extra = self.extra_config
        );
        let config_path = self.dir.path().join("hub.toml");
        std::fs::write(&config_path, config).unwrap();
        let url_file = self.data_dir().join("hub.url");
        let _ = std::fs::remove_file(&url_file);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("hub.log"))
            .unwrap();
        let child = Command::new(FERRY)
            .args(["serve", "--config"])
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let started = Instant::now();
        loop {
            if let Ok(u) = std::fs::read_to_string(&url_file) {
                self.url = u.trim().to_owned();
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "hub did not start: {}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.token = std::fs::read_to_string(self.data_dir().join("admin.token"))
            .unwrap()
            .trim()
            .to_owned();
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("hub.log")).unwrap_or_default()
    }

    /// SIGKILL: no shutdown code runs.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    /// Starts the hub again on the same port and data dir.
    pub async fn restart(&mut self) {
        self.kill9();
        self.spawn().await;
    }

    pub fn admin(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(&self.token)
    }

    pub async fn register(&self, name: &str) -> ConnectorCredentials {
        let r = self
            .admin(reqwest::Method::POST, "/api/v1/connectors")
            .json(&NewConnector {
                name: name.into(),
                site: Default::default(),
            })
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
        r.json().await.unwrap()
    }

    /// Uploads `zip` in one range and completes it; returns the package.
    pub async fn upload_package(&self, zip: Vec<u8>) -> Value {
        let upload: Value = self
            .admin(reqwest::Method::POST, "/api/v1/uploads")
            .json(&json!({ "filename": "package.zip", "size": zip.len() }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let id = upload["id"].as_str().unwrap();
        let r = self
            .admin(
                reqwest::Method::PUT,
                &format!("/api/v1/uploads/{id}?offset=0"),
            )
            .body(zip)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let r = self
            .admin(
                reqwest::Method::POST,
                &format!("/api/v1/uploads/{id}/complete"),
            )
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{}", r.text().await.unwrap());
        r.json().await.unwrap()
    }

    pub async fn enqueue(&self, connector: Uuid, payload: Value) -> Job {
        self.enqueue_job(NewJob {
            payload,
            ..diagnostics_job(connector)
        })
        .await
    }

    pub async fn enqueue_job(&self, job: NewJob) -> Job {
        let r = self
            .admin(reqwest::Method::POST, "/api/v1/jobs")
            .json(&job)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
        r.json().await.unwrap()
    }

    pub async fn job(&self, id: Uuid) -> Job {
        self.admin(reqwest::Method::GET, &format!("/api/v1/jobs/{id}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub async fn jobs(&self) -> Vec<Job> {
        self.admin(reqwest::Method::GET, "/api/v1/jobs")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Waits until `pred` holds for the job, or panics after `limit`.
    pub async fn wait_job(&self, id: Uuid, limit: Duration, pred: impl Fn(&Job) -> bool) -> Job {
        let started = Instant::now();
        loop {
            let job = self.job(id).await;
            if pred(&job) {
                return job;
            }
            assert!(
                started.elapsed() < limit,
                "job never reached the expected state: {job:#?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A request as a connector.
    pub fn as_connector(
        &self,
        creds: &ConnectorCredentials,
        method: reqwest::Method,
        path: &str,
    ) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.url))
            .header(
                "authorization",
                format!("Bearer {}:{}", creds.remote_id, creds.secret),
            )
    }

    /// Long-polls once as `creds`; returns the status and body.
    pub async fn poll(&self, creds: &ConnectorCredentials, hold: u32) -> (u16, Value) {
        let r = self
            .as_connector(
                creds,
                reqwest::Method::GET,
                &format!("/api/v1/connector/jobs/next?hold={hold}"),
            )
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let body = r.json::<Value>().await.unwrap_or(Value::Null);
        (status, body)
    }

    pub async fn report(
        &self,
        creds: &ConnectorCredentials,
        job: &Value,
        token: &Value,
        outcome: &str,
    ) -> (u16, Value) {
        let r = self
            .as_connector(
                creds,
                reqwest::Method::POST,
                &format!("/api/v1/connector/jobs/{}/result", job.as_str().unwrap()),
            )
            .json(&json!({ "lease_token": token, "outcome": outcome, "result": { "ok": true } }))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Writes a connector config for `creds` and starts `ferry connector run` on it.
    pub fn spawn_connector(&self, creds: &ConnectorCredentials, extra: &str) -> TestConnector {
        let dir = self
            .dir
            .path()
            .join(format!("connector-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let config = format!(
            "hub_url = \"{}\"\nremote_id = \"{}\"\nsecret = \"{}\"\nwork_dir = \"{}\"\nmax_backoff_secs = 2\n{extra}\n",
            self.url,
            creds.remote_id,
            creds.secret,
            dir.join("work").display()
        );
        TestConnector::spawn(&dir, &config)
    }

    pub async fn metric(&self, name: &str) -> f64 {
        let text = self
            .http
            .get(format!("{}/metrics", self.url))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .find_map(|l| {
                l.strip_prefix(name)
                    .and_then(|rest| rest.trim().parse().ok())
            })
            .unwrap_or_else(|| panic!("metric {name} missing in {text}"))
    }
}

impl Drop for TestHub {
    fn drop(&mut self) {
        self.kill9();
    }
}

pub struct TestConnector {
    pub child: Option<Child>,
    pub log: PathBuf,
}

impl TestConnector {
    pub fn spawn(dir: &Path, config: &str) -> TestConnector {
        let path = dir.join("connector.toml");
        std::fs::write(&path, config).unwrap();
        let log = dir.join("connector.log");
        let file = std::fs::File::create(&log).unwrap();
        let child = Command::new(FERRY)
            .args(["connector", "run", "--log-format", "json", "--config"])
            .arg(&path)
            .env("FERRY_LOG", "info")
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap();
        TestConnector {
            child: Some(child),
            log,
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    pub fn sigterm(&self) {
        if let Some(c) = &self.child {
            let status = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status()
                .unwrap();
            assert!(status.success());
        }
    }

    /// Waits for the process to exit; returns its exit code.
    pub async fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let started = Instant::now();
        let child = self.child.as_mut()?;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                self.child = None;
                return status.code();
            }
            assert!(
                started.elapsed() < limit,
                "connector did not exit: {}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for TestConnector {
    fn drop(&mut self) {
        self.kill9();
    }
}
