//! The whole system on one machine, no registry: replicator's own image with
//! the original's /ssl layout, the self-replicating demo app, and the
//! dashboard, driven from a real (headless) browser.

use std::path::Path;
use std::time::Duration;

use http::{Method, StatusCode};
use replicator::cli::remote::ApiClient;

use crate::common::browser::Browser;
use crate::common::{
    certs_for, docker, eventually, eventually_async, free_port, http_request, images, plain_http, Scope, SWARM,
};

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
    let _names = SWARM.read().await;
    images();
    let scope = Scope::new("system");
    let network = scope.network("net");
    let certs = certs_for(&["replicator"]);
    let ssl = format!("{}:/ssl:ro", certs.path().display());
    let label = scope.label();
    // Published ports arrive from the network's gateway: only it may act from the dashboard.
    let gateway = scope.docker(&["network", "inspect", "-f", "{{(index .IPAM.Config 0).Gateway}}", &network]);
    let from = format!("{}/32", gateway.trim());

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
            "--dashboard-actions",
            "--dashboard-actions-from",
            &from,
        ],
    );
    let api = format!("https://localhost:{}", published(&replicator, "8443"));
    let client = ApiClient::new(&api, certs.path()).unwrap();
    let ready = eventually_async("replicator's container to answer", Duration::from_secs(10), async || {
        client.get("/v1/groups").await.map_err(|e| e.to_string())
    })
    .await;
    assert_eq!(ready.status, StatusCode::OK);

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
    page.click("#replicate", Duration::from_secs(5)).await;
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
    let plus = format!("#group-{} button[title=\"scale to 3\"]", scope.name("demo"));
    page.click(&plus, Duration::from_secs(10)).await;
    page.wait_for(&format!("{section}.querySelectorAll('td.running').length === 3"), Duration::from_secs(20)).await;
    assert_eq!(scope.replicas_of(&scope.name("demo")).len(), 2);

    // Another site's page cannot press the buttons.
    let forged = http_request(
        published(&replicator, "9090"),
        "POST",
        &format!("/groups/{}/scale", scope.name("demo")),
        &[("Origin", "http://evil.example"), ("Content-Type", "application/x-www-form-urlencoded")],
        "replicas=1",
    )
    .expect("the dashboard answers");
    assert_eq!(forged.0, 403, "{}", forged.1);
    // Nor can a script that sets a same-origin header but never saw the page's token.
    let dashboard_port = published(&replicator, "9090");
    let origin = format!("http://127.0.0.1:{dashboard_port}");
    let tokenless = http_request(
        dashboard_port,
        "POST",
        &format!("/groups/{}/scale", scope.name("demo")),
        &[("Origin", origin.as_str()), ("Content-Type", "application/x-www-form-urlencoded")],
        "replicas=1",
    )
    .expect("the dashboard answers");
    assert_eq!(tokenless.0, 403, "{}", tokenless.1);
    assert!(tokenless.1.contains("token"), "{}", tokenless.1);
    assert_eq!(scope.replicas_of(&scope.name("demo")).len(), 2, "nothing changed");
    // The image's health check runs the binary's own subcommand.
    let healthy = eventually("the image's health check to pass", Duration::from_secs(60), || {
        let state = docker(&["inspect", "-f", "{{.State.Health.Status}}", &replicator]);
        (state == "healthy").then_some(state)
    });
    assert_eq!(healthy, "healthy");
}

/// `scripts/demo` under a name and ports of its own; `down` on drop.
struct Demo {
    env: Vec<(&'static str, String)>,
    script: std::path::PathBuf,
}

impl Demo {
    fn run(&self, args: &[&str]) -> std::process::Output {
        std::process::Command::new(&self.script).args(args).envs(self.env.iter().cloned()).output().unwrap()
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.run(&["down"]);
    }
}

fn served_by(port: u16) -> Option<String> {
    let (status, body) = plain_http(port, "GET", "/")?;
    let start = body.find("id=served-by>")? + "id=served-by>".len();
    (status == 200).then(|| body[start..].split('<').next().unwrap_or_default().to_owned())
}

#[test]
fn scripts_demo_starts_the_whole_system_and_down_removes_it() {
    let _names = SWARM.blocking_read();
    images();
    let name = format!("sysdemo-{}", std::process::id());
    let (web, api, dashboard) = (free_port(), free_port(), free_port());
    let demo = Demo {
        env: vec![
            ("DEMO_NAME", name.clone()),
            ("DEMO_PORT", web.to_string()),
            ("DEMO_API_PORT", api.to_string()),
            ("DEMO_DASHBOARD_PORT", dashboard.to_string()),
        ],
        script: Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/demo"),
    };
    let up = demo.run(&[]);
    let printed = String::from_utf8_lossy(&up.stdout);
    assert!(up.status.success(), "scripts/demo: {printed}{}", String::from_utf8_lossy(&up.stderr));
    assert!(printed.contains(&format!("http://127.0.0.1:{web}/")), "{printed}");
    assert!(printed.contains(&format!("http://127.0.0.1:{dashboard}/")), "{printed}");

    // Least privilege: each app mounts its group's bundle and no other private
    // key; replicator mounts a server bundle, never the CA's key.
    let mounts_of = |container: &str| -> Vec<std::path::PathBuf> {
        let listed = docker(&["inspect", "-f", "{{range .Mounts}}{{.Source}}\n{{end}}", container]);
        listed.lines().filter(|l| !l.is_empty() && !l.ends_with("docker.sock")).map(Into::into).collect()
    };
    let files_in = |dir: &Path| -> Vec<String> {
        let mut files: Vec<String> =
            std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        files.sort();
        files
    };
    for n in 1..=2 {
        let mounts = mounts_of(&format!("{name}-app-{n}"));
        assert_eq!(mounts.len(), 1, "one bundle mounted: {mounts:?}");
        assert_eq!(files_in(&mounts[0]), ["ca.pem", "cert.pem", "key.pem"], "the app's own pair, no other key");
        let cert = replicator::tls::load_certs("app certificate", &mounts[0].join("cert.pem")).unwrap();
        assert_eq!(replicator::tls::uri_names(&cert[0]).unwrap(), [format!("urn:replicator:app:{name}")]);
    }
    let server = mounts_of(&format!("{name}-replicator"));
    assert_eq!(server.len(), 1, "{server:?}");
    assert_eq!(
        files_in(&server[0]),
        ["ca.pem", "server-cert.pem", "server-key.pem"],
        "no CA key in the server's bundle"
    );

    // From another container on the demo's network, with no certificate, a
    // POST to the admin listener changes nothing: its buttons act only for
    // the address published ports arrive from.
    let before = docker(&["ps", "-q", "--filter", &format!("label=replicator.group={name}")]).lines().count();
    let url = format!("http://replicator:9090/groups/{name}/scale");
    let forged = crate::common::docker_try(&[
        "run",
        "--rm",
        "--network",
        &name,
        crate::common::image(),
        "wget",
        "-q",
        "-O-",
        "--header",
        "Host: 127.0.0.1",
        "--post-data",
        "replicas=4",
        &url,
    ]);
    assert!(forged.is_err(), "the admin listener acted for a stranger: {forged:?}");
    assert!(forged.unwrap_err().contains("403"), "refused as forbidden");
    let after = docker(&["ps", "-q", "--filter", &format!("label=replicator.group={name}")]).lines().count();
    assert_eq!(after, before, "nothing changed");

    // nginx spreads requests over both demo apps.
    let apps: Vec<String> =
        (1..=2).map(|n| docker(&["inspect", "-f", "{{.Config.Hostname}}", &format!("{name}-app-{n}")])).collect();
    let mut seen = std::collections::BTreeSet::new();
    eventually("nginx to reach both demo apps", Duration::from_secs(10), || {
        seen.insert(served_by(web)?);
        apps.iter().all(|a| seen.contains(a)).then_some(())
    });

    // "Replicate me" through nginx; the new replica soon answers through it too.
    let members = || docker(&["ps", "-q", "--filter", &format!("label=replicator.group={name}")]).lines().count();
    assert_eq!(members(), 2, "the demo starts with two apps");
    let refused = plain_http(web, "POST", "/replicate").expect("the demo answers");
    assert_eq!(refused.0, 415, "a plain form post is refused: {}", refused.1);
    let json = [("Content-Type", "application/json")];
    let (status, answer) = http_request(web, "POST", "/replicate", &json, "{}").expect("the demo answers");
    assert_eq!(status, 201, "{answer}");
    assert!(answer.starts_with("replicated: "), "{answer}");
    assert_eq!(members(), 3, "two apps and the replica");
    eventually("nginx to reach the new replica", Duration::from_secs(10), || {
        let host = served_by(web)?;
        (!apps.contains(&host)).then_some(())
    });

    let down = demo.run(&["down"]);
    assert!(down.status.success(), "{}", String::from_utf8_lossy(&down.stderr));
    let label = format!("label=replicator.demo={name}");
    assert_eq!(docker(&["ps", "-aq", "--filter", &label]), "", "no container left");
    assert_eq!(docker(&["network", "ls", "-q", "--filter", &label]), "", "no network left");
    assert!(plain_http(web, "GET", "/").is_none(), "nginx is gone");
    assert!(!Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target").join(&name).exists(), "state removed");
}
