//! The one error type of the hub's service layer, shared by the JSON API and (next) the web
//! pages. Each variant carries a typed [`ErrorCode`]; `http::error` maps variants to statuses.
//! Internal causes are logged with context there and never sent to a client.

use ferry_proto::ErrorCode;

use crate::store::{CatalogError, EnrollError, IdentityError, JobError, OpError, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Missing or wrong credentials.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// Valid credentials, but this caller may not do this.
    #[error("{message}")]
    Forbidden { code: ErrorCode, message: String },
    /// Too many failed attempts; retry after this many seconds.
    #[error("too many failed attempts; try again in {0} seconds")]
    Throttled(u64),
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The request is well-formed but contradicts the current state.
    #[error("{message}")]
    Conflict { code: ErrorCode, message: String },
    /// The request itself is wrong; `message` names the field.
    #[error("{message}")]
    BadRequest { code: ErrorCode, message: String },
    /// Well-formed, but the content cannot be accepted (a corrupt package, a hash mismatch).
    #[error("{message}")]
    Unprocessable { code: ErrorCode, message: String },
    /// One field's value cannot be accepted (422): the answer names the field.
    #[error("`{field}`: {message}")]
    Invalid {
        code: ErrorCode,
        field: String,
        message: String,
    },
    /// A signed request that does not verify (401).
    #[error("{0}")]
    BadSignature(&'static str),
    #[error("request body larger than {0} bytes")]
    TooLarge(usize),
    #[error("the hub is shutting down")]
    ShuttingDown,
    /// The caller has too many uploads open (429).
    #[error("{0}")]
    TooManyUploads(String),
    /// Too much work of one kind queued (password checks); retry after this many seconds.
    #[error("the hub is busy; retry in {0} seconds")]
    Busy(u64),
    /// Paced admission: come back after this many milliseconds.
    #[error("too many agents are connecting at once; retry in {0} ms")]
    Deferred(u64),
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn bad(code: ErrorCode, message: impl Into<String>) -> Self {
        Error::BadRequest {
            code,
            message: message.into(),
        }
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Error::Forbidden {
            code: ErrorCode::Forbidden,
            message: message.into(),
        }
    }

    pub fn conflict(code: ErrorCode, message: impl Into<String>) -> Self {
        Error::Conflict {
            code,
            message: message.into(),
        }
    }

    pub fn unprocessable(code: ErrorCode, message: impl Into<String>) -> Self {
        Error::Unprocessable {
            code,
            message: message.into(),
        }
    }

    /// 422 naming `field` (a path such as `targets.users[2]`).
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Invalid {
            code: ErrorCode::InvalidTask,
            field: field.into(),
            message: message.into(),
        }
    }

    /// The field at fault, when one is.
    pub fn field(&self) -> Option<&str> {
        match self {
            Error::Invalid { field, .. } => Some(field),
            _ => None,
        }
    }

    /// The typed code this error answers with.
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::Unauthorized(_) => ErrorCode::Unauthorized,
            Error::Forbidden { code, .. }
            | Error::Conflict { code, .. }
            | Error::BadRequest { code, .. }
            | Error::Unprocessable { code, .. }
            | Error::Invalid { code, .. } => *code,
            Error::BadSignature(_) => ErrorCode::BadSignature,
            Error::Throttled(_) => ErrorCode::TooManyAttempts,
            Error::NotFound(_) => ErrorCode::NotFound,
            Error::TooLarge(_) => ErrorCode::BodyTooLarge,
            Error::ShuttingDown => ErrorCode::ShuttingDown,
            Error::Busy(_) => ErrorCode::Busy,
            Error::TooManyUploads(_) => ErrorCode::TooManyUploads,
            Error::Deferred(_) => ErrorCode::AdmissionDeferred,
            Error::Internal(_) => ErrorCode::Internal,
        }
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        Error::Internal(e.into())
    }
}

impl From<JobError> for Error {
    fn from(e: JobError) -> Self {
        match e {
            JobError::NotFound => Error::NotFound("job"),
            JobError::StaleLease => Error::conflict(ErrorCode::StaleLease, e.to_string()),
            JobError::Finished(_) => Error::conflict(ErrorCode::JobFinished, e.to_string()),
            JobError::NameTaken => Error::conflict(ErrorCode::NameTaken, e.to_string()),
            JobError::Store(s) => s.into(),
        }
    }
}

impl From<CatalogError> for Error {
    fn from(e: CatalogError) -> Self {
        match e {
            CatalogError::NotFound => Error::NotFound("collection"),
            CatalogError::NameTaken(_) => Error::conflict(ErrorCode::NameTaken, e.to_string()),
            CatalogError::UnknownDevice(_)
            | CatalogError::UnknownCollection(_)
            | CatalogError::UnknownPackage(_) => {
                Error::unprocessable(ErrorCode::UnknownReference, e.to_string())
            }
            CatalogError::NotStatic => Error::conflict(ErrorCode::RuleCollection, e.to_string()),
            CatalogError::Store(s) => s.into(),
        }
    }
}

impl From<OpError> for Error {
    fn from(e: OpError) -> Self {
        match e {
            OpError::NotFound => Error::NotFound("operation"),
            OpError::UnknownCollection(_) | OpError::UnknownDevice(_) => {
                Error::unprocessable(ErrorCode::UnknownReference, e.to_string())
            }
            OpError::NoTargets => Error::unprocessable(ErrorCode::NoTargets, e.to_string()),
            OpError::Store(s) => s.into(),
        }
    }
}

impl From<EnrollError> for Error {
    fn from(e: EnrollError) -> Self {
        let code = match e {
            EnrollError::Expired => ErrorCode::EnrollmentSecretExpired,
            EnrollError::UsedUp => ErrorCode::EnrollmentSecretUsedUp,
            EnrollError::Revoked => ErrorCode::EnrollmentSecretRevoked,
            EnrollError::Store(s) => return s.into(),
        };
        Error::Forbidden {
            code,
            message: e.to_string(),
        }
    }
}

impl From<crate::store::UploadError> for Error {
    fn from(e: crate::store::UploadError) -> Self {
        match e {
            crate::store::UploadError::TooMany { .. } => Error::TooManyUploads(e.to_string()),
            crate::store::UploadError::Store(s) => s.into(),
        }
    }
}

impl From<IdentityError> for Error {
    fn from(e: IdentityError) -> Self {
        match e {
            IdentityError::NotFound => Error::NotFound("technician or key"),
            IdentityError::NameTaken(_) => Error::conflict(ErrorCode::NameTaken, e.to_string()),
            IdentityError::LastAdmin => Error::conflict(ErrorCode::LastAdmin, e.to_string()),
            IdentityError::TooManyKeys(_) => Error::conflict(ErrorCode::TooManyKeys, e.to_string()),
            IdentityError::Store(s) => s.into(),
        }
    }
}

/// A JSON document that does not deserialize: 400 naming the field by its path under `prefix`
/// (`payload.site.share_path`), for request bodies (`prefix` empty) and documents inside them.
pub(crate) fn invalid_json(
    e: serde_path_to_error::Error<serde_json::Error>,
    prefix: &str,
) -> Error {
    let path = e.path().to_string();
    let inner = e.into_inner();
    let whole = path == "." || path.is_empty();
    let message = if inner.is_syntax() || inner.is_eof() || (whole && prefix.is_empty()) {
        format!("malformed JSON body: {inner}")
    } else if whole {
        format!("invalid `{prefix}`: {inner}")
    } else if prefix.is_empty() {
        format!("invalid field `{path}`: {inner}")
    } else {
        format!("invalid field `{prefix}.{path}`: {inner}")
    };
    Error::bad(ErrorCode::InvalidBody, message)
}
