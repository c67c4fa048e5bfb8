//! Errors to HTTP: the status of every library error is decided here and
//! nowhere else; /v1 routes answer JSON, the compatibility route short text.

use axum::body::to_bytes;
use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::base::quote::clip;
use crate::engine::{ErrorKind, Op};
use crate::error::Error;
use crate::http::listener::{json_refusal, refusal, ErrorDetail};
use crate::rules::access::Denied;

/// The status and the machine-readable code for an error.
pub fn status_of(e: &Error) -> (StatusCode, &'static str) {
    match e {
        Error::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
        Error::NotEnabled(_) => (StatusCode::FORBIDDEN, "not_enabled"),
        Error::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
        Error::Denied(_) => (StatusCode::FORBIDDEN, "denied"),
        Error::ContainerNotFound(_) | Error::GroupNotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
        Error::LimitReached { .. } => (StatusCode::CONFLICT, "limit_reached"),
        Error::OutOfBounds { .. } => (StatusCode::CONFLICT, "out_of_bounds"),
        Error::InvalidGroup { .. } => (StatusCode::CONFLICT, "invalid_group"),
        Error::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
        Error::NotReady { .. } => (StatusCode::GATEWAY_TIMEOUT, "not_ready"),
        Error::RateLimited(_) => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
        Error::Engine(e) if e.kind == ErrorKind::Fenced => (StatusCode::SERVICE_UNAVAILABLE, "not_acting"),
        // The caller's reference, valid in syntax, names several containers
        // (a short id that is the prefix of more than one): the engine
        // refuses to pick, and the request conflicts with what exists.
        Error::Engine(e) if e.op == Op::InspectContainer && e.kind == ErrorKind::Rejected => {
            (StatusCode::CONFLICT, "ambiguous")
        }
        Error::Engine(e) if e.is_unreachable() => (StatusCode::SERVICE_UNAVAILABLE, "engine_unavailable"),
        Error::Engine(_) => (StatusCode::BAD_GATEWAY, "engine_error"),
        Error::Unreachable { .. } => (StatusCode::SERVICE_UNAVAILABLE, "unreachable"),
        Error::NotActing { .. } => (StatusCode::SERVICE_UNAVAILABLE, "not_acting"),
        Error::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
    }
}

pub use crate::http::listener::ErrorBody;

/// A documented error answer: `{"error": ...}` on `/v1`, short text on the
/// original tool's routes.
pub fn error_response(description: &str, json: bool) -> utoipa::openapi::Response {
    use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
    let (content_type, schema): (_, utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>) = if json {
        ("application/json", Ref::from_schema_name("ErrorBody").into())
    } else {
        ("text/plain", utoipa::openapi::ObjectBuilder::new().schema_type(utoipa::openapi::Type::String).into())
    };
    ResponseBuilder::new()
        .description(description)
        .content(content_type, ContentBuilder::new().schema(Some(schema)).build())
        .build()
}

/// What an operation that calls the engine may also answer, as
/// [`status_of`] maps it: 500, 502, 503 (JSON; the original tool's routes
/// answer the same statuses in text: [`CompatEngineFailures`]).
pub struct EngineFailures;

/// [`EngineFailures`] in text, for the original tool's routes.
pub struct CompatEngineFailures;

fn engine_failures(
    json: bool,
) -> std::collections::BTreeMap<String, utoipa::openapi::RefOr<utoipa::openapi::Response>> {
    [
        (StatusCode::INTERNAL_SERVER_ERROR, "A bug: a task panicked or an invariant broke (`internal`)"),
        (StatusCode::BAD_GATEWAY, "The engine refused or failed a call (`engine_error`), with its words"),
        (StatusCode::SERVICE_UNAVAILABLE, "The engine is unreachable (`engine_unavailable`)"),
    ]
    .into_iter()
    .map(|(status, description)| (status.as_u16().to_string(), error_response(description, json).into()))
    .collect()
}

impl utoipa::IntoResponses for EngineFailures {
    fn responses() -> std::collections::BTreeMap<String, utoipa::openapi::RefOr<utoipa::openapi::Response>> {
        engine_failures(true)
    }
}

impl utoipa::IntoResponses for CompatEngineFailures {
    fn responses() -> std::collections::BTreeMap<String, utoipa::openapi::RefOr<utoipa::openapi::Response>> {
        engine_failures(false)
    }
}

/// What a command that may create containers also answers: malformed
/// input (400, nothing reached the engine), the creation rate (429), and
/// the [`EngineFailures`].
pub struct CommandFailures;

impl utoipa::IntoResponses for CommandFailures {
    fn responses() -> std::collections::BTreeMap<String, utoipa::openapi::RefOr<utoipa::openapi::Response>> {
        let mut responses = engine_failures(true);
        for (status, description) in [
            (StatusCode::BAD_REQUEST, "Malformed input (nothing reached the engine)"),
            (StatusCode::TOO_MANY_REQUESTS, "`--max-creations-per-minute` is reached (`rate_limited`)"),
        ] {
            responses.insert(status.as_u16().to_string(), error_response(description, true).into());
        }
        responses
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
        if let Error::Denied(denied) = &self.0 {
            return denied_response(denied, true);
        }
        let (status, code) = status_of(&self.0);
        json_refusal(status, code, &self.0.to_string())
    }
}

/// The machine-readable code of a status that axum or a layer answered with.
fn code_of(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST => "bad_request",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::REQUEST_TIMEOUT => "request_timeout",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::UNPROCESSABLE_ENTITY => "unprocessable",
        StatusCode::TOO_MANY_REQUESTS => "rate_limited",
        s if s.is_server_error() => "internal",
        _ => "error",
    }
}

/// Every error on /v1 in the JSON format, including the ones axum answers
/// by itself in plain text (405, a body over the limit, a body that failed
/// to arrive): their text becomes the message, clipped.
pub async fn json_errors(req: Request, next: Next) -> Response {
    let v1 = req.uri().path().starts_with("/v1/");
    let response = next.run(req).await;
    let is_json = response.headers().get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes() == b"application/json");
    if !v1 || is_json || !(response.status().is_client_error() || response.status().is_server_error()) {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = to_bytes(body, 4096).await.unwrap_or_default();
    let text = String::from_utf8_lossy(&text);
    let message = match text.trim() {
        "" => parts.status.canonical_reason().unwrap_or("error").to_owned(),
        text => clip(text),
    };
    let json = json_refusal(parts.status, code_of(parts.status), &message);
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Response::from_parts(parts, json.into_body())
}

/// An error on the compatibility route: same status, short text body. The
/// original tool's two answers are kept word for word.
pub struct CompatError(pub Error);

impl IntoResponse for CompatError {
    fn into_response(self) -> Response {
        if let Error::Denied(denied) = &self.0 {
            return denied_response(denied, false);
        }
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

/// A refusal travelling on its response, so this layer logs and counts
/// every one, whichever code found it.
#[derive(Debug, Clone)]
pub struct Refused(pub Denied);

/// The 403 of a refusal: JSON on `/v1`, text on the original tool's route.
pub fn denied_response(denied: &Denied, json: bool) -> Response {
    let mut response = if json {
        let detail = ErrorDetail {
            code: "denied".into(),
            message: denied.to_string(),
            permission: Some(denied.permission.to_string()),
            identity: Some(denied.identity.clone()),
        };
        refusal(StatusCode::FORBIDDEN, detail)
    } else {
        (StatusCode::FORBIDDEN, denied.to_string()).into_response()
    };
    response.extensions_mut().insert(Refused(denied.clone()));
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::EngineError;

    #[test]
    fn an_ambiguous_reference_is_a_conflict_not_the_engines_failure() {
        let ambiguous = EngineError::new(
            Op::InspectContainer,
            "0",
            ErrorKind::Rejected,
            "Multiple IDs found with provided prefix: 0",
        );
        assert_eq!(status_of(&Error::Engine(ambiguous)), (StatusCode::CONFLICT, "ambiguous"));
        let refused = EngineError::new(Op::CreateContainer, "web-2", ErrorKind::Rejected, "invalid mount");
        assert_eq!(status_of(&Error::Engine(refused)), (StatusCode::BAD_GATEWAY, "engine_error"));
    }
}
