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
use super::{json, query, schemas, AppState};
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
    params(("group" = inline(Option<schemas::GroupName>), Query, description = "One group only"),
           ("follower" = inline(Option<schemas::GroupName>), Query, description = "A follower that acknowledges and is waited for"),
           ("Last-Event-ID" = inline(Option<schemas::EventId>), Header, description = "Resume after this event")),
    responses((status = 200, description = STREAM_DESCRIPTION, content_type = "text/event-stream", body = String),
              (status = 400, description = "Malformed input: an unknown parameter, a malformed name or Last-Event-ID", body = super::status::ErrorBody),
              (status = 403, description = "The caller may not follow as that follower, or another identity follows as it", body = super::status::ErrorBody)))]
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

/// The stream's description: what each server-sent event carries.
const STREAM_DESCRIPTION: &str =
    "Server-sent events, never ending: each has an `id` (resume with `Last-Event-ID`), an `event` \
(`snapshot`, `member` or `decision`) and a `data` line of JSON: each event is described by the `StreamEvent` schema; \
a comment every 15 s keeps the connection open";

fn to_sse(e: &Event) -> SseEvent {
    SseEvent::default().id(e.id.to_string()).event(e.kind).data(&*e.data)
}

/// The body of `POST /v1/events/ack`.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct Ack {
    /// The follower's name, as it follows the stream.
    #[schema(value_type = schemas::GroupName)]
    follower: String,
    /// The latest event it has acted on.
    #[schema(value_type = schemas::EventId)]
    #[serde(deserialize_with = "json::whole")]
    id: u64,
}

/// A follower has acted on every event up to `id` (a balancer: reloaded).
#[utoipa::path(post, path = "/v1/events/ack", tag = "events", request_body = Ack,
    responses((status = 202, description = "Acknowledged: `{\"acked\": ID}`, the id kept (at most the latest event)", body = Object),
              (status = 400, description = "A malformed body", body = super::status::ErrorBody),
              (status = 403, description = "The caller may not acknowledge as that follower, or another identity follows as it", body = super::status::ErrorBody)))]
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

/// Describes the stream's events in the description: the `StreamEvent`
/// schema, one object per server-sent event (`id`, `event`, `data` with the
/// JSON it carries), as the `text/event-stream` content's `schema` (before
/// OpenAPI 3.2 and its `itemSchema`, the schema of a stream's content
/// describes each event); and `Last-Event-ID` as the event id it is, never
/// null.
pub fn describe(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::{Ref, RefOr};
    use utoipa::{PartialSchema, ToSchema};
    let components = doc.components.get_or_insert_with(Default::default);
    for (name, schema) in events::schemas() {
        components.schemas.insert(name, schema);
    }
    let Some(operation) = doc.paths.paths.get_mut("/v1/events").and_then(|item| item.get.as_mut()) else { return };
    for parameter in operation.parameters.iter_mut().flatten() {
        if parameter.name == "Last-Event-ID" {
            parameter.schema = Some(schemas::EventId::schema());
        }
    }
    if let Some(RefOr::T(response)) = operation.responses.responses.get_mut("200") {
        if let Some(content) = response.content.get_mut("text/event-stream") {
            content.schema = Some(Ref::from_schema_name(events::StreamEvent::name()).into());
        }
    }
}

/// The stream's events as schemas. The service builds them
/// ([`crate::service::events`]); these types only describe them, and the
/// test below holds them to what the hub sends.
mod events {
    #![allow(dead_code)]

    use std::collections::BTreeMap;

    use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Schema, Type};
    use utoipa::openapi::RefOr;
    use utoipa::{PartialSchema, ToSchema};

    use crate::inventory::{Health, MemberState};

    /// A member as the stream shows it: enough for a balancer to route to it.
    #[derive(utoipa::ToSchema)]
    pub struct StreamMember {
        /// Container id.
        id: String,
        /// Container name.
        name: String,
        /// Lifecycle state.
        state: MemberState,
        /// Running and, if it has a healthcheck, healthy, and passing the group's probe if it declares one.
        ready: bool,
        /// The engine's health report, when the container has a healthcheck.
        health: Option<Health>,
        /// What replicator's own probe found, when the group declares one.
        probe: Option<Health>,
        /// Address on each network, by network name.
        networks: BTreeMap<String, String>,
        /// Ports published on the host.
        published: Vec<StreamPort>,
    }

    /// A container port the engine publishes on a host address.
    #[derive(utoipa::ToSchema)]
    pub struct StreamPort {
        /// The port inside the container.
        container_port: u16,
        /// `tcp`, `udp` or `sctp`.
        protocol: String,
        /// The host address it is bound to.
        host_ip: String,
        /// The host port.
        host_port: u16,
    }

    /// One group in a snapshot.
    #[derive(utoipa::ToSchema)]
    pub struct SnapshotGroup {
        /// The group's name.
        name: String,
        /// Its members (not the exited ones).
        members: Vec<StreamMember>,
    }

    /// `event: snapshot`: every group's members (or the one group's), sent
    /// first, and to a client whose `Last-Event-ID` is no longer kept.
    #[derive(utoipa::ToSchema)]
    pub struct SnapshotData {
        /// Every group, by name.
        groups: Vec<SnapshotGroup>,
    }

    /// `event: member`: a member was created, became ready, is draining,
    /// changed otherwise, or was removed.
    #[derive(utoipa::ToSchema)]
    pub struct MemberData {
        /// The member's group.
        group: String,
        /// What happened to it.
        #[schema(schema_with = change_schema)]
        change: String,
        /// The member as it is now (as it was, when removed).
        member: StreamMember,
    }

    fn change_schema() -> impl Into<RefOr<Schema>> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(["created", "ready", "draining", "changed", "removed"]))
    }

    /// `event: decision`: the autoscaler changed (or in dry-run would have
    /// changed) a group's size.
    #[derive(utoipa::ToSchema)]
    pub struct DecisionData {
        /// The group.
        group: String,
        /// RFC 3339.
        at: String,
        /// Running members when it was made.
        from: u32,
        /// Members it settled on.
        to: u32,
        /// Every rule that shaped `to`, in words.
        reason: String,
        /// The per-member average the decision used.
        value: Option<f64>,
        /// Computed and reported only.
        dry_run: bool,
        /// Handed to the service to carry out.
        applied: bool,
    }

    /// One server-sent event of the stream, as OpenAPI 3.2's `itemSchema`
    /// describes one: `id`, `event`, and `data` (a line of JSON).
    pub struct StreamEvent;

    fn event(kind: &str, data: &str) -> ObjectBuilder {
        let content = serde_json::json!({ "$ref": format!("#/components/schemas/{data}") });
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .property(
                "id",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .pattern(Some("^[0-9]+$"))
                    .description(Some("The event's id, for `Last-Event-ID`")),
            )
            .required("id")
            .property("event", ObjectBuilder::new().schema_type(Type::String).enum_values(Some([kind])))
            .required("event")
            .property(
                "data",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .content_media_type("application/json")
                    .extensions(super::schemas::keyword("contentSchema", content)),
            )
            .required("data")
    }

    impl PartialSchema for StreamEvent {
        fn schema() -> RefOr<Schema> {
            OneOfBuilder::new()
                .item(event("snapshot", "SnapshotData"))
                .item(event("member", "MemberData"))
                .item(event("decision", "DecisionData"))
                .description(Some("One server-sent event"))
                .into()
        }
    }

    impl ToSchema for StreamEvent {}

    /// Every schema the stream's description names.
    pub fn schemas() -> Vec<(String, RefOr<Schema>)> {
        let mut all = vec![(StreamEvent::name().into_owned(), StreamEvent::schema())];
        for (name, schema) in [
            (SnapshotData::name(), SnapshotData::schema()),
            (MemberData::name(), MemberData::schema()),
            (DecisionData::name(), DecisionData::schema()),
            (SnapshotGroup::name(), SnapshotGroup::schema()),
            (StreamMember::name(), StreamMember::schema()),
            (StreamPort::name(), StreamPort::schema()),
        ] {
            all.push((name.into_owned(), schema));
        }
        let mut nested = Vec::new();
        StreamMember::schemas(&mut nested);
        all.extend(nested);
        all
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        /// The keys of `value` against the properties of the named schema.
        fn keys_of(schema: &str, value: &serde_json::Value) {
            let all: BTreeMap<String, RefOr<Schema>> = schemas().into_iter().collect();
            let described = serde_json::to_value(&all[schema]).unwrap();
            let properties = described["properties"].as_object().unwrap();
            let keys = value.as_object().unwrap();
            for key in keys.keys() {
                assert!(properties.contains_key(key), "{schema} does not describe {key:?}: {value}");
            }
            for key in described["required"].as_array().into_iter().flatten() {
                assert!(keys.contains_key(key.as_str().unwrap()), "{schema} requires {key}, not sent: {value}");
            }
        }

        #[test]
        fn the_schemas_describe_what_the_hub_sends() {
            use crate::inventory::{Group, Member};
            use crate::service::events::EventHub;
            let hub = std::sync::Arc::new(EventHub::default());
            let start = hub.subscribe("", None, None, "operator").unwrap().backlog[0].id;
            let mut member = Member::for_test("abc", MemberState::Running);
            member.networks.insert("bridge".into(), "172.17.0.2".into());
            member.published.push(crate::model::PublishedPort {
                container_port: 80,
                protocol: "tcp".into(),
                host_ip: "0.0.0.0".into(),
                host_port: 8080,
            });
            hub.observe(&[Group::for_test("web", vec![member])]);
            hub.decision(
                "web",
                serde_json::json!({
                    "group": "web", "at": "2026-01-01T00:00:00Z", "from": 1, "to": 2, "reason": "load",
                    "value": 1.5, "dry_run": false, "applied": true
                }),
            );
            let later = hub.subscribe("", None, Some(start), "operator").unwrap().backlog;
            let snapshot = hub.subscribe("", None, None, "operator").unwrap().backlog;
            let mut kinds = Vec::new();
            for event in later.iter().chain(&snapshot) {
                let data = event.json();
                kinds.push(event.kind);
                match event.kind {
                    "snapshot" => {
                        keys_of("SnapshotData", &data);
                        for group in data["groups"].as_array().unwrap() {
                            keys_of("SnapshotGroup", group);
                            group["members"].as_array().unwrap().iter().for_each(|m| keys_of("StreamMember", m));
                        }
                    }
                    "member" => {
                        keys_of("MemberData", &data);
                        keys_of("StreamMember", &data["member"]);
                        keys_of("StreamPort", &data["member"]["published"][0]);
                    }
                    "decision" => keys_of("DecisionData", &data),
                    other => panic!("an event kind the description does not name: {other}"),
                }
            }
            assert_eq!(kinds, ["member", "decision", "snapshot"]);
        }
    }
}
