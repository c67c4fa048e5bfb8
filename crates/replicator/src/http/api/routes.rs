//! Routes and their handlers. Each handler validates what came from outside,
//! calls the service once, and shapes the answer.

use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};

use super::schemas::{self, MetricBody, MetricPush, ScaleRequest as ScaleBody, MAX_SAMPLES};
use super::status::{ApiError, CompatError, ErrorBody};
use super::status::{CommandFailures, CompatEngineFailures, EngineFailures};
use super::views::GroupView;
use super::{json, query, AppState, PeerIdentity};
use crate::autoscale::board::DecisionView;
use crate::autoscale::MetricSample;
use crate::base::id::{ContainerRef, GroupName};
use crate::base::quote::{clip, clip_to};
use crate::error::Error;
use crate::rules::access::{Identity, Permission};
use crate::rules::policy::valid_metric_name;
use crate::service::{Caller, Replication};

/// A body parser's complaint, which may quote the body: never more than a prefix of it.
fn complaint(e: impl std::fmt::Display) -> String {
    clip_to(&e.to_string(), 160)
}

type Peer = Option<Extension<PeerIdentity>>;

fn caller(peer: &Peer) -> &str {
    peer.as_ref().map(|Extension(p)| p.common_name.as_str()).unwrap_or_default()
}

fn path_text(path: Result<Path<String>, PathRejection>) -> Result<String, Error> {
    path.map(|Path(raw)| raw).map_err(|_| Error::BadRequest("the path is not valid UTF-8".into()))
}

fn container_ref(path: Result<Path<String>, PathRejection>) -> Result<ContainerRef, Error> {
    ContainerRef::parse(&path_text(path)?).map_err(|e| Error::BadRequest(e.to_string()))
}

fn group_name(path: Result<Path<String>, PathRejection>) -> Result<GroupName, Error> {
    GroupName::parse(&path_text(path)?).map_err(|e| Error::BadRequest(e.to_string()))
}

/// The body of `PUT /v1/groups/{name}/replicas` (described by [`schemas::ScaleRequest`]).
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ScaleRequest {
    #[serde(deserialize_with = "json::whole")]
    replicas: u32,
    /// `"ready"`: answer once the new members are ready.
    wait: Option<String>,
    /// How long to wait for them (with `wait`).
    timeout: Option<String>,
}

fn scale_request(body: &[u8]) -> Result<ScaleRequest, ApiError> {
    let refuse = |why: String| ApiError::bad_request(format!("expected a JSON body like {{\"replicas\": 3}}: {why}"));
    // serde would also take `[3]` for the struct: only an object is the documented shape.
    let value = json::parse(body).map_err(|e| refuse(complaint(e)))?;
    if !value.is_object() {
        return Err(refuse("not a JSON object".into()));
    }
    serde_json::from_value(value).map_err(|e| refuse(complaint(e)))
}

/// The original tool's answer to a request without a container id.
#[utoipa::path(get, path = "/", tag = "compatibility",
    responses((status = 400, description = "`container id missing` (text/plain), the original tool's answer", body = String, content_type = "text/plain")))]
pub(super) async fn compat_missing_id() -> Response {
    (StatusCode::BAD_REQUEST, "container id missing").into_response()
}

/// The original tool's route: `GET /<id>` answers `done` (with
/// `?wait=ready[&timeout=D]`, once the replica is ready).
#[utoipa::path(get, path = "/{id}", tag = "compatibility",
    params(("id" = inline(schemas::ContainerRef), Path, description = "Container id or name"),
           ("readiness" = inline(Option<schemas::Readiness>), Query, style = Form, explode,
            description = "`wait=ready`: answer once the replica is ready; `timeout`: how long (with `wait` only)")),
    responses((status = 200, description = "`done`", body = String, content_type = "text/plain"),
              (status = 400, description = "`invalid container id` (a malformed id), or a malformed `wait` or `timeout`", body = String, content_type = "text/plain"),
              (status = 403, description = "The container is not enabled for replication (`replicator.enable=true`), is outside `--selector`, or is replicator's own", body = String, content_type = "text/plain"),
              (status = 404, description = "`invalid container id`: no such container", body = String, content_type = "text/plain"),
              (status = 409, description = "`replica limit reached (N)`, the group's labels are malformed, `--max-containers` is reached, or a short id names several containers", body = String, content_type = "text/plain"),
              (status = 429, description = "`--max-creations-per-minute` is reached", body = String, content_type = "text/plain"),
              CompatEngineFailures,
              (status = 504, description = "`wait=ready`: not ready in time; the replica was removed", body = String, content_type = "text/plain")))]
pub(super) async fn compat_replicate(
    State(state): State<AppState>,
    peer: Peer,
    Extension(identity): Extension<Identity>,
    path: Result<Path<String>, PathRejection>,
    RawQuery(raw): RawQuery,
) -> Result<&'static str, CompatError> {
    let id = container_ref(path).map_err(|_| CompatError(Error::BadRequest("invalid container id".into())))?;
    let wait =
        query::parse(raw.as_deref(), &["wait", "timeout"]).and_then(|q| q.wait()).map_err(|e| CompatError(e.0))?;
    let caller = Caller { name: caller(&peer).to_owned(), identity };
    state.service.replicate(&id, 1, &caller, wait).await.map_err(CompatError)?;
    Ok("done")
}

#[utoipa::path(post, path = "/v1/containers/{id}/replicas", tag = "containers",
    params(("id" = inline(schemas::ContainerRef), Path, description = "Container id or name"),
           ("count" = inline(Option<schemas::ReplicaCount>), Query, description = "Replicas to make, all or nothing (default 1)"),
           ("readiness" = inline(Option<schemas::Readiness>), Query, style = Form, explode,
            description = "`wait=ready`: answer once they are ready; `timeout`: how long (with `wait` only)")),
    responses((status = 201, description = "The replicas made", body = Replication),
              (status = 403, description = "The container is not enabled for replication, is outside `--selector` or is replicator's own; or the caller may not replicate its group", body = ErrorBody),
              (status = 404, description = "No such container", body = ErrorBody),
              (status = 409, description = "The group is full, its labels are malformed, `--max-containers` is reached, or a short id names several containers (`ambiguous`)", body = ErrorBody),
              CommandFailures,
              (status = 504, description = "`wait=ready`: not ready in time; the replicas were removed", body = ErrorBody)))]
pub(super) async fn replicate(
    State(state): State<AppState>,
    peer: Peer,
    Extension(identity): Extension<Identity>,
    path: Result<Path<String>, PathRejection>,
    RawQuery(query): RawQuery,
) -> Result<(StatusCode, Json<Replication>), ApiError> {
    let id = container_ref(path)?;
    let query = query::parse(query.as_deref(), &["count", "wait", "timeout"])?;
    let (count, wait) = (query.count()?, query.wait()?);
    let caller = Caller { name: caller(&peer).to_owned(), identity };
    let replication = state.service.replicate(&id, count, &caller, wait).await?;
    Ok((StatusCode::CREATED, Json(replication)))
}

/// `{"container", "metric", "value"}` or a non-empty array of them.
fn metric_samples(body: &[u8]) -> Result<Vec<MetricSample>, ApiError> {
    let shape = r#"expected {"container": "<id or name>", "metric": "<name>", "value": <number>} or an array of those"#;
    let refuse = |why: String| ApiError::bad_request(format!("{shape}: {why}"));
    let value = json::parse(body).map_err(|e| refuse(complaint(e)))?;
    let items = match value {
        serde_json::Value::Array(items) if !items.is_empty() && items.len() <= MAX_SAMPLES => items,
        serde_json::Value::Array(_) => return Err(refuse(format!("an array needs 1 to {MAX_SAMPLES} samples"))),
        object @ serde_json::Value::Object(_) => vec![object],
        _ => return Err(refuse("not an object or array".into())),
    };
    items
        .into_iter()
        .map(|item| {
            if !item.is_object() {
                return Err(refuse("a sample is not an object".into()));
            }
            let m: MetricBody = serde_json::from_value(item).map_err(|e| refuse(complaint(e)))?;
            let container = ContainerRef::parse(&m.container).map_err(|e| ApiError::bad_request(e.to_string()))?;
            if !valid_metric_name(&m.metric) {
                return Err(refuse(format!("{:?} is not a metric name", clip(&m.metric))));
            }
            if !m.value.is_finite() {
                return Err(refuse("the value is not a finite number".into()));
            }
            Ok(MetricSample { container, metric: m.metric, value: m.value })
        })
        .collect()
}

#[utoipa::path(post, path = "/v1/metrics", tag = "autoscaler",
    request_body(content = MetricPush, description = "One sample or an array of them"),
    responses((status = 202, description = "Recorded: `{\"accepted\": N}`", body = Object),
              (status = 400, description = "Malformed input (nothing reached the engine)", body = ErrorBody),
              (status = 403, description = "The caller may not push for that container's group, or the container is outside `--selector`", body = ErrorBody),
              (status = 404, description = "No such container", body = ErrorBody),
              (status = 409, description = "The container's group does not autoscale on that metric, or a short id names several containers (`ambiguous`)", body = ErrorBody),
              EngineFailures))]
pub(super) async fn push_metrics(
    State(state): State<AppState>,
    Extension(identity): Extension<Identity>,
    body: Bytes,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let samples = metric_samples(&body)?;
    state.autoscale.push(&samples, &identity).await?;
    Ok((StatusCode::ACCEPTED, Json(serde_json::json!({ "accepted": samples.len() }))))
}

#[utoipa::path(get, path = "/v1/groups", tag = "groups",
    responses((status = 200, description = "Every group the caller may read", body = Vec<GroupView>), EngineFailures))]
pub(super) async fn list_groups(
    State(state): State<AppState>,
    Extension(identity): Extension<Identity>,
) -> Result<Json<Vec<GroupView>>, ApiError> {
    let groups = state.service.fresh_groups().await?;
    // An app reads its own group only.
    let visible = groups.iter().filter(|g| identity.may(Permission::ReadGroups, g.name()));
    Ok(Json(visible.map(|g| GroupView::of(g, &state.autoscale)).collect()))
}

#[utoipa::path(get, path = "/v1/groups/{name}", tag = "groups", params(("name" = inline(schemas::GroupName), Path)),
    responses((status = 200, description = "The group", body = GroupView),
              (status = 400, description = "A malformed group name", body = ErrorBody),
              (status = 404, description = "No such group", body = ErrorBody),
              EngineFailures))]
pub(super) async fn show_group(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<GroupView>, ApiError> {
    let name = group_name(path)?;
    Ok(Json(GroupView::of(&state.service.group(name.as_str()).await?, &state.autoscale)))
}

#[utoipa::path(get, path = "/v1/groups/{name}/decisions", tag = "autoscaler", params(("name" = inline(schemas::GroupName), Path)),
    responses((status = 200, description = "Recent decisions, oldest first", body = Vec<DecisionView>),
              (status = 400, description = "A malformed group name", body = ErrorBody),
              (status = 404, description = "No such group", body = ErrorBody),
              EngineFailures))]
pub(super) async fn group_decisions(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<Vec<DecisionView>>, ApiError> {
    let name = group_name(path)?;
    state.service.group(name.as_str()).await?;
    Ok(Json(state.autoscale.history(name.as_str())))
}

#[utoipa::path(put, path = "/v1/groups/{name}/replicas", tag = "groups", params(("name" = inline(schemas::GroupName), Path)),
    request_body = ScaleBody,
    responses((status = 200, description = "The group after the change", body = GroupView),
              (status = 404, description = "No such group", body = ErrorBody),
              (status = 409, description = "Outside the group's bounds, its labels are malformed, it is busy, or `--max-containers` is reached", body = ErrorBody),
              CommandFailures,
              (status = 504, description = "`wait`: not ready in time", body = ErrorBody)))]
pub(super) async fn scale_group(
    State(state): State<AppState>,
    peer: Peer,
    path: Result<Path<String>, PathRejection>,
    body: Bytes,
) -> Result<Json<GroupView>, ApiError> {
    let name = group_name(path)?;
    let request = scale_request(&body)?;
    let wait = query::ready_wait(request.wait.as_deref(), request.timeout.as_deref())?;
    let group = state.service.scale(name.as_str(), request.replicas, caller(&peer), wait).await?;
    Ok(Json(GroupView::of(&group, &state.autoscale)))
}

/// Wakes a sleeping group (`?wait=ready[&timeout=D]`: once its originals are ready).
#[utoipa::path(post, path = "/v1/groups/{name}/wake", tag = "groups",
    params(("name" = inline(schemas::GroupName), Path),
           ("readiness" = inline(Option<schemas::Readiness>), Query, style = Form, explode,
            description = "`wait=ready`: answer once its originals are ready; `timeout`: how long (with `wait` only)")),
    responses((status = 200, description = "The group, awake", body = GroupView),
              (status = 400, description = "Malformed input (nothing reached the engine)", body = ErrorBody),
              (status = 404, description = "No such group", body = ErrorBody),
              EngineFailures,
              (status = 504, description = "`wait=ready`: not ready in time", body = ErrorBody)))]
pub(super) async fn wake_group(
    State(state): State<AppState>,
    peer: Peer,
    path: Result<Path<String>, PathRejection>,
    RawQuery(raw): RawQuery,
) -> Result<Json<GroupView>, ApiError> {
    let name = group_name(path)?;
    let wait = query::parse(raw.as_deref(), &["wait", "timeout"])?.wait()?;
    let group = state.service.wake(name.as_str(), caller(&peer), wait).await?;
    Ok(Json(GroupView::of(&group, &state.autoscale)))
}

pub(super) async fn not_found(uri: Uri) -> Response {
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

    fn parse_count(raw: Option<&str>) -> Result<u32, ApiError> {
        query::parse(raw, &["count"]).and_then(|q| q.count())
    }

    #[test]
    fn count_defaults_to_one_and_must_be_a_number() {
        assert_eq!(parse_count(None).unwrap(), 1);
        assert_eq!(parse_count(Some("")).unwrap(), 1);
        assert_eq!(parse_count(Some("count=3")).unwrap(), 3);
        assert_eq!(parse_count(Some("count=%31")).unwrap(), 1, "percent-decoded");
        assert_eq!(parse_count(Some("%63ount=2")).unwrap(), 2, "keys too");
        for bad in [
            "count=",
            "count=-1",
            "count=+1",
            "count=%2B1",
            "count=x",
            "count=1&count=2",
            "count=1&%63ount=2",
            "other=1",
            "count",
            "count=99999999999",
        ] {
            assert!(parse_count(Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn metric_bodies_are_one_sample_or_an_array() {
        assert_eq!(metric_samples(br#"{"container": "web", "metric": "rps", "value": 3.5}"#).unwrap().len(), 1);
        let two =
            br#"[{"container": "a", "metric": "rps", "value": 1}, {"container": "b", "metric": "rps", "value": 2}]"#;
        assert_eq!(metric_samples(two).unwrap().len(), 2);
        for bad in [
            &br#"{"container": "web", "metric": "rps"}"#[..],
            br#"{"container": "web", "metric": "rps", "value": "3"}"#,
            br#"{"container": "web", "metric": "rps", "value": 1e999}"#,
            br#"{"container": "../x", "metric": "rps", "value": 1}"#,
            br#"{"container": "web", "metric": "r p s", "value": 1}"#,
            br#"{"container": "web", "metric": "rps", "value": 1, "extra": 1}"#,
            br#"["web", "rps", 1]"#,
            b"[]",
            b"42",
            b"nope",
        ] {
            assert!(metric_samples(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn scale_bodies_must_be_exactly_the_documented_shape() {
        assert_eq!(scale_request(br#"{"replicas": 3}"#).unwrap().replicas, 3);
        assert_eq!(scale_request(br#"{"replicas": 3.0}"#).unwrap().replicas, 3, "JSON Schema's integer 3");
        for bad in [
            &b""[..],
            b"{}",
            b"[]",
            b"3",
            br#"{"replicas": -1}"#,
            br#"{"replicas": 1.5}"#,
            br#"{"replicas": "3"}"#,
            br#"{"replicas": 3, "extra": 1}"#,
            br#"{"replicas": 99999999999}"#,
            br#"{"replicas": 4294967296.0}"#,
            b"\xff",
        ] {
            assert!(scale_request(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }
}
