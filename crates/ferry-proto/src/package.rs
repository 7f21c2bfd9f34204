//! Packages and their resumable uploads.
//!
//! Upload protocol: `POST /api/v1/uploads` opens a session for a file of known size;
//! `PUT /api/v1/uploads/{id}?offset=N` appends a byte range starting exactly at `received`
//! (a mismatch is `409 offset_mismatch`, whose message says where to resume);
//! `GET /api/v1/uploads/{id}` tells how much the hub has; `POST /api/v1/uploads/{id}/complete`
//! verifies size and SHA-256, stores the file content-addressed, inspects it and creates the
//! package. A broken connection or a hub restart loses at most the bytes in flight.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::Timestamp;

/// `POST /api/v1/uploads`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUpload {
    /// The file's name, for people (`FileZilla_3.46.3.zip`); never used as a path.
    pub filename: String,
    /// Exact size in bytes.
    pub size: u64,
    /// Expected SHA-256 (lower-case hex); the upload fails on completion if it differs.
    #[serde(default)]
    pub sha256: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UploadState {
    Open,
    Completed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Upload {
    pub id: Uuid,
    pub filename: String,
    pub size: u64,
    /// Bytes the hub has durably received; the next range must start here.
    pub received: u64,
    pub expected_sha256: Option<String>,
    pub state: UploadState,
    /// The package created on completion.
    pub package_id: Option<Uuid>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: Timestamp,
}

/// A package: a verified, content-addressed file plus what the hub learned from it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Package {
    pub id: Uuid,
    pub filename: String,
    pub size: u64,
    pub sha256: String,
    /// What the hub found inside (wrapper, MSI properties, proposed names and commands).
    pub metadata: serde_json::Value,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: Timestamp,
}
