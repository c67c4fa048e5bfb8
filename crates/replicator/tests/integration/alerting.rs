//! Alertmanager's webhook: a real Prometheus fires an alert on a metric the
//! test controls, a real Alertmanager sends it to replicator over mutual
//! TLS, and the group grows by the alert's step, once however often the
//! alert is repeated.

use std::time::{Duration, Instant};

use http::Method;
use serde_json::Value;

use crate::common::prom::{Alertmanager, CounterTarget, Prometheus};
use crate::common::{call, Scope, Server};

async fn replicas(server: &Server, name: &str) -> u64 {
    let g: Value = call(server, Method::GET, &format!("/v1/groups/{name}"), None).await.json();
    g["replicas"].as_u64().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_firing_alert_grows_its_group_once_however_often_alertmanager_repeats_it() {
    let scope = Scope::new("alerting");
    scope.web("web", &["--label", "replicator.max=5"]);
    let name = scope.name("web");
    let server = scope.server(&[]);
    let target = CounterTarget::start().await;
    let webhook = format!("{}/v1/alertmanager", server.url());
    let alertmanager = Alertmanager::start(&webhook, &server.certs);
    let rules = format!(
        "groups:\n  - name: replicator\n    rules:\n      - alert: BusyWeb\n        expr: sum(rate(demo_requests_total[5s])) > 5\n\
         \x20       labels:\n          replicator_group: '{name}'\n        annotations:\n          replicator_action: scale-up\n\
         \x20         replicator_step: '2'\n"
    );
    let _prometheus = Prometheus::start_alerting(target.port, Some((&rules, alertmanager.port)));
    assert_eq!(replicas(&server, &name).await, 1);

    target.set_rate(100.0);
    let deadline = Instant::now() + Duration::from_secs(90);
    while replicas(&server, &name).await != 3 {
        assert!(
            Instant::now() < deadline,
            "the alert never grew the group (notifications: {})",
            alertmanager.notifications()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Alertmanager repeats the firing alert every 2 s: the group stays where the first made it.
    let sent = alertmanager.notifications();
    let deadline = Instant::now() + Duration::from_secs(60);
    while alertmanager.notifications() < sent + 3 {
        assert!(Instant::now() < deadline, "Alertmanager repeated nothing");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(replicas(&server, &name).await, 3, "a repeated notification acts once");
}
