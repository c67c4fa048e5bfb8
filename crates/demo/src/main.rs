//! replicator-demo: the original system's demo app. Its page shows which
//! container served it; "Replicate me" asks replicator (over mutual TLS, with
//! the certificates in /ssl) to replicate this very container, found by its
//! HOSTNAME as the original did; a synthetic load is pushed to replicator's
//! /v1/metrics so the autoscaler can be watched at work. `/ws` echoes each
//! WebSocket message back, and the same port speaks gRPC over HTTP/2 with
//! prior knowledge (the health service's `Check`, and a `Count` server
//! stream): what a sleeping app's first connections through replicator's
//! wake listener look like.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use clap::Parser;
use http::Method;
use replicator_client::{ApiClient, ClientError};
use serde_json::{json, Value};

#[derive(Debug, Parser)]
#[command(name = "replicator-demo", version, about)]
struct Args {
    /// replicator's URL.
    #[arg(long, env = "REPLICATOR_SERVER", default_value = "https://replicator:8443")]
    replicator: String,
    /// Folder with ca.pem, cert.pem and key.pem.
    #[arg(long, env = "REPLICATOR_CERTS", default_value = "/ssl")]
    certs: PathBuf,
    #[arg(long, env = "DEMO_LISTEN", default_value = "0.0.0.0:3000")]
    listen: SocketAddr,
    /// The metric name the synthetic load is pushed under.
    #[arg(long, env = "DEMO_METRIC", default_value = "load")]
    metric: String,
}

#[derive(Clone)]
struct Demo {
    client: ApiClient,
    /// This container's id (the engine sets HOSTNAME to the short id).
    me: String,
    metric: String,
    load: Arc<Mutex<Option<f64>>>,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt().with_writer(std::io::stderr).with_ansi(ansi).init();
    let args = Args::parse();
    let client = ApiClient::new(&args.replicator, &args.certs)?;
    let me = std::env::var("HOSTNAME").unwrap_or_default();
    let demo = Demo { client, me, metric: args.metric, load: Arc::new(Mutex::new(None)) };
    tokio::spawn(push_load(demo.clone()));
    let app = Router::new()
        .route("/", get(page))
        .route("/replicate", post(replicate))
        .route("/load", post(set_load))
        .route("/healthz", get(|| async { "ok" }))
        .route("/ws", get(echo))
        .route("/grpc.health.v1.Health/Check", post(grpc_check))
        .route("/replicator.demo.Counter/Count", post(grpc_count))
        .with_state(demo);
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    tracing::info!(addr = %listener.local_addr()?, "demo listening");
    axum::serve(listener, app).await?;
    Ok(())
}

async fn page(State(demo): State<Demo>) -> Html<String> {
    let load = demo.load.lock().unwrap().map(|l| l.to_string()).unwrap_or_default();
    Html(format!(
        r#"<!doctype html><html lang=en><head><meta charset=utf-8><title>replicator demo</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:44em}}button{{font-size:1.1em;padding:.4em 1em}}
#answer{{white-space:pre-wrap;background:#f4f4f4;padding:1em;border-radius:6px;min-height:2em}}</style></head>
<body><h1>Served by <span id=served-by>{me}</span></h1>
<p>This page came from container <code id=container>{me}</code>.</p>
<p><button id=replicate>Replicate me</button></p>
<p>Synthetic load pushed as <code>{metric}</code>: <input id=load type=number min=0 step=1 value="{load}">
<button id=set-load>Set load</button></p>
<div id=answer></div>
<script>
const show = (text) => document.getElementById('answer').textContent = text;
document.getElementById('replicate').onclick = async () => {{
  show('asking replicator...');
  const r = await fetch('/replicate', {{method: 'POST', headers: {{'content-type': 'application/json'}}, body: '{{}}'}});
  show(await r.text());
}};
document.getElementById('set-load').onclick = async () => {{
  const value = Number(document.getElementById('load').value);
  const r = await fetch('/load', {{method: 'POST', headers: {{'content-type': 'application/json'}}, body: JSON.stringify({{value}})}});
  show(await r.text());
}};
</script></body></html>"#,
        me = escape(&demo.me),
        metric = escape(&demo.metric),
    ))
}

/// Asks replicator to replicate this container and relays the answer. The
/// JSON content type keeps plain cross-site forms from pressing the button.
async fn replicate(State(demo): State<Demo>, headers: HeaderMap) -> Response {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !json {
        return (StatusCode::UNSUPPORTED_MEDIA_TYPE, "send application/json").into_response();
    }
    match demo.client.replicate(&demo.me, 1).await {
        Ok(made) => {
            let names: Vec<&str> = made.replicas.iter().map(|r| r.name.as_str()).collect();
            (StatusCode::CREATED, format!("replicated: {} (group {})", names.join(", "), made.group)).into_response()
        }
        Err(ClientError::Status { status, message, .. }) => {
            (status, format!("replicator answered {status}: {message}")).into_response()
        }
        Err(e) => (StatusCode::BAD_GATEWAY, format!("cannot reach replicator: {e}")).into_response(),
    }
}

async fn set_load(State(demo): State<Demo>, Json(body): Json<Value>) -> Response {
    match body["value"].as_f64().filter(|v| v.is_finite() && *v >= 0.0) {
        Some(v) => {
            *demo.load.lock().unwrap() = Some(v);
            format!("pushing {} = {v} every 2 s", demo.metric).into_response()
        }
        None => (StatusCode::BAD_REQUEST, "value must be a number ≥ 0").into_response(),
    }
}

/// A WebSocket that sends every text or binary message back as it came.
async fn echo(upgrade: axum::extract::ws::WebSocketUpgrade) -> Response {
    use axum::extract::ws::Message;
    upgrade.on_upgrade(|mut socket| async move {
        while let Some(Ok(message)) = socket.recv().await {
            let echoed = match message {
                Message::Text(_) | Message::Binary(_) => socket.send(message).await,
                Message::Close(_) => break,
                _ => Ok(()),
            };
            if echoed.is_err() {
                break;
            }
        }
    })
}

/// Reports the synthetic load for this container every two seconds.
async fn push_load(demo: Demo) {
    loop {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let Some(value) = *demo.load.lock().unwrap() else { continue };
        let sample = json!({ "container": demo.me, "metric": demo.metric, "value": value });
        match demo.client.request(Method::POST, "/v1/metrics", Some(&sample)).await {
            Ok(r) if r.status.is_success() => {}
            Ok(r) => tracing::warn!(status = %r.status, body = %r.text(), "metric refused"),
            Err(e) => tracing::warn!(error = %e, "cannot push the metric"),
        }
    }
}

/// Text into HTML: safe inside element content and quoted attribute values.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}

/// A gRPC message: not compressed, its length, its protobuf bytes.
fn grpc_frame(message: &[u8]) -> bytes::Bytes {
    let mut frame = vec![0u8];
    frame.extend_from_slice(&(message.len() as u32).to_be_bytes());
    frame.extend_from_slice(message);
    frame.into()
}

/// A gRPC answer: `messages` as they come, then the `grpc-status: 0` trailer.
fn grpc_answer(messages: impl futures_util::Stream<Item = bytes::Bytes> + Send + 'static) -> Response {
    use futures_util::StreamExt as _;
    use http_body_util::StreamBody;
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", "0".parse().expect("a header value"));
    let frames = messages
        .map(|m| Ok::<_, std::convert::Infallible>(http_body::Frame::data(m)))
        .chain(futures_util::stream::once(async move { Ok(http_body::Frame::trailers(trailers)) }));
    let body = axum::body::Body::new(StreamBody::new(frames));
    ([(header::CONTENT_TYPE, "application/grpc")], body).into_response()
}

/// `grpc.health.v1.Health/Check`: SERVING (field 1 = 1), whatever service is asked about.
async fn grpc_check() -> Response {
    grpc_answer(futures_util::stream::iter([grpc_frame(&[0x08, 0x01])]))
}

/// `replicator.demo.Counter/Count`: a server stream of 1, 2, 3 (field 1),
/// 100 ms apart, then the status.
async fn grpc_count() -> Response {
    use futures_util::StreamExt as _;
    let counted = futures_util::stream::iter(1u8..=3).then(|n| async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        grpc_frame(&[0x08, n])
    });
    grpc_answer(counted)
}
