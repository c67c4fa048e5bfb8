//! Scheduled minimums on the real engine: an active schedule raises a
//! group to its minimum and keeps manual scale-downs above it.

use std::time::{Duration, Instant};

use http::{Method, StatusCode};
use serde_json::json;

use crate::common::{call, Scope};

#[tokio::test]
async fn an_active_schedule_raises_the_group_to_its_minimum_and_holds_it_there() {
    let scope = Scope::new("schedule");
    // Every minute of every day: active whenever the test runs.
    scope.web("web", &["--label", "replicator.max=5", "--label", "replicator.schedule=* * * * *=3"]);
    let name = scope.name("web");
    let server = scope.server(&["--timezone", "Europe/Paris"]);
    let deadline = Instant::now() + Duration::from_secs(60);
    let group = loop {
        let g = call(&server, Method::GET, &format!("/v1/groups/{name}"), None).await.json();
        if g["replicas"] == 3 {
            break g;
        }
        assert!(Instant::now() < deadline, "the schedule never raised the group: {g}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(group["schedule"], json!({"active": true, "min": 3}));
    assert_eq!(group["min"], 3, "the minimum the API shows is the scheduled one");
    let down = call(&server, Method::PUT, &format!("/v1/groups/{name}/replicas"), Some(json!({"replicas": 1}))).await;
    assert_eq!(down.status, StatusCode::CONFLICT, "{}", down.text());
    assert!(down.text().contains("out_of_bounds"), "{}", down.text());
    assert_eq!(scope.replicas_of(&name).len(), 2);
}
