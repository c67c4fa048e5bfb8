//! The wake listener (`serve --wake-listen ADDR`, plain HTTP, for the
//! balancer's host): while a group sleeps, `replicator upstreams --wake`
//! points the balancer's upstream here. A request that arrives is held, the
//! group woken, and once a member is ready the request is forwarded to it
//! and its answer sent back; the follower meanwhile rewrites the upstream to
//! the member, so only the first requests take this path.
//!
//! A member that is ready by every check it has may still refuse the
//! connection (an app without a healthcheck or probe listens a moment after
//! it runs): the request, whose body is held whole, is sent again with
//! backoff until `--wake-timeout`, so a starting member never costs a 502.
//! The balancer may also mirror every request the group serves
//! (`X-Replicator-Activity`): those only restart the group's quiet period
//! (`replicator.sleep.after`). Health checks (`replicator.wake.ignore`)
//! neither wake a group nor keep it awake.
//!
//! Clients may speak HTTP/1.1 or HTTP/2 with prior knowledge; a group
//! labelled `replicator.wake.protocol=h2c` (a gRPC server) gets its held
//! calls in HTTP/2, their bodies unread until a member accepts and their
//! trailers passed back.
//!
//! A request names only its group (`X-Replicator-Group`, set by the
//! balancer). Where it goes is the group's own choice, in labels on its
//! original (`replicator.wake.port`, optionally `replicator.wake.network`):
//! a group that did not opt in is refused and nothing is woken, and no
//! request can reach another port, group or network. Requests are bounded in
//! count and in bytes held, the forward in time; the member sees who asked
//! (`X-Forwarded-For`, `Forwarded`).

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use futures_util::StreamExt as _;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tracing::warn;

use crate::base::id::GroupName;
use crate::base::quote::clip;
use crate::error::{Error, Unreached};
use crate::http::api::status_of;
use crate::http::listener::PeerIdentity;
use crate::http::wake_page;
use crate::rules::backends::Backend;
use crate::rules::labels::{self, WakeProtocol, WakeRoute};
use crate::service::{FirstReady, How, Reach, Reached, Replicator};

/// The header naming the group a request is for.
pub const GROUP_HEADER: &str = "x-replicator-group";
/// The header of a mirrored copy of a request: the group it was for.
pub const ACTIVITY_HEADER: &str = "x-replicator-activity";
/// How much of a held request's body is read while its group wakes (about:
/// a whole frame of the connection may go past it); the rest waits in the
/// connection, and so in the kernel, until a member accepts, then streams.
pub const HELD_PART: usize = 64 * 1024;

/// How the wake listener holds requests.
#[derive(Debug, Clone)]
pub struct WakeSettings {
    /// Requests held at once; beyond it, 503 with `Retry-After`.
    pub queue: usize,
    /// Longest a request waits for its group to wake.
    pub timeout: Duration,
    /// Longest the woken member may take to answer a forwarded request.
    pub forward_timeout: Duration,
    /// Request bodies held at once, in bytes; beyond it, 503 with `Retry-After`.
    pub max_held_bytes: usize,
    /// The waiting page's template (`--wake-page`); `None`: the built-in one.
    pub page: Option<Arc<str>>,
}

#[derive(Clone)]
struct WakeState {
    service: Replicator,
    held: Arc<Semaphore>,
    bytes: Arc<Semaphore>,
    settings: WakeSettings,
    client: Client<HttpConnector, Full<Bytes>>,
    /// When each group's first waiting page was shown, until it has a ready member.
    waiting: Arc<std::sync::Mutex<std::collections::HashMap<String, Instant>>>,
}

/// The wake listener's routes: every method and path is a request to hold.
pub fn router(service: Replicator, settings: WakeSettings) -> Router {
    let bytes = settings.max_held_bytes.min(Semaphore::MAX_PERMITS);
    let state = WakeState {
        service,
        held: Arc::new(Semaphore::new(settings.queue)),
        bytes: Arc::new(Semaphore::new(bytes)),
        settings,
        client: Client::builder(TokioExecutor::new()).build_http(),
        waiting: Arc::default(),
    };
    Router::new().fallback(hold).with_state(state)
}

fn refuse(status: StatusCode, text: impl Into<String>) -> Response {
    let mut response = (status, format!("{}\n", text.into())).into_response();
    if status == StatusCode::SERVICE_UNAVAILABLE {
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}

/// The group the balancer named in `header`, or why the request names none (a 400).
fn group_of(headers: &HeaderMap, header: &str) -> Result<GroupName, String> {
    let named = headers.get(header).and_then(|v| v.to_str().ok()).map(str::trim);
    let named =
        named.ok_or_else(|| format!("the balancer sent no {header} header: see docs/guide/scale-to-zero.md"))?;
    GroupName::parse(named).map_err(|e| e.to_string())
}

/// A request may not pick where it goes: a port or network it names must be
/// the group's own (balancers set up as the guide says send neither).
fn picks_elsewhere(headers: &HeaderMap, route: &WakeRoute) -> Option<String> {
    let named = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim).filter(|v| !v.is_empty());
    if let Some(port) = named("x-replicator-port").filter(|p| *p != route.port.to_string()) {
        return Some(format!("the group takes requests on port {} only, not {:?}", route.port, clip(port)));
    }
    match (named("x-replicator-network"), route.network.as_deref()) {
        (Some(asked), Some(own)) if asked != own => Some(format!("the group takes requests on network {own} only")),
        (Some(_), None) => Some("the group takes requests on its published port only".into()),
        _ => None,
    }
}

/// Where the group takes held requests; a refusal when it did not opt in.
async fn route_of(service: &Replicator, group: &GroupName) -> Result<WakeRoute, Response> {
    let group = group.as_str();
    match service.group(group).await {
        Ok(g) => g.wake.ok_or_else(|| {
            refuse(
                StatusCode::FORBIDDEN,
                format!(
                    "group {group} does not take requests through the wake listener: label its original {}",
                    crate::rules::labels::WAKE_PORT
                ),
            )
        }),
        Err(e @ Error::GroupNotFound(_)) => Err(refuse(status_of(&e).0, format!("no group {group}"))),
        Err(e) => Err(refuse(StatusCode::SERVICE_UNAVAILABLE, format!("group {group} cannot be read: {e}"))),
    }
}

async fn hold(State(state): State<WakeState>, request: Request) -> Response {
    let arrived = Instant::now();
    if request.headers().contains_key(ACTIVITY_HEADER) {
        return activity(&state, request.headers(), request.uri().path()).await;
    }
    let group = match group_of(request.headers(), GROUP_HEADER) {
        Ok(g) => g,
        Err(why) => return refuse(StatusCode::BAD_REQUEST, why),
    };
    let route = match route_of(&state.service, &group).await {
        Ok(route) => route,
        Err(refusal) => return refusal,
    };
    if let Some(why) = picks_elsewhere(request.headers(), &route) {
        return refuse(StatusCode::FORBIDDEN, format!("group {}: {why}", group.as_str()));
    }
    let name = group.as_str();
    let health_check = route.ignores(request.uri().path(), user_agent(request.headers()));
    if health_check {
        state.service.telemetry().wake_request("ignored");
        if state.service.group(name).await.is_ok_and(|g| g.asleep()) {
            return refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("group {name} is asleep, and health checks ({}) do not wake it", labels::WAKE_IGNORE),
            );
        }
    } else {
        state.service.saw_request(name);
    }
    if route.page && wake_page::wants_page(request.method(), request.headers()) {
        if let Some(page) = waiting_page(&state, name).await {
            return page;
        }
    }
    let Ok(_held) = state.held.clone().try_acquire_owned() else {
        state.service.telemetry().wake_request("shed");
        return refuse(StatusCode::SERVICE_UNAVAILABLE, "too many requests are waiting for groups to wake");
    };
    // The budget is taken for what will be read while waiting, before a byte of it is.
    let declared = request.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    let budget = declared.map_or(HELD_PART, |length| length.min(HELD_PART));
    let Ok(_bytes) = state.bytes.clone().try_acquire_many_owned(budget.max(1) as u32) else {
        state.service.telemetry().wake_request("shed");
        return refuse(StatusCode::SERVICE_UNAVAILABLE, "too many bytes are held for groups to wake");
    };
    state.service.telemetry().wake_request("held");
    let mut request = request;
    let upgrade = is_upgrade(request.headers()).then(|| request.extensions_mut().remove::<hyper::upgrade::OnUpgrade>());
    let upgrade = std::sync::Mutex::new(upgrade.flatten());
    let (parts, body) = request.into_parts();
    let (first, rest) = match held_body(body, route.protocol, budget).await {
        Ok(read) => read,
        Err(why) => return refuse(StatusCode::BAD_REQUEST, format!("the request's body could not be read: {why}")),
    };
    let rest = std::sync::Mutex::new(rest);
    let held = Held { parts, first, rest, upgrade, arrived, deadline: arrived + state.settings.timeout };
    deliver(&state, (name, !health_check), &route, &held).await
}

/// The waiting page for a browser while `name` has no ready member (its
/// wake started if it sleeps); `None` once one is ready: the request is
/// then held and forwarded as any other.
async fn waiting_page(state: &WakeState, name: &str) -> Option<Response> {
    let group = state.service.group(name).await.ok()?;
    let mut waiting = state.waiting.lock().expect("waiting pages");
    if group.members.iter().any(|m| m.ready()) {
        waiting.remove(name);
        return None;
    }
    // A wake whose page nobody reloaded after it was ready left its entry: a
    // wake never outlasts --wake-timeout, so an older one is a new wake.
    let timeout = state.settings.timeout;
    let since = waiting.entry(name.to_owned()).or_insert_with(Instant::now);
    if since.elapsed() > timeout {
        *since = Instant::now();
    }
    let since = *since;
    drop(waiting);
    if group.asleep() {
        let service = state.service.clone();
        let name = name.to_owned();
        tokio::spawn(async move {
            if let Err(e) = service.wake(&name, "wake page", None).await {
                warn!(group = %name, error = %e, "the waiting page could not wake the group");
            }
        });
    }
    state.service.telemetry().wake_request("page");
    let shown =
        wake_page::Waiting { group: name.to_owned(), waited: since.elapsed(), phases: wake_page::phases_of(&group) };
    let template = state.settings.page.as_deref().unwrap_or(wake_page::DEFAULT_TEMPLATE);
    Some(wake_page::response(wake_page::render(template, &shown)))
}

/// `X-Replicator-Activity: GROUP`: the balancer's mirrored copy of a
/// request the group served. It restarts the group's quiet period (unless
/// it is a health check) and is answered at once; it never wakes anything.
async fn activity(state: &WakeState, headers: &HeaderMap, path: &str) -> Response {
    let group = match group_of(headers, ACTIVITY_HEADER) {
        Ok(g) => g,
        Err(why) => return refuse(StatusCode::BAD_REQUEST, why),
    };
    let route = match route_of(&state.service, &group).await {
        Ok(route) => route,
        Err(refusal) => return refusal,
    };
    if route.ignores(path, user_agent(headers)) {
        state.service.telemetry().wake_request("ignored");
    } else {
        state.service.saw_request(group.as_str());
        state.service.telemetry().wake_request("activity");
    }
    StatusCode::NO_CONTENT.into_response()
}

fn user_agent(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok())
}

/// A request held: its head, the first part of its body, the rest still
/// unread in its connection (`None`: the body is whole in `first`), when it
/// came and how long it may wait.
struct Held {
    parts: http::request::Parts,
    first: Bytes,
    rest: std::sync::Mutex<Option<Body>>,
    /// The client's side of an upgrade it asks for (a WebSocket), once a member agrees.
    upgrade: std::sync::Mutex<Option<hyper::upgrade::OnUpgrade>>,
    arrived: Instant,
    deadline: Instant,
}

/// What is read of a held request's body while its group wakes (a first
/// part of it, up to `budget`), and the rest.
async fn held_body(body: Body, protocol: WakeProtocol, budget: usize) -> Result<(Bytes, Option<Body>), String> {
    match protocol {
        // A gRPC call's body may be a stream the client feeds as answers
        // come: nothing of it is read until a member accepts.
        WakeProtocol::H2c => Ok((Bytes::new(), Some(body))),
        WakeProtocol::Http1 => first_part(body, budget).await,
    }
}

/// Reads up to about `limit` bytes of `body`: what was read, and the rest
/// of the body when it goes on.
async fn first_part(mut body: Body, limit: usize) -> Result<(Bytes, Option<Body>), String> {
    let mut first = bytes::BytesMut::new();
    while first.len() < limit {
        match body.frame().await {
            None => return Ok((first.freeze(), None)),
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    first.extend_from_slice(&data);
                }
            }
            Some(Err(e)) => return Err(e.to_string()),
        }
    }
    match hyper::body::Body::is_end_stream(&body) {
        true => Ok((first.freeze(), None)),
        false => Ok((first.freeze(), Some(body))),
    }
}

/// Forwards the request to a ready member of the group, waking it if it
/// sleeps (the service's one way to reach a member); a refused connection
/// (a member that became ready before its app listens) is tried again, with
/// backoff, until the deadline.
/// `wakes`: whether a sleeping group is woken for it (not for a health check).
async fn deliver(state: &WakeState, (name, wakes): (&str, bool), route: &WakeRoute, held: &Held) -> Response {
    let peer = held.parts.extensions.get::<PeerIdentity>().and_then(|p| p.addr).map(|a| a.ip().to_string());
    let reach = Reach {
        group: name,
        port: route.port,
        network: route.network.as_deref(),
        deadline: held.deadline,
        caller: "waker",
        wakes,
    };
    let mut sent = Instant::now();
    let reached = state
        .service
        .reach(reach, &mut FirstReady, |member| {
            sent = Instant::now();
            let (peer, limit) = (peer.clone(), state.settings.forward_timeout);
            async move {
                match tokio::time::timeout(limit, forward(state, (held, route.protocol), &member, peer)).await {
                    Ok(Ok(answer)) => Ok(answer),
                    Ok(Err(Failed::Refused(why))) => Err(why),
                    Ok(Err(Failed::Other(why))) => {
                        Ok(refuse(StatusCode::BAD_GATEWAY, format!("the woken member did not answer: {why}")))
                    }
                    Err(_) => Ok(refuse(
                        StatusCode::GATEWAY_TIMEOUT,
                        format!("the woken member of {name} did not answer within {limit:?}"),
                    )),
                }
            }
        })
        .await;
    let telemetry = state.service.telemetry();
    match reached {
        Ok(Reached { value, how }) => {
            let how = how.map_or("awake", How::as_str);
            telemetry.capacity_phase(how, "held", sent - held.arrived);
            telemetry.capacity_phase(how, "first_byte", sent.elapsed());
            telemetry.wake_request("forwarded");
            value
        }
        Err(e) => {
            if matches!(&e, Error::Unreachable { reason: Unreached::NotInTime | Unreached::Refused(_), .. }) {
                telemetry.wake_request("timed_out");
            }
            warn!(group = name, error = %e, "a held request reached no member");
            refuse(status_of(&e).0, e.to_string())
        }
    }
}

/// Headers that belong to one hop, and ours, are not passed on.
fn hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection" | "keep-alive" | "proxy-connection" | "te" | "trailer" | "transfer-encoding" | "upgrade"
    ) || name.as_str().starts_with("x-replicator-")
}

/// Why a forward failed: a refused connection may be tried again (nothing reached the member).
enum Failed {
    Refused(String),
    Other(String),
}

async fn forward(
    state: &WakeState,
    (held, protocol): (&Held, WakeProtocol),
    member: &Backend,
    peer: Option<String>,
) -> Result<Response, Failed> {
    let (client, to) = (&state.client, member.address.as_str());
    let request = head_of(held, peer);
    if held.upgrade.lock().expect("held upgrade").is_some() {
        return upgrade_to(state, request, held, member).await;
    }
    let streamed = held.rest.lock().expect("held body").is_some();
    let answer = if protocol == WakeProtocol::H2c {
        h2c_to(request, held, to).await?
    } else if streamed {
        stream_to(request, held, to).await?
    } else {
        let path = held.parts.uri.path_and_query().map_or("/", |p| p.as_str());
        let Ok(request) = request.uri(format!("http://{to}{path}")).body(Full::new(held.first.clone())) else {
            return Ok(refuse(StatusCode::BAD_REQUEST, "the held request cannot be forwarded"));
        };
        match client.request(request).await {
            Ok(answer) => answer.map(Body::new),
            Err(e) if e.is_connect() => return Err(Failed::Refused(crate::base::chain::chain(&e))),
            Err(e) => return Err(Failed::Other(crate::base::chain::chain(&e))),
        }
    };
    let (mut parts, body) = answer.into_parts();
    let drop: Vec<HeaderName> = parts.headers.keys().filter(|n| hop_by_hop(n)).cloned().collect();
    for name in drop {
        parts.headers.remove(name);
    }
    // The answer streams back as it comes (server-sent events, downloads).
    Ok(Response::from_parts(parts, body))
}

/// The held request's method and headers as the member gets them: ours and
/// the hop's dropped, who asked added (`X-Forwarded-For`, `Forwarded`).
fn head_of(held: &Held, peer: Option<String>) -> http::request::Builder {
    let parts = &held.parts;
    let mut request = http::Request::builder().method(parts.method.clone());
    let mut forwarded_for = None;
    for (name, value) in parts.headers.iter().filter(|(n, _)| !hop_by_hop(n)) {
        match (name.as_str(), &peer) {
            ("x-forwarded-for", Some(ip)) => forwarded_for = Some(format!("{}, {ip}", value.to_str().unwrap_or(""))),
            ("forwarded", Some(_)) => {}
            _ => request = request.header(name, value),
        }
    }
    if let Some(ip) = &peer {
        request = request.header("x-forwarded-for", forwarded_for.unwrap_or_else(|| ip.clone()));
        let quoted = if ip.contains(':') { format!("\"[{ip}]\"") } else { ip.clone() };
        let earlier = parts.headers.get(header::FORWARDED).and_then(|v| v.to_str().ok());
        request = request.header(
            header::FORWARDED,
            match earlier {
                Some(e) => format!("{e}, for={quoted}"),
                None => format!("for={quoted}"),
            },
        );
    }
    request
}

/// Whether the request asks to switch protocols (`Connection: upgrade`
/// with an `Upgrade`, as a WebSocket's handshake does).
fn is_upgrade(headers: &HeaderMap) -> bool {
    let connection = headers.get_all(header::CONNECTION).iter().filter_map(|v| v.to_str().ok());
    let asks = connection.flat_map(|v| v.split(',')).any(|token| token.trim().eq_ignore_ascii_case("upgrade"));
    asks && headers.contains_key(header::UPGRADE)
}

/// Forwards an upgrade's handshake to `member` on a connection of its own;
/// once it answers 101, splices the client's connection and the member's
/// both ways until either closes, counted as an open connection of the
/// member (a scale-down drains it; the group stays awake while it lasts).
async fn upgrade_to(
    state: &WakeState,
    request: http::request::Builder,
    held: &Held,
    member: &Backend,
) -> Result<Response, Failed> {
    let to = member.address.as_str();
    let (mut sender, driving) = connect(to).await?;
    tokio::spawn(driving.with_upgrades());
    let mut request = origin_form(request, held, to).header(header::CONNECTION, "upgrade");
    for value in held.parts.headers.get_all(header::UPGRADE) {
        request = request.header(header::UPGRADE, value);
    }
    let request = request.body(Body::empty()).map_err(|e| Failed::Other(e.to_string()))?;
    let mut answer = sender.send_request(request).await.map_err(|e| Failed::Other(crate::base::chain::chain(&e)))?;
    if answer.status() != StatusCode::SWITCHING_PROTOCOLS {
        return Ok(answer.map(Body::new));
    }
    let client = held.upgrade.lock().expect("held upgrade").take();
    let (member_side, open) = (hyper::upgrade::on(&mut answer), state.service.connections().opened(&member.id));
    let group = member.name.clone();
    tokio::spawn(async move {
        let Some(client) = client else { return };
        match tokio::try_join!(client, member_side) {
            Ok((client, member_side)) => {
                let (mut client, mut member_side) =
                    (hyper_util::rt::TokioIo::new(client), hyper_util::rt::TokioIo::new(member_side));
                let _ = tokio::io::copy_bidirectional(&mut client, &mut member_side).await;
            }
            Err(e) => warn!(member = %group, error = %e, "an upgraded connection could not be spliced"),
        }
        drop(open);
    });
    Ok(answer.map(|_| Body::empty()))
}

/// Sends one request on a connection of its own to a member.
type Sender = hyper::client::conn::http1::SendRequest<Body>;
/// Drives that connection (spawned; with upgrades for a WebSocket).
type Driving = hyper::client::conn::http1::Connection<hyper_util::rt::TokioIo<tokio::net::TcpStream>, Body>;

/// A connection of its own to the member at `to`: refused (nothing sent,
/// the request may be tried again) or ready for one request.
async fn connect(to: &str) -> Result<(Sender, Driving), Failed> {
    let connection = tokio::net::TcpStream::connect(to).await.map_err(|e| Failed::Refused(e.to_string()))?;
    hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(connection))
        .await
        .map_err(|e| Failed::Other(e.to_string()))
}

/// The held request's path as sent on a connection to the member, with a
/// `Host` when the client sent none.
fn origin_form(request: http::request::Builder, held: &Held, to: &str) -> http::request::Builder {
    let request = request.uri(held.parts.uri.path_and_query().map_or("/", |p| p.as_str()));
    match held.parts.headers.contains_key(header::HOST) {
        true => request,
        false => request.header(header::HOST, to),
    }
}

/// Sends a request whose body goes on past what was held: connects first
/// (a refused connect leaves the body unread, to try again), then streams
/// the first part and the rest, straight from the client's connection.
async fn stream_to(request: http::request::Builder, held: &Held, to: &str) -> Result<http::Response<Body>, Failed> {
    let (mut sender, driving) = connect(to).await?;
    tokio::spawn(driving);
    let request = origin_form(request, held, to).body(whole_body(held)?);
    let request = request.map_err(|e| Failed::Other(e.to_string()))?;
    let answer = sender.send_request(request).await.map_err(|e| Failed::Other(crate::base::chain::chain(&e)))?;
    Ok(answer.map(Body::new))
}

/// The held body: its first part, then the rest as the client sends it
/// (its trailers too, which a gRPC client may send).
fn whole_body(held: &Held) -> Result<Body, Failed> {
    let rest =
        held.rest.lock().expect("held body").take().ok_or_else(|| Failed::Other("the body went already".into()))?;
    if held.first.is_empty() {
        return Ok(rest);
    }
    let first = held.first.clone();
    let whole =
        futures_util::stream::once(async move { Ok::<Bytes, axum::Error>(first) }).chain(rest.into_data_stream());
    Ok(Body::from_stream(whole))
}

/// Sends the held request to `to` in HTTP/2 with prior knowledge (a gRPC
/// server), on a connection of its own: connects first (refused: tried
/// again, the body untouched), then streams the body both ways; the
/// answer's trailers (`grpc-status`) come back at its end.
async fn h2c_to(request: http::request::Builder, held: &Held, to: &str) -> Result<http::Response<Body>, Failed> {
    let connection = tokio::net::TcpStream::connect(to).await.map_err(|e| Failed::Refused(e.to_string()))?;
    let io = hyper_util::rt::TokioIo::new(connection);
    let (mut sender, driving) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
        .await
        .map_err(|e| Failed::Other(crate::base::chain::chain(&e)))?;
    tokio::spawn(driving);
    let parts = &held.parts;
    // HTTP/2 names the host in :authority, from the URI, not in a Host header.
    let host = parts.headers.get(header::HOST).and_then(|h| h.to_str().ok()).map(str::to_owned);
    let authority = parts.uri.authority().map(|a| a.as_str().to_owned()).or(host).unwrap_or_else(|| to.to_owned());
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut request = request.uri(format!("http://{authority}{path}"));
    if let Some(headers) = request.headers_mut() {
        headers.remove(header::HOST);
        // The one TE HTTP/2 allows, which gRPC requires: dropped with the hop's headers, restored.
        if wants_trailers(&parts.headers) {
            headers.insert(header::TE, HeaderValue::from_static("trailers"));
        }
    }
    let request = request.body(whole_body(held)?).map_err(|e| Failed::Other(e.to_string()))?;
    let answer = sender.send_request(request).await.map_err(|e| Failed::Other(crate::base::chain::chain(&e)))?;
    Ok(answer.map(Body::new))
}

/// Whether the client said it takes trailers (`TE: trailers`).
fn wants_trailers(headers: &HeaderMap) -> bool {
    let te = headers.get_all(header::TE).iter().filter_map(|v| v.to_str().ok());
    te.flat_map(|v| v.split(',')).any(|token| token.trim().eq_ignore_ascii_case("trailers"))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tower::ServiceExt;

    use super::*;
    use crate::engine::fake::FakeEngine;
    use crate::inventory::Scope;

    const SETTINGS: WakeSettings = WakeSettings {
        queue: 10,
        timeout: Duration::from_secs(1),
        forward_timeout: Duration::from_secs(1),
        max_held_bytes: 4 * HELD_PART,
        page: None,
    };

    async fn send(settings: WakeSettings, headers: &[(&str, &str)]) -> Response {
        let engine = Arc::new(FakeEngine::default());
        engine.add_container("web", &[("replicator.enable", "true")]);
        engine.add_container("api", &[("replicator.enable", "true"), ("replicator.wake.port", "8080")]);
        let service = Replicator::for_test(engine, Scope::default()).await;
        let app = router(service, settings);
        let mut request = http::Request::builder().uri("/anything");
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        app.oneshot(request.body(Body::empty()).unwrap()).await.unwrap()
    }

    async fn text(r: Response) -> String {
        String::from_utf8_lossy(&r.into_body().collect().await.unwrap().to_bytes()).into_owned()
    }

    #[tokio::test]
    async fn a_request_that_names_no_group_is_refused_with_the_header_to_set() {
        let r = send(SETTINGS, &[]).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        assert!(text(r).await.contains(GROUP_HEADER));
        let r = send(SETTINGS, &[(GROUP_HEADER, "../x")]).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    }

    #[tokio::test]
    async fn a_group_that_did_not_opt_in_is_refused_and_nothing_wakes() {
        let r = send(SETTINGS, &[(GROUP_HEADER, "web"), ("x-replicator-port", "22")]).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        assert!(text(r).await.contains("replicator.wake.port"));
        let r = send(SETTINGS, &[(GROUP_HEADER, "nope")]).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        let r = send(SETTINGS, &[(GROUP_HEADER, "api"), ("x-replicator-port", "22")]).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "a port the group did not name");
        assert!(text(r).await.contains("port 8080 only"));
    }

    /// A group `api` that opted in, ignores `/healthz`, and sleeps.
    async fn asleep() -> (Replicator, Router) {
        let engine = Arc::new(FakeEngine::default());
        let labels = [
            ("replicator.enable", "true"),
            ("replicator.min", "0"),
            ("replicator.wake.port", "8080"),
            ("replicator.wake.ignore", "/healthz,agent=probe"),
        ];
        engine.add_container("api", &labels);
        let service = Replicator::for_test(engine, Scope::default()).await;
        service.scale("api", 0, "test", None).await.unwrap();
        assert!(service.group("api").await.unwrap().asleep());
        (service.clone(), router(service, SETTINGS))
    }

    async fn call(app: &Router, path: &str, headers: &[(&str, &str)]) -> Response {
        let mut request = http::Request::builder().uri(path);
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        app.clone().oneshot(request.body(Body::empty()).unwrap()).await.unwrap()
    }

    #[tokio::test]
    async fn a_mirrored_request_is_answered_at_once_and_wakes_nothing() {
        let (service, app) = asleep().await;
        let r = call(&app, "/page", &[(ACTIVITY_HEADER, "api")]).await;
        assert_eq!(r.status(), StatusCode::NO_CONTENT);
        assert!(service.group("api").await.unwrap().asleep());
        let counted = service.telemetry().encode();
        assert!(counted.contains("replicator_wake_requests_total{event=\"activity\"} 1"), "{counted}");
        let r = call(&app, "/page", &[(ACTIVITY_HEADER, "nope")]).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "only groups that exist and opted in");
    }

    #[tokio::test]
    async fn a_health_check_neither_wakes_a_sleeping_group_nor_counts_as_activity() {
        let (service, app) = asleep().await;
        let r = call(&app, "/healthz", &[(GROUP_HEADER, "api")]).await;
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(text(r).await.contains("do not wake it"));
        let r = call(&app, "/", &[(GROUP_HEADER, "api"), ("user-agent", "probe/1")]).await;
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(service.group("api").await.unwrap().asleep());
        call(&app, "/healthz", &[(ACTIVITY_HEADER, "api")]).await;
        let counted = service.telemetry().encode();
        assert!(counted.contains("replicator_wake_requests_total{event=\"ignored\"} 3"), "{counted}");
        assert!(!counted.contains("event=\"activity\""), "{counted}");
    }

    #[tokio::test]
    async fn beyond_the_queue_or_the_bytes_held_a_request_gets_503_with_retry_after() {
        let r = send(WakeSettings { queue: 0, ..SETTINGS }, &[(GROUP_HEADER, "api")]).await;
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(r.headers().get(header::RETRY_AFTER).unwrap(), "1");
        let r =
            send(WakeSettings { max_held_bytes: 10, ..SETTINGS }, &[(GROUP_HEADER, "api"), ("content-length", "100")])
                .await;
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(text(r).await.contains("bytes"));
    }
}
