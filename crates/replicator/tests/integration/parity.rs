//! Autoscaler parity: a real Prometheus as the metric source, dry-run, and
//! the decision history.

use std::time::{Duration, Instant};

use http::{Method, StatusCode};
use serde_json::{json, Value};

use crate::common::prom::{CounterTarget, Prometheus};
use crate::common::{call, eventually, Scope, Server};

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
