//! A real two-node swarm (common/swarm2.rs): the host engine as manager, a
//! second dockerd in a network namespace as worker.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::common::swarm2::TwoNodeSwarm;
use crate::common::{docker, docker_try, eventually, image, Scope, SWARM};

#[tokio::test]
async fn a_two_node_swarm_spreads_a_service_over_both_nodes_and_tears_down() {
    let _turn = SWARM.lock().await;
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
    swarm.load(image());
    assert_ne!(swarm.manager_node_id(), swarm.worker_node_id());

    let service = scope.name("spread");
    let label = scope.label();
    docker(&[
        "service",
        "create",
        "--detach",
        "--no-resolve-image",
        "--name",
        &service,
        "--label",
        &label,
        "--container-label",
        &label,
        "--replicas",
        "4",
        image(),
        "sleep",
        "100000",
    ]);
    let nodes = eventually("4 running tasks on both nodes", Duration::from_secs(60), || {
        let tasks = docker(&["service", "ps", "-q", "--filter", "desired-state=running", &service]);
        let ids: Vec<&str> = tasks.lines().collect();
        if ids.len() != 4 {
            return None;
        }
        let states = docker(&[&["inspect", "--format", "{{.NodeID}} {{.Status.State}}"], ids.as_slice()].concat());
        let running: Vec<&str> = states.lines().filter_map(|l| l.strip_suffix(" running")).collect();
        let nodes: BTreeSet<&str> = running.iter().copied().collect();
        (running.len() == 4 && nodes.len() == 2).then(|| nodes.into_iter().map(str::to_owned).collect::<Vec<_>>())
    });
    let expected: BTreeSet<String> =
        [swarm.manager_node_id().to_owned(), swarm.worker_node_id().to_owned()].into_iter().collect();
    assert_eq!(nodes.into_iter().collect::<BTreeSet<_>>(), expected);
    let on_worker = swarm.worker_docker(&["ps", "-q", "--filter", &format!("label={label}")]);
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
