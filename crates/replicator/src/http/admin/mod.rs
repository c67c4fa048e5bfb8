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
    /// The page's token when the dashboard may act (`serve --dashboard-actions`);
    /// `None`: the page only shows.
    pub actions: Option<Arc<str>>,
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

/// 200 while the engine answers, 503 (with the reason) while it does not;
/// with what the engine is, as last probed.
async fn healthz(State(state): State<AdminState>) -> Response {
    let info = state
        .service
        .inventory()
        .engine()
        .map(|i| json!({ "kind": i.kind, "version": i.version, "api": i.api_version, "swarm": i.swarm }));
    match state.service.engine().ping().await {
        Ok(()) => Json(json!({ "status": "ok", "engine": "up", "engine_info": info })).into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "degraded", "engine": "down", "error": e.to_string(), "engine_info": info })),
        )
            .into_response(),
    }
}

async fn metrics(State(state): State<AdminState>) -> Response {
    let content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8";
    ([(header::CONTENT_TYPE, content_type)], state.service.telemetry().encode()).into_response()
}
