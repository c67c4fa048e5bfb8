//! A client of replicator's own API over mutual TLS: used by the CLI's client
//! subcommands, the demo, the benchmark and the integration tests.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rustls::ClientConfig;

use crate::tls::{self, TlsError, TlsFiles};

/// Why the client could not be built or a request got no answer (an error status is still an answer).
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The certificate files could not be loaded.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The server URL is not `https://HOST:PORT`.
    #[error("invalid server URL {0:?}: expected https://HOST:PORT")]
    BadUrl(String),
    /// The request could not be built or sent, or its body could not be read.
    #[error("request to {url} failed: {reason}")]
    Request {
        /// The full URL requested.
        url: String,
        /// The cause, with hyper's chain of errors spelled out.
        reason: String,
    },
}

/// An answer: status and body, whatever the status.
#[derive(Debug, Clone)]
pub struct ApiResponse {
    /// Whatever the server answered, errors included: callers check it.
    pub status: StatusCode,
    /// The whole body, read to its end.
    pub body: Bytes,
}

impl ApiResponse {
    /// The body as text, invalid UTF-8 replaced.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON; `Null` when it is not JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// A client of one replicator server; clones share its connection pool.
#[derive(Clone)]
pub struct ApiClient {
    base: String,
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl ApiClient {
    /// A client presenting `certs/cert.pem` and trusting only `certs/ca.pem`.
    pub fn new(server: &str, certs: &Path) -> Result<Self, ClientError> {
        Self::with_config(server, tls::client_config(&TlsFiles::client_in(certs))?, true)
    }

    /// `keep_alive: false` opens a new connection (and TLS handshake) per request.
    pub fn with_config(server: &str, config: ClientConfig, keep_alive: bool) -> Result<Self, ClientError> {
        let base = server.trim_end_matches('/').to_owned();
        let uri: Uri = base.parse().map_err(|_| ClientError::BadUrl(server.into()))?;
        if uri.scheme_str() != Some("https") || uri.host().is_none() || uri.path() != "/" {
            return Err(ClientError::BadUrl(server.into()));
        }
        let https =
            hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(config).https_only().enable_http1().build();
        let mut builder = Client::builder(TokioExecutor::new());
        if !keep_alive {
            builder.pool_max_idle_per_host(0);
        }
        Ok(Self { base, client: builder.build(https) })
    }

    /// The server URL, without a trailing `/`.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Sends a request; `path` starts with `/` and is sent as given.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<ApiResponse, ClientError> {
        let url = format!("{}{path}", self.base);
        let fail = |reason: String| ClientError::Request { url: url.clone(), reason };
        let mut req = Request::builder().method(method).uri(&url);
        let payload = match body {
            Some(v) => {
                req = req.header(http::header::CONTENT_TYPE, "application/json");
                Bytes::from(v.to_string())
            }
            None => Bytes::new(),
        };
        let req = req.body(Full::new(payload)).map_err(|e| fail(e.to_string()))?;
        let response = self.client.request(req).await.map_err(|e| fail(crate::base::chain::chain(&e)))?;
        let status = response.status();
        let body = response.into_body().collect().await.map_err(|e| fail(e.to_string()))?.to_bytes();
        Ok(ApiResponse { status, body })
    }

    /// A `GET` whose body is read as it arrives (an event stream), with `headers`.
    pub async fn stream(
        &self,
        path: &str,
        headers: &[(&str, String)],
    ) -> Result<http::Response<hyper::body::Incoming>, ClientError> {
        let url = format!("{}{path}", self.base);
        let fail = |reason: String| ClientError::Request { url: url.clone(), reason };
        let mut req =
            Request::builder().method(Method::GET).uri(&url).header(http::header::ACCEPT, "text/event-stream");
        for (name, value) in headers {
            req = req.header(*name, value.as_str());
        }
        let req = req.body(Full::new(Bytes::new())).map_err(|e| fail(e.to_string()))?;
        self.client.request(req).await.map_err(|e| fail(crate::base::chain::chain(&e)))
    }

    /// A `GET` of `path` without a body.
    pub async fn get(&self, path: &str) -> Result<ApiResponse, ClientError> {
        self.request(Method::GET, path, None).await
    }
}

/// A client config without any client certificate (for tests of refusal).
pub fn anonymous_config(ca: &Path) -> Result<ClientConfig, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in tls::load_certs("CA certificate", ca)? {
        roots.add(cert).map_err(|e| TlsError::Invalid {
            what: "CA certificate",
            path: ca.to_owned(),
            reason: e.to_string(),
        })?;
    }
    Ok(ClientConfig::builder_with_provider(tls::provider())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_root_certificates(Arc::new(roots))
        .with_no_client_auth())
}
