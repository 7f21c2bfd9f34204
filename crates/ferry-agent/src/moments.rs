//! Moments an operation can wait for on the device, a helpdesk task's `when`: the next
//! startup and the next logon.
//!
//! A startup is a new boot, told apart from a restart of the agent alone by the boot's
//! identity (Linux's random boot ID, Windows' boot time). A logon is a user who was not
//! logged on at the last look and is now. Both are judged against what the journal recorded
//! when the wait began, so a startup or logon that happened while the agent was stopped
//! still counts, and a restart of the agent alone does not.

use std::path::Path;
use std::time::Duration;

use ferry_proto::ops::{Moment, OpOutcome, OutcomeState, WaitFor};
use tokio_util::sync::CancellationToken;

use crate::exec::ExecSettings;

/// Windows boot times read a second apart may differ by a rounding step; two readings this
/// close are the same boot.
const BOOT_TIME_SLACK_SECS: i64 = 90;

/// This boot's identity, or `None` when it cannot be read.
pub fn boot_id(settings: &ExecSettings) -> Option<String> {
    if let Some(file) = &settings.boot_id_file {
        return read_trimmed(file);
    }
    platform_boot_id()
}

fn read_trimmed(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let id = text.trim();
    (!id.is_empty()).then(|| id.to_owned())
}

#[cfg(target_os = "linux")]
fn platform_boot_id() -> Option<String> {
    read_trimmed(Path::new("/proc/sys/kernel/random/boot_id"))
}

/// The boot time in Unix seconds as `boot@<secs>`: now less the milliseconds since boot.
#[cfg(windows)]
fn platform_boot_id() -> Option<String> {
    // SAFETY: GetTickCount64 takes nothing and cannot fail.
    let up_ms = unsafe { windows_sys::Win32::System::SystemInformation::GetTickCount64() };
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    Some(format!("boot@{}", now - (up_ms / 1000) as i64))
}

#[cfg(not(any(target_os = "linux", windows)))]
fn platform_boot_id() -> Option<String> {
    None
}

/// Whether two boot identities name the same boot.
pub fn same_boot(a: &str, b: &str) -> bool {
    let time = |s: &str| s.strip_prefix("boot@").and_then(|t| t.parse::<i64>().ok());
    match (time(a), time(b)) {
        (Some(x), Some(y)) => (x - y).abs() <= BOOT_TIME_SLACK_SECS,
        _ => a == b,
    }
}

/// How long the device has been up, when it can be told.
fn uptime() -> Option<Duration> {
    #[cfg(target_os = "linux")]
    {
        let text = std::fs::read_to_string("/proc/uptime").ok()?;
        let secs: f64 = text.split_whitespace().next()?.parse().ok()?;
        Some(Duration::from_secs_f64(secs))
    }
    #[cfg(windows)]
    {
        // SAFETY: as above.
        let ms = unsafe { windows_sys::Win32::System::SystemInformation::GetTickCount64() };
        Some(Duration::from_millis(ms))
    }
    #[cfg(not(any(target_os = "linux", windows)))]
    {
        None
    }
}

/// Users in `now` that were not in `before`, keeping those the wait is for (`wanted`, empty
/// for anyone). Names compare without regard to case, as Windows account names do.
pub fn new_logons(before: &[String], now: &[String], wanted: &[String]) -> Vec<String> {
    let has = |list: &[String], u: &str| list.iter().any(|x| x.eq_ignore_ascii_case(u));
    now.iter()
        .filter(|u| !has(before, u))
        .filter(|u| wanted.is_empty() || has(wanted, u))
        .cloned()
        .collect()
}

/// Whether this platform has a boot identity of its own.
const HAS_BOOT_ID: bool = cfg!(any(target_os = "linux", windows));

fn failed_here(why: &str) -> OpOutcome {
    OpOutcome {
        state: OutcomeState::Failed,
        exit_code: None,
        output: String::new(),
        error: why.to_owned(),
        reboot_required: false,
    }
}

/// Who counts as logged on after a read: everyone read now, and whoever is missing from this
/// read only (a user is forgotten, so that a later logon counts, once gone from two reads in a
/// row: Explorer restarting, or one owner query failing, is not a logoff and a logon).
pub fn next_seen(seen: &[String], last: Option<&[String]>, now: &[String]) -> Vec<String> {
    let has = |list: &[String], u: &str| list.iter().any(|x| x.eq_ignore_ascii_case(u));
    let mut out: Vec<String> = now.to_vec();
    for u in seen {
        let gone_twice = !has(now, u) && last.is_some_and(|l| !has(l, u));
        if !gone_twice && !has(&out, u) {
            out.push(u.clone());
        }
    }
    out.sort_by_key(|u| u.to_lowercase());
    out
}

/// How a wait ended when it did not reach its moment.
fn gave_up(wait: &WaitFor, cancel: &CancellationToken) -> OpOutcome {
    if cancel.is_cancelled() {
        return OpOutcome {
            state: OutcomeState::Cancelled,
            exit_code: None,
            output: String::new(),
            error: "cancelled while waiting for its moment".into(),
            reboot_required: false,
        };
    }
    let what = if wait.moment.is_logon() {
        "logon"
    } else {
        "startup"
    };
    OpOutcome {
        state: OutcomeState::Failed,
        exit_code: None,
        output: String::new(),
        error: format!(
            "no {what} happened on this device while the operation lived ({} s); it was not run",
            wait.within_secs
        ),
        reboot_required: false,
    }
}

/// What the journal remembers of a wait, and how to save it again.
pub trait WaitState: Send + Sync {
    fn load(&self) -> Option<crate::journal::Waiting>;
    fn save(&self, w: crate::journal::Waiting);
}

/// Waits for `wait`'s moment; `Ok(line)` describes the moment for the operation's output.
pub async fn wait_for(
    settings: &ExecSettings,
    hostname: &str,
    wait: &WaitFor,
    state: &dyn WaitState,
    cancel: &CancellationToken,
) -> Result<String, OpOutcome> {
    // Handed out after its life ended (a device back just after the expiry): not run.
    if wait.within_secs == 0 {
        return Err(gave_up(wait, cancel));
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(wait.within_secs);
    let gone = |_| gave_up(wait, cancel);
    let every = Duration::from_secs(settings.logon_poll_secs.max(1));
    // What the device looks like now. A reading that fails is not "a new boot" nor "nobody
    // logged on": it is read again until it works (or the wait ends).
    let boot = loop {
        match boot_id(settings) {
            Some(b) => break b,
            // A logon wait keeps the boot only for the record.
            None if wait.moment.is_logon() => break String::new(),
            None if settings.boot_id_file.is_none() && !HAS_BOOT_ID => {
                return Err(failed_here(
                    "this device cannot tell a startup from a restart of the agent \
                     (set exec.boot_id_file)",
                ));
            }
            None => sleep_or(every, deadline, cancel).await.map_err(gone)?,
        }
    };
    let mut waiting = match state.load() {
        Some(w) => w,
        None => {
            let users = if wait.moment.is_logon() {
                loop {
                    match crate::inventory::read_users(hostname, &settings.users_command).await {
                        Some(u) => break u,
                        None => sleep_or(every, deadline, cancel).await.map_err(gone)?,
                    }
                }
            } else {
                Vec::new()
            };
            let w = crate::journal::Waiting {
                boot: boot.clone(),
                users,
            };
            state.save(w.clone());
            w
        }
    };
    let settle = Duration::from_secs(settings.after_delay_secs);
    let line = match wait.moment {
        Moment::DuringStartup | Moment::AfterStartup => {
            let now = boot;
            if same_boot(&waiting.boot, &now) {
                // The next startup comes with a new agent process; this one only waits to
                // be stopped, cancelled or out of time.
                tokio::select! {
                    _ = cancel.cancelled() => {}
                    _ = tokio::time::sleep_until(deadline) => {}
                }
                return Err(gave_up(wait, cancel));
            }
            if wait.moment == Moment::AfterStartup
                && let Some(up) = uptime()
                && up < settle
            {
                sleep_or(settle - up, deadline, cancel)
                    .await
                    .map_err(gone)?;
            }
            format!("[ferry] ran {} (boot {now})", wait.moment.as_str())
        }
        Moment::DuringLogon | Moment::AfterLogon => {
            let mut last: Option<Vec<String>> = None;
            let who = loop {
                if let Some(now) =
                    crate::inventory::read_users(hostname, &settings.users_command).await
                {
                    let fresh = new_logons(&waiting.users, &now, &wait.users);
                    if !fresh.is_empty() {
                        break fresh;
                    }
                    let seen = next_seen(&waiting.users, last.as_deref(), &now);
                    if seen != waiting.users {
                        waiting.users = seen;
                        state.save(waiting.clone());
                    }
                    last = Some(now);
                }
                sleep_or(every, deadline, cancel).await.map_err(gone)?;
            };
            if wait.moment == Moment::AfterLogon {
                sleep_or(settle, deadline, cancel).await.map_err(gone)?;
            }
            format!("[ferry] ran {} of {}", wait.moment.as_str(), who.join(", "))
        }
    };
    // A moment that comes only as the operation's life ends is missed, not taken.
    if tokio::time::Instant::now() >= deadline {
        return Err(gave_up(wait, cancel));
    }
    tracing::info!(moment = wait.moment.as_str(), "{line}");
    Ok(line)
}

/// Sleeps `d`, or fails when cancelled or past `deadline` first.
async fn sleep_or(
    d: Duration,
    deadline: tokio::time::Instant,
    cancel: &CancellationToken,
) -> Result<(), ()> {
    tokio::select! {
        _ = cancel.cancelled() => Err(()),
        _ = tokio::time::sleep_until(deadline) => Err(()),
        _ = tokio::time::sleep(d) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_user_who_was_already_logged_on_is_not_a_logon() {
        let before = names(&["CORP\\ann"]);
        assert!(new_logons(&before, &names(&["corp\\ANN"]), &[]).is_empty());
    }

    #[test]
    fn a_user_who_appears_is_a_logon() {
        let before = names(&["CORP\\ann"]);
        let now = names(&["CORP\\ann", "CORP\\bob"]);
        assert_eq!(new_logons(&before, &now, &[]), names(&["CORP\\bob"]));
    }

    #[test]
    fn a_wait_for_named_users_ignores_everyone_else() {
        let now = names(&["CORP\\bob", "CORP\\eve"]);
        assert_eq!(
            new_logons(&[], &now, &names(&["corp\\EVE"])),
            names(&["CORP\\eve"])
        );
        assert!(new_logons(&[], &names(&["CORP\\bob"]), &names(&["CORP\\eve"])).is_empty());
    }

    #[test]
    fn a_user_missing_from_one_read_is_still_logged_on_and_from_two_is_gone() {
        let seen = names(&["CORP\\ann", "CORP\\bob"]);
        let now = names(&["CORP\\bob"]);
        // First read without Ann: she is kept (Explorer may be restarting)…
        let once = next_seen(&seen, Some(&seen), &now);
        assert_eq!(once, seen);
        assert!(new_logons(&once, &seen, &[]).is_empty());
        // …the second in a row forgets her, so that her return is a logon.
        let twice = next_seen(&once, Some(&now), &now);
        assert_eq!(twice, now);
        assert_eq!(new_logons(&twice, &seen, &[]), names(&["CORP\\ann"]));
    }

    #[test]
    fn boot_times_a_rounding_step_apart_are_the_same_boot() {
        assert!(same_boot("boot@1000", "boot@1001"));
        assert!(!same_boot("boot@1000", "boot@5000"));
        assert!(same_boot("abc", "abc"));
        assert!(!same_boot("abc", "abd"));
    }
}
