//! Secrets: generation, keyed hashing and verification.
//!
//! Connector secrets, technicians' API keys, session secrets, enrolment secrets and device
//! tokens are 256-bit random values that the hub shows once and stores only as
//! `HMAC-SHA256(server_key, secret)`. (Portal passwords are chosen by people and are argon2id:
//! see `service::identity`.)
//!
//! Why HMAC and not argon2: argon2's cost exists to slow down guessing of *low-entropy*
//! passwords. These secrets are 256 random bits, so guessing is hopeless at any speed, and a
//! deliberately slow hash would instead cost real CPU on every request: every long poll
//! authenticates, and 10,000 connectors re-asking every 25 s is 400 verifications a second.
//! The server key (a random 32-byte file in the data dir, mode 0600, never in the database)
//! means a stolen database alone cannot even be used to test a candidate secret.

use std::io::Write;
use std::path::Path;

use base64::Engine;
use hmac::{KeyInit, Mac};
use sha2::Sha256;

type HmacSha256 = hmac::Hmac<Sha256>;

/// The hub's secret key for hashing credentials.
#[derive(Clone)]
pub struct ServerKey([u8; 32]);

impl std::fmt::Debug for ServerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServerKey(..)")
    }
}

impl ServerKey {
    /// Loads `path`, or creates it with fresh random bytes (mode 0600) if it does not exist.
    pub fn load_or_create(path: &Path) -> std::io::Result<Self> {
        match std::fs::read(path) {
            Ok(bytes) => {
                let key: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("{} must hold exactly 32 bytes", path.display()),
                    )
                })?;
                Ok(ServerKey(key))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut key = [0u8; 32];
                fill_random(&mut key);
                write_private_file(path, &key)?;
                Ok(ServerKey(key))
            }
            Err(e) => Err(e),
        }
    }

    pub fn from_bytes(key: [u8; 32]) -> Self {
        ServerKey(key)
    }

    pub fn hash(&self, secret: &str) -> Vec<u8> {
        self.mac(secret).finalize().into_bytes().to_vec()
    }

    /// Constant-time comparison of `secret` against a stored hash.
    pub fn verify(&self, secret: &str, stored: &[u8]) -> bool {
        self.mac(secret).verify_slice(stored).is_ok()
    }

    fn mac(&self, secret: &str) -> HmacSha256 {
        // A 32-byte key is always a valid HMAC key; `new_from_slice` only fails for
        // algorithms with fixed key sizes.
        let mut mac = match HmacSha256::new_from_slice(&self.0) {
            Ok(m) => m,
            Err(_) => unreachable!("HMAC accepts keys of any length"),
        };
        mac.update(secret.as_bytes());
        mac
    }
}

/// AES-256-GCM for the few secrets the hub must read back — integrations' signing secrets and
/// run-as passwords — under a key kept in its own file (mode 0600) beside the database and never
/// in it: a copy of the database alone reveals none of them. Each sealed value is
/// `nonce (12 bytes) ‖ ciphertext ‖ tag`, with a purpose label as associated data so that a
/// value sealed for one use cannot be replayed as another.
pub struct Sealer(aws_lc_rs::aead::LessSafeKey);

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(..)")
    }
}

/// What a sealed value is for (the associated data).
#[derive(Debug, Clone, Copy)]
pub enum Purpose {
    /// Integrations' and notification webhooks' `whsec_` secrets.
    SigningSecret,
    /// Run-as passwords of tasks: the label is fixed now so that sealed values stay readable,
    /// but tasks do not accept `run_as` yet (the agent cannot act on it).
    RunAsPassword,
}

impl Purpose {
    fn label(self) -> &'static [u8] {
        match self {
            Purpose::SigningSecret => b"ferry signing secret v1",
            Purpose::RunAsPassword => b"ferry run-as password v1",
        }
    }
}

impl Sealer {
    /// Loads the key file, or creates it (32 random bytes, mode 0600).
    pub fn load_or_create(path: &Path) -> std::io::Result<Self> {
        let key = ServerKey::load_or_create(path)?;
        Ok(Self::from_bytes(&key.0))
    }

    pub fn from_bytes(key: &[u8; 32]) -> Self {
        use aws_lc_rs::aead::{AES_256_GCM, LessSafeKey, UnboundKey};
        // A 32-byte key is exactly what AES-256 takes.
        match UnboundKey::new(&AES_256_GCM, key) {
            Ok(k) => Sealer(LessSafeKey::new(k)),
            Err(_) => unreachable!("AES-256-GCM takes 32-byte keys"),
        }
    }

    pub fn seal(&self, purpose: Purpose, plaintext: &[u8]) -> Vec<u8> {
        use aws_lc_rs::aead::{Aad, NONCE_LEN, Nonce};
        let mut nonce = [0u8; NONCE_LEN];
        fill_random(&mut nonce);
        let mut buf = plaintext.to_vec();
        // Sealing in place only fails for inputs beyond GCM's 64 GiB limit.
        if self
            .0
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(purpose.label()),
                &mut buf,
            )
            .is_err()
        {
            unreachable!("AES-GCM seals anything under 64 GiB");
        }
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buf);
        out
    }

    /// The plaintext, or `None` if the value was tampered with, sealed under another key or
    /// for another purpose.
    pub fn open(&self, purpose: Purpose, sealed: &[u8]) -> Option<Vec<u8>> {
        use aws_lc_rs::aead::{Aad, NONCE_LEN, Nonce};
        if sealed.len() < NONCE_LEN {
            return None;
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut buf = ciphertext.to_vec();
        let plain = self
            .0
            .open_in_place(nonce, Aad::from(purpose.label()), &mut buf)
            .ok()?;
        Some(plain.to_vec())
    }
}

/// A new random secret: 32 bytes from the OS, base64url without padding (43 characters).
pub fn generate_secret() -> String {
    let mut bytes = [0u8; 32];
    fill_random(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

pub(crate) fn fill_random(buf: &mut [u8]) {
    // The OS random source failing is not something a server can recover from safely:
    // handing out predictable secrets would be worse than stopping.
    if let Err(e) = getrandom::fill(buf) {
        panic!("the operating system's random number generator failed: {e}");
    }
}

/// Writes a file readable by its owner only (0600 on Unix), replacing any old one.
pub fn write_private_file(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    file.write_all(contents)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_verifies_the_same_secret_only() {
        let key = ServerKey::from_bytes([7; 32]);
        let secret = generate_secret();
        let stored = key.hash(&secret);
        assert!(key.verify(&secret, &stored));
        assert!(!key.verify("something else", &stored));
    }

    #[test]
    fn a_different_server_key_does_not_verify() {
        let secret = generate_secret();
        let stored = ServerKey::from_bytes([1; 32]).hash(&secret);
        assert!(!ServerKey::from_bytes([2; 32]).verify(&secret, &stored));
    }

    #[test]
    fn secrets_are_long_and_distinct() {
        let a = generate_secret();
        assert_eq!(a.len(), 43);
        assert_ne!(a, generate_secret());
    }

    #[cfg(unix)]
    #[test]
    fn server_key_file_is_private_and_stable() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hub.key");
        let k1 = ServerKey::load_or_create(&path).unwrap();
        let k2 = ServerKey::load_or_create(&path).unwrap();
        assert_eq!(k1.hash("x"), k2.hash("x"));
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn a_sealed_value_opens_only_with_its_key_and_purpose() {
        let sealer = Sealer::from_bytes(&[7u8; 32]);
        let sealed = sealer.seal(Purpose::RunAsPassword, b"hunter2");
        assert!(!sealed.windows(7).any(|w| w == b"hunter2"));
        assert_eq!(
            sealer.open(Purpose::RunAsPassword, &sealed).as_deref(),
            Some(&b"hunter2"[..])
        );
        assert_eq!(sealer.open(Purpose::SigningSecret, &sealed), None);
        assert_eq!(
            Sealer::from_bytes(&[8u8; 32]).open(Purpose::RunAsPassword, &sealed),
            None
        );
        let mut tampered = sealed.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert_eq!(sealer.open(Purpose::RunAsPassword, &tampered), None);
    }

    #[test]
    fn sealing_twice_gives_different_ciphertexts() {
        let sealer = Sealer::from_bytes(&[7u8; 32]);
        assert_ne!(
            sealer.seal(Purpose::RunAsPassword, b"x"),
            sealer.seal(Purpose::RunAsPassword, b"x")
        );
    }
}
