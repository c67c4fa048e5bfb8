//! How soon the fronts accept again after a crash: replicator killed with
//! SIGKILL (its control socket file left behind, as a crash leaves it) and
//! started again, timed from the new process's start until a new
//! connection through a Redis group's front answers `PING`. Measured on an
//! engine holding only the group (the baseline) and then with 100 more
//! running containers, `ROUNDS` times each, medians and the slowest.
//!
//! `cargo bench --bench restart` (needs the engine and `redis-server`, as
//! the tests do); prints a Markdown table; docs/performance.md keeps the
//! published one.

mod common;

use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::redis::{command, redis_image};
use common::{certs, docker, free_port, image, median, ms, Scope, Server};

/// Restarts timed on each engine population.
const ROUNDS: usize = 7;
/// Containers added for the second measurement.
const POPULATION: usize = 100;
/// Longest a restart may take before the bench gives up.
const GIVE_UP: Duration = Duration::from_secs(60);

fn main() {
    let scope = Scope::new("restartbench");
    let port = free_port();
    let network = scope.network("net");
    let front = format!("replicator.front.port={port}");
    let on = format!("replicator.front.network={network}");
    let mut args = vec!["--network", network.as_str()];
    for label in ["replicator.enable=true", "replicator.front.target=6379", &front, &on] {
        args.extend(["--label", label]);
    }
    args.push(redis_image());
    scope.run("cache", &args);
    let certs = certs();
    let control = tempfile::tempdir().unwrap();
    let socket = control.path().join("control.sock");
    let ports = port.to_string();
    let serve = ["--front-ports", &ports, "--front-address", "127.0.0.1", "--control-socket", socket.to_str().unwrap()];

    let mut server = Some(start(&scope, certs.path(), &serve, port).0);
    let alone = restarts(&scope, certs.path(), &serve, port, &mut server);
    populate(&scope);
    let crowded = restarts(&scope, certs.path(), &serve, port, &mut server);
    drop(server);
    report(&alone, &crowded);
}

/// `ROUNDS` crashes and restarts: each the time from the new start until the front answers.
fn restarts(
    scope: &Scope,
    certs: &std::path::Path,
    serve: &[&str],
    port: u16,
    server: &mut Option<Server>,
) -> Vec<Duration> {
    (0..ROUNDS)
        .map(|_| {
            let mut old = server.take().expect("a server runs");
            old.signal("KILL");
            old.wait_exit(Duration::from_secs(10)).expect("the killed process ends");
            let (new, took) = start(scope, certs, serve, port);
            *server = Some(new);
            took
        })
        .collect()
}

/// Starts a server and waits until a new connection through the front
/// answers; the server and how long that took from its start.
fn start(scope: &Scope, certs: &std::path::Path, serve: &[&str], port: u16) -> (Server, Duration) {
    let began = Instant::now();
    let server = scope.process_server_with(certs, serve);
    while ping(port).is_err() {
        assert!(began.elapsed() < GIVE_UP, "the front never answered after a restart");
        std::thread::sleep(Duration::from_millis(5));
    }
    (server, began.elapsed())
}

fn ping(port: u16) -> Result<(), String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    match command(&mut stream, "PING") {
        Ok(reply) if reply == "+PONG" => Ok(()),
        other => Err(format!("{other:?}")),
    }
}

/// `POPULATION` running containers of this scope (not replicated: no label asks).
fn populate(scope: &Scope) {
    let image = image();
    let chunks: Vec<Vec<usize>> = (0..POPULATION).collect::<Vec<_>>().chunks(10).map(<[usize]>::to_vec).collect();
    std::thread::scope(|threads| {
        for chunk in chunks {
            threads.spawn(move || {
                for i in chunk {
                    scope.run(&format!("filler{i}"), &[image, "sleep", "100000"]);
                }
            });
        }
    });
}

fn report(alone: &[Duration], crowded: &[Duration]) {
    let slowest = |v: &[Duration]| v.iter().max().copied().unwrap_or_default();
    let (a, c) = (median(alone.to_vec()), median(crowded.to_vec()));
    let engine = docker(&["version", "-f", "{{.Server.Version}} (API {{.Server.APIVersion}})"]);
    println!("| engine population | median: start → front answers | slowest | rounds |");
    println!("|---|---|---|---|");
    println!("| the group alone | {} | {} | {ROUNDS} |", ms(a), ms(slowest(alone)));
    println!("| {POPULATION} more running containers | {} | {} | {ROUNDS} |", ms(c), ms(slowest(crowded)));
    println!();
    println!(
        "ratio (crowded ÷ alone, medians): {:.2}; goal: under 1 s with {POPULATION} containers",
        c.as_secs_f64() / a.as_secs_f64()
    );
    println!("engine {engine}");
}
