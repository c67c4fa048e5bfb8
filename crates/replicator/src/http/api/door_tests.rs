//! Every door tried as an attacker would: each routed path of the route
//! table, with every method (HEAD, OPTIONS and the ones no route takes),
//! as every kind of caller a certificate can make (the identities, bound to
//! this group or another, certificates without one under each
//! `--unbound-clients`, one whose names cannot be read, an upper-case URN).
//! Each answer must be what the table and the access rules say, and a
//! refusal must change nothing in the engine. The paths come from the
//! table: a route added without a request here fails the test.

use std::sync::Arc;

use axum::body::{to_bytes, Body};
use axum::http::{Method, Request, StatusCode};
use tower::ServiceExt;

use super::table::{route_of, Bound, ROUTES};
use super::{router, AppState, PeerIdentity};
use crate::autoscale::AutoscaleHandle;
use crate::engine::fake::FakeEngine;
use crate::engine::Op;
use crate::inventory::Scope;
use crate::rules::access::{Identity, Permission, UnboundPolicy};
use crate::service::Replicator;
use crate::tls::Claim;

/// Engine calls that change the world.
const CHANGES: [Op; 8] = [
    Op::CreateContainer,
    Op::ConnectNetwork,
    Op::StartContainer,
    Op::PauseContainer,
    Op::UnpauseContainer,
    Op::StopContainer,
    Op::RemoveContainer,
    Op::UpdateService,
];

/// Every method a client can send.
const METHODS: [&str; 9] = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT"];

/// One kind of caller: what its certificate claims and the server's policy.
struct Caller {
    name: &'static str,
    claim: Claim,
    policy: UnboundPolicy,
    /// What the access rules make of it; `None`: refused whatever it asks.
    identity: Option<Identity>,
}

fn names(uris: &[&str]) -> Claim {
    Claim::Names(Ok(uris.iter().map(|u| (*u).to_owned()).collect()))
}

fn callers() -> Vec<Caller> {
    let bound = |name, uri: &'static str| {
        let identity = Identity::from_uris([uri], UnboundPolicy::Refuse).expect("a valid identity");
        Caller { name, claim: names(&[uri]), policy: UnboundPolicy::Refuse, identity: Some(identity) }
    };
    let unbound = |name, policy| Caller { name, claim: names(&[]), policy, identity: Some(Identity::Unbound(policy)) };
    vec![
        bound("operator", "urn:replicator:operator"),
        bound("app of this group", "urn:replicator:app:web"),
        bound("app of another group", "urn:replicator:app:api"),
        bound("balancer", "urn:replicator:balancer:lb1"),
        bound("agent", "urn:replicator:agent:abc123"),
        bound("alertmanager limited to another group", "urn:replicator:alertmanager:api"),
        bound("alertmanager", "urn:replicator:alertmanager"),
        bound("peer replicator", "urn:replicator:peer"),
        Caller {
            name: "a Swarm node's certificate",
            claim: Claim::SwarmNode(Ok("abc123".into())),
            policy: UnboundPolicy::Operator,
            identity: Some(Identity::Agent { node: "abc123".into() }),
        },
        Caller {
            name: "a Swarm CA certificate that is no node's",
            claim: Claim::SwarmNode(Err("no node".into())),
            policy: UnboundPolicy::Operator,
            identity: None,
        },
        unbound("unbound under operator", UnboundPolicy::Operator),
        unbound("unbound under read", UnboundPolicy::Read),
        unbound("unbound under refuse", UnboundPolicy::Refuse),
        Caller {
            name: "a certificate whose names do not parse",
            claim: Claim::Names(Err("the certificate's subject alternative names cannot be read".into())),
            policy: UnboundPolicy::Operator,
            identity: None,
        },
        Caller {
            name: "a malformed URN of ours",
            claim: names(&["urn:replicator:root"]),
            policy: UnboundPolicy::Operator,
            identity: None,
        },
        Caller {
            name: "an upper-case URN",
            claim: names(&["URN:REPLICATOR:app:web"]),
            policy: UnboundPolicy::Operator,
            identity: Some(Identity::App { group: "web".into() }),
        },
    ]
}

/// A request for each template: the concrete path, the body, and the scope
/// its permission is checked for (`None`: the permission alone). Panics on
/// a template it does not know, so a new route needs its request here.
fn sample(template: &str) -> (&'static str, &'static str, Option<&'static str>) {
    let alert = r#"{"version": "4", "status": "firing", "alerts": [{"status": "firing", "labels": {"replicator_group": "web"}, "annotations": {}, "startsAt": "2026-11-26T00:00:00Z", "endsAt": "0001-01-01T00:00:00Z", "fingerprint": "0a1b"}]}"#;
    match template {
        "/" => ("/", "", None),
        "/{id}" => ("/web", "", Some("web")),
        "/v1/containers/{id}/replicas" => ("/v1/containers/web/replicas", "", Some("web")),
        "/v1/metrics" => ("/v1/metrics", r#"{"container": "web", "metric": "rps", "value": 1}"#, Some("web")),
        "/v1/alertmanager" => ("/v1/alertmanager", alert, Some("web")),
        "/v1/groups" => ("/v1/groups", "", None),
        "/v1/groups/{name}" => ("/v1/groups/web", "", Some("web")),
        "/v1/groups/{name}/replicas" => ("/v1/groups/web/replicas", r#"{"replicas": 2}"#, Some("web")),
        "/v1/groups/{name}/decisions" => ("/v1/groups/web/decisions", "", Some("web")),
        "/v1/groups/{name}/wake" => ("/v1/groups/web/wake", "", Some("web")),
        "/v1/events" => ("/v1/events", "", None),
        "/v1/events/ack" => ("/v1/events/ack", r#"{"follower": "lb1", "id": 1}"#, Some("lb1")),
        "/v1/nodes/{node}/usage" => {
            ("/v1/nodes/abc123/usage", r#"{"hostname": "h", "containers": []}"#, Some("abc123"))
        }
        "/v1/openapi.json" => ("/v1/openapi.json", "", None),
        other => panic!("the route table has {other}, which this test sends nothing to: add its request"),
    }
}

/// What came back, and how many world-changing engine calls it made.
struct Answer {
    status: StatusCode,
    body: String,
    changes: usize,
}

async fn send(caller: &Caller, method: &str, path: &str, body: &str, headers: &[(&str, &str)]) -> Answer {
    let engine = Arc::new(FakeEngine::default());
    engine.add_container("web", &[("replicator.enable", "true"), ("replicator.max", "5")]);
    engine.add_container("api", &[("replicator.enable", "true"), ("replicator.max", "5")]);
    let service = Replicator::for_test(engine.clone(), Scope::default()).await;
    let autoscale = AutoscaleHandle::new(
        Arc::new(service.clone()),
        service.events().clone(),
        false,
        std::time::Duration::from_secs(15),
    );
    let alerts = super::alertmanager::AlertReceiver::new("replicator_group");
    let app =
        router(AppState { service, autoscale, rate_limit: None, alerts, unbound: caller.policy, forwarder: None });
    let before: usize = CHANGES.iter().map(|op| engine.calls(*op)).sum();
    let mut request = Request::builder().method(Method::from_bytes(method.as_bytes()).unwrap()).uri(path);
    if !body.is_empty() {
        request = request.header("content-type", "application/json");
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let mut request = request.header("content-length", body.len()).body(Body::from(body.to_owned())).unwrap();
    let peer = PeerIdentity { common_name: caller.name.into(), claim: Some(caller.claim.clone()), addr: None };
    request.extensions_mut().insert(peer);
    let response = app.oneshot(request).await.unwrap();
    let status = response.status();
    let streaming = response.headers().get("content-type").is_some_and(|v| v == "text/event-stream");
    let body = if streaming { Vec::new() } else { to_bytes(response.into_body(), usize::MAX).await.unwrap().to_vec() };
    let after: usize = CHANGES.iter().map(|op| engine.calls(*op)).sum();
    Answer { status, body: String::from_utf8_lossy(&body).into_owned(), changes: after - before }
}

/// Whether the rules let `caller` through the row's door.
fn allowed(caller: &Caller, method: &Method, template: &str) -> bool {
    let row = route_of(method, template).expect("an operation");
    let Some(identity) = &caller.identity else { return false };
    match (row.bound, sample(template).2) {
        (Bound::Nothing, _) | (_, None) => identity.holds(row.permission),
        (_, Some(scope)) => identity.may(row.permission, scope),
    }
}

#[tokio::test]
async fn every_door_answers_each_caller_as_the_table_says_and_a_refusal_changes_nothing() {
    let mut checked = 0;
    let mut templates: Vec<&str> = ROUTES.iter().map(|r| r.path).collect();
    templates.dedup();
    for template in templates {
        let (path, body, _) = sample(template);
        for caller in callers() {
            for method in METHODS {
                let m = Method::from_bytes(method.as_bytes()).unwrap();
                let what = format!("{method} {path} as {}", caller.name);
                let answer = send(&caller, method, path, body, &[]).await;
                if route_of(&m, template).is_none() {
                    // No operation: the router's 405, to a caller that is a client at all.
                    let client = caller.identity.as_ref().is_some_and(|i| i.holds(Permission::Describe));
                    let status = if client { StatusCode::METHOD_NOT_ALLOWED } else { StatusCode::FORBIDDEN };
                    assert_eq!(answer.status, status, "{what}: {}", answer.body);
                    assert_eq!(answer.changes, 0, "{what}");
                } else if allowed(&caller, &m, template) {
                    assert!(
                        ![StatusCode::FORBIDDEN, StatusCode::METHOD_NOT_ALLOWED].contains(&answer.status),
                        "{what} should pass the gate: {} {}",
                        answer.status,
                        answer.body
                    );
                } else {
                    assert_eq!(answer.status, StatusCode::FORBIDDEN, "{what} should be refused: {}", answer.body);
                    assert_eq!(answer.changes, 0, "{what}: a refusal changed the engine");
                }
                checked += 1;
            }
        }
    }
    assert!(checked >= 13 * 15 * 9, "{checked} exchanges");
}

#[tokio::test]
async fn head_on_the_original_route_replicates_for_no_one_the_get_would_refuse() {
    let callers = callers();
    let balancer = callers.iter().find(|c| c.name == "balancer").unwrap();
    let answer = send(balancer, "HEAD", "/web", "", &[]).await;
    assert_eq!((answer.status, answer.changes), (StatusCode::FORBIDDEN, 0), "a balancer's HEAD /web");
    let operator = callers.iter().find(|c| c.name == "operator").unwrap();
    let answer = send(operator, "HEAD", "/web", "", &[]).await;
    assert_eq!(answer.status, StatusCode::OK, "the operator's HEAD is its GET");
    assert!(answer.changes > 0, "and replicates, as the GET does");
}

#[tokio::test]
async fn a_browser_marking_a_request_cross_site_changes_nothing_through_any_method() {
    let callers = callers();
    let operator = callers.iter().find(|c| c.name == "operator").unwrap();
    for row in ROUTES.iter().filter(|r| r.changes_state) {
        let (path, body, _) = sample(row.path);
        let methods: &[&str] = if row.method == "GET" { &["GET", "HEAD"] } else { &[row.method] };
        for method in methods {
            let answer = send(operator, method, path, body, &[("sec-fetch-site", "cross-site")]).await;
            assert_eq!(answer.status, StatusCode::FORBIDDEN, "{method} {path}: {}", answer.body);
            assert_eq!(answer.changes, 0, "{method} {path}");
        }
    }
}

/// What the server sends reads as the client crate's types, so a program
/// built on `replicator-client` understands every answer it types.
#[tokio::test]
async fn the_client_crates_types_read_the_servers_answers() {
    let callers = callers();
    let operator = callers.iter().find(|c| c.name == "operator").unwrap();
    let made = send(operator, "POST", "/v1/containers/web/replicas?count=2", "", &[]).await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
    let made: replicator_client::Replication = serde_json::from_str(&made.body).expect("a Replication");
    assert_eq!((made.group.as_str(), made.replicas.len()), ("web", 2));
    let groups = send(operator, "GET", "/v1/groups", "", &[]).await;
    let groups: Vec<replicator_client::Group> = serde_json::from_str(&groups.body).expect("groups");
    let web = groups.iter().find(|g| g.name == "web").expect("web is listed");
    assert_eq!((web.kind.as_str(), web.members.len(), web.max), ("containers", 1, Some(5)));
    assert!(web.members[0].original && web.members[0].state == "running", "{web:?}");
}
