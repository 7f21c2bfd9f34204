//! Standard Webhooks signing and verification (<https://www.standardwebhooks.com/>).
//!
//! A callback carries `webhook-id` (stable across retries, so a receiver can drop
//! duplicates), `webhook-timestamp` (Unix seconds of this attempt) and `webhook-signature`:
//! space-separated `v1,<base64 HMAC-SHA256>` entries over `"{id}.{timestamp}.{body}"`, keyed by
//! the base64-decoded part of a `whsec_…` secret. During a secret rotation the header carries
//! one entry per live secret, and a receiver accepts the request if any entry verifies — which
//! is how the published verification libraries already behave, so a helpdesk can switch secrets
//! without a window in which callbacks fail.
//!
//! The same rules check inbound signed requests (`POST /api/v1/tasks/{id}/status`).

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{KeyInit, Mac};
use sha2::Sha256;

type HmacSha256 = hmac::Hmac<Sha256>;

pub const ID_HEADER: &str = "webhook-id";
pub const TIMESTAMP_HEADER: &str = "webhook-timestamp";
pub const SIGNATURE_HEADER: &str = "webhook-signature";
/// How far a signed request's timestamp may be from now (the reference libraries' window).
pub const TOLERANCE_SECS: i64 = 5 * 60;
const PREFIX: &str = "whsec_";

/// A new random secret, `whsec_<base64 of 32 bytes>`.
pub fn generate_secret() -> String {
    let mut key = [0u8; 32];
    crate::secrets::fill_random(&mut key);
    format!("{PREFIX}{}", B64.encode(key))
}

/// The key bytes of a `whsec_…` secret.
pub fn secret_key(secret: &str) -> Option<Vec<u8>> {
    let key = B64.decode(secret.strip_prefix(PREFIX)?).ok()?;
    (!key.is_empty()).then_some(key)
}

fn mac(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length; `new_from_slice` cannot fail for it.
    let mut m = match HmacSha256::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC accepts keys of any length"),
    };
    m.update(id.as_bytes());
    m.update(b".");
    m.update(timestamp.to_string().as_bytes());
    m.update(b".");
    m.update(body);
    m
}

/// `v1,<base64>` for one key.
pub fn sign(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    format!(
        "v1,{}",
        B64.encode(mac(key, id, timestamp, body).finalize().into_bytes())
    )
}

/// The `webhook-signature` header: one entry per key, newest first.
pub fn signature_header(keys: &[&[u8]], id: &str, timestamp: i64, body: &[u8]) -> String {
    keys.iter()
        .map(|k| sign(k, id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("missing or malformed webhook-timestamp")]
    BadTimestamp,
    #[error("webhook-timestamp outside the tolerance window")]
    Stale,
    #[error("no signature in webhook-signature verifies")]
    NoMatch,
}

/// Checks a signed request: the timestamp within [`TOLERANCE_SECS`] of `now` and some `v1`
/// entry of the header matching one of `keys` (constant-time comparison).
pub fn verify(
    keys: &[&[u8]],
    id: &str,
    timestamp: &str,
    signatures: &str,
    body: &[u8],
    now: i64,
) -> Result<(), VerifyError> {
    let ts: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| VerifyError::BadTimestamp)?;
    if (now - ts).abs() > TOLERANCE_SECS {
        return Err(VerifyError::Stale);
    }
    for entry in signatures.split(' ') {
        let Some(sig) = entry.strip_prefix("v1,") else {
            continue;
        };
        let Ok(sig) = B64.decode(sig) else { continue };
        for key in keys {
            // `verify_slice` compares in constant time and checks the length first.
            if mac(key, id, ts, body).verify_slice(&sig).is_ok() {
                return Ok(());
            }
        }
    }
    Err(VerifyError::NoMatch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // The example of the Standard Webhooks specification's reference test suite.
    #[test]
    fn signs_the_specifications_example() {
        let key = secret_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            sign(&key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn a_rotated_header_verifies_with_either_secret() {
        let (old, new) = (b"old-key".as_slice(), b"new-key".as_slice());
        let header = signature_header(&[new, old], "msg_1", 100, b"{}");
        assert_eq!(verify(&[old], "msg_1", "100", &header, b"{}", 100), Ok(()));
        assert_eq!(verify(&[new], "msg_1", "100", &header, b"{}", 100), Ok(()));
        assert_eq!(
            verify(&[b"other"], "msg_1", "100", &header, b"{}", 100),
            Err(VerifyError::NoMatch)
        );
    }

    #[test]
    fn a_timestamp_outside_the_window_is_refused() {
        let header = sign(b"k", "msg_1", 100, b"{}");
        assert_eq!(
            verify(
                &[b"k"],
                "msg_1",
                "100",
                &header,
                b"{}",
                100 + TOLERANCE_SECS + 1
            ),
            Err(VerifyError::Stale)
        );
        assert_eq!(
            verify(&[b"k"], "msg_1", "soon", &header, b"{}", 100),
            Err(VerifyError::BadTimestamp)
        );
    }

    #[test]
    fn generated_secrets_parse_back_to_32_bytes() {
        let s = generate_secret();
        assert!(s.starts_with("whsec_"));
        assert_eq!(secret_key(&s).unwrap().len(), 32);
        assert_eq!(secret_key("whsec_"), None);
        assert_eq!(secret_key("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"), None);
    }

    proptest! {
        #[test]
        fn any_change_to_id_timestamp_or_body_breaks_the_signature(
            body in proptest::collection::vec(any::<u8>(), 0..64),
            flip in 0usize..64,
            ts in 0i64..1_000_000,
        ) {
            let header = sign(b"key", "msg_a", ts, &body);
            prop_assert_eq!(verify(&[b"key"], "msg_a", &ts.to_string(), &header, &body, ts), Ok(()));
            prop_assert!(verify(&[b"key"], "msg_b", &ts.to_string(), &header, &body, ts).is_err());
            prop_assert!(verify(&[b"key"], "msg_a", &(ts + 1).to_string(), &header, &body, ts).is_err());
            if !body.is_empty() {
                let mut tampered = body.clone();
                let i = flip % tampered.len();
                tampered[i] ^= 1;
                prop_assert!(verify(&[b"key"], "msg_a", &ts.to_string(), &header, &tampered, ts).is_err());
            }
        }
    }
}
