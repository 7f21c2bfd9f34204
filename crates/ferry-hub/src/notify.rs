//! Per-technician notifications: the worker that sends what `notifications` holds (written
//! with each status change of a technician's tasks, in the same transaction) by webhook —
//! signed exactly as helpdesk callbacks are, with the rule's own secret — or by e-mail through
//! the configured SMTP server.
//!
//! What a notification carries is the task's change: request, status, reason, counts and the
//! failed devices. No secret, password or key is ever part of it; the SMTP password is read
//! from its file at start and lives only in the transport.

use std::time::{Duration, Instant};

use anyhow::Context;
use ferry_proto::helpdesk::{CallbackEvent, NotificationChannel};
use lettre::message::{Mailbox, header::ContentType};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, CertificateStore, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::AppState;
use crate::callbacks::{ATTEMPT_TIMEOUT, post_signed};
use crate::config::{HubConfig, SmtpSecurity};
use crate::secrets::Purpose;
use crate::store::helpdesk::{AttemptNext, DueNotification};
use crate::time_util::now_ms;
use crate::webhooks;

/// Notifications taken per round.
const BATCH: u32 = 64;

/// The SMTP transport and sender, built once from the configuration.
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer").field("from", &self.from).finish()
    }
}

impl Mailer {
    /// `None` when no SMTP server is configured.
    pub fn from_config(config: &HubConfig) -> anyhow::Result<Option<Mailer>> {
        let Some(server) = &config.smtp_server else {
            return Ok(None);
        };
        let from: Mailbox = config
            .smtp_from
            .as_deref()
            .context("smtp_from is needed with smtp_server")?
            .parse()
            .context("smtp_from is not an e-mail address")?;
        let tls = || -> anyhow::Result<TlsParameters> {
            let mut b = TlsParameters::builder(server.clone());
            if let Some(path) = &config.smtp_ca_cert {
                let pem = std::fs::read(path)
                    .with_context(|| format!("reading smtp_ca_cert {}", path.display()))?;
                let cert = Certificate::from_pem(&pem)
                    .with_context(|| format!("smtp_ca_cert {}", path.display()))?;
                // Only the private CA: the server's certificate must chain to it.
                b = b
                    .certificate_store(CertificateStore::None)
                    .add_root_certificate(cert);
            }
            b.build_rustls().context("SMTP TLS settings")
        };
        let (security, port) = match config.smtp_security {
            SmtpSecurity::Starttls => (Tls::Required(tls()?), 587),
            SmtpSecurity::Tls => (Tls::Wrapper(tls()?), 465),
            SmtpSecurity::None => (Tls::None, 25),
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(server.as_str())
            .port(config.smtp_port.unwrap_or(port))
            .tls(security)
            .timeout(Some(ATTEMPT_TIMEOUT));
        if let (Some(user), Some(file)) = (&config.smtp_username, &config.smtp_password_file) {
            let password = std::fs::read_to_string(file)
                .with_context(|| format!("reading smtp_password_file {}", file.display()))?;
            builder = builder.credentials(Credentials::new(
                user.clone(),
                password.trim_end_matches(['\r', '\n']).to_owned(),
            ));
        }
        Ok(Some(Mailer {
            transport: builder.build(),
            from,
        }))
    }
}

/// The subject and text of a notification e-mail.
pub fn email_text(event: &CallbackEvent) -> (String, String) {
    let d = &event.data;
    let subject = format!(
        "[Ferry] {}: task {}",
        one_line(&d.request_ref, 120),
        d.status.as_str().replace('_', " ")
    );
    let mut body = format!(
        "Request:  {}\nTask:     {}\nStatus:   {}{}\nDevices:  {} in all, {} succeeded, {} failed, {} expired, {} cancelled\n",
        d.request_ref,
        d.task_id,
        d.status.as_str(),
        d.previous_status
            .map(|p| format!(" (was {})", p.as_str()))
            .unwrap_or_default(),
        d.counts.total,
        d.counts.succeeded,
        d.counts.failed,
        d.counts.expired,
        d.counts.cancelled,
    );
    if let Some(r) = &d.reason {
        body.push_str(&format!("Reason:   {r}\n"));
    }
    if !d.failures.is_empty() {
        body.push_str("\nDevices that did not succeed:\n");
        for f in &d.failures {
            body.push_str(&format!(
                "  {}  {}  {}\n",
                f.hostname,
                f.state.as_str(),
                f.error
                    .as_deref()
                    .map(|e| one_line(e, 200))
                    .unwrap_or_default()
            ));
        }
    }
    body.push_str(&format!(
        "\nChanged at {}. You receive this because of your notification rules in Ferry.\n",
        event
            .timestamp
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default()
    ));
    (subject, body)
}

/// The first line of `s`, at most `max` characters, without control characters.
fn one_line(s: &str, max: usize) -> String {
    s.lines()
        .next()
        .unwrap_or("")
        .chars()
        .filter(|c| !c.is_control())
        .take(max)
        .collect()
}

async fn send(state: &AppState, n: &DueNotification) -> Result<(), (String, Option<Duration>)> {
    match n.channel {
        NotificationChannel::Webhook => {
            let secret = n
                .secret_sealed
                .as_deref()
                .and_then(|s| state.sealer.open(Purpose::SigningSecret, s))
                .and_then(|s| String::from_utf8(s).ok())
                .and_then(|s| webhooks::secret_key(&s))
                .ok_or(("the rule's signing secret does not open".to_owned(), None))?;
            let http = state
                .outbound_client(n.allow_private, None)
                .map_err(|e| (e, None))?;
            let out = post_signed(
                &http,
                &n.target,
                n.allow_http,
                n.allow_private,
                &[&secret],
                &n.id,
                &n.body,
            )
            .await;
            match out.status {
                Some(s) if (200..300).contains(&s) => Ok(()),
                _ => Err((
                    out.error.unwrap_or_else(|| "failed".to_owned()),
                    out.retry_after,
                )),
            }
        }
        NotificationChannel::Email => {
            let mailer = state
                .mailer
                .as_ref()
                .ok_or(("the hub has no SMTP server configured".to_owned(), None))?;
            let event: CallbackEvent = serde_json::from_str(&n.body)
                .map_err(|e| (format!("stored event unreadable: {e}"), None))?;
            let (subject, text) = email_text(&event);
            let to: Mailbox = n
                .target
                .parse()
                .map_err(|e| (format!("recipient: {e}"), None))?;
            let message = Message::builder()
                .from(mailer.from.clone())
                .to(to)
                .subject(subject)
                .header(ContentType::TEXT_PLAIN)
                .body(text)
                .map_err(|e| (format!("building the message: {e}"), None))?;
            mailer
                .transport
                .send(message)
                .await
                .map(drop)
                .map_err(|e| (format!("SMTP: {e}"), None))
        }
    }
}

/// Runs the worker until shutdown.
pub async fn run(state: AppState) {
    let mut shutdown = state.shutdown.clone();
    loop {
        let now = now_ms();
        let mut wait_ms = 30_000i64;
        match state.store.due_notifications(now, BATCH).await {
            Ok(due) => {
                let full = due.len() as u32 == BATCH;
                let sends = due.into_iter().map(|n| {
                    let state = state.clone();
                    async move {
                        let started = Instant::now();
                        let result = send(&state, &n).await;
                        let (next, error) = match result {
                            Ok(()) => (AttemptNext::Delivered, None),
                            Err((e, retry_after)) => {
                                // The schedule bounds the retries; `Retry-After` only moves
                                // the next one.
                                let delay = crate::callbacks::backoff(
                                    &state.config.callback_retry_secs,
                                    n.attempts,
                                )
                                .map(|d| retry_after.unwrap_or(d));
                                match delay {
                                    Some(d) => (
                                        AttemptNext::RetryAt(now_ms() + d.as_millis() as i64),
                                        Some(e),
                                    ),
                                    None => (AttemptNext::Failed, Some(e)),
                                }
                            }
                        };
                        if let Some(e) = &error {
                            tracing::warn!(notification = %n.id, channel = ?n.channel, error = %e, latency_ms = started.elapsed().as_millis() as u64, "a notification attempt failed");
                        }
                        if let Err(e) = state
                            .store
                            .record_notification(&n.id, &next, error.as_deref())
                            .await
                        {
                            tracing::error!(error = %e, "recording a notification failed");
                        }
                    }
                });
                futures_util::future::join_all(sends).await;
                if full {
                    continue;
                }
                match state.store.next_notification_at().await {
                    Ok(Some(next)) => wait_ms = next - now_ms(),
                    Ok(None) => {}
                    Err(e) => tracing::error!(error = %e, "reading notifications failed"),
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "reading notifications failed; retrying");
                wait_ms = 1000;
            }
        }
        tokio::select! {
            _ = state.outbox.notifications.notified() => {}
            _ = tokio::time::sleep(Duration::from_millis(wait_ms.clamp(1, 30_000) as u64)) => {}
            _ = shutdown.changed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_proto::helpdesk::{TaskChange, TaskStatus};

    #[test]
    fn an_email_names_the_request_the_status_and_the_reason_on_one_subject_line() {
        let event = CallbackEvent {
            kind: "task.status_changed".into(),
            timestamp: time::OffsetDateTime::UNIX_EPOCH,
            data: TaskChange {
                task_id: uuid::Uuid::nil(),
                request_ref: "REQ-1\r\nBcc: evil@example.org".into(),
                sequence: 3,
                status: TaskStatus::PartiallySucceeded,
                previous_status: Some(TaskStatus::InProgress),
                reason: Some("1 of 2 devices did not succeed; PC-2: disk full".into()),
                counts: Default::default(),
                failures: vec![],
            },
        };
        let (subject, body) = email_text(&event);
        assert_eq!(subject, "[Ferry] REQ-1: task partially succeeded");
        assert!(body.contains("disk full"));
        assert!(body.contains("(was in_progress)"));
    }
}
