//! The agent's journal: what it did with each operation, so that a repeat delivery is
//! answered instead of run again, and an operation that was running when the agent died is
//! failed or re-run as its policy says, never left `running`.
//!
//! One small JSON file per operation in `<data dir>/journal/`, written to a temporary name
//! and renamed (a killed agent leaves the old entry or the new one, never half of one). An
//! entry is removed when the hub confirms it stored the result.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use ferry_proto::agent::Assignment;
use ferry_proto::ops::{OnInterrupt, OpOutcome, OutcomeState};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// How often an interrupted operation with `on_interrupt = rerun` is started in all.
pub const MAX_ATTEMPTS: u32 = 3;
/// Finished entries the hub never confirmed are dropped after this long.
const KEEP_FINISHED_SECS: i64 = 7 * 24 * 3600;
/// Entries never started (an operation waiting for its moment, then cancelled or expired
/// while the agent was away, is never sent again) are dropped after this long: longer than
/// a task lives. Dropping one is safe: an operation the hub sends again after that was never
/// started, so running it is what it asks.
const KEEP_UNSTARTED_SECS: i64 = 8 * 24 * 3600;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Acknowledged, not started.
    Received,
    Running,
    Finished,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub op_id: Uuid,
    pub stage: Stage,
    /// Times it was started.
    pub attempts: u32,
    pub outcome: Option<OpOutcome>,
    /// Unix seconds of the last change.
    pub updated_at: i64,
    /// Process groups started for it, with their leader's start time (Linux), so that a
    /// restarted agent can stop what a killed one left running.
    #[serde(default)]
    pub processes: Vec<(u32, u64)>,
    /// What the device looked like when the operation began waiting for a moment, so that a
    /// restarted agent knows whether the moment came while it was away.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting: Option<Waiting>,
}

/// The state of a wait for a startup or a logon (see `moments`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Waiting {
    /// The boot the operation was received in.
    pub boot: String,
    /// Who was logged on when last looked at.
    #[serde(default)]
    pub users: Vec<String>,
}

/// What to do with an operation the hub (re)sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Start it (new, never started, or re-run after an interruption).
    Run,
    /// It is running in this process: say so again.
    StillRunning,
    /// Answer with this outcome without running anything.
    Report(OpOutcome),
}

fn failed(message: String) -> OpOutcome {
    OpOutcome {
        state: OutcomeState::Failed,
        exit_code: None,
        output: String::new(),
        error: message,
        reboot_required: false,
    }
}

/// The rule, without I/O. `inherited`: the entry was written by an earlier agent process.
pub fn decide(entry: Option<&Entry>, inherited: bool, active: bool, a: &Assignment) -> Decision {
    let Some(entry) = entry else {
        return Decision::Run;
    };
    match entry.stage {
        Stage::Finished => match &entry.outcome {
            Some(o) => Decision::Report(o.clone()),
            None => Decision::Report(failed("the journal lost this operation's outcome".into())),
        },
        _ if active => Decision::StillRunning,
        Stage::Received if inherited => Decision::Run,
        Stage::Running if inherited => match a.on_interrupt {
            OnInterrupt::Fail => Decision::Report(failed(
                "the agent stopped while this operation was running; it is not run again \
                 (on_interrupt = fail)"
                    .into(),
            )),
            OnInterrupt::Rerun if entry.attempts < MAX_ATTEMPTS => Decision::Run,
            OnInterrupt::Rerun => Decision::Report(failed(format!(
                "the agent stopped while this operation was running, {} times; giving up",
                entry.attempts
            ))),
        },
        // Written by this process but no longer running: its task ended without an outcome.
        _ => Decision::Report(failed(
            "the agent lost track of this operation while running it".into(),
        )),
    }
}

pub struct Journal {
    dir: Option<PathBuf>,
    /// Entry, and whether an earlier process wrote it.
    entries: Mutex<HashMap<Uuid, (Entry, bool)>>,
}

/// When process `pid` started (clock ticks since boot; `/proc/<pid>/stat` field 22).
#[cfg(target_os = "linux")]
fn process_start(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may contain spaces) start after the last ')'.
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(19)?
        .parse()
        .ok()
}

#[cfg(not(target_os = "linux"))]
fn process_start(_pid: u32) -> Option<u64> {
    None
}

/// Kills what is left of a process group a killed agent started. The group's number cannot be
/// taken by another group while any member lives; the leader's start time guards the one
/// remaining case, a new leader that was given the same number after the old group ended.
#[cfg(target_os = "linux")]
fn stop_leftover(pgid: u32, started: u64) {
    if started == 0 {
        return;
    }
    if let Some(now) = process_start(pgid)
        && now != started
    {
        return; // pgid reused by an unrelated process
    }
    let Ok(pgid) = i32::try_from(pgid) else {
        return;
    };
    // SAFETY: kill(2) on a process group this agent created (checked above); no memory.
    let killed = unsafe { libc::kill(-pgid, libc::SIGKILL) } == 0;
    if killed {
        tracing::warn!(pgid, "stopped processes a killed agent left running");
    }
}

#[cfg(not(target_os = "linux"))]
fn stop_leftover(_pgid: u32, _started: u64) {}

fn now_secs() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

impl Journal {
    /// A journal kept only in memory (the load generator's simulated agents).
    pub fn memory() -> Self {
        Journal {
            dir: None,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// Opens (creating) the journal folder and loads what an earlier process left.
    pub fn open(dir: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let mut entries = HashMap::new();
        let cutoff = now_secs() - KEEP_FINISHED_SECS;
        let unstarted_cutoff = now_secs() - KEEP_UNSTARTED_SECS;
        for item in std::fs::read_dir(dir)? {
            let path = item?.path();
            if path.extension().is_some_and(|e| e == "tmp") {
                let _ = std::fs::remove_file(&path);
                continue;
            }
            let Ok(text) = std::fs::read(&path) else {
                continue;
            };
            match serde_json::from_slice::<Entry>(&text) {
                Ok(e) if e.stage == Stage::Finished && e.updated_at < cutoff => {
                    let _ = std::fs::remove_file(&path);
                }
                Ok(e) if e.stage == Stage::Received && e.updated_at < unstarted_cutoff => {
                    let _ = std::fs::remove_file(&path);
                }
                Ok(e) => {
                    if e.stage == Stage::Running {
                        for &(pgid, started) in &e.processes {
                            stop_leftover(pgid, started);
                        }
                    }
                    entries.insert(e.op_id, (e, true));
                }
                Err(err) => {
                    tracing::warn!(file = %path.display(), error = %err, "unreadable journal entry removed");
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
        Ok(Journal {
            dir: Some(dir.to_owned()),
            entries: Mutex::new(entries),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, (Entry, bool)>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn get(&self, op: Uuid) -> Option<(Entry, bool)> {
        self.lock().get(&op).cloned()
    }

    /// Records a stage durably (before the hub is told about it).
    pub fn put(&self, mut entry: Entry) -> std::io::Result<()> {
        entry.updated_at = now_secs();
        if let Some(dir) = &self.dir {
            let path = dir.join(format!("{}.json", entry.op_id));
            let tmp = dir.join(format!("{}.tmp", entry.op_id));
            let json = serde_json::to_vec(&entry).map_err(std::io::Error::other)?;
            {
                use std::io::Write;
                let mut f = std::fs::File::create(&tmp)?;
                f.write_all(&json)?;
                f.sync_data()?;
            }
            std::fs::rename(&tmp, &path)?;
        }
        self.lock().insert(entry.op_id, (entry, false));
        Ok(())
    }

    /// Records a process group started for a running operation.
    pub fn note_process(&self, op: Uuid, pid: u32) -> std::io::Result<()> {
        self.update(op, |e| {
            e.processes.push((pid, process_start(pid).unwrap_or(0)))
        })
    }

    /// Records the state of an operation's wait.
    pub fn set_waiting(&self, op: Uuid, waiting: Waiting) -> std::io::Result<()> {
        self.update(op, |e| e.waiting = Some(waiting))
    }

    /// Changes an operation's entry, if it has one, and writes it.
    fn update(&self, op: Uuid, change: impl FnOnce(&mut Entry)) -> std::io::Result<()> {
        let entry = {
            let mut entries = self.lock();
            let Some((e, _)) = entries.get_mut(&op) else {
                return Ok(());
            };
            change(e);
            e.clone()
        };
        self.put(entry)
    }

    /// Forgets an operation whose result the hub has stored.
    pub fn remove(&self, op: Uuid) {
        if self.lock().remove(&op).is_some()
            && let Some(dir) = &self.dir
        {
            let _ = std::fs::remove_file(dir.join(format!("{op}.json")));
        }
    }

    /// Finished operations whose result the hub has not confirmed yet.
    pub fn unconfirmed(&self) -> Vec<(Uuid, OpOutcome)> {
        self.lock()
            .values()
            .filter_map(|(e, _)| match (&e.stage, &e.outcome) {
                (Stage::Finished, Some(o)) => Some((e.op_id, o.clone())),
                _ => None,
            })
            .collect()
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_proto::ops::OpSpec;

    fn assignment(on_interrupt: OnInterrupt) -> Assignment {
        Assignment {
            op_id: Uuid::new_v4(),
            spec: OpSpec::QuickAvScan,
            timeout_secs: 60,
            output_limit: 1024,
            on_interrupt,
            after: None,
            wait: None,
        }
    }

    fn entry(a: &Assignment, stage: Stage, attempts: u32) -> Entry {
        Entry {
            op_id: a.op_id,
            stage,
            attempts,
            outcome: None,
            updated_at: 0,
            processes: Vec::new(),
            waiting: None,
        }
    }

    #[test]
    fn a_new_operation_runs() {
        let a = assignment(OnInterrupt::Fail);
        assert_eq!(decide(None, false, false, &a), Decision::Run);
    }

    #[test]
    fn a_finished_operation_is_answered_from_the_journal_not_run_again() {
        let a = assignment(OnInterrupt::Rerun);
        let mut e = entry(&a, Stage::Finished, 1);
        let outcome = OpOutcome {
            state: OutcomeState::Succeeded,
            exit_code: Some(0),
            output: "clean".into(),
            error: String::new(),
            reboot_required: false,
        };
        e.outcome = Some(outcome.clone());
        assert_eq!(decide(Some(&e), true, false, &a), Decision::Report(outcome));
    }

    #[test]
    fn a_repeat_of_a_running_operation_is_acknowledged_not_started_twice() {
        let a = assignment(OnInterrupt::Rerun);
        let e = entry(&a, Stage::Running, 1);
        assert_eq!(decide(Some(&e), false, true, &a), Decision::StillRunning);
    }

    #[test]
    fn an_operation_interrupted_by_an_agent_restart_fails_when_its_policy_says_fail() {
        let a = assignment(OnInterrupt::Fail);
        let e = entry(&a, Stage::Running, 1);
        assert!(matches!(
            decide(Some(&e), true, false, &a),
            Decision::Report(OpOutcome {
                state: OutcomeState::Failed,
                ..
            })
        ));
    }

    #[test]
    fn an_interrupted_operation_reruns_up_to_the_attempt_limit_when_its_policy_says_rerun() {
        let a = assignment(OnInterrupt::Rerun);
        assert_eq!(
            decide(Some(&entry(&a, Stage::Running, 1)), true, false, &a),
            Decision::Run
        );
        assert!(matches!(
            decide(
                Some(&entry(&a, Stage::Running, MAX_ATTEMPTS)),
                true,
                false,
                &a
            ),
            Decision::Report(_)
        ));
    }

    #[test]
    fn an_operation_received_but_never_started_runs_after_a_restart_whatever_its_policy() {
        let a = assignment(OnInterrupt::Fail);
        let e = entry(&a, Stage::Received, 0);
        assert_eq!(decide(Some(&e), true, false, &a), Decision::Run);
    }

    #[test]
    fn entries_survive_a_reopen_and_are_marked_inherited() {
        let dir = tempfile::tempdir().unwrap();
        let a = assignment(OnInterrupt::Fail);
        {
            let j = Journal::open(dir.path()).unwrap();
            j.put(entry(&a, Stage::Running, 1)).unwrap();
            assert!(!j.get(a.op_id).unwrap().1);
        }
        let j = Journal::open(dir.path()).unwrap();
        let (e, inherited) = j.get(a.op_id).unwrap();
        assert_eq!(e.stage, Stage::Running);
        assert!(inherited);
        j.remove(a.op_id);
        assert!(Journal::open(dir.path()).unwrap().is_empty());
    }

    #[test]
    fn an_entry_never_started_is_dropped_once_no_operation_can_still_be_alive() {
        let dir = tempfile::tempdir().unwrap();
        let (old, recent) = (assignment(OnInterrupt::Fail), assignment(OnInterrupt::Fail));
        {
            let j = Journal::open(dir.path()).unwrap();
            j.put(entry(&old, Stage::Received, 0)).unwrap();
            j.put(entry(&recent, Stage::Received, 0)).unwrap();
        }
        // Age one entry on disk past the limit, as an agent off for nine days would find it.
        let path = dir.path().join(format!("{}.json", old.op_id));
        let mut e: Entry = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        e.updated_at = now_secs() - 9 * 24 * 3600;
        std::fs::write(&path, serde_json::to_vec(&e).unwrap()).unwrap();
        let j = Journal::open(dir.path()).unwrap();
        assert!(j.get(old.op_id).is_none());
        assert!(j.get(recent.op_id).is_some());
    }
}
