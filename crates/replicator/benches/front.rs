//! The TCP front (`replicator.front.port`) against the direct path, the
//! member's own address on the bench's network, in the same run:
//!
//! 1. bulk throughput: `iperf3 -c … -t 5 -J` through the front and straight
//!    to an iperf3 server in the group's one member, interleaved, medians;
//! 2. latency of new connections: `redis-benchmark -k 0 -c 1 -n 5000 -t
//!    ping_inline --csv` (a new connection per PING) through the front and
//!    straight to a Redis member, interleaved, medians of p50 and p99;
//! 3. idle connections: 10,000 held through the front to the Redis member
//!    (each answered one PING, so each is spliced; fewer when replicator's
//!    open-file limit cannot hold two descriptors each), replicator's RSS
//!    before, with them open and once closed (three times over), and the
//!    API's answers meanwhile.
//!
//! Every group keeps one member (`replicator.max=1`): iperf3's control and
//! data connections must reach the same server. New connections leave
//! local ports in TIME_WAIT, so each redis-benchmark run waits until fewer
//! than half the ephemeral range to the member is taken (see `room_for`).
//!
//! `cargo bench --bench front` (needs the engine, `iperf3`, `redis-server`,
//! `redis-cli` and `redis-benchmark`, as the tests do); prints one Markdown
//! table per measurement; docs/performance.md keeps the published ones.

mod common;

use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use replicator::cli::remote::ApiClient;
use serde_json::Value;

use common::iperf::{iperf_image, IPERF_PORT};
use common::redis::{command, redis_image, REDIS_PORT};
use common::{docker, eventually, free_port, median, ms_with, try_group, Scope};

/// Rounds of iperf3 (each path once a round; who goes first alternates).
const IPERF_ROUNDS: usize = 5;
/// Rounds of redis-benchmark (fewer: each waits for the last one's ports to leave TIME_WAIT).
const ROUNDS: usize = 3;
/// Seconds of each iperf3 run.
const IPERF_SECONDS: &str = "5";
/// Requests of each redis-benchmark run, a new connection each.
const PINGS: &str = "5000";
/// The idle connections held through the front.
const IDLE: usize = 10_000;
/// `GET /v1/groups` calls timed before and while the idle connections are open.
const API_CALLS: usize = 20;

/// A group's original (its one member): its name, address on the bench's network and front port.
struct Member {
    name: String,
    ip: String,
    front: u16,
}

/// Runs a group's original on `network` with a front on `front` to `target`:
/// `image` and its command after the options.
fn original(scope: &Scope, suffix: &str, front: u16, target: u16, network: &str, image: &[&str]) -> Member {
    let port = format!("replicator.front.port={front}");
    let to = format!("replicator.front.target={target}");
    let on = format!("replicator.front.network={network}");
    let mut args = vec!["--network", network];
    for label in ["replicator.enable=true", "replicator.max=1", &port, &to, &on] {
        args.extend(["--label", label]);
    }
    args.extend_from_slice(image);
    let id = scope.run(suffix, &args);
    let ip =
        docker(&["inspect", "-f", &format!("{{{{(index .NetworkSettings.Networks \"{network}\").IPAddress}}}}"), &id]);
    assert!(!ip.is_empty(), "{suffix} has no address on {network}");
    Member { name: scope.name(suffix), ip, front }
}

/// Two adjacent ports nothing listens on (one `--front-ports` range for both fronts).
fn two_free_ports() -> (u16, u16) {
    loop {
        let first = free_port();
        if first < u16::MAX && std::net::TcpListener::bind(("127.0.0.1", first + 1)).is_ok() {
            return (first, first + 1);
        }
    }
}

// ---------------------------------------------------------------- processes

/// The process's resident set, in KiB (`VmRSS` of /proc/PID/status).
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("VmRSS");
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// The process's CPU time so far, user and system (/proc/PID/stat).
fn cpu_time(pid: u32, ticks_per_second: f64) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // After the command's `(name)`: state is field 3, utime 14 and stime 15.
    let fields: Vec<&str> = stat.rsplit_once(')').unwrap().1.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    Duration::from_secs_f64(ticks / ticks_per_second)
}

/// The process's soft and hard `RLIMIT_NOFILE` (/proc/PID/limits).
fn nofile_of(pid: u32) -> (u64, u64) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits.lines().find(|l| l.starts_with("Max open files")).expect("Max open files");
    let numbers: Vec<u64> = line.split_whitespace().filter_map(|w| w.parse().ok()).collect();
    (numbers[0], numbers[1])
}

/// Descriptors the process has open.
fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map(Iterator::count).unwrap_or(0)
}

/// Sockets of this network namespace (any state, TIME_WAIT included) to `ip:port`.
fn sockets_to(ip: &str, port: u16) -> usize {
    let octets: Vec<u8> = ip.split('.').map(|o| o.parse().unwrap()).collect();
    let remote = format!("{:08X}:{port:04X}", u32::from_le_bytes([octets[0], octets[1], octets[2], octets[3]]));
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    table.lines().skip(1).filter(|l| l.split_whitespace().nth(2) == Some(remote.as_str())).count()
}

/// Waits until `needed` more connections to `ip:port` find a local port at
/// once: a run of new connections leaves its ports in TIME_WAIT for a
/// minute, and Linux's connect() looks for a port among one half of the
/// ephemeral range first (the other half is bind()'s); once that half is
/// taken for one destination, each connect() scans it all (about 3 ms
/// here). Returns how long it waited.
fn room_for(ip: &str, port: u16, needed: usize) -> Duration {
    let half = ephemeral_ports() / 2;
    let started = Instant::now();
    while sockets_to(ip, port) + needed + 1000 > half {
        assert!(started.elapsed() < Duration::from_secs(180), "local ports to {ip}:{port} never freed");
        std::thread::sleep(Duration::from_secs(1));
    }
    started.elapsed()
}

/// The size of the ephemeral port range.
fn ephemeral_ports() -> usize {
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap();
    let bounds: Vec<usize> = range.split_whitespace().map(|p| p.parse().unwrap()).collect();
    bounds[1] - bounds[0] + 1
}

/// The machine's CPU time so far, busy and in all (/proc/stat, in ticks).
fn machine_cpu() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap();
    let ticks: Vec<u64> = stat.lines().next().unwrap().split_whitespace().skip(1).map(|t| t.parse().unwrap()).collect();
    let total: u64 = ticks.iter().take(8).sum();
    // user nice system idle iowait irq softirq steal: idle and iowait are not busy.
    (total - ticks[3] - ticks[4], total)
}

/// The share of the machine's CPU (all cores) busy between two `machine_cpu` readings.
fn busy_between(before: (u64, u64), after: (u64, u64)) -> f64 {
    (after.0 - before.0) as f64 / (after.1 - before.1).max(1) as f64
}

// ---------------------------------------------------------------- iperf3

/// One `iperf3 -c host -p port -t 5 -J`: what the receiver got, in Gbit/s
/// (tried again while the server is still busy with the previous test).
fn iperf(host: &str, port: u16, seconds: &str) -> Result<f64, String> {
    let mut last = String::new();
    for _ in 0..10 {
        let out = Command::new("iperf3")
            .args(["-c", host, "-p", &port.to_string(), "-t", seconds, "-J"])
            .output()
            .expect("iperf3 runs (apt-get install iperf3)");
        let report: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        if let Some(bits) = report["end"]["sum_received"]["bits_per_second"].as_f64() {
            if report["error"].is_null() {
                return Ok(bits / 1e9);
            }
        }
        last = match report["error"].as_str() {
            Some(e) => e.to_owned(),
            None => format!("{} {}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
        };
        std::thread::sleep(Duration::from_secs(1));
    }
    Err(last)
}

fn throughput(member: &Member, pid: u32, ticks_per_second: f64) {
    eventually("iperf3 through the front", Duration::from_secs(60), || iperf("127.0.0.1", member.front, "1").ok());
    iperf(&member.ip, IPERF_PORT, "1").expect("iperf3 straight to the member");
    let (mut through, mut direct, mut cpu) = (Vec::new(), Vec::new(), Vec::new());
    let (mut busy_through, mut busy_direct) = (Vec::new(), Vec::new());
    for round in 0..IPERF_ROUNDS {
        for front_first in [round % 2 == 0, round % 2 != 0] {
            let machine = machine_cpu();
            if front_first {
                let (before, started) = (cpu_time(pid, ticks_per_second), Instant::now());
                through.push(iperf("127.0.0.1", member.front, IPERF_SECONDS).expect("iperf3 through the front"));
                cpu.push((cpu_time(pid, ticks_per_second) - before).as_secs_f64() / started.elapsed().as_secs_f64());
                busy_through.push(busy_between(machine, machine_cpu()));
            } else {
                direct.push(iperf(&member.ip, IPERF_PORT, IPERF_SECONDS).expect("iperf3 straight to the member"));
                busy_direct.push(busy_between(machine, machine_cpu()));
            }
        }
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let runs = |v: &[f64]| v.iter().map(|g| format!("{g:.1}")).collect::<Vec<_>>().join(", ");
    let (t, d) = (median_f64(&through), median_f64(&direct));
    println!("### Bulk throughput (iperf3, one TCP stream, {IPERF_SECONDS} s, median of {IPERF_ROUNDS})\n");
    let (busy_d, busy_t) = (median_f64(&busy_direct), median_f64(&busy_through));
    let per_gbit = |busy: f64, gbits: f64| busy * cores as f64 / gbits;
    println!("| path | Gbit/s | runs | machine's CPU busy ({cores} cores) | cores per Gbit/s | replicator's CPU |");
    println!("|---|---|---|---|---|---|");
    println!(
        "| direct (member {}:{IPERF_PORT}) | {d:.1} | {} | {:.0} % | {:.2} | idle |",
        member.ip,
        runs(&direct),
        busy_d * 100.0,
        per_gbit(busy_d, d)
    );
    println!(
        "| through the front (127.0.0.1:{}) | {t:.1} | {} | {:.0} % | {:.2} | {:.0} % of a core |",
        member.front,
        runs(&through),
        busy_t * 100.0,
        per_gbit(busy_t, t),
        median_f64(&cpu) * 100.0
    );
    println!("| **ratio through ÷ direct** | **{:.2}** | goal ≥ 0.90 | | | |\n", t / d);
}

fn median_f64(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

// ---------------------------------------------------------------- redis-benchmark

/// One redis-benchmark run's figures, in ms (and requests per second).
#[derive(Clone, Copy)]
struct Pings {
    rps: f64,
    p50: f64,
    p99: f64,
}

/// `redis-benchmark -k 0 -c 1 -n COUNT -t ping_inline --csv` against `host:port`.
fn pings(host: &str, port: u16, count: &str) -> Pings {
    let out = Command::new("redis-benchmark")
        .args(["-h", host, "-p", &port.to_string(), "-k", "0", "-c", "1", "-n", count, "-t", "ping_inline", "--csv"])
        .output()
        .expect("redis-benchmark runs (apt-get install redis-tools)");
    let text = String::from_utf8_lossy(&out.stdout);
    let errors = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && !errors.contains("Error"),
        "redis-benchmark against {host}:{port}: {text} {errors}"
    );
    let rows: Vec<Vec<String>> =
        text.lines().map(|l| l.split(',').map(|c| c.trim_matches('"').to_owned()).collect()).collect();
    let header = rows.iter().find(|r| r.first().is_some_and(|c| c == "test")).expect("a CSV header");
    let row = rows.iter().find(|r| r.first().is_some_and(|c| c == "PING_INLINE")).expect("the PING_INLINE row");
    let column = |name: &str| -> f64 {
        let at = header.iter().position(|c| c == name).unwrap_or_else(|| panic!("no {name} in {header:?}"));
        row[at].parse().unwrap()
    };
    Pings { rps: column("rps"), p50: column("p50_latency_ms"), p99: column("p99_latency_ms") }
}

/// The median time of `count` bare TCP connects to `ip:port` (each closed at once).
fn connect_time(ip: &str, port: u16, count: usize) -> Duration {
    let addr = std::net::SocketAddr::new(ip.parse().unwrap(), port);
    let times = (0..count)
        .map(|_| {
            let started = Instant::now();
            let stream = TcpStream::connect(addr).expect("the member accepts");
            let took = started.elapsed();
            drop(stream);
            took
        })
        .collect();
    median(times)
}

fn latency(member: &Member) {
    let pings_each = PINGS.parse::<usize>().unwrap();
    // What the front adds at least: its own connect to the member, for each new connection.
    let handshake = connect_time(&member.ip, REDIS_PORT, 200);
    let (mut through, mut direct) = (Vec::new(), Vec::new());
    let mut waited = Duration::ZERO;
    for round in 0..ROUNDS {
        for front_first in [round % 2 == 0, round % 2 != 0] {
            waited += room_for(&member.ip, REDIS_PORT, pings_each);
            if front_first {
                through.push(pings("127.0.0.1", member.front, PINGS));
            } else {
                direct.push(pings(&member.ip, REDIS_PORT, PINGS));
            }
        }
    }
    let of = |v: &[Pings], f: fn(&Pings) -> f64| median_f64(&v.iter().map(f).collect::<Vec<_>>());
    let (d50, t50) = (of(&direct, |p| p.p50), of(&through, |p| p.p50));
    let (d99, t99) = (of(&direct, |p| p.p99), of(&through, |p| p.p99));
    let (drps, trps) = (of(&direct, |p| p.rps), of(&through, |p| p.rps));
    println!(
        "### New connections (redis-benchmark -k 0 -c 1 -n {PINGS} -t ping_inline: a new connection per PING, \
         median of {ROUNDS})\n"
    );
    println!("| figure | direct (member {}:{REDIS_PORT}) | through the front | added | goal |", member.ip);
    println!("|---|---|---|---|---|");
    println!("| p50 | {d50:.3} ms | {t50:.3} ms | **{:+.3} ms** | ≤ +0.100 ms |", t50 - d50);
    println!("| p99 | {d99:.3} ms | {t99:.3} ms | **{:+.3} ms** | |", t99 - d99);
    println!("| requests/s (connect included) | {drps:.0} | {trps:.0} | ratio **{:.2}** | |\n", trps / drps);
    let runs = |v: &[Pings]| v.iter().map(|p| format!("{:.3}/{:.3}", p.p50, p.p99)).collect::<Vec<_>>().join(", ");
    println!("Runs (p50/p99 ms): direct {}; through {}.", runs(&direct), runs(&through));
    println!(
        "A bare TCP connect from the host to the member (the front makes one per new connection): median {} of 200.",
        ms_with(handshake, 3)
    );
    if waited > Duration::ZERO {
        println!(
            "Each run started with fewer than {} local ports to the member in use (waited {:.0} s in all for \
             TIME_WAIT to end).",
            ephemeral_ports() / 2 - pings_each - 1000,
            waited.as_secs_f64()
        );
    }
    // The same through the front once half the range to the member is taken:
    // 15,000 direct connections first, whose ports stay in TIME_WAIT.
    pings(&member.ip, REDIS_PORT, "15000");
    let taken = sockets_to(&member.ip, REDIS_PORT);
    let pressed = pings("127.0.0.1", member.front, PINGS);
    println!(
        "Through the front right after 15,000 direct connections ({taken} local ports to the member in TIME_WAIT, \
         of {} ephemeral): p50 {:.3} ms, p99 {:.3} ms, {:.0} requests/s.",
        ephemeral_ports(),
        pressed.p50,
        pressed.p99,
        pressed.rps
    );
    println!();
}

// ---------------------------------------------------------------- idle connections

/// `GET /v1/groups` `API_CALLS` times: the median and slowest.
async fn api_times(client: &ApiClient) -> (Duration, Duration) {
    let mut times = Vec::new();
    for _ in 0..API_CALLS {
        let started = Instant::now();
        let r = client.get("/v1/groups").await.expect("the API answers");
        assert!(r.status.is_success(), "GET /v1/groups: {}", r.text());
        times.push(started.elapsed());
    }
    let worst = *times.iter().max().unwrap();
    (median(times), worst)
}

/// A new connection through the front and one PING on it: the time to `+PONG`.
fn ping_through(port: u16) -> Result<(TcpStream, Duration), String> {
    let started = Instant::now();
    let mut stream = TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect: {e}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    match command(&mut stream, "PING") {
        Ok(reply) if reply == "+PONG" => Ok((stream, started.elapsed())),
        Ok(reply) => Err(format!("answered {reply:?}")),
        Err(e) => Err(format!("PING: {e}")),
    }
}

/// Redis's own count of its clients (`INFO clients`), asked on its address.
fn redis_clients(ip: &str) -> String {
    let out = Command::new("redis-cli").args(["-h", ip, "-p", &REDIS_PORT.to_string(), "info", "clients"]).output();
    let text = out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default();
    let field = text.lines().find_map(|l| l.strip_prefix("connected_clients:")).unwrap_or("?");
    field.trim().to_owned()
}

/// Opens `count` connections through the front, one after another, each
/// answering one PING: those held, why others failed (it stops after 20
/// failures), and the time it took.
fn hold(port: u16, count: usize) -> (Vec<TcpStream>, Vec<String>, Duration) {
    let started = Instant::now();
    let (mut open, mut failures) = (Vec::with_capacity(count), Vec::new());
    while open.len() + failures.len() < count && failures.len() < 20 {
        match ping_through(port) {
            Ok((stream, _)) => open.push(stream),
            Err(e) => failures.push(e),
        }
    }
    (open, failures, started.elapsed())
}

/// Closes `open` the way a Redis client ends politely (QUIT, then close), so
/// that Redis closes first and the member's side keeps the TIME_WAIT, and
/// waits until replicator has let go of them (its descriptors back to `fds`).
fn release(open: Vec<TcpStream>, pid: u32, fds: usize) {
    for mut stream in open {
        let _ = command(&mut stream, "QUIT");
    }
    eventually("replicator to close the connections", Duration::from_secs(60), || {
        (open_fds(pid) <= fds + 10).then_some(())
    });
}

async fn idle(member: &Member, client: &ApiClient, pid: u32, bench_nofile: u64) {
    let (soft, hard) = nofile_of(pid);
    let own = open_fds(pid);
    // Each spliced connection costs replicator two descriptors (the client's and the member's).
    let fits = (soft as usize).saturating_sub(own + 100) / 2;
    let wanted = IDLE.min(fits).min((bench_nofile as usize).saturating_sub(200));
    room_for(&member.ip, REDIS_PORT, wanted);
    std::thread::sleep(Duration::from_secs(1));
    let (rss_before, fds_before) = (rss_kib(pid), open_fds(pid));
    let api_before = api_times(client).await;

    let (open, failures, opening) = hold(member.front, wanted);
    std::thread::sleep(Duration::from_secs(2));
    let (rss_open, fds_open) = (rss_kib(pid), open_fds(pid));
    let clients = redis_clients(&member.ip);
    let api_open = api_times(client).await;
    let one_more = ping_through(member.front).map(|(_, t)| t);
    let held = open.len();
    release(open, pid, fds_before);
    std::thread::sleep(Duration::from_secs(2));
    let mut cycles = vec![(rss_open, rss_kib(pid))];
    // Twice more: memory the allocator kept is reused, or it grows.
    for _ in 0..2 {
        room_for(&member.ip, REDIS_PORT, wanted);
        let (again, _, _) = hold(member.front, wanted);
        std::thread::sleep(Duration::from_secs(2));
        let with = rss_kib(pid);
        release(again, pid, fds_before);
        std::thread::sleep(Duration::from_secs(2));
        cycles.push((with, rss_kib(pid)));
    }

    let mib = |kib: u64| format!("{:.1} MiB", kib as f64 / 1024.0);
    let per = (rss_open as f64 - rss_before as f64) / held.max(1) as f64;
    println!("### Idle connections held through the front (each answered one PING)\n");
    println!("| measurement | value |");
    println!("|---|---|");
    println!("| connections asked for / held | {wanted} / **{held}** |");
    println!("| Redis's connected_clients while they are open | {clients} |");
    println!("| time to open them (one after another, PING each) | {:.1} s |", opening.as_secs_f64());
    println!("| replicator's RSS before | {} |", mib(rss_before));
    for (i, (with, after)) in cycles.iter().enumerate() {
        println!(
            "| replicator's RSS, time {}: with them open / once closed (QUIT) | {} / {} |",
            i + 1,
            mib(*with),
            mib(*after)
        );
    }
    println!("| **RSS per connection** (the first time) | **{per:.1} KiB** |");
    println!("| replicator's descriptors: before / with them open | {fds_before} / {fds_open} |");
    println!(
        "| `GET /v1/groups` ({API_CALLS} calls, one client): median (slowest) before / with them open | {} ({}) / {} ({}) |",
        ms_with(api_before.0, 2),
        ms_with(api_before.1, 2),
        ms_with(api_open.0, 2),
        ms_with(api_open.1, 2)
    );
    let one_more = match one_more {
        Ok(t) => ms_with(t, 2),
        Err(e) => format!("failed: {e}"),
    };
    println!("| one more new connection's PING while they are open | {one_more} |\n");
    println!("replicator's RLIMIT_NOFILE: soft {soft}, hard {hard}; the bench's soft limit: {bench_nofile}.");
    if wanted < IDLE {
        println!(
            "Fewer than {IDLE} asked for: replicator's open-file limit ({soft}) holds at most {fits} spliced connections \
             (two descriptors each, beside its {own} own), and its hard limit could not be raised here."
        );
    }
    if !failures.is_empty() {
        println!("Failures: {} (first: {})", failures.len(), failures[0]);
    }
    println!();
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // The held connections' client ends are this process's, and replicator
    // inherits its limits: a hard limit above 2 × 10,000 where the machine
    // lets us (root with CAP_SYS_RESOURCE), then the soft one up to it.
    let _ = rlimit::Resource::NOFILE.set(1 << 16, 1 << 16);
    let bench_nofile = rlimit::increase_nofile_limit(u64::MAX).unwrap_or(1024);
    let ticks: f64 = Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0);
    let scope = Scope::new("front-bench");
    let network = scope.network("net");
    let (iperf_front, redis_front) = two_free_ports();
    let iperf_member = original(&scope, "iperf", iperf_front, IPERF_PORT, &network, &[iperf_image()]);
    let redis =
        [redis_image(), "/usr/bin/redis-server", "--protected-mode", "no", "--save", "", "--maxclients", "20000"];
    let redis_member = original(&scope, "redis", redis_front, REDIS_PORT, &network, &redis);
    let ports = format!("{iperf_front}-{redis_front}");
    let server = scope.process_server(&[
        "--front-ports",
        &ports,
        "--front-address",
        "127.0.0.1",
        "--autoscale-interval",
        "1h",
        "--stop-timeout",
        "1s",
    ]);
    let client = server.client();
    for member in [&iperf_member, &redis_member] {
        let started = Instant::now();
        while try_group(&client, &member.name).await.is_err() {
            assert!(started.elapsed() < Duration::from_secs(60), "replicator never saw {}", member.name);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    eventually("Redis through the front", Duration::from_secs(60), || ping_through(redis_member.front).ok());
    let pid = server.pid();
    let engine = docker(&["version", "-f", "{{.Server.Version}} (API {{.Server.APIVersion}})"]);
    println!("Docker Engine {engine}; replicator pid {pid}; one member per group.\n");

    throughput(&iperf_member, pid, ticks);
    latency(&redis_member);
    idle(&redis_member, &client, pid, bench_nofile).await;
}
