//! The client: one server, one bundle, a connection pool its clones share.
//! `request` answers whatever the status (an error status is still an
//! answer); the typed calls turn the server's refusals into
//! [`ClientError::Status`].

use std::path::Path;

use bytes::Bytes;
use http::{Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper_rustls::{FixedServerNameResolver, HttpsConnector};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use crate::bundle::client_config;
use crate::error::ClientError;
use crate::events::EventStream;
use crate::types::{Group, Replication};

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
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// The body as `T` when the status is a success, else the server's refusal.
    fn parsed<T: DeserializeOwned>(self, url: &str) -> Result<T, ClientError> {
        if !self.status.is_success() {
            let error = &self.json()["error"];
            let code = error["code"].as_str().unwrap_or("error").to_owned();
            let message = error["message"].as_str().map_or_else(|| self.text().trim().to_owned(), str::to_owned);
            return Err(ClientError::Status { status: self.status, code, message });
        }
        serde_json::from_slice(&self.body)
            .map_err(|e| ClientError::Answer { url: url.to_owned(), reason: e.to_string() })
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
        Self::with_config(server, client_config(certs)?, true)
    }

    /// A client with a TLS configuration of the caller's; `keep_alive:
    /// false` opens a new connection (and TLS handshake) per request.
    pub fn with_config(server: &str, config: ClientConfig, keep_alive: bool) -> Result<Self, ClientError> {
        Self::build(server, config, keep_alive, None)
    }

    /// As [`ApiClient::with_config`], but the server's certificate must
    /// name `tls_name` whatever host the URL names: for servers reached at
    /// addresses their certificate cannot list (tasks of a Swarm service
    /// sharing one certificate, each at its own address).
    pub fn with_tls_name(
        server: &str,
        config: ClientConfig,
        keep_alive: bool,
        tls_name: &str,
    ) -> Result<Self, ClientError> {
        let name = ServerName::try_from(tls_name.to_owned()).map_err(|_| ClientError::BadTlsName(tls_name.into()))?;
        Self::build(server, config, keep_alive, Some(name))
    }

    fn build(
        server: &str,
        config: ClientConfig,
        keep_alive: bool,
        tls_name: Option<ServerName<'static>>,
    ) -> Result<Self, ClientError> {
        let base = server.trim_end_matches('/').to_owned();
        let uri: Uri = base.parse().map_err(|_| ClientError::BadUrl(server.into()))?;
        if uri.scheme_str() != Some("https") || uri.host().is_none() || uri.path() != "/" {
            return Err(ClientError::BadUrl(server.into()));
        }
        let https = hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(config).https_only();
        let https = match tls_name {
            Some(name) => https.with_server_name_resolver(FixedServerNameResolver::new(name)),
            None => https,
        };
        let https = https.enable_http1().build();
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
    pub async fn request(&self, method: Method, path: &str, body: Option<&Value>) -> Result<ApiResponse, ClientError> {
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
        let response = self.client.request(req).await.map_err(|e| fail(chain(&e)))?;
        let status = response.status();
        let body = response.into_body().collect().await.map_err(|e| fail(e.to_string()))?.to_bytes();
        Ok(ApiResponse { status, body })
    }

    /// Sends a request as given (`path_and_query` starts with `/`, the
    /// headers and body untouched) and answers the whole response, headers
    /// included: what a replicator forwarding a command passes back.
    pub async fn exchange(
        &self,
        method: Method,
        path_and_query: &str,
        headers: &http::HeaderMap,
        body: Bytes,
    ) -> Result<http::Response<Bytes>, ClientError> {
        let url = format!("{}{path_and_query}", self.base);
        let fail = |reason: String| ClientError::Request { url: url.clone(), reason };
        let mut req = Request::builder().method(method).uri(&url);
        for (name, value) in headers {
            req = req.header(name, value);
        }
        let req = req.body(Full::new(body)).map_err(|e| fail(e.to_string()))?;
        let response = self.client.request(req).await.map_err(|e| fail(chain(&e)))?;
        let (parts, body) = response.into_parts();
        let body = body.collect().await.map_err(|e| fail(e.to_string()))?.to_bytes();
        Ok(http::Response::from_parts(parts, body))
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
        self.client.request(req).await.map_err(|e| fail(chain(&e)))
    }

    /// A `GET` of `path` without a body.
    pub async fn get(&self, path: &str) -> Result<ApiResponse, ClientError> {
        self.request(Method::GET, path, None).await
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<T, ClientError> {
        let answer = self.request(method, path, body.as_ref()).await?;
        answer.parsed(&format!("{}{path}", self.base))
    }

    /// Every group the caller may read (`GET /v1/groups`).
    pub async fn groups(&self) -> Result<Vec<Group>, ClientError> {
        self.call(Method::GET, "/v1/groups", None).await
    }

    /// One group (`GET /v1/groups/{name}`).
    pub async fn group(&self, name: &str) -> Result<Group, ClientError> {
        self.call(Method::GET, &format!("/v1/groups/{}", segment(name)), None).await
    }

    /// Scales a group to `replicas` members (`PUT /v1/groups/{name}/replicas`); 0 puts it to sleep.
    pub async fn scale(&self, name: &str, replicas: u32) -> Result<Group, ClientError> {
        let path = format!("/v1/groups/{}/replicas", segment(name));
        self.call(Method::PUT, &path, Some(json!({ "replicas": replicas }))).await
    }

    /// Makes `count` replicas of a container, all or nothing (`POST /v1/containers/{id}/replicas`).
    pub async fn replicate(&self, container: &str, count: u32) -> Result<Replication, ClientError> {
        let path = format!("/v1/containers/{}/replicas?count={count}", segment(container));
        self.call(Method::POST, &path, None).await
    }

    /// Wakes a sleeping group (`POST /v1/groups/{name}/wake`).
    pub async fn wake(&self, name: &str) -> Result<Group, ClientError> {
        self.call(Method::POST, &format!("/v1/groups/{}/wake", segment(name)), None).await
    }

    /// Follows the event stream (`GET /v1/events`), of one group or all,
    /// from after the event `after` when given (`Last-Event-ID`).
    pub async fn events(&self, group: Option<&str>, after: Option<u64>) -> Result<EventStream, ClientError> {
        let path = match group {
            Some(g) => format!("/v1/events?group={}", segment(g)),
            None => "/v1/events".to_owned(),
        };
        let headers: Vec<(&str, String)> = after.map(|id| ("last-event-id", id.to_string())).into_iter().collect();
        let response = self.stream(&path, &headers).await?;
        if !response.status().is_success() {
            let status = response.status();
            let body = response.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
            let refused = ApiResponse { status, body }.parsed::<Value>(&format!("{}{path}", self.base));
            return Err(refused.err().unwrap_or(ClientError::Answer { url: path, reason: format!("HTTP {status}") }));
        }
        Ok(EventStream::new(response.into_body()))
    }
}

/// A name or id as one path segment: anything but what names and ids are
/// made of is percent-encoded, so a caller's text cannot reach another route.
fn segment(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// An error and its sources, `a: b: c`.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_becomes_a_status_error_with_the_servers_code_and_message() {
        let body =
            Bytes::from_static(br#"{"error": {"code": "denied", "message": "app:web may not scale group api"}}"#);
        let refused = ApiResponse { status: StatusCode::FORBIDDEN, body }.parsed::<Group>("u").unwrap_err();
        assert!(
            matches!(&refused, ClientError::Status { status, code, message }
                if *status == StatusCode::FORBIDDEN && code == "denied" && message.contains("may not scale")),
            "{refused:?}"
        );
        let text = ApiResponse { status: StatusCode::NOT_FOUND, body: Bytes::from_static(b"invalid container id\n") };
        assert_eq!(text.parsed::<Group>("u").unwrap_err().to_string(), "invalid container id (HTTP 404, error)");
    }

    #[test]
    fn names_cannot_leave_their_path_segment() {
        assert_eq!(segment("web-1.a_b"), "web-1.a_b");
        assert_eq!(segment("../v1/x?y"), "..%2Fv1%2Fx%3Fy");
    }

    #[test]
    fn only_https_urls_with_no_path_are_taken() {
        let config = || crate::bundle::anonymous_config(Path::new("/nonexistent"));
        assert!(config().is_err(), "the CA is named in the error");
        let roots = rustls::RootCertStore::empty();
        let plain = ClientConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        for bad in ["http://localhost:8443", "https://localhost:8443/v1", "localhost:8443"] {
            assert!(matches!(ApiClient::with_config(bad, plain.clone(), true), Err(ClientError::BadUrl(_))), "{bad}");
        }
        assert!(ApiClient::with_config("https://localhost:8443/", plain, true).is_ok());
    }
}
