//! The wake listener (`serve --wake-listen ADDR`, plain HTTP, for the
//! balancer's host): while a group sleeps, `replicator upstreams --wake`
//! points the balancer's upstream here. A request that arrives is held, the
//! group woken, and once a member is ready the request is forwarded to it
//! and its answer sent back; the follower meanwhile rewrites the upstream to
//! the member, so only the first requests take this path.
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
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::sync::Semaphore;
use tracing::{info, warn};

use crate::base::id::GroupName;
use crate::base::quote::clip;
use crate::error::Error;
use crate::http::listener::PeerIdentity;
use crate::rules::labels::WakeRoute;
use crate::service::Replicator;

/// The header naming the group a request is for.
pub const GROUP_HEADER: &str = "x-replicator-group";
/// Largest request body held while a group wakes.
pub const MAX_HELD_BODY: usize = 1024 * 1024;

/// How the wake listener holds requests.
#[derive(Debug, Clone, Copy)]
pub struct WakeSettings {
    /// Requests held at once; beyond it, 503 with `Retry-After`.
    pub queue: usize,
    /// Longest a request waits for its group to wake.
    pub timeout: Duration,
    /// Longest the woken member may take to answer a forwarded request.
    pub forward_timeout: Duration,
    /// Request bodies held at once, in bytes; beyond it, 503 with `Retry-After`.
    pub max_held_bytes: usize,
}

#[derive(Clone)]
struct WakeState {
    service: Replicator,
    held: Arc<Semaphore>,
    bytes: Arc<Semaphore>,
    settings: WakeSettings,
    client: Client<HttpConnector, Full<Bytes>>,
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

/// The group the balancer named, or why the request names none (a 400).
fn group_of(headers: &HeaderMap) -> Result<GroupName, String> {
    let named = headers.get(GROUP_HEADER).and_then(|v| v.to_str().ok()).map(str::trim);
    let named = named
        .ok_or_else(|| format!("the balancer sent no {GROUP_HEADER} header: see replicator's README, Scale to zero"))?;
    GroupName::parse(named).map_err(|e| e.to_string())
}

/// A request may not pick where it goes: a port or network it names must be
/// the group's own (balancers that follow the README send neither).
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
        Err(Error::GroupNotFound(_)) => Err(refuse(StatusCode::NOT_FOUND, format!("no group {group}"))),
        Err(e) => Err(refuse(StatusCode::SERVICE_UNAVAILABLE, format!("group {group} cannot be read: {e}"))),
    }
}

async fn hold(State(state): State<WakeState>, request: Request) -> Response {
    let group = match group_of(request.headers()) {
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
    let Ok(_held) = state.held.clone().try_acquire_owned() else {
        return refuse(StatusCode::SERVICE_UNAVAILABLE, "too many requests are waiting for groups to wake");
    };
    // The budget is taken for what the body may be, before a byte of it is read.
    let declared = request.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    let budget = declared.unwrap_or(MAX_HELD_BODY);
    if budget > MAX_HELD_BODY {
        return refuse(StatusCode::PAYLOAD_TOO_LARGE, "a held request's body may be at most 1 MiB");
    }
    let Ok(_bytes) = state.bytes.clone().try_acquire_many_owned(budget.max(1) as u32) else {
        return refuse(StatusCode::SERVICE_UNAVAILABLE, "too many bytes are held for groups to wake");
    };
    let (parts, body) = request.into_parts();
    let body = match Limited::new(body, budget).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return refuse(StatusCode::PAYLOAD_TOO_LARGE, "a held request's body may be at most 1 MiB"),
    };
    let name = group.as_str();
    let address = match tokio::time::timeout(state.settings.timeout, awake_member(&state.service, name, &route)).await {
        Ok(Ok(address)) => address,
        Ok(Err(e)) => {
            warn!(group = name, error = %e, "cannot wake the group for a held request");
            return refuse(StatusCode::SERVICE_UNAVAILABLE, format!("group {name} could not be woken: {e}"));
        }
        Err(_) => return refuse(StatusCode::SERVICE_UNAVAILABLE, format!("group {name} did not wake in time")),
    };
    let peer = parts.extensions.get::<PeerIdentity>().and_then(|p| p.addr).map(|a| a.ip().to_string());
    match tokio::time::timeout(state.settings.forward_timeout, forward(&state.client, parts, body, &address, peer))
        .await
    {
        Ok(answer) => answer,
        Err(_) => refuse(
            StatusCode::GATEWAY_TIMEOUT,
            format!("the woken member of {name} did not answer within {:?}", state.settings.forward_timeout),
        ),
    }
}

/// Wakes the group if it sleeps and waits until one of its members is
/// ready; its address for the group's wake port.
async fn awake_member(service: &Replicator, name: &str, route: &WakeRoute) -> crate::error::Result<String> {
    let mut changes = service.inventory().subscribe();
    let group = service.group(name).await?;
    if group.asleep() {
        info!(group = name, "request held; waking the group");
        service.wake(name, "waker", None).await?;
    }
    loop {
        let group = service.group(name).await?;
        let ready = group.backends(route.port, route.network.as_deref());
        if let Some(first) = ready.into_iter().next() {
            return Ok(first.address);
        }
        if changes.changed().await.is_err() {
            return Err(Error::Internal("the inventory stopped".into()));
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

async fn forward(
    client: &Client<HttpConnector, Full<Bytes>>,
    parts: http::request::Parts,
    body: Bytes,
    to: &str,
    peer: Option<String>,
) -> Response {
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut request = http::Request::builder().method(parts.method).uri(format!("http://{to}{path}"));
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
    let Ok(request) = request.body(Full::new(body)) else {
        return refuse(StatusCode::BAD_REQUEST, "the held request cannot be forwarded");
    };
    match client.request(request).await {
        Ok(answer) => {
            let (mut parts, body) = answer.into_parts();
            let drop: Vec<HeaderName> = parts.headers.keys().filter(|n| hop_by_hop(n)).cloned().collect();
            for name in drop {
                parts.headers.remove(name);
            }
            Response::from_parts(parts, Body::new(body))
        }
        Err(e) => refuse(
            StatusCode::BAD_GATEWAY,
            format!("the woken member did not answer: {}", crate::base::chain::chain(&e)),
        ),
    }
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
        max_held_bytes: 4 * MAX_HELD_BODY,
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
