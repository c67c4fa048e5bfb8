//! The whole system on one machine, no registry: replicator's own image with
//! the original's /ssl layout, the self-replicating demo app, and the
//! dashboard, driven from a real (headless) browser.

use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

use http::{Method, StatusCode};
use replicator::client::ApiClient;

use crate::common::browser::Browser;
use crate::common::{docker, Scope, BIN};

/// `scripts/build-images`, once per test run.
fn images() {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/build-images");
        let out = std::process::Command::new(script).output().expect("scripts/build-images runs");
        assert!(out.status.success(), "build-images: {}", String::from_utf8_lossy(&out.stderr));
    });
}

fn published(container: &str, port: &str) -> u16 {
    let out = docker(&["port", container, port]);
    out.lines().next().and_then(|l| l.rsplit(':').next()).and_then(|p| p.parse().ok()).expect("a published port")
}

#[test]
fn both_images_are_small() {
    images();
    for image in ["replicator:local", "replicator-demo:local"] {
        let size: u64 = docker(&["image", "inspect", "-f", "{{.Size}}", image]).parse().unwrap();
        assert!(size < 20_000_000, "{image} is {size} bytes");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_clicks_replicate_me_and_sees_the_new_member_on_the_dashboard() {
    images();
    let scope = Scope::new("system");
    let network = scope.network("net");
    let certs = tempfile::tempdir().unwrap();
    let init = std::process::Command::new(BIN)
        .args(["certs", "init", "--san", "replicator", "--out"])
        .arg(certs.path())
        .output()
        .unwrap();
    assert!(init.status.success());
    let ssl = format!("{}:/ssl:ro", certs.path().display());
    let label = scope.label();

    let replicator = scope.run(
        "replicator",
        &[
            "--network",
            &network,
            "--network-alias",
            "replicator",
            "-v",
            "/var/run/docker.sock:/var/run/docker.sock",
            "-v",
            &ssl,
            "-p",
            "127.0.0.1::8443",
            "-p",
            "127.0.0.1::9090",
            "--label",
            "replicator.enable=true",
            "replicator:local",
            "serve",
            "--certs",
            "/ssl",
            "--metrics-listen",
            "0.0.0.0:9090",
            "--selector",
            &label,
        ],
    );
    let api = format!("https://localhost:{}", published(&replicator, "8443"));
    let client = ApiClient::new(&api, certs.path()).unwrap();
    let mut ready = None;
    for _ in 0..100 {
        if let Ok(r) = client.get("/v1/groups").await {
            ready = Some(r);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(ready.expect("replicator's container answers").status, StatusCode::OK);

    // It finds its own container id and refuses to replicate itself.
    let itself = client.request(Method::POST, &format!("/v1/containers/{replicator}/replicas"), None).await.unwrap();
    assert_eq!(itself.status, StatusCode::FORBIDDEN, "{}", itself.text());
    assert!(itself.text().contains("own container"), "{}", itself.text());

    let demo = scope.run(
        "demo",
        &[
            "--network",
            &network,
            "-v",
            &ssl,
            "-p",
            "127.0.0.1::3000",
            "--label",
            "replicator.enable=true",
            "--label",
            "replicator.max=3",
            "replicator-demo:local",
        ],
    );
    let demo_url = format!("http://127.0.0.1:{}/", published(&demo, "3000"));
    let dashboard_url = format!("http://127.0.0.1:{}/", published(&replicator, "9090"));

    let browser = Browser::start();
    let mut page = browser.open(&demo_url).await;
    let served_by = page.eval("document.getElementById('served-by').textContent").await;
    assert_eq!(served_by.as_str(), Some(&demo[..12]), "the page names the container that served it");
    page.eval("document.getElementById('replicate').click()").await;
    page.wait_for("document.getElementById('answer').textContent.startsWith('replicated: ')", Duration::from_secs(30))
        .await;
    let answer = page.eval("document.getElementById('answer').textContent").await;
    page.screenshot("demo").await;
    let replica_name = format!("{}-2", scope.name("demo"));
    assert!(answer.as_str().unwrap().contains(&replica_name), "{answer}");
    assert_eq!(scope.replicas_of(&scope.name("demo")).len(), 1);

    page.navigate(&dashboard_url).await;
    page.wait_for(&format!("document.body.innerText.includes('{replica_name}')"), Duration::from_secs(15)).await;
    let text = page.eval("document.body.innerText").await;
    assert!(text.as_str().unwrap().contains("running"), "{text}");
    let shot = page.screenshot("dashboard").await;
    assert!(std::fs::metadata(shot).unwrap().len() > 10_000, "a real screenshot");

    // The dashboard's + button scales through the same service code.
    let section = format!("document.getElementById('group-{}')", scope.name("demo"));
    let plus = format!("{section}.querySelector('button[title=\"scale to 3\"]').click()");
    page.eval(&plus).await;
    page.wait_for(&format!("{section}.querySelectorAll('td.running').length === 3"), Duration::from_secs(20)).await;
    assert_eq!(scope.replicas_of(&scope.name("demo")).len(), 2);
}
