//! Agents for tests: enrolled through the real CLI, run as real `ferry agent run` processes.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ferry_agent::config::{AgentConfig, CONFIG_FILE};
use ferry_proto::ops::{Device, Operation, TargetResult};
use serde_json::{Value, json};
use uuid::Uuid;

use super::{FERRY, TestHub};

pub struct TestAgent {
    pub dir: PathBuf,
    pub device: Uuid,
    pub child: Option<Child>,
    runs: u32,
}

impl TestHub {
    /// A fresh enrolment secret (unlimited uses, no expiry).
    pub async fn enrollment_secret(&self) -> String {
        let r = self
            .admin(reqwest::Method::POST, "/api/v1/enrollment-secrets")
            .json(&json!({"name": format!("test-{}", Uuid::new_v4().simple())}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        r.json::<Value>().await.unwrap()["secret"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Enrols a device as `hostname` into a folder under the hub's temp dir, with test
    /// executor settings (work dir inside, restart observed through a marker file); `edit`
    /// may change the config further.
    pub async fn enroll_agent(
        &self,
        hostname: &str,
        edit: impl FnOnce(&mut AgentConfig),
    ) -> TestAgent {
        self.enroll_agent_with(hostname, &[], edit).await
    }

    /// [`TestHub::enroll_agent`] with more `ferry agent enroll` arguments (`--proxy`, …).
    pub async fn enroll_agent_with(
        &self,
        hostname: &str,
        extra: &[&str],
        edit: impl FnOnce(&mut AgentConfig),
    ) -> TestAgent {
        let secret = self.enrollment_secret().await;
        let dir = self.dir.path().join(format!("agent-{hostname}"));
        // tokio's Command: the test's own runtime may be serving a proxy meanwhile.
        let out = tokio::process::Command::new(FERRY)
            .args(["agent", "enroll", "--hub", &self.url, "--secret", &secret])
            .args(extra)
            .arg("--hostname")
            .arg(hostname)
            .arg("--data-dir")
            .arg(&dir)
            .output()
            .await
            .unwrap();
        assert!(
            out.status.success(),
            "enroll failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let path = dir.join(CONFIG_FILE);
        let mut config = AgentConfig::load(&path).unwrap();
        config.exec.work_dir = dir.join("work");
        config.exec.restart_command = vec![
            "sh".into(),
            "-c".into(),
            format!("echo restarted >> '{}'", dir.join("restarted").display()),
        ];
        config.max_backoff_secs = 2;
        edit(&mut config);
        config.save(&path).unwrap();
        let token = std::fs::read_to_string(dir.join("device.token")).unwrap();
        let device = Uuid::parse_str(token.trim().split(':').next().unwrap()).unwrap();
        TestAgent {
            dir,
            device,
            child: None,
            runs: 0,
        }
    }

    /// Uploads a package holding one script at `path` and sets its install command; returns
    /// the package ID.
    pub async fn script_package(&self, path: &str, script: &str, install_command: &str) -> String {
        let mut zip = Vec::new();
        {
            use std::io::Write;
            let mut w = zip::ZipWriter::new(std::io::Cursor::new(&mut zip));
            w.start_file(path, zip::write::SimpleFileOptions::default())
                .unwrap();
            w.write_all(script.as_bytes()).unwrap();
            w.finish().unwrap();
        }
        let package = self.upload_package(zip).await;
        let id = package["id"].as_str().unwrap().to_owned();
        let r = self
            .admin(reqwest::Method::PATCH, &format!("/api/v1/packages/{id}"))
            .json(&json!({"metadata": {"install_command": install_command}}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
        id
    }

    pub async fn device(&self, id: Uuid) -> Device {
        let r = self
            .admin(reqwest::Method::GET, &format!("/api/v1/devices/{id}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.json().await.unwrap()
    }

    pub async fn wait_online(&self, id: Uuid, online: bool) -> Device {
        let started = Instant::now();
        loop {
            let d = self.device(id).await;
            if d.online == online {
                return d;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "device {id} never became {}: {}",
                if online { "online" } else { "offline" },
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `POST /api/v1/ops`, expecting 201.
    pub async fn start_op(&self, body: Value) -> Operation {
        let r = self
            .admin(reqwest::Method::POST, "/api/v1/ops")
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status();
        let text = r.text().await.unwrap();
        assert_eq!(status, 201, "{text}");
        serde_json::from_str(&text).unwrap()
    }

    pub async fn op(&self, id: Uuid) -> Operation {
        self.admin(reqwest::Method::GET, &format!("/api/v1/ops/{id}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub async fn op_results(&self, id: Uuid) -> Vec<TargetResult> {
        self.admin(reqwest::Method::GET, &format!("/api/v1/ops/{id}/results"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Waits (through the live watch endpoint) until `pred` holds for the operation.
    pub async fn wait_op(
        &self,
        id: Uuid,
        limit: Duration,
        pred: impl Fn(&Operation) -> bool,
    ) -> Operation {
        let started = Instant::now();
        let mut since = 0u64;
        loop {
            let w: Value = self
                .admin(
                    reqwest::Method::GET,
                    &format!("/api/v1/ops/{id}/watch?since={since}&hold=2"),
                )
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            since = w["version"].as_u64().unwrap();
            let op: Operation = serde_json::from_value(w["operation"].clone()).unwrap();
            if pred(&op) {
                return op;
            }
            assert!(
                started.elapsed() < limit,
                "operation never reached the expected state: {:?}\nhub log:\n{}",
                op.counts,
                self.log()
            );
        }
    }
}

impl TestAgent {
    pub fn start(&mut self) {
        self.runs += 1;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap();
        let child = Command::new(FERRY)
            .args(["agent", "run", "--log-format", "json", "--data-dir"])
            .arg(&self.dir)
            .env("FERRY_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join("agent.log")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// A second agent folder holding a copy of this one's token and config.
    pub fn clone_into(&self, dir: &Path) -> TestAgent {
        std::fs::create_dir_all(dir).unwrap();
        for f in ["agent.toml", "device.token"] {
            std::fs::copy(self.dir.join(f), dir.join(f)).unwrap();
        }
        TestAgent {
            dir: dir.to_owned(),
            device: self.device,
            child: None,
            runs: 0,
        }
    }
}

impl Drop for TestAgent {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Waits until `path` exists.
pub async fn wait_file(path: &Path, limit: Duration) {
    let started = Instant::now();
    while !path.exists() {
        assert!(
            started.elapsed() < limit,
            "{} never appeared",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
