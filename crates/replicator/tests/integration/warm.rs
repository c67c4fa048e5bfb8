//! Warm standbys (`replicator.warm=N`) on the real engine: paused clones a
//! scale-up unpauses instead of creating, a pool refilled and recycled in
//! the background, and nothing left behind by a crash.

use std::time::Duration;

use http::{Method, StatusCode};
use serde_json::{json, Value};

use crate::common::{call, docker, docker_try, eventually, eventually_async, group, image, try_group, Scope};

/// `(running members, paused standbys)` as the engine shows them.
fn counted(scope: &Scope, group: &str) -> (usize, usize) {
    let replicas = scope.replicas_of(group);
    // A container removed since the listing counts as neither.
    let state = |id: &String| docker_try(&["inspect", "-f", "{{.State.Status}}", id]).unwrap_or_default();
    let paused = replicas.iter().filter(|id| state(id) == "paused").count();
    let running = replicas.iter().filter(|id| state(id) == "running").count();
    (running + 1, paused)
}

fn standby_ids(group: &Value) -> Vec<String> {
    let standbys = group["standbys"].as_array().cloned().unwrap_or_default();
    standbys.iter().filter(|s| s["state"] == "paused").map(|s| s["id"].as_str().unwrap().to_owned()).collect()
}

/// Engine events of `action` for the scope's containers since `since` (unix seconds).
fn events(scope: &Scope, since: &str, action: &str) -> usize {
    let until = docker(&["system", "info", "--format", "{{.SystemTime}}"]);
    let filter = format!("label={}", scope.label());
    let out = docker(&[
        "events",
        "--since",
        since,
        "--until",
        &until,
        "--filter",
        &filter,
        "--filter",
        &format!("event={action}"),
        "--format",
        "{{.ID}}",
    ]);
    out.lines().count()
}

fn now() -> String {
    docker(&["system", "info", "--format", "{{.SystemTime}}"])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_warm_group_scales_1_to_3_by_unpausing_refills_its_pool_and_shrinks_into_it() {
    let scope = Scope::new("warm");
    let (_, name) = scope.web_group(&["--label", "replicator.max=5", "--label", "replicator.warm=2"]);
    let server = scope.server(&["--warm-settle", "1s"]);
    eventually("two paused standbys", Duration::from_secs(60), || (counted(&scope, &name) == (1, 2)).then_some(()));
    let group = group(&server, &name).await;
    assert_eq!((group["replicas"].as_u64(), group["warm"].as_u64()), (Some(1), Some(2)));
    let standbys = standby_ids(&group);
    assert_eq!(standbys.len(), 2, "{group}");
    assert_eq!(group["members"].as_array().unwrap().len(), 1, "standbys are not members");

    let since = now();
    let scaled = call(&server, Method::PUT, &format!("/v1/groups/{name}/replicas"), Some(json!({"replicas": 3}))).await;
    assert_eq!(scaled.status, StatusCode::OK, "{}", scaled.text());
    assert_eq!(scaled.json()["replicas"].as_u64(), Some(3));
    // The new members are the standbys, unpaused: the scale-up created none
    // (the keeper's refill, which may already have begun, creates the next ones).
    let answer = scaled.json();
    let members: Vec<String> =
        answer["members"].as_array().unwrap().iter().filter_map(|m| Some(m["id"].as_str()?.to_owned())).collect();
    for standby in &standbys {
        assert!(members.contains(standby), "standby {standby} became a member: {members:?}");
    }
    assert_eq!(events(&scope, &since, "unpause"), 2);
    eventually("the pool refilled", Duration::from_secs(60), || (counted(&scope, &name) == (3, 2)).then_some(()));

    // Below the pool's size, a scale-down pauses instead of removing: empty the pool first.
    let shrunk = call(&server, Method::PUT, &format!("/v1/groups/{name}/replicas"), Some(json!({"replicas": 5}))).await;
    assert_eq!(shrunk.status, StatusCode::OK, "{}", shrunk.text());
    let since = now();
    let down = call(&server, Method::PUT, &format!("/v1/groups/{name}/replicas"), Some(json!({"replicas": 1}))).await;
    assert_eq!(down.status, StatusCode::OK, "{}", down.text());
    let paused_now = events(&scope, &since, "pause");
    assert!(paused_now >= 2, "members paused into the pool: {paused_now}");
    eventually("one member and a full pool", Duration::from_secs(60), || {
        (counted(&scope, &name) == (1, 2)).then_some(())
    });
}

/// A redeploy: the tag moves to a new build and the original is recreated
/// from it. The old standbys run the old bits: they are replaced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_is_recycled_when_the_original_is_redeployed_from_a_moved_tag() {
    let scope = Scope::new("warmtag");
    let tag = format!("replicator-test/warm-{}:1", scope.id);
    docker(&["tag", image(), &tag]);
    let _tag = Untag { tag: tag.clone(), label: scope.label() };
    let run_original = || {
        scope.run(
            "web",
            &["--label", "replicator.enable=true", "--label", "replicator.warm=1", &tag, "httpd", "-f", "-p", "8080"],
        )
    };
    let first = run_original();
    let name = scope.name("web");
    let server = scope.server(&["--warm-settle", "1s"]);
    eventually("a paused standby", Duration::from_secs(60), || (counted(&scope, &name) == (1, 1)).then_some(()));
    let before = standby_ids(&group(&server, &name).await);

    let builder = scope.run("builder", &[image(), "sh", "-c", "echo v2 > /version && sleep 100000"]);
    docker(&["commit", &builder, &tag]);
    let new_image = docker(&["image", "inspect", "-f", "{{.Id}}", &tag]);
    docker(&["rm", "-f", &first]);
    run_original();
    // Between the removal and the new original the group may be gone for a moment (404).
    let client = server.client();
    let after = eventually_async("the stale standby replaced", Duration::from_secs(60), async || {
        let after = standby_ids(&try_group(&client, &name).await?);
        if after.len() == 1 && after != before {
            Ok(after)
        } else {
            Err(format!("{before:?} -> {after:?}"))
        }
    })
    .await;
    assert_eq!(docker(&["inspect", "-f", "{{.Image}}", &after[0]]), new_image);
    assert!(docker_try(&["inspect", &before[0]]).is_err(), "the stale standby is gone");
}

/// Removes a tag and the image only it names when the test ends, even on
/// failure: the scope's containers first, or the image would stay in use.
struct Untag {
    tag: String,
    label: String,
}

impl Drop for Untag {
    fn drop(&mut self) {
        let ids = docker_try(&["ps", "-aq", "--filter", &format!("label={}", self.label)]).unwrap_or_default();
        for id in ids.lines() {
            let _ = docker_try(&["rm", "-f", id]);
        }
        let _ = docker_try(&["rmi", "-f", &self.tag]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_with_standbys_leaves_nothing_the_next_start_does_not_adopt_or_remove() {
    let scope = Scope::new("warmcrash");
    let (original, name) = scope.web_group(&["--label", "replicator.warm=2"]);
    let server = scope.process_server(&["--warm-settle", "1s"]);
    eventually("two paused standbys", Duration::from_secs(60), || (counted(&scope, &name) == (1, 2)).then_some(()));
    server.signal("KILL");
    drop(server);

    let restarted = scope.process_server(&["--warm-settle", "1s"]);
    let client = restarted.client();
    let group = eventually_async("the restarted replicator to show the group", Duration::from_secs(30), async || {
        try_group(&client, &name).await
    })
    .await;
    assert_eq!(standby_ids(&group).len(), 2, "the standbys are adopted: {group}");
    assert_eq!(counted(&scope, &name), (1, 2), "none added, none lost");

    // The group goes: its standbys go with it.
    docker(&["rm", "-f", &original]);
    eventually("the standbys removed with their group", Duration::from_secs(60), || {
        scope.replicas_of(&name).is_empty().then_some(())
    });
}
