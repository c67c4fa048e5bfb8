//! Routes and their handlers. Each handler validates what came from outside,
//! calls the service once, and shapes the answer.

use axum::extract::rejection::PathRejection;
use axum::extract::{DefaultBodyLimit, Path, RawQuery, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{middleware, Extension, Json, Router};

use super::error::{ApiError, CompatError};
use super::{trace, AppState, PeerIdentity};
use crate::error::Error;
use crate::id::ContainerRef;
use crate::service::Replication;

/// Request bodies above this are refused with 413 before any handler runs.
pub const MAX_BODY: usize = 64 * 1024;

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(compat_missing_id))
        .route("/{id}", get(compat_replicate))
        .route("/v1/containers/{id}/replicas", post(replicate))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(middleware::from_fn(trace::trace_requests))
        .with_state(state)
}

type Peer = Option<Extension<PeerIdentity>>;

fn caller(peer: &Peer) -> &str {
    peer.as_ref()
        .map(|Extension(p)| p.common_name.as_str())
        .unwrap_or_default()
}

fn container_ref(path: Result<Path<String>, PathRejection>) -> Result<ContainerRef, Error> {
    let Path(raw) =
        path.map_err(|_| Error::BadRequest("the container id is not valid UTF-8".into()))?;
    ContainerRef::parse(&raw).map_err(|e| Error::BadRequest(e.to_string()))
}

/// `count=N` and nothing else.
fn parse_count(query: Option<&str>) -> Result<u32, ApiError> {
    let mut count = None;
    for pair in query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
    {
        match pair.split_once('=') {
            Some(("count", v)) if count.is_none() => {
                let n = v
                    .parse::<u32>()
                    .ok()
                    .filter(|_| v.bytes().all(|b| b.is_ascii_digit()));
                count = Some(n.ok_or_else(|| {
                    ApiError::bad_request(format!("count must be a positive integer, not {v:?}"))
                })?);
            }
            Some(("count", _)) => return Err(ApiError::bad_request("count given twice")),
            _ => {
                return Err(ApiError::bad_request(format!(
                    "unknown query parameter {pair:?}: only count is accepted"
                )))
            }
        }
    }
    Ok(count.unwrap_or(1))
}

async fn compat_missing_id() -> Response {
    (StatusCode::BAD_REQUEST, "container id missing").into_response()
}

/// The original tool's route: `GET /<id>` answers `done`.
async fn compat_replicate(
    State(state): State<AppState>,
    peer: Peer,
    path: Result<Path<String>, PathRejection>,
) -> Result<&'static str, CompatError> {
    let id = container_ref(path)
        .map_err(|_| CompatError(Error::BadRequest("invalid container id".into())))?;
    state
        .service
        .replicate(&id, 1, caller(&peer))
        .await
        .map_err(CompatError)?;
    Ok("done")
}

async fn replicate(
    State(state): State<AppState>,
    peer: Peer,
    path: Result<Path<String>, PathRejection>,
    RawQuery(query): RawQuery,
) -> Result<(StatusCode, Json<Replication>), ApiError> {
    let id = container_ref(path)?;
    let count = parse_count(query.as_deref())?;
    let replication = state.service.replicate(&id, count, caller(&peer)).await?;
    Ok((StatusCode::CREATED, Json(replication)))
}

async fn not_found(uri: Uri) -> Response {
    if uri.path().starts_with("/v1/") {
        let body = serde_json::json!({ "error": { "code": "not_found", "message": format!("no such route: {}", uri.path()) } });
        (StatusCode::NOT_FOUND, Json(body)).into_response()
    } else {
        (StatusCode::NOT_FOUND, "not found").into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_defaults_to_one_and_must_be_a_number() {
        assert_eq!(parse_count(None).unwrap(), 1);
        assert_eq!(parse_count(Some("")).unwrap(), 1);
        assert_eq!(parse_count(Some("count=3")).unwrap(), 3);
        for bad in [
            "count=",
            "count=-1",
            "count=+1",
            "count=x",
            "count=1&count=2",
            "other=1",
            "count",
            "count=99999999999",
        ] {
            assert!(parse_count(Some(bad)).is_err(), "{bad}");
        }
    }
}
