//! A real two-node swarm (common/two_node_swarm.rs): the host engine as manager, a
//! second dockerd in a network namespace as worker.

use std::collections::BTreeSet;
use std::fmt::{self, Display};
use std::path::Path;
use std::time::Duration;

use replicator::cli::remote::ApiClient;
use serde_json::Value;

use crate::common::two_node_swarm::TwoNodeSwarm;
use crate::common::{
    certs_for, docker, docker_try, eventually, eventually_async, free_port, image, images, try_group, Look, Scope,
    SWARM,
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
        let logs = std::process::Command::new("docker").args(["service", "logs", "--tail", "40", server]).output();
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
    let certs = certs_for(&["replicator"]);
    let port = free_port();
    let stack = scope.name("rs");
    let stack_file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/stack.yml");
    let deploy = std::process::Command::new("docker")
        .args(["stack", "deploy", "--resolve-image", "never", "-c"])
        .arg(&stack_file)
        .arg(&stack)
        .env("REPLICATOR_CERTS", certs.path())
        // Other tests run meanwhile on this engine: the stack's replicator leaves their containers alone.
        .env("REPLICATOR_SELECTOR", scope.label())
        .env("REPLICATOR_PORT", port.to_string())
        .env("REPLICATOR_AUTOSCALE_INTERVAL", "2s")
        .env("REPLICATOR_SCALE_DOWN_STABILIZATION", "10s")
        .env("REPLICATOR_CPU_INITIALIZATION_PERIOD", "3s")
        .output()
        .unwrap();
    assert!(deploy.status.success(), "stack deploy: {}", String::from_utf8_lossy(&deploy.stderr));
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
