//! Autoscaler parity: a real Prometheus as the metric source, dry-run, and
//! the decision history.

use std::time::Duration;

use http::{Method, StatusCode};
use serde_json::{json, Value};

use crate::common::prom::{CounterTarget, Prometheus};
use crate::common::{
    autoscaled_on_load, call, eventually, eventually_async, group, labels, wait_for_size, Scope, Server,
    QUICK_AUTOSCALER,
};

/// How many decisions the API keeps for a group (replicator's `autoscale::board::HISTORY`).
const HISTORY: usize = 100;

/// `GET /v1/groups/{name}/decisions`: the group's decision history, oldest first.
async fn decisions(server: &Server, name: &str) -> Vec<Value> {
    let r = call(server, Method::GET, &format!("/v1/groups/{name}/decisions"), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    r.json().as_array().cloned().expect("the history is a list")
}

/// A group autoscaled on `load` (up to 5) in dry-run, and the replicator
/// `server` starts, pushed a load that asks for all 5: the group's name, the server.
async fn dry_run_group_under_load(scope: &Scope, server: impl FnOnce(&Scope) -> Server) -> (String, Server) {
    let (_, name) = scope.web_group(&autoscaled_on_load(&["replicator.max=5", "replicator.autoscale.dry-run=true"]));
    let server = server(scope);
    let push = json!({ "container": name, "metric": "load", "value": 100 });
    assert_eq!(call(&server, Method::POST, "/v1/metrics", Some(push)).await.status, StatusCode::ACCEPTED);
    (name, server)
}

#[tokio::test]
async fn a_prometheus_query_scales_the_group_up_and_back_down() {
    let target = CounterTarget::start().await;
    let prometheus = Prometheus::start(target.port);
    let scope = Scope::new("promql");
    scope.web(
        "web",
        &labels(&[
            "replicator.max=3",
            "replicator.autoscale.metric=prometheus",
            "replicator.autoscale.query=sum(rate(demo_requests_total[5s]))",
            "replicator.autoscale.target=10",
        ]),
    );
    let name = scope.name("web");
    let url = format!("http://127.0.0.1:{}", prometheus.port);
    let server = scope.server(&[&["--prometheus-url", &url][..], &QUICK_AUTOSCALER].concat());

    target.set_rate(100.0);
    wait_for_size(&server, &name, 3, Duration::from_secs(60)).await;
    let autoscale = group(&server, &name).await["autoscale"].clone();
    assert_eq!(autoscale["metric"], "prometheus");
    assert_eq!(autoscale["query"], "sum(rate(demo_requests_total[5s]))");

    target.set_rate(0.0);
    wait_for_size(&server, &name, 1, Duration::from_secs(60)).await;

    // The autoscaler evaluated the group every second all along; the
    // history keeps only the decisions that changed its size, oldest first.
    let history = decisions(&server, &name).await;
    let up = history.iter().position(|d| d["from"] == 1 && d["to"] == 3).expect("a scale-up decision");
    assert_eq!((history[up]["applied"].as_bool(), history[up]["dry_run"].as_bool()), (Some(true), Some(false)));
    assert!(history[up]["value"].as_f64().unwrap() > 10.0, "{}", history[up]);
    let down = history.iter().position(|d| d["from"] == 3 && d["to"] == 1);
    assert!(down.is_some_and(|down| down > up), "the scale-down after the scale-up: {history:?}");
    assert!(history.iter().all(|d| d["from"] != d["to"]), "only changes are kept: {history:?}");
}

#[tokio::test]
async fn dry_run_decides_and_reports_but_changes_nothing() {
    let scope = Scope::new("dryrun");
    let (name, server) =
        dry_run_group_under_load(&scope, |scope| scope.process_server(&["--autoscale-interval", "1s"])).await;

    let decision = eventually_async("a decision in the history", Duration::from_secs(10), async || {
        decisions(&server, &name).await.last().cloned().ok_or("an empty history")
    })
    .await;
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

/// In dry-run the group never reaches the size a decision asks for, so
/// every evaluation is a change and goes into the history: evaluating every
/// 50 ms fills it within seconds, and it then keeps the latest `HISTORY`.
#[tokio::test]
async fn the_decision_history_keeps_the_latest_decisions_up_to_its_bound() {
    let scope = Scope::new("history");
    let (name, server) = dry_run_group_under_load(&scope, |scope| {
        scope.server(&["--autoscale-interval", "50ms", "--metric-ttl", "60s"])
    })
    .await;

    let full = eventually_async(&format!("{HISTORY} decisions in the history"), Duration::from_secs(60), async || {
        let history = decisions(&server, &name).await;
        assert!(history.len() <= HISTORY, "more than {HISTORY} decisions kept: {}", history.len());
        if history.len() == HISTORY {
            Ok(history)
        } else {
            Err(format!("{} decisions", history.len()))
        }
    })
    .await;
    let oldest = full[0]["at"].as_str().unwrap().to_owned();
    // More decisions than the bound since: the oldest went, the count stayed.
    eventually_async("the oldest decisions to give way to new ones", Duration::from_secs(30), async || {
        let history = decisions(&server, &name).await;
        assert_eq!(history.len(), HISTORY, "the bound holds after more decisions than it");
        let first = history[0]["at"].as_str().unwrap().to_owned();
        if first > oldest {
            Ok(())
        } else {
            Err(format!("the oldest still from {first}"))
        }
    })
    .await;
    assert_eq!(scope.containers().len(), 1, "nothing was created");
}
