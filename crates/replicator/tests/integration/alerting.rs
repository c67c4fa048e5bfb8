//! Alertmanager's webhook: a real Prometheus fires an alert on a metric the
//! test controls, a real Alertmanager sends it to replicator over mutual
//! TLS, and the group grows by the alert's step, once however often the
//! alert is repeated.

use std::time::Duration;

use crate::common::prom::{Alertmanager, CounterTarget, Prometheus};
use crate::common::{eventually_async, group, Scope, Server};

async fn replicas(server: &Server, name: &str) -> u64 {
    group(server, name).await["replicas"].as_u64().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_firing_alert_grows_its_group_once_however_often_alertmanager_repeats_it() {
    let scope = Scope::new("alerting");
    let (_, name) = scope.web_group(&["--label", "replicator.max=5"]);
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
    eventually_async("the alert to grow the group to 3", Duration::from_secs(90), async || {
        let replicas = replicas(&server, &name).await;
        let notifications = alertmanager.notifications();
        (replicas == 3).then_some(()).ok_or_else(|| format!("{replicas} replicas after {notifications} notifications"))
    })
    .await;
    // Alertmanager repeats the firing alert every 2 s: the group stays where the first made it.
    let sent = alertmanager.notifications();
    eventually_async("Alertmanager to repeat the alert 3 times", Duration::from_secs(60), async || {
        let notifications = alertmanager.notifications();
        (notifications >= sent + 3)
            .then_some(())
            .ok_or_else(|| format!("{} repeats", notifications.saturating_sub(sent)))
    })
    .await;
    assert_eq!(replicas(&server, &name).await, 3, "a repeated notification acts once");
}
