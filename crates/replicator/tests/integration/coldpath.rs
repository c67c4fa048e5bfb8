//! The cold path: readiness probes replicator runs itself (for images
//! without a healthcheck), a wake that never answers 502 for an app still
//! starting, going back to sleep when requests stop (learned from nginx's
//! `mirror`), replicas that exit at once, and the phase metrics of new
//! capacity. Against the real engine and Debian's nginx.

use std::time::Duration;

use http::{Method, StatusCode};
use serde_json::{json, Value};

use crate::common::lb::{readme_snippet, upstream_servers, Nginx, Upstreams};
use crate::common::{
    call, eventually, eventually_async, free_port, group, http_request, image, labels, poll_until_async, ready_if,
    Scope, Server,
};

/// An app whose every answer is its own (`app GET 0`, `app POST 102400`), a
/// CGI script behind busybox's httpd, that starts listening after `delay`.
fn app_listening_after(delay: &str) -> String {
    format!(
        "mkdir -p /www/cgi-bin && printf '#!/bin/sh\\n[ -n \"$CONTENT_LENGTH\" ] && head -c \"$CONTENT_LENGTH\" \
         >/dev/null\\necho \"Content-Type: text/plain\"\\necho\\necho \"app $REQUEST_METHOD ${{CONTENT_LENGTH:-0}}\"\\n' \
         > /www/cgi-bin/app && chmod +x /www/cgi-bin/app && echo ok > /www/index.html && echo ok > /www/ready && \
         sleep {delay} && exec httpd -f -p 8080 -h /www"
    )
}

/// An app that listens only once `/tmp/go` exists (`docker exec … touch /tmp/go`).
const LISTENS_ON_GO: &str =
    "while [ ! -e /tmp/go ]; do sleep 0.05; done; mkdir -p /www && echo ok > /www/index.html && exec httpd -f -p 8080 -h /www";

/// A group behind nginx as the guide sets it up: replicator with a wake
/// listener, the follower writing the upstream (the waker while the group
/// has no ready member), nginx with the snippet.
struct Fronted {
    server: Server,
    nginx: Nginx,
    upstreams: std::path::PathBuf,
    wake: String,
    _follower: crate::common::Owned,
    _dir: tempfile::TempDir,
}

fn fronted(scope: &Scope, name: &str, network: &str, server_args: &[&str]) -> Fronted {
    let wake = format!("127.0.0.1:{}", free_port());
    // A process of its own: a failing test shows what it logged.
    let server = scope.process_server(&[&["--wake-listen", wake.as_str()][..], server_args].concat());
    let dir = tempfile::tempdir().unwrap();
    let upstreams = dir.path().join("upstreams.conf");
    std::fs::write(&upstreams, format!("upstream {name} {{ server {wake}; }}\n")).unwrap();
    let (directives, locations) = readme_snippet(name, &wake);
    let nginx = Nginx::start_with_locations(dir.path(), free_port(), &upstreams, name, &directives, &locations);
    let reload = nginx.synchronous_reload("");
    let extra = ["--wake", wake.as_str()];
    let follower = Upstreams::nginx_following(&server, name, &upstreams, network, &reload).extra(&extra).follow();
    Fronted { server, nginx, upstreams, wake, _follower: follower, _dir: dir }
}

async fn put_to_sleep(server: &Server, name: &str) -> Value {
    let slept = call(server, Method::PUT, &format!("/v1/groups/{name}/replicas"), Some(json!({"replicas": 0}))).await;
    assert_eq!(slept.status, StatusCode::OK, "{}", slept.text());
    let g = slept.json();
    assert_eq!(g["asleep"], true, "{g}");
    g
}

/// The status, and whether the body is the app's own answer to a GET.
fn answer_of((status, body): (u16, String)) -> (u16, bool) {
    (status, body.contains("app GET 0\n"))
}

async fn request(port: u16, method: &'static str, path: &'static str, body: String) -> (u16, String) {
    tokio::task::spawn_blocking(move || http_request(port, method, path, &[], &body).unwrap_or((0, String::new())))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_asleep_group_whose_app_listens_late_answers_every_held_get_and_post_with_its_own_body() {
    let scope = Scope::new("coldlate");
    let network = scope.network("net");
    let app = app_listening_after("1");
    let wake_network = format!("replicator.wake.network={network}");
    let mut args = labels(&["replicator.enable=true", "replicator.min=0", "replicator.sleep=stop"]);
    args.extend(["--label", "replicator.wake.port=8080", "--label", &wake_network, "--network", &network]);
    args.extend([image(), "sh", "-c", app.as_str()]);
    let original = scope.run("web", &args);
    let name = scope.name("web");
    let front = fronted(&scope, &name, &network, &["--stop-timeout", "1s"]);
    put_to_sleep(&front.server, &name).await;
    assert_eq!(scope.inspect(&original)["State"]["Status"], "exited", "stopped, never removed");
    eventually("the upstream on the waker", Duration::from_secs(30), || {
        (upstream_servers(&front.upstreams) == [front.wake.clone()]).then_some(())
    });

    let port = front.nginx.port;
    let body = "x".repeat(100 * 1024);
    let requests = (0..30).map(|i| {
        let (method, body) = if i % 2 == 0 { ("GET", String::new()) } else { ("POST", body.clone()) };
        request(port, method, "/cgi-bin/app", body)
    });
    let answers = futures_util::future::join_all(requests).await;
    // nginx may pass the CGI's answer on chunked: its body is in there whole.
    let own = |(status, text): &(u16, String)| {
        *status == 200 && (text.contains("app GET 0\n") || text.contains("app POST 102400\n"))
    };
    assert_eq!(answers.iter().filter(|a| own(a)).count(), 30, "every request got the app's own answer: {answers:?}");
    assert_eq!(answers.iter().filter(|(_, t)| t.contains("app POST 102400\n")).count(), 15, "bodies held whole");
    let metrics = front.server.admin_get("/metrics").1;
    assert!(metrics.contains("replicator_wake_requests_total{event=\"forwarded\"}"), "{metrics}");
    assert!(metrics.contains("how=\"wake-from-stop\",phase=\"held\""), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_with_a_tcp_probe_is_neither_balanced_nor_answered_ready_until_its_port_accepts() {
    let scope = Scope::new("probetcp");
    let network = scope.network("net");
    let mut args = labels(&["replicator.enable=true", "replicator.ready=tcp:8080,period=500ms", "replicator.max=3"]);
    args.extend(["--network", &network, image(), "sh", "-c", LISTENS_ON_GO]);
    let original = scope.run("web", &args);
    scope.docker(&["exec", &original, "touch", "/tmp/go"]);
    let name = scope.name("web");
    let server = scope.server(&[]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("web.conf");
    let _follower = Upstreams::new(&name, &file).format("nginx").network(&network).extra(&["--resync", "1s"]).follow();
    eventually("the original, probed ready, in the file", Duration::from_secs(30), || {
        (upstream_servers(&file).len() == 1).then_some(())
    });

    let client = server.client();
    let path = format!("/v1/containers/{original}/replicas?wait=ready&timeout=60s");
    let replicating = tokio::spawn(async move { client.request(Method::POST, &path, None).await.unwrap() });
    let running = |id: &String| {
        crate::common::docker_try(&["inspect", "-f", "{{.State.Status}}", id]).is_ok_and(|s| s.trim() == "running")
    };
    let replica = eventually("the replica to run, or the request to end", Duration::from_secs(30), || {
        let found = scope.replicas_of(&name).into_iter().find(running);
        (found.is_some() || replicating.is_finished()).then_some(found)
    });
    let Some(replica) = replica else {
        let r = replicating.await.unwrap();
        panic!("wait=ready answered before the replica ran: {} {}", r.status, r.text());
    };
    let seen =
        eventually_async("the replica shown running, not ready by its probe", Duration::from_secs(10), async || {
            let g = group(&server, &name).await;
            let m = g["members"].as_array().unwrap().iter().find(|m| m["id"] == replica.as_str()).cloned();
            let starting = m.as_ref().is_some_and(|m| m["state"] == "running" && m["probe"] == "starting");
            ready_if(starting, g)
        })
        .await;
    let m = seen["members"].as_array().unwrap().iter().find(|m| m["id"] == replica.as_str()).unwrap().clone();
    assert_eq!(m["ready"], false, "{m}");
    assert!(!replicating.is_finished(), "wait=ready has not answered while the port refuses");
    assert_eq!(upstream_servers(&file).len(), 1, "only the original is balanced");

    scope.docker(&["exec", &replica, "touch", "/tmp/go"]);
    let answer = replicating.await.unwrap();
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text());
    let ip = scope.inspect(&replica)["NetworkSettings"]["Networks"][&network]["IPAddress"].as_str().unwrap().to_owned();
    let accepts = std::net::TcpStream::connect_timeout(&format!("{ip}:8080").parse().unwrap(), Duration::from_secs(2));
    assert!(accepts.is_ok(), "answered ready only once the port accepts");
    eventually("the replica in the file", Duration::from_secs(30), || {
        upstream_servers(&file).contains(&format!("{ip}:8080")).then_some(())
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_probe_that_fails_marks_a_running_member_not_ready_and_it_leaves_the_balancer() {
    let scope = Scope::new("probehttp");
    let network = scope.network("net");
    let app = app_listening_after("0");
    let mut args = labels(&["replicator.enable=true", "replicator.ready=http:8080/ready,period=300ms,failures=2"]);
    args.extend(["--network", &network, image(), "sh", "-c", app.as_str()]);
    let original = scope.run("web", &args);
    let name = scope.name("web");
    let server = scope.server(&[]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("web.conf");
    let _follower = Upstreams::new(&name, &file).format("nginx").network(&network).extra(&["--resync", "1s"]).follow();
    eventually("the member, probed ready, in the file", Duration::from_secs(30), || {
        (upstream_servers(&file).len() == 1).then_some(())
    });
    assert_eq!(group(&server, &name).await["members"][0]["probe"], "healthy");

    scope.docker(&["exec", &original, "rm", "/www/ready"]);
    eventually_async("the member not ready by its failing probe", Duration::from_secs(20), async || {
        let g = group(&server, &name).await;
        let m = g["members"][0].clone();
        ready_if(m["state"] == "running" && m["ready"] == false && m["probe"] == "unhealthy", m)
    })
    .await;
    eventually("the member out of the file", Duration::from_secs(30), || {
        upstream_servers(&file).is_empty().then_some(())
    });

    scope.docker(&["exec", &original, "touch", "/www/ready"]);
    eventually("the member back once its probe passes", Duration::from_secs(30), || {
        (upstream_servers(&file).len() == 1).then_some(())
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_warm_standby_is_paused_only_after_its_probe_passes() {
    let scope = Scope::new("probewarm");
    let network = scope.network("net");
    let mut args = labels(&["replicator.enable=true", "replicator.warm=1", "replicator.ready=tcp:8080"]);
    args.extend(["--network", &network, image(), "sh", "-c", LISTENS_ON_GO]);
    let original = scope.run("web", &args);
    scope.docker(&["exec", &original, "touch", "/tmp/go"]);
    let name = scope.name("web");
    let server = scope.server(&["--warm-settle", "1s"]);
    let standby = eventually("a standby to run", Duration::from_secs(30), || {
        scope
            .replicas_of(&name)
            .into_iter()
            .find(|id| *id != original && scope.inspect(id)["State"]["Status"] == "running")
    });
    // Well past --warm-settle, the standby is still warming: its probe has not passed.
    let g = eventually_async("the standby shown warming past --warm-settle", Duration::from_secs(20), async || {
        let g = group(&server, &name).await;
        let warming =
            g["standbys"].as_array().unwrap().iter().any(|m| m["id"] == standby.as_str() && m["probe"] == "starting");
        let started = scope.inspect(&standby)["State"]["StartedAt"].as_str().unwrap().to_owned();
        let settled = replicator_test_age(&started) > Duration::from_secs(2);
        ready_if(warming && settled, g)
    })
    .await;
    assert_eq!(scope.inspect(&standby)["State"]["Status"], "running", "not paused before its probe passes: {g}");

    scope.docker(&["exec", &standby, "touch", "/tmp/go"]);
    eventually("the standby paused once probed ready", Duration::from_secs(30), || {
        (scope.inspect(&standby)["State"]["Status"] == "paused").then_some(())
    });
}

/// How long ago an RFC 3339 instant of the engine's was.
fn replicator_test_age(rfc3339: &str) -> Duration {
    let at = chrono::DateTime::parse_from_rfc3339(rfc3339).expect("an RFC 3339 instant");
    (chrono::Utc::now() - at.with_timezone(&chrono::Utc)).to_std().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_that_exits_at_once_fails_wait_ready_by_name_and_one_that_exits_later_holds_no_place() {
    let scope = Scope::new("exits");
    let volume = scope.volume("data");
    let mount = format!("{volume}:/data");
    // The original serves; a clone, sharing the volume, finds the mark and exits 3.
    let first_serves = "[ -e /data/first ] && exit 3; touch /data/first; exec httpd -f -p 8080";
    let mut args = labels(&["replicator.enable=true", "replicator.max=2"]);
    args.extend(["-v", &mount, image(), "sh", "-c", first_serves]);
    let original = scope.run("web", &args);
    let name = scope.name("web");
    let server = scope.server(&[]);
    eventually("the original to mark the volume", Duration::from_secs(10), || {
        crate::common::docker_try(&["exec", &original, "test", "-e", "/data/first"]).is_ok().then_some(())
    });

    let path = format!("/v1/containers/{original}/replicas?wait=ready&timeout=30s");
    let r = call(&server, Method::POST, &path, None).await;
    assert_eq!(r.status, StatusCode::GATEWAY_TIMEOUT, "{}", r.text());
    let said = r.text();
    assert!(said.contains(&format!("{name}-2")) && said.contains("exit code 3"), "names it and how it ended: {said}");
    eventually("the request's clone removed", Duration::from_secs(30), || {
        scope.replicas_of(&name).is_empty().then_some(())
    });

    // Without wait=ready: made, then it exits on its own.
    for _ in 0..2 {
        let r = call(&server, Method::POST, &format!("/v1/containers/{original}/replicas"), None).await;
        assert_eq!(r.status, StatusCode::CREATED, "an exited replica holds no place under max 2: {}", r.text());
        eventually_async("the replica shown exited", Duration::from_secs(30), async || {
            let g = group(&server, &name).await;
            let exited = g["members"].as_array().unwrap().iter().filter(|m| m["state"] == "exited").count();
            ready_if(exited >= 1 && g["replicas"] == 1, g)
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_with_no_metric_sleeps_after_its_quiet_period_unless_requests_come_and_health_checks_never_count() {
    let scope = Scope::new("quiet");
    let network = scope.network("net");
    let app = app_listening_after("0");
    let wake_network = format!("replicator.wake.network={network}");
    let mut args = labels(&[
        "replicator.enable=true",
        "replicator.min=0",
        "replicator.sleep.after=4s",
        "replicator.wake.port=8080",
        "replicator.wake.ignore=/healthz,agent=kube-probe",
    ]);
    args.extend(["--label", &wake_network, "--network", &network, image(), "sh", "-c", app.as_str()]);
    scope.run("web", &args);
    let name = scope.name("web");
    let front = fronted(&scope, &name, &network, &[]);
    let port = front.nginx.port;
    // The first request wakes the group if its quiet period ran out while nginx came up.
    assert_eq!(answer_of(request(port, "GET", "/cgi-bin/app", String::new()).await), (200, true));

    // A request every second for three quiet periods: awake throughout.
    let mut every = tokio::time::interval(Duration::from_secs(1));
    for _ in 0..12 {
        every.tick().await;
        assert_eq!(answer_of(request(port, "GET", "/cgi-bin/app", String::new()).await), (200, true));
        assert_eq!(group(&front.server, &name).await["asleep"], false, "requests keep it awake");
    }
    // Only health checks now: the group sleeps after its quiet period all the same.
    let health = || {
        tokio::task::spawn_blocking(move || {
            http_request(port, "GET", "/healthz", &[], "");
            http_request(port, "GET", "/", &[("User-Agent", "kube-probe/1.31")], "")
        })
    };
    // A loaded engine may refuse a pause now and then; the next try is a quiet period away.
    let slept = poll_until_async(Duration::from_secs(60), async || {
        health().await.unwrap();
        let g = group(&front.server, &name).await;
        ready_if(g["asleep"] == true, g)
    })
    .await;
    if let Err(last) = slept {
        let logs = front.server.logs();
        panic!("the group never slept though only health checks came; last seen: {last}; replicator said: {logs:#?}");
    }
    eventually("the upstream back on the waker", Duration::from_secs(30), || {
        (upstream_servers(&front.upstreams) == [front.wake.clone()]).then_some(())
    });
    let checked = request(port, "GET", "/healthz", String::new()).await;
    assert_eq!(checked.0, 503, "a health check does not wake it: {checked:?}");
    assert_eq!(group(&front.server, &name).await["asleep"], true);
    let metrics = front.server.admin_get("/metrics").1;
    assert!(metrics.contains("replicator_wake_requests_total{event=\"activity\"}"), "mirrors reached replicator");
    assert!(metrics.contains("replicator_wake_requests_total{event=\"ignored\"}"), "{metrics}");

    let woken = answer_of(request(port, "GET", "/cgi-bin/app", String::new()).await);
    assert_eq!(woken, (200, true), "a request wakes it");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_phase_histograms_count_a_cold_scale_up_a_standby_promotion_and_a_wake() {
    let scope = Scope::new("phases");
    let network = scope.network("net");
    let mut args =
        labels(&["replicator.enable=true", "replicator.min=0", "replicator.warm=1", "replicator.ready=tcp:8080"]);
    args.extend(["--network", &network, image(), "httpd", "-f", "-p", "8080"]);
    scope.run("web", &args);
    let name = scope.name("web");
    let server = scope.server(&[]);
    eventually_async("the standby paused", Duration::from_secs(30), async || {
        let g = group(&server, &name).await;
        ready_if(g["standbys"].as_array().unwrap().iter().any(|m| m["state"] == "paused"), g)
    })
    .await;
    // 1 → 3: the standby, then one cold clone.
    let path = format!("/v1/groups/{name}/replicas");
    let r = call(&server, Method::PUT, &path, Some(json!({"replicas": 3, "wait": "ready", "timeout": "60s"}))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    put_to_sleep(&server, &name).await;
    let r = call(&server, Method::POST, &format!("/v1/groups/{name}/wake?wait=ready&timeout=60s"), None).await;
    assert!(r.status.is_success(), "{}", r.text());

    let count = |metrics: &str, how: &str, phase: &str| {
        let series = format!("replicator_capacity_phase_duration_seconds_count{{how=\"{how}\",phase=\"{phase}\"}} ");
        metrics.lines().find_map(|l| l.strip_prefix(series.as_str())).and_then(|n| n.trim().parse::<u64>().ok())
    };
    eventually("every phase counted", Duration::from_secs(30), || {
        let metrics = server.admin_get("/metrics").1;
        let seen = [
            count(&metrics, "cold", "create"),
            count(&metrics, "cold", "start"),
            count(&metrics, "cold", "ready"),
            count(&metrics, "standby", "start"),
            count(&metrics, "standby", "ready"),
            count(&metrics, "wake-from-pause", "start"),
            count(&metrics, "wake-from-pause", "ready"),
        ];
        ready_if(seen.iter().all(|n| *n == Some(1)), format!("{seen:?}"))
    });
    let page = server.admin_get("/").1;
    assert!(page.contains("<td>wake-from-pause</td>") && page.contains("<td>cold</td>"), "the dashboard's timeline");
}
