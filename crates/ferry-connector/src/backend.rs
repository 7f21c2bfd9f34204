//! Where generated scripts run: Windows PowerShell with the ConfigMgr module (`powershell`), or
//! the emulated site (`emulator`), which reads and executes the very same script text. Both
//! return the script's `FERRY-RESULT` lines, handing each to the caller as it arrives.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Map, Value};
use tokio::io::AsyncBufReadExt;
use uuid::Uuid;

use crate::config::{Backend, ConnectorConfig};
use crate::executor::{JobContext, JobFailure, fail};

pub type Step = Map<String, Value>;

/// Serialises runs against the emulated site within this process.
static SITE_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

pub struct ScriptBackend {
    backend: Backend,
    site_dir: PathBuf,
    powershell: PathBuf,
    timeout: Duration,
}

impl ScriptBackend {
    pub fn new(config: &ConnectorConfig) -> Self {
        ScriptBackend {
            backend: config.backend(),
            site_dir: config.emulator_site(),
            powershell: config.powershell.clone(),
            timeout: Duration::from_secs(u64::from(config.script_timeout_secs)),
        }
    }

    pub fn name(&self) -> &'static str {
        match self.backend {
            Backend::Emulator => "emulator",
            Backend::Powershell => "powershell",
        }
    }

    /// Runs `text`; `on_step` sees every result line as it arrives. A failing script's error
    /// (the cmdlet's message) becomes the job's failure reason verbatim.
    pub async fn run(
        &self,
        ctx: &JobContext,
        job: Uuid,
        text: &str,
        on_step: impl Fn(&Step),
    ) -> Result<Vec<Step>, JobFailure> {
        match self.backend {
            Backend::Emulator => self.run_emulated(text, on_step).await,
            Backend::Powershell => self.run_powershell(ctx, job, text, on_step).await,
        }
    }

    async fn run_emulated(
        &self,
        text: &str,
        on_step: impl Fn(&Step),
    ) -> Result<Vec<Step>, JobFailure> {
        let (site_dir, text) = (self.site_dir.clone(), text.to_owned());
        // The emulator is synchronous and writes its site file: keep it off the async threads.
        let outcome = tokio::task::spawn_blocking(move || {
            // Cancelling a job drops its future but cannot stop this thread: the lock makes a
            // later run wait for it instead of racing it on `site.json`.
            let _one_at_a_time = SITE_LOCK.lock().unwrap_or_else(|p| p.into_inner());
            let mut site = ferry_sccm::Site::open(&site_dir)?;
            site.run(&text)
        })
        .await
        .map_err(fail)?;
        let stdout = match outcome {
            Ok(stdout) => stdout,
            Err(e) => {
                // Report the steps that did happen before the failing cmdlet, as a real run
                // would have printed them.
                if let ferry_sccm::EmulatorError::Cmdlet { stdout, .. } = &e {
                    for line in ferry_sccm::scripts::result_lines(stdout).unwrap_or_default() {
                        on_step(&line);
                    }
                }
                return Err(fail(e));
            }
        };
        let lines = ferry_sccm::scripts::result_lines(&stdout).map_err(fail)?;
        for line in &lines {
            on_step(line);
        }
        Ok(lines)
    }

    async fn run_powershell(
        &self,
        ctx: &JobContext,
        job: Uuid,
        text: &str,
        on_step: impl Fn(&Step),
    ) -> Result<Vec<Step>, JobFailure> {
        let dir = ctx.work_dir.join("scripts");
        tokio::fs::create_dir_all(&dir).await.map_err(fail)?;
        let path = dir.join(format!("{job}.ps1"));
        // Windows PowerShell 5.1 reads a BOM-less script as ANSI; the BOM keeps every
        // non-ASCII character in names and paths intact.
        let mut bytes = vec![0xEF, 0xBB, 0xBF];
        bytes.extend_from_slice(text.as_bytes());
        tokio::fs::write(&path, bytes).await.map_err(fail)?;
        let mut child = tokio::process::Command::new(&self.powershell)
            .args([
                "-NoProfile",
                "-NonInteractive",
                "-ExecutionPolicy",
                "Bypass",
                "-File",
            ])
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Cancelling the job drops this future, which kills the process.
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| fail(format!("cannot start {}: {e}", self.powershell.display())))?;
        let stdout = child.stdout.take().ok_or_else(|| fail("no stdout"))?;
        let stderr = child.stderr.take().ok_or_else(|| fail("no stderr"))?;
        let errors = tokio::spawn(async move {
            let mut lines = tokio::io::BufReader::new(stderr).lines();
            let mut text = String::new();
            while let Ok(Some(line)) = lines.next_line().await {
                if text.len() < 16 * 1024 {
                    text.push_str(&line);
                    text.push('\n');
                }
            }
            text
        });
        let mut steps = Vec::new();
        let read = async {
            let mut lines = tokio::io::BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                // A host that still writes a byte-order mark puts it before the first line.
                let line = line.trim_start_matches('\u{feff}');
                if let Ok(parsed) = ferry_sccm::scripts::result_lines(&format!("{line}\n")) {
                    for step in parsed {
                        on_step(&step);
                        steps.push(step);
                    }
                }
            }
            child.wait().await
        };
        let status = match tokio::time::timeout(self.timeout, read).await {
            Ok(status) => status.map_err(fail)?,
            Err(_) => {
                return Err(fail(format!(
                    "the script ran longer than {} s and was stopped",
                    self.timeout.as_secs()
                )));
            }
        };
        let _ = tokio::fs::remove_file(&path).await;
        let stderr = errors.await.unwrap_or_default();
        if !status.success() {
            let message = stderr.trim();
            return Err(fail(if message.is_empty() {
                format!("the script failed ({status})")
            } else {
                message.to_owned()
            }));
        }
        Ok(steps)
    }
}
