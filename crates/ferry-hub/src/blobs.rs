//! The content-addressed blob store: a file's SHA-256 is its name
//! (`blobs/sha256/<first two hex digits>/<64 hex digits>`), so the same content is stored once
//! and a name can never point at different bytes.

use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct BlobStore {
    root: PathBuf,
}

impl BlobStore {
    pub fn new(root: PathBuf) -> Self {
        BlobStore { root }
    }

    /// Where the blob with this hash lives. `sha256` must be 64 lower-case hex digits (the
    /// hub computes it; it never comes from a client unchecked).
    pub fn path(&self, sha256: &str) -> PathBuf {
        let prefix = sha256.get(..2).unwrap_or("xx");
        self.root.join("sha256").join(prefix).join(sha256)
    }

    /// Adds a finished file to the store under its hash as a hard link, leaving `file` in
    /// place. Returns `false` when the blob was already there.
    pub fn link(&self, file: &Path, sha256: &str) -> std::io::Result<bool> {
        let target = self.path(sha256);
        if target.exists() {
            return Ok(false);
        }
        if let Some(dir) = target.parent() {
            std::fs::create_dir_all(dir)?;
        }
        match std::fs::hard_link(file, &target) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
            // A blob folder on another file system: copy instead.
            Err(_) => std::fs::copy(file, &target).map(|_| true),
        }
    }

    pub fn remove(&self, sha256: &str) -> std::io::Result<()> {
        match std::fs::remove_file(self.path(sha256)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

/// Lower-case hex of a digest.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

pub fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inserting_the_same_content_twice_keeps_one_blob() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::new(dir.path().join("blobs"));
        let sha = "ab".repeat(32);
        let f = dir.path().join("part");
        std::fs::write(&f, b"x").unwrap();
        assert!(store.link(&f, &sha).unwrap(), "new");
        assert!(!store.link(&f, &sha).unwrap(), "already there");
        assert!(store.path(&sha).is_file());
    }

    #[test]
    fn only_lower_case_sha256_hex_is_accepted() {
        assert!(is_sha256_hex(&"0f".repeat(32)));
        assert!(!is_sha256_hex(&"0F".repeat(32)));
        assert!(!is_sha256_hex("../../etc/passwd"));
    }
}
