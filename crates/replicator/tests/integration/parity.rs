//! Autoscaler parity: a real Prometheus as the metric source, dry-run, and
//! the decision history.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::{Method, StatusCode};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::{call, eventually, free_port, write_file, Scope, Server};

/// A scrape target serving `demo_requests_total`, a counter growing at a rate the test sets.
struct CounterTarget {
    port: u16,
    rate: Arc<Mutex<f64>>,
    task: tokio::task::JoinHandle<()>,
}

impl CounterTarget {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let rate = Arc::new(Mutex::new(0.0f64));
        let state = Arc::new(Mutex::new((0.0f64, Instant::now())));
        let task_rate = rate.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut conn, _)) = listener.accept().await else {
                    return;
                };
                let mut request = [0u8; 4096];
                let _ = conn.read(&mut request).await;
                let count = {
                    let mut s = state.lock().unwrap();
                    let now = Instant::now();
                    s.0 += *task_rate.lock().unwrap() * now.duration_since(s.1).as_secs_f64();
                    s.1 = now;
                    s.0
                };
                let body = format!("# TYPE demo_requests_total counter\ndemo_requests_total {count}\n");
                let response = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = conn.write_all(response.as_bytes()).await;
            }
        });
        Self { port, rate, task }
    }

    fn set_rate(&self, per_second: f64) {
        *self.rate.lock().unwrap() = per_second;
    }
}

impl Drop for CounterTarget {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Debian's Prometheus, on a free loopback port, scraping `target` every second.
struct Prometheus {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    fn start(target_port: u16) -> Self {
        let binary = Path::new("/usr/bin/prometheus");
        assert!(binary.exists(), "/usr/bin/prometheus is missing: apt-get install prometheus (scripts/prepare does)");
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("prometheus.yml");
        write_file(
            &config,
            &format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
                 scrape_configs:\n  - job_name: demo\n    static_configs:\n      - targets: ['127.0.0.1:{target_port}']\n"
            ),
        );
        let port = free_port();
        let child = Command::new(binary)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus starts");
        let prometheus = Self { child, port, _dir: dir };
        eventually("Prometheus to be ready", Duration::from_secs(60), || {
            let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
            use std::io::{Read, Write};
            write!(stream, "GET /-/ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").ok()?;
            let mut answer = String::new();
            stream.read_to_string(&mut answer).ok()?;
            answer.starts_with("HTTP/1.1 200").then_some(())
        });
        prometheus
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn group(server: &Server, name: &str) -> Value {
    call(server, Method::GET, &format!("/v1/groups/{name}"), None).await.json()
}

async fn wait_for_size(server: &Server, name: &str, want: u64, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let g = group(server, name).await;
        if g["replicas"].as_u64() == Some(want) {
            return;
        }
        assert!(Instant::now() < deadline, "group {name} did not reach {want}: {g}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_prometheus_query_scales_the_group_up_and_back_down() {
    let target = CounterTarget::start().await;
    let prometheus = Prometheus::start(target.port);
    let scope = Scope::new("promql");
    scope.web(
        "web",
        &[
            "--label",
            "replicator.max=3",
            "--label",
            "replicator.autoscale.metric=prometheus",
            "--label",
            "replicator.autoscale.query=sum(rate(demo_requests_total[5s]))",
            "--label",
            "replicator.autoscale.target=10",
        ],
    );
    let name = scope.name("web");
    let url = format!("http://127.0.0.1:{}", prometheus.port);
    let server =
        scope.server(&["--prometheus-url", &url, "--autoscale-interval", "1s", "--scale-down-stabilization", "3s"]);

    target.set_rate(100.0);
    wait_for_size(&server, &name, 3, Duration::from_secs(60)).await;
    let autoscale = group(&server, &name).await["autoscale"].clone();
    assert_eq!(autoscale["metric"], "prometheus");
    assert_eq!(autoscale["query"], "sum(rate(demo_requests_total[5s]))");

    target.set_rate(0.0);
    wait_for_size(&server, &name, 1, Duration::from_secs(60)).await;

    let history = call(&server, Method::GET, &format!("/v1/groups/{name}/decisions"), None).await.json();
    let history = history.as_array().unwrap();
    let up = history.iter().find(|d| d["from"] == 1 && d["to"] == 3).expect("a scale-up decision");
    assert_eq!((up["applied"].as_bool(), up["dry_run"].as_bool()), (Some(true), Some(false)));
    assert!(up["value"].as_f64().unwrap() > 10.0, "{up}");
    assert!(history.iter().any(|d| d["from"] == 3 && d["to"] == 1), "{history:?}");
    assert!(history.len() <= 100);
}

#[tokio::test]
async fn dry_run_decides_and_reports_but_changes_nothing() {
    let scope = Scope::new("dryrun");
    let labels = [
        "--label",
        "replicator.max=5",
        "--label",
        "replicator.autoscale.metric=load",
        "--label",
        "replicator.autoscale.target=10",
        "--label",
        "replicator.autoscale.dry-run=true",
    ];
    scope.web("web", &labels);
    let name = scope.name("web");
    let server = scope.process_server(&["--autoscale-interval", "1s"]);
    let push = json!({ "container": name, "metric": "load", "value": 100 });
    assert_eq!(call(&server, Method::POST, "/v1/metrics", Some(push)).await.status, StatusCode::ACCEPTED);

    let path = format!("/v1/groups/{name}/decisions");
    let mut decision = Value::Null;
    for _ in 0..100 {
        let history = call(&server, Method::GET, &path, None).await.json();
        if let Some(d) = history.as_array().and_then(|h| h.last()) {
            decision = d.clone();
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!((decision["from"].as_u64(), decision["to"].as_u64()), (Some(1), Some(5)), "{decision}");
    assert_eq!((decision["dry_run"].as_bool(), decision["applied"].as_bool()), (Some(true), Some(false)));
    eventually("the dry-run decision in the log", Duration::from_secs(5), || {
        let logs = server.logs();
        let decision = |l: &&String| l.contains("autoscaler decision") && l.contains(r#""from":1,"to":5"#);
        logs.iter().find(decision).filter(|l| l.contains(r#""dry_run":true"#)).map(|_| ())
    });
    let g = group(&server, &name).await;
    assert_eq!((g["replicas"].as_u64(), g["autoscale"]["dry_run"].as_bool()), (Some(1), Some(true)));
    assert_eq!(scope.containers().len(), 1, "nothing was created");

    // The API's manual routes are not affected by dry-run.
    let manual = call(&server, Method::PUT, &format!("/v1/groups/{name}/replicas"), Some(json!({"replicas": 2}))).await;
    assert_eq!(manual.status, StatusCode::OK, "{}", manual.text());
    assert_eq!(scope.containers().len(), 2);

    let global = scope.server(&["--dry-run"]);
    assert_eq!(group(&global, &name).await["autoscale"]["dry_run"], true);
    let unknown = call(&server, Method::GET, "/v1/groups/no-such-group-here/decisions", None).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
}
