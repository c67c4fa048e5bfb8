//! Every answer of the replication routes, checked against the engine's state.

use http::{Method, StatusCode};
use serde_json::Value;

use crate::common::{docker, eventually, inspect, plain_http, Engine, Scope, Server};

#[tokio::test]
async fn the_compatibility_route_answers_like_the_original() {
    compatibility_route(Engine::Docker).await;
}

/// The original tool's route, on any engine.
pub(crate) async fn compatibility_route(engine: Engine) {
    let scope = Scope::on(engine, "compat");
    let source = scope.web("web", &[]);
    let server = scope.server(&[]);
    let client = server.client();

    let done = client.get(&format!("/{}", &source[..12])).await.unwrap();
    assert_eq!((done.status, done.text().as_str()), (StatusCode::OK, "done"));
    let replicas = scope.replicas_of(&scope.name("web"));
    assert_eq!(replicas.len(), 1);
    assert_eq!(scope.inspect(&replicas[0])["State"]["Running"], true);

    let missing = client.get("/").await.unwrap();
    assert_eq!((missing.status, missing.text().as_str()), (StatusCode::BAD_REQUEST, "container id missing"));
    let unknown = client.get("/no-such-container-anywhere").await.unwrap();
    assert_eq!((unknown.status, unknown.text().as_str()), (StatusCode::NOT_FOUND, "invalid container id"));
    let malformed = client.get("/..%2F..%2Fversion").await.unwrap();
    assert_eq!((malformed.status, malformed.text().as_str()), (StatusCode::BAD_REQUEST, "invalid container id"));
    assert_eq!(scope.containers().len(), 2, "only the one good request created something");
}

#[tokio::test]
async fn v1_replicate_answers_201_with_the_replicas() {
    let scope = Scope::new("v1");
    let (source, name) = scope.web_group(&[]);
    let server = scope.process_server(&[]);

    let r =
        server.client().request(Method::POST, &format!("/v1/containers/{name}/replicas?count=2"), None).await.unwrap();
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let body = r.json();
    assert_eq!(body["source"], source.as_str());
    assert_eq!(body["group"], name.as_str());
    let replicas = body["replicas"].as_array().unwrap();
    let names: Vec<&str> = replicas.iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(names, [format!("{name}-2"), format!("{name}-3")]);
    for r in replicas {
        let c = inspect(r["id"].as_str().unwrap());
        assert_eq!(c["State"]["Status"], "running");
        assert_eq!(c["Config"]["Labels"]["replicator.source"], source.as_str());
        assert_eq!(c["Config"]["Labels"]["replicator.group"], name.as_str());
    }
    let logged = server.logs().iter().any(|l| l.contains("replica started") && l.contains("replicator client"));
    assert!(logged, "each replication is logged with the client's name");
}

#[tokio::test]
async fn a_replica_of_a_replica_joins_the_original_group() {
    let scope = Scope::new("chain");
    let (source, name) = scope.web_group(&[]);
    let server = scope.server(&[]);
    let client = server.client();
    let first = client.request(Method::POST, &format!("/v1/containers/{name}/replicas"), None).await.unwrap().json();
    let clone = first["replicas"][0]["name"].as_str().unwrap().to_owned();

    let second = client.request(Method::POST, &format!("/v1/containers/{clone}/replicas"), None).await.unwrap();
    assert_eq!(second.status, StatusCode::CREATED, "{}", second.text());
    let body = second.json();
    assert_eq!(body["group"], name.as_str());
    assert_eq!(body["replicas"][0]["name"], format!("{name}-3"));
    let c = inspect(body["replicas"][0]["id"].as_str().unwrap());
    assert_eq!(c["Config"]["Labels"]["replicator.source"], source.as_str(), "points at the original, not the clone");
}

#[tokio::test]
async fn bad_ids_and_parameters_are_refused_and_change_nothing() {
    let scope = Scope::new("badinput");
    scope.web("web", &[]);
    let server = scope.server(&[]);
    let client = server.client();
    let name = scope.name("web");
    let long = "a".repeat(129);
    let bad_paths = [
        "/v1/containers/..%2F..%2Fversion/replicas".to_owned(),
        "/v1/containers/..%2Fweb/replicas".to_owned(),
        "/v1/containers/.../replicas".to_owned(),
        "/v1/containers/a%00b/replicas".to_owned(),
        "/v1/containers/a%20b/replicas".to_owned(),
        "/v1/containers/%FF/replicas".to_owned(),
        format!("/v1/containers/{long}/replicas"),
        format!("/v1/containers/{name}/replicas?count=0"),
        format!("/v1/containers/{name}/replicas?count=abc"),
        format!("/v1/containers/{name}/replicas?count=-1"),
        format!("/v1/containers/{name}/replicas?count=101"),
        format!("/v1/containers/{name}/replicas?count=1&count=2"),
        format!("/v1/containers/{name}/replicas?force=true"),
    ];
    for path in &bad_paths {
        let r = client.request(Method::POST, path, None).await.unwrap();
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{path}: {}", r.text());
        let body = r.json();
        assert_eq!(body["error"]["code"], "bad_request", "{path}");
        assert!(!body["error"]["message"].as_str().unwrap().is_empty(), "{path}");
    }
    assert_eq!(scope.containers().len(), 1, "no bad request created anything");
}

#[tokio::test]
async fn unknown_containers_are_404_in_json() {
    let server = Server::start(&[]);
    let r = server
        .client()
        .request(Method::POST, "/v1/containers/no-such-container-anywhere/replicas", None)
        .await
        .unwrap();
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.json()["error"]["code"], "not_found");
}

#[tokio::test]
async fn containers_must_opt_in_unless_allow_all() {
    let scope = Scope::new("optin");
    scope.run("plain", &[crate::common::image(), "httpd", "-f", "-p", "8080"]);
    let name = scope.name("plain");
    let strict = scope.server(&[]);
    let r = strict.client().request(Method::POST, &format!("/v1/containers/{name}/replicas"), None).await.unwrap();
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.json()["error"]["message"].as_str().unwrap().contains("replicator.enable=true"));
    let compat = strict.client().get(&format!("/{name}")).await.unwrap();
    assert_eq!(compat.status, StatusCode::FORBIDDEN);
    assert_eq!(scope.containers().len(), 1);

    let open = scope.server(&["--allow-all"]);
    let r = open.client().request(Method::POST, &format!("/v1/containers/{name}/replicas"), None).await.unwrap();
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    assert_eq!(scope.containers().len(), 2);
}

#[tokio::test]
async fn the_limit_counts_the_original_and_answers_409() {
    let scope = Scope::new("limit");
    let (_, name) = scope.web_group(&["--label", "replicator.max=2"]);
    let server = scope.server(&[]);
    let client = server.client();
    let path = format!("/v1/containers/{name}/replicas");
    assert_eq!(client.request(Method::POST, &path, None).await.unwrap().status, StatusCode::CREATED);
    let full = client.request(Method::POST, &path, None).await.unwrap();
    assert_eq!(full.status, StatusCode::CONFLICT);
    assert_eq!(full.json()["error"]["code"], "limit_reached");
    assert!(full.json()["error"]["message"].as_str().unwrap().contains("at most 2"));
    let compat = client.get(&format!("/{name}")).await.unwrap();
    assert_eq!(compat.status, StatusCode::CONFLICT);
    assert!(compat.text().contains("replica limit reached"));
    assert_eq!(scope.containers().len(), 2);
}

#[tokio::test]
async fn a_clone_that_cannot_start_is_rolled_back_with_the_engines_message() {
    let scope = Scope::new("rollback");
    let port = crate::common::free_port();
    let publish = format!("127.0.0.1:{port}:8080");
    let (_, name) = scope.web_group(&["-p", &publish]);
    let server = scope.server(&["--keep-host-ports"]);

    let r =
        server.client().request(Method::POST, &format!("/v1/containers/{name}/replicas?count=2"), None).await.unwrap();
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{}", r.text());
    let body: Value = r.json();
    assert_eq!(body["error"]["code"], "engine_error");
    assert!(body["error"]["message"].as_str().unwrap().contains("already allocated"), "{body}");
    assert_eq!(scope.containers().len(), 1, "the failed clone was removed");
    let compat = server.client().get(&format!("/{name}")).await.unwrap();
    assert_eq!(compat.status, StatusCode::BAD_GATEWAY);
    assert_ne!(compat.text(), "done");
    assert_eq!(scope.containers().len(), 1);
}

#[tokio::test]
async fn an_unreachable_engine_is_503_never_404() {
    let server = Server::start(&["--docker-host", "unix:///nonexistent/docker.sock"]);
    let client = server.client();
    let r = client.request(Method::POST, "/v1/containers/anything/replicas", None).await.unwrap();
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.json()["error"]["code"], "engine_unavailable");
    let compat = client.get("/anything").await.unwrap();
    assert_eq!((compat.status, compat.text().as_str()), (StatusCode::SERVICE_UNAVAILABLE, "engine unavailable"));
    let _ = docker(&["version", "--format", "{{.Server.Version}}"]); // the real engine was up all along
}

#[tokio::test]
async fn a_replicator_manages_only_what_its_selector_picks() {
    let scope = Scope::new("selector");
    let (_, name) = scope.web_group(&[]);
    let other = Server::start_selecting("replicator-test=someone-else", &[]);
    let r = other.client().request(Method::POST, &format!("/v1/containers/{name}/replicas"), None).await.unwrap();
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.json()["error"]["message"].as_str().unwrap().contains("someone-else"));
    let listed = other.client().get("/v1/groups").await.unwrap().json();
    assert!(!listed.to_string().contains(&name), "{listed}");
    assert_eq!(scope.containers().len(), 1);

    let mine = scope.server(&[]);
    let listed = mine.client().get("/v1/groups").await.unwrap().json();
    assert!(listed.to_string().contains(&name), "{listed}");
}

#[tokio::test]
async fn a_clone_serves_on_its_own_published_port() {
    clone_serves_on_its_own_port(Engine::Docker).await;
}

/// A clone of a container that publishes a port publishes its own, and answers there.
pub(crate) async fn clone_serves_on_its_own_port(engine: Engine) {
    let scope = Scope::on(engine, "ownport");
    let serve_hostname = "mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 8080 -h /www";
    let image = engine.image();
    scope
        .run("web", &["--label", "replicator.enable=true", "-p", "127.0.0.1::8080", image, "sh", "-c", serve_hostname]);
    let server = scope.server(&[]);
    let r = server
        .client()
        .request(http::Method::POST, &format!("/v1/containers/{}/replicas", scope.name("web")), None)
        .await
        .unwrap();
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let clone = r.json()["replicas"][0]["id"].as_str().unwrap().to_owned();
    let port: u16 = scope.inspect(&clone)["NetworkSettings"]["Ports"]["8080/tcp"][0]["HostPort"]
        .as_str()
        .and_then(|p| p.parse().ok())
        .expect("the clone publishes 8080 on a host port");
    let answer = eventually("the clone to answer on its own port", std::time::Duration::from_secs(10), || {
        plain_http(port, "GET", "/").filter(|(status, _)| *status == 200)
    });
    assert_eq!(answer.1.trim(), &clone[..12], "the clone itself answered, not the source");
}
