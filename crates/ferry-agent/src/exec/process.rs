//! Running one process for an operation: output capped, time bounded, cancellable, and the
//! whole process tree stopped when the operation is.
//!
//! Why a process group on Unix: an operation is rarely one process (`sh script.sh` starts
//! others, an installer starts helpers). Killing only the first one would leave its children
//! running, holding the output pipes open and doing whatever they were doing. Each child starts
//! in its own group, and a timeout, a cancellation or a dropped future kills the group.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::ExecError;

/// How long output may keep arriving after the process itself has ended. Something it left
/// behind (`daemon &`) may hold the pipes open for ever; the operation's result must not wait
/// for it. Past this, reading stops and such leftovers get a broken pipe on their next write.
const DRAIN_GRACE: Duration = Duration::from_secs(2);

/// What a finished (or stopped) process left.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcessOutput {
    /// `None` when the process was killed (by us, on timeout or cancel, or by a signal).
    pub exit_code: Option<i32>,
    /// Standard output, lossy UTF-8, at most the limit (a cut is marked on its own line).
    pub stdout: String,
    pub stderr: String,
    pub timed_out: bool,
    pub cancelled: bool,
}

/// Runs `cmd` with stdin closed and both output streams read concurrently, each kept up to
/// `output_limit` bytes. A timeout or `cancel` kills the process tree (see the module docs) and
/// reaps it; the output read so far is kept. Dropping the returned future kills the tree too.
///
/// Fails only when the process cannot be started ([`ExecError::Spawn`]; see
/// [`ExecError::is_not_found`]) or waited for.
pub async fn run_process(
    mut cmd: Command,
    timeout: Duration,
    output_limit: usize,
    cancel: &CancellationToken,
) -> Result<ProcessOutput, ExecError> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    #[cfg(unix)]
    cmd.process_group(0);
    #[cfg(windows)]
    {
        // No console window for a service's children. The tree is guarded by a Job Object
        // (see `job` below), as the process group guards it on Unix.
        const CREATE_NO_WINDOW: u32 = 0x0800_0000;
        cmd.creation_flags(CREATE_NO_WINDOW);
    }
    let program = cmd.as_std().get_program().to_string_lossy().into_owned();
    let mut child = cmd
        .spawn()
        .map_err(|source| ExecError::Spawn { program, source })?;
    // Armed until the child is reaped normally: if this future is dropped (or returns early)
    // while the tree runs, the guard kills it.
    let mut guard = TreeGuard::new(child.id());
    if let Some(pid) = child.id() {
        // The agent's journal records the group, so that an agent killed meanwhile can stop
        // the tree when it starts again (see `journal`).
        let _ = ON_SPAWN.try_with(|hook| hook(pid));
    }

    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let mut out = Capture::new(output_limit);
    let mut err = Capture::new(output_limit);
    let deadline = Instant::now() + timeout;
    let (status, timed_out, cancelled) = {
        let reading = futures_util::future::join(out.fill(stdout), err.fill(stderr));
        tokio::pin!(reading);
        let mut read_all = false;
        let ending = loop {
            tokio::select! {
                _ = &mut reading, if !read_all => read_all = true,
                status = child.wait() => break Ending::Exited(status),
                _ = tokio::time::sleep_until(deadline) => break Ending::TimedOut,
                _ = cancel.cancelled() => break Ending::Cancelled,
            }
        };
        let (status, timed_out, cancelled) = match ending {
            Ending::Exited(status) => {
                let status = status.map_err(|e| ExecError::io("waiting for the process", e))?;
                guard.disarm();
                (status, false, false)
            }
            Ending::TimedOut | Ending::Cancelled => {
                // Kill the tree while the first process is still unreaped, so its ID (which is
                // the group's) cannot have been reused.
                guard.kill();
                let _ = child.start_kill();
                let status = child
                    .wait()
                    .await
                    .map_err(|e| ExecError::io("waiting for the killed process", e))?;
                guard.disarm();
                let timed_out = matches!(ending, Ending::TimedOut);
                (status, timed_out, !timed_out)
            }
        };
        if !read_all {
            let grace = DRAIN_GRACE.min(deadline.saturating_duration_since(Instant::now()));
            tokio::select! {
                _ = &mut reading => {}
                _ = tokio::time::sleep(grace.max(Duration::from_millis(100))) => {}
                _ = cancel.cancelled(), if !cancelled => {}
            }
        }
        (status, timed_out, cancelled)
    };
    Ok(ProcessOutput {
        exit_code: if timed_out || cancelled {
            None
        } else {
            status.code()
        },
        stdout: out.finish(),
        stderr: err.finish(),
        timed_out,
        cancelled,
    })
}

tokio::task_local! {
    /// Told the ID of every process [`run_process`] starts within its scope (the agent's
    /// session sets it per operation).
    pub static ON_SPAWN: std::sync::Arc<dyn Fn(u32) + Send + Sync>;
}

enum Ending {
    Exited(std::io::Result<std::process::ExitStatus>),
    TimedOut,
    Cancelled,
}

/// Kills the child's process tree when armed and dropped: its process group on Unix, its Job
/// Object on Windows.
struct TreeGuard {
    #[cfg(unix)]
    pgid: Option<libc::pid_t>,
    #[cfg(windows)]
    job: Option<job::Job>,
}

impl TreeGuard {
    fn new(pid: Option<u32>) -> Self {
        #[cfg(unix)]
        {
            TreeGuard {
                pgid: pid.and_then(|p| libc::pid_t::try_from(p).ok()),
            }
        }
        #[cfg(windows)]
        {
            TreeGuard {
                job: pid.and_then(job::Job::for_process),
            }
        }
        #[cfg(not(any(unix, windows)))]
        {
            let _ = pid;
            TreeGuard {}
        }
    }

    /// SIGKILL to every process in the group.
    fn kill(&self) {
        #[cfg(unix)]
        if let Some(pgid) = self.pgid
            && pgid > 0
        {
            // SAFETY: kill(2) has no memory-safety preconditions; a negative pid addresses the
            // process group, which is the child's own (process_group(0)), never ours.
            unsafe {
                libc::kill(-pgid, libc::SIGKILL);
            }
        }
        #[cfg(windows)]
        if let Some(job) = &self.job {
            job.kill();
        }
    }

    fn disarm(&mut self) {
        #[cfg(unix)]
        {
            self.pgid = None;
        }
        #[cfg(windows)]
        if let Some(job) = self.job.take() {
            // Exited normally: whatever it left in the background may go on, as on Unix.
            job.release();
        }
    }
}

impl Drop for TreeGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One output stream: the first `limit` bytes, and a count of the rest.
struct Capture {
    kept: Vec<u8>,
    dropped: u64,
    limit: usize,
}

impl Capture {
    fn new(limit: usize) -> Self {
        Capture {
            kept: Vec::new(),
            dropped: 0,
            limit,
        }
    }

    /// Reads to the end, keeping what fits. Reading goes on past the limit so that the child
    /// never blocks on a full pipe; a read error ends the stream like EOF.
    async fn fill(&mut self, reader: Option<impl AsyncRead + Unpin>) {
        let Some(mut reader) = reader else { return };
        let mut buf = vec![0u8; 8192];
        loop {
            let n = match reader.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            let room = self.limit.saturating_sub(self.kept.len());
            let take = room.min(n);
            self.kept.extend_from_slice(&buf[..take]);
            self.dropped += (n - take) as u64;
        }
    }

    fn finish(mut self) -> String {
        if self.dropped > 0 {
            // Don't leave half a character at the cut: count its bytes as cut instead.
            if let Err(e) = std::str::from_utf8(&self.kept)
                && e.error_len().is_none()
            {
                let cut = self.kept.len() - e.valid_up_to();
                self.kept.truncate(e.valid_up_to());
                self.dropped += cut as u64;
            }
        }
        let mut text = String::from_utf8_lossy(&self.kept).into_owned();
        if self.dropped > 0 {
            text.push_str(&format!("\n[output cut: {} more bytes]", self.dropped));
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cut_inside_a_character_moves_before_it() {
        let mut c = Capture::new(4);
        c.kept = "abcé".as_bytes()[..4].to_vec(); // "abc" + first byte of 'é'
        c.dropped = 1;
        assert_eq!(c.finish(), "abc\n[output cut: 2 more bytes]");
    }

    #[test]
    fn uncut_output_is_unmarked() {
        let mut c = Capture::new(10);
        c.kept = b"hello".to_vec();
        assert_eq!(c.finish(), "hello");
    }
}

/// Windows: the child is put in a Job Object that kills every process in it when the job is
/// terminated or its last handle closes, so a timeout, a cancel, or the agent itself dying
/// stops the whole tree (an installer's helpers included), as the process group does on Unix.
/// A process the child starts in the instant before it is assigned escapes; ConfigMgr's
/// client has the same window.
#[cfg(windows)]
mod job {
    use windows_sys::Win32::Foundation::{CloseHandle, HANDLE};
    use windows_sys::Win32::System::JobObjects::{
        AssignProcessToJobObject, CreateJobObjectW, JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE,
        JOBOBJECT_EXTENDED_LIMIT_INFORMATION, JobObjectExtendedLimitInformation,
        SetInformationJobObject, TerminateJobObject,
    };
    use windows_sys::Win32::System::Threading::{
        OpenProcess, PROCESS_SET_QUOTA, PROCESS_TERMINATE,
    };

    pub struct Job(HANDLE);

    // SAFETY: a job handle may be used from any thread.
    unsafe impl Send for Job {}
    unsafe impl Sync for Job {}

    fn set_kill_on_close(job: HANDLE, on: bool) -> bool {
        // SAFETY: zeroed is a valid JOBOBJECT_EXTENDED_LIMIT_INFORMATION (plain data); the
        // pointer and size describe that local for the duration of the call.
        unsafe {
            let mut info: JOBOBJECT_EXTENDED_LIMIT_INFORMATION = std::mem::zeroed();
            if on {
                info.BasicLimitInformation.LimitFlags = JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE;
            }
            SetInformationJobObject(
                job,
                JobObjectExtendedLimitInformation,
                (&raw const info).cast(),
                std::mem::size_of::<JOBOBJECT_EXTENDED_LIMIT_INFORMATION>() as u32,
            ) != 0
        }
    }

    impl Job {
        /// A new job holding process `pid`; `None` if Windows refuses (the tree then is not
        /// guarded beyond the first process).
        pub fn for_process(pid: u32) -> Option<Job> {
            // SAFETY: plain Win32 calls on handles this function owns and closes.
            unsafe {
                let job = CreateJobObjectW(std::ptr::null(), std::ptr::null());
                if job.is_null() {
                    return None;
                }
                let job = Job(job);
                if !set_kill_on_close(job.0, true) {
                    return None;
                }
                let process = OpenProcess(PROCESS_SET_QUOTA | PROCESS_TERMINATE, 0, pid);
                if process.is_null() {
                    return None;
                }
                let assigned = AssignProcessToJobObject(job.0, process) != 0;
                CloseHandle(process);
                assigned.then_some(job)
            }
        }

        pub fn kill(&self) {
            // SAFETY: terminating a job this module created.
            unsafe {
                TerminateJobObject(self.0, 1);
            }
        }

        /// Lets the job's remaining processes outlive it.
        pub fn release(self) {
            set_kill_on_close(self.0, false);
        }
    }

    impl Drop for Job {
        fn drop(&mut self) {
            // SAFETY: closing the handle this value owns, once.
            unsafe {
                CloseHandle(self.0);
            }
        }
    }
}
