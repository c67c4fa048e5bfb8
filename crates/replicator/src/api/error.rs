//! Errors to HTTP: the status of every library error is decided here and
//! nowhere else; /v1 routes answer JSON, the compatibility route short text.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::error::Error;

/// The status and the machine-readable code for an error.
pub fn status_of(e: &Error) -> (StatusCode, &'static str) {
    match e {
        Error::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
        Error::NotEnabled(_) => (StatusCode::FORBIDDEN, "not_enabled"),
        Error::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
        Error::ContainerNotFound(_) | Error::GroupNotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
        Error::LimitReached { .. } => (StatusCode::CONFLICT, "limit_reached"),
        Error::OutOfBounds { .. } => (StatusCode::CONFLICT, "out_of_bounds"),
        Error::InvalidGroup { .. } => (StatusCode::CONFLICT, "invalid_group"),
        Error::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
        Error::RateLimited(_) => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
        Error::Engine(e) if e.is_unreachable() => (StatusCode::SERVICE_UNAVAILABLE, "engine_unavailable"),
        Error::Engine(_) => (StatusCode::BAD_GATEWAY, "engine_error"),
        Error::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
    }
}

/// An error on a /v1 route: `{"error": {"code", "message"}}`.
#[derive(Debug)]
pub struct ApiError(pub Error);

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        Self(e)
    }
}

impl ApiError {
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self(Error::BadRequest(message.into()))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = status_of(&self.0);
        let body = json!({ "error": { "code": code, "message": self.0.to_string() } });
        (status, Json(body)).into_response()
    }
}

/// An error on the compatibility route: same status, short text body. The
/// original tool's two answers are kept word for word.
pub struct CompatError(pub Error);

impl IntoResponse for CompatError {
    fn into_response(self) -> Response {
        let (status, _) = status_of(&self.0);
        let text = match &self.0 {
            Error::ContainerNotFound(_) => "invalid container id".to_owned(),
            Error::BadRequest(m) => m.clone(),
            Error::LimitReached { max, .. } => format!("replica limit reached ({max})"),
            Error::NotEnabled(_) => "container not enabled for replication (label replicator.enable=true)".to_owned(),
            Error::Engine(e) if e.is_unreachable() => "engine unavailable".to_owned(),
            other => other.to_string(),
        };
        (status, text).into_response()
    }
}
