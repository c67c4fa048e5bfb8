//! The performance harness: replicator measured against the raw engine calls
//! in the same run, on the same engine, interleaved so that noise hits both.
//!
//! `cargo bench --bench replicator` (needs the engine and busybox-static, as
//! the tests do). Prints a Markdown table of ratios; docs/performance.md
//! keeps the published one.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use http::{Method, StatusCode};
use replicator::cli::remote::ApiClient;
use replicator::engine::{DockerEngine, Engine};
use replicator::model::ListQuery;
use replicator::rules::bounds;
use replicator::rules::plan::{plan_clone, CloneSpec};
use replicator::tls::{client_config, TlsFiles};
use serde_json::json;

use common::{docker, eventually, median, ms, percentile, Scope, Server};

const SEQUENTIAL: usize = 15;

fn rss_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// The baseline: the same clone made straight on the engine, no HTTP, no TLS, no service.
struct Direct {
    engine: DockerEngine,
    source: String,
}

impl Direct {
    async fn clone_once(&self, name: &str) -> Duration {
        let started = Instant::now();
        let details = self.engine.inspect_container(&self.source).await.unwrap();
        let identity = bounds::identify(&details.id, &details.name, &details.labels());
        let spec = CloneSpec {
            name,
            group: &identity.name,
            original_id: &identity.original_id,
            tag_image_id: None,
            keep_host_ports: false,
            extra_labels: Default::default(),
        };
        let plan = plan_clone(&details, &spec);
        let id = self.engine.create_container(&plan.create).await.unwrap();
        self.engine.start_container(&id).await.unwrap();
        started.elapsed()
    }

    async fn clone_once_named(&self, base: &str, burst: usize, i: usize) -> Duration {
        self.clone_once(&format!("{base}-burst{burst}-{i}")).await
    }
}

struct Through {
    url: String,
    certs: std::path::PathBuf,
    source: String,
}

impl Through {
    /// A new client, so a new TCP connection and mTLS handshake, as the original's curl.
    async fn clone_once(&self) -> Duration {
        let config = client_config(&TlsFiles::client_in(&self.certs)).unwrap();
        let client = ApiClient::with_config(&self.url, config, false).unwrap();
        let started = Instant::now();
        let r = client.request(Method::POST, &format!("/v1/containers/{}/replicas", self.source), None).await.unwrap();
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
        started.elapsed()
    }
}

/// Removes every clone (the source stays) so each measurement starts alike.
fn clear(scope: &Scope, source_name: &str) {
    let ids: Vec<String> = scope
        .containers()
        .into_iter()
        .filter(|id| docker(&["inspect", "-f", "{{.Name}}", id]) != format!("/{source_name}"))
        .collect();
    if !ids.is_empty() {
        let mut args = vec!["rm", "-f"];
        args.extend(ids.iter().map(String::as_str));
        docker(&args);
    }
}

async fn time_call<F: std::future::Future>(f: F) -> Duration {
    let started = Instant::now();
    f.await;
    started.elapsed()
}

/// What the bench runs against: a source container, replicator serving it,
/// and both ways of cloning it.
struct Bench {
    /// Stopped before the scope's containers go.
    server: Server,
    scope: Scope,
    source_name: String,
    direct: Direct,
    through: Through,
}

/// Medians of a replication through replicator and straight on the engine.
struct Pair {
    ours: Duration,
    raw: Duration,
}

impl Pair {
    fn ratio(&self) -> f64 {
        self.ours.as_secs_f64() / self.raw.as_secs_f64()
    }
}

impl Bench {
    /// `/metrics` counts at least `groups` groups.
    fn wait_for_groups(&self, groups: usize, within: Duration) {
        eventually(&format!("the inventory to see {groups} groups"), within, || {
            let (status, metrics) = self.server.admin_get("/metrics");
            (status == 200 && metrics.matches("replicator_group_size{").count() >= groups).then_some(())
        });
    }

    fn clear(&self) {
        clear(&self.scope, &self.source_name);
    }

    /// One clone at a time, the two ways interleaved: their medians.
    async fn sequential(&self) -> Pair {
        let (mut ours, mut raw) = (Vec::new(), Vec::new());
        for i in 0..SEQUENTIAL {
            ours.push(self.through.clone_once().await);
            self.clear();
            raw.push(self.direct.clone_once(&format!("{}-direct-{i}", self.source_name)).await);
            self.clear();
        }
        Pair { ours: median(ours), raw: median(raw) }
    }

    /// `n` clones at once, each way: the wall times.
    async fn burst(&self, n: usize) -> Pair {
        let started = Instant::now();
        join_all((0..n).map(|_| self.through.clone_once())).await;
        let ours = started.elapsed();
        self.clear();
        let started = Instant::now();
        join_all((0..n).map(|i| self.direct.clone_once_named(&self.source_name, n, i))).await;
        let raw = started.elapsed();
        self.clear();
        Pair { ours, raw }
    }

    /// One request for ten replicas against ten direct clones made at once: the wall times.
    async fn count10(&self) -> Pair {
        let started = Instant::now();
        let path = format!("/v1/containers/{}/replicas?count=10", self.source_name);
        let r = self.server.client().request(Method::POST, &path, None).await.unwrap();
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
        let ours = started.elapsed();
        self.clear();
        let started = Instant::now();
        join_all((0..10).map(|i| self.direct.clone_once_named(&self.source_name, 1010, i))).await;
        let raw = started.elapsed();
        self.clear();
        Pair { ours, raw }
    }

    /// A scale-down of 8 members that ignore SIGTERM, each taking the whole stop timeout.
    async fn stubborn_scale_down(&self) -> Duration {
        let stubborn = self.scope.name("stubborn");
        let ignores_term = "trap '' TERM; while :; do sleep 1; done";
        let labels = ["--label", "replicator.enable=true", "--label", "replicator.max=20"];
        self.scope.run("stubborn", &[&labels[..], &[common::IMAGE, "sh", "-c", ignores_term]].concat());
        let client = self.server.client();
        let scale = |replicas: u32| {
            let (client, path) = (&client, format!("/v1/groups/{stubborn}/replicas"));
            async move {
                let r = client.request(Method::PUT, &path, Some(&json!({ "replicas": replicas }))).await.unwrap();
                assert_eq!(r.status, StatusCode::OK, "{}", r.text());
            }
        };
        scale(9).await;
        time_call(scale(1)).await
    }

    /// Where a replication's time goes: the source's inspect, which both
    /// make, and the lookup of its image's tag, which only replicator makes.
    async fn engine_calls(&self) -> (Vec<Duration>, Vec<Duration>) {
        let engine = &self.direct.engine;
        let (mut inspects, mut image_lookups) = (Vec::new(), Vec::new());
        for _ in 0..20 {
            inspects.push(time_call(engine.inspect_container(&self.direct.source)).await);
            image_lookups.push(time_call(engine.image_id(common::IMAGE)).await);
        }
        (inspects, image_lookups)
    }

    /// New mTLS handshakes one after the other for 3 s: their durations and rate.
    async fn handshakes(&self) -> (Vec<Duration>, f64) {
        let config = Arc::new(client_config(&TlsFiles::client_in(&self.server.certs)).unwrap());
        let connector = tokio_rustls::TlsConnector::from(config);
        let mut handshakes = Vec::new();
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(3) {
            let t = Instant::now();
            let tcp = tokio::net::TcpStream::connect(("127.0.0.1", self.server.port)).await.unwrap();
            connector.connect("localhost".try_into().unwrap(), tcp).await.unwrap();
            handshakes.push(t.elapsed());
        }
        let rate = handshakes.len() as f64 / started.elapsed().as_secs_f64();
        (handshakes, rate)
    }

    /// `GET /v1/groups` over keep-alive connections, 4 clients for 5 s: the rate and p99.
    async fn groups_under_load(&self) -> (f64, Duration) {
        let clients: Vec<ApiClient> = (0..4).map(|_| self.server.client()).collect();
        let deadline = Instant::now() + Duration::from_secs(5);
        let started = Instant::now();
        let per_client = join_all(clients.iter().map(|c| async move {
            let mut latencies = Vec::new();
            while Instant::now() < deadline {
                let t = Instant::now();
                let r = c.get("/v1/groups").await.unwrap();
                assert_eq!(r.status, StatusCode::OK);
                latencies.push(t.elapsed());
            }
            latencies
        }))
        .await;
        let elapsed = started.elapsed();
        let latencies: Vec<Duration> = per_client.into_iter().flatten().collect();
        (latencies.len() as f64 / elapsed.as_secs_f64(), percentile(latencies, 0.99))
    }

    /// What the engine's population may change: replicator's own overhead on
    /// a replication, and the cost of listing the groups.
    async fn population_costs(&self) -> PopulationCosts {
        let source = &self.through.source;
        let (mut ours, mut raw) = (Vec::new(), Vec::new());
        for i in 0..9 {
            ours.push(self.through.clone_once().await);
            clear_clones(&self.scope, source);
            raw.push(self.direct.clone_once(&format!("{source}-pop-{i}")).await);
            clear_clones(&self.scope, source);
        }
        let client = self.server.client();
        let mut latencies = Vec::new();
        for _ in 0..300 {
            let t = Instant::now();
            let r = client.get("/v1/groups").await.unwrap();
            assert_eq!(r.status, StatusCode::OK);
            latencies.push(t.elapsed());
        }
        PopulationCosts {
            replication: Pair { ours: median(ours), raw: median(raw) },
            groups_median: median(latencies.clone()),
            groups_p99: percentile(latencies, 0.99),
        }
    }
}

/// See [`Bench::population_costs`].
struct PopulationCosts {
    replication: Pair,
    groups_median: Duration,
    groups_p99: Duration,
}

/// Everything the bench measured, for [`report`].
struct Results {
    sequential: Pair,
    bursts: Vec<(usize, Pair)>,
    count10: Pair,
    stubborn_scale_down: Duration,
    inspects: Vec<Duration>,
    image_lookups: Vec<Duration>,
    handshakes: Vec<Duration>,
    handshake_rate: f64,
    groups_rate: f64,
    groups_p99: Duration,
    idle_rss: u64,
    peak_rss: u64,
    engine_count: usize,
    few: PopulationCosts,
    many: PopulationCosts,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let scope = Scope::new("bench");
    let source = scope.web("src", &["--label", "replicator.max=1000"]);
    let source_name = scope.name("src");
    let server =
        scope.process_server(&["--max-replicas", "1000", "--autoscale-interval", "1h", "--stop-timeout", "2s"]);
    let direct = Direct { engine: common::engine(), source };
    let through = Through { url: server.url(), certs: server.certs.clone(), source: source_name.clone() };
    let bench = Bench { server, scope, source_name, direct, through };
    // Idle: started, and its inventory holding the source's group.
    bench.wait_for_groups(1, Duration::from_secs(30));
    let idle_rss = rss_kib(bench.server.pid(), "VmRSS:");

    let sequential = bench.sequential().await;
    let mut bursts = Vec::new();
    for n in [10usize, 50] {
        bursts.push((n, bench.burst(n).await));
    }
    let count10 = bench.count10().await;
    let stubborn_scale_down = bench.stubborn_scale_down().await;
    let (inspects, image_lookups) = bench.engine_calls().await;
    let (handshakes, handshake_rate) = bench.handshakes().await;
    let (groups_rate, groups_p99) = bench.groups_under_load().await;
    let peak_rss = rss_kib(bench.server.pid(), "VmHWM:");

    // The same costs with 5 containers on the engine, then with 2,000 (created,
    // not running, 50 of them originals of their own groups).
    let few = bench.population_costs().await;
    let engine_count = populate(&bench.direct.engine, &bench.scope, 2000, 50).await;
    bench.wait_for_groups(51, Duration::from_secs(120));
    let many = bench.population_costs().await;

    report(&Results {
        sequential,
        bursts,
        count10,
        stubborn_scale_down,
        inspects,
        image_lookups,
        handshakes,
        handshake_rate,
        groups_rate,
        groups_p99,
        idle_rss,
        peak_rss,
        engine_count,
        few,
        many,
    });
}

/// Prints the Markdown tables.
fn report(r: &Results) {
    println!("\n## replicator vs the raw engine (same run)\n");
    println!("| measurement | through replicator | direct engine calls | ratio |");
    println!("|---|---|---|---|");
    let compared = |what: &str, pair: &Pair| {
        println!("| {what} | {} | {} | {:.2} |", ms(pair.ours), ms(pair.raw), pair.ratio());
    };
    compared(&format!("replication, sequential median (n={SEQUENTIAL})"), &r.sequential);
    for (n, pair) in &r.bursts {
        compared(&format!("burst of {n}, wall time"), pair);
    }
    compared("one `count=10` request vs ten direct clones at once, wall time", &r.count10);
    println!(
        "| scale-down of 8 members ignoring SIGTERM vs one stop timeout (2 s) | {} | 2000.0 ms | {:.2} |",
        ms(r.stubborn_scale_down),
        r.stubborn_scale_down.as_secs_f64() / 2.0
    );
    println!("\n| server | value |\n|---|---|");
    println!("| `GET /v1/groups`, 4 keep-alive mTLS clients | {:.0} req/s, p99 {} |", r.groups_rate, ms(r.groups_p99));
    println!(
        "| new mTLS handshakes (sequential) | {:.0} /s (median {}) |",
        r.handshake_rate,
        ms(median(r.handshakes.clone()))
    );
    println!(
        "| RSS idle / peak under load | {:.1} MB / {:.1} MB |",
        r.idle_rss as f64 / 1024.0,
        r.peak_rss as f64 / 1024.0
    );
    println!("\n## Cost against the engine's population (same run)\n");
    println!("| measurement | 5 containers | {} containers, 50 groups | ratio |", r.engine_count);
    println!("|---|---|---|---|");
    let (few, many) = (&r.few.replication, &r.many.replication);
    println!(
        "| replication through replicator ÷ direct (medians of 9) | {:.2} ({} ÷ {}) | {:.2} ({} ÷ {}) | {:.2} |",
        few.ratio(),
        ms(few.ours),
        ms(few.raw),
        many.ratio(),
        ms(many.ours),
        ms(many.raw),
        many.ratio() / few.ratio()
    );
    let row = |what: &str, a: Duration, b: Duration| {
        println!("| {what} | {} | {} | {:.2} |", ms(a), ms(b), b.as_secs_f64() / a.as_secs_f64())
    };
    row("`GET /v1/groups`, median", r.few.groups_median, r.many.groups_median);
    row("`GET /v1/groups`, p99", r.few.groups_p99, r.many.groups_p99);
    println!("\n| where a replication's time goes | median |\n|---|---|");
    println!("| container inspect (both paths) | {} |", ms(median(r.inspects.clone())));
    println!("| image lookup (replicator only) | {} |", ms(median(r.image_lookups.clone())));
    println!("| direct clone: inspect + create + start | {} |", ms(r.sequential.raw));
    println!(
        "\nmachine: {} cores, {}, engine {}",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        std::fs::read_to_string("/proc/cpuinfo")
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("model name\t: ").map(str::to_owned))
            .unwrap_or_default(),
        docker(&["version", "--format", "{{.Server.Version}} (API {{.Server.APIVersion}})"])
    );
}

/// Removes the clones of `source` only (the population stays).
fn clear_clones(scope: &Scope, source: &str) {
    let ids =
        docker(&["ps", "-aq", "--filter", &format!("label={}", scope.label()), "--filter", &format!("name={source}-")]);
    let ids: Vec<&str> = ids.lines().collect();
    if !ids.is_empty() {
        docker(&[&["rm", "-f"], ids.as_slice()].concat());
    }
}

/// Creates `total` stopped containers, `groups` of them enabled originals
/// of their own group; returns how many containers the engine then has.
async fn populate(engine: &DockerEngine, scope: &Scope, total: usize, groups: usize) -> usize {
    use replicator::model::CreateRequest;
    let request = |i: usize| {
        let mut labels = json!({ common::TEST_LABEL: scope.id });
        if i < groups {
            labels["replicator.enable"] = "true".into();
        }
        let body = json!({ "Image": common::IMAGE, "Cmd": ["true"], "Labels": labels });
        CreateRequest { name: format!("{}-pop{i}", scope.id), body: body.as_object().cloned().unwrap() }
    };
    for chunk in (0..total).collect::<Vec<_>>().chunks(16) {
        join_all(chunk.iter().map(|i| {
            let r = request(*i);
            async move { engine.create_container(&r).await.unwrap() }
        }))
        .await;
    }
    engine.list_containers(&ListQuery { all: true, ..Default::default() }).await.unwrap().len()
}
