//! Every listener, bounded alike. The HTTPS API and the plain-HTTP admin
//! listener serve their connections with the same code, TLS being the only
//! difference: a cap on open connections (beyond it, new ones wait in the
//! kernel's backlog), a header read timeout that also closes idle keep-alive
//! connections, a header size limit, a body read timeout, and a declared
//! `Content-Length` over the limit refused before the body is read.
//! Shutdown stops accepting and lets the requests in flight finish within a
//! grace period.

mod body;
mod handshake;
mod limits;
mod linger;
pub mod origin;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use http::{header, HeaderValue, StatusCode};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;
use tracing::{debug, info, warn};

use crate::tls::Claim;

pub use handshake::{Chain, HandshakeRefusals, Tls};
pub use limits::{default_max_connections, descriptor_budget, leaves_reserve, raise_fd_limit};

/// The verified client, as its certificate names it, and where it connects from.
#[derive(Debug, Clone, Default)]
pub struct PeerIdentity {
    /// Subject common name of the client certificate (empty on plain HTTP).
    pub common_name: String,
    /// What the verified certificate claims (`None` on plain HTTP): the
    /// URIs where identities are written, or the Swarm node it belongs to.
    pub claim: Option<Claim>,
    /// The client's address, for logs and per-client rate limits.
    pub addr: Option<SocketAddr>,
}

/// The bounds of one listener. Both listeners take the same flags; only
/// `max_body` differs (each knows its largest legitimate request).
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Longest a client may take to complete the TLS handshake.
    pub handshake_timeout: Duration,
    /// Longest a client may take to send a request's headers, and so the
    /// longest a keep-alive connection may stay idle between requests.
    pub header_timeout: Duration,
    /// Longest a client may take to send a request's whole body.
    pub body_timeout: Duration,
    /// Largest request line plus headers; beyond it, 431.
    pub max_header_bytes: usize,
    /// Largest declared body; a larger `Content-Length` gets 413 at once.
    pub max_body_bytes: usize,
    /// Connections served at once; the next ones wait in the kernel backlog.
    pub max_connections: usize,
    /// Longest shutdown waits for requests in flight.
    pub shutdown_grace: Duration,
    /// Oldest a connection may grow: then it ends after its request in
    /// flight (`None`: connections live as long as their client keeps them).
    pub max_connection_age: Option<Duration>,
    /// Whether a client may speak HTTP/2 with prior knowledge (h2c) as well
    /// as HTTP/1.1: the wake listener's, for gRPC.
    pub h2c: bool,
}

/// Request line and headers of any legitimate client fit well within this.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            handshake_timeout: Duration::from_secs(10),
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(10),
            max_header_bytes: MAX_HEADER_BYTES,
            max_body_bytes: 64 * 1024,
            max_connections: 512,
            shutdown_grace: Duration::from_secs(30),
            max_connection_age: None,
            h2c: false,
        }
    }
}

/// The body of every JSON refusal: `{"error": {"code", "message"}}`.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Machine-readable: `bad_request`, `not_found`, `limit_reached`...
    pub code: String,
    /// For people: names the operation and the object.
    pub message: String,
    /// On a refusal for want of a permission (403 `denied`): the permission needed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub permission: Option<String>,
    /// On such a refusal: the caller's identity.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
}

/// The error format of every refusal on `/v1`, and of the listeners' own
/// refusals (408, 413).
pub fn json_refusal(status: StatusCode, code: &str, message: &str) -> Response {
    refusal(
        status,
        ErrorDetail { code: code.to_owned(), message: message.to_owned(), permission: None, identity: None },
    )
}

/// A refusal in the error format, with every detail given.
pub fn refusal(status: StatusCode, detail: ErrorDetail) -> Response {
    (status, Json(ErrorBody { error: detail })).into_response()
}

/// Serves `app` on `listener` (over TLS when `tls` is given) until
/// `shutdown` resolves, then drains.
pub async fn serve(
    listener: TcpListener,
    tls: Option<Tls>,
    app: Router,
    options: ServerOptions,
    shutdown: impl Future<Output = ()>,
) {
    let summaries = tls.as_ref().map(Tls::spawn_summaries);
    let (stopping, connections) = (CancellationToken::new(), TaskTracker::new());
    let slots = Arc::new(Semaphore::new(options.max_connections.max(1)));
    let options = Arc::new(options);
    tokio::pin!(shutdown);
    while let Some((permit, tcp, remote)) = next_connection(&listener, &slots, &mut shutdown).await {
        let connection = Connection { remote, app: app.clone(), options: options.clone(), stopping: stopping.clone() };
        connections.spawn(connection.run(tcp, tls.clone(), Some(permit)));
    }
    for (tcp, remote) in crate::base::handover::backlog(listener) {
        let connection = Connection { remote, app: app.clone(), options: options.clone(), stopping: stopping.clone() };
        connections.spawn(connection.run(tcp, tls.clone(), slots.clone().try_acquire_owned().ok()));
    }
    info!("no longer accepting connections; finishing requests in flight");
    stopping.cancel();
    connections.close();
    tokio::select! {
        () = connections.wait() => info!("all connections closed"),
        () = tokio::time::sleep(options.shutdown_grace) => warn!("shutdown grace period over; closing remaining connections"),
    }
    if let (Some(summaries), Some(tls)) = (summaries, &tls) {
        summaries.abort();
        tls.refusals.log_summary();
    }
}

/// Waits for a free slot, then for a connection; `None` once `shutdown` resolves.
/// While every slot is taken nothing is accepted: the kernel holds new
/// connections in the backlog, and they cost this process no file descriptor.
async fn next_connection(
    listener: &TcpListener,
    slots: &Arc<Semaphore>,
    shutdown: &mut std::pin::Pin<&mut impl Future<Output = ()>>,
) -> Option<(OwnedSemaphorePermit, TcpStream, SocketAddr)> {
    let permit = tokio::select! {
        permit = slots.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
        () = shutdown.as_mut() => return None,
    };
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, remote)) => return Some((permit, tcp, remote)),
                Err(e) => {
                    // Out of file descriptors, typically: back off instead of spinning.
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            () = shutdown.as_mut() => return None,
        }
    }
}

/// After `--max-connection-age`, how long a connection's request in flight
/// (an event stream never ends) may take before the connection is closed.
const AGED_GRACE: Duration = Duration::from_secs(10);

/// One accepted connection and what serving it needs.
struct Connection {
    remote: SocketAddr,
    app: Router,
    options: Arc<ServerOptions>,
    /// Cancelled at shutdown: the connection ends after its request in flight.
    stopping: CancellationToken,
}

/// Why the server ends a connection its client keeps open.
enum Ending {
    /// Its certificate no longer verifies (revoked, or its CA replaced).
    Revoked,
    /// It is older than `--max-connection-age`.
    Aged,
}

impl Connection {
    /// Handshakes (with TLS) and serves HTTP/1.1 (or h2c, where the options
    /// allow it); the slot, if it took one, is freed when it ends.
    async fn run(self, tcp: TcpStream, tls: Option<Tls>, _slot: Option<OwnedSemaphorePermit>) {
        let remote = self.remote;
        match tls {
            None => {
                let peer = PeerIdentity { addr: Some(remote), ..PeerIdentity::default() };
                self.http(tcp, peer, std::future::pending()).await;
            }
            Some(tls) => {
                let Some((stream, peer, chain)) = tls.handshake(tcp, remote, self.options.handshake_timeout).await
                else {
                    return;
                };
                let ending = self.http(stream, peer, tls.untrusted(&chain)).await;
                if let Some(ending) = ending {
                    let reason = match ending {
                        Ending::Revoked => "revoked",
                        Ending::Aged => "max_age",
                    };
                    tls.telemetry().tls_connection_closed(reason);
                }
            }
        }
    }

    /// Serves the connection until its client closes it, shutdown drains
    /// it, `untrusted` resolves (closed at once) or it grows too old
    /// (drained); says why when the server ended it.
    async fn http<I>(self, stream: I, peer: PeerIdentity, untrusted: impl Future<Output = ()>) -> Option<Ending>
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (app, options) = (self.app.clone(), self.options.clone());
        let client = peer.common_name.clone();
        let unread = Arc::new(AtomicBool::new(false));
        let io = TokioIo::new(linger::Lingering::new(stream, unread.clone()));
        // Cancelled once the connection's first request has begun.
        let first_request = CancellationToken::new();
        let began = first_request.clone();
        let service = service_fn(move |req| {
            began.cancel();
            let request =
                Exchange { app: app.clone(), peer: peer.clone(), options: options.clone(), unread: unread.clone() };
            request.respond(req)
        });
        // Upgrades (WebSockets) pass: the wake listener splices them to a member.
        if self.options.h2c {
            let builder = auto_builder(&self.options);
            let connection = builder.serve_connection_with_upgrades(io, service);
            self.drive(connection, |c| c.graceful_shutdown(), (untrusted, &client), first_request).await
        } else {
            let connection = http1_builder(&self.options).serve_connection(io, service).with_upgrades();
            self.drive(connection, |c| c.graceful_shutdown(), (untrusted, &client), first_request).await
        }
    }

    /// Drives a served connection until its client closes it, shutdown
    /// drains it (`drain`), `untrusted` resolves (closed at once) or it
    /// grows too old (drained); says why when the server ended it.
    async fn drive<C, E>(
        &self,
        connection: C,
        drain: fn(Pin<&mut C>),
        (untrusted, client): (impl Future<Output = ()>, &str),
        first_request: CancellationToken,
    ) -> Option<Ending>
    where
        C: Future<Output = Result<(), E>>,
        E: std::fmt::Display,
    {
        let remote = self.remote;
        tokio::pin!(connection, untrusted);
        let aged = aged(self.options.max_connection_age);
        tokio::pin!(aged);
        let (mut draining, mut ending) = (false, None);
        let deadline = tokio::time::sleep(Duration::MAX);
        tokio::pin!(deadline);
        // A connection accepted just before shutdown (a takeover) whose
        // request has not been read yet is served, not closed unanswered.
        let stopping = async {
            self.stopping.cancelled().await;
            let _ = tokio::time::timeout(self.options.header_timeout, first_request.cancelled()).await;
        };
        tokio::pin!(stopping);
        loop {
            tokio::select! {
                served = connection.as_mut() => {
                    if let Err(e) = served {
                        debug!(%remote, error = %e, "connection ended with an error");
                    }
                    return ending;
                }
                () = &mut untrusted => {
                    warn!(%remote, %client, "closing a connection whose client certificate no longer verifies");
                    return Some(Ending::Revoked);
                }
                () = &mut stopping, if !draining => {
                    drain(connection.as_mut());
                    draining = true;
                }
                () = &mut aged, if !draining => {
                    debug!(%remote, "connection reached --max-connection-age; ending it after its request in flight");
                    drain(connection.as_mut());
                    (draining, ending) = (true, Some(Ending::Aged));
                    deadline.as_mut().reset(tokio::time::Instant::now() + AGED_GRACE);
                }
                () = &mut deadline => return ending,
            }
        }
    }
}

/// Resolves once a connection is `max_age` old (never, without one).
async fn aged(max_age: Option<Duration>) {
    match max_age {
        Some(age) => tokio::time::sleep(age).await,
        None => std::future::pending().await,
    }
}

/// A builder of connections in HTTP/1.1 or HTTP/2 with prior knowledge,
/// whichever the client's first bytes are, under the same bounds.
fn auto_builder(options: &ServerOptions) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(options.header_timeout)
        .max_buf_size(options.max_header_bytes.max(8192));
    builder.http2().timer(TokioTimer::new()).max_header_list_size(options.max_header_bytes as u32);
    builder
}

/// HTTP/1.1 within the listener's header limits.
fn http1_builder(options: &ServerOptions) -> http1::Builder {
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(options.header_timeout)
        .max_header_size(options.max_header_bytes)
        .max_buf_size(options.max_header_bytes.max(8192));
    http
}

/// One request on a connection, and what answering it needs.
struct Exchange {
    app: Router,
    peer: PeerIdentity,
    options: Arc<ServerOptions>,
    /// Set when a body is left unread: the connection then lingers on close.
    unread: Arc<AtomicBool>,
}

impl Exchange {
    /// Refused at once if the request declares too large a body, else
    /// answered by the app with its body under the read timeout.
    async fn respond(self, mut req: Request<Incoming>) -> Result<Response, Infallible> {
        let max = self.options.max_body_bytes;
        if let Some(declared) = declared_length(&req).filter(|n| *n > max as u64) {
            self.unread.store(true, Ordering::Release);
            let message = format!("the body declares {declared} bytes; at most {max} are accepted");
            return Ok(closing(json_refusal(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", &message)));
        }
        req.extensions_mut().insert(self.peer);
        let body = Arc::new(body::BodyState::default());
        let limit = self.options.body_timeout;
        let req = req.map(|b| body::TimedBody::new(b, limit, body.clone()));
        let response = self.app.oneshot(req).await?;
        if !body.finished.load(Ordering::Acquire) {
            self.unread.store(true, Ordering::Release);
        }
        if body.expired.load(Ordering::Acquire) {
            let message = format!("the request body was not received within {limit:?}");
            return Ok(closing(json_refusal(StatusCode::REQUEST_TIMEOUT, "request_timeout", &message)));
        }
        Ok(response)
    }
}

/// The `Content-Length` a request declares, if any and readable.
fn declared_length<B>(req: &Request<B>) -> Option<u64> {
    req.headers().get(header::CONTENT_LENGTH)?.to_str().ok()?.trim().parse().ok()
}

/// The connection ends with this answer: its unread body is never read.
fn closing(mut response: Response) -> Response {
    response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use axum::routing::get;

    use super::*;

    /// Connections the kernel completed but the server had not accepted
    /// when it stopped get their answers: a balancer that saw them connect
    /// has no reason to try another server, so a reset would be a loss.
    #[tokio::test]
    async fn connections_waiting_in_the_backlog_at_shutdown_are_answered_not_reset() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let clients: Vec<std::net::TcpStream> = (0..10)
            .map(|_| {
                let mut client = std::net::TcpStream::connect(address).unwrap();
                client.write_all(b"GET /hello HTTP/1.1\r\nHost: test\r\n\r\n").unwrap();
                client
            })
            .collect();
        let app = Router::new().route("/hello", get(|| async { "hello" }));
        // Stopped before its first accept: every connection is still in the backlog.
        serve(listener, None, app, ServerOptions::default(), std::future::ready(())).await;
        for mut client in clients {
            let mut answer = String::new();
            client.read_to_string(&mut answer).unwrap();
            assert!(answer.starts_with("HTTP/1.1 200") && answer.ends_with("hello"), "{answer}");
        }
    }
}
