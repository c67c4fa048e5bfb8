//! Per-request tracing: a request id (the caller's `x-request-id` when it is
//! sane, else a new one) on every log line of the request and on the response.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

use super::PeerIdentity;

const HEADER: &str = "x-request-id";

fn new_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    static EPOCH: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    let epoch = EPOCH.get_or_init(|| crate::base::clock::unix_now() as u64);
    format!("{epoch:x}-{:x}", NEXT.fetch_add(1, Ordering::Relaxed))
}

fn is_sane(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

pub async fn trace_requests(req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| is_sane(v))
        .map(str::to_owned)
        .unwrap_or_else(new_id);
    let client = req.extensions().get::<PeerIdentity>().map(|p| p.common_name.clone()).unwrap_or_default();
    let span = tracing::info_span!("request", request_id = %id, method = %req.method(), path = %req.uri().path(), client = %client);
    // Agents report every few seconds from every node: their successes are
    // routine, logged only at debug; everything else (and any refusal) at info.
    let routine = req.method() == http::Method::PUT && req.uri().path().ends_with("/usage");
    let started = Instant::now();
    let mut response = next.run(req).instrument(span.clone()).await;
    let (status, elapsed_ms) = (response.status().as_u16(), started.elapsed().as_millis() as u64);
    span.in_scope(|| {
        if routine && response.status().is_success() {
            tracing::debug!(status, elapsed_ms, "request done")
        } else {
            tracing::info!(status, elapsed_ms, "request done")
        }
    });
    if let Ok(v) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(HEADER, v);
    }
    response
}
