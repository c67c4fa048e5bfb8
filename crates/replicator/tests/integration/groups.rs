//! Groups: listing, exact bounds, scale up and down, exactness under concurrency.

use std::collections::HashSet;
use std::time::Duration;

use http::{Method, StatusCode};
use serde_json::{json, Value};

use crate::common::{
    call, cli, docker, docker_try, eventually, eventually_async, group, image, inspect, members_in, ready_if, Engine,
    Scope,
};

fn member_names(group: &Value) -> Vec<String> {
    group["members"].as_array().unwrap().iter().map(|m| m["name"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn scale_down_stops_the_newest_replicas_gracefully_and_keeps_the_original() {
    let scope = Scope::new("scaledown");
    let volume = scope.volume("marks");
    // On its stop signal (USR1), each member leaves a mark in the shared volume.
    let script = "trap 'touch /marks/$(hostname); exit 0' USR1; while :; do sleep 1 & wait $!; done";
    let mount = format!("{volume}:/marks");
    let source = scope.run(
        "web",
        &[
            "--label",
            "replicator.enable=true",
            "--label",
            "replicator.max=5",
            "--stop-signal",
            "SIGUSR1",
            "-v",
            &mount,
            image(),
            "sh",
            "-c",
            script,
        ],
    );
    let name = scope.name("web");
    let server = scope.server(&["--stop-timeout", "20s"]);
    let r = call(&server, Method::POST, &format!("/v1/containers/{name}/replicas?count=3"), None).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());

    let group = group(&server, &name).await;
    assert_eq!(group["kind"], "containers");
    assert_eq!(group["replicas"], 4);
    assert_eq!((group["min"].as_u64(), group["max"].as_u64()), (Some(1), Some(5)));
    let originals: Vec<&Value> =
        group["members"].as_array().unwrap().iter().filter(|m| m["original"] == true).collect();
    assert_eq!(originals.len(), 1);
    assert_eq!(originals[0]["id"], source.as_str());
    let listed = call(&server, Method::GET, "/v1/groups", None).await.json();
    assert!(listed.as_array().unwrap().iter().any(|g| g["name"] == name.as_str()));

    let down = call(&server, Method::PUT, &format!("/v1/groups/{name}/replicas"), Some(json!({"replicas": 2}))).await;
    assert_eq!(down.status, StatusCode::OK, "{}", down.text());
    let after = down.json();
    assert_eq!(after["replicas"], 2);
    assert_eq!(member_names(&after), [name.clone(), format!("{name}-2")], "the newest went first");
    for gone in [format!("{name}-3"), format!("{name}-4")] {
        assert!(docker_try(&["inspect", &gone]).is_err(), "{gone} was removed");
    }
    let label = scope.label();
    let marks = docker(&["run", "--rm", "--label", &label, "-v", &mount, image(), "ls", "/marks"]);
    assert_eq!(marks.lines().count(), 2, "both removed replicas got their stop signal: {marks}");

    let up = call(&server, Method::PUT, &format!("/v1/groups/{name}/replicas"), Some(json!({"replicas": 5}))).await;
    assert_eq!(up.status, StatusCode::OK, "{}", up.text());
    assert_eq!(up.json()["replicas"], 5);
    let down_to_one =
        call(&server, Method::PUT, &format!("/v1/groups/{name}/replicas"), Some(json!({"replicas": 1}))).await;
    assert_eq!(member_names(&down_to_one.json()), [name.as_str()]);
    assert_eq!(inspect(&source)["State"]["Running"], true);
}

#[tokio::test]
async fn scale_requests_outside_the_bounds_or_malformed_change_nothing() {
    let scope = Scope::new("bounds");
    let (_, name) = scope.web_group(&["--label", "replicator.min=2", "--label", "replicator.max=3"]);
    let server = scope.server(&[]);
    let path = format!("/v1/groups/{name}/replicas");
    for n in [1, 4] {
        let r = call(&server, Method::PUT, &path, Some(json!({ "replicas": n }))).await;
        assert_eq!(r.status, StatusCode::CONFLICT);
        let message = r.json()["error"]["message"].as_str().unwrap().to_owned();
        assert!(message.contains('2') && message.contains('3'), "both bounds named: {message}");
    }
    let client = server.client();
    for body in
        [json!({}), json!({"replicas": "2"}), json!({"replicas": -1}), json!([2]), json!({"replicas": 2, "x": 1})]
    {
        let r = client.request(Method::PUT, &path, Some(&body)).await.unwrap();
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}");
    }
    let huge = json!({ "replicas": 2, "padding": "x".repeat(70 * 1024) });
    assert_eq!(client.request(Method::PUT, &path, Some(&huge)).await.unwrap().status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(call(&server, Method::GET, "/v1/groups/no-such-group-here", None).await.status, StatusCode::NOT_FOUND);
    let r = call(&server, Method::PUT, "/v1/groups/no-such-group-here/replicas", Some(json!({"replicas": 2}))).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(call(&server, Method::GET, "/v1/groups/..%2Fx", None).await.status, StatusCode::BAD_REQUEST);
    assert_eq!(scope.containers().len(), 1, "nothing was created or removed");

    let ok = call(&server, Method::PUT, &path, Some(json!({"replicas": 3}))).await;
    assert_eq!((ok.status, ok.json()["replicas"].as_u64()), (StatusCode::OK, Some(3)));
}

#[tokio::test]
async fn twenty_simultaneous_replications_fill_exactly_the_room_left() {
    let scope = Scope::new("race");
    let (_, name) = scope.web_group(&["--label", "replicator.max=5"]);
    let server = scope.server(&[]);
    let client = server.client();
    let requests = (0..20).map(|_| {
        let client = client.clone();
        let path = format!("/v1/containers/{name}/replicas");
        tokio::spawn(async move { client.request(Method::POST, &path, None).await.unwrap().status })
    });
    let statuses: Vec<StatusCode> =
        futures_util::future::join_all(requests).await.into_iter().map(Result::unwrap).collect();
    let created = statuses.iter().filter(|s| **s == StatusCode::CREATED).count();
    let refused = statuses.iter().filter(|s| **s == StatusCode::CONFLICT).count();
    assert_eq!((created, refused), (4, 16), "{statuses:?}");
    let replicas = scope.replicas_of(&name);
    assert_eq!(replicas.len(), 4);
    let names: HashSet<String> = replicas.iter().map(|id| inspect(id)["Name"].as_str().unwrap().to_owned()).collect();
    assert_eq!(names.len(), 4, "every replica has its own name");
    assert_eq!(scope.containers().len(), 5);
}

#[tokio::test]
async fn concurrent_scale_requests_never_overshoot_or_undershoot() {
    let scope = Scope::new("scalerace");
    let (_, name) = scope.web_group(&["--label", "replicator.max=6"]);
    let server = scope.server(&["--stop-timeout", "1s"]);
    let client = server.client();
    let targets = [5u64, 2, 6, 3, 4, 1];
    let requests = targets.map(|n| {
        let client = client.clone();
        let path = format!("/v1/groups/{name}/replicas");
        tokio::spawn(async move { client.request(Method::PUT, &path, Some(&json!({ "replicas": n }))).await.unwrap() })
    });
    for r in futures_util::future::join_all(requests).await {
        let r = r.unwrap();
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        let size = r.json()["replicas"].as_u64().unwrap();
        assert!(targets.contains(&size), "each answer shows a size someone asked for: {size}");
    }
    let group = group(&server, &name).await;
    let final_size = group["replicas"].as_u64().unwrap();
    assert!(targets.contains(&final_size));
    let running = scope.containers().iter().filter(|id| inspect(id)["State"]["Running"] == true).count() as u64;
    assert_eq!(running, final_size, "the engine agrees with the group");
    assert_eq!(scope.containers().len() as u64, final_size, "no container left behind in another state");
}

#[tokio::test]
async fn a_slow_group_does_not_hold_up_another() {
    let scope = Scope::new("independent");
    // This replica ignores its stop signal, so removing it takes the whole stop timeout.
    scope.run(
        "stubborn",
        &["--label", "replicator.enable=true", image(), "sh", "-c", "trap '' TERM; while :; do sleep 1; done"],
    );
    scope.web("quick", &[]);
    let server = scope.server(&["--stop-timeout", "30s"]);
    let (stubborn, quick) = (scope.name("stubborn"), scope.name("quick"));
    assert_eq!(
        call(&server, Method::POST, &format!("/v1/containers/{stubborn}/replicas"), None).await.status,
        StatusCode::CREATED
    );

    let client = server.client();
    let path = format!("/v1/groups/{stubborn}/replicas");
    let slow =
        tokio::spawn(async move { client.request(Method::PUT, &path, Some(&json!({"replicas": 1}))).await.unwrap() });
    let replica = format!("{stubborn}-2");
    eventually("the stubborn replica to be stopping", Duration::from_secs(10), || {
        // The engine has signalled it: the stop is under way.
        (docker(&["inspect", "-f", "{{.State.Running}}", &replica]) == "true" && !slow.is_finished()).then_some(())
    });
    let other = call(&server, Method::POST, &format!("/v1/containers/{quick}/replicas"), None).await;
    assert_eq!(other.status, StatusCode::CREATED);
    assert!(!slow.is_finished(), "the other group's replication finished while the first group was still scaling");
    slow.abort();
}

#[tokio::test]
async fn the_cli_client_lists_scales_and_replicates() {
    cli_lists_scales_and_replicates(Engine::Docker).await;
}

/// Replicate two, list, scale back to the source alone, refuse beyond max: on any engine.
pub(crate) async fn cli_lists_scales_and_replicates(engine: Engine) {
    let scope = Scope::on(engine, "cli");
    let (_, name) = scope.web_group(&["--label", "replicator.max=4"]);
    let server = scope.server(&[]);

    let out = cli(&server, &["replicate", &name, "--count", "2"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains(&format!("{name}-2")) && stdout.contains(&format!("{name}-3")), "{stdout}");

    let out = cli(&server, &["groups"]);
    let table = String::from_utf8_lossy(&out.stdout);
    let row = table.lines().find(|l| l.starts_with(&name)).unwrap_or_else(|| panic!("no row for {name}: {table}"));
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(&cells[1..5], ["containers", "3", "1", "4"], "{row}");

    let out = cli(&server, &["scale", &name, "1"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(scope.containers().len(), 1);
    assert_eq!(scope.inspect(&scope.name("web"))["State"]["Running"], true, "the source is untouched");

    let out = cli(&server, &["scale", &name, "9"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("HTTP 409"));
}

/// `replicator_engine_calls_total` for one operation, from `/metrics`.
fn engine_calls(server: &crate::common::Server, op: &str) -> u64 {
    let (_, metrics) = server.admin_get("/metrics");
    let prefix = format!("replicator_engine_calls_total{{op=\"{op}\"}} ");
    metrics.lines().find_map(|l| l.strip_prefix(&prefix)).and_then(|v| v.trim().parse().ok()).unwrap_or(0)
}

#[tokio::test]
async fn listing_groups_and_replicating_never_list_the_engine() {
    let scope = Scope::new("nolisting");
    let (_, name) = scope.web_group(&["--label", "replicator.max=5"]);
    // Re-listing only on its own schedule, far away: every listing counted here would be on a request's path.
    let server = scope.server(&["--resync-interval", "1h", "--autoscale-interval", "1h"]);
    assert_eq!(call(&server, Method::GET, "/v1/groups", None).await.status, StatusCode::OK);
    let listings = engine_calls(&server, "list containers");
    assert!(listings >= 1, "the inventory was built from a listing");

    let r = call(&server, Method::POST, &format!("/v1/containers/{name}/replicas?count=2"), None).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    for _ in 0..5 {
        let groups = call(&server, Method::GET, "/v1/groups", None).await.json();
        assert_eq!(groups[0]["replicas"], 3, "{groups}");
    }
    let scaled = call(&server, Method::PUT, &format!("/v1/groups/{name}/replicas"), Some(json!({"replicas": 4}))).await;
    assert_eq!(scaled.status, StatusCode::OK, "{}", scaled.text());
    assert_eq!(engine_calls(&server, "list containers"), listings, "no listing on any request's path");
    assert!(engine_calls(&server, "create container") >= 3);
}

#[tokio::test]
async fn labels_replicator_cannot_honour_are_refused_by_name_and_listed_with_the_reason() {
    let scope = Scope::new("badlabels");
    let unaddressable = scope.name("spaces");
    scope.web("spaces", &["--label", &format!("replicator.group={unaddressable} <x>")]);
    scope.web("negative", &["--label", "replicator.max=-1"]);
    scope.web("huge", &["--label", "replicator.max=99999999999"]);
    scope.web("yes", &["--label", "replicator.enable=yes"]);
    let pair = scope.name("pair");
    scope.web("strict", &["--label", &format!("replicator.group={pair}"), "--label", "replicator.max=2"]);
    scope.web("loose", &["--label", &format!("replicator.group={pair}"), "--label", "replicator.max=6"]);
    let server = scope.server(&[]);
    let replicate = |suffix: &str| format!("/v1/containers/{}/replicas", scope.name(suffix));
    let message =
        |r: &replicator::cli::remote::ApiResponse| r.json()["error"]["message"].as_str().unwrap_or_default().to_owned();

    let r = call(&server, Method::POST, &replicate("spaces"), None).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text());
    assert!(message(&r).contains("replicator.group"), "{}", r.text());

    for (suffix, problem) in [("negative", "not a positive integer"), ("huge", "too large")] {
        let r = call(&server, Method::POST, &replicate(suffix), None).await;
        assert_eq!((r.status, r.json()["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("invalid_group")));
        assert!(message(&r).contains("replicator.max") && message(&r).contains(problem), "{}", r.text());
        let name = scope.name(suffix);
        let group = group(&server, &name).await;
        assert_eq!((group["min"].is_null(), group["max"].is_null()), (true, true), "{group}");
        assert!(group["error"].as_str().unwrap().contains(problem), "{group}");
        let put =
            call(&server, Method::PUT, &format!("/v1/groups/{name}/replicas"), Some(json!({"replicas": 1}))).await;
        assert_eq!(put.status, StatusCode::CONFLICT, "a group with malformed bounds refuses every change");
    }

    let r = call(&server, Method::POST, &replicate("yes"), None).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text());
    assert!(message(&r).contains("not a boolean"), "{}", r.text());

    let group = group(&server, &pair).await;
    assert_eq!(group["max"], 2, "the strictest bound of disagreeing originals: {group}");
    assert!(group["conflict"].as_str().unwrap().contains("disagree"), "{group}");
    let r = call(&server, Method::POST, &replicate("loose"), None).await;
    assert_eq!(r.json()["error"]["code"], "limit_reached", "two originals already fill max 2: {}", r.text());
    assert_eq!(scope.containers().len(), 6, "nothing was created");
}

#[tokio::test]
async fn a_member_killed_outside_replicator_is_seen_from_the_events() {
    killed_member_seen_from_events(Engine::Docker).await;
}

/// The inventory follows the engine's events: a member killed by hand shows as exited at once.
pub(crate) async fn killed_member_seen_from_events(engine: Engine) {
    let scope = Scope::on(engine, "killed");
    let (_, name) = scope.web_group(&[]);
    // Re-listing an hour away: only events can tell.
    let server = scope.server(&["--resync-interval", "1h"]);
    let r = call(&server, Method::POST, &format!("/v1/containers/{name}/replicas"), None).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let replica = r.json()["replicas"][0]["id"].as_str().unwrap().to_owned();
    scope.docker(&["kill", &replica]);
    let group = eventually_async("the killed member listed as exited", Duration::from_secs(10), async || {
        let g = group(&server, &name).await;
        ready_if(members_in(&g, "exited").contains(&replica), g)
    })
    .await;
    assert_eq!(group["replicas"], 1, "{group}");
}
