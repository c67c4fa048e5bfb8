//! The admin listener: plain HTTP, on localhost by default. Health,
//! Prometheus metrics and the dashboard, for probes, scrapers and people
//! that hold no client certificate.

mod dashboard;

use std::future::Future;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use tokio::net::TcpListener;

use std::sync::Arc;

use crate::autoscale::AutoscaleHandle;
use crate::http::listener::{self, ServerOptions};
use crate::service::Replicator;

/// Largest request body the admin listener reads: its one form is a few bytes.
pub const MAX_BODY: usize = 16 * 1024;

/// What the admin handlers read.
#[derive(Clone)]
pub struct AdminState {
    /// Groups, health and the scale buttons.
    pub service: Replicator,
    /// The autoscaler's settings, decisions and charts.
    pub autoscale: Arc<AutoscaleHandle>,
    /// What certificates without an identity may do (a warning on the page).
    pub unbound: crate::rules::access::UnboundPolicy,
    /// The API's TLS configuration: a failed reload makes `/healthz` degraded.
    pub tls: Option<Arc<crate::tls::ServerTls>>,
    /// Who may act from the page, when the dashboard may act (`serve
    /// --dashboard-actions`); `None`: the page only shows.
    pub actions: Option<DashboardActions>,
}

/// What lets a button of the dashboard act.
#[derive(Clone)]
pub struct DashboardActions {
    /// The page's token: random, per process, shown only to allowed peers.
    pub token: Arc<str>,
    /// Peer addresses allowed to act (`--dashboard-actions-from`, loopback by default).
    pub from: Arc<[crate::base::cidr::Cidr]>,
}

impl DashboardActions {
    /// The token for a request from `peer`, if that peer may act.
    pub fn token_for(&self, peer: Option<std::net::SocketAddr>) -> Option<&str> {
        self.allows(peer).then_some(&*self.token)
    }

    /// Whether a request from `peer` may act; an unknown peer may not.
    pub fn allows(&self, peer: Option<std::net::SocketAddr>) -> bool {
        peer.is_some_and(|p| self.from.iter().any(|c| c.contains(p.ip())))
    }
}

/// A fresh token for the dashboard's forms: random, per process, so a page
/// elsewhere cannot know it.
pub fn new_action_token() -> std::io::Result<Arc<str>> {
    use std::io::Read;
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect::<String>().into())
}

/// The admin routes.
pub fn router(state: AdminState) -> Router {
    Router::new()
        .route("/", get(dashboard::page))
        .route("/groups/{name}/scale", post(dashboard::scale))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::map_response(never_framed))
        .with_state(state)
}

/// No other site may frame the dashboard and steer clicks onto its buttons.
async fn never_framed(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::X_FRAME_OPTIONS, header::HeaderValue::from_static("DENY"));
    headers.insert(header::CONTENT_SECURITY_POLICY, header::HeaderValue::from_static("frame-ancestors 'none'"));
    response
}

/// Serves the admin routes over plain HTTP, bounded like the API (see
/// [`crate::http::listener`]), until `shutdown` resolves.
pub async fn serve(listener: TcpListener, router: Router, options: ServerOptions, shutdown: impl Future<Output = ()>) {
    listener::serve(listener, None, router, options, shutdown).await
}

/// 200 while the engine answers and the TLS files last read were good; 503
/// (with the reason) while the engine does not answer, or while a reload of
/// the certificates or revocation list failed (the running configuration
/// serves, but what the operator wrote is not in force); with what the
/// engine is, as last probed.
async fn healthz(State(state): State<AdminState>) -> Response {
    let info = state
        .service
        .inventory()
        .engine()
        .map(|i| json!({ "kind": i.kind, "version": i.version, "api": i.api_version, "swarm": i.swarm }));
    let tls = state.tls.as_ref().and_then(|tls| tls.reload_failure());
    let engine = state.service.engine().ping().await;
    let mut body = json!({ "status": "ok", "engine": "up", "engine_info": info, "tls": "current" });
    if let Err(e) = &engine {
        body["engine"] = json!("down");
        body["error"] = json!(e.to_string());
    }
    if let Some(why) = &tls {
        body["tls"] = json!("stale");
        body["tls_error"] = json!(format!("the last TLS reload failed; the previous configuration serves: {why}"));
    }
    if engine.is_ok() && tls.is_none() {
        return Json(body).into_response();
    }
    body["status"] = json!("degraded");
    (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
}

async fn metrics(State(state): State<AdminState>) -> Response {
    let content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8";
    ([(header::CONTENT_TYPE, content_type)], state.service.telemetry().encode()).into_response()
}
