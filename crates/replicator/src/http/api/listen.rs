//! The API's listener: the shared listener code over mutual TLS. Every
//! connection must complete the handshake (bounded in time) before a single
//! HTTP byte is read; the verified client's name travels with each request.

use std::future::Future;
use std::sync::Arc;

use crate::tls::ServerTls;
use axum::Router;
use tokio::net::TcpListener;

use crate::base::telemetry::Telemetry;
use crate::http::listener::{self, ServerOptions, Tls};

/// Serves `app` over TLS on `listener` until `shutdown` resolves, then drains;
/// refused handshakes are counted in `telemetry`.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<ServerTls>,
    app: Router,
    options: ServerOptions,
    telemetry: Arc<Telemetry>,
    shutdown: impl Future<Output = ()>,
) {
    listener::serve(listener, Some(Tls::new(tls, telemetry)), app, options, shutdown).await
}
