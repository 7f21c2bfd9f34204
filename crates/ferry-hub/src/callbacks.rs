//! The callback delivery worker: takes due events from the outbox (`task_events`), POSTs each
//! to its task's callback URL signed as Standard Webhooks asks, and records every attempt.
//!
//! Ordering: only a task's oldest pending event is ever due (the store's rule), and a task
//! with an attempt in flight is skipped by the main loop, so a task's changes arrive in
//! sequence. Once an event is acknowledged, the same worker goes on at once with the task's
//! next due event (a chain), without waiting for the acknowledgement to be recorded: attempts
//! are recorded in batches by one recorder (one transaction for many receipts), and a task
//! leaves the in-flight set only when its chain ended and the chain's last attempt is
//! committed. A hub killed mid-chain sends the unrecorded events again after its restart,
//! under the same `webhook-id`s.
//!
//! Exactly once: the `webhook-id` is the event's id and never changes. An attempt whose
//! answer was lost (a timeout, a hub killed mid-request) is repeated with the same id, which
//! is how Standard Webhooks receivers drop duplicates.
//!
//! Safety of outbound requests (the URL is the helpdesk's, but the helpdesk is not trusted to
//! point the hub at its own network): HTTPS unless the integration allows plain HTTP; no
//! redirects; no proxy from the environment; every resolved address checked (loopback,
//! private, link-local, CGNAT, multicast and unspecified refused unless the integration allows
//! private addresses); a 15 s timeout; at most 64 KiB of an answer read; with a private CA
//! given, only that CA trusted.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, mpsc};

use crate::AppState;
use crate::secrets::Purpose;
use crate::store::helpdesk::{AttemptNext, AttemptRecord, DueDelivery, IntegrationKeys};
use crate::time_util::now_ms;
use crate::webhooks;

/// Per-attempt limit, connection included.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(15);
/// Most bytes of a receiver's answer read (and then dropped).
const MAX_ANSWER_BYTES: usize = 64 * 1024;
/// Attempts in flight at once, across all receivers.
const MAX_IN_FLIGHT: usize = 256;
/// How long an integration's client and keys are reused before being read again.
const KEYS_TTL: Duration = Duration::from_secs(10);
/// Longest `Retry-After` honoured (a longer one waits this long).
const MAX_RETRY_AFTER_SECS: u64 = 6 * 3600;

/// What an outbound client is built from: whether internal addresses are allowed, and the
/// SHA-256 of the private CA's PEM, if any.
type ClientKey = (bool, Option<Vec<u8>>);

/// Shared state of the worker: its wake-up and its per-integration HTTP clients.
#[derive(Default)]
pub struct Outbox {
    /// Something was queued (or redelivered): look now.
    pub wake: Notify,
    /// The same, for the notification worker.
    pub notifications: Notify,
    /// Per integration: its live keys and client, read again after [`KEYS_TTL`].
    clients: Mutex<HashMap<uuid::Uuid, (Instant, Arc<Receiver>)>>,
    /// HTTP clients by what they are built from (building one reads the platform's roots:
    /// milliseconds of CPU, so never once per delivery).
    http: Mutex<HashMap<ClientKey, reqwest::Client>>,
    /// One refresh at a time: a burst of deliveries must not rebuild the same client in
    /// parallel.
    refresh: tokio::sync::Mutex<()>,
}

impl Outbox {
    /// Forgets an integration's cached client and keys (its secret was rotated).
    pub fn forget(&self, integration: uuid::Uuid) {
        lock(&self.clients).remove(&integration);
    }

    /// Something was queued: wakes the callback worker and the notification worker.
    pub fn poke(&self) {
        self.wake.notify_one();
        self.notifications.notify_one();
    }

    /// Wakes the workers that have something new (the hot paths: agent reports, sweeps).
    pub fn poke_for(&self, queued: crate::store::helpdesk::Queued) {
        if queued.callbacks {
            self.wake.notify_one();
        }
        if queued.notifications {
            self.notifications.notify_one();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// One integration's client and live signing keys.
struct Receiver {
    http: reqwest::Client,
    allow_http: bool,
    allow_private: bool,
    keys: Vec<Vec<u8>>,
}

/// Why an outbound URL or address is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GuardError {
    #[error("not a valid absolute URL")]
    Malformed,
    #[error("only https:// URLs are allowed (the integration does not allow plain HTTP)")]
    SchemeNotAllowed,
    #[error("URLs with credentials are not allowed")]
    Credentials,
    #[error(
        "the address {0} is loopback, private or link-local (not allowed for this integration)"
    )]
    PrivateAddress(IpAddr),
}

/// Checks a callback URL's form: scheme, no credentials, a host.
pub fn check_url(url: &str, allow_http: bool) -> Result<reqwest::Url, GuardError> {
    let parsed = reqwest::Url::parse(url).map_err(|_| GuardError::Malformed)?;
    match parsed.scheme() {
        "https" => {}
        "http" if allow_http => {}
        _ => return Err(GuardError::SchemeNotAllowed),
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(GuardError::Credentials);
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(GuardError::Malformed);
    }
    Ok(parsed)
}

/// Loopback, private, link-local, shared (CGNAT), unspecified, multicast, broadcast and
/// documentation addresses: none of them is a helpdesk on the internet.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_multicast()
                || v4.is_broadcast()
                || v4.is_documentation()
                || o[0] == 0
                || (o[0] == 100 && (o[1] & 0xc0) == 64) // 100.64.0.0/10
                || (o[0] == 198 && (o[1] & 0xfe) == 18) // 198.18.0.0/15
                || (o[0] == 192 && o[1] == 0 && o[2] == 0) // 192.0.0.0/24
                || o[0] >= 240
        }
        IpAddr::V6(v6) => {
            // IPv4-mapped and IPv4-compatible addresses are their IPv4 address.
            if let Some(v4) = v6.to_ipv4() {
                return is_internal(IpAddr::V4(v4));
            }
            let s = v6.segments();
            // 6to4 carries an IPv4 address in its second and third segments.
            if s[0] == 0x2002 {
                let [a, b] = s[1].to_be_bytes();
                let [c, d] = s[2].to_be_bytes();
                return is_internal(IpAddr::V4(std::net::Ipv4Addr::new(a, b, c, d)));
            }
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local
                || (s[0] & 0xffc0) == 0xfe80 // link-local
                || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated)
                || (s[0] == 0x64 && s[1] == 0xff9b) // NAT64 of any IPv4
                || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
        }
    }
}

/// A resolver that drops addresses the integration may not reach, so that a name cannot be
/// pointed at an internal address (DNS rebinding included: the checked addresses are the
/// ones connected to).
struct GuardedResolver {
    allow_private: bool,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow_private = self.allow_private;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = addrs
                .iter()
                .copied()
                .filter(|a| allow_private || !is_internal(a.ip()))
                .collect();
            if allowed.is_empty() {
                let refused = addrs.first().map(SocketAddr::ip);
                return Err(match refused {
                    Some(ip) => Box::new(GuardError::PrivateAddress(ip)) as _,
                    None => format!("{host} has no addresses").into(),
                });
            }
            Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The HTTP client for one integration's callbacks.
pub fn receiver_client(
    allow_private: bool,
    ca_pem: Option<&str>,
) -> Result<reqwest::Client, String> {
    let mut builder = reqwest::Client::builder()
        .user_agent(concat!("ferry-webhooks/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(ATTEMPT_TIMEOUT)
        .connect_timeout(Duration::from_secs(10))
        .min_tls_version(reqwest::tls::Version::TLS_1_2)
        .pool_idle_timeout(Duration::from_secs(30))
        .dns_resolver(Arc::new(GuardedResolver { allow_private }));
    if let Some(pem) = ca_pem {
        let certs = reqwest::Certificate::from_pem_bundle(pem.as_bytes())
            .map_err(|e| format!("CA certificate: {e}"))?;
        if certs.is_empty() {
            return Err("no certificate in the CA PEM".to_owned());
        }
        builder = builder.tls_certs_only(certs);
    }
    builder.build().map_err(|e| e.to_string())
}

impl AppState {
    fn receiver(&self, keys: IntegrationKeys) -> Result<Arc<Receiver>, String> {
        let now = now_ms();
        let mut secrets = Vec::new();
        for (sealed, until) in std::iter::once((&keys.secret_sealed, i64::MAX))
            .chain(keys.previous.as_ref().map(|(s, u)| (s, *u)))
        {
            if until <= now {
                continue;
            }
            let secret = self
                .sealer
                .open(Purpose::SigningSecret, sealed)
                .ok_or("the integration's signing secret does not open with this hub's key")?;
            let secret = String::from_utf8(secret).map_err(|_| "signing secret is not UTF-8")?;
            secrets.push(webhooks::secret_key(&secret).ok_or("malformed signing secret")?);
        }
        let http = self.outbound_client(keys.allow_private, keys.ca_pem.as_deref())?;
        Ok(Arc::new(Receiver {
            http,
            allow_http: keys.allow_http,
            allow_private: keys.allow_private,
            keys: secrets,
        }))
    }

    /// The (cached) client for outbound requests with these rules.
    pub(crate) fn outbound_client(
        &self,
        allow_private: bool,
        ca_pem: Option<&str>,
    ) -> Result<reqwest::Client, String> {
        let fingerprint = (
            allow_private,
            ca_pem.map(|p| <sha2::Sha256 as sha2::Digest>::digest(p.as_bytes()).to_vec()),
        );
        if let Some(h) = lock(&self.outbox.http).get(&fingerprint) {
            return Ok(h.clone());
        }
        let h = receiver_client(allow_private, ca_pem)?;
        lock(&self.outbox.http).insert(fingerprint, h.clone());
        Ok(h)
    }

    async fn receiver_for(&self, integration: uuid::Uuid) -> Result<Arc<Receiver>, String> {
        let fresh = || {
            lock(&self.outbox.clients)
                .get(&integration)
                .filter(|(at, _)| at.elapsed() < KEYS_TTL)
                .map(|(_, r)| r.clone())
        };
        if let Some(r) = fresh() {
            return Ok(r);
        }
        let _one = self.outbox.refresh.lock().await;
        if let Some(r) = fresh() {
            return Ok(r);
        }
        let keys = self
            .store
            .integration_keys(integration)
            .await
            .map_err(|e| e.to_string())?
            .ok_or("the integration was deleted")?;
        // An ended grace period drops the old key at the next read, within KEYS_TTL.
        let r = self.receiver(keys)?;
        lock(&self.outbox.clients).insert(integration, (Instant::now(), r.clone()));
        Ok(r)
    }
}

/// The delay before attempt `attempts + 1` (after `attempts` failures), with ±20% jitter; `None`
/// when the schedule is used up.
pub(crate) fn backoff(schedule: &[u64], attempts: u32) -> Option<Duration> {
    let base = *schedule.get(attempts as usize)?;
    let ms = base.saturating_mul(1000) as f64 * (0.8 + 0.4 * fastrand_f64());
    Some(Duration::from_millis(ms as u64))
}

fn fastrand_f64() -> f64 {
    let mut b = [0u8; 8];
    crate::secrets::fill_random(&mut b);
    (u64::from_le_bytes(b) >> 11) as f64 / (1u64 << 53) as f64
}

/// `Retry-After` in seconds (the HTTP-date form is read as "the schedule's delay").
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let secs: u64 = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(secs.clamp(1, MAX_RETRY_AFTER_SECS)))
}

/// What one attempt found.
pub(crate) struct Outcome {
    pub(crate) status: Option<u16>,
    pub(crate) error: Option<String>,
    pub(crate) retry_after: Option<Duration>,
}

async fn attempt(state: &AppState, d: &DueDelivery) -> Outcome {
    let fail = |error: String| Outcome {
        status: None,
        error: Some(error),
        retry_after: None,
    };
    let Some(integration) = d.integration_id else {
        return fail("the task has no integration to sign with".to_owned());
    };
    let receiver = match state.receiver_for(integration).await {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    let keys: Vec<&[u8]> = receiver.keys.iter().map(Vec::as_slice).collect();
    post_signed(
        &receiver.http,
        &d.callback_url,
        receiver.allow_http,
        receiver.allow_private,
        &keys,
        &d.event_id,
        &d.body,
    )
    .await
}

/// POSTs `body` to `url` signed with `keys` under `id`, after the outbound checks.
pub(crate) async fn post_signed(
    http: &reqwest::Client,
    url: &str,
    allow_http: bool,
    allow_private: bool,
    keys: &[&[u8]],
    id: &str,
    body: &str,
) -> Outcome {
    let fail = |error: String| Outcome {
        status: None,
        error: Some(error),
        retry_after: None,
    };
    let url = match check_url(url, allow_http) {
        Ok(u) => u,
        Err(e) => return fail(e.to_string()),
    };
    // An address in the URL itself never reaches the resolver: check it here.
    if let Some(ip) = url
        .host_str()
        .and_then(|h| h.trim_matches(['[', ']']).parse::<IpAddr>().ok())
        && !allow_private
        && is_internal(ip)
    {
        return fail(GuardError::PrivateAddress(ip).to_string());
    }
    let timestamp = now_ms() / 1000;
    let signature = webhooks::signature_header(keys, id, timestamp, body.as_bytes());
    let sent = http
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(webhooks::ID_HEADER, id)
        .header(webhooks::TIMESTAMP_HEADER, timestamp.to_string())
        .header(webhooks::SIGNATURE_HEADER, signature)
        .body(body.to_owned())
        .send()
        .await;
    match sent {
        Ok(mut response) => {
            let status = response.status();
            let retry_after = retry_after(response.headers());
            // Read a little of the answer (so the connection can be reused), then drop it.
            let mut read = 0usize;
            while read < MAX_ANSWER_BYTES {
                match response.chunk().await {
                    Ok(Some(c)) => read += c.len(),
                    _ => break,
                }
            }
            Outcome {
                status: Some(status.as_u16()),
                error: (!status.is_success()).then(|| format!("answered {status}")),
                retry_after,
            }
        }
        Err(e) => fail(describe(&e)),
    }
}

/// An error with its causes, without the URL (which may carry a helpdesk's token in its path).
fn describe(e: &reqwest::Error) -> String {
    use std::error::Error as _;
    let mut s = if e.is_timeout() {
        "timed out".to_owned()
    } else if e.is_connect() {
        "could not connect".to_owned()
    } else {
        "request failed".to_owned()
    };
    let mut source = e.source();
    while let Some(cause) = source {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        source = cause.source();
    }
    s.truncate(s.floor_char_boundary(500));
    s
}

/// Runs the worker until shutdown.
pub async fn run(state: AppState) {
    let in_flight: Arc<Mutex<HashSet<uuid::Uuid>>> = Arc::default();
    let (done_tx, done_rx) = mpsc::channel::<Done>(MAX_IN_FLIGHT * 2);
    let recorder = tokio::spawn(record(state.clone(), done_rx, in_flight.clone()));
    let mut shutdown = state.shutdown.clone();
    let sem = Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT));
    loop {
        let now = now_ms();
        let mut wait_ms = 30_000i64;
        let busy: Vec<uuid::Uuid> = lock(&in_flight).iter().copied().collect();
        let room = sem.available_permits() as u32;
        let due = if room == 0 {
            // Every permit is taken: a finishing chain wakes the loop.
            Ok(Vec::new())
        } else {
            state.store.due_deliveries(now, &busy, room).await
        };
        match due {
            Ok(due) => {
                for d in due {
                    if !lock(&in_flight).insert(d.task_id) {
                        continue;
                    }
                    let Ok(permit) = sem.clone().acquire_owned().await else {
                        break;
                    };
                    let state = state.clone();
                    let done = done_tx.clone();
                    tokio::spawn(async move {
                        let mut permit = Some(permit);
                        let mut current = d;
                        loop {
                            let record = deliver(&state, &current).await;
                            let next = match record.next {
                                AttemptNext::Delivered => state
                                    .store
                                    .next_in_line(current.task_id, current.seq, now_ms())
                                    .await
                                    .ok()
                                    .flatten(),
                                _ => None,
                            };
                            let release = next.is_none();
                            if release {
                                // Before the recorder wakes the loop: it must find room.
                                drop(permit.take());
                            }
                            let _ = done
                                .send(Done {
                                    delivery: current,
                                    record,
                                    release,
                                })
                                .await;
                            match next {
                                Some(n) => current = n,
                                None => break,
                            }
                        }
                    });
                }
                // What is due now is in flight or was just taken: a receipt or a new change
                // wakes the loop. Otherwise sleep until the next retry.
                match state.store.next_delivery_at(now).await {
                    Ok(Some(next)) => wait_ms = next - now,
                    Ok(None) => {}
                    Err(e) => tracing::error!(error = %e, "reading the callback outbox failed"),
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "reading the callback outbox failed; retrying");
                wait_ms = 1000;
            }
        }
        tokio::select! {
            _ = state.outbox.wake.notified() => {}
            _ = tokio::time::sleep(Duration::from_millis(wait_ms.clamp(1, 30_000) as u64)) => {}
            _ = shutdown.changed() => break,
        }
    }
    drop(done_tx);
    // Attempts in flight finish within their timeout; their receipts are recorded first. A
    // recorder still busy after that (a chain going on, a store failing) stops: what it did not
    // record is sent again after the restart, under the same webhook-ids.
    let abort = recorder.abort_handle();
    if tokio::time::timeout(ATTEMPT_TIMEOUT + Duration::from_secs(1), recorder)
        .await
        .is_err()
    {
        abort.abort();
    }
}

async fn deliver(state: &AppState, d: &DueDelivery) -> AttemptRecord {
    let at = now_ms();
    let started = Instant::now();
    let outcome = attempt(state, d).await;
    let latency_ms = started.elapsed().as_millis() as u64;
    let next = match outcome.status {
        Some(s) if (200..300).contains(&s) => AttemptNext::Delivered,
        Some(410) => AttemptNext::Gone,
        _ => {
            let schedule = &state.config.callback_retry_secs;
            match (backoff(schedule, d.attempts), outcome.retry_after) {
                (None, _) => AttemptNext::Failed,
                (Some(_), Some(ra)) => AttemptNext::RetryAt(now_ms() + ra.as_millis() as i64),
                (Some(delay), None) => AttemptNext::RetryAt(now_ms() + delay.as_millis() as i64),
            }
        }
    };
    match &next {
        AttemptNext::Delivered => {}
        AttemptNext::Failed => {
            tracing::warn!(delivery = %d.event_id, task = %d.task_id, error = ?outcome.error, "callback given up after its retry window")
        }
        AttemptNext::Gone => {
            tracing::info!(delivery = %d.event_id, task = %d.task_id, "the helpdesk answered 410 Gone; callbacks for the task stop")
        }
        AttemptNext::RetryAt(_) => {
            tracing::debug!(delivery = %d.event_id, task = %d.task_id, error = ?outcome.error, "callback attempt failed; will retry")
        }
    }
    AttemptRecord {
        at,
        status_code: outcome.status,
        latency_ms,
        error: outcome.error,
        next,
    }
}

/// One attempt, for the recorder; `release` ends the task's chain.
struct Done {
    delivery: DueDelivery,
    record: AttemptRecord,
    release: bool,
}

/// Commits attempts in batches; a task leaves the in-flight set once its chain's last attempt
/// is stored.
async fn record(
    state: AppState,
    mut rx: mpsc::Receiver<Done>,
    in_flight: Arc<Mutex<HashSet<uuid::Uuid>>>,
) {
    let mut batch: Vec<Done> = Vec::new();
    while rx.recv_many(&mut batch, 512).await > 0 {
        let mut released = Vec::new();
        let records: Vec<(String, AttemptRecord)> = batch
            .drain(..)
            .map(|d| {
                if d.release {
                    released.push(d.delivery.task_id);
                }
                (d.delivery.event_id, d.record)
            })
            .collect();
        loop {
            match state.store.record_attempts(&records).await {
                Ok(()) => break,
                Err(e) => {
                    tracing::error!(error = %e, "recording callback attempts failed; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
        let delivered = records
            .iter()
            .filter(|(_, r)| matches!(r.next, AttemptNext::Delivered))
            .count();
        state
            .metrics
            .callbacks_delivered
            .fetch_add(delivered as u64, std::sync::atomic::Ordering::Relaxed);
        state
            .metrics
            .callback_attempts
            .fetch_add(records.len() as u64, std::sync::atomic::Ordering::Relaxed);
        {
            let mut f = lock(&in_flight);
            for task in &released {
                f.remove(task);
            }
        }
        state.outbox.wake.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_addresses_are_recognised_in_both_families() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "::127.0.0.1",
            "2002:a00:1::1",
            "192.0.0.8",
            "64:ff9b::a00:1",
        ] {
            assert!(is_internal(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["93.184.216.34", "2606:2800:220:1::1", "8.8.8.8"] {
            assert!(!is_internal(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn plain_http_and_credentials_are_refused_by_default() {
        assert_eq!(
            check_url("http://helpdesk.example/cb", false).err(),
            Some(GuardError::SchemeNotAllowed)
        );
        assert!(check_url("http://helpdesk.example/cb", true).is_ok());
        assert_eq!(
            check_url("https://u:p@helpdesk.example/cb", false).err(),
            Some(GuardError::Credentials)
        );
        assert_eq!(
            check_url("file:///etc/passwd", true).err(),
            Some(GuardError::SchemeNotAllowed)
        );
    }

    #[test]
    fn the_backoff_schedule_ends() {
        let schedule = [1, 10];
        let first = backoff(&schedule, 0).unwrap();
        assert!(first >= Duration::from_millis(800) && first <= Duration::from_millis(1200));
        assert!(backoff(&schedule, 1).unwrap() >= Duration::from_secs(8));
        assert_eq!(backoff(&schedule, 2), None);
    }
}
