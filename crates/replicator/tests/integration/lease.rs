//! Several replicators against one engine, exactly one acting: they share
//! a lease file (`--lease`), the one holding it acts, the others forward
//! commands and their data path's wakes to it (`--peer-certs`), or answer
//! 503 `not_acting` naming it, and serve their own fronts. A leader
//! killed is replaced within the term; a leader frozen past its term and
//! resumed sends nothing that changes the world.

use std::time::{Duration, Instant};

use http::{Method, StatusCode};
use serde_json::json;

use crate::common::redis::{ping, redis_image};
use crate::common::{
    autoscaled_on_load, call, certs, eventually, eventually_async, free_port, group, http_request, image, issue_bundle,
    labels, members_in, poll_until, ready_if, Scope, Server, QUICK_AUTOSCALER,
};

/// Two replicators with the same certificates and one lease (a file by default).
struct Pair {
    servers: Vec<Server>,
    _certs: tempfile::TempDir,
    _lease: tempfile::TempDir,
}

/// With `peers`, each forwards to the leader with a `peer` bundle.
fn pair(scope: &Scope, each: [&[&str]; 2], peers: bool) -> Pair {
    pair_on(scope, None, each, peers)
}

/// The same, on the lease `store` (`swarm:NAME`) when given.
fn pair_on(scope: &Scope, store: Option<&str>, each: [&[&str]; 2], peers: bool) -> Pair {
    let (certs, lease) = (certs(), tempfile::tempdir().unwrap());
    let file = store.map_or_else(|| lease.path().join("lease").to_str().unwrap().to_owned(), str::to_owned);
    let peer = issue_bundle(certs.path(), "peer", lease.path());
    let servers = each
        .iter()
        .map(|more| {
            let mut args = vec!["--lease", file.as_str(), "--control-socket", "none"];
            args.extend(["--advertise", "https://127.0.0.1"]);
            if peers {
                args.extend(["--peer-certs", peer.to_str().unwrap()]);
            }
            args.extend_from_slice(more);
            scope.process_server_with(certs.path(), &args)
        })
        .collect();
    Pair { servers, _certs: certs, _lease: lease }
}

/// Whether `server` says it acts (`replicator_leader 1`).
fn leads(server: &Server) -> bool {
    server.admin_get("/metrics").1.lines().any(|l| l == "replicator_leader 1")
}

/// The index of the one that leads, once exactly one does.
fn leader_of(servers: &[Server], within: Duration) -> usize {
    eventually("exactly one leads", within, || {
        let leading: Vec<usize> = (0..servers.len()).filter(|i| leads(&servers[*i])).collect();
        (leading.len() == 1).then(|| leading[0])
    })
}

/// The engine calls that change the world, as `server` counted them.
fn changes_sent(server: &Server) -> u64 {
    let metrics = server.admin_get("/metrics").1;
    let changing = ["create container", "start container", "stop container", "remove container", "pause container"];
    metrics
        .lines()
        .filter(|l| l.starts_with("replicator_engine_calls_total") && changing.iter().any(|op| l.contains(op)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_replications_sent_to_each_of_two_replicators_make_exactly_the_max_once() {
    let scope = Scope::new("leasemax");
    let (_, name) = scope.web_group(&["--label", "replicator.max=5"]);
    let pair = pair(&scope, [&[], &[]], true);
    let leader = leader_of(&pair.servers, Duration::from_secs(15));
    let path = format!("/v1/containers/{name}/replicas");
    let requests = pair.servers.iter().flat_map(|server| {
        let path = path.clone();
        (0..20).map(move |_| {
            let client = server.client();
            let path = path.clone();
            async move { client.request(Method::POST, &path, None).await.unwrap() }
        })
    });
    let answers = futures_util::future::join_all(requests).await;
    let made = answers.iter().filter(|a| a.status == StatusCode::CREATED).count();
    assert_eq!(made, 4, "the room left, filled once, whichever replicator was asked");
    let refused = answers.iter().filter(|a| a.status == StatusCode::CONFLICT).count();
    assert_eq!(refused, 36, "every other answer is the limit's, from either replicator");
    let follower = &answers[if leader == 0 { 20..40 } else { 0..20 }];
    assert!(follower.iter().all(|a| a.json()["error"]["code"] != "not_acting"), "the follower forwarded all");
    assert_eq!(scope.replicas_of(&name).len(), 4);
    assert_eq!(scope.containers().len(), 5, "nothing made twice or left behind");
    assert_eq!(changes_sent(&pair.servers[1 - leader]), 0, "the follower sent no change to the engine");

    // Only a peer's certificate may name the identity it speaks for.
    let mut forged = http::HeaderMap::new();
    forged.insert("x-replicator-identity", "urn:replicator:operator".parse().unwrap());
    let client = pair.servers[leader].client();
    let answer = client.exchange(Method::POST, &path, &forged, Default::default()).await.unwrap();
    assert_eq!(answer.status(), StatusCode::FORBIDDEN, "{:?}", answer.body());
    assert!(String::from_utf8_lossy(answer.body()).contains("only a peer replicator"), "{:?}", answer.body());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_peer_bundle_a_follower_answers_503_naming_the_leader() {
    let scope = Scope::new("leasenamed");
    let (_, name) = scope.web_group(&[]);
    let pair = pair(&scope, [&[], &[]], false);
    let leader = leader_of(&pair.servers, Duration::from_secs(15));
    let body = json!({"replicas": 2});
    let answer = call(&pair.servers[1 - leader], Method::PUT, &format!("/v1/groups/{name}/replicas"), Some(body)).await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE, "{}", answer.text());
    assert_eq!(answer.json()["error"]["code"], "not_acting", "{}", answer.text());
    let named = format!("https://127.0.0.1:{}", pair.servers[leader].port);
    assert!(answer.text().contains(&named), "names the leader: {}", answer.text());
    assert!(scope.replicas_of(&name).is_empty());
}

/// `--peer-server-name`: a follower checks the leader's certificate against
/// that name, not the host it dials. One the certificate carries
/// (`localhost`) forwards; one it does not is refused at the handshake,
/// and the command is answered 503 `not_acting`, nothing made.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_forwards_only_to_a_leader_whose_certificate_carries_the_peer_server_name() {
    let scope = Scope::new("leasetlsname");
    let (_, name) = scope.web_group(&["--label", "replicator.max=3"]);
    let path = format!("/v1/groups/{name}/replicas");
    for (peer_name, status) in [("replicator.invalid", StatusCode::SERVICE_UNAVAILABLE), ("localhost", StatusCode::OK)]
    {
        let args: &[&str] = &["--peer-server-name", peer_name];
        let pair = pair(&scope, [args, args], true);
        let leader = leader_of(&pair.servers, Duration::from_secs(15));
        let answer = call(&pair.servers[1 - leader], Method::PUT, &path, Some(json!({"replicas": 2}))).await;
        assert_eq!(answer.status, status, "--peer-server-name {peer_name}: {}", answer.text());
        let made = scope.replicas_of(&name).len();
        assert_eq!(made, usize::from(status == StatusCode::OK), "--peer-server-name {peer_name}");
    }
}

/// An app that listens 1 s after it starts.
const LATE: &str = "sleep 1; mkdir -p /www && echo awake > /www/index.html && exec httpd -f -p 8080 -h /www";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_held_by_a_followers_wake_listener_has_the_leader_wake_the_group() {
    let scope = Scope::new("leasewake");
    let network = scope.network("net");
    let wake_network = format!("replicator.wake.network={network}");
    let mut app = labels(&["replicator.enable=true", "replicator.min=0", "replicator.sleep=stop"]);
    app.extend(["--label", "replicator.wake.port=8080", "--label", &wake_network]);
    app.extend(["--network", &network, image(), "sh", "-c", LATE]);
    scope.run("web", &app);
    let name = scope.name("web");
    let wake_ports = [free_port(), free_port()];
    let wakes = wake_ports.map(|p| format!("127.0.0.1:{p}"));
    let pair = pair(&scope, [&["--wake-listen", &wakes[0]], &["--wake-listen", &wakes[1]]], true);
    let leader = leader_of(&pair.servers, Duration::from_secs(15));
    let to_zero = Some(json!({"replicas": 0}));
    let asleep = call(&pair.servers[0], Method::PUT, &format!("/v1/groups/{name}/replicas"), to_zero).await;
    assert_eq!(asleep.status, StatusCode::OK, "a scale to zero, forwarded or not: {}", asleep.text());

    let follower_wake = wake_ports[1 - leader];
    let header = [("X-Replicator-Group", name.as_str())];
    let (status, body) = http_request(follower_wake, "GET", "/", &header, "").expect("an answer");
    assert_eq!((status, body.trim()), (200, "awake"), "held by the follower, woken by the leader");
    let said = pair.servers[1 - leader].logs().iter().any(|l| l.contains("the leader wakes the group"));
    assert!(said, "{:#?}", pair.servers[1 - leader].logs());
    assert_eq!(changes_sent(&pair.servers[1 - leader]), 0, "the follower sent no change to the engine");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_killed_is_replaced_within_five_seconds_while_the_survivors_front_serves_on() {
    let scope = Scope::new("leasekill");
    let (port, network) = (free_port(), scope.network("net"));
    let front = format!("replicator.front.port={port}");
    let on = format!("replicator.front.network={network}");
    let mut cache = labels(&["replicator.enable=true", "replicator.max=4", "replicator.front.target=6379"]);
    cache.extend(["--label", &front, "--label", &on, "--label", "replicator.ready=tcp:6379,period=500ms"]);
    cache.extend(["--network", &network, redis_image()]);
    scope.run("cache", &cache);
    let (_, web) = scope.web_group(&["--label", "replicator.min=0"]);
    scope.web("auto", &autoscaled_on_load(&["replicator.max=5", "replicator.autoscale.max=3"]));
    let auto = scope.name("auto");
    let ports = port.to_string();
    // One host, two front addresses: each replicator's front on its own.
    let fronts = |address| {
        [&["--front-ports", &ports, "--front-address", address, "--metric-ttl", "60s"][..], &QUICK_AUTOSCALER[..]]
            .concat()
    };
    let mut pair = pair(&scope, [&fronts("127.0.0.1"), &fronts("127.0.0.2")], true);
    let leader = leader_of(&pair.servers, Duration::from_secs(15));
    let (survivor, host) = (1 - leader, ["127.0.0.1", "127.0.0.2"][1 - leader]);
    eventually("the survivor's front answers", Duration::from_secs(30), || ping(host, port).ok());
    // The leader's autoscaler drives a group, on load pushed to the other (forwarded).
    let load = |value: u32| Some(json!({ "container": auto, "metric": "load", "value": value }));
    let pushed = call(&pair.servers[survivor], Method::POST, "/v1/metrics", load(100)).await;
    assert_eq!(pushed.status, StatusCode::ACCEPTED, "{}", pushed.text());
    eventually_async("the autoscaler grows the group to 3", Duration::from_secs(30), async || {
        let g = group(&pair.servers[survivor], &auto).await;
        ready_if(g["replicas"] == 3, g)
    })
    .await;
    let asleep =
        call(&pair.servers[leader], Method::PUT, &format!("/v1/groups/{web}/replicas"), Some(json!({"replicas": 0})))
            .await;
    assert_eq!(asleep.status, StatusCode::OK, "{}", asleep.text());

    pair.servers[leader].signal("KILL");
    let killed = Instant::now();
    let mut failures = Vec::new();
    let mut served = 0;
    while !leads(&pair.servers[survivor]) {
        assert!(killed.elapsed() < Duration::from_secs(5), "no new leader within 5 s");
        match ping(host, port) {
            Ok(()) => served += 1,
            Err(e) => failures.push(e),
        }
    }
    let took = killed.elapsed();
    println!("a new leader {took:?} after the kill; {served} new connections served meanwhile");
    assert!(failures.is_empty() && served > 0, "the survivor's front: {served} served, failed: {failures:?}");
    pair.servers[leader].wait_exit(Duration::from_secs(5)).expect("killed");

    let new = &pair.servers[survivor];
    let woken = call(new, Method::POST, &format!("/v1/groups/{web}/wake"), None).await;
    assert_eq!((woken.status, woken.json()["asleep"].clone()), (StatusCode::OK, json!(false)), "{}", woken.text());
    let body = json!({"replicas": 2, "wait": "ready", "timeout": "60s"});
    let scaled = call(new, Method::PUT, &format!("/v1/groups/{web}/replicas"), Some(body)).await;
    assert_eq!(scaled.status, StatusCode::OK, "{}", scaled.text());
    assert_eq!(scope.replicas_of(&web).len(), 1);
    // The new leader's autoscaler takes the group over: idle now, it shrinks.
    let running = members_in(&group(new, &auto).await, "running");
    let idle: Vec<_> = running.iter().map(|id| json!({ "container": id, "metric": "load", "value": 0 })).collect();
    assert_eq!(
        call(new, Method::POST, "/v1/metrics", Some(serde_json::Value::Array(idle))).await.status,
        StatusCode::ACCEPTED
    );
    eventually_async("the new leader's autoscaler shrinks the group to 1", Duration::from_secs(30), async || {
        let g = group(new, &auto).await;
        ready_if(g["replicas"] == 1, g)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_frozen_past_its_term_and_resumed_sends_nothing_that_changes_the_world() {
    let scope = Scope::new("leasefreeze");
    let (_, name) = scope.web_group(&["--label", "replicator.max=5"]);
    // No peer bundle: the resumed one must not pass the command on either.
    let pair = pair(&scope, [&[], &[]], false);
    let frozen = leader_of(&pair.servers, Duration::from_secs(15));
    let other = 1 - frozen;
    let sent_before = changes_sent(&pair.servers[frozen]);

    pair.servers[frozen].signal("STOP");
    let resumed = scopeguard_cont(&pair.servers[frozen]);
    eventually("the other takes over", Duration::from_secs(15), || leads(&pair.servers[other]).then_some(()));
    // Sent while it is frozen: the kernel queues it; it is read once resumed.
    let client = pair.servers[frozen].client();
    let path = format!("/v1/containers/{name}/replicas");
    let asked = tokio::spawn(async move { client.request(Method::POST, &path, None).await });
    let port = pair.servers[frozen].port;
    eventually("the request's connection queued by the kernel", Duration::from_secs(10), || {
        let out = std::process::Command::new("ss").args(["-Htn", "state", "established"]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).contains(&format!(":{port} ")).then_some(())
    });
    drop(resumed);
    let answer = tokio::time::timeout(Duration::from_secs(30), asked).await.expect("answered").unwrap().unwrap();
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE, "{}", answer.text());
    assert_eq!(answer.json()["error"]["code"], "not_acting", "{}", answer.text());
    let stepped_down = poll_until(Duration::from_secs(10), || (!leads(&pair.servers[frozen])).then_some(()));
    assert!(stepped_down.is_ok(), "the resumed one follows");
    assert_eq!(changes_sent(&pair.servers[frozen]), sent_before, "nothing sent after the freeze");
    assert!(scope.replicas_of(&name).is_empty(), "nothing made");
    assert!(leads(&pair.servers[other]));
}

/// Continues a stopped server when dropped, even when the test fails.
fn scopeguard_cont(server: &Server) -> impl Drop + '_ {
    struct Cont<'a>(&'a Server);
    impl Drop for Cont<'_> {
        fn drop(&mut self) {
            self.0.signal("CONT");
        }
    }
    Cont(server)
}

/// Removes the lease's config object, even when the test fails.
struct SwarmConfig(String);

impl Drop for SwarmConfig {
    fn drop(&mut self) {
        let _ = crate::common::docker_try(&["config", "rm", &self.0]);
    }
}

/// On the swarm `swarm::replicating_a_task_scales_its_service` has the
/// engine join (each join and leave is a moment the other tests running
/// beside see the engine half in a swarm, so the swarm tests share one).
pub(crate) async fn on_a_swarm_the_lease_is_a_config_of_its_raft_store_and_a_killed_leader_is_replaced_within_five_seconds(
) {
    let scope = Scope::new("leaseswarm");
    let config = SwarmConfig(scope.name("lease"));
    let service = scope.service(
        "svc",
        &["--label", "replicator.enable=true", "--label", "replicator.max=5", image(), "sleep", "100000"],
    );
    let task = eventually("a running task", Duration::from_secs(60), || {
        let filter = format!("label=com.docker.swarm.service.name={service}");
        crate::common::docker(&["ps", "-q", "--no-trunc", "--filter", &filter]).lines().next().map(str::to_owned)
    });
    let mut pair = pair_on(&scope, Some(&format!("swarm:{}", config.0)), [&[], &[]], true);
    let leader = leader_of(&pair.servers, Duration::from_secs(15));
    let holder = crate::common::docker(&[
        "config",
        "inspect",
        "-f",
        "{{index .Spec.Labels \"replicator.lease.holder\"}}",
        &config.0,
    ]);
    assert!(!holder.is_empty(), "the record is the config's labels");

    let path = format!("/v1/containers/{task}/replicas");
    let requests = pair.servers.iter().flat_map(|server| {
        let path = path.clone();
        (0..20).map(move |_| {
            let (client, path) = (server.client(), path.clone());
            async move { client.request(Method::POST, &path, None).await.unwrap() }
        })
    });
    let answers = futures_util::future::join_all(requests).await;
    let made = answers.iter().filter(|a| a.status.is_success()).count();
    assert_eq!(made, 4, "{:?}", answers.iter().map(|a| a.status).collect::<Vec<_>>());
    let replicas = crate::common::docker(&["service", "inspect", "-f", "{{.Spec.Mode.Replicated.Replicas}}", &service]);
    assert_eq!(replicas, "5", "the service scaled to its max, once per change");

    pair.servers[leader].signal("KILL");
    let killed = Instant::now();
    while !leads(&pair.servers[1 - leader]) {
        assert!(killed.elapsed() < Duration::from_secs(5), "no new leader within 5 s");
        std::thread::sleep(Duration::from_millis(50));
    }
    println!("on the swarm: a new leader {:?} after the kill", killed.elapsed());
    pair.servers[leader].wait_exit(Duration::from_secs(5)).expect("killed");
    let survivor = &pair.servers[1 - leader];
    let body = json!({"replicas": 2});
    let scaled = call(survivor, Method::PUT, &format!("/v1/groups/{service}/replicas"), Some(body)).await;
    assert_eq!(scaled.status, StatusCode::OK, "{}", scaled.text());
    let replicas = crate::common::docker(&["service", "inspect", "-f", "{{.Spec.Mode.Replicated.Replicas}}", &service]);
    assert_eq!(replicas, "2", "the new leader scales");
}
