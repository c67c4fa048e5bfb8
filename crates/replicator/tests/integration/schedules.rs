//! Scheduled minimums on the real engine: an active schedule raises a
//! group to its minimum and keeps manual scale-downs above it.

use std::time::Duration;

use http::{Method, StatusCode};
use serde_json::json;

use crate::common::{call, eventually_async, group, ready_if, Scope};

#[tokio::test]
async fn an_active_schedule_raises_the_group_to_its_minimum_and_holds_it_there() {
    let scope = Scope::new("schedule");
    // Every minute of every day: active whenever the test runs.
    let (_, name) = scope.web_group(&["--label", "replicator.max=5", "--label", "replicator.schedule=* * * * *=3"]);
    let server = scope.server(&["--timezone", "Europe/Paris"]);
    let group = eventually_async("the schedule to raise the group to 3", Duration::from_secs(60), async || {
        let g = group(&server, &name).await;
        ready_if(g["replicas"] == 3, g)
    })
    .await;
    assert_eq!(group["schedule"], json!({"active": true, "min": 3}));
    assert_eq!(group["min"], 3, "the minimum the API shows is the scheduled one");
    let down = call(&server, Method::PUT, &format!("/v1/groups/{name}/replicas"), Some(json!({"replicas": 1}))).await;
    assert_eq!(down.status, StatusCode::CONFLICT, "{}", down.text());
    assert!(down.text().contains("out_of_bounds"), "{}", down.text());
    assert_eq!(scope.replicas_of(&name).len(), 2);
}
