//! The autoscaler against real containers: pushed metrics and engine stats.

use std::time::{Duration, Instant};

use http::{Method, StatusCode};
use serde_json::{json, Value};

use crate::common::{
    autoscaled_on_load, call, eventually, group, image, labels, members_in, wait_for_size, Engine, Scope,
    QUICK_AUTOSCALER,
};

#[tokio::test]
async fn a_pushed_load_grows_the_group_to_its_max_and_idleness_brings_it_back_after_the_window() {
    pushed_load_up_and_down(Engine::Docker).await;
}

/// Pushed load grows the group to its autoscale max; idleness brings it back: on any engine.
pub(crate) async fn pushed_load_up_and_down(engine: Engine) {
    let scope = Scope::on(engine, "autopush");
    let (original, name) = scope.web_group(&autoscaled_on_load(&["replicator.max=5", "replicator.autoscale.max=3"]));
    let server = scope.process_server(&[&QUICK_AUTOSCALER[..], &["--metric-ttl", "60s"]].concat());

    let started = Instant::now();
    let push = json!({ "container": name, "metric": "load", "value": 100 });
    let r = call(&server, Method::POST, "/v1/metrics", Some(push)).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    let grown = wait_for_size(&server, &name, 3, Duration::from_secs(30)).await;
    eprintln!("autoscale reaction: first high value to 3 running members in {:?}", started.elapsed());
    let autoscale = &grown["autoscale"];
    assert_eq!((autoscale["metric"].as_str(), autoscale["target"].as_f64()), (Some("load"), Some(10.0)));
    assert_eq!((autoscale["min"].as_u64(), autoscale["max"].as_u64()), (Some(1), Some(3)));
    assert!(autoscale["last_decision"]["reason"].is_string(), "{autoscale}");

    let idle: Vec<Value> = members_in(&grown, "running")
        .iter()
        .map(|id| json!({ "container": id, "metric": "load", "value": 0 }))
        .collect();
    assert_eq!(call(&server, Method::POST, "/v1/metrics", Some(Value::Array(idle))).await.status, StatusCode::ACCEPTED);
    let shrunk = wait_for_size(&server, &name, 1, Duration::from_secs(30)).await;
    assert_eq!(members_in(&shrunk, "running"), [original.as_str()], "the original survives");
    assert_eq!(scope.inspect(&original)["State"]["Running"], true);

    let logs = server.logs();
    let decisions: Vec<&String> = logs.iter().filter(|l| l.contains("autoscaler decision")).collect();
    assert!(decisions.iter().any(|l| l.contains(r#""from":1"#) && l.contains(r#""to":3"#)), "{decisions:?}");
    assert!(decisions.iter().any(|l| l.contains(r#""from":3"#) && l.contains(r#""to":1"#)), "{decisions:?}");
    let (status, metrics) = server.admin_get("/metrics");
    assert_eq!(status, 200);
    for needle in [
        "replicator_autoscaler_decisions_total{",
        &format!("replicator_group_size{{group=\"{name}\"}}"),
        "replicator_group_desired_size{",
        "replicator_replication_duration_seconds_bucket{",
    ] {
        assert!(metrics.contains(needle), "{needle} missing from /metrics");
    }
}

#[tokio::test]
async fn metric_pushes_are_checked_and_malformed_policies_are_reported() {
    let scope = Scope::new("autocheck");
    scope.web("scaled", &labels(&["replicator.autoscale.metric=rps", "replicator.autoscale.target=5"]));
    scope.web("plain", &[]);
    scope.web("broken", &labels(&["replicator.autoscale.metric=rps", "replicator.autoscale.target=lots"]));
    let server = scope.server(&[]);
    let push = |container: String, metric: &str, value: Value| json!({ "container": container, "metric": metric, "value": value });
    let cases = [
        (push(scope.name("scaled"), "rps", json!(3)), StatusCode::ACCEPTED),
        (push(scope.name("scaled"), "rps", json!("3")), StatusCode::BAD_REQUEST),
        (json!({ "container": scope.name("scaled"), "value": 3 }), StatusCode::BAD_REQUEST),
        (push("no-such-container-anywhere".into(), "rps", json!(1)), StatusCode::NOT_FOUND),
        (push(scope.name("plain"), "rps", json!(1)), StatusCode::CONFLICT),
        (push(scope.name("scaled"), "latency", json!(1)), StatusCode::CONFLICT),
        (push(scope.name("broken"), "rps", json!(1)), StatusCode::CONFLICT),
        (
            json!([push(scope.name("scaled"), "rps", json!(1)), push(scope.name("plain"), "rps", json!(1))]),
            StatusCode::CONFLICT,
        ),
    ];
    for (body, want) in cases {
        let r = call(&server, Method::POST, "/v1/metrics", Some(body.clone())).await;
        assert_eq!(r.status, want, "{body}: {}", r.text());
    }
    let broken = group(&server, &scope.name("broken")).await;
    let error = broken["autoscale"]["error"].as_str().unwrap_or_default().to_owned();
    assert!(error.contains("replicator.autoscale.target"), "{broken}");
    let plain = group(&server, &scope.name("plain")).await;
    assert!(plain.get("autoscale").is_none(), "{plain}");
    let (status, health) = server.admin_get("/healthz");
    assert_eq!((status, health.contains("\"engine\":\"up\"")), (200, true), "{health}");
}

#[tokio::test]
async fn a_busy_container_grows_its_group_from_the_engines_cpu_stats() {
    let scope = Scope::new("autocpu");
    let mut args = labels(&[
        "replicator.enable=true",
        "replicator.max=2",
        "replicator.autoscale.metric=cpu",
        "replicator.autoscale.target=10",
    ]);
    args.extend(["--cpus", "0.5", image(), "sh", "-c", "while :; do :; done"]);
    scope.run("busy", &args);
    let name = scope.name("busy");
    // The container's first CPU samples are ignored for the initialization period.
    let server = scope.process_server(&["--autoscale-interval", "1s", "--cpu-initialization-period", "2s"]);
    let grown = wait_for_size(&server, &name, 2, Duration::from_secs(60)).await;
    let current = grown["autoscale"]["current"].as_f64().unwrap_or_default();
    assert!(current > 10.0, "the busy loop shows as CPU load: {grown}");
    eventually("the decision in the log", Duration::from_secs(5), || {
        server.logs().iter().any(|l| l.contains("autoscaler decision") && l.contains(&name)).then_some(())
    });
}
