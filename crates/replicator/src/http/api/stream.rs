//! `GET /v1/events`: replicator's event stream as server-sent events, and
//! `POST /v1/events/ack`, where a follower says which events it has acted on.

use std::convert::Infallible;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::Extension;
use futures_util::stream::{self, Stream, StreamExt};
use serde_json::json;

use super::status::ApiError;
use super::{json, query, AppState};
use crate::base::id::GroupName;
use crate::base::quote::clip;
use crate::rules::access::{Denied, Identity, Permission};
use crate::service::events::Event;

/// Comments sent while nothing happens, so proxies keep the stream open.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// The stream: what was missed since `Last-Event-ID` (or a snapshot), then
/// every event as it happens; `?group=NAME` for one group, `?follower=NAME`
/// to acknowledge, and be waited for by scale-downs.
#[utoipa::path(get, path = "/v1/events", tag = "events",
    params(("group" = Option<String>, Query, description = "One group only"),
           ("follower" = Option<String>, Query, description = "A follower that acknowledges and is waited for"),
           ("Last-Event-ID" = Option<u64>, Header, description = "Resume after this event")),
    responses((status = 200, description = "Server-sent events: snapshot, member, decision", content_type = "text/event-stream", body = String)))]
pub async fn events(
    State(state): State<AppState>,
    Extension(identity): Extension<Identity>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    let q = query::parse(raw.as_deref(), &["group", "follower"])?;
    let group = q.get("group").map(GroupName::parse).transpose().map_err(|e| ApiError::bad_request(e.to_string()))?;
    // Unnamed clients observe; named followers acknowledge and are waited for.
    let follower = match q.get("follower") {
        Some(name) => GroupName::parse(name)
            .map_err(|_| ApiError::bad_request(format!("follower {:?} is not a name like nginx-1", clip(name))))?
            .as_str()
            .to_owned(),
        None => String::new(),
    };
    let last_id = match headers.get("last-event-id").map(|v| v.to_str().map(str::parse::<u64>)) {
        None => None,
        Some(Ok(Ok(id))) => Some(id),
        Some(_) => return Err(ApiError::bad_request("Last-Event-ID is not an event id")),
    };
    let hub = state.service.events().clone();
    let group_name = group.as_ref().map(|g| g.as_str().to_owned());
    if !follower.is_empty() {
        identity.check_for(Permission::Acknowledge, &follower, &format!("follow as {follower}")).map_err(denied)?;
    }
    let subscription = hub
        .subscribe(&follower, group_name.as_deref(), last_id, &identity.to_string())
        .map_err(|owner| taken(&identity, &follower, &owner))?;
    let guard = subscription.follower;
    let backlog = stream::iter(subscription.backlog);
    let wanted = group_name.clone();
    // A client that fell behind the hub sees its stream end, and resumes with Last-Event-ID.
    let live = stream::unfold(subscription.live, |mut live| async move { Some((live.recv().await.ok()?, live)) });
    let closing = hub.closing();
    let events = backlog
        .chain(live)
        .filter(move |e| {
            let keep = e.kind == "snapshot" || wanted.as_deref().is_none_or(|g| g == e.group);
            async move { keep }
        })
        .map(move |e| {
            let _registered = &guard;
            Ok(to_sse(&e))
        })
        .take_until(async move { closing.cancelled().await });
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)))
}

fn to_sse(e: &Event) -> SseEvent {
    SseEvent::default().id(e.id.to_string()).event(e.kind).data(&*e.data)
}

/// The body of `POST /v1/events/ack`.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct Ack {
    follower: String,
    id: u64,
}

/// A follower has acted on every event up to `id` (a balancer: reloaded).
#[utoipa::path(post, path = "/v1/events/ack", tag = "events", request_body = Ack,
    responses((status = 202, description = "Acknowledged", body = Object)))]
pub async fn ack(
    State(state): State<AppState>,
    Extension(identity): Extension<Identity>,
    body: Bytes,
) -> Result<(StatusCode, axum::Json<serde_json::Value>), ApiError> {
    let refuse =
        |why: String| ApiError::bad_request(format!(r#"expected {{"follower": "<name>", "id": <event id>}}: {why}"#));
    let value = json::parse(&body).map_err(|e| refuse(clip(&e.to_string())))?;
    if !value.is_object() {
        return Err(refuse("not a JSON object".into()));
    }
    let ack: Ack = serde_json::from_value(value).map_err(|e| refuse(clip(&e.to_string())))?;
    GroupName::parse(&ack.follower).map_err(|_| refuse(format!("follower {:?} is not a name", clip(&ack.follower))))?;
    let action = format!("acknowledge as {}", ack.follower);
    identity.check_for(Permission::Acknowledge, &ack.follower, &action).map_err(denied)?;
    let kept = state
        .service
        .events()
        .ack(&ack.follower, ack.id, &identity.to_string())
        .map_err(|owner| taken(&identity, &ack.follower, &owner))?;
    Ok((StatusCode::ACCEPTED, axum::Json(json!({ "acked": kept }))))
}

fn denied(d: Denied) -> ApiError {
    ApiError(d.into())
}

/// A follower name is its registering identity's: anyone else is refused.
fn taken(identity: &Identity, follower: &str, owner: &str) -> ApiError {
    denied(Denied {
        permission: Permission::Acknowledge,
        identity: identity.to_string(),
        kind: identity.kind(),
        action: format!("act as follower {follower}, which {owner} follows as"),
        scope: Some(follower.to_owned()),
    })
}
