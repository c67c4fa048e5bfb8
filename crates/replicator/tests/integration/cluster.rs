//! A real two-node swarm (common/two_node_swarm.rs): the host engine as manager, a
//! second dockerd in a network namespace as worker.

use std::collections::BTreeSet;
use std::fmt::{self, Display};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use replicator::cli::remote::ApiClient;
use replicator_client::client_config;
use serde_json::Value;

use crate::common::redis::{ping, redis_image, Load};
use crate::common::two_node_swarm::{TwoNodeSwarm, MANAGER_ADDR, WORKER_ADDR};
use crate::common::{
    certs_for, docker, docker_try, eventually, eventually_async, free_port, image, images, try_group, Look, Owned,
    Scope, SWARM,
};

#[tokio::test]
async fn a_two_node_swarm_spreads_a_service_over_both_nodes_and_tears_down() {
    let _turn = SWARM.write().await;
    let scope = Scope::new("cluster");
    let swarm = TwoNodeSwarm::start();
    let namespace = {
        let listed = std::process::Command::new("ip").args(["netns", "list"]).output().unwrap();
        let listed = String::from_utf8_lossy(&listed.stdout).into_owned();
        let ours: Vec<String> = listed
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .filter(|n| n.starts_with(&format!("rs2-{}-", std::process::id())))
            .map(str::to_owned)
            .collect();
        assert_eq!(ours.len(), 1, "one namespace of this run: {listed}");
        ours[0].clone()
    };
    swarm.worker.load(image());
    assert_ne!(swarm.manager_node_id(), swarm.worker_node_id());

    let label = scope.label();
    let service = scope.service("spread", &["--replicas", "4", image(), "sleep", "100000"]);
    let nodes = eventually("4 running tasks on both nodes", Duration::from_secs(60), || {
        let running = running_on(&service);
        let nodes: BTreeSet<String> = running.iter().cloned().collect();
        (running.len() == 4 && nodes.len() == 2).then_some(nodes)
    });
    let expected: BTreeSet<String> =
        [swarm.manager_node_id().to_owned(), swarm.worker_node_id().to_owned()].into_iter().collect();
    assert_eq!(nodes, expected);
    let on_worker = swarm.worker.docker(&["ps", "-q", "--filter", &format!("label={label}")]);
    assert!(!on_worker.is_empty(), "the worker runs some of the service's tasks");

    drop(swarm);
    assert_eq!(docker(&["info", "--format", "{{.Swarm.LocalNodeState}}"]), "inactive");
    let listed = std::process::Command::new("ip").args(["netns", "list"]).output().unwrap();
    let listed = String::from_utf8_lossy(&listed.stdout).into_owned();
    assert!(!listed.lines().any(|l| l.split_whitespace().next() == Some(namespace.as_str())), "{listed}");
    let link = std::process::Command::new("ip").args(["link", "show", &format!("h-{namespace}")]).output().unwrap();
    assert!(!link.status.success(), "the host end of the veth pair is gone");
    assert_eq!(docker(&["ps", "-aq", "--filter", "label=com.docker.swarm.task.id"]), "", "no task container is left");
    assert!(docker_try(&["network", "inspect", "ingress"]).is_err(), "the swarm's ingress network is gone");
}

/// A probe's last state, followed (once shown) by the stack's replicator log.
struct WithStackLog<S>(S);

impl<S: Display> Display for WithStackLog<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Shown in a failing test's message: nothing here may panic.
        let services = docker_try(&["service", "ls", "--format", "{{.Name}}"]).unwrap_or_default();
        let server = services.lines().find(|s| s.ends_with("_replicator")).unwrap_or_default();
        let logs = std::process::Command::new("docker").args(["service", "logs", "--tail", "100", server]).output();
        let logs = logs.map(|o| String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr));
        write!(f, "{}; replicator's log:\n{}", self.0, logs.unwrap_or_default())
    }
}

/// `eventually_async`, failing the test with the stack's replicator log.
async fn until<L: Look>(what: &str, timeout: Duration, mut probe: impl AsyncFnMut() -> L) -> L::Value {
    eventually_async(what, timeout, async || probe().await.seen().map_err(WithStackLog)).await
}

fn desired(service: &str) -> u64 {
    docker(&["service", "inspect", "-f", "{{.Spec.Mode.Replicated.Replicas}}", service]).parse().unwrap()
}

/// Whether the service asks for `want` replicas; if not, how many it does.
fn desired_is(service: &str, want: u64) -> Result<(), String> {
    let desired = desired(service);
    (desired == want).then_some(()).ok_or_else(|| format!("{desired} replicas desired"))
}

/// Node ids of the service's running tasks.
fn running_on(service: &str) -> Vec<String> {
    let tasks = docker(&["service", "ps", "-q", "--filter", "desired-state=running", service]);
    let ids: Vec<&str> = tasks.lines().collect();
    if ids.is_empty() {
        return Vec::new();
    }
    let states = docker_try(&[&["inspect", "--format", "{{.NodeID}} {{.Status.State}}"], ids.as_slice()].concat())
        .unwrap_or_default();
    states.lines().filter_map(|l| l.strip_suffix(" running")).map(str::to_owned).collect()
}

/// `(node id, state, reporting)` of each node the group lists.
fn nodes(group: &Value) -> Vec<(String, String, bool)> {
    let nodes = group["nodes"].as_array().cloned().unwrap_or_default();
    nodes
        .iter()
        .map(|n| {
            let text = |k: &str| n[k].as_str().unwrap_or_default().to_owned();
            (text("id"), text("state"), n["reporting"].as_bool().unwrap_or(false))
        })
        .collect()
}

/// The folder `REPLICATOR_CERTS` names for deploy/stack.yml: the CA, the
/// server's pair (valid for `replicator`) and the peer bundle in `peer/`.
fn stack_certs() -> tempfile::TempDir {
    let certs = certs_for(&["replicator"]);
    crate::common::issue_bundle(certs.path(), "peer", certs.path());
    certs
}

/// deploy/stack.yml's settings for a kernel without IPVS (no routing mesh,
/// no virtual IP): the API published in host mode on each manager running
/// a server, found by DNS round robin, replaced stop-first.
const WITHOUT_IPVS: [(&str, &str); 3] = [
    ("REPLICATOR_PUBLISH_MODE", "host"),
    ("REPLICATOR_ENDPOINT_MODE", "dnsrr"),
    ("REPLICATOR_UPDATE_ORDER", "stop-first"),
];

/// Deploys deploy/stack.yml (and `extra`, a file of the test's own merged
/// over it) as a stack of `scope`'s, its API on `port`, managing only
/// `scope`'s containers and services; the stack's name.
fn deploy(scope: &Scope, certs: &Path, port: u16, env: &[(&str, &str)], extra: Option<&Path>) -> String {
    let stack = scope.name("rs");
    let stack_file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/stack.yml");
    let mut deploy = std::process::Command::new("docker");
    deploy.args(["stack", "deploy", "--resolve-image", "never", "-c"]).arg(&stack_file);
    if let Some(extra) = extra {
        deploy.arg("-c").arg(extra);
    }
    let deployed = deploy
        .arg(&stack)
        .env("REPLICATOR_CERTS", certs)
        // Other tests run meanwhile on this engine: the stack's replicators leave their containers alone.
        .env("REPLICATOR_SELECTOR", scope.label())
        .env("REPLICATOR_PORT", port.to_string())
        // The suite's kernel has no IPVS, so no routing mesh: the stack's documented variant without it.
        .envs(WITHOUT_IPVS)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert!(deployed.status.success(), "stack deploy: {}", String::from_utf8_lossy(&deployed.stderr));
    stack
}

/// deploy/stack.yml on a two-node swarm: the server on the manager, an agent
/// on each node proving its node with the node's own Swarm certificate. A CPU-busy service with tasks on both nodes grows to its max
/// from the agents' reports, shrinks to its min once idle, and when the
/// worker's engine stops, the service keeps its count (Swarm reschedules)
/// while replicator shows the worker's agent silent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stack_file_deploys_and_autoscales_a_busy_service_across_both_nodes_and_survives_a_lost_worker() {
    images();
    let _turn = SWARM.write().await;
    let scope = Scope::new("stack");
    let mut swarm = TwoNodeSwarm::start();
    for image in [image(), "replicator:local"] {
        swarm.worker.load(image);
    }
    let certs = stack_certs();
    let port = free_port();
    let stack = deploy(
        &scope,
        certs.path(),
        port,
        &[
            // One manager: one server (host-mode ports, one task per node).
            ("REPLICATOR_REPLICAS", "1"),
            ("REPLICATOR_AUTOSCALE_INTERVAL", "2s"),
            ("REPLICATOR_SCALE_DOWN_STABILIZATION", "10s"),
            ("REPLICATOR_CPU_INITIALIZATION_PERIOD", "3s"),
        ],
        None,
    );
    let client = ApiClient::new(&format!("https://127.0.0.1:{port}"), certs.path()).unwrap();
    until("the stack's replicator to answer", Duration::from_secs(90), async || match client.get("/v1/groups").await {
        Ok(r) if r.status == http::StatusCode::OK => Ok(()),
        Ok(r) => Err(format!("HTTP {}", r.status)),
        Err(e) => Err(e.to_string()),
    })
    .await;
    let agents = format!("{stack}_agent");
    eventually("an agent on each node", Duration::from_secs(90), || (running_on(&agents).len() == 2).then_some(()));

    // Busy while /ctl/busy exists: a bind mount both nodes see, as they share this machine's files.
    let ctl = tempfile::tempdir().unwrap();
    std::fs::write(ctl.path().join("busy"), "").unwrap();
    let mount = format!("type=bind,source={},target=/ctl", ctl.path().display());
    let service = scope.service(
        "busy",
        &[
            "--label",
            "replicator.enable=true",
            "--label",
            "replicator.max=6",
            "--label",
            "replicator.min=2",
            "--label",
            "replicator.autoscale.metric=cpu",
            "--label",
            "replicator.autoscale.target=25",
            "--label",
            "replicator.autoscale.min=2",
            "--replicas",
            "4",
            "--stop-grace-period",
            "1s",
            "--mount",
            &mount,
            image(),
            "sh",
            "-c",
            "while [ -e /ctl/busy ]; do :; done; exec sleep 100000",
        ],
    );
    let (manager, worker) = (swarm.manager_node_id().to_owned(), swarm.worker_node_id().to_owned());
    eventually("busy tasks on both nodes", Duration::from_secs(60), || {
        let on = running_on(&service);
        (on.contains(&manager) && on.contains(&worker)).then_some(())
    });

    // Four tasks burning two cores: about 50 % each against a target of 25.
    until("the busy service to grow to its max", Duration::from_secs(120), async || desired_is(&service, 6)).await;
    let seen = until("both nodes' agents reporting", Duration::from_secs(30), async || {
        let n = nodes(&try_group(&client, &service).await?);
        if n.iter().all(|(_, _, reporting)| *reporting) {
            Ok(n)
        } else {
            Err(format!("nodes {n:?}"))
        }
    })
    .await;
    let ids: BTreeSet<&str> = seen.iter().map(|(id, _, _)| id.as_str()).collect();
    assert_eq!(ids, [manager.as_str(), worker.as_str()].into_iter().collect());

    // Each agent proved its node with its node's Swarm certificate; a
    // certificate bound to the worker may not speak for the manager.
    let bundles = tempfile::tempdir().unwrap();
    let agent_of_worker = crate::common::issue_bundle(certs.path(), &format!("agent:{worker}"), bundles.path());
    let impostor = ApiClient::new(&format!("https://127.0.0.1:{port}"), &agent_of_worker).unwrap();
    let report = serde_json::json!({ "hostname": "worker", "containers": [] });
    let refused =
        impostor.request(http::Method::PUT, &format!("/v1/nodes/{manager}/usage"), Some(&report)).await.unwrap();
    assert_eq!(refused.status, http::StatusCode::FORBIDDEN, "{}", refused.text());
    assert_eq!(refused.json()["error"]["permission"], "report-usage");

    std::fs::remove_file(ctl.path().join("busy")).unwrap();
    until("the idle service to shrink to its min", Duration::from_secs(120), async || desired_is(&service, 2)).await;
    eventually("two tasks running", Duration::from_secs(60), || (running_on(&service).len() == 2).then_some(()));

    // The worker goes away. Swarm reschedules its tasks; replicator must
    // neither scale on the manager's half of the data nor follow the dip.
    swarm.stop_worker();
    let mut counts = BTreeSet::new();
    until("the worker down and its agent silent", Duration::from_secs(60), async || {
        counts.insert(desired(&service));
        let n = nodes(&try_group(&client, &service).await?);
        if n.iter().any(|(id, state, reporting)| *id == worker && state == "down" && !reporting) {
            Ok(())
        } else {
            Err(format!("nodes {n:?}"))
        }
    })
    .await;
    eventually("the service's tasks back to 2, all on the manager", Duration::from_secs(60), || {
        counts.insert(desired(&service));
        let on = running_on(&service);
        (on.len() == 2 && on.iter().all(|n| *n == manager)).then_some(())
    });
    counts.insert(desired(&service));
    assert_eq!(counts, [2].into_iter().collect(), "the replica count never moved");
}

/// The lease's record as its config object holds it: the holder's
/// advertised address while one holds it.
fn lease_address(stack: &str) -> Option<String> {
    let config = format!("{stack}_replicator-lease");
    let format =
        r#"{{index .Spec.Labels "replicator.lease.holder"}} {{index .Spec.Labels "replicator.lease.address"}}"#;
    let labels = docker_try(&["config", "inspect", "--format", format, &config]).ok()?;
    match labels.trim().split_once(' ') {
        Some((holder, address)) if !holder.is_empty() && !address.is_empty() => Some(address.to_owned()),
        _ => None,
    }
}

/// Clients reading the groups through `client` until stopped, each
/// request on a new connection (so each meets whichever replicator the
/// balancer picks); (answered, what failed).
fn api_readers(client: ApiClient, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<(usize, Vec<String>)> {
    tokio::spawn(async move {
        let (mut answered, mut failures) = (0, Vec::new());
        while !stop.load(Ordering::Relaxed) {
            match client.get("/v1/groups").await {
                Ok(r) if r.status == http::StatusCode::OK => answered += 1,
                Ok(r) => failures.push(format!("HTTP {}: {}", r.status, r.text())),
                Err(e) => failures.push(e.to_string()),
            }
        }
        (answered, failures)
    })
}

/// HAProxy over what each manager publishes, passing TCP untouched: the
/// API (`api`: listen port, published port) and a Redis group's front
/// (`front`): what callers of a stack published in host mode put in front
/// of it. A server counts as up once it answers in its own protocol (a TLS
/// handshake presenting the operator's certificate of `certs`; a Redis
/// PING), which a bare TCP check cannot tell: Docker's proxy accepts for a
/// container whose replicator does not listen yet. A refused connection is
/// tried on the other node.
fn haproxy_over_managers(dir: &Path, certs: &Path, api: (u16, u16), front: (u16, u16)) -> Owned {
    let pem = [
        std::fs::read_to_string(certs.join("cert.pem")).unwrap(),
        std::fs::read_to_string(certs.join("key.pem")).unwrap(),
    ];
    let tls = crate::common::write_in(dir, "check.pem", &pem.concat());
    let section = |name: &str, (listen, port): (u16, u16), option: &str, check: &str| {
        let server = |node: &str, address: &str| {
            format!("  server {node} {address}:{port} check {check} inter 300ms fall 1 rise 2\n")
        };
        format!(
            "listen {name}\n  bind 127.0.0.1:{listen}\n  balance roundrobin\n{option}{}{}",
            server("manager", MANAGER_ADDR),
            server("other", WORKER_ADDR)
        )
    };
    let config = crate::common::write_in(
        dir,
        "haproxy.cfg",
        &format!(
            "defaults\n  mode tcp\n  timeout connect 1s\n  timeout client 60s\n  timeout server 60s\n\
             \x20 retries 3\n  option redispatch 1\n{}{}",
            section("api", api, "", &format!("check-ssl verify none crt {}", tls.display())),
            section("front", front, "  option redis-check\n", "")
        ),
    );
    let mut command = std::process::Command::new("haproxy");
    command.arg("-db").arg("-f").arg(&config).stdin(std::process::Stdio::null()).stdout(std::process::Stdio::null());
    Owned(command.spawn().expect("haproxy runs"))
}

/// `docker kill` of a task container, on whichever node runs it.
fn kill_task(swarm: &TwoNodeSwarm, name: &str) {
    if docker_try(&["kill", name]).is_err() {
        swarm.worker.docker(&["kill", name]);
    }
}

/// deploy/stack.yml's two replicators on a swarm of two managers, one on
/// each, exactly one acting: `docker service update --force` replaces them
/// one at a time while, through HAProxy over both managers, 8 clients open
/// a new connection per command to a Redis service's front and 2 read the
/// API, and no command or read fails; scale commands sent to either are made (a
/// follower forwards them across nodes to the task the lease names,
/// checking its certificate against the stack's name for it); killing the
/// leading task's container hands the lease to the other within 5 s,
/// which then scales the service.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stacks_two_replicators_are_updated_one_at_a_time_losing_no_request_and_a_killed_leader_is_replaced_within_five_seconds(
) {
    images();
    let _turn = SWARM.write().await;
    let swarm = TwoNodeSwarm::start_two_managers();
    for image in [image(), "replicator:local"] {
        swarm.worker.load(image);
    }
    swarm.worker.load(redis_image());
    let scope = Scope::new("stackha");
    let certs = stack_certs();
    let (port, front) = (free_port(), free_port());
    // Each replicator also publishes a front's port.
    let extra = tempfile::tempdir().unwrap();
    let extra = crate::common::write_in(
        extra.path(),
        "front.yml",
        &format!(
            "version: \"3.8\"\nservices:\n  replicator:\n    environment:\n      REPLICATOR_FRONT_PORTS: \"{front}\"\n\
             \x20   ports:\n      - {{ target: {front}, published: {front}, protocol: tcp, mode: host }}\n"
        ),
    );
    let stack = deploy(&scope, certs.path(), port, &[], Some(&extra));
    let server = format!("{stack}_replicator");
    eventually("a replicator on each manager", Duration::from_secs(90), || {
        (running_on(&server).iter().collect::<BTreeSet<_>>().len() == 2).then_some(())
    });
    let first = until("one of them to hold the lease", Duration::from_secs(60), async || {
        lease_address(&stack).ok_or("no holder")
    })
    .await;
    let web = scope.service(
        "web",
        &[
            "--label",
            "replicator.enable=true",
            "--label",
            "replicator.max=4",
            "--replicas",
            "1",
            image(),
            "sleep",
            "100000",
        ],
    );
    // A Redis service on the stack's network, behind both replicators' fronts.
    let (network, on) = (format!("{stack}_default"), format!("replicator.front.port={front}"));
    let cache_labels = ["replicator.enable=true", "replicator.max=4", "replicator.front.target=6379", &on];
    let mut cache_args: Vec<&str> = vec!["--network", &network, "--replicas", "1"];
    cache_args.extend(cache_labels.iter().flat_map(|l| ["--label", *l]));
    cache_args.push(redis_image());
    let cache = scope.service("cache", &cache_args);
    eventually("the cache's task running", Duration::from_secs(60), || {
        (running_on(&cache).len() == 1).then_some(()).ok_or_else(|| {
            docker_try(&["service", "ps", "--no-trunc", "--format", "{{.Node}} {{.CurrentState}} {{.Error}}", &cache])
                .unwrap_or_default()
        })
    });

    let dir = tempfile::tempdir().unwrap();
    let (api, fronted) = (free_port(), free_port());
    let _haproxy = haproxy_over_managers(dir.path(), certs.path(), (api, port), (fronted, front));
    let client =
        ApiClient::with_config(&format!("https://127.0.0.1:{api}"), client_config(certs.path()).unwrap(), false)
            .unwrap();
    until("both replicators to know the service", Duration::from_secs(60), async || {
        for _ in 0..4 {
            try_group(&client, &web).await?;
        }
        Ok::<_, String>(())
    })
    .await;

    until("both fronts to answer", Duration::from_secs(60), async || {
        (0..10).try_for_each(|_| ping("127.0.0.1", fronted))
    })
    .await;

    let load = Load::start(fronted, 8, 0);
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..2).map(|_| api_readers(client.clone(), stop.clone())).collect();
    let before = replicator_tasks(&server);
    docker(&["service", "update", "--force", "--detach=true", &server]);
    until("both replicators replaced", Duration::from_secs(180), async || {
        let state = docker(&["service", "inspect", "--format", "{{.UpdateStatus.State}}", &server]);
        let now = replicator_tasks(&server);
        match (state.as_str(), now.len(), now.is_disjoint(&before)) {
            ("completed", 2, true) => Ok(()),
            _ => Err(format!("update {state}, tasks {now:?} (before {before:?})")),
        }
    })
    .await;
    let commands = load.answered();
    eventually("the fronts to serve on", Duration::from_secs(10), || (load.answered() > commands + 50).then_some(()));
    let (commands, front_failures) = (load.answered(), load.finish());
    stop.store(true, Ordering::Relaxed);
    let (mut read, mut failed) = (0, Vec::new());
    for reader in readers {
        let (answered, failures) = reader.await.unwrap();
        read += answered;
        failed.extend(failures);
    }
    println!("during the update, through HAProxy: {read} API reads, {commands} Redis commands through the fronts");
    assert!(failed.is_empty() && read > 0, "{read} reads answered; failed: {failed:?}");
    assert!(front_failures.is_empty() && commands > 0, "{commands} commands answered; failed: {front_failures:?}");

    // Commands to either replicator are made by the one acting.
    let leader = until("a new task to hold the lease", Duration::from_secs(30), async || {
        lease_address(&stack).filter(|a| *a != first).ok_or("held by a replaced task, or by none")
    })
    .await;
    for replicas in [2, 1, 2] {
        let body = serde_json::json!({ "replicas": replicas });
        let scaled = client.request(http::Method::PUT, &format!("/v1/groups/{web}/replicas"), Some(&body)).await;
        let scaled = scaled.unwrap();
        assert_eq!(scaled.status, http::StatusCode::OK, "{}", scaled.text());
        assert_eq!(desired(&web), replicas);
    }

    // The leading task's container dies; the other takes the lease.
    let task = leader.trim_start_matches("https://").split(':').next().unwrap().to_owned();
    kill_task(&swarm, &task);
    let killed = std::time::Instant::now();
    let next = until("another replicator to lead", Duration::from_secs(10), async || {
        lease_address(&stack).filter(|a| *a != leader).ok_or("the killed task still named")
    })
    .await;
    let took = killed.elapsed();
    println!("{next} leads {took:?} after the leader's container was killed");
    assert!(took < Duration::from_secs(5), "handed over after {took:?}");
    let body = serde_json::json!({ "replicas": 3 });
    let scaled = until("the new leader to scale", Duration::from_secs(30), async || {
        let answer = client.request(http::Method::PUT, &format!("/v1/groups/{web}/replicas"), Some(&body)).await;
        answer.map_err(|e| e.to_string()).and_then(|a| match a.status {
            http::StatusCode::OK => Ok(a),
            status => Err(format!("HTTP {status}: {}", a.text())),
        })
    })
    .await;
    assert_eq!(desired(&web), 3, "{}", scaled.text());
}

/// The ids of the replicator service's tasks meant to run.
fn replicator_tasks(service: &str) -> BTreeSet<String> {
    docker(&["service", "ps", "-q", "--filter", "desired-state=running", service]).lines().map(str::to_owned).collect()
}
