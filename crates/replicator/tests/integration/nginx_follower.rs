//! `replicator upstreams` behind a real nginx (Debian's): traffic reaches a new
//! replica within 2 s of its start and stops reaching a removed one.

use std::time::{Duration, Instant};

use http::{Method, StatusCode};
use serde_json::json;

use crate::common::lb::{Nginx, Upstreams};
use crate::common::{call, eventually, free_port, image, inspect, plain_http, write_file, Scope};

/// One request through nginx: the hostname of the member that answered.
fn through(port: u16) -> Option<String> {
    plain_http(port, "GET", "/").filter(|(status, _)| *status == 200).map(|(_, body)| body.trim().to_owned())
}

#[tokio::test]
async fn nginx_follows_the_group_through_the_generated_upstreams() {
    let scope = Scope::new("balancer");
    let network = scope.network("lb");
    let serve_hostname = "mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 8080 -h /www";
    let source = scope
        .run("web", &["--label", "replicator.enable=true", "--network", &network, image(), "sh", "-c", serve_hostname]);
    let source_host = source[..12].to_owned();
    let name = scope.name("web");
    let server = scope.server(&["--stop-timeout", "1s"]);

    let dir = tempfile::tempdir().unwrap();
    let upstream_file = dir.path().join("upstream.conf");
    let port = free_port();
    // nginx needs the file before it starts: write it once, then follow.
    Upstreams::new(&name, &upstream_file).network(&network).once();
    let nginx = Nginx::start(dir.path(), port, &upstream_file, &name);
    let reload = nginx.synchronous_reload("");
    let _follower = Upstreams::new(&name, &upstream_file).format("nginx").network(&network).reload(&reload).follow();
    eventually("nginx to reach the original", Duration::from_secs(10), || {
        (through(port)? == source_host).then_some(())
    });

    let r = call(&server, Method::POST, &format!("/v1/containers/{name}/replicas"), None).await;
    assert_eq!(r.status, StatusCode::CREATED);
    let started = Instant::now();
    let replica = r.json()["replicas"][0]["id"].as_str().unwrap().to_owned();
    let replica_host = replica[..12].to_owned();
    eventually("nginx to send a request to the new replica", Duration::from_secs(2), || {
        (through(port)? == replica_host).then_some(())
    });
    eprintln!("new replica reached through nginx {:?} after its start", started.elapsed());
    let text = std::fs::read_to_string(&upstream_file).unwrap();
    assert!(text.contains("least_conn;") && text.matches("server ").count() == 2, "{text}");

    let replica_address =
        format!("{}:8080", inspect(&replica)["NetworkSettings"]["Networks"][&network]["IPAddress"].as_str().unwrap());
    let reloads =
        || std::fs::read_to_string(dir.path().join("follower.log")).unwrap_or_default().matches("reloaded").count();
    let reloads_before = reloads();

    let down = call(&server, Method::PUT, &format!("/v1/groups/{name}/replicas"), Some(json!({"replicas": 1}))).await;
    assert_eq!(down.status, StatusCode::OK);
    assert!(crate::common::docker_try(&["inspect", &replica]).is_err());
    // The follower drops it from the file and reloads nginx...
    eventually("the upstreams to drop the removed replica and nginx to reload", Duration::from_secs(5), || {
        let text = std::fs::read_to_string(&upstream_file).ok()?;
        (!text.contains(&replica_address) && reloads() > reloads_before).then_some(())
    });
    // ...whose new workers then send every request to the source at once:
    // none held up trying the vanished address (proxy_connect_timeout, 1 s).
    let fast_to_source = || {
        let asked = Instant::now();
        through(port).as_deref() == Some(source_host.as_str()) && asked.elapsed() < Duration::from_millis(900)
    };
    eventually("nginx's new workers to send only to the source", Duration::from_secs(5), || {
        (0..10).all(|_| fast_to_source()).then_some(())
    });
    assert_eq!(inspect(&source)["State"]["Running"], true);
    let json = dir.path().join("upstream.json");
    Upstreams::new(&name, &json).format("json").network(&network).once();
    let doc: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(doc["servers"].as_array().unwrap().len(), 1);
}

#[test]
fn a_failed_reload_is_retried_without_waiting_for_another_change() {
    let scope = Scope::new("reload");
    scope.run("web", &["--label", "replicator.enable=true", image(), "sleep", "300"]);
    let dir = tempfile::tempdir().unwrap();
    let (ready, reloads) = (dir.path().join("ready"), dir.path().join("reloads"));
    // Fails until `ready` exists, like an nginx that is not up yet.
    let reload = format!("test -e '{}' && echo reloaded >> '{}'", ready.display(), reloads.display());
    let (name, out) = (scope.name("web"), dir.path().join("upstream.json"));
    let _follower = Upstreams::new(&name, &out).format("json").reload(&reload).extra(&["--resync", "1s"]).follow();
    eventually("the first write", Duration::from_secs(10), || out.exists().then_some(()));
    assert!(!reloads.exists(), "the reload failed so far");
    write_file(&ready, "");
    eventually("the reload to be tried again", Duration::from_secs(5), || reloads.exists().then_some(()));
}
