//! Faults: a slow engine, clients that go away, a killed or stopped
//! replicator, events after an interruption, slow and greedy clients.

use std::io::Read;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use http::{Method, StatusCode};

use crate::common::proxy::EngineProxy;
use crate::common::{call, docker, eventually, eventually_async, group, image, inspect, ready_if, Scope, Server};

/// A web group (its original labelled `labels`) for a replicator that
/// reaches the engine through a proxy the test controls.
struct BehindAProxy {
    scope: Scope,
    /// The original's id.
    source: String,
    /// The group's name.
    name: String,
    proxy: EngineProxy,
}

impl BehindAProxy {
    fn new(test: &str, labels: &[&str]) -> Self {
        let scope = Scope::new(test);
        let (source, name) = scope.web_group(labels);
        Self { scope, source, name, proxy: EngineProxy::start() }
    }

    /// A replicator in this process, behind the proxy.
    fn server(&self, args: &[&str]) -> Server {
        self.scope.server_via(&self.proxy.docker_host(), args)
    }

    /// A `replicator serve` process, behind the proxy.
    fn process_server(&self, args: &[&str]) -> Server {
        self.scope.process_server_via(&self.proxy.docker_host(), args)
    }
}

fn group_size_metric(server: &Server, group: &str) -> Option<u64> {
    let (_, metrics) = server.admin_get("/metrics");
    let prefix = format!("replicator_group_size{{group=\"{group}\"}} ");
    metrics.lines().find_map(|l| l.strip_prefix(&prefix)).and_then(|v| v.trim().parse().ok())
}

#[tokio::test]
async fn a_slow_engine_is_cut_off_by_the_engine_timeout_and_the_clone_rolled_back() {
    let setup = BehindAProxy::new("slowengine", &[]);
    let (scope, name, proxy) = (&setup.scope, &setup.name, &setup.proxy);
    let server = setup.server(&["--engine-timeout", "1s"]);
    proxy.delay_starts(Duration::from_secs(4));

    let r = call(&server, Method::POST, &format!("/v1/containers/{name}/replicas"), None).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text());
    assert!(r.text().contains("timed out"), "{}", r.text());
    // The held-back start may still reach the engine after the rollback; nothing may survive it.
    eventually("the timed-out clone to be gone", Duration::from_secs(15), || {
        (scope.containers().len() == 1).then_some(())
    });
    eventually("the held-back start to reach the engine", Duration::from_secs(10), || {
        (proxy.released_starts() >= 1).then_some(())
    });
    assert_eq!(scope.containers().len(), 1, "nothing came back after the delayed start");
}

// Requests run on worker threads while the test blocks on the docker CLI.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_disconnects_does_not_leave_a_half_made_clone() {
    let setup = BehindAProxy::new("disconnect", &[]);
    let (scope, name, proxy) = (&setup.scope, &setup.name, &setup.proxy);
    let server = setup.server(&[]);
    proxy.delay_starts(Duration::from_secs(2));

    let client = server.client();
    let path = format!("/v1/containers/{name}/replicas");
    let gave_up = tokio::time::timeout(Duration::from_millis(500), client.request(Method::POST, &path, None)).await;
    assert!(gave_up.is_err(), "the client went away before the answer");
    let clone = eventually("the replication to complete anyway", Duration::from_secs(20), || {
        let replicas = scope.replicas_of(name);
        let running = replicas.iter().any(|id| inspect(id)["State"]["Running"] == true);
        (replicas.len() == 1 && running).then(|| replicas[0].clone())
    });
    assert_eq!(inspect(&clone)["Name"], format!("/{name}-2"));
    assert!(scope.containers_in("created").is_empty());
}

// Requests run on worker threads while the test blocks on the docker CLI.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_kill_9_a_restart_removes_clones_that_were_never_started_and_nothing_else() {
    let setup = BehindAProxy::new("kill9", &["--label", "replicator.max=10"]);
    let (scope, name) = (&setup.scope, &setup.name);
    let bystander = docker(&["create", "--label", &scope.label(), image(), "sleep", "1"]);
    let mut server = setup.process_server(&[]);
    setup.proxy.delay_starts(Duration::from_secs(3600));

    let client = server.client();
    let burst: Vec<_> = (0..3)
        .map(|_| {
            let (client, path) = (client.clone(), format!("/v1/containers/{name}/replicas"));
            tokio::spawn(async move { client.request(Method::POST, &path, None).await })
        })
        .collect();
    eventually("three clones created and waiting to start", Duration::from_secs(20), || {
        (scope.containers_in("created").len() == 4).then_some(()) // 3 clones + the bystander
    });
    server.signal("KILL");
    assert!(server.wait_exit(Duration::from_secs(5)).is_some());
    drop(setup.proxy); // the held-back starts never reach the engine
    for request in burst {
        assert!(request.await.unwrap().is_err(), "killed mid-request: no answer");
    }

    let restarted = scope.server(&[]);
    eventually("the reconcile pass", Duration::from_secs(20), || {
        (scope.containers_in("created") == [bystander.clone()]).then_some(())
    });
    let group = group(&restarted, name).await;
    assert_eq!(group["replicas"], 1);
    assert_eq!(group["members"].as_array().unwrap().len(), 1, "{group}");
    assert_eq!(
        inspect(&bystander)["State"]["Status"],
        "created",
        "a container replicator did not create is left alone"
    );
}

// Requests run on worker threads while the test blocks on the docker CLI.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_count_5_request_cut_by_kill_9_at_any_point_leaves_nothing_after_the_restart() {
    // Killed after all five clones were created and 0, 2 or 4 of them started.
    for started in [0usize, 2, 4] {
        let setup = BehindAProxy::new(&format!("kill9-request-{started}"), &["--label", "replicator.max=10"]);
        let (scope, source, name) = (&setup.scope, &setup.source, &setup.name);
        let mut server = setup.process_server(&[]);
        setup.proxy.delay_starts(Duration::from_secs(3600));
        setup.proxy.pass_starts(started);
        let (client, path) = (server.client(), format!("/v1/containers/{name}/replicas?count=5"));
        let request = tokio::spawn(async move { client.request(Method::POST, &path, None).await });
        eventually("the clones to be created and some started", Duration::from_secs(30), || {
            let created = scope.containers_in("created").len();
            let running = scope.containers_in("running").len();
            (created == 5 - started && running == 1 + started).then_some(())
        });
        server.signal("KILL");
        assert!(server.wait_exit(Duration::from_secs(5)).is_some());
        drop(setup.proxy);
        assert!(request.await.unwrap().is_err(), "killed mid-request: no answer");

        let restarted = scope.server(&[]);
        eventually("the reconcile pass to undo the whole request", Duration::from_secs(20), || {
            (scope.containers() == [source.clone()]).then_some(())
        });
        // The inventory sees the removals from the engine's events, a moment after the engine.
        eventually_async("the group back to its original", Duration::from_secs(20), async || {
            let group = group(&restarted, name).await;
            let shape = (group["replicas"].as_u64(), group["members"].as_array().map(Vec::len));
            ready_if(shape == (Some(1), Some(1)), group)
        })
        .await;
    }
}

// Requests run on worker threads while the test blocks on the docker CLI.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_accepting_finishes_the_replication_in_flight_and_exits_0() {
    let setup = BehindAProxy::new("sigterm", &[]);
    let (scope, name) = (&setup.scope, &setup.name);
    let mut server = setup.process_server(&["--shutdown-grace", "30s"]);
    setup.proxy.delay_starts(Duration::from_secs(2));

    let (client, path) = (server.client(), format!("/v1/containers/{name}/replicas"));
    let in_flight = tokio::spawn(async move { client.request(Method::POST, &path, None).await });
    eventually("the clone to be created", Duration::from_secs(10), || {
        (scope.containers_in("created").len() == 1).then_some(())
    });
    server.signal("TERM");
    eventually("new connections to be refused", Duration::from_secs(5), || {
        TcpStream::connect(("127.0.0.1", server.port)).is_err().then_some(())
    });
    let answer = in_flight.await.unwrap().expect("the request in flight is answered");
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text());
    let status = server.wait_exit(Duration::from_secs(20)).expect("replicator exits");
    assert!(status.success(), "{status:?}");
    assert_eq!(scope.containers_in("running").len(), 2);
}

#[tokio::test]
async fn events_reflect_members_that_die_and_the_stream_resumes_after_a_cut() {
    let setup = BehindAProxy::new("events", &["--label", "replicator.max=5"]);
    let (name, proxy) = (&setup.name, &setup.proxy);
    // The autoscaler's own tick is an hour away: only events can refresh the gauge.
    let server = setup.server(&["--autoscale-interval", "1h"]);
    let r = call(&server, Method::POST, &format!("/v1/containers/{name}/replicas?count=2"), None).await;
    assert_eq!(r.status, StatusCode::CREATED);
    let replicas: Vec<String> =
        r.json()["replicas"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap().to_owned()).collect();
    eventually("the gauge to count 3", Duration::from_secs(10), || {
        (group_size_metric(&server, name) == Some(3)).then_some(())
    });

    docker(&["kill", &replicas[0]]);
    eventually("the gauge to drop to 2", Duration::from_secs(5), || {
        (group_size_metric(&server, name) == Some(2)).then_some(())
    });
    let group = group(&server, name).await;
    let killed =
        group["members"].as_array().unwrap().iter().find(|m| m["id"] == replicas[0].as_str()).cloned().unwrap();
    assert_eq!(killed["state"], "exited");

    proxy.cut();
    docker(&["kill", &replicas[1]]);
    eventually("the gauge to drop to 1 after the stream resumed", Duration::from_secs(10), || {
        (group_size_metric(&server, name) == Some(1)).then_some(())
    });
}

#[tokio::test]
async fn slow_clients_are_cut_off_during_the_handshake_and_the_headers() {
    let scope = Scope::new("slowloris");
    let server = scope.server(&["--handshake-timeout", "1s", "--header-timeout", "1s"]);
    let closed_within = |mut stream: TcpStream, limit: Duration| {
        stream.set_read_timeout(Some(limit)).unwrap();
        let started = Instant::now();
        let mut buf = [0u8; 1024];
        let closed = loop {
            match stream.read(&mut buf) {
                Ok(0) => break true,
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break true,
                Err(_) => break false,
            }
        };
        (closed, started.elapsed())
    };
    // Says nothing at all: no TLS handshake.
    let silent = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    let (closed, after) = closed_within(silent, Duration::from_secs(10));
    assert!(closed && after < Duration::from_secs(5), "closed {closed} after {after:?}");

    // Completes TLS, then trickles half a request line.
    let config = replicator::tls::client_config(&replicator::tls::TlsFiles::client_in(&server.certs)).unwrap();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", server.port)).await.unwrap();
    let mut tls = connector.connect("localhost".try_into().unwrap(), tcp).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    tls.write_all(b"GET /v1/groups HTTP/1.1\r\nHost: localhost\r\n").await.unwrap();
    let started = Instant::now();
    let mut buf = vec![0u8; 1024];
    let read = tokio::time::timeout(Duration::from_secs(10), tls.read(&mut buf)).await;
    let answered_or_closed = matches!(read, Ok(Ok(_)) | Ok(Err(_)));
    assert!(answered_or_closed && started.elapsed() < Duration::from_secs(5), "{read:?} after {:?}", started.elapsed());
    if let Ok(Ok(n)) = read {
        let head = String::from_utf8_lossy(&buf[..n]);
        assert!(n == 0 || head.starts_with("HTTP/1.1 408"), "{head}");
    }
}

#[tokio::test]
async fn a_greedy_client_gets_429_and_then_service_again() {
    let scope = Scope::new("ratelimit");
    let server = scope.server(&["--rate-limit", "2/s"]);
    let client = server.client();
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(client.get("/v1/groups").await.unwrap().status);
    }
    assert!(statuses.contains(&StatusCode::TOO_MANY_REQUESTS), "{statuses:?}");
    assert_eq!(statuses[0], StatusCode::OK);
    let limited = client.get("/v1/groups").await.unwrap();
    if limited.status == StatusCode::TOO_MANY_REQUESTS {
        assert_eq!(limited.json()["error"]["code"], "rate_limited");
    }
    // The bucket refills at 2 a second; a refused request takes nothing from it.
    eventually_async("service again once the bucket refilled", Duration::from_secs(5), async || {
        let status = client.get("/v1/groups").await.unwrap().status;
        (status == StatusCode::OK).then_some(()).ok_or(status)
    })
    .await;
}
