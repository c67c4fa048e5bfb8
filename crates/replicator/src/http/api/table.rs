//! The route table: the one place that says, for every operation of the
//! API, its method and path, the permission it needs and what that
//! permission is bound to, what body it takes, whether it changes anything,
//! and which handler serves it. The router is made by registering each row's
//! handler, the permission gate and the content rules look the row up, and
//! the OpenAPI description is the registered handlers' with each row's
//! permission written in. A door cannot be left ajar by a route that one of
//! them knows and another does not.
//!
//! `HEAD` is the `GET` it stands for (axum answers it with the `GET`
//! handler): it needs the same permission and obeys the same content rule.
//! Every other method on a routed path is the router's 405.

use axum::http::Method;
use axum::Json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::guard::Rule;
use super::{alertmanager, nodes, responses, routes as handlers, stream, AppState};
use crate::rules::access::{Identity, Permission};

/// Where a route's permission is bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    /// Nothing in the path; the handler checks what the request names (its
    /// container's group, the follower, each alert's group) with the same rule.
    Handler,
    /// The path's `{name}`: a group.
    Group,
    /// The path's `{node}`: a Swarm node.
    Node,
    /// Not bound to anything.
    Nothing,
}

/// What a route's request carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    /// No body: one is refused (400).
    None,
    /// A JSON body (415 for any other type).
    Json,
}

/// Adds one row's handler to the router and the description.
type Register = fn(OpenApiRouter<AppState>) -> OpenApiRouter<AppState>;

/// One operation of the API.
pub struct Route {
    /// `GET`, `POST` or `PUT` (`HEAD` follows `GET`).
    pub method: &'static str,
    /// The path template, as the router matches it.
    pub path: &'static str,
    /// What the caller's identity must hold.
    pub permission: Permission,
    /// What that permission is bound to.
    pub bound: Bound,
    /// The request body it takes.
    pub body: Body,
    /// It changes something: a request a browser marks cross-site is refused.
    pub changes_state: bool,
    register: Register,
}

impl Route {
    /// The content rule the guard applies.
    pub fn rule(&self) -> Rule {
        Rule { json_body: self.body == Body::Json, changes_state: self.changes_state }
    }
}

macro_rules! route {
    ($method:literal $path:literal, $permission:ident, $bound:ident, $body:ident, $changes:literal, $handler:path) => {
        Route {
            method: $method,
            path: $path,
            permission: Permission::$permission,
            bound: Bound::$bound,
            body: Body::$body,
            changes_state: $changes,
            register: |router| router.routes(routes!($handler)),
        }
    };
}

/// Every operation of the API.
pub static ROUTES: &[Route] = &[
    route!("GET" "/", Replicate, Nothing, None, false, handlers::compat_missing_id),
    // The original tool's route replicates on a GET: it changes state.
    route!("GET" "/{id}", Replicate, Handler, None, true, handlers::compat_replicate),
    route!("POST" "/v1/containers/{id}/replicas", Replicate, Handler, None, true, handlers::replicate),
    route!("POST" "/v1/metrics", PushMetrics, Handler, Json, true, handlers::push_metrics),
    route!("POST" "/v1/alertmanager", ReceiveAlerts, Handler, Json, true, alertmanager::receive),
    route!("GET" "/v1/groups", ReadGroups, Handler, None, false, handlers::list_groups),
    route!("GET" "/v1/groups/{name}", ReadGroups, Group, None, false, handlers::show_group),
    route!("PUT" "/v1/groups/{name}/replicas", Scale, Group, Json, true, handlers::scale_group),
    route!("GET" "/v1/groups/{name}/decisions", ReadGroups, Group, None, false, handlers::group_decisions),
    route!("POST" "/v1/groups/{name}/wake", Scale, Group, None, true, handlers::wake_group),
    route!("GET" "/v1/events", FollowEvents, Handler, None, false, stream::events),
    route!("POST" "/v1/events/ack", Acknowledge, Handler, Json, true, stream::ack),
    route!("PUT" "/v1/nodes/{node}/usage", ReportUsage, Node, Json, true, nodes::report),
    route!("GET" "/v1/openapi.json", Describe, Nothing, None, false, openapi_json),
];

/// The row of `method` on `template` (a matched path such as
/// `/v1/groups/{name}`), `HEAD` being its `GET`; `None`: not an operation
/// (the router answers 405, or 404 for an unknown path).
pub fn route_of(method: &Method, template: &str) -> Option<&'static Route> {
    let method = if method == Method::HEAD { &Method::GET } else { method };
    ROUTES.iter().find(|r| r.method == method.as_str() && r.path == template)
}

/// The content rule of `method` on `template`; `None` when it is not an operation.
pub fn content_rule(method: &Method, template: &str) -> Option<Rule> {
    route_of(method, template).map(Route::rule)
}

/// The API's description: title and tags; the paths come from the rows.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(title = "replicator", description = "Replicates Docker containers and scales groups on demand, over mutual TLS."),
    tags(
        (name = "compatibility", description = "The original tool's route"),
        (name = "containers"), (name = "groups"), (name = "autoscaler"), (name = "events"),
        (name = "swarm"), (name = "alertmanager"), (name = "description")
    )
)]
struct ApiDoc;

/// Every row's handler registered: the router and the description.
pub fn registered() -> OpenApiRouter<AppState> {
    ROUTES
        .iter()
        .fold(OpenApiRouter::with_openapi(<ApiDoc as utoipa::OpenApi>::openapi()), |router, row| (row.register)(router))
}

/// The OpenAPI 3.1 description of the whole API.
pub fn description() -> &'static utoipa::openapi::OpenApi {
    static DOC: std::sync::OnceLock<utoipa::openapi::OpenApi> = std::sync::OnceLock::new();
    DOC.get_or_init(|| {
        let mut doc = registered().split_for_parts().1;
        write_permissions(&mut doc);
        stream::describe(&mut doc);
        responses::complete(&mut doc, content_rule);
        doc
    })
}

#[utoipa::path(get, path = "/v1/openapi.json", tag = "description",
    responses((status = 200, description = "This description (OpenAPI 3.1)", body = Object)))]
async fn openapi_json() -> Json<&'static utoipa::openapi::OpenApi> {
    Json(description())
}

/// Writes each operation's permission into the description: who may call
/// it, in its description, and `x-replicator-permission`.
fn write_permissions(doc: &mut utoipa::openapi::OpenApi) {
    for (path, item) in doc.paths.paths.iter_mut() {
        for (method, operation) in
            [("GET", item.get.as_mut()), ("PUT", item.put.as_mut()), ("POST", item.post.as_mut())]
        {
            let Some(operation) = operation else { continue };
            let row = ROUTES.iter().find(|r| r.method == method && r.path == path);
            let row = row.unwrap_or_else(|| panic!("{method} {path} is described but has no row"));
            let who = who_may(row.permission, row.bound);
            operation.description = Some(match operation.description.take() {
                Some(text) if !text.is_empty() => format!("{text}\n\n{who}"),
                _ => who,
            });
            let extension = utoipa::openapi::extensions::ExtensionsBuilder::new()
                .add("x-replicator-permission", row.permission.as_str())
                .build();
            match operation.extensions.as_mut() {
                Some(extensions) => extensions.merge(extension),
                None => operation.extensions = Some(extension),
            }
        }
    }
}

/// Who may call an operation, in words, for the OpenAPI description.
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

    /// Each described operation, as (method, path).
    fn described_operations(doc: &utoipa::openapi::OpenApi) -> Vec<(&'static str, String)> {
        let mut all = Vec::new();
        for (path, item) in &doc.paths.paths {
            let methods = [
                ("GET", item.get.is_some()),
                ("PUT", item.put.is_some()),
                ("POST", item.post.is_some()),
                ("DELETE", item.delete.is_some()),
                ("PATCH", item.patch.is_some()),
                ("HEAD", item.head.is_some()),
                ("OPTIONS", item.options.is_some()),
                ("TRACE", item.trace.is_some()),
            ];
            all.extend(methods.into_iter().filter(|(_, on)| *on).map(|(m, _)| (m, path.clone())));
        }
        all
    }

    #[test]
    fn the_description_has_exactly_the_rows_each_once() {
        let mut described = described_operations(description());
        described.sort();
        let mut rows: Vec<(&str, String)> = ROUTES.iter().map(|r| (r.method, r.path.to_owned())).collect();
        rows.sort();
        assert_eq!(described, rows, "each row registers its own operation and nothing else");
        let mut unique = rows.clone();
        unique.dedup();
        assert_eq!(unique.len(), rows.len(), "no operation has two rows");
    }

    #[test]
    fn head_is_the_get_it_stands_for() {
        for row in ROUTES.iter().filter(|r| r.method == "GET") {
            let head = route_of(&Method::HEAD, row.path).expect("HEAD finds the GET row");
            assert!(std::ptr::eq(head, row), "{}", row.path);
        }
        assert!(content_rule(&Method::HEAD, "/{id}").unwrap().changes_state, "HEAD /{{id}} replicates like GET");
        assert!(route_of(&Method::OPTIONS, "/v1/groups").is_none(), "OPTIONS is no operation");
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
