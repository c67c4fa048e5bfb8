//! Scale from zero: N sleeping groups, one request each at the same moment
//! through the wake listener, each timed until the app's own 200; against the
//! same containers put to sleep and woken straight on the engine socket
//! (stop or pause, then start or unpause through the engine adapter) and
//! polled over HTTP on their network address. Both sleep modes, N = 1, 5
//! and 25, interleaved round by round. Then the demo app, stopped, for a
//! WebSocket's first echo and a gRPC call's answer (h2c) through the wake
//! listener, against the same app started on the engine and tried every 5 ms.
//!
//! `cargo bench --bench coldstart` (needs the engine and busybox-static, as
//! the tests do; `-- protocols` for the WebSocket and gRPC rows alone);
//! prints Markdown tables; docs/performance.md keeps the published ones.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use http::{Method, StatusCode};
use replicator::cli::remote::ApiClient;
use replicator::engine::{DockerEngine, Engine};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use common::{docker, eventually, free_port, image, median, ms_with, percentile, try_group, Scope, Server};

const ROUNDS: usize = 5;
const SIZES: [usize; 3] = [1, 5, 25];
const PORT: u16 = 8080;
/// Longest one request (or the direct path's polling) may take before it counts as unanswered.
const DEADLINE: Duration = Duration::from_secs(60);
/// A pause between putting containers to sleep and waking them, so the
/// engine's events of the one do not overlap the other.
const SETTLE: Duration = Duration::from_millis(500);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Pause,
    Stop,
}

impl Mode {
    fn label(self) -> &'static str {
        match self {
            Mode::Pause => "pause",
            Mode::Stop => "stop",
        }
    }

    /// The state a container of this mode sleeps in, as `docker inspect` names it.
    fn asleep(self) -> &'static str {
        match self {
            Mode::Pause => "paused",
            Mode::Stop => "exited",
        }
    }
}

/// One container serving `body` on `PORT`: a group's original, or a direct one.
struct App {
    id: String,
    /// The container's name; for a group's original, the group's.
    name: String,
    /// What the app answers `GET /` with (its own, so that no other answer passes).
    body: String,
}

/// The app's command: `body` at `/`, on `PORT`.
fn serve(body: &str) -> String {
    format!("mkdir -p /www && echo {body} > /www/index.html && exec httpd -f -p {PORT} -h /www")
}

/// `count` apps `{prefix}0...` at once (four `docker run` at a time), with `labels`, on `network`.
fn apps(scope: &Scope, prefix: &str, count: usize, labels: &[String], network: &str) -> Vec<App> {
    let made = |i: usize| {
        let suffix = format!("{prefix}{i}");
        let body = format!("app-{}", scope.name(&suffix));
        let command = serve(&body);
        let mut args: Vec<&str> = labels.iter().flat_map(|l| ["--label", l.as_str()]).collect();
        args.extend(["--network", network, image(), "sh", "-c", &command]);
        let id = scope.run(&suffix, &args);
        App { id, name: scope.name(&suffix), body }
    };
    let mut all = Vec::new();
    for chunk in (0..count).collect::<Vec<_>>().chunks(4) {
        let made: Vec<App> = std::thread::scope(|s| {
            let handles: Vec<_> = chunk.iter().map(|&i| s.spawn(move || made(i))).collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        all.extend(made);
    }
    all
}

/// One `GET /` over a new connection to `addr` (`Connection: close`, read to
/// the end): the status and body, or why there is none.
async fn get(addr: &str, group: Option<&str>, within: Duration) -> Result<(u16, String), String> {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await.map_err(|e| format!("connect: {e}"))?;
        let header = group.map(|g| format!("X-Replicator-Group: {g}\r\n")).unwrap_or_default();
        let request = format!("GET / HTTP/1.1\r\nHost: {addr}\r\n{header}Connection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.map_err(|e| format!("write: {e}"))?;
        let mut received = Vec::new();
        stream.read_to_end(&mut received).await.map_err(|e| format!("read: {e}"))?;
        let text = String::from_utf8_lossy(&received);
        let (head, body) = text.split_once("\r\n\r\n").ok_or_else(|| format!("no HTTP answer: {text:?}"))?;
        let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).ok_or("no status")?;
        Ok((status, body.to_owned()))
    };
    tokio::time::timeout(within, exchange).await.unwrap_or_else(|_| Err(format!("no answer within {within:?}")))
}

/// What one request got when it was not the app's 200, for the report.
fn wrong(status: u16, body: &str) -> String {
    format!("HTTP {status}: {}", body.trim().chars().take(120).collect::<String>())
}

/// One round's times of the answered requests, and what the others got.
#[derive(Default)]
struct Round {
    times: Vec<Duration>,
    failures: Vec<String>,
}

impl Round {
    fn of(results: Vec<Result<Duration, String>>) -> Self {
        let mut round = Round::default();
        for r in results {
            match r {
                Ok(t) => round.times.push(t),
                Err(e) => round.failures.push(e),
            }
        }
        round
    }
}

/// The rounds of one path: medians of each round's p50 and p95, the worst
/// time of any round, and the requests answered.
#[derive(Default)]
struct Path {
    p50s: Vec<Duration>,
    p95s: Vec<Duration>,
    max: Option<Duration>,
    answered: usize,
    sent: usize,
    failures: Vec<String>,
}

impl Path {
    fn add(&mut self, round: Round) {
        self.sent += round.times.len() + round.failures.len();
        self.answered += round.times.len();
        self.failures.extend(round.failures);
        if round.times.is_empty() {
            return;
        }
        self.p50s.push(percentile(round.times.clone(), 0.5));
        self.p95s.push(percentile(round.times.clone(), 0.95));
        let worst = *round.times.iter().max().unwrap();
        self.max = Some(self.max.map_or(worst, |m| m.max(worst)));
    }

    fn p50(&self) -> Option<Duration> {
        (!self.p50s.is_empty()).then(|| median(self.p50s.clone()))
    }

    fn p95(&self) -> Option<Duration> {
        (!self.p95s.is_empty()).then(|| median(self.p95s.clone()))
    }
}

fn cell(d: Option<Duration>) -> String {
    d.map_or_else(|| "—".to_owned(), |d| ms_with(d, 0))
}

/// The bench's server, its client, and where it holds requests.
struct Through {
    _server: Server,
    client: ApiClient,
    wake: String,
}

impl Through {
    /// Puts the groups to sleep (`PUT .../replicas {"replicas": 0}`, all at
    /// once) and waits until each original sleeps and replicator says so.
    async fn sleep(&self, groups: &[App], mode: Mode) {
        join_all(groups.iter().map(|g| async move {
            let path = format!("/v1/groups/{}/replicas", g.name);
            let r = self.client.request(Method::PUT, &path, Some(&json!({ "replicas": 0 }))).await.unwrap();
            assert_eq!(r.status, StatusCode::OK, "put {} to sleep: {}", g.name, r.text());
        }))
        .await;
        for g in groups {
            eventually(&format!("{} to sleep", g.name), Duration::from_secs(60), || {
                (docker(&["inspect", "-f", "{{.State.Status}}", &g.id]) == mode.asleep()).then_some(())
            });
            let started = Instant::now();
            while !try_group(&self.client, &g.name).await.is_ok_and(|v| v["asleep"] == true) {
                assert!(started.elapsed() < Duration::from_secs(60), "replicator never saw {} asleep", g.name);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }

    /// One request per group at once through the wake listener: each one's
    /// time to the app's own 200, or what it got instead.
    async fn wake(&self, groups: &[App]) -> Round {
        let tasks = groups.iter().map(|g| {
            let (wake, name, body) = (self.wake.clone(), g.name.clone(), g.body.clone());
            tokio::spawn(async move {
                let started = Instant::now();
                match get(&wake, Some(&name), DEADLINE).await {
                    Ok((200, got)) if got.trim() == body => Ok(started.elapsed()),
                    Ok((status, got)) => Err(wrong(status, &got)),
                    Err(e) => Err(e),
                }
            })
        });
        Round::of(join_all(tasks).await.into_iter().map(Result::unwrap).collect())
    }
}

/// The baseline: the engine adapter's calls, and HTTP polling of the member's address.
struct Direct {
    engine: Arc<DockerEngine>,
    network: String,
}

impl Direct {
    async fn sleep(&self, apps: &[App], mode: Mode) {
        join_all(apps.iter().map(|a| async move {
            match mode {
                Mode::Pause => self.engine.pause_container(&a.id).await.unwrap(),
                Mode::Stop => self.engine.stop_container(&a.id, 1).await.unwrap(),
            }
        }))
        .await;
        for a in apps {
            assert_eq!(docker(&["inspect", "-f", "{{.State.Status}}", &a.id]), mode.asleep(), "{}", a.name);
        }
    }

    /// Wakes each app at once (`unpause`, or `start` then an inspect for its
    /// new address) and polls it every 5 ms until its own 200.
    async fn wake(&self, apps: &[App], mode: Mode) -> Round {
        let tasks = apps.iter().map(|a| {
            let (engine, network, id, body) = (self.engine.clone(), self.network.clone(), a.id.clone(), a.body.clone());
            tokio::spawn(async move {
                let started = Instant::now();
                let woken = match mode {
                    Mode::Pause => engine.unpause_container(&id).await,
                    Mode::Stop => engine.start_container(&id).await,
                };
                woken.map_err(|e| format!("wake: {e}"))?;
                let details = engine.inspect_container(&id).await.map_err(|e| format!("inspect: {e}"))?;
                let ip = details.endpoints.get(&network).map(|e| e.ip_address.clone()).unwrap_or_default();
                if ip.is_empty() {
                    return Err(format!("no address on {network}"));
                }
                let addr = format!("{ip}:{PORT}");
                let mut last = String::new();
                while started.elapsed() < DEADLINE {
                    match get(&addr, None, Duration::from_millis(500)).await {
                        Ok((200, got)) if got.trim() == body => return Ok(started.elapsed()),
                        Ok((status, got)) => last = wrong(status, &got),
                        Err(e) => last = e,
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err(format!("no 200 within {DEADLINE:?}: {last}"))
            })
        });
        Round::of(join_all(tasks).await.into_iter().map(Result::unwrap).collect())
    }
}

/// A table's row: `first` (its leading cells), the direct path's times, ours, the ratio of the p95s, how many were answered.
fn row(first: &str, raw: &Path, ours: &Path) -> String {
    let ratio = match (ours.p95(), raw.p95()) {
        (Some(o), Some(r)) => format!("**{:.2}**", o.as_secs_f64() / r.as_secs_f64()),
        _ => "—".to_owned(),
    };
    let times = [raw.p50(), raw.p95(), ours.p50(), ours.p95(), ours.max].map(cell).join(" | ");
    format!("| {first} | {times} | {ratio} | {}/{} |", ours.answered, ours.sent)
}

/// The worst few distinct failures, counted, for the lines under the table.
fn summary(failures: &[String]) -> String {
    let mut counted: Vec<(String, usize)> = Vec::new();
    for f in failures {
        match counted.iter_mut().find(|(k, _)| k == f) {
            Some((_, n)) => *n += 1,
            None => counted.push((f.clone(), 1)),
        }
    }
    counted.iter().take(3).map(|(f, n)| format!("{n}× {f}")).collect::<Vec<_>>().join("; ")
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let scope = Scope::new("coldstart-bench");
    let network = scope.network("net");
    let most = *SIZES.iter().max().unwrap();
    // `cargo bench --bench coldstart -- protocols` (or `-- late`): those rows alone.
    let only = |part: &str| std::env::args().any(|a| a == part);
    let only_protocols = only("protocols") || only("late");
    let modes: &[Mode] = if only_protocols { &[] } else { &[Mode::Pause, Mode::Stop] };
    let mut sets = Vec::new();
    for &mode in modes {
        let labels: Vec<String> = [
            "replicator.enable=true",
            "replicator.min=0",
            &format!("replicator.sleep={}", mode.label()),
            &format!("replicator.wake.port={PORT}"),
            &format!("replicator.wake.network={network}"),
        ]
        .iter()
        .map(|l| l.to_string())
        .collect();
        let groups = apps(&scope, &format!("{}-g", mode.label()), most, &labels, &network);
        let direct = apps(&scope, &format!("{}-d", mode.label()), most, &[], &network);
        sets.push((mode, groups, direct));
    }
    let wake = format!("127.0.0.1:{}", free_port());
    let server = scope.process_server(&["--wake-listen", &wake, "--stop-timeout", "1s", "--autoscale-interval", "1h"]);
    let client = server.client();
    for (_, groups, _) in &sets {
        for g in groups {
            let started = Instant::now();
            while try_group(&client, &g.name).await.is_err() {
                assert!(started.elapsed() < Duration::from_secs(60), "replicator never saw {}", g.name);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    let through = Through { _server: server, client, wake };
    let direct = Direct { engine: Arc::new(common::engine()), network: network.clone() };

    if !only_protocols {
        println!(
            "| N | mode | direct p50 | direct p95 | through replicator p50 | p95 | max | ratio of p95 | answered |"
        );
        println!("|---|---|---|---|---|---|---|---|---|");
    }
    let mut notes = Vec::new();
    for (mode, groups, apps) in &sets {
        for n in SIZES {
            let (groups, apps) = (&groups[..n], &apps[..n]);
            let (mut ours, mut raw) = (Path::default(), Path::default());
            for round in 0..ROUNDS {
                // Who goes first alternates, so that a slow moment of the engine hits both.
                for first in [round % 2 == 0, round % 2 != 0] {
                    if first {
                        through.sleep(groups, *mode).await;
                        tokio::time::sleep(SETTLE).await;
                        ours.add(through.wake(groups).await);
                    } else {
                        direct.sleep(apps, *mode).await;
                        tokio::time::sleep(SETTLE).await;
                        raw.add(direct.wake(apps, *mode).await);
                    }
                }
            }
            println!("{}", row(&format!("{n} | {}", mode.label()), &raw, &ours));
            for (path, p) in [("through replicator", &ours), ("direct", &raw)] {
                if !p.failures.is_empty() {
                    let unanswered = p.sent - p.answered;
                    let what = summary(&p.failures);
                    notes.push(format!("N={n}, {}, {path}: {unanswered} unanswered: {what}", mode.label()));
                }
            }
        }
    }
    for note in &notes {
        println!("\n- {note}");
    }
    if !only_protocols {
        println!("\n{ROUNDS} rounds each; p50 and p95 are the medians of each round's, max the worst of any round.");
    }
    if !only("late") {
        protocols(&scope, &network, &through, &direct).await;
    }
    if !only("protocols") {
        late_app(&scope, &network, &through, &direct).await;
    }
}

/// How many requests nginx sends at once to the group whose app listens late.
const LATE_REQUESTS: usize = 30;

/// 30 requests at once through nginx (the guide's snippet, its upstream on
/// the wake listener) for a group asleep by `stop` whose app listens 1 s
/// after it starts: the slowest of them, against the same app started on
/// the engine and polled every 10 ms until its first 200, round by round.
async fn late_app(scope: &Scope, network: &str, through: &Through, direct: &Direct) {
    let labels: Vec<String> = [
        "replicator.enable=true".to_owned(),
        "replicator.min=0".to_owned(),
        "replicator.sleep=stop".to_owned(),
        format!("replicator.wake.port={PORT}"),
        format!("replicator.wake.network={network}"),
    ]
    .into();
    let late = |suffix: &str, labels: &[String]| {
        let body = format!("app-{}", scope.name(suffix));
        let command = format!("sleep 1; {}", serve(&body));
        let mut args: Vec<&str> = labels.iter().flat_map(|l| ["--label", l.as_str()]).collect();
        args.extend(["--network", network, image(), "sh", "-c", &command]);
        let id = scope.run(suffix, &args);
        App { id, name: scope.name(suffix), body }
    };
    let (group, app) = (late("late-g", &labels), late("late-d", &[]));
    let dir = tempfile::tempdir().unwrap();
    let upstreams = dir.path().join("upstreams.conf");
    std::fs::write(&upstreams, format!("upstream {} {{ server {}; }}\n", group.name, through.wake)).unwrap();
    let (directives, locations) = common::lb::readme_snippet(&group.name, &through.wake);
    let nginx = common::lb::Nginx::start_with_locations(
        dir.path(),
        free_port(),
        &upstreams,
        &group.name,
        &directives,
        &locations,
    );
    let front = format!("127.0.0.1:{}", nginx.port);
    let started = Instant::now();
    while try_group(&through.client, &group.name).await.is_err() {
        assert!(started.elapsed() < Duration::from_secs(60), "replicator never saw {}", group.name);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!("\n| round | direct: start, poll every 10 ms | slowest of {LATE_REQUESTS} through nginx | difference | answered |");
    println!("|---|---|---|---|---|");
    let mut worst = Duration::ZERO;
    for round in 1..=ROUNDS {
        through.sleep(std::slice::from_ref(&group), Mode::Stop).await;
        tokio::time::sleep(SETTLE).await;
        let began = Instant::now();
        let sent = (0..LATE_REQUESTS).map(|_| get(&front, None, DEADLINE));
        let answers = join_all(sent).await;
        let slowest = began.elapsed();
        let answered = answers.iter().filter(|a| matches!(a, Ok((200, b)) if b.trim() == group.body)).count();
        direct.sleep(std::slice::from_ref(&app), Mode::Stop).await;
        tokio::time::sleep(SETTLE).await;
        let baseline = direct.polled(&app, Duration::from_millis(10)).await;
        let difference = slowest.saturating_sub(baseline);
        worst = worst.max(difference);
        println!(
            "| {round} | {} | {} | {} | {answered}/{LATE_REQUESTS} |",
            cell(Some(baseline)),
            cell(Some(slowest)),
            cell(Some(difference))
        );
    }
    println!(
        "\nThe slowest request through nginx came at most {} after the app's own first answer (goal: 300 ms).",
        cell(Some(worst))
    );
}

/// The demo app's two protocols beyond HTTP/1.1 requests.
#[derive(Debug, Clone, Copy)]
enum Protocol {
    WebSocket,
    Grpc,
}

impl Protocol {
    /// The first answer: a WebSocket message echoed, or a gRPC call's answer with `grpc-status: 0`.
    async fn first(self, addr: &str, group: Option<&str>, within: Duration) -> Result<(), String> {
        let answered = async {
            match self {
                Protocol::WebSocket => websocket_echo(addr, group).await,
                Protocol::Grpc => {
                    let answer = common::grpc::call_at(addr, "/grpc.health.v1.Health/Check", group).await?;
                    match answer.status.as_deref() {
                        Some("0") if answer.messages.len() == 1 => Ok(()),
                        _ => Err(format!("{answer:?}")),
                    }
                }
            }
        };
        tokio::time::timeout(within, answered).await.unwrap_or_else(|_| Err(format!("nothing within {within:?}")))
    }
}

/// A WebSocket to the demo app's `/ws` at `addr`, one message echoed.
async fn websocket_echo(addr: &str, group: Option<&str>) -> Result<(), String> {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::Message;
    let mut request = format!("ws://{addr}/ws").into_client_request().map_err(|e| e.to_string())?;
    if let Some(group) = group {
        request.headers_mut().insert("x-replicator-group", group.parse().map_err(|_| "a group name")?);
    }
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.map_err(|e| format!("handshake: {e}"))?;
    socket.send(Message::text("hello")).await.map_err(|e| format!("send: {e}"))?;
    match socket.next().await {
        Some(Ok(Message::Text(back))) if back.as_str() == "hello" => Ok(()),
        other => Err(format!("no echo: {other:?}")),
    }
}

/// The demo app as a stopped-asleep group (`wake` its labels), and the same
/// app unmanaged; both listen on 3000 at once when started.
fn demo_pair(scope: &Scope, network: &str, certs: &std::path::Path, protocol: Protocol) -> (App, App) {
    let ssl = format!("{}:/ssl:ro", certs.display());
    let run = |suffix: &str, labels: &[String]| {
        let mut args: Vec<&str> = labels.iter().flat_map(|l| ["--label", l.as_str()]).collect();
        args.extend(["-v", &ssl, "--network", network, "replicator-demo:local"]);
        let id = scope.run(suffix, &args);
        App { id, name: scope.name(suffix), body: String::new() }
    };
    let wake_protocol = match protocol {
        Protocol::WebSocket => "http1",
        Protocol::Grpc => "h2c",
    };
    let labels: Vec<String> = [
        "replicator.enable=true".to_owned(),
        "replicator.min=0".to_owned(),
        "replicator.sleep=stop".to_owned(),
        "replicator.wake.port=3000".to_owned(),
        format!("replicator.wake.network={network}"),
        format!("replicator.wake.protocol={wake_protocol}"),
    ]
    .into();
    let suffix = format!("{protocol:?}").to_lowercase();
    (run(&format!("{suffix}-g"), &labels), run(&format!("{suffix}-d"), &[]))
}

/// A WebSocket row and a gRPC row: the time from one connection to the
/// wake listener for the stopped group to its first answer, against the
/// same app started on the engine and tried every 5 ms.
async fn protocols(scope: &Scope, network: &str, through: &Through, direct: &Direct) {
    common::images();
    let certs = common::certs();
    println!(
        "\n| first answer | direct p50 | direct p95 | through replicator p50 | p95 | max | ratio of p95 | answered |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for protocol in [Protocol::WebSocket, Protocol::Grpc] {
        let (group, app) = demo_pair(scope, network, certs.path(), protocol);
        let started = Instant::now();
        while try_group(&through.client, &group.name).await.is_err() {
            assert!(started.elapsed() < Duration::from_secs(60), "replicator never saw {}", group.name);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let (mut ours, mut raw) = (Path::default(), Path::default());
        for round in 0..ROUNDS {
            for first in [round % 2 == 0, round % 2 != 0] {
                if first {
                    through.sleep(std::slice::from_ref(&group), Mode::Stop).await;
                    tokio::time::sleep(SETTLE).await;
                    let began = Instant::now();
                    let result = protocol.first(&through.wake, Some(&group.name), DEADLINE).await;
                    ours.add(Round::of(vec![result.map(|()| began.elapsed())]));
                } else {
                    direct.sleep(std::slice::from_ref(&app), Mode::Stop).await;
                    tokio::time::sleep(SETTLE).await;
                    raw.add(direct.first(&app, protocol).await);
                }
            }
        }
        let name = match protocol {
            Protocol::WebSocket => "a WebSocket's first echo",
            Protocol::Grpc => "a gRPC call's answer (h2c)",
        };
        println!("{}", row(name, &raw, &ours));
    }
}

impl Direct {
    /// Starts the app and polls `GET /` on its address every `period` until its own 200: how long that took.
    async fn polled(&self, app: &App, period: Duration) -> Duration {
        let started = Instant::now();
        self.engine.start_container(&app.id).await.expect("start");
        let details = self.engine.inspect_container(&app.id).await.expect("inspect");
        let addr = format!("{}:{PORT}", details.endpoints[&self.network].ip_address);
        while started.elapsed() < DEADLINE {
            if matches!(get(&addr, None, Duration::from_millis(500)).await, Ok((200, b)) if b.trim() == app.body) {
                return started.elapsed();
            }
            tokio::time::sleep(period).await;
        }
        panic!("{} never answered", app.name);
    }

    /// Starts the app and tries `protocol` on its address every 5 ms until the first answer.
    async fn first(&self, app: &App, protocol: Protocol) -> Round {
        let started = Instant::now();
        let tried = async {
            self.engine.start_container(&app.id).await.map_err(|e| format!("start: {e}"))?;
            let details = self.engine.inspect_container(&app.id).await.map_err(|e| format!("inspect: {e}"))?;
            let ip = details.endpoints.get(&self.network).map(|e| e.ip_address.clone()).unwrap_or_default();
            let addr = format!("{ip}:3000");
            let mut last = String::new();
            while started.elapsed() < DEADLINE {
                match protocol.first(&addr, None, Duration::from_millis(500)).await {
                    Ok(()) => return Ok(started.elapsed()),
                    Err(e) => last = e,
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Err(format!("no answer within {DEADLINE:?}: {last}"))
        };
        Round::of(vec![tried.await])
    }
}
