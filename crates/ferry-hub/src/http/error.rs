//! How a service [`Error`] becomes an HTTP answer: a status, a `{code, message}` body, and the
//! headers some statuses need. Internal causes are logged here, with context, and never sent.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use ferry_proto::ApiError;

pub use crate::error::{Error, Result};

fn status(e: &Error) -> StatusCode {
    match e {
        Error::Unauthorized(_) | Error::BadSignature(_) => StatusCode::UNAUTHORIZED,
        Error::Forbidden { .. } => StatusCode::FORBIDDEN,
        Error::Throttled(_) | Error::TooManyUploads(_) => StatusCode::TOO_MANY_REQUESTS,
        Error::NotFound(_) => StatusCode::NOT_FOUND,
        Error::Conflict { .. } => StatusCode::CONFLICT,
        Error::BadRequest { .. } => StatusCode::BAD_REQUEST,
        Error::Unprocessable { .. } | Error::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
        Error::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
        Error::ShuttingDown | Error::Deferred(_) | Error::Busy(_) => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = status(&self);
        if let Error::Internal(cause) = &self {
            tracing::error!(error = format!("{cause:#}"), "request failed");
        }
        let body = ApiError {
            code: self.code(),
            message: self.to_string(),
            field: self.field().map(str::to_owned),
        };
        let mut response = (status, axum::Json(body)).into_response();
        let headers = response.headers_mut();
        if status == StatusCode::UNAUTHORIZED {
            // RFC 9110 §11.6.1: a 401 must say which scheme would work.
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"ferry\""),
            );
        }
        match self {
            Error::Deferred(ms) => {
                // `Retry-After` has whole seconds; the slot itself is in a header of ours, so
                // that agents told to come back within the same second still arrive spread out.
                headers.insert(header::RETRY_AFTER, HeaderValue::from(ms.div_ceil(1000)));
                headers.insert(
                    ferry_proto::agent::RETRY_AFTER_MS_HEADER,
                    HeaderValue::from(ms),
                );
            }
            Error::Throttled(secs) | Error::Busy(secs) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
            }
            _ => {}
        }
        response
    }
}
