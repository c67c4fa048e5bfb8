//! What one replicator's Swarm poll costs as services grow: its three calls
//! (services, every running task at once, nodes) against the per-service
//! way (services, then each service's tasks), in the same run, interleaved.
//!
//! `cargo bench --bench swarm` joins this engine to a one-node swarm for the
//! run (and leaves it), creates N services of one task each, and prints a
//! Markdown table; docs/performance.md keeps the published one.

mod common;

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use replicator::engine::{DockerEngine, Engine};

use common::{docker, docker_try, image, median, ms, Scope};

const ROUNDS: usize = 21;

/// Leaves the swarm it joined, and the bridge joining made, even on a panic.
struct Joined;

impl Drop for Joined {
    fn drop(&mut self) {
        let _ = docker_try(&["swarm", "leave", "--force"]);
        let _ = docker_try(&["network", "rm", "docker_gwbridge"]);
    }
}

async fn poll(engine: &DockerEngine, filter: &[String]) -> Duration {
    let started = Instant::now();
    let (services, tasks, nodes) =
        tokio::join!(engine.list_services(filter), engine.list_tasks(None), engine.list_nodes());
    let (_, _, _) = (services.unwrap(), tasks.unwrap(), nodes.unwrap());
    started.elapsed()
}

async fn per_service(engine: &DockerEngine, filter: &[String]) -> Duration {
    let started = Instant::now();
    let services = engine.list_services(filter).await.unwrap();
    for s in &services {
        engine.list_tasks(Some(&s.id)).await.unwrap();
    }
    started.elapsed()
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    assert_eq!(
        docker(&["info", "--format", "{{.Swarm.LocalNodeState}}"]),
        "inactive",
        "the bench makes its own swarm: run it on an engine outside one"
    );
    docker(&["swarm", "init", "--advertise-addr", "127.0.0.1"]);
    let _joined = Joined;
    let scope = Scope::new("swarm-bench");
    let engine = common::engine();
    let filter = vec!["replicator.enable=true".to_owned(), scope.label()];
    println!("| services | replicator's poll (3 calls) | per service (1 + N calls) | ratio |");
    println!("|---|---|---|---|");
    let mut made = 0;
    for n in [1usize, 10, 50] {
        while made < n {
            scope.service(&format!("s{made}"), &["--label", "replicator.enable=true", image(), "sleep", "100000"]);
            made += 1;
        }
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            ours.push(poll(&engine, &filter).await);
            theirs.push(per_service(&engine, &filter).await);
        }
        let (ours, theirs) = (median(ours), median(theirs));
        let ratio = ours.as_secs_f64() / theirs.as_secs_f64();
        println!("| {n} | {} | {} | {ratio:.2} |", ms(ours), ms(theirs));
    }
    let services = docker(&["service", "ls", "-q", "--filter", &format!("label={}", scope.label())]);
    let ids: Vec<&str> = services.lines().collect();
    join_all(ids.chunks(10).map(|chunk| async move {
        let _ = docker_try(&[&["service", "rm"], chunk].concat());
    }))
    .await;
}
