//! The TLS listener: every connection must complete a mutual-TLS handshake
//! (bounded in time) before a single HTTP byte is read; the verified client's
//! name travels with each request. Shutdown stops accepting and lets the
//! requests in flight finish within a grace period.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::Request;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use rustls::ServerConfig;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;
use tracing::{debug, info, warn};

use super::PeerIdentity;
use crate::tls::common_name;

#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Longest a client may take to complete the TLS handshake.
    pub handshake_timeout: Duration,
    /// Longest a client may take to send a request's headers.
    pub header_timeout: Duration,
    /// Longest shutdown waits for requests in flight.
    pub shutdown_grace: Duration,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            handshake_timeout: Duration::from_secs(10),
            header_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

/// Serves `app` on `listener` until `shutdown` resolves, then drains.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<ServerConfig>,
    app: Router,
    options: ServerOptions,
    shutdown: impl Future<Output = ()>,
) {
    let acceptor = TlsAcceptor::from(tls);
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (tcp, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of file descriptors, typically: back off instead of spinning.
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let acceptor = acceptor.clone();
        let app = app.clone();
        let watcher = graceful.watcher();
        let options = options.clone();
        tokio::spawn(async move {
            let stream = match tokio::time::timeout(options.handshake_timeout, acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(e)) => return info!(%remote, error = %e, "TLS handshake refused"),
                Err(_) => return info!(%remote, "TLS handshake timed out"),
            };
            let common_name = stream.get_ref().1.peer_certificates().and_then(|c| c.first()).and_then(common_name);
            let peer = PeerIdentity { common_name: common_name.unwrap_or_default(), addr: Some(remote) };
            let service = service_fn(move |mut req: Request<Incoming>| {
                req.extensions_mut().insert(peer.clone());
                app.clone().oneshot(req)
            });
            let mut http = http1::Builder::new();
            http.timer(TokioTimer::new()).header_read_timeout(options.header_timeout);
            let connection = http.serve_connection(TokioIo::new(stream), service);
            if let Err(e) = watcher.watch(connection).await {
                debug!(%remote, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    info!("no longer accepting connections; finishing requests in flight");
    tokio::select! {
        () = graceful.shutdown() => info!("all connections closed"),
        () = tokio::time::sleep(options.shutdown_grace) => warn!("shutdown grace period over; closing remaining connections"),
    }
}
