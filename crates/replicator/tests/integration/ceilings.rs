//! What labels may ask is held under the operator's ceilings: a group never
//! grows past `--max-replicas`, whatever its labels or schedule say, and
//! replicator never holds more containers it made than `--max-containers`.

use std::time::Duration;

use http::{Method, StatusCode};

use crate::common::{call, eventually_async, group, ready_if, Scope};

#[tokio::test]
async fn labels_and_schedules_never_take_a_group_past_max_replicas() {
    let scope = Scope::new("ceiling");
    let every_minute = "replicator.schedule=* * * * *=1000000";
    scope.web("greedy", &["--label", "replicator.max=1000000", "--label", every_minute]);
    scope.web("scheduled", &["--label", every_minute]);
    let server = scope.server(&["--max-replicas", "3"]);

    let greedy = scope.name("greedy");
    let refused = call(&server, Method::POST, &format!("/v1/containers/{greedy}/replicas"), None).await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.text());
    assert!(refused.text().contains("--max-replicas"), "the reason names the ceiling: {}", refused.text());
    let shown = group(&server, &greedy).await;
    assert!(shown["error"].as_str().unwrap_or_default().contains("replicator.max=1000000"), "{shown}");

    // The schedule asks for a million; the ceiling holds the group's minimum at 3.
    let scheduled = scope.name("scheduled");
    let raised =
        eventually_async("the schedule to raise the group to the ceiling", Duration::from_secs(60), async || {
            let g = group(&server, &scheduled).await;
            ready_if(g["replicas"] == 3, g)
        })
        .await;
    assert_eq!((raised["min"].as_u64(), raised["max"].as_u64()), (Some(3), Some(3)));
    assert_eq!(scope.replicas_of(&scheduled).len(), 2, "exactly up to the ceiling");
    assert!(scope.replicas_of(&greedy).is_empty(), "the group above the ceiling made nothing");
}

/// A group `web` and a server with one ceiling lowered.
fn ceiling(scope: &Scope, flags: &[&str]) -> (String, crate::common::Server) {
    let (_, name) = scope.web_group(&[]);
    (name, scope.server(flags))
}

#[tokio::test]
async fn max_containers_refuses_the_request_that_would_exceed_it() {
    let scope = Scope::new("maxcontainers");
    let (name, server) = ceiling(&scope, &["--max-containers", "2"]);
    let replicate = |count: u32| format!("/v1/containers/{name}/replicas?count={count}");
    let over = call(&server, Method::POST, &replicate(3), None).await;
    assert_eq!(over.status, StatusCode::CONFLICT, "{}", over.text());
    assert!(over.text().contains("--max-containers"), "{}", over.text());
    assert!(scope.replicas_of(&name).is_empty(), "all or nothing: nothing made");
    let within = call(&server, Method::POST, &replicate(2), None).await;
    assert_eq!(within.status, StatusCode::CREATED, "{}", within.text());
    let one_more = call(&server, Method::POST, &replicate(1), None).await;
    assert_eq!(one_more.status, StatusCode::CONFLICT, "{}", one_more.text());
    assert_eq!(scope.replicas_of(&name).len(), 2);
    let (_, metrics) = server.admin_get("/metrics");
    assert!(metrics.contains("replicator_ceiling_refusals_total{ceiling=\"containers\"} 2"), "{metrics}");
}

#[tokio::test]
async fn the_creation_rate_refuses_with_the_wait_once_spent() {
    let scope = Scope::new("creationrate");
    let (name, server) = ceiling(&scope, &["--max-creations-per-minute", "2"]);
    let replicate = |count: u32| format!("/v1/containers/{name}/replicas?count={count}");
    let first = call(&server, Method::POST, &replicate(2), None).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text());
    let spent = call(&server, Method::POST, &replicate(1), None).await;
    assert_eq!(spent.status, StatusCode::TOO_MANY_REQUESTS, "{}", spent.text());
    assert!(spent.text().contains("--max-creations-per-minute"), "{}", spent.text());
    assert_eq!(scope.replicas_of(&name).len(), 2, "the refused request made nothing");
}
