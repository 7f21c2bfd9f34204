//! The fake helpdesk (`tests/helpdesk/fake_helpdesk.py`): a real HTTP(S) server verifying every
//! callback with the published Standard Webhooks library, run with the Python that
//! `scripts/test.sh` prepared (`target/test-venv`, or `FERRY_TEST_PYTHON`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/helpdesk/fake_helpdesk.py"
);

/// The Python with `standardwebhooks` and `aiosmtpd`, or `None` (with the reason printed) when
/// there is none; under `CI=true` a missing one is a failure, not a skip.
pub fn python() -> Option<PathBuf> {
    let candidate = std::env::var_os("FERRY_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/test-venv/bin/python")
        });
    let ok = Command::new(&candidate)
        .args(["-c", "import standardwebhooks, aiosmtpd"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        return Some(candidate);
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "no Python with standardwebhooks and aiosmtpd at {}, and CI=true: scripts/test.sh should have made it",
        candidate.display()
    );
    eprintln!(
        "skipped: no Python with standardwebhooks and aiosmtpd at {} (scripts/test.sh makes it)",
        candidate.display()
    );
    None
}

pub struct FakeHelpdesk {
    python: PathBuf,
    pub dir: PathBuf,
    pub port: u16,
    secrets: Vec<String>,
    tls: Option<(PathBuf, PathBuf)>,
    child: Option<Child>,
}

impl FakeHelpdesk {
    /// Starts one verifying with any of `secrets`, over HTTPS when `tls` (cert, key) is given.
    pub async fn start(
        python: &Path,
        dir: &Path,
        secrets: &[&str],
        tls: Option<(PathBuf, PathBuf)>,
    ) -> FakeHelpdesk {
        std::fs::create_dir_all(dir).unwrap();
        let mut h = FakeHelpdesk {
            python: python.to_owned(),
            dir: dir.to_owned(),
            port: 0,
            secrets: secrets.iter().map(|s| s.to_string()).collect(),
            tls,
            child: None,
        };
        h.spawn().await;
        h
    }

    async fn spawn(&mut self) {
        let _ = std::fs::remove_file(self.dir.join("port"));
        let mut cmd = Command::new(&self.python);
        cmd.arg(SCRIPT)
            .arg("--dir")
            .arg(&self.dir)
            .args(["--port", &self.port.to_string()]);
        for s in &self.secrets {
            cmd.args(["--secret", s]);
        }
        if let Some((cert, key)) = &self.tls {
            cmd.arg("--tls-cert").arg(cert).arg("--tls-key").arg(key);
        }
        let log = std::fs::File::create(self.dir.join("helpdesk.log")).unwrap();
        self.child = Some(
            cmd.stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .unwrap(),
        );
        let started = Instant::now();
        loop {
            if let Ok(p) = std::fs::read_to_string(self.dir.join("port"))
                && let Ok(p) = p.trim().parse()
            {
                self.port = p;
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "the fake helpdesk did not start: {}",
                std::fs::read_to_string(self.dir.join("helpdesk.log")).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops it (SIGKILL): callbacks find nobody listening.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port.
    pub async fn restart(&mut self) {
        self.kill();
        self.spawn().await;
    }

    pub fn base(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    fn lines(&self, name: &str) -> Vec<Value> {
        std::fs::read_to_string(self.dir.join(name))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// Every verified callback, in arrival order.
    pub fn received(&self) -> Vec<Value> {
        self.lines("received.jsonl")
    }

    /// Verified callbacks it answered with 2xx.
    pub fn accepted(&self) -> Vec<Value> {
        self.received()
            .into_iter()
            .filter(|r| (200..300).contains(&r["answered"].as_u64().unwrap_or(0)))
            .collect()
    }

    pub fn refused(&self) -> Vec<Value> {
        self.lines("refused.jsonl")
    }

    /// How verified callbacks are answered from now on.
    pub async fn answer_with(&self, status: u16, retry_after: Option<u64>) {
        let r = reqwest::Client::new()
            .post(format!("http://127.0.0.1:{}/control", self.port))
            .json(&json!({"answer": status, "retry_after": retry_after}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204);
    }

    /// Waits until `pred` holds for the accepted callbacks.
    pub async fn wait_accepted(
        &self,
        limit: Duration,
        what: &str,
        pred: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        let started = Instant::now();
        loop {
            let got = self.accepted();
            if pred(&got) {
                return got;
            }
            assert!(
                started.elapsed() < limit,
                "the helpdesk never saw {what}; it accepted {got:#?}, refused {:#?}",
                self.refused()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

impl Drop for FakeHelpdesk {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The statuses of accepted callbacks for `task`, by sequence, each change once: panics if one
/// sequence number arrived under two different `webhook-id`s (a duplicate delivery) or out of
/// order.
pub fn statuses(accepted: &[Value], task: &str) -> Vec<String> {
    let mut by_seq: Vec<(u64, String, String)> = Vec::new();
    for r in accepted
        .iter()
        .filter(|r| r["body"]["data"]["task_id"] == task)
    {
        let seq = r["body"]["data"]["sequence"].as_u64().unwrap();
        let id = r["id"].as_str().unwrap().to_owned();
        let status = r["body"]["data"]["status"].as_str().unwrap().to_owned();
        match by_seq.iter().find(|(s, _, _)| *s == seq) {
            Some((_, first, _)) => assert_eq!(
                first, &id,
                "change {seq} of task {task} delivered under two webhook-ids"
            ),
            None => {
                if let Some((last, _, _)) = by_seq.last() {
                    assert!(seq > *last, "change {seq} arrived after change {last}");
                }
                by_seq.push((seq, id, status));
            }
        }
    }
    by_seq.into_iter().map(|(_, _, s)| s).collect()
}

const SMTP_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/helpdesk/smtp_server.py");

/// A real SMTP server (`aiosmtpd`) requiring STARTTLS, then AUTH as `user`/`password`; each
/// accepted message lands in `dir` as `mail-N.eml`.
pub struct SmtpServer {
    pub dir: PathBuf,
    pub port: u16,
    child: Child,
}

impl SmtpServer {
    pub async fn start(
        python: &Path,
        dir: &Path,
        cert: &Path,
        key: &Path,
        user: &str,
        password: &str,
    ) -> SmtpServer {
        std::fs::create_dir_all(dir).unwrap();
        let log = std::fs::File::create(dir.join("smtp.log")).unwrap();
        let child = Command::new(python)
            .arg(SMTP_SCRIPT)
            .arg("--dir")
            .arg(dir)
            .arg("--cert")
            .arg(cert)
            .arg("--key")
            .arg(key)
            .args(["--user", user, "--password", password])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        // Owned from here: a failed start is killed and reaped by `Drop`.
        let mut server = SmtpServer {
            dir: dir.to_owned(),
            port: 0,
            child,
        };
        let started = Instant::now();
        loop {
            if let Ok(p) = std::fs::read_to_string(dir.join("port"))
                && let Ok(port) = p.trim().parse()
            {
                server.port = port;
                return server;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "the SMTP server did not start: {}",
                std::fs::read_to_string(dir.join("smtp.log")).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The messages received so far, oldest first.
    pub fn messages(&self) -> Vec<String> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "eml"))
            .collect();
        names.sort_by_key(|p| {
            p.file_stem()
                .and_then(|s| s.to_str())
                .and_then(|s| s.trim_start_matches("mail-").parse::<u32>().ok())
                .unwrap_or(0)
        });
        names
            .iter()
            .map(|p| std::fs::read_to_string(p).unwrap())
            .collect()
    }

    /// How AUTH attempts went (`LOGIN ok`, `PLAIN refused`, …).
    pub fn auth_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("auth.log")).unwrap_or_default()
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
