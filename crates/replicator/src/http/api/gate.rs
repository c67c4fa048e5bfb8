//! The permission layer: every route states the permission it needs
//! ([`ROUTES`]), and one middleware checks the caller's identity against it
//! before any handler runs. Where the route names its group or node in the
//! path, the binding is checked here too; where the group is known only once
//! a container is resolved (replicate, push metrics, alerts), the handler
//! checks the same rule ([`crate::rules::access`]) at that point. Every
//! refusal, wherever it is found, is answered 403 with the permission and the
//! identity, logged, and counted here by route and kind of identity.

use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tracing::warn;

use super::PeerIdentity;
use crate::base::telemetry::DeniedLabels;
use crate::http::listener::{refusal, ErrorDetail};
use crate::rules::access::{Denied, Identity, Permission, UnboundPolicy};
use crate::service::Replicator;

/// Where a route names what its permission is bound to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    /// Nothing in the path; the handler checks what the request names.
    Handler,
    /// The path's `{name}`: a group.
    Group,
    /// The path's `{node}`: a Swarm node.
    Node,
    /// Not bound to anything.
    Nothing,
}

/// Every route of the API: method, path template, permission, binding.
pub const ROUTES: &[(&str, &str, Permission, Bound)] = &[
    ("GET", "/", Permission::Replicate, Bound::Nothing),
    ("GET", "/{id}", Permission::Replicate, Bound::Handler),
    ("POST", "/v1/containers/{id}/replicas", Permission::Replicate, Bound::Handler),
    ("POST", "/v1/metrics", Permission::PushMetrics, Bound::Handler),
    ("POST", "/v1/alertmanager", Permission::ReceiveAlerts, Bound::Handler),
    ("GET", "/v1/groups", Permission::ReadGroups, Bound::Handler),
    ("GET", "/v1/groups/{name}", Permission::ReadGroups, Bound::Group),
    ("PUT", "/v1/groups/{name}/replicas", Permission::Scale, Bound::Group),
    ("GET", "/v1/groups/{name}/decisions", Permission::ReadGroups, Bound::Group),
    ("POST", "/v1/groups/{name}/wake", Permission::Scale, Bound::Group),
    ("GET", "/v1/events", Permission::FollowEvents, Bound::Handler),
    ("POST", "/v1/events/ack", Permission::Acknowledge, Bound::Handler),
    ("PUT", "/v1/nodes/{node}/usage", Permission::ReportUsage, Bound::Node),
    ("GET", "/v1/openapi.json", Permission::Describe, Bound::Nothing),
];

/// Whether `method` on `route` (a matched template) is an operation: a
/// row of [`ROUTES`], or `HEAD` on a `GET` row (the router answers it with
/// the `GET` handler). Anything else on a known path is the router's 405.
pub fn is_operation(method: &Method, route: &str) -> bool {
    let method = if method == Method::HEAD { &Method::GET } else { method };
    ROUTES.iter().any(|(m, path, ..)| *m == method.as_str() && *path == route)
}

/// The permission a route needs; a route not listed (a wrong method on a
/// known path, an unknown path) needs only to be a client at all.
pub fn permission_of(method: &Method, route: &str) -> (Permission, Bound) {
    ROUTES
        .iter()
        .find(|(m, path, ..)| *m == method.as_str() && *path == route)
        .map_or((Permission::Describe, Bound::Nothing), |(_, _, permission, bound)| (*permission, *bound))
}

/// What the layer needs: the policy for certificates without an identity,
/// and where refusals are counted.
#[derive(Clone)]
pub struct Gate {
    /// `serve --unbound-clients`.
    pub unbound: UnboundPolicy,
    /// Where `replicator_access_denied_total` is counted.
    pub service: Replicator,
}

/// A refusal travelling on its response, so this layer logs and counts
/// every one, whichever code found it.
#[derive(Debug, Clone)]
pub struct Refused(pub Denied);

/// The caller's identity, as its certificate names it.
pub fn identity_of(peer: Option<&PeerIdentity>, policy: UnboundPolicy) -> Result<Identity, String> {
    // A node certificate from the swarm's own CA proves its node, and nothing more.
    if let Some(node) = peer.and_then(|p| p.swarm_node.clone()) {
        return node.map(|node| Identity::Agent { node });
    }
    let uris = peer.map(|p| p.uris.as_slice()).unwrap_or_default();
    Identity::from_uris(uris.iter().map(String::as_str), policy)
}

/// The middleware: the identity, the route's permission, the path's binding.
pub async fn check(State(gate): State<Gate>, mut req: Request, next: Next) -> Response {
    let route =
        req.extensions().get::<MatchedPath>().map_or_else(|| req.uri().path().to_owned(), |m| m.as_str().to_owned());
    let identity = match identity_of(req.extensions().get::<PeerIdentity>(), gate.unbound) {
        Ok(identity) => identity,
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
    let (permission, bound) = permission_of(req.method(), &route);
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

/// The 403 of a refusal: JSON on `/v1`, text on the original tool's route.
pub fn denied_response(denied: &Denied, json: bool) -> Response {
    let mut response = if json {
        let detail = ErrorDetail {
            code: "denied".into(),
            message: denied.to_string(),
            permission: Some(denied.permission.to_string()),
            identity: Some(denied.identity.clone()),
        };
        refusal(StatusCode::FORBIDDEN, detail)
    } else {
        (StatusCode::FORBIDDEN, denied.to_string()).into_response()
    };
    response.extensions_mut().insert(Refused(denied.clone()));
    response
}

/// The segment of `path` where `route` has its `{name}` or `{node}`.
fn path_binding(path: &str, route: &str) -> Option<String> {
    let at = route.split('/').position(|s| s == "{name}" || s == "{node}")?;
    path.split('/').nth(at).map(str::to_owned)
}

/// Writes each operation's permission into the OpenAPI description: who
/// may call it, in its description, and `x-replicator-permission`.
pub fn describe(doc: &mut utoipa::openapi::OpenApi) {
    for (path, item) in doc.paths.paths.iter_mut() {
        for (method, operation) in [
            ("GET", item.get.as_mut()),
            ("PUT", item.put.as_mut()),
            ("POST", item.post.as_mut()),
            ("DELETE", item.delete.as_mut()),
        ] {
            let Some(operation) = operation else { continue };
            let Some((_, _, permission, bound)) = ROUTES.iter().find(|(m, p, ..)| *m == method && p == path) else {
                continue;
            };
            let who = who_may(*permission, *bound);
            operation.description = Some(match operation.description.take() {
                Some(text) if !text.is_empty() => format!("{text}\n\n{who}"),
                _ => who,
            });
            let extension = utoipa::openapi::extensions::ExtensionsBuilder::new()
                .add("x-replicator-permission", permission.as_str())
                .build();
            match operation.extensions.as_mut() {
                Some(extensions) => extensions.merge(extension),
                None => operation.extensions = Some(extension),
            }
        }
    }
}

/// Who may call each operation, in words, for the OpenAPI description.
pub fn who_may(permission: Permission, bound: Bound) -> String {
    let kinds: Vec<Identity> = vec![
        Identity::Operator,
        Identity::App { group: String::new() },
        Identity::Balancer { name: String::new() },
        Identity::Agent { node: String::new() },
        Identity::Alertmanager { groups: None },
    ];
    let mut who: Vec<String> = Vec::new();
    for identity in kinds.iter().filter(|i| i.holds(permission)) {
        let scoped = match (identity, permission, bound) {
            (Identity::App { .. }, Permission::Describe, _) => "app",
            (Identity::App { .. }, ..) => "app (its own group)",
            (Identity::Balancer { .. }, Permission::Acknowledge, _) => "balancer (as itself)",
            (Identity::Agent { .. }, Permission::ReportUsage, _) => "agent (its own node)",
            (Identity::Alertmanager { .. }, Permission::ReceiveAlerts, _) => "alertmanager (its groups, when limited)",
            (other, ..) => other.kind(),
        };
        who.push(scoped.to_owned());
    }
    format!("Permission `{permission}`. Who may call: {}.", who.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_certificate_of_the_swarms_ca_is_an_agent_of_its_node_or_nothing() {
        let peer = |swarm_node| PeerIdentity {
            uris: vec!["urn:replicator:operator".into()],
            swarm_node: Some(swarm_node),
            ..PeerIdentity::default()
        };
        let node = identity_of(Some(&peer(Ok("n1".into()))), UnboundPolicy::Operator);
        assert_eq!(node, Ok(Identity::Agent { node: "n1".into() }), "its URIs give it nothing more");
        let none = identity_of(Some(&peer(Err("no node".into()))), UnboundPolicy::Operator);
        assert!(none.is_err(), "never a certificate without an identity, under any policy");
    }

    #[test]
    fn a_path_binding_is_the_segment_under_the_template() {
        assert_eq!(path_binding("/v1/groups/web/replicas", "/v1/groups/{name}/replicas").as_deref(), Some("web"));
        assert_eq!(path_binding("/v1/nodes/abc/usage", "/v1/nodes/{node}/usage").as_deref(), Some("abc"));
        assert_eq!(path_binding("/v1/groups", "/v1/groups"), None);
    }

    #[test]
    fn every_documented_operation_states_its_permission() {
        let doc = super::super::routes::description();
        for (path, item) in &doc.paths.paths {
            for (method, listed) in [
                ("GET", item.get.is_some()),
                ("PUT", item.put.is_some()),
                ("POST", item.post.is_some()),
                ("DELETE", item.delete.is_some()),
            ] {
                if listed {
                    let known = ROUTES.iter().any(|(m, p, ..)| *m == method && p == path);
                    assert!(known, "{method} {path} has no row in access::ROUTES");
                }
            }
        }
        for (method, path, ..) in ROUTES {
            let item = doc.paths.paths.get(*path).unwrap_or_else(|| panic!("{path} is not described"));
            let described = match *method {
                "GET" => item.get.is_some(),
                "PUT" => item.put.is_some(),
                "POST" => item.post.is_some(),
                "DELETE" => item.delete.is_some(),
                _ => false,
            };
            assert!(described, "access::ROUTES has {method} {path}, which is neither described nor routed");
        }
        assert_eq!(ROUTES.len(), 14);
    }

    #[test]
    fn the_description_of_a_route_names_who_may_call_it() {
        assert_eq!(
            who_may(Permission::Scale, Bound::Group),
            "Permission `scale`. Who may call: operator, app (its own group)."
        );
        assert_eq!(
            who_may(Permission::Acknowledge, Bound::Handler),
            "Permission `acknowledge`. Who may call: operator, balancer (as itself)."
        );
    }
}
