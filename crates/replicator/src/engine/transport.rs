//! One HTTP connection pool to the engine, shared by bollard (for the calls
//! its typed models serve well) and by the raw JSON calls whose every field
//! must survive (inspect and create: a typed round-trip drops keys its
//! models do not know).

use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;

use bollard::errors::Error as BollardError;
use bollard::{BollardRequest, ClientVersion, Docker};
use bytes::Bytes;
use futures_util::Stream;
use http::{Method, Request, Response, StatusCode, Uri};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Either, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

/// bollard's request body, spelled out (its alias is crate-private).
type Body = Either<Full<Bytes>, StreamBody<Pin<Box<dyn Stream<Item = Result<Frame<Bytes>, io::Error>> + Send>>>>;

/// The engine's address with the client that reaches it.
#[derive(Clone)]
pub(super) enum Transport {
    Unix { client: Client<hyperlocal::UnixConnector, Body>, path: PathBuf },
    Http { client: Client<HttpConnector, Body>, addr: String },
    Https { client: Client<HttpsConnector<HttpConnector>, Body>, addr: String },
}

/// A raw call's failure: the engine's status and message, or no answer.
#[derive(Debug)]
pub(super) enum RawError {
    Status(StatusCode, String),
    Transport(String),
}

impl Transport {
    pub(super) fn unix(path: &Path) -> Self {
        let client = Client::builder(TokioExecutor::new()).build(hyperlocal::UnixConnector);
        Self::Unix { client, path: path.to_owned() }
    }

    pub(super) fn http(addr: &str) -> Self {
        Self::Http { client: Client::builder(TokioExecutor::new()).build_http(), addr: addr.to_owned() }
    }

    pub(super) fn https(addr: &str, config: rustls::ClientConfig) -> Self {
        let https =
            hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(config).https_only().enable_http1().build();
        Self::Https { client: Client::builder(TokioExecutor::new()).build(https), addr: addr.to_owned() }
    }

    /// The base bollard puts before `/v1.xx/...`.
    fn base(&self) -> String {
        match self {
            Self::Unix { path, .. } => format!("unix://{}:0", hex(path.to_string_lossy().as_bytes())),
            Self::Http { addr, .. } => format!("http://{addr}"),
            Self::Https { addr, .. } => format!("https://{addr}"),
        }
    }

    async fn send(&self, request: Request<Body>) -> Result<Response<Incoming>, hyper_util::client::legacy::Error> {
        match self {
            Self::Unix { client, .. } => client.request(request).await,
            Self::Http { client, .. } => client.request(request).await,
            Self::Https { client, .. } => client.request(request).await,
        }
    }

    /// A bollard client whose every request goes through this pool.
    pub(super) fn bollard(&self, timeout_secs: u64, version: &ClientVersion) -> Docker {
        let transport = self.clone();
        let send = move |request: BollardRequest| {
            let transport = transport.clone();
            async move { transport.send(request).await.map_err(BollardError::from) }
        };
        Docker::connect_with_custom_transport(send, Some(self.base()), timeout_secs, version)
            .expect("a custom transport needs no connection")
    }

    /// One JSON call, answered as JSON (`Null` for an empty body).
    pub(super) async fn json(
        &self,
        method: Method,
        version: &ClientVersion,
        path_and_query: &str,
        body: Option<&Value>,
    ) -> Result<Value, RawError> {
        let uri: Uri = format!("{}/v{}.{}{path_and_query}", self.base(), version.major_version, version.minor_version)
            .parse()
            .map_err(|e| RawError::Transport(format!("invalid engine URL: {e}")))?;
        let bytes =
            body.map(|b| Bytes::from(serde_json::to_vec(b).expect("JSON values serialize"))).unwrap_or_default();
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(bollard::body_full(bytes))
            .map_err(|e| RawError::Transport(e.to_string()))?;
        let response = self.send(request).await.map_err(|e| RawError::Transport(crate::base::chain::chain(&e)))?;
        let status = response.status();
        let body = BoxBody::new(response.into_body())
            .collect()
            .await
            .map_err(|e| RawError::Transport(e.to_string()))?
            .to_bytes();
        if !status.is_success() {
            let message = serde_json::from_slice::<Value>(&body)
                .ok()
                .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_owned))
                .unwrap_or_else(|| String::from_utf8_lossy(&body).trim().to_owned());
            return Err(RawError::Status(status, message));
        }
        if body.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&body).map_err(|e| RawError::Transport(format!("the engine's answer is not JSON: {e}")))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
