//! Time to serve: from a scale-up request to the new member answering HTTP
//! on its own address, taken from a paused standby against a cold clone, in
//! the same run (interleaved), for an app that takes 2 s to start listening
//! and for one that listens at once.
//!
//! `cargo bench --bench warm` (needs the engine, as the tests do); prints a
//! Markdown table; docs/performance.md keeps the published one.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use http::{Method, StatusCode};
use replicator::cli::remote::ApiClient;
use serde_json::json;

use common::{docker, eventually, image, median, ms_with, Scope, Server};

const ROUNDS: usize = 7;

/// Whether something answers HTTP at `addr` (any status).
fn answers(addr: SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else { return false };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    if s.write_all(b"GET / HTTP/1.0\r\n\r\n").is_err() {
        return false;
    }
    let mut first = [0u8; 5];
    s.read_exact(&mut first).is_ok() && &first == b"HTTP/"
}

/// `PUT /v1/groups/{group}/replicas`: the group as it then is.
async fn scale(client: &ApiClient, group: &str, replicas: u32) -> serde_json::Value {
    let path = format!("/v1/groups/{group}/replicas");
    let r = client.request(Method::PUT, &path, Some(&json!({ "replicas": replicas }))).await.unwrap();
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    r.json()
}

/// Scales `group` from 1 to 2 and times until the new member answers on its address.
async fn time_to_serve(server: &Server, group: &str) -> Duration {
    let started = Instant::now();
    let client = server.client();
    let member = scale(&client, group, 2).await["members"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["original"] == false)
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .next()
        .expect("a new member");
    let ip = docker(&["inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", &member]);
    let addr: SocketAddr = format!("{ip}:8080").parse().unwrap();
    while !answers(addr) {
        assert!(started.elapsed() < Duration::from_secs(60), "the new member never answered");
        std::thread::sleep(Duration::from_millis(5));
    }
    let elapsed = started.elapsed();
    scale(&client, group, 1).await;
    elapsed
}

fn pool_full(scope: &Scope, group: &str) -> bool {
    let replicas = scope.replicas_of(group);
    replicas.len() == 1 && docker(&["inspect", "-f", "{{.State.Status}}", &replicas[0]]) == "paused"
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let scope = Scope::new("warm-bench");
    let server = scope.process_server(&["--warm-settle", "1s", "--autoscale-interval", "1h", "--stop-timeout", "1s"]);
    println!("| app | from a standby | cold | ratio | goal |");
    println!("|---|---|---|---|---|");
    for (app, command) in
        [("listens after 2 s", "sleep 2; exec httpd -f -p 8080"), ("listens at once", "exec httpd -f -p 8080")]
    {
        let suffix = if app.contains('2') { "slow" } else { "fast" };
        let cold = scope.name(&format!("cold-{suffix}"));
        let warm = scope.name(&format!("warm-{suffix}"));
        for (kind, extra) in [("cold", "replicator.warm=0"), ("warm", "replicator.warm=1")] {
            let args = ["--label", "replicator.enable=true", "--label", extra, image(), "sh", "-c", command];
            scope.run(&format!("{kind}-{suffix}"), &args);
        }
        let (mut warm_times, mut cold_times) = (Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            eventually("a full pool", Duration::from_secs(60), || pool_full(&scope, &warm).then_some(()));
            warm_times.push(time_to_serve(&server, &warm).await);
            cold_times.push(time_to_serve(&server, &cold).await);
        }
        let (w, c) = (median(warm_times), median(cold_times));
        let goal = if suffix == "slow" { "≤ 0.10" } else { "" };
        println!(
            "| {app} | {} | {} | **{:.2}** | {goal} |",
            ms_with(w, 0),
            ms_with(c, 0),
            w.as_secs_f64() / c.as_secs_f64()
        );
    }
}
