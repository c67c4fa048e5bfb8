//! The permission layer: every route states the permission it needs
//! ([`ROUTES`]), and one middleware checks the caller's identity against it
//! before any handler runs. Where the route names its group or node in the
//! path, the binding is checked here too; where the group is known only once
//! a container is resolved (replicate, push metrics, alerts), the handler
//! checks the same rule ([`crate::rules::access`]) at that point. Every
//! refusal, wherever it is found, is answered 403 with the permission and the
//! identity, logged, and counted here by route and kind of identity.

use axum::extract::{MatchedPath, Request, State};
use axum::http::HeaderMap;

use axum::middleware::Next;
use axum::response::Response;
use tracing::warn;

use super::forward::Forwarded;
use super::status::{denied_response, Refused};
use super::table::{route_of, Bound};
use super::PeerIdentity;
use crate::base::telemetry::DeniedLabels;
use crate::rules::access::{Denied, Identity, Permission, UnboundPolicy, FORWARDED_IDENTITY};
use crate::service::Replicator;
use crate::tls::Claim;

/// What the layer needs: the policy for certificates without an identity,
/// and where refusals are counted.
#[derive(Clone)]
pub struct Gate {
    /// `serve --unbound-clients`.
    pub unbound: UnboundPolicy,
    /// Where `replicator_access_denied_total` is counted.
    pub service: Replicator,
}

/// The caller's identity, as its certificate names it.
pub fn identity_of(peer: Option<&PeerIdentity>, policy: UnboundPolicy) -> Result<Identity, String> {
    match peer.and_then(|p| p.claim.as_ref()) {
        // A node certificate from the swarm's own CA proves its node, and nothing more.
        Some(Claim::SwarmNode(node)) => node.clone().map(|node| Identity::Agent { node }),
        // Names that cannot be read are no identity to fall back from: refused.
        Some(Claim::Names(Err(why))) => Err(why.clone()),
        Some(Claim::Names(Ok(uris))) => Identity::from_uris(uris.iter().map(String::as_str), policy),
        None => Identity::from_uris([], policy),
    }
}

/// The caller a peer replicator forwards for, as its header names it
/// (`true`: forwarded); the certificate's own identity when there is no
/// header. Anyone but a peer naming an identity is refused.
fn speaking_for(identity: Identity, headers: &HeaderMap, policy: UnboundPolicy) -> Result<(Identity, bool), String> {
    let Some(value) = headers.get(FORWARDED_IDENTITY) else { return Ok((identity, false)) };
    if identity != Identity::Peer {
        return Err(format!("only a peer replicator may name another identity ({FORWARDED_IDENTITY})"));
    }
    let text = value.to_str().map_err(|_| "the forwarded identity is not text".to_owned())?;
    Identity::from_forwarded(text, policy).map(|found| (found, true))
}

/// The middleware: the identity, the route's permission, the path's binding.
pub async fn check(State(gate): State<Gate>, mut req: Request, next: Next) -> Response {
    let route =
        req.extensions().get::<MatchedPath>().map_or_else(|| req.uri().path().to_owned(), |m| m.as_str().to_owned());
    let claimed = identity_of(req.extensions().get::<PeerIdentity>(), gate.unbound);
    let (identity, forwarded) = match claimed.and_then(|i| speaking_for(i, req.headers(), gate.unbound)) {
        Ok(found) => found,
        Err(why) => {
            let denied = Denied {
                permission: Permission::Describe,
                identity: "an unreadable identity".into(),
                kind: "invalid",
                action: format!("call {route}: {why}"),
                scope: None,
            };
            return finish(&gate, &route, denied_response(&denied, true));
        }
    };
    if forwarded {
        req.extensions_mut().insert(Forwarded);
    }
    // Not an operation (the router's 405 or 404): being a client at all is enough.
    let (permission, bound) =
        route_of(req.method(), &route).map_or((Permission::Describe, Bound::Nothing), |r| (r.permission, r.bound));
    let action = format!("{} {}", req.method(), req.uri().path());
    let checked = match bound {
        Bound::Group | Bound::Node => match path_binding(req.uri().path(), &route) {
            Some(scope) => identity.check_for(permission, &scope, &action),
            None => identity.check(permission, &action),
        },
        Bound::Handler | Bound::Nothing => identity.check(permission, &action),
    };
    let response = match checked {
        Ok(()) => {
            req.extensions_mut().insert(identity);
            next.run(req).await
        }
        Err(denied) => denied_response(&denied, route.starts_with("/v1/")),
    };
    finish(&gate, &route, response)
}

/// Logs and counts the refusal a response carries.
fn finish(gate: &Gate, route: &str, response: Response) -> Response {
    if let Some(Refused(denied)) = response.extensions().get::<Refused>() {
        warn!(route, identity = %denied.identity, permission = %denied.permission, scope = denied.scope.as_deref().unwrap_or(""), "refused: {denied}");
        let labels = DeniedLabels { route: route.to_owned(), identity: denied.kind.to_owned() };
        gate.service.telemetry().access_denied.get_or_create(&labels).inc();
    }
    response
}

/// The segment of `path` where `route` has its `{name}` or `{node}`.
fn path_binding(path: &str, route: &str) -> Option<String> {
    let at = route.split('/').position(|s| s == "{name}" || s == "{node}")?;
    path.split('/').nth(at).map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_certificate_of_the_swarms_ca_is_an_agent_of_its_node_or_nothing() {
        let peer = |node| PeerIdentity { claim: Some(Claim::SwarmNode(node)), ..PeerIdentity::default() };
        let node = identity_of(Some(&peer(Ok("n1".into()))), UnboundPolicy::Operator);
        assert_eq!(node, Ok(Identity::Agent { node: "n1".into() }), "its URIs give it nothing more");
        let none = identity_of(Some(&peer(Err("no node".into()))), UnboundPolicy::Operator);
        assert!(none.is_err(), "never a certificate without an identity, under any policy");
    }

    #[test]
    fn only_a_peer_may_name_the_identity_it_forwards_for() {
        let mut headers = HeaderMap::new();
        let none = speaking_for(Identity::Operator, &headers, UnboundPolicy::Refuse);
        assert_eq!(none, Ok((Identity::Operator, false)), "no header: the certificate's own");
        headers.insert(FORWARDED_IDENTITY, "urn:replicator:app:web".parse().unwrap());
        let app = Identity::App { group: "web".into() };
        assert_eq!(speaking_for(Identity::Peer, &headers, UnboundPolicy::Refuse), Ok((app, true)));
        for forger in
            [Identity::Operator, Identity::App { group: "web".into() }, Identity::Unbound(UnboundPolicy::Operator)]
        {
            let refused = speaking_for(forger.clone(), &headers, UnboundPolicy::Operator).unwrap_err();
            assert!(refused.contains("only a peer replicator"), "{forger}: {refused}");
        }
        headers.insert(FORWARDED_IDENTITY, "urn:replicator:peer".parse().unwrap());
        assert!(speaking_for(Identity::Peer, &headers, UnboundPolicy::Operator).is_err(), "a peer for a peer");
        headers.insert(FORWARDED_IDENTITY, "urn:replicator:nobody".parse().unwrap());
        assert!(speaking_for(Identity::Peer, &headers, UnboundPolicy::Operator).is_err(), "fails closed");
    }

    #[test]
    fn a_path_binding_is_the_segment_under_the_template() {
        assert_eq!(path_binding("/v1/groups/web/replicas", "/v1/groups/{name}/replicas").as_deref(), Some("web"));
        assert_eq!(path_binding("/v1/nodes/abc/usage", "/v1/nodes/{node}/usage").as_deref(), Some("abc"));
        assert_eq!(path_binding("/v1/groups", "/v1/groups"), None);
    }
}
