//! replicator's own TCP front, against a real non-HTTP server and its own
//! clients: Debian's `redis-server` in an image imported here, driven by
//! `redis-cli` and `redis-benchmark` on the host. A group asleep wakes on a
//! connection, scaling under load loses nothing, scale-downs wait for a
//! leaving member's connections, the autoscaler scales on them, and a claim
//! outside `--front-ports` opens nothing.

use std::net::TcpStream;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::{Method, StatusCode};
use serde_json::{json, Value};

use crate::common::redis::{command, redis_image};
use crate::common::{
    call, eventually, eventually_async, free_port, group, labels, ready_if, Scope, Server, QUICK_AUTOSCALER,
};

/// A redis group behind a front on `port` (on 127.0.0.1), on its own network,
/// probed ready once Redis accepts; `extra` labels besides.
fn redis_group(scope: &Scope, port: u16, extra: &[&str]) -> String {
    let network = scope.network("net");
    let front = format!("replicator.front.port={port}");
    let on = format!("replicator.front.network={network}");
    let mut args = labels(&["replicator.enable=true", "replicator.max=8", "replicator.front.target=6379"]);
    args.extend(["--label", &front, "--label", &on, "--label", "replicator.ready=tcp:6379,period=500ms"]);
    for label in extra {
        args.extend(["--label", label]);
    }
    args.extend(["--network", &network, redis_image()]);
    scope.run("cache", &args);
    scope.name("cache")
}

/// A server whose fronts may claim `ports` only, listening on 127.0.0.1.
fn front_server(scope: &Scope, ports: &str, more: &[&str]) -> Server {
    let base = ["--front-ports", ports, "--front-address", "127.0.0.1", "--stop-timeout", "1s"];
    scope.server(&[&base[..], more].concat())
}

fn connect(port: u16) -> TcpStream {
    let stream = TcpStream::connect(("127.0.0.1", port)).expect("the front accepts");
    stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    stream
}

/// `redis-cli -p PORT ARGS…`: what it printed, or why it failed.
fn redis_cli(port: u16, args: &[&str]) -> Result<String, String> {
    let out = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .output()
        .map_err(|e| format!("redis-cli: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    match out.status.success() && !text.starts_with("Could not connect") && !text.starts_with("Error") {
        true => Ok(text),
        false => Err(format!("{text} {}", String::from_utf8_lossy(&out.stderr))),
    }
}

async fn scale(server: &Server, name: &str, replicas: u32) -> Value {
    let body = json!({"replicas": replicas, "wait": "ready", "timeout": "60s"});
    let r = call(server, Method::PUT, &format!("/v1/groups/{name}/replicas"), Some(body)).await;
    assert_eq!(r.status, StatusCode::OK, "scale {name} to {replicas}: {}", r.text());
    r.json()
}

async fn a_group_asleep_at_zero_answers_the_first_command_of_a_new_connection(mode: &str) {
    let scope = Scope::new(&format!("frontwake-{mode}"));
    let port = free_port();
    let sleep = format!("replicator.sleep={mode}");
    let name = redis_group(&scope, port, &["replicator.min=0", &sleep]);
    let server = front_server(&scope, &port.to_string(), &[]);
    eventually("the front open", Duration::from_secs(30), || redis_cli(port, &["PING"]).ok().filter(|p| p == "PONG"));
    let g = scale(&server, &name, 0).await;
    assert_eq!(g["asleep"], true, "{g}");

    let answer = tokio::task::spawn_blocking(move || redis_cli(port, &["SET", "greeting", "hello"])).await.unwrap();
    assert_eq!(answer, Ok("OK".to_owned()), "the first command of the first connection, no retry");
    assert_eq!(group(&server, &name).await["asleep"], false, "woken by the connection");
    let metrics = server.admin_get("/metrics").1;
    assert!(metrics.contains(&format!("replicator_front_connections_total{{group=\"{name}\",event=\"held\"}}")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_group_at_zero_wakes_on_a_connection_and_answers_its_first_command() {
    a_group_asleep_at_zero_answers_the_first_command_of_a_new_connection("pause").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_group_at_zero_wakes_on_a_connection_and_answers_its_first_command() {
    a_group_asleep_at_zero_answers_the_first_command_of_a_new_connection("stop").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_benchmark_through_the_front_sees_no_error_while_the_group_scales_2_6_2_6_2() {
    let scope = Scope::new("frontbench");
    let port = free_port();
    let name = redis_group(&scope, port, &[]);
    let server = front_server(&scope, &port.to_string(), &[]);
    scale(&server, &name, 2).await;

    // Runs of redis-benchmark, a new connection per request, until the scaling is done.
    let done = Arc::new(AtomicBool::new(false));
    let bench = std::thread::spawn({
        let done = done.clone();
        move || {
            let mut runs = Vec::new();
            while !done.load(Ordering::Relaxed) || runs.is_empty() {
                let out = Command::new("redis-benchmark")
                    .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-k", "0", "-c", "8", "-n", "2000"])
                    .args(["-t", "set,get", "-q"])
                    .output()
                    .expect("redis-benchmark runs");
                let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
                runs.push((out.status.success(), said));
            }
            runs
        }
    });
    for to in [6, 2, 6, 2] {
        scale(&server, &name, to).await;
    }
    done.store(true, Ordering::Relaxed);
    let runs = tokio::task::spawn_blocking(move || bench.join().unwrap()).await.unwrap();
    let failed: Vec<&(bool, String)> =
        runs.iter().filter(|(ok, said)| !ok || said.contains("Error") || said.contains("error")).collect();
    assert!(failed.is_empty(), "{} of {} runs saw errors: {failed:?}", failed.len(), runs.len());
    assert!(runs.iter().all(|(_, said)| said.contains("SET:") && said.contains("GET:")), "{runs:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scale_down_waits_for_the_leaving_members_connection_while_new_ones_go_to_the_others() {
    let scope = Scope::new("frontdrain");
    let port = free_port();
    let name = redis_group(&scope, port, &[]);
    let server = front_server(&scope, &port.to_string(), &["--drain-timeout", "120s"]);
    scale(&server, &name, 2).await;
    // One connection each: the least busy member gets the next one.
    let mut on_original = connect(port);
    assert_eq!(command(&mut on_original, "PING").unwrap(), "+PONG");
    let mut on_replica = connect(port);
    assert_eq!(command(&mut on_replica, "SET where leaving").unwrap(), "+OK");

    // Equal connections: the newest (the replica) leaves, and waits for its one.
    let scaling = tokio::spawn({
        let (client, name) = (server.client(), name.clone());
        async move {
            client.request(Method::PUT, &format!("/v1/groups/{name}/replicas"), Some(&json!({"replicas": 1}))).await
        }
    });
    eventually_async("the replica draining", Duration::from_secs(30), async || {
        let g = group(&server, &name).await;
        let draining = g["members"].as_array().unwrap().iter().any(|m| m["state"] == "draining");
        ready_if(draining, g)
    })
    .await;
    for _ in 0..5 {
        let mut fresh = connect(port);
        assert_eq!(command(&mut fresh, "GET where").unwrap(), "$-1", "a new connection reaches the staying member");
    }
    assert_eq!(command(&mut on_replica, "GET where").unwrap(), "leaving", "the open one still works");
    assert!(!scaling.is_finished(), "the scale-down waits while its connection is open");

    drop(on_replica);
    let answer = tokio::time::timeout(Duration::from_secs(60), scaling).await.expect("done once it closed");
    assert_eq!(answer.unwrap().unwrap().status, StatusCode::OK);
    assert_eq!(group(&server, &name).await["replicas"], 1);
    assert_eq!(command(&mut on_original, "PING").unwrap(), "+PONG", "the staying member's connection is untouched");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scale_down_waits_no_longer_than_the_drain_timeout_for_a_connection_that_stays() {
    let scope = Scope::new("frontdrainmax");
    let port = free_port();
    let name = redis_group(&scope, port, &[]);
    let server = front_server(&scope, &port.to_string(), &["--drain-timeout", "2s"]);
    scale(&server, &name, 2).await;
    let mut first = connect(port);
    assert_eq!(command(&mut first, "PING").unwrap(), "+PONG");
    let mut second = connect(port);
    assert_eq!(command(&mut second, "PING").unwrap(), "+PONG");

    let scaled = tokio::time::timeout(Duration::from_secs(60), scale(&server, &name, 1)).await;
    assert_eq!(scaled.expect("the scale-down ends at the drain timeout")["replicas"], 1);
    // The replica's connection was cut when it stopped; the original's lives on.
    let cut = command(&mut second, "PING");
    assert!(cut.as_deref().map_or(true, str::is_empty), "the connection to the stopped member ended: {cut:?}");
    assert_eq!(command(&mut first, "PING").unwrap(), "+PONG");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_autoscaler_grows_on_open_connections_in_one_burst_and_sleeps_once_they_are_gone() {
    let scope = Scope::new("frontscale");
    let port = free_port();
    let name = redis_group(
        &scope,
        port,
        &[
            "replicator.min=0",
            "replicator.autoscale.metric=connections",
            "replicator.autoscale.target=2",
            "replicator.autoscale.min=0",
            "replicator.autoscale.step-up=1",
        ],
    );
    let server = front_server(&scope, &port.to_string(), &QUICK_AUTOSCALER);
    eventually("the front open", Duration::from_secs(30), || redis_cli(port, &["PING"]).ok().filter(|p| p == "PONG"));

    // Eight connections on one member: four times the target of 2.
    let mut open: Vec<TcpStream> = (0..8).map(|_| connect(port)).collect();
    for c in &mut open {
        assert_eq!(command(c, "PING").unwrap(), "+PONG");
    }
    // A group at rest may have gone to sleep (and woken) before the connections
    // were counted: the growth of the awake group is what counts.
    let grew =
        |d: &&Value| d["applied"] == true && d["from"].as_u64() >= Some(1) && d["to"].as_u64() > d["from"].as_u64();
    let decisions = eventually_async("the group grown on its connections", Duration::from_secs(30), async || {
        let d = call(&server, Method::GET, &format!("/v1/groups/{name}/decisions"), None).await.json();
        let grown = d.as_array().unwrap().iter().any(|x| grew(&x));
        ready_if(grown, d)
    })
    .await;
    let first_growth = decisions.as_array().unwrap().iter().find(grew).unwrap().clone();
    assert_eq!((first_growth["from"].as_u64(), first_growth["to"].as_u64()), (Some(1), Some(4)), "{first_growth}");
    assert!(first_growth["reason"].as_str().unwrap().contains("burst"), "one step past step-up=1: {first_growth}");

    drop(open);
    eventually_async("the group asleep once no connection is open", Duration::from_secs(60), async || {
        let g = group(&server, &name).await;
        ready_if(g["asleep"] == true, g)
    })
    .await;
    let woken = tokio::task::spawn_blocking(move || redis_cli(port, &["PING"])).await.unwrap();
    assert_eq!(woken, Ok("PONG".to_owned()), "a connection wakes it again");
}

#[tokio::test]
async fn a_claim_outside_front_ports_or_of_a_port_claimed_twice_is_refused_by_name_and_nothing_listens() {
    let scope = Scope::new("frontclaim");
    let (outside, shared) = (free_port(), free_port());
    let network = scope.network("net");
    let run = |suffix: &str, port: u16| {
        let label = format!("replicator.front.port={port}");
        let mut args = labels(&["replicator.enable=true"]);
        args.extend(["--label", &label, "--network", &network, redis_image()]);
        scope.run(suffix, &args);
        scope.name(suffix)
    };
    let stray = run("stray", outside);
    let (one, two) = (run("one", shared), run("two", shared));
    let server = front_server(&scope, &shared.to_string(), &[]);

    let g = group(&server, &stray).await;
    let error = g["error"].as_str().unwrap_or_default();
    assert!(error.contains("replicator.front.port") && error.contains("outside"), "{g}");
    for name in [&one, &two] {
        let g = group(&server, name).await;
        assert!(g["error"].as_str().unwrap_or_default().contains("claimed by another group too"), "{g}");
    }
    for port in [outside, shared] {
        assert!(TcpStream::connect(("127.0.0.1", port)).is_err(), "nothing listens on {port}");
    }
    let r = call(&server, Method::PUT, &format!("/v1/groups/{stray}/replicas"), Some(json!({"replicas": 2}))).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "the group refuses changes: {}", r.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_front_hold_are_closed_at_once_while_the_held_one_waits_for_a_ready_member() {
    use std::io::{Read, Write};
    let scope = Scope::new("fronthold");
    let port = free_port();
    let network = scope.network("net");
    let front = format!("replicator.front.port={port}");
    let on = format!("replicator.front.network={network}");
    // Ready (by its probe) only once /tmp/go exists.
    let serve =
        "while [ ! -e /tmp/go ]; do sleep 0.05; done; echo held > /tmp/index.html; exec httpd -f -p 8080 -h /tmp";
    let mut args = labels(&["replicator.enable=true", "replicator.front.target=8080", "replicator.ready=tcp:8080"]);
    args.extend(["--label", &front, "--label", &on, "--network", &network, crate::common::image(), "sh", "-c", serve]);
    let original = scope.run("web", &args);
    let server = front_server(&scope, &port.to_string(), &["--front-hold", "1"]);
    let name = scope.name("web");
    eventually_async("the member running, not ready", Duration::from_secs(30), async || {
        let g = group(&server, &name).await;
        ready_if(g["members"][0]["state"] == "running" && g["members"][0]["ready"] == false, g)
    })
    .await;
    let metrics = || server.admin_get("/metrics").1;
    let front_count = |text: &str, event: &str| {
        let series = format!("replicator_front_connections_total{{group=\"{name}\",event=\"{event}\"}} ");
        text.lines().find_map(|l| l.strip_prefix(series.as_str())).and_then(|n| n.trim().parse::<u64>().ok())
    };

    let mut held =
        eventually("the front open", Duration::from_secs(30), || TcpStream::connect(("127.0.0.1", port)).ok());
    held.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    eventually("the first connection held", Duration::from_secs(10), || {
        (front_count(&metrics(), "held") == Some(1)).then_some(())
    });
    let mut beyond = connect(port);
    let mut nothing = Vec::new();
    let closed = beyond.read_to_end(&mut nothing);
    assert!(closed.as_ref().map_or(true, |n| *n == 0), "closed at once, answered nothing: {closed:?}");
    eventually("the second refused", Duration::from_secs(10), || {
        (front_count(&metrics(), "refused") == Some(1)).then_some(())
    });

    scope.docker(&["exec", &original, "touch", "/tmp/go"]);
    let mut answer = String::new();
    held.read_to_string(&mut answer).unwrap();
    assert!(
        answer.starts_with("HTTP/1.") && answer.contains("held"),
        "the held request reached the member whole: {answer}"
    );
}

/// nginx's own binary in an image of its own (see `common::imported`), run
/// with the configuration file mounted at `/nginx.conf`.
fn nginx_image() -> &'static str {
    static BUILT: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    let tag = "replicator-test/nginx:2";
    let command = ["/usr/sbin/nginx", "-c", "/nginx.conf"];
    BUILT.get_or_init(|| crate::common::imported::binary_image(tag, "/usr/sbin/nginx", &command, "nginx-light"));
    tag
}

/// A member that reads the PROXY protocol: it answers, and logs, the client's address as the header gave it.
const PROXY_READING_NGINX: &str = "user root; daemon off; worker_processes 1; pid /tmp/nginx.pid; error_log stderr;
events { worker_connections 64; }
http {
  client_body_temp_path /tmp/b; proxy_temp_path /tmp/p; fastcgi_temp_path /tmp/f; uwsgi_temp_path /tmp/u; scgi_temp_path /tmp/s;
  log_format client 'client $proxy_protocol_addr:$proxy_protocol_port';
  access_log /dev/stdout client;
  server { listen 8080 proxy_protocol; location / { return 200 \"client $proxy_protocol_addr:$proxy_protocol_port\\n\"; } }
}
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_behind_the_front_reads_the_clients_own_address_and_port_from_the_proxy_header() {
    let scope = Scope::new("frontproxy");
    let (port, network) = (free_port(), scope.network("net"));
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("nginx.conf");
    std::fs::write(&conf, PROXY_READING_NGINX).unwrap();
    let mount = format!("{}:/nginx.conf:ro", conf.display());
    let (front, on) = (format!("replicator.front.port={port}"), format!("replicator.front.network={network}"));
    let mut args =
        labels(&["replicator.enable=true", "replicator.front.target=8080", "replicator.front.proxy-protocol=true"]);
    args.extend(["--label", &front, "--label", &on, "--label", "replicator.ready=tcp:8080,period=500ms"]);
    args.extend(["-v", &mount, "--network", &network, nginx_image()]);
    let member = scope.run("proxied", &args);
    let _server = front_server(&scope, &port.to_string(), &[]);

    let (said, client) = eventually("nginx answers through the front", Duration::from_secs(30), || {
        use std::io::{Read, Write};
        let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let client = stream.local_addr().unwrap();
        stream.write_all(b"GET / HTTP/1.0\r\n\r\n").ok()?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer).ok()?;
        answer.starts_with("HTTP/1.1 200").then_some((answer, client))
    });
    let own = format!("client {}:{}", client.ip(), client.port());
    assert!(said.contains(&own), "nginx saw the client's own address and port: {said}");
    let logged = eventually("nginx's log line", Duration::from_secs(10), || {
        let logs = scope.docker(&["logs", &member]);
        logs.contains(&own).then_some(logs)
    });
    assert!(logged.contains(&own));
}
