//! A replicator that does not act passes the commands it receives to the
//! one that does, so a client gets the same answer from any of them: the
//! caller's identity is checked here first, then named to the leader in
//! [`FORWARDED_IDENTITY`], which the leader believes only from a peer
//! replicator's certificate (`urn:replicator:peer`). Reads, the event
//! stream and its acknowledgements stay local. Without `--peer-certs`, or
//! when the leader cannot be reached, the command is answered 503
//! `not_acting` naming the leader. The data path's wakes take the same way
//! ([`LeaderLink`]).

use std::path::Path;
use std::sync::{Arc, Mutex};

use axum::body::{to_bytes, Body};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use replicator_client::{client_config, ApiClient};
use tracing::{info, warn};

use super::status::ApiError;
use super::table::route_of;
use super::{AppState, MAX_BODY};
use crate::error::{Error, Result};
use crate::rules::access::{Identity, Permission, FORWARDED_IDENTITY};
use crate::service::acting::{LeaderLink, Role};

/// A request the gate read a forwarded identity on: never forwarded again.
#[derive(Debug, Clone, Copy)]
pub struct Forwarded;

/// The peer bundle, the name the leader's certificate must carry, and a
/// client of the leader last reached.
pub struct Forwarder {
    tls: rustls::ClientConfig,
    tls_name: Option<String>,
    client: Mutex<Option<ApiClient>>,
}

impl Forwarder {
    /// A forwarder presenting the bundle in `certs` (`cert.pem`, `key.pem`
    /// of a `peer` identity; `ca.pem`, the CA of the leader's certificate),
    /// checking the leader's certificate against `tls_name` (else the host
    /// of the leader's advertised address).
    pub fn new(certs: &Path, tls_name: Option<String>) -> anyhow::Result<Arc<Self>> {
        let tls = client_config(certs).map_err(|e| anyhow::anyhow!("--peer-certs {}: {e}", certs.display()))?;
        if let Some(name) = &tls_name {
            rustls_pki_types::ServerName::try_from(name.as_str())
                .map_err(|_| anyhow::anyhow!("--peer-server-name {name:?}: not a DNS name or IP address"))?;
        }
        Ok(Arc::new(Self { tls, tls_name, client: Mutex::new(None) }))
    }

    /// A client of `leader`, kept while the leader stays the same.
    fn client(&self, leader: &str) -> Result<ApiClient> {
        let mut kept = self.client.lock().expect("forwarder");
        if let Some(client) = kept.as_ref().filter(|c| c.base() == leader.trim_end_matches('/')) {
            return Ok(client.clone());
        }
        let client = match &self.tls_name {
            Some(name) => ApiClient::with_tls_name(leader, self.tls.clone(), true, name),
            None => ApiClient::with_config(leader, self.tls.clone(), true),
        };
        let client = client.map_err(|e| Error::Internal(format!("the leader's address {leader}: {e}")))?;
        *kept = Some(client.clone());
        Ok(client)
    }

    /// Sends one request to `leader`; 503 `not_acting` naming it when it cannot be reached.
    async fn send(&self, leader: &str, method: Method, path: &str, headers: HeaderMap, body: bytes::Bytes) -> Response {
        let sent = match self.client(leader) {
            Ok(client) => client.exchange(method, path, &headers, body).await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match sent {
            Ok(answer) => {
                let (mut parts, body) = answer.into_parts();
                let kept: HeaderMap = [header::CONTENT_TYPE, header::RETRY_AFTER]
                    .into_iter()
                    .filter_map(|name| Some((name.clone(), parts.headers.get(&name)?.clone())))
                    .collect();
                parts.headers = kept;
                Response::from_parts(parts, Body::from(body))
            }
            Err(why) => {
                warn!(leader, error = %why, "cannot forward the command to the leader");
                ApiError::from(Error::NotActing { leader: Some(leader.to_owned()) }).into_response()
            }
        }
    }
}

#[async_trait::async_trait]
impl LeaderLink for Forwarder {
    async fn wake(&self, leader: &str, group: &str) -> Result<()> {
        let client = self.client(leader)?;
        let path = format!("/v1/groups/{group}/wake");
        let not_woken = |why: String| Error::Unreachable {
            group: group.to_owned(),
            reason: crate::error::Unreached::NotWoken(format!("the leader at {leader}: {why}")),
        };
        let answer = client.request(Method::POST, &path, None).await.map_err(|e| not_woken(e.to_string()))?;
        if !answer.status.is_success() {
            // The leader's own reason (a group it refuses, an engine it cannot reach) is kept.
            return Err(not_woken(format!(
                "answered {}: {}",
                answer.status,
                crate::base::quote::clip(answer.text().trim())
            )));
        }
        info!(group, leader, "the leader wakes the group");
        Ok(())
    }
}

/// Whether the request on `route` changes the world (and so goes to the leader).
fn acts(method: &Method, route: &str) -> bool {
    route_of(method, route).is_some_and(|r| r.changes_state && r.permission != Permission::Acknowledge)
}

/// The middleware, inside the gate: a command reaching a follower goes to the leader.
pub async fn forward(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let acting = state.service.acting();
    let (Some(forwarder), Role::Following, Some(leader)) = (state.forwarder.clone(), acting.role(), acting.leader())
    else {
        return next.run(req).await;
    };
    let route = req.extensions().get::<MatchedPath>().map(|m| m.as_str().to_owned()).unwrap_or_default();
    let caller = req.extensions().get::<Identity>().cloned();
    let (Some(caller), true, None) = (caller, acts(req.method(), &route), req.extensions().get::<Forwarded>()) else {
        return next.run(req).await;
    };
    let (parts, body) = req.into_parts();
    let Ok(body) = to_bytes(body, MAX_BODY).await else {
        return ApiError::from(Error::BadRequest("the body could not be read".into())).into_response();
    };
    let mut headers = HeaderMap::new();
    for name in [header::CONTENT_TYPE, header::ACCEPT, HeaderName::from_static("x-request-id")] {
        if let Some(value) = parts.headers.get(&name) {
            headers.insert(name, value.clone());
        }
    }
    let Ok(named) = HeaderValue::from_str(&caller.forwarded()) else {
        return ApiError::from(Error::Internal("an identity that is not a header".into())).into_response();
    };
    headers.insert(FORWARDED_IDENTITY, named);
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    forwarder.send(&leader, parts.method.clone(), path, headers, body).await
}
