//! The performance harness: replicator measured against the raw engine calls
//! in the same run, on the same engine, interleaved so that noise hits both.
//!
//! `cargo bench --bench replicator` (needs the engine and busybox-static, as
//! the tests do). Prints a Markdown table of ratios; docs/performance.md
//! keeps the published one.

#[path = "../tests/integration/common/mod.rs"]
#[allow(unused_imports)]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use http::{Method, StatusCode};
use replicator::base::telemetry::Telemetry;
use replicator::cli::remote::ApiClient;
use replicator::engine::{DockerEngine, Engine, EngineSettings};
use replicator::model::ListQuery;
use replicator::rules::bounds;
use replicator::rules::plan::{plan_clone, CloneSpec};
use replicator::tls::{client_config, TlsFiles};

use common::{docker, Scope};

const SEQUENTIAL: usize = 15;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn percentile(mut v: Vec<Duration>, p: f64) -> Duration {
    v.sort();
    v[((v.len() as f64 * p).ceil() as usize).saturating_sub(1).min(v.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

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

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let scope = Scope::new("bench");
    let source = scope.web("src", &["--label", "replicator.max=1000"]);
    let source_name = scope.name("src");
    let server =
        scope.process_server(&["--max-replicas", "1000", "--autoscale-interval", "1h", "--stop-timeout", "2s"]);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle_rss = rss_kib(server.pid(), "VmRSS:");

    let settings = EngineSettings::resolve(None, |k| std::env::var(k).ok(), Duration::from_secs(30)).unwrap();
    let direct =
        Direct { engine: DockerEngine::new(settings, Arc::new(Telemetry::default())).unwrap(), source: source.clone() };
    let through = Through { url: server.url(), certs: server.certs.clone(), source: source_name.clone() };

    // Sequential, interleaved.
    let (mut ours, mut raw) = (Vec::new(), Vec::new());
    for i in 0..SEQUENTIAL {
        ours.push(through.clone_once().await);
        clear(&scope, &source_name);
        raw.push(direct.clone_once(&format!("{source_name}-direct-{i}")).await);
        clear(&scope, &source_name);
    }
    let (ours_median, raw_median) = (median(ours), median(raw));

    // Bursts.
    let mut bursts = Vec::new();
    for n in [10usize, 50] {
        let started = Instant::now();
        join_all((0..n).map(|_| through.clone_once())).await;
        let ours_wall = started.elapsed();
        clear(&scope, &source_name);
        let started = Instant::now();
        join_all((0..n).map(|i| direct.clone_once_named(&source_name, n, i))).await;
        let raw_wall = started.elapsed();
        clear(&scope, &source_name);
        bursts.push((n, ours_wall, raw_wall));
    }

    // One request for ten replicas against ten direct clones made at once.
    let started = Instant::now();
    let r = ApiClient::new(&server.url(), &server.certs)
        .unwrap()
        .request(Method::POST, &format!("/v1/containers/{source_name}/replicas?count=10"), None)
        .await
        .unwrap();
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let count10 = started.elapsed();
    clear(&scope, &source_name);
    let started = Instant::now();
    join_all((0..10).map(|i| direct.clone_once_named(&source_name, 1010, i))).await;
    let direct10 = started.elapsed();
    clear(&scope, &source_name);

    // A scale-down of 8 members that ignore SIGTERM, each taking the whole stop timeout.
    let stubborn = scope.name("stubborn");
    scope.run(
        "stubborn",
        &[
            "--label",
            "replicator.enable=true",
            "--label",
            "replicator.max=20",
            common::IMAGE,
            "sh",
            "-c",
            "trap '' TERM; while :; do sleep 1; done",
        ],
    );
    let client = ApiClient::new(&server.url(), &server.certs).unwrap();
    let up = client
        .request(Method::PUT, &format!("/v1/groups/{stubborn}/replicas"), Some(&serde_json::json!({"replicas": 9})))
        .await
        .unwrap();
    assert_eq!(up.status, StatusCode::OK, "{}", up.text());
    let started = Instant::now();
    let down = client
        .request(Method::PUT, &format!("/v1/groups/{stubborn}/replicas"), Some(&serde_json::json!({"replicas": 1})))
        .await
        .unwrap();
    assert_eq!(down.status, StatusCode::OK, "{}", down.text());
    let scale_down8 = started.elapsed();

    // Where the time goes: the calls replicator adds and the ones both make.
    let engine = &direct.engine;
    let mut lookups = Vec::new();
    let mut inspects = Vec::new();
    for _ in 0..20 {
        inspects.push(time_call(engine.inspect_container(&source)).await);
        let by_label =
            ListQuery { all: true, labels: vec![format!("replicator.group={source_name}")], ..Default::default() };
        let by_name = ListQuery { all: true, name: Some(format!("{source_name}-")), ..Default::default() };
        lookups.push(
            time_call(async {
                let _ = engine.image_id(common::IMAGE).await;
                let _ = tokio::join!(engine.list_containers(&by_label), engine.list_containers(&by_name));
            })
            .await,
        );
    }
    let mut handshakes = Vec::new();
    let config = Arc::new(client_config(&TlsFiles::client_in(&server.certs)).unwrap());
    let connector = tokio_rustls::TlsConnector::from(config);
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(3) {
        let t = Instant::now();
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", server.port)).await.unwrap();
        connector.connect("localhost".try_into().unwrap(), tcp).await.unwrap();
        handshakes.push(t.elapsed());
    }
    let handshake_rate = handshakes.len() as f64 / started.elapsed().as_secs_f64();

    // GET /v1/groups over keep-alive connections, 4 clients for 5 s.
    let clients: Vec<ApiClient> = (0..4).map(|_| ApiClient::new(&server.url(), &server.certs).unwrap()).collect();
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
    let groups_rate = latencies.len() as f64 / elapsed.as_secs_f64();
    let groups_p99 = percentile(latencies, 0.99);
    let peak_rss = rss_kib(server.pid(), "VmHWM:");

    // The same costs with 5 containers on the engine, then with 2,000 (created,
    // not running, 50 of them originals of their own groups).
    let few = population_costs(&scope, &direct, &through, &server).await;
    let engine_count = populate(&direct.engine, &scope, 2000, 50).await;
    let wanted = 51;
    common::eventually("the inventory to see the 50 new groups", Duration::from_secs(120), || {
        let (status, metrics) = server.admin_get("/metrics");
        (status == 200 && metrics.matches("replicator_group_size{").count() >= wanted).then_some(())
    });
    let many = population_costs(&scope, &direct, &through, &server).await;

    println!("\n## replicator vs the raw engine (same run)\n");
    println!("| measurement | through replicator | direct engine calls | ratio |");
    println!("|---|---|---|---|");
    println!(
        "| replication, sequential median (n={SEQUENTIAL}) | {} | {} | {:.2} |",
        ms(ours_median),
        ms(raw_median),
        ours_median.as_secs_f64() / raw_median.as_secs_f64()
    );
    for (n, ours, raw) in &bursts {
        println!(
            "| burst of {n}, wall time | {} | {} | {:.2} |",
            ms(*ours),
            ms(*raw),
            ours.as_secs_f64() / raw.as_secs_f64()
        );
    }
    println!(
        "| one `count=10` request vs ten direct clones at once, wall time | {} | {} | {:.2} |",
        ms(count10),
        ms(direct10),
        count10.as_secs_f64() / direct10.as_secs_f64()
    );
    println!(
        "| scale-down of 8 members ignoring SIGTERM vs one stop timeout (2 s) | {} | 2000.0 ms | {:.2} |",
        ms(scale_down8),
        scale_down8.as_secs_f64() / 2.0
    );
    println!("\n| server | value |\n|---|---|");
    println!("| `GET /v1/groups`, 4 keep-alive mTLS clients | {groups_rate:.0} req/s, p99 {} |", ms(groups_p99));
    println!("| new mTLS handshakes (sequential) | {handshake_rate:.0} /s (median {}) |", ms(median(handshakes)));
    println!(
        "| RSS idle / peak under load | {:.1} MB / {:.1} MB |",
        idle_rss as f64 / 1024.0,
        peak_rss as f64 / 1024.0
    );
    println!("\n## Cost against the engine's population (same run)\n");
    println!("| measurement | 5 containers | {engine_count} containers, 50 groups | ratio |");
    println!("|---|---|---|---|");
    let row = |what: &str, a: Duration, b: Duration| {
        println!("| {what} | {} | {} | {:.2} |", ms(a), ms(b), b.as_secs_f64() / a.as_secs_f64())
    };
    let ratio = |c: &PopulationCosts| c.through.as_secs_f64() / c.direct.as_secs_f64();
    println!(
        "| replication through replicator ÷ direct (medians of 9) | {:.2} ({} ÷ {}) | {:.2} ({} ÷ {}) | {:.2} |",
        ratio(&few),
        ms(few.through),
        ms(few.direct),
        ratio(&many),
        ms(many.through),
        ms(many.direct),
        ratio(&many) / ratio(&few)
    );
    row("`GET /v1/groups`, median", few.groups_median, many.groups_median);
    row("`GET /v1/groups`, p99", few.groups_p99, many.groups_p99);
    println!("\n| where a replication's time goes | median |\n|---|---|");
    println!("| container inspect (both paths) | {} |", ms(median(inspects)));
    println!("| image lookup + group and name listings (replicator only) | {} |", ms(median(lookups)));
    println!("| direct clone: inspect + create + start | {} |", ms(raw_median));
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
    drop(server);
}

/// What the engine's population may change: replicator's own overhead on a
/// replication, and the cost of listing the groups.
struct PopulationCosts {
    through: Duration,
    direct: Duration,
    groups_median: Duration,
    groups_p99: Duration,
}

async fn population_costs(
    scope: &Scope,
    direct: &Direct,
    through: &Through,
    server: &common::Server,
) -> PopulationCosts {
    let (mut ours, mut raw) = (Vec::new(), Vec::new());
    for i in 0..9 {
        ours.push(through.clone_once().await);
        clear_clones(scope, &through.source);
        raw.push(direct.clone_once(&format!("{}-pop-{i}", through.source)).await);
        clear_clones(scope, &through.source);
    }
    let client = ApiClient::new(&server.url(), &server.certs).unwrap();
    let mut latencies = Vec::new();
    for _ in 0..300 {
        let t = Instant::now();
        let r = client.get("/v1/groups").await.unwrap();
        assert_eq!(r.status, StatusCode::OK);
        latencies.push(t.elapsed());
    }
    PopulationCosts {
        through: median(ours),
        direct: median(raw),
        groups_median: median(latencies.clone()),
        groups_p99: percentile(latencies, 0.99),
    }
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
        let mut labels = serde_json::json!({ common::TEST_LABEL: scope.id });
        if i < groups {
            labels["replicator.enable"] = "true".into();
        }
        let body = serde_json::json!({ "Image": common::IMAGE, "Cmd": ["true"], "Labels": labels });
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

impl Direct {
    async fn clone_once_named(&self, base: &str, burst: usize, i: usize) -> Duration {
        self.clone_once(&format!("{base}-burst{burst}-{i}")).await
    }
}
