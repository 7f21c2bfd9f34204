//! The one error type of the HTTP layer: each variant maps to a status and a stable `code`;
//! internal causes are logged with context and never sent to the client.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use ferry_proto::{ApiError, ErrorCode};

use crate::store::{JobError, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Missing or wrong credentials.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// Valid credentials, but this caller may not do this.
    #[error("{0}")]
    Forbidden(&'static str),
    /// Refused for a reason the caller can act on (an expired enrolment secret).
    #[error("{message}")]
    Refused { code: ErrorCode, message: String },
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
    #[error("request body larger than {0} bytes")]
    TooLarge(usize),
    #[error("the hub is shutting down")]
    ShuttingDown,
    /// Paced admission: come back after this many milliseconds.
    #[error("too many agents are connecting at once; retry in {0} ms")]
    Deferred(u64),
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
}

impl Error {
    pub fn bad(code: ErrorCode, message: impl Into<String>) -> Self {
        Error::BadRequest {
            code,
            message: message.into(),
        }
    }

    fn status_and_code(&self) -> (StatusCode, ErrorCode) {
        match self {
            Error::Unauthorized(_) => (StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized),
            Error::Forbidden(_) => (StatusCode::FORBIDDEN, ErrorCode::Forbidden),
            Error::Refused { code, .. } => (StatusCode::FORBIDDEN, *code),
            Error::NotFound(_) => (StatusCode::NOT_FOUND, ErrorCode::NotFound),
            Error::Conflict { code, .. } => (StatusCode::CONFLICT, *code),
            Error::BadRequest { code, .. } => (StatusCode::BAD_REQUEST, *code),
            Error::Unprocessable { code, .. } => (StatusCode::UNPROCESSABLE_ENTITY, *code),
            Error::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, ErrorCode::BodyTooLarge),
            Error::ShuttingDown => (StatusCode::SERVICE_UNAVAILABLE, ErrorCode::ShuttingDown),
            Error::Deferred(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::AdmissionDeferred,
            ),
            Error::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, ErrorCode::Internal),
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        if let Error::Internal(cause) = &self {
            tracing::error!(error = format!("{cause:#}"), "request failed");
        }
        let body = ApiError {
            code,
            message: self.to_string(),
        };
        let mut response = (status, axum::Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            // RFC 9110 §11.6.1: a 401 must say which scheme would work.
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"ferry\""),
            );
        }
        if let Error::Deferred(ms) = self {
            // `Retry-After` has whole seconds; the slot itself is in a header of ours, so that
            // agents told to come back within the same second still arrive spread out.
            let headers = response.headers_mut();
            headers.insert(header::RETRY_AFTER, HeaderValue::from(ms.div_ceil(1000)));
            headers.insert(
                ferry_proto::agent::RETRY_AFTER_MS_HEADER,
                HeaderValue::from(ms),
            );
        }
        response
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
            JobError::StaleLease => Error::Conflict {
                code: ErrorCode::StaleLease,
                message: e.to_string(),
            },
            JobError::Finished(_) => Error::Conflict {
                code: ErrorCode::JobFinished,
                message: e.to_string(),
            },
            JobError::NameTaken => Error::Conflict {
                code: ErrorCode::NameTaken,
                message: e.to_string(),
            },
            JobError::Store(s) => s.into(),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
