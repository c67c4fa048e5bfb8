//! Swarm mode: replicating a task scales its service.

use std::time::Duration;

use http::{Method, StatusCode};
use serde_json::json;

use crate::common::{call, docker, docker_try, eventually, group, image, Scope, SWARM};

/// Joins a single-node swarm for the test, and leaves it afterwards only if
/// the engine was not in one before, removing the bridge network that
/// joining made (leaving keeps it).
struct SwarmMode {
    joined: bool,
    made_gwbridge: bool,
}

const GWBRIDGE: &str = "docker_gwbridge";

impl SwarmMode {
    fn enter() -> Self {
        let state = docker(&["info", "--format", "{{.Swarm.LocalNodeState}}"]);
        let joined = state != "active";
        let made_gwbridge = joined && docker_try(&["network", "inspect", GWBRIDGE]).is_err();
        if joined {
            docker(&["swarm", "init", "--advertise-addr", "127.0.0.1"]);
        }
        Self { joined, made_gwbridge }
    }
}

impl Drop for SwarmMode {
    fn drop(&mut self) {
        if self.joined {
            let _ = docker_try(&["swarm", "leave", "--force"]);
        }
        if self.made_gwbridge {
            let _ = docker_try(&["network", "rm", GWBRIDGE]);
        }
    }
}

fn desired_replicas(service: &str) -> u64 {
    docker(&["service", "inspect", "-f", "{{.Spec.Mode.Replicated.Replicas}}", service]).parse().unwrap()
}

#[tokio::test]
async fn replicating_a_task_scales_its_service() {
    let _turn = SWARM.write().await;
    let scope = Scope::new("swarm");
    let _swarm = SwarmMode::enter();
    let enabled = ["--label", "replicator.enable=true"];
    let service =
        scope.service("svc", &[&enabled[..], &["--label", "replicator.max=3", image(), "sleep", "100000"]].concat());
    let task = eventually("a running task", Duration::from_secs(60), || {
        let filter = format!("label=com.docker.swarm.service.name={service}");
        let ids = docker(&["ps", "-q", "--no-trunc", "--filter", &filter]);
        ids.lines().next().map(str::to_owned)
    });
    let server = scope.server(&[]);

    let done = call(&server, Method::GET, &format!("/{task}"), None).await;
    assert_eq!((done.status, done.text().as_str()), (StatusCode::OK, "done"));
    assert_eq!(desired_replicas(&service), 2);
    assert!(scope.replicas_of(&service).is_empty(), "no container was cloned");

    let over = call(&server, Method::POST, &format!("/v1/containers/{task}/replicas?count=2"), None).await;
    assert_eq!(over.status, StatusCode::CONFLICT, "{}", over.text());
    assert_eq!(desired_replicas(&service), 2);

    let group = group(&server, &service).await;
    assert_eq!((group["kind"].as_str(), group["max"].as_u64()), (Some("swarm"), Some(3)));
    let scaled =
        call(&server, Method::PUT, &format!("/v1/groups/{service}/replicas"), Some(json!({"replicas": 1}))).await;
    assert_eq!(scaled.status, StatusCode::OK, "{}", scaled.text());
    assert_eq!(desired_replicas(&service), 1);

    let global = scope.service("global", &[&enabled[..], &["--mode", "global", image(), "sleep", "100000"]].concat());
    let global_task = eventually("a global task", Duration::from_secs(60), || {
        let filter = format!("label=com.docker.swarm.service.name={global}");
        docker(&["ps", "-q", "--filter", &filter]).lines().next().map(str::to_owned)
    });
    let r = call(&server, Method::POST, &format!("/v1/containers/{global_task}/replicas"), None).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert!(r.json()["error"]["message"].as_str().unwrap().contains("global"));

    // Several replicators with their lease in this swarm's Raft store.
    crate::lease::on_a_swarm_the_lease_is_a_config_of_its_raft_store_and_a_killed_leader_is_replaced_within_five_seconds().await;
}
