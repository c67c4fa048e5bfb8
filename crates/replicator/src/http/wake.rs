//! The wake listener (`serve --wake-listen ADDR`, plain HTTP, for the
//! balancer's host): while a group sleeps, `replicator upstreams --wake`
//! points the balancer's upstream here. A request that arrives is held, the
//! group woken, and once a member is ready the request is forwarded to it
//! and its answer sent back; the follower meanwhile rewrites the upstream to
//! the member, so only the first requests take this path.
//!
//! The balancer says which group and port a request is for, in two headers
//! set next to `proxy_pass` (`X-Replicator-Group`, `X-Replicator-Port`, and
//! optionally `X-Replicator-Network`): the upstream file alone cannot
//! carry them, and a header is what every balancer can add.

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
use crate::service::Replicator;

/// The header naming the group a request is for.
pub const GROUP_HEADER: &str = "x-replicator-group";
/// The header naming the members' port.
pub const PORT_HEADER: &str = "x-replicator-port";
/// The header naming the network whose address to use (else the published port).
pub const NETWORK_HEADER: &str = "x-replicator-network";
/// Largest request body held while a group wakes.
pub const MAX_HELD_BODY: usize = 1024 * 1024;

/// How the wake listener holds requests.
#[derive(Debug, Clone, Copy)]
pub struct WakeSettings {
    /// Requests held at once; beyond it, 503 with `Retry-After`.
    pub queue: usize,
    /// Longest a request waits for its group to wake.
    pub timeout: Duration,
}

#[derive(Clone)]
struct WakeState {
    service: Replicator,
    held: Arc<Semaphore>,
    timeout: Duration,
    client: Client<HttpConnector, Full<Bytes>>,
}

/// The wake listener's routes: every method and path is a request to hold.
pub fn router(service: Replicator, settings: WakeSettings) -> Router {
    let state = WakeState {
        service,
        held: Arc::new(Semaphore::new(settings.queue)),
        timeout: settings.timeout,
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

/// Where the balancer says the request goes.
struct Target {
    group: GroupName,
    port: u16,
    network: Option<String>,
}

/// The target the balancer named, or why the request names none (a 400).
fn target(headers: &HeaderMap) -> Result<Target, String> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    let missing = |name: &str| format!("the balancer sent no {name} header: see replicator's README, Scale to zero");
    let group = text(GROUP_HEADER).ok_or_else(|| missing(GROUP_HEADER))?;
    let group = GroupName::parse(group).map_err(|e| e.to_string())?;
    let port = text(PORT_HEADER).ok_or_else(|| missing(PORT_HEADER))?;
    let port = port.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(|| format!("{PORT_HEADER} is not a port"))?;
    let network = text(NETWORK_HEADER).map(str::to_owned);
    Ok(Target { group, port, network })
}

async fn hold(State(state): State<WakeState>, request: Request) -> Response {
    let target = match target(request.headers()) {
        Ok(t) => t,
        Err(why) => return refuse(StatusCode::BAD_REQUEST, why),
    };
    let Ok(_held) = state.held.clone().try_acquire_owned() else {
        return refuse(StatusCode::SERVICE_UNAVAILABLE, "too many requests are waiting for groups to wake");
    };
    let (parts, body) = request.into_parts();
    let body = match Limited::new(body, MAX_HELD_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return refuse(StatusCode::PAYLOAD_TOO_LARGE, "a held request's body may be at most 1 MiB"),
    };
    let group = target.group.as_str();
    let address = match tokio::time::timeout(state.timeout, awake_member(&state.service, &target)).await {
        Ok(Ok(address)) => address,
        Ok(Err(e)) => {
            warn!(group, error = %e, "cannot wake the group for a held request");
            return refuse(StatusCode::SERVICE_UNAVAILABLE, format!("group {group} could not be woken: {e}"));
        }
        Err(_) => return refuse(StatusCode::SERVICE_UNAVAILABLE, format!("group {group} did not wake in time")),
    };
    forward(&state.client, parts, body, &address).await
}

/// Wakes the group if it sleeps and waits until one of its members is
/// ready; its address for the target port.
async fn awake_member(service: &Replicator, target: &Target) -> crate::error::Result<String> {
    let name = target.group.as_str();
    let mut changes = service.inventory().subscribe();
    let group = service.group(name).await?;
    if group.asleep() {
        info!(group = name, "request held; waking the group");
        service.wake(name, "waker", None).await?;
    }
    loop {
        let group = service.group(name).await?;
        let ready = group.backends(target.port, target.network.as_deref());
        if let Some(first) = ready.into_iter().next() {
            return Ok(first.address);
        }
        if changes.changed().await.is_err() {
            return Err(crate::error::Error::Internal("the inventory stopped".into()));
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
) -> Response {
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut request = http::Request::builder().method(parts.method).uri(format!("http://{to}{path}"));
    for (name, value) in parts.headers.iter().filter(|(n, _)| !hop_by_hop(n)) {
        request = request.header(name, value);
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

    async fn send(queue: usize, headers: &[(&str, &str)]) -> Response {
        let service = Replicator::for_test(Arc::new(FakeEngine::default()), Scope::default()).await;
        let app = router(service, WakeSettings { queue, timeout: Duration::from_secs(1) });
        let mut request = http::Request::builder().uri("/anything");
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        app.oneshot(request.body(Body::empty()).unwrap()).await.unwrap()
    }

    #[tokio::test]
    async fn a_request_that_names_no_group_or_port_is_refused_with_the_header_to_set() {
        let r = send(10, &[]).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        let body = r.into_body().collect().await.unwrap().to_bytes();
        assert!(String::from_utf8_lossy(&body).contains(GROUP_HEADER));
        let r = send(10, &[(GROUP_HEADER, "web"), (PORT_HEADER, "0")]).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        let r = send(10, &[(GROUP_HEADER, "../x"), (PORT_HEADER, "80")]).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    }

    #[tokio::test]
    async fn beyond_the_queue_a_request_gets_503_with_retry_after() {
        let r = send(0, &[(GROUP_HEADER, "web"), (PORT_HEADER, "80")]).await;
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(r.headers().get(header::RETRY_AFTER).unwrap(), "1");
    }

    #[tokio::test]
    async fn a_group_that_does_not_exist_answers_503_with_a_short_text() {
        let r = send(10, &[(GROUP_HEADER, "nope"), (PORT_HEADER, "80")]).await;
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        let body = r.into_body().collect().await.unwrap().to_bytes();
        assert!(String::from_utf8_lossy(&body).contains("could not be woken"), "{body:?}");
    }
}
