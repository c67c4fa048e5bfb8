//! Replicas that serve, against real programs (issue 12): readiness under
//! `wait=ready`, draining before the stop signal, the event stream that
//! `replicator upstreams --server` follows into a real nginx, and zero lost
//! requests under wrk's load while the group is scaled.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use http::{Method, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};

use crate::common::lb::{upstream_servers, Nginx, Upstreams, Wrk};
use crate::common::tcp_proxy::TcpProxy;
use crate::common::{
    autoscaled_on_load, call, docker, docker_try, eventually, eventually_async, free_port, group, image, inspect,
    ready_if, write_in, Owned, Scope, Server, QUICK_AUTOSCALER,
};

/// The members' document root, bind-mounted read-only at /www in every
/// member (a clone keeps its original's binds): `/` answers at once,
/// `/cgi-bin/slow` after 0.2 s, `/cgi-bin/hit` appends a line to
/// `/log/<hostname>` (when /log is mounted) before answering.
fn www(dir: &Path) -> PathBuf {
    let www = dir.join("www");
    std::fs::create_dir_all(www.join("cgi-bin")).unwrap();
    write_in(&www, "index.html", "ok\n");
    let scripts = [
        ("slow", "#!/bin/sh\nsleep 0.2\necho 'Content-Type: text/plain'\necho\necho slow\n"),
        ("hit", "#!/bin/sh\necho hit >> /log/$(hostname)\necho 'Content-Type: text/plain'\necho\nhostname\n"),
    ];
    for (name, text) in scripts {
        let path = write_in(&www.join("cgi-bin"), name, text);
        std::process::Command::new("chmod").arg("755").arg(&path).status().unwrap();
    }
    www
}

fn member_ids(group: &Value) -> Vec<String> {
    group["members"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap().to_owned()).collect()
}

/// `PUT /v1/groups/{name}/replicas`; a scale-up waits for readiness.
async fn scale(server: &Server, name: &str, replicas: u32) -> Duration {
    let body = json!({"replicas": replicas, "wait": "ready", "timeout": "30s"});
    let started = Instant::now();
    let r = call(server, Method::PUT, &format!("/v1/groups/{name}/replicas"), Some(body)).await;
    assert_eq!(r.status, StatusCode::OK, "scaling {name} to {replicas}: {}", r.text());
    started.elapsed()
}

/// `ip:8080` of a container on `network`.
fn address(id: &str, network: &str) -> String {
    let ip = inspect(id)["NetworkSettings"]["Networks"][network]["IPAddress"].as_str().unwrap().to_owned();
    assert!(!ip.is_empty(), "{id} has no address on {network}");
    format!("{ip}:8080")
}

fn health(id: &str) -> String {
    inspect(id)["State"]["Health"]["Status"].as_str().unwrap_or_default().to_owned()
}

fn wait_healthy(id: &str) {
    eventually(&format!("{id} to be healthy"), Duration::from_secs(20), || (health(id) == "healthy").then_some(()));
}

/// The member addresses nginx sent requests to, per access-log line
/// (`msec status method addr[, addr...]`), in the log from byte `from`.
fn routed_to(log: &str, from: usize) -> Vec<String> {
    log.get(from..)
        .unwrap_or_default()
        .lines()
        .flat_map(|l| l.split_whitespace().skip(3).map(|a| a.trim_end_matches(',').to_owned()).collect::<Vec<_>>())
        .collect()
}

/// Waits until nginx has sent requests to every member in the upstream
/// file since byte `from` of its access log, and the file lists `count`.
fn wait_for_traffic_to_every_member(nginx: &Nginx, file: &Path, count: usize, from: usize) {
    eventually(&format!("nginx to send requests to all {count} members"), Duration::from_secs(45), || {
        let servers = upstream_servers(file);
        let routed = routed_to(&nginx.access_log(), from);
        (servers.len() == count && servers.iter().all(|s| routed.contains(s))).then_some(())
    });
}

/// The busybox test image with a healthcheck on its own HTTP server.
const HTTP_HEALTH: [&str; 8] = [
    "--health-cmd",
    "wget -q -O /dev/null http://127.0.0.1:8080/",
    "--health-interval",
    "1s",
    "--health-retries",
    "3",
    "--health-start-period",
    "0s",
];

/// A group on its own network behind nginx, fed by `replicator upstreams
/// --server` (with the synchronous reload), under two wrk loads.
/// Fields drop in order: the load, the follower, nginx, replicator, files.
struct Served {
    gets: Option<Wrk>,
    posts: Option<Wrk>,
    _follower: Owned,
    nginx: Nginx,
    server: Server,
    name: String,
    upstream_file: PathBuf,
    dir: tempfile::TempDir,
}

impl Served {
    /// The group (original and `labels`) scaled to `size`, nginx answering through it.
    async fn start(scope: &Scope, labels: &[&str], server_args: &[&str], size: u32) -> Self {
        let network = scope.network("lb");
        let dir = tempfile::tempdir().unwrap();
        let www = www(dir.path());
        let bind = format!("{}:/www:ro", www.display());
        // The stop signal kills at once: a member that still had a request
        // when it is stopped would lose it (a POST is not retried by nginx),
        // so only draining first can keep the count of failures at zero.
        let mut args = vec!["--label", "replicator.enable=true", "--network", &network];
        args.extend(labels);
        args.extend(["-v", &bind, "--stop-signal", "KILL"]);
        args.extend(HTTP_HEALTH);
        args.extend([image(), "httpd", "-f", "-p", "8080", "-h", "/www"]);
        let original = scope.run("web", &args);
        let name = scope.name("web");
        wait_healthy(&original);
        let server = scope.server(server_args);
        scale(&server, &name, size).await;

        let upstream_file = dir.path().join("upstream.conf");
        Upstreams::new(&name, &upstream_file).network(&network).once();
        let nginx = Nginx::start(dir.path(), free_port(), &upstream_file, &name);
        let reload = nginx.synchronous_reload("");
        let follower = Upstreams::nginx_following(&server, &name, &upstream_file, &network, &reload).follow();
        eventually("nginx to answer through the group", Duration::from_secs(10), || {
            crate::common::plain_http(nginx.port, "GET", "/").filter(|(s, _)| *s == 200)
        });
        Self { gets: None, posts: None, _follower: follower, nginx, server, name, upstream_file, dir }
    }

    /// GETs answered at once and POSTs answered in 0.2 s, four connections
    /// each, every request on its own connection.
    fn load(&mut self) {
        let base = format!("http://127.0.0.1:{}", self.nginx.port);
        self.gets = Some(Wrk::start(self.dir.path(), "get", &format!("{base}/"), 4, None));
        let post = Some("wrk.method = \"POST\"\nwrk.body = \"x\"\n");
        self.posts = Some(Wrk::start(self.dir.path(), "post", &format!("{base}/cgi-bin/slow"), 4, post));
    }

    /// See `wait_for_traffic_to_every_member`.
    fn wait_for_traffic(&self, count: usize, from: usize) {
        wait_for_traffic_to_every_member(&self.nginx, &self.upstream_file, count, from);
    }

    /// Stops the load; fails on any failed request or too little load.
    fn assert_nothing_lost(&mut self) {
        let (mut gets, mut posts) = (self.gets.take().unwrap(), self.posts.take().unwrap());
        assert!(gets.running() && posts.running(), "the load ended before the scaling did");
        let (gets, posts) = (gets.finish(), posts.finish());
        eprintln!("GET: {}\nPOST: {}", gets.text, posts.text);
        let failed: Vec<String> = self
            .nginx
            .access_log()
            .lines()
            .filter(|l| l.split_whitespace().nth(1).is_some_and(|s| s.starts_with('5')))
            .map(str::to_owned)
            .collect();
        assert!(gets.failures.is_empty(), "GETs failed: {:?}; nginx logged: {failed:?}", gets.failures);
        assert!(posts.failures.is_empty(), "POSTs failed: {:?}; nginx logged: {failed:?}", posts.failures);
        let total = gets.requests + posts.requests;
        assert!(total >= 1000, "too little load: {} GETs, {} POSTs", gets.requests, posts.requests);
        assert!(posts.requests >= 100, "too few slow POSTs to mean anything: {}", posts.requests);
    }
}

#[tokio::test]
async fn no_request_is_lost_while_the_group_scales_2_6_2_6_2_behind_nginx() {
    let scope = Scope::new("zeroloss");
    let mut served = Served::start(&scope, &["--label", "replicator.max=6"], &["--stop-timeout", "1s"], 2).await;
    let started = Instant::now();
    served.load();
    served.wait_for_traffic(2, 0);
    for target in [6, 2, 6, 2] {
        let from = served.nginx.access_log().len();
        let took = scale(&served.server, &served.name, target).await;
        eprintln!("scaled to {target} in {took:?}");
        // Load on every member before the next step: the members a
        // scale-down takes have requests to lose.
        served.wait_for_traffic(target as usize, from);
    }
    eprintln!("load and scaling took {:?}", started.elapsed());
    served.assert_nothing_lost();
    assert_eq!(scope.containers().len(), 2, "back to the original and one replica");
}

#[tokio::test]
async fn no_request_is_lost_while_the_autoscaler_grows_and_shrinks_the_group_behind_nginx() {
    let scope = Scope::new("autoloss");
    let labels = autoscaled_on_load(&["replicator.max=6", "replicator.autoscale.min=2", "replicator.autoscale.max=6"]);
    let server_args = [&["--stop-timeout", "1s", "--metric-ttl", "60s"][..], &QUICK_AUTOSCALER].concat();
    let mut served = Served::start(&scope, &labels, &server_args, 2).await;
    let name = served.name.clone();
    let started = Instant::now();
    served.load();
    served.wait_for_traffic(2, 0);
    for (load, size) in [(100, 6), (0, 2), (100, 6), (0, 2)] {
        let from = served.nginx.access_log().len();
        let members = member_ids(&group(&served.server, &name).await);
        let samples: Vec<Value> =
            members.iter().map(|id| json!({ "container": id, "metric": "load", "value": load })).collect();
        let r = call(&served.server, Method::POST, "/v1/metrics", Some(Value::Array(samples))).await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
        let pushed = Instant::now();
        served.wait_for_traffic(size, from);
        eprintln!("load {load}: {size} members in nginx after {:?}", pushed.elapsed());
        // Members still draining are listed until they are stopped: up to the
        // drain timeout (10 s), the stop timeout and the removal, on a busy engine.
        eventually_async(&format!("{size} members listed"), Duration::from_secs(60), async || {
            let g = group(&served.server, &name).await;
            ready_if(member_ids(&g).len() == size, g)
        })
        .await;
    }
    eprintln!("load and autoscaling took {:?}", started.elapsed());
    served.assert_nothing_lost();
}

/// A healthcheck on a file the test creates, saying why it fails.
const FILE_CHECK: &str = "test -f /tmp/ok || { echo no /tmp/ok here; exit 1; }";

/// An enabled web container whose healthcheck passes once /tmp/ok exists
/// (checked every second), made healthy here; clones start without the
/// file. Failures within `start_period` leave it `starting`.
fn file_checked_web(scope: &Scope, start_period: &str) -> String {
    let original = scope.run(
        "web",
        &[
            "--label",
            "replicator.enable=true",
            "--health-cmd",
            FILE_CHECK,
            "--health-interval",
            "1s",
            "--health-retries",
            "1",
            "--health-start-period",
            start_period,
            image(),
            "httpd",
            "-f",
            "-p",
            "8080",
        ],
    );
    docker(&["exec", &original, "touch", "/tmp/ok"]);
    wait_healthy(&original);
    original
}

fn unix_now() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64()
}

/// Names of the scope's containers the engine created since `since` (unix seconds).
fn created_since(scope: &Scope, since: f64) -> Vec<String> {
    let (label, since, until) =
        (format!("label={}", scope.label()), format!("{since:.3}"), format!("{:.3}", unix_now()));
    let args = ["events", "--since", &since, "--until", &until, "--filter", &label, "--filter", "type=container"];
    let mut all = args.to_vec();
    all.extend(["--filter", "event=create", "--format", "{{.Actor.Attributes.name}}"]);
    docker(&all).lines().map(str::to_owned).collect()
}

#[tokio::test]
async fn a_clone_whose_healthcheck_fails_under_wait_ready_gets_504_naming_it_and_nothing_is_left() {
    let scope = Scope::new("unhealthy");
    let original = file_checked_web(&scope, "0s");
    let name = scope.name("web");
    let server = scope.server(&[]);

    let since = unix_now();
    let started = Instant::now();
    let path = format!("/v1/containers/{name}/replicas?count=2&wait=ready&timeout=30s");
    let r = call(&server, Method::POST, &path, None).await;
    let took = started.elapsed();
    assert_eq!(r.status, StatusCode::GATEWAY_TIMEOUT, "{}", r.text());
    let error = &r.json()["error"];
    assert_eq!(error["code"], "not_ready", "{error}");
    let message = error["message"].as_str().unwrap();
    let clones = created_since(&scope, since);
    assert_eq!(clones.len(), 2, "the request created two clones: {clones:?}");
    assert!(
        clones.iter().any(|c| message.contains(&format!("replica {c} was not ready"))),
        "the message names a clone ({clones:?}): {message}"
    );
    assert!(message.contains("unhealthy") && message.contains("no /tmp/ok here"), "the health output: {message}");
    assert!(took < Duration::from_secs(20), "it failed on the unhealthy report, not at the 30 s timeout: {took:?}");
    // All or nothing, and done by the time of the answer.
    assert_eq!(scope.containers(), std::slice::from_ref(&original), "only the original remains");
    assert_eq!(member_ids(&group(&server, &name).await), [original]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clone_that_becomes_healthy_late_is_waited_for_and_then_answered_201() {
    let scope = Scope::new("late");
    // A long start period: the clone's failing checks leave it `starting`
    // (not unhealthy) until its file appears.
    let original = file_checked_web(&scope, "60s");
    let name = scope.name("web");
    let server = scope.server(&[]);

    let client = server.client();
    let path = format!("/v1/containers/{name}/replicas?count=1&wait=ready&timeout=30s");
    let request =
        tokio::spawn(async move { client.request(Method::POST, &path, None).await.expect("the server answers") });
    // A clone rolled back between the listing and its inspect is gone, not a failure of the probe.
    let failed_checks = |id: &str| {
        let state: Value = serde_json::from_str(&docker_try(&["inspect", id]).ok()?).ok()?;
        let state = state[0]["State"].clone();
        let log = state["Health"]["Log"].as_array().cloned().unwrap_or_default();
        (state["Running"] == true).then(|| log.iter().filter(|e| e["ExitCode"] != 0).count())
    };
    let clone = eventually("the clone to run and fail its check twice", Duration::from_secs(20), || {
        // An answer already (a failure, rolled back) ends the wait with what it said.
        if request.is_finished() {
            return Some(Err(()));
        }
        let found =
            scope.containers().into_iter().find(|id| *id != original && failed_checks(id).is_some_and(|n| n >= 2));
        found.map(Ok)
    });
    let clone = match clone {
        Ok(clone) => clone,
        Err(()) => {
            panic!("answered before the clone was ever healthy: {:?}", request.await.map(|r| (r.status, r.text())))
        }
    };
    assert_eq!(health(&clone), "starting");
    assert!(!request.is_finished(), "answered while the clone had never been healthy");
    let member = |g: &Value| g["members"].as_array().unwrap().iter().find(|m| m["id"] == clone.as_str()).cloned();
    let waiting = member(&group(&server, &name).await).expect("the clone is a member while it starts");
    assert_eq!(
        (&waiting["state"], &waiting["ready"], &waiting["health"]),
        (&json!("running"), &json!(false), &json!("starting")),
        "{waiting}"
    );

    docker(&["exec", &clone, "touch", "/tmp/ok"]);
    let touched = Instant::now();
    let r = tokio::time::timeout(Duration::from_secs(15), request)
        .await
        .expect("the answer once the clone is healthy")
        .unwrap();
    eprintln!("answered {:?} after the clone's file appeared", touched.elapsed());
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    assert_eq!(r.json()["replicas"][0]["id"], clone.as_str(), "{}", r.text());
    assert_eq!(health(&clone), "healthy");
    assert_eq!(inspect(&clone)["State"]["Running"], true);
    let ready = member(&group(&server, &name).await).unwrap();
    assert_eq!(
        (&ready["state"], &ready["ready"], &ready["health"]),
        (&json!("running"), &json!(true), &json!("healthy")),
        "{ready}"
    );
}

#[tokio::test]
async fn draining_takes_a_member_out_of_nginx_before_its_stop_signal() {
    let scope = Scope::new("draining");
    let network = scope.network("lb");
    let dir = tempfile::tempdir().unwrap();
    let www = www(dir.path());
    let logs = dir.path().join("log");
    std::fs::create_dir(&logs).unwrap();
    let (www_bind, log_bind) = (format!("{}:/www:ro", www.display()), format!("{}:/log", logs.display()));
    // What the member sees, in one file per member (/log/<hostname>, shared
    // with the host): a `hit` line for each request it serves, `TERM` when
    // it receives its stop signal (trapped: it goes on serving until the
    // stop timeout kills it, so a request sent after the signal would show),
    // and, appended by the follower's reload command once nginx has
    // reloaded and its old worker has exited, a `reload` line with the
    // servers of that file. Appends to one file are ordered by the kernel:
    // the order of the lines is the order of the events, without comparing
    // clocks, and without guessing how long nginx or the engine take.
    let serve = "trap 'echo TERM >> /log/$(hostname)' TERM; httpd -f -p 8080 -h /www & p=$!; \
                 while kill -0 $p 2>/dev/null; do wait $p; done";
    let original = scope.run(
        "web",
        &[
            "--label",
            "replicator.enable=true",
            "--network",
            &network,
            "-v",
            &www_bind,
            "-v",
            &log_bind,
            image(),
            "sh",
            "-c",
            serve,
        ],
    );
    let name = scope.name("web");
    // A drain timeout the test would notice: the stop must follow the acknowledgement.
    let server = scope.server(&["--stop-timeout", "2s", "--drain-timeout", "30s"]);
    scale(&server, &name, 3).await;

    let upstream_file = dir.path().join("upstream.conf");
    Upstreams::new(&name, &upstream_file).network(&network).once();
    let nginx = Nginx::start(dir.path(), free_port(), &upstream_file, &name);
    let mark = format!(
        "servers=$(grep -o 'server [0-9.:]*' {file} | tr '\\n' ' ')\nat=$(date +%s.%N)\nfor f in {logs}/*; do echo \"reload $at $servers\" >> \"$f\"; done",
        file = upstream_file.display(),
        logs = logs.display()
    );
    let reload = nginx.synchronous_reload(&mark);
    let _follower = Upstreams::nginx_following(&server, &name, &upstream_file, &network, &reload).follow();
    let load = Wrk::start(dir.path(), "hits", &format!("http://127.0.0.1:{}/cgi-bin/hit", nginx.port), 2, None);
    wait_for_traffic_to_every_member(&nginx, &upstream_file, 3, 0);

    let before = member_ids(&group(&server, &name).await);
    let addresses: std::collections::HashMap<String, String> =
        before.iter().map(|id| (id.clone(), address(id, &network))).collect();
    let took = scale(&server, &name, 2).await;
    let after = member_ids(&group(&server, &name).await);
    let summary = load.finish();
    let victim: Vec<&String> = before.iter().filter(|id| !after.contains(id)).collect();
    assert_eq!(victim.len(), 1, "{before:?} -> {after:?}");
    let victim = victim[0].as_str();
    assert_ne!(victim, original);
    assert!(docker_try(&["inspect", victim]).is_err(), "the removed member is gone");
    assert!(took < Duration::from_secs(15), "the stop waited for the drain timeout, not the acknowledgement: {took:?}");
    eprintln!("scale-down with draining took {took:?}");

    let seen = std::fs::read_to_string(logs.join(&victim[..12])).unwrap();
    let lines: Vec<&str> = seen.lines().collect();
    let victim_address = addresses[victim].as_str();
    // The reload that took it out: the first without it after the last
    // with it (an earlier one may predate its address on the stream).
    let lists_victim = |l: &str| l.starts_with("reload") && l.split_whitespace().any(|a| a == victim_address);
    let last_with = lines.iter().rposition(|l| lists_victim(l)).map_or(0, |i| i + 1);
    let out_of_nginx = lines[last_with..]
        .iter()
        .position(|l| l.starts_with("reload") && !lists_victim(l))
        .map(|i| i + last_with)
        .unwrap_or_else(|| panic!("no reload left {victim_address} out:\n{seen}"));
    // On failure: the member's log with runs of hits counted, what nginx
    // sent it (end times), and the follower's log.
    let mut told = String::new();
    for (i, line) in lines.iter().enumerate() {
        if *line != "hit" || lines.get(i + 1) != Some(&"hit") {
            let run = lines[..=i].iter().rev().take_while(|l| **l == "hit").count();
            told.push_str(&if run > 1 { format!("hit x{run}\n") } else { format!("{line}\n") });
        }
    }
    let sent: Vec<String> =
        nginx.access_log().lines().filter(|l| l.contains(victim_address)).map(str::to_owned).collect();
    let follower_log = std::fs::read_to_string(dir.path().join("follower.log")).unwrap_or_default();
    let context = format!(
        "{victim_address} saw:\n{told}nginx sent it (last 5): {:?}\nfollower:\n{follower_log}",
        &sent[sent.len().saturating_sub(5)..]
    );
    let term = lines.iter().position(|l| *l == "TERM").unwrap_or_else(|| panic!("no stop signal: {context}"));
    assert!(lines[..out_of_nginx].contains(&"hit"), "the member served before it drained: {context}");
    assert!(!lines[out_of_nginx..].contains(&"hit"), "a request reached the member after nginx left it out: {context}");
    assert!(out_of_nginx < term, "the stop signal came before nginx left the member out: {context}");
    assert!(summary.failures.is_empty(), "{}", summary.text);
}

/// The members (ids) in a `--format json` upstreams file.
fn json_servers(file: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(file).unwrap_or_default();
    let doc: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    let servers = doc["servers"].as_array().cloned().unwrap_or_default();
    servers.iter().filter_map(|s| s["id"].as_str().map(str::to_owned)).collect()
}

#[tokio::test]
async fn a_follower_cut_off_mid_stream_resumes_and_misses_no_member_created_or_removed_meanwhile() {
    let scope = Scope::new("cutoff");
    let network = scope.network("lb");
    let (original, name) = scope.web_group(&["--network", &network]);
    let server = scope.server(&["--stop-timeout", "1s", "--drain-timeout", "5s"]);
    scale(&server, &name, 2).await;
    let first_replica = member_ids(&group(&server, &name).await).into_iter().find(|id| *id != original).unwrap();

    // The follower reaches replicator through a proxy the test can cut.
    let proxy = TcpProxy::start(server.port);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("upstream.json");
    let log = dir.path().join("follower.log");
    let through_proxy = format!("https://localhost:{}", proxy.port);
    let _follower =
        Upstreams::new(&name, &out).format("json").network(&network).server(&server, through_proxy).follow();
    let listed = |want: &[&String]| {
        let mut servers = json_servers(&out);
        servers.sort();
        let mut want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
        want.sort();
        (servers == want).then_some(())
    };
    eventually("the follower's first file", Duration::from_secs(10), || listed(&[&original, &first_replica]));

    // Mid-stream, the connection breaks and stays broken while one member
    // leaves and another comes.
    proxy.cut();
    let took = scale(&server, &name, 1).await;
    eprintln!("scale-down while the only follower was cut off: {took:?}");
    scale(&server, &name, 2).await;
    let second_replica = member_ids(&group(&server, &name).await).into_iter().find(|id| *id != original).unwrap();
    assert_ne!(second_replica, first_replica);
    assert!(listed(&[&original, &first_replica]).is_some(), "cut off, yet the file changed: {:?}", json_servers(&out));

    let connections = proxy.passed();
    proxy.reopen();
    eventually("the follower to resume with both changes", Duration::from_secs(10), || {
        listed(&[&original, &second_replica])
    });
    assert!(proxy.passed() > connections, "it reconnected");
    let follower_log = std::fs::read_to_string(&log).unwrap();
    assert!(follower_log.contains("resuming"), "the follower saw its stream break: {follower_log}");
}

/// One server-sent event, its data parsed.
#[derive(Debug)]
struct Sse {
    id: Option<u64>,
    kind: String,
    data: Value,
}

/// Reads `GET /v1/events` as a follower would, frame by frame.
struct EventReader {
    body: hyper::body::Incoming,
    buffer: BytesMut,
}

impl EventReader {
    async fn open(server: &Server, path: &str, last_event_id: Option<u64>) -> Self {
        let headers: Vec<(&str, String)> = last_event_id.iter().map(|id| ("Last-Event-ID", id.to_string())).collect();
        let response = server.client().stream(path, &headers).await.expect("the stream opens");
        assert_eq!(response.status(), StatusCode::OK);
        Self { body: response.into_body(), buffer: BytesMut::new() }
    }

    /// The next event (comments skipped); `None` if none comes by `deadline`.
    async fn next(&mut self, deadline: tokio::time::Instant) -> Option<Sse> {
        loop {
            while let Some(end) = self.buffer.windows(2).position(|w| w == b"\n\n") {
                let block = String::from_utf8_lossy(&self.buffer[..end]).into_owned();
                self.buffer.advance(end + 2);
                let mut event = Sse { id: None, kind: String::new(), data: Value::Null };
                for line in block.lines() {
                    match line.split_once(':').map(|(f, v)| (f, v.strip_prefix(' ').unwrap_or(v))) {
                        Some(("id", v)) => event.id = v.parse().ok(),
                        Some(("event", v)) => event.kind = v.to_owned(),
                        Some(("data", v)) => event.data = serde_json::from_str(v).expect("event data is JSON"),
                        _ => {}
                    }
                }
                if !event.kind.is_empty() {
                    return Some(event);
                }
            }
            let frame = tokio::time::timeout_at(deadline, self.body.frame()).await.ok()??.ok()?;
            if let Ok(data) = frame.into_data() {
                self.buffer.extend_from_slice(&data);
            }
        }
    }
}

#[tokio::test]
async fn the_event_stream_resumes_after_last_event_id_with_what_was_missed_and_no_snapshot() {
    let scope = Scope::new("resume");
    let (original, name) = scope.web_group(&[]);
    let server = scope.server(&[]);
    let path = format!("/v1/events?group={name}");
    let soon = || tokio::time::Instant::now() + Duration::from_secs(10);

    let mut first = EventReader::open(&server, &path, None).await;
    let snapshot = first.next(soon()).await.expect("a first event");
    assert_eq!(snapshot.kind, "snapshot", "{snapshot:?}");
    let members = snapshot.data["groups"][0]["members"].as_array().cloned().unwrap_or_default();
    assert!(members.iter().any(|m| m["id"] == original.as_str() && m["ready"] == true), "{snapshot:?}");
    let last = snapshot.id.expect("the snapshot has an id");
    drop(first);

    let r = call(&server, Method::POST, &format!("/v1/containers/{name}/replicas?wait=ready"), None).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let replica = r.json()["replicas"][0]["id"].as_str().unwrap().to_owned();

    let mut resumed = EventReader::open(&server, &path, Some(last)).await;
    let deadline = soon();
    let mut seen = Vec::new();
    loop {
        let event = resumed.next(deadline).await.unwrap_or_else(|| panic!("no `ready` event for {replica}: {seen:?}"));
        let ready =
            event.kind == "member" && event.data["member"]["id"] == replica.as_str() && event.data["change"] == "ready";
        seen.push(event);
        if ready {
            break;
        }
    }
    assert!(
        seen.iter().all(|e| e.kind != "snapshot"),
        "a resumed stream sends what was missed, not a snapshot: {seen:?}"
    );
    let ids: Vec<u64> = seen.iter().map(|e| e.id.expect("every event has an id")).collect();
    assert!(ids[0] > last && ids.windows(2).all(|w| w[0] < w[1]), "ids after {last}, increasing: {ids:?}");
    let ready = &seen.last().unwrap().data;
    assert_eq!(ready["group"], name.as_str());
    let member = &ready["member"];
    assert_eq!((member["state"].as_str(), member["ready"].as_bool()), (Some("running"), Some(true)), "{member}");
    // Its address may come with `ready` or in a `changed` right after it.
    let mut record = member.clone();
    while record["networks"]["bridge"].as_str().is_none_or(str::is_empty) {
        let event = resumed.next(deadline).await.unwrap_or_else(|| panic!("no address for {replica}: {record}"));
        if event.kind == "member" && event.data["member"]["id"] == replica.as_str() {
            record = event.data["member"].clone();
        }
    }
}
