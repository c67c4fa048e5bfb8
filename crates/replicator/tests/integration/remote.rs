//! The original deployment shape: an engine on `tcp://...:2376` with
//! `--tlsverify`, reached through DOCKER_HOST, DOCKER_TLS_VERIFY and
//! DOCKER_CERT_PATH, and up only after replicator started.

use std::process::Command;
use std::time::Duration;

use http::{Method, StatusCode};

use crate::common::second_engine::SecondEngine;
use crate::common::{call, certs, docker_try, eventually, free_port, image, Scope, Server, BIN};

/// `serve` against the second engine with the client files in `cert_path`: its exit and stderr.
fn serve_once(engine: &SecondEngine, api_certs: &std::path::Path, cert_path: &std::path::Path) -> (bool, String) {
    let out = Command::new("timeout")
        .args(["30", BIN, "serve", "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0", "--certs"])
        .arg(api_certs)
        .envs(engine.cli.env())
        .env("DOCKER_CERT_PATH", cert_path)
        .output()
        .unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_engine_through_the_docker_variables_even_when_it_comes_up_late() {
    let scope = Scope::new("remote");
    let certs = certs();
    let port = free_port();
    let env = [
        ("DOCKER_HOST", format!("tcp://127.0.0.1:{port}")),
        ("DOCKER_TLS_VERIFY", "1".to_owned()),
        ("DOCKER_CERT_PATH", certs.path().display().to_string()),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let label = scope.label();
    let server = Server::start_with(certs.path(), &["--selector", &label], &env);

    // No engine yet: replicator is up, says so, and answers 503.
    let (status, health) = server.admin_get("/healthz");
    assert_eq!(status, 503, "{health}");
    assert!(health.contains("\"engine\":\"down\""), "{health}");
    let r = call(&server, Method::POST, "/v1/containers/web/replicas", None).await;
    assert_eq!(
        (r.status, r.json()["error"]["code"].as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, Some("engine_unavailable"))
    );
    let compat = call(&server, Method::GET, "/web", None).await;
    assert_eq!((compat.status, compat.text().as_str()), (StatusCode::SERVICE_UNAVAILABLE, "engine unavailable"));

    let engine = SecondEngine::start(port, certs.path());
    engine.cli.load(image());
    let name = scope.name("web");
    let source = engine.cli.docker(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        &name,
        "--label",
        &label,
        "--label",
        "replicator.enable=true",
        image(),
        "sleep",
        "100000",
    ]);
    eventually("replicator to see the engine come up", Duration::from_secs(20), || {
        (server.admin_get("/healthz").0 == 200).then_some(())
    });

    let done = call(&server, Method::GET, &format!("/{name}"), None).await;
    assert_eq!((done.status, done.text().as_str()), (StatusCode::OK, "done"));
    let r = call(&server, Method::POST, &format!("/v1/containers/{name}/replicas"), None).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    assert_eq!(r.json()["source"], source.as_str());
    let clone = r.json()["replicas"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(engine.cli.docker(&["inspect", "-f", "{{.State.Running}}", &clone]), "true");
    assert!(docker_try(&["inspect", &clone]).is_err(), "the clone is on the remote engine, not the local one");

    // Bad client files: a clear startup error naming the file, never a panic.
    let broken = tempfile::tempdir().unwrap();
    let copy = |file: &str, from: &std::path::Path| std::fs::copy(from.join(file), broken.path().join(file)).unwrap();
    copy("ca.pem", certs.path());
    copy("cert.pem", certs.path());
    let (ok, stderr) = serve_once(&engine, certs.path(), broken.path());
    assert!(!ok && stderr.contains(&broken.path().join("key.pem").display().to_string()), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");

    copy("key.pem", certs.path());
    std::fs::write(broken.path().join("ca.pem"), "not a certificate").unwrap();
    let (ok, stderr) = serve_once(&engine, certs.path(), broken.path());
    assert!(!ok && stderr.contains(&broken.path().join("ca.pem").display().to_string()), "{stderr}");

    let foreign = crate::common::certs();
    copy("ca.pem", foreign.path());
    let (ok, stderr) = serve_once(&engine, certs.path(), broken.path());
    assert!(!ok && stderr.contains("does not vouch") && stderr.contains("ca.pem"), "{stderr}");
}
