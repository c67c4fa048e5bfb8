//! Least privilege, with real certificates made by `replicator certs issue`:
//! what each identity may do, what it is refused (403, and nothing changes),
//! revocation after SIGHUP, and certificates without an identity.

use std::path::{Path, PathBuf};
use std::time::Duration;

use http::{Method, StatusCode};
use replicator::cli::remote::{ApiClient, ApiResponse};
use serde_json::{json, Value};

use crate::common::{eventually_async, group, issue_bundle, members_in, Scope, Server, BIN};

/// A bundle for `identity`, issued by the server's CA (the folder `certs init` wrote).
fn bundle(server: &Server, identity: &str, dir: &Path) -> PathBuf {
    issue_bundle(&server.certs, identity, dir)
}

fn client(server: &Server, bundle: &Path) -> ApiClient {
    ApiClient::new(&server.url(), bundle).expect("the bundle loads")
}

async fn send(client: &ApiClient, method: Method, path: &str, body: Option<Value>) -> ApiResponse {
    client.request(method, path, body.as_ref()).await.expect("the server answers")
}

/// A 403 naming the permission and the identity.
fn assert_denied(r: &ApiResponse, permission: &str, identity: &str, what: &str) {
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{what}: {}", r.text());
    let error = &r.json()["error"];
    assert_eq!(error["code"], "denied", "{what}");
    assert_eq!(error["permission"], permission, "{what}");
    assert_eq!(error["identity"], identity, "{what}");
}

#[tokio::test]
async fn an_app_acts_for_its_own_group_and_is_refused_everything_else() {
    let scope = Scope::new("appid");
    let autoscaled = ["--label", "replicator.max=4", "--label", "replicator.autoscale.metric=load"];
    let autoscaled = [&autoscaled[..], &["--label", "replicator.autoscale.target=10"]].concat();
    let (a, b) = (scope.web("a", &autoscaled), scope.web("b", &autoscaled));
    let (group_a, group_b) = (scope.name("a"), scope.name("b"));
    // The autoscaler decides but changes nothing: the sizes below are the app's doing.
    let server = scope.server(&["--dry-run"]);
    let dir = tempfile::tempdir().unwrap();
    let app = client(&server, &bundle(&server, &format!("app:{group_a}"), dir.path()));
    let me = format!("app:{group_a}");

    let r = send(&app, Method::POST, &format!("/v1/containers/{a}/replicas"), None).await;
    assert_eq!(r.status, StatusCode::CREATED, "its own container: {}", r.text());
    let r = send(&app, Method::PUT, &format!("/v1/groups/{group_a}/replicas"), Some(json!({"replicas": 3}))).await;
    assert_eq!(r.status, StatusCode::OK, "its own group: {}", r.text());
    let r = send(&app, Method::POST, "/v1/metrics", Some(json!({"container": a, "metric": "load", "value": 1}))).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "its own container's metric: {}", r.text());
    let listed = send(&app, Method::GET, "/v1/groups", None).await.json();
    let names: Vec<&str> = listed.as_array().unwrap().iter().filter_map(|g| g["name"].as_str()).collect();
    assert_eq!(names, [group_a.as_str()], "it reads its own group only");

    let refused = [
        (Method::PUT, format!("/v1/groups/{group_b}/replicas"), Some(json!({"replicas": 3})), "scale"),
        (Method::POST, format!("/v1/containers/{b}/replicas"), None, "replicate"),
        (Method::GET, format!("/{b}"), None, "replicate"),
        (
            Method::POST,
            "/v1/metrics".into(),
            Some(json!({"container": b, "metric": "load", "value": 0})),
            "push-metrics",
        ),
        (Method::GET, format!("/v1/groups/{group_b}"), None, "read-groups"),
        (
            Method::PUT,
            "/v1/nodes/abc123/usage".into(),
            Some(json!({"hostname": "h", "containers": []})),
            "report-usage",
        ),
        (
            Method::POST,
            "/v1/alertmanager".into(),
            Some(json!({"version": "4", "status": "firing", "alerts": []})),
            "receive-alerts",
        ),
        (Method::POST, "/v1/events/ack".into(), Some(json!({"follower": "nginx-1", "id": 1})), "acknowledge"),
        (Method::GET, "/v1/events".into(), None, "follow-events"),
    ];
    for (method, path, body, permission) in refused {
        let r = send(&app, method.clone(), &path, body).await;
        if path == format!("/{b}") {
            assert_eq!(r.status, StatusCode::FORBIDDEN, "{method} {path}: {}", r.text());
            assert!(r.text().contains("lacks the permission replicate"), "{}", r.text());
        } else {
            assert_denied(&r, permission, &me, &format!("{method} {path}"));
        }
    }
    let b_now = group(&server, &group_b).await;
    assert_eq!(b_now["replicas"], 1, "nothing changed in group b");
    assert_eq!(scope.replicas_of(&group_b).len(), 0);
    let a_now = group(&server, &group_a).await;
    assert_eq!(members_in(&a_now, "running").len(), 3);
    let (_, metrics) = server.admin_get("/metrics");
    let counted = metrics
        .lines()
        .filter(|l| l.starts_with("replicator_access_denied_total") && l.contains("identity=\"app\""))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum::<f64>();
    assert_eq!(counted, 9.0, "every refusal counted by route and identity:\n{metrics}");
}

#[tokio::test]
async fn a_balancer_follows_and_acknowledges_as_itself_only_and_never_past_the_latest_event() {
    let scope = Scope::new("lbid");
    scope.web_group(&[]);
    let server = scope.server(&[]);
    let dir = tempfile::tempdir().unwrap();
    let lb = client(&server, &bundle(&server, "balancer:nginx-1", dir.path()));
    let stream = lb.stream("/v1/events?follower=nginx-1", &[]).await.unwrap();
    assert_eq!(stream.status(), StatusCode::OK, "it follows as itself");
    let other = lb.stream("/v1/events?follower=nginx-2", &[]).await.unwrap();
    assert_eq!(other.status(), StatusCode::FORBIDDEN, "not as another follower");

    let r = send(&lb, Method::POST, "/v1/events/ack", Some(json!({"follower": "nginx-1", "id": u64::MAX}))).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    let kept = r.json()["acked"].as_u64().unwrap();
    assert!(kept < u64::MAX, "capped at the latest event id, not {kept}");
    let r = send(&lb, Method::POST, "/v1/events/ack", Some(json!({"follower": "nginx-2", "id": 1}))).await;
    assert_denied(&r, "acknowledge", "balancer:nginx-1", "ack as another follower");
    // Even the operator may not acknowledge for a follower a balancer registered.
    let r = send(&server.client(), Method::POST, "/v1/events/ack", Some(json!({"follower": "nginx-1", "id": 1}))).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text());
    let r = send(&lb, Method::PUT, &format!("/v1/groups/{}/replicas", scope.name("web")), Some(json!({"replicas": 2})))
        .await;
    assert_denied(&r, "scale", "balancer:nginx-1", "a balancer scaling");
    drop(stream);
}

#[tokio::test]
async fn a_silent_follower_delays_a_scale_down_but_not_a_scale_up_of_the_same_group() {
    let scope = Scope::new("drainlock");
    let (_, name) = scope.web_group(&["--label", "replicator.max=4"]);
    let server = scope.server(&["--drain-timeout", "30s"]);
    let r =
        send(&server.client(), Method::PUT, &format!("/v1/groups/{name}/replicas"), Some(json!({"replicas": 2}))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let dir = tempfile::tempdir().unwrap();
    let lb = client(&server, &bundle(&server, "balancer:silent", dir.path()));
    let silent = lb.stream(&format!("/v1/events?follower=silent&group={name}"), &[]).await.unwrap();
    assert_eq!(silent.status(), StatusCode::OK);

    let operator = server.client();
    let path = format!("/v1/groups/{name}/replicas");
    let down = {
        let operator = server.client();
        let path = path.clone();
        tokio::spawn(async move { send(&operator, Method::PUT, &path, Some(json!({"replicas": 1}))).await })
    };
    eventually_async(
        "a member draining while the silent follower has not acknowledged",
        Duration::from_secs(20),
        async || {
            let g = group(&server, &name).await;
            (!members_in(&g, "draining").is_empty()).then_some(())
        },
    )
    .await;
    let started = std::time::Instant::now();
    let up = send(&operator, Method::PUT, &path, Some(json!({"replicas": 2}))).await;
    assert_eq!(up.status, StatusCode::OK, "{}", up.text());
    assert!(started.elapsed() < Duration::from_secs(15), "the scale-up waited {:?} for the drain", started.elapsed());
    assert!(!down.is_finished(), "the scale-down still waits for the silent follower");
    drop(silent); // a follower that goes away is no longer waited for
    let down = tokio::time::timeout(Duration::from_secs(20), down).await.expect("the scale-down ends").unwrap();
    assert_eq!(down.status, StatusCode::OK, "{}", down.text());
}

#[tokio::test]
async fn a_certificate_without_an_identity_is_refused_unless_the_operator_restores_the_original_answer() {
    let scope = Scope::new("unbound");
    let (web, _) = scope.web_group(&[]);
    let server = scope.server(&[]);
    let dir = tempfile::tempdir().unwrap();
    let plain = unbound_bundle(&server, dir.path());
    let r = client(&server, &plain).get(&format!("/{web}")).await.unwrap();
    assert_eq!(r.status, StatusCode::FORBIDDEN, "refused by default: {}", r.text());
    let r = client(&server, &plain).get("/v1/groups").await.unwrap();
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(scope.replicas_of(&scope.name("web")).len(), 0, "nothing replicated");

    let original = Server::in_process(&server.certs, &["--selector", &scope.label(), "--unbound-clients", "operator"]);
    let r = client(&original, &plain).get(&format!("/{web}")).await.unwrap();
    assert_eq!((r.status, r.text().as_str()), (StatusCode::OK, "done"), "the original tool's answer, when asked for");
    assert_eq!(scope.replicas_of(&scope.name("web")).len(), 1, "only the second server replicated");
}

/// A client bundle with no replicator identity, as another tool would make.
fn unbound_bundle(server: &Server, dir: &Path) -> PathBuf {
    use replicator::tls::authority::{issue, IssueOptions, Subject};
    let out = dir.join("plain");
    let subject = Subject::Client { common_name: "some client".into(), uris: Vec::new() };
    issue(&IssueOptions { ca_dir: server.certs.clone(), out: out.clone(), subject, days: 1, force: false }).unwrap();
    out
}

#[tokio::test]
async fn a_revoked_certificate_is_refused_after_sighup_while_the_others_keep_working() {
    let scope = Scope::new("revoke");
    scope.web_group(&[]);
    let certs = crate::common::certs();
    let dir = tempfile::tempdir().unwrap();
    let issue = |identity: &str| issue_bundle(certs.path(), identity, dir.path());
    let (leaked, kept, spare) = (issue("balancer:leaked"), issue("balancer:kept"), issue("balancer:spare"));
    let crl = dir.path().join("crl.pem");
    let revoke = |bundle: &Path| {
        let done = std::process::Command::new(BIN)
            .args(["certs", "revoke", "--ca"])
            .arg(certs.path())
            .arg("--crl")
            .arg(&crl)
            .arg(bundle.join("cert.pem"))
            .output()
            .unwrap();
        assert!(done.status.success(), "{}", String::from_utf8_lossy(&done.stderr));
    };
    revoke(&spare);
    let crl_arg = crl.to_string_lossy().into_owned();
    let server = Server::start_with(certs.path(), &["--selector", &scope.label(), "--crl", &crl_arg], &[]);
    let (leaked_client, kept_client) = (client(&server, &leaked), client(&server, &kept));
    assert_eq!(leaked_client.get("/v1/groups").await.unwrap().status, StatusCode::OK, "valid until revoked");
    assert!(client(&server, &spare).get("/v1/groups").await.is_err(), "a certificate already listed is refused");

    revoke(&leaked);
    server.signal("HUP");
    eventually_async("the revoked certificate refused after SIGHUP", Duration::from_secs(10), async || {
        let fresh = client(&server, &leaked);
        fresh.get("/v1/groups").await.is_err().then_some(())
    })
    .await;
    assert_eq!(kept_client.get("/v1/groups").await.unwrap().status, StatusCode::OK, "others keep working");
    assert!(server.logs().iter().any(|l| l.contains("TLS configuration reloaded")));
}
