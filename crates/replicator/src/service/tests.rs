//! The service against the stateful fake engine: admission from memory,
//! exact limits under concurrency, name retries, rollback, Swarm version
//! conflicts, reconcile, and the inventory's repair by listing.

use std::sync::Arc;
use std::time::Duration;

use super::{Caller, Replicator};
use crate::base::id::ContainerRef;
use crate::engine::fake::FakeEngine;
use crate::engine::{ErrorKind, Op};
use crate::error::Error;
use crate::inventory::{Informer, MemberState, Scope};
use crate::model::{RunState, SwarmRole};

const ENABLED: (&str, &str) = ("replicator.enable", "true");

struct World {
    engine: Arc<FakeEngine>,
    service: Replicator,
    informer: Informer,
}

async fn world(scope: Scope) -> World {
    let engine = Arc::new(FakeEngine::default());
    let service = Replicator::for_test(engine.clone(), scope).await;
    let informer = Informer::new(engine.clone(), service.inventory().writer_for_test(), Duration::from_secs(3600));
    World { engine, service, informer }
}

/// A world with one enabled container `web`, listed.
async fn web_world() -> World {
    let w = world(Scope::default()).await;
    w.engine.add_container("web", &[ENABLED]);
    w.resync().await;
    w
}

impl World {
    async fn resync(&self) {
        self.informer.resync().await.unwrap();
    }

    /// Starts `replicate web` for `count` clones waiting for them to be
    /// ready, and returns the request with the id of its last clone once
    /// every clone runs.
    async fn replicate_waiting_ready(
        &self,
        count: u32,
    ) -> (tokio::task::JoinHandle<Result<super::Replication, Error>>, String) {
        let service = self.service.clone();
        let request = tokio::spawn(async move {
            service
                .replicate(&World::target("web"), count, &Caller::operator("test"), Some(Duration::from_secs(10)))
                .await
        });
        let (last, running) = (format!("web-{}", count + 1), count as usize + 1);
        let mut changes = self.service.inventory().subscribe();
        loop {
            if let Some(id) =
                self.engine.id_of(&last).filter(|_| self.engine.names_in(RunState::Running).len() == running)
            {
                return (request, id);
            }
            changes.changed().await.unwrap();
        }
    }

    /// `web` with one replica, a follower `nginx` of it that has not
    /// acknowledged anything, and a scale-down to 1 under way: returned
    /// once its member drains (the hub announced it).
    async fn scale_down_draining(
        &self,
    ) -> (
        Arc<super::events::EventHub>,
        super::events::Subscription,
        tokio::task::JoinHandle<Result<crate::inventory::Group, Error>>,
    ) {
        self.replicate("web", 1).await.unwrap();
        let hub = self.service.events().clone();
        hub.observe(&self.service.groups().unwrap());
        let follower = hub.subscribe("nginx", Some("web"), None, "test").unwrap();
        let service = self.service.clone();
        let scaling = tokio::spawn(async move { service.scale("web", 1, "test", None).await });
        let mut changes = self.service.inventory().subscribe();
        loop {
            let groups = self.service.groups().unwrap();
            hub.observe(&groups);
            if groups[0].members.iter().any(|m| m.state == MemberState::Draining) {
                return (hub, follower, scaling);
            }
            changes.changed().await.unwrap();
        }
    }

    fn target(name: &str) -> ContainerRef {
        ContainerRef::parse(name).unwrap()
    }

    async fn replicate(&self, name: &str, count: u32) -> Result<super::Replication, Error> {
        self.service.replicate(&Self::target(name), count, &Caller::operator("test"), None).await
    }

    async fn states(&self, group: &str) -> Vec<(String, MemberState)> {
        let g = self.service.group(group).await.unwrap();
        g.members.iter().map(|m| (m.name.clone(), m.state)).collect()
    }
}

#[tokio::test]
async fn a_replication_is_admitted_from_memory_without_listing_the_engine() {
    let w = web_world().await;
    let listings = w.engine.calls(Op::ListContainers);
    let r = w.replicate("web", 2).await.unwrap();
    assert_eq!(r.replicas.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(), ["web-2", "web-3"]);
    w.service.fresh_groups().await.unwrap();
    assert_eq!(w.engine.calls(Op::ListContainers), listings, "no listing on the hot path or for the groups");
    assert_eq!(w.engine.calls(Op::ListServices), 0, "no Swarm call on an engine without Swarm");
    assert_eq!(w.service.group("web").await.unwrap().running(), 3);
}

#[tokio::test]
async fn the_limit_holds_exactly_under_twenty_concurrent_requests() {
    let w = world(Scope::default()).await;
    w.engine.add_container("web", &[ENABLED, ("replicator.max", "5")]);
    w.resync().await;
    w.engine.delay(Op::CreateContainer, Duration::from_millis(5));
    let all = (0..20).map(|_| {
        let service = w.service.clone();
        tokio::spawn(async move { service.replicate(&World::target("web"), 1, &Caller::operator("race"), None).await })
    });
    let results = futures_util::future::join_all(all).await;
    let created = results.iter().filter(|r| matches!(r, Ok(Ok(_)))).count();
    let refused = results.iter().filter(|r| matches!(r, Ok(Err(Error::LimitReached { max: 5, .. })))).count();
    assert_eq!((created, refused), (4, 16));
    assert_eq!(w.engine.names_in(RunState::Running).len(), 5);
}

#[tokio::test]
async fn a_name_taken_meanwhile_is_retried_under_the_next_free_one() {
    let w = web_world().await;
    // Someone else takes web-2 without the inventory knowing yet.
    w.engine.add_container("web-2", &[]);
    let r = w.replicate("web", 1).await.unwrap();
    assert_eq!(r.replicas[0].name, "web-3");
}

#[tokio::test]
async fn a_failed_start_rolls_back_every_clone_of_the_request() {
    let w = web_world().await;
    w.engine.fail_after(Op::StartContainer, 1, ErrorKind::Rejected, 1);
    let e = w.replicate("web", 3).await.unwrap_err();
    assert!(matches!(&e, Error::Engine(e) if e.op == Op::StartContainer), "{e}");
    assert_eq!(w.engine.names(), ["web"], "the clone already started is removed too");
    assert_eq!(w.states("web").await, [("web".to_owned(), MemberState::Running)]);
}

#[tokio::test]
async fn a_refused_create_late_in_a_request_leaves_nothing() {
    let w = web_world().await;
    w.engine.fail_after(Op::CreateContainer, 2, ErrorKind::Rejected, 1);
    let e = w.replicate("web", 3).await.unwrap_err();
    assert!(matches!(&e, Error::Engine(e) if e.op == Op::CreateContainer), "{e}");
    assert_eq!(w.engine.names(), ["web"]);
    let g = w.service.group("web").await.unwrap();
    assert_eq!(g.size(), 1, "no place stays reserved");
}

#[tokio::test]
async fn malformed_bounds_refuse_replication_and_scaling_with_the_reason() {
    let w = world(Scope::default()).await;
    w.engine.add_container("web", &[ENABLED, ("replicator.max", "99999999999")]);
    w.resync().await;
    let e = w.replicate("web", 1).await.unwrap_err();
    assert!(matches!(&e, Error::InvalidGroup { reason, .. } if reason.contains("too large")), "{e}");
    let e = w.service.scale("web", 1, "test", None).await.unwrap_err();
    assert!(matches!(e, Error::InvalidGroup { .. }), "{e}");
    let listed = w.service.group("web").await.unwrap();
    assert!(listed.bounds.unwrap_err().contains("replicator.max"));
    assert_eq!(w.engine.names(), ["web"]);
}

#[tokio::test]
async fn a_group_label_the_api_cannot_address_is_refused_by_name() {
    let w = world(Scope::default()).await;
    w.engine.add_container("web", &[ENABLED, ("replicator.group", "a b <x>")]);
    w.resync().await;
    let e = w.replicate("web", 1).await.unwrap_err();
    assert!(matches!(&e, Error::Conflict(m) if m.contains("replicator.group")), "{e}");
    assert_eq!(w.engine.names(), ["web"]);
}

#[tokio::test]
async fn scaling_down_removes_the_newest_replicas_and_a_vanished_one_is_no_error() {
    let w = web_world().await;
    let r = w.replicate("web", 3).await.unwrap();
    // The newest replica disappears behind the inventory's back.
    w.engine.remove_silently(&r.replicas[2].id);
    let g = w.service.scale("web", 2, "test", None).await.unwrap();
    assert_eq!(g.size(), 2);
    assert_eq!(w.engine.names(), ["web", "web-2"]);
    let e = w.service.scale("web", 0, "test", None).await.unwrap_err();
    assert!(matches!(e, Error::OutOfBounds { asked: 0, .. }), "{e}");
}

#[tokio::test]
async fn a_stale_swarm_version_is_retried() {
    let w = world(Scope::default()).await;
    w.engine.set_swarm(SwarmRole::Manager);
    let service = w.engine.add_service("api", 1, &[ENABLED]);
    w.resync().await;
    w.engine.fail(Op::UpdateService, ErrorKind::Conflict, 2);
    let g = w.service.scale("api", 3, "test", None).await.unwrap();
    assert_eq!(w.engine.service_replicas(&service), Some(3));
    assert_eq!(g.members.len(), 3);
    assert_eq!(w.engine.calls(Op::UpdateService), 3);
}

#[tokio::test]
async fn reconcile_removes_only_replicas_that_were_never_started() {
    let w = web_world().await;
    w.engine.fail(Op::StartContainer, ErrorKind::Unavailable, 1);
    w.engine.fail(Op::RemoveContainer, ErrorKind::Unavailable, 1);
    // The start and the rollback both fail: a created clone is left, as after a crash.
    assert!(w.replicate("web", 1).await.is_err());
    let bystander = w.engine.add_container("bystander", &[]);
    w.engine.set_state(&bystander, RunState::Created, "stop");
    w.resync().await;
    assert_eq!(super::reconcile::Reconciler(&w.service.core).reconcile().await.unwrap(), 1);
    let mut left = w.engine.names();
    left.sort();
    assert_eq!(left, ["bystander", "web"]);
}

#[tokio::test]
async fn a_replica_that_exited_holds_no_place_and_is_removed_once_kept_for_its_logs() {
    let w = web_world().await;
    let made = w.replicate("web", 2).await.unwrap();
    let (old, recent) = (&made.replicas[0].id, &made.replicas[1].id);
    w.engine.set_state(old, RunState::Exited, "die");
    w.engine.set_state(recent, RunState::Exited, "die");
    let original = w.engine.id_of("web").unwrap();
    w.engine.set_state(&original, RunState::Exited, "die");
    let long_ago = crate::base::clock::unix_now() - super::reconcile::EXITED_KEPT.as_secs() as i64 - 1;
    w.engine.set_finished_at(old, long_ago);
    w.engine.set_finished_at(&original, long_ago);
    w.resync().await;
    let g = w.service.group("web").await.unwrap();
    assert_eq!(g.size(), 0, "exited members hold no place");
    assert_eq!(g.members.iter().filter(|m| m.state == MemberState::Exited).count(), 3, "shown as exited");
    assert_eq!(super::reconcile::Reconciler(&w.service.core).remove_exited_replicas().await.unwrap(), 1);
    let mut left = w.engine.names();
    left.sort();
    assert_eq!(left, ["web", "web-3"], "the original is never removed; a recent exit is kept");
}

#[tokio::test]
async fn wait_ready_fails_for_a_replica_that_exits_at_once_naming_it_and_its_exit_code() {
    let w = web_world().await;
    let (request, last) = w.replicate_waiting_ready(1).await;
    w.engine.set_state(&last, RunState::Exited, "die");
    w.resync().await;
    let e = request.await.unwrap().unwrap_err().to_string();
    assert!(e.contains("web-2") && e.contains("it exited"), "{e}");
    assert_eq!(w.engine.names(), ["web"], "the request's clones are removed");
}

#[tokio::test]
async fn a_missed_event_is_repaired_by_the_next_listing() {
    let w = web_world().await;
    let r = w.replicate("web", 1).await.unwrap();
    w.engine.remove_silently(&r.replicas[0].id);
    assert_eq!(w.service.group("web").await.unwrap().members.len(), 2, "not seen yet");
    w.resync().await;
    assert_eq!(w.service.group("web").await.unwrap().members.len(), 1);
}

#[tokio::test]
async fn the_informer_follows_events_and_resumes_after_a_cut() {
    let w = world(Scope::default()).await;
    let cancel = tokio_util::sync::CancellationToken::new();
    let informer = Informer::new(w.engine.clone(), w.service.inventory().writer_for_test(), Duration::from_secs(3600));
    let running = tokio::spawn(informer.run(cancel.clone()));
    let mut changes = w.service.inventory().subscribe();
    let web = w.engine.add_container("web", &[ENABLED]);
    let seen = |w: &World| w.service.groups().map(|g| g.iter().any(|g| g.name() == "web")).unwrap_or(false);
    tokio::time::timeout(Duration::from_secs(5), async {
        while !seen(&w) {
            changes.changed().await.unwrap();
        }
    })
    .await
    .expect("the new container is seen from its events");
    w.engine.cut();
    w.engine.set_state(&web, RunState::Exited, "die");
    let exited = |w: &World| {
        w.service.groups().ok().and_then(|g| g.iter().find(|g| g.name() == "web").map(|g| g.running() == 0))
            == Some(true)
    };
    tokio::time::timeout(Duration::from_secs(10), async {
        while !exited(&w) {
            changes.changed().await.unwrap();
        }
    })
    .await
    .expect("the state change made during the cut is seen after it");
    cancel.cancel();
    running.await.unwrap();
}

#[tokio::test]
async fn reconcile_undoes_a_request_cut_off_between_its_starts_and_keeps_finished_ones() {
    let w = world(Scope::default()).await;
    let original = w.engine.add_container("web", &[ENABLED]);
    let replica = |name: &str, request: &str| {
        let labels = [
            ENABLED,
            ("replicator.group", "web"),
            ("replicator.source", original.as_str()),
            ("replicator.request", request),
            ("replicator.request-size", "3"),
        ];
        w.engine.add_container(name, &labels)
    };
    // Request a: two started, one never started (replicator died). Request b: finished, then scaled down to one.
    replica("web-2", "a");
    replica("web-3", "a");
    let never_started = replica("web-4", "a");
    w.engine.set_state(&never_started, RunState::Created, "stop");
    replica("web-5", "b");
    w.resync().await;
    assert_eq!(super::reconcile::Reconciler(&w.service.core).reconcile().await.unwrap(), 3);
    let mut left = w.engine.names();
    left.sort();
    assert_eq!(left, ["web", "web-5"]);
}

/// A world whose inventory follows the fake's events, as `serve`'s does.
async fn informed_world() -> (World, tokio_util::sync::CancellationToken) {
    let w = world(Scope::default()).await;
    let cancel = tokio_util::sync::CancellationToken::new();
    let informer = Informer::new(w.engine.clone(), w.service.inventory().writer_for_test(), Duration::from_secs(3600));
    tokio::spawn(informer.run(cancel.clone()));
    (w, cancel)
}

// The clock is paused: the sleep returns only once every task has done all
// it could without the health change, so "not finished" cannot pass by luck.
#[tokio::test(start_paused = true)]
async fn wait_ready_answers_once_a_late_healthcheck_passes() {
    let (w, _informing) = informed_world().await;
    w.engine.add_checked_container("web", &[ENABLED]);
    w.resync().await;
    let (request, clone) = w.replicate_waiting_ready(1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!request.is_finished(), "no answer while the clone's healthcheck is starting");
    w.engine.set_health(&clone, crate::model::Health::Healthy, "ok");
    let r = request.await.unwrap().unwrap();
    assert_eq!(r.replicas[0].id, clone);
    assert!(w.service.group("web").await.unwrap().members.iter().all(|m| m.ready()));
}

#[tokio::test]
async fn wait_ready_fails_with_the_health_output_and_removes_the_request() {
    let (w, _informing) = informed_world().await;
    w.engine.add_checked_container("web", &[ENABLED]);
    w.resync().await;
    let (request, clone) = w.replicate_waiting_ready(2).await;
    w.engine.set_health(&clone, crate::model::Health::Unhealthy, "curl: (7) connection refused");
    let e = request.await.unwrap().unwrap_err();
    assert!(matches!(&e, Error::NotReady { member, .. } if member == "web-3"), "{e}");
    assert!(e.to_string().contains("connection refused"), "{e}");
    assert_eq!(w.engine.names(), ["web"], "both clones of the request are removed");
}

#[tokio::test(start_paused = true)]
async fn wait_ready_gives_up_at_the_timeout() {
    let w = world(Scope::default()).await;
    w.engine.add_checked_container("web", &[ENABLED]);
    w.resync().await;
    let e = w
        .service
        .replicate(&World::target("web"), 1, &Caller::operator("test"), Some(Duration::from_secs(5)))
        .await
        .unwrap_err();
    assert!(matches!(&e, Error::NotReady { reason, .. } if reason.contains("within 5s")), "{e}");
    assert_eq!(w.engine.names(), ["web"]);
}

// Paused clock, as above: nothing the balancer's silence allows is left undone.
#[tokio::test(start_paused = true)]
async fn a_scale_down_drains_before_it_stops() {
    let w = web_world().await;
    let (hub, _follower, scaling) = w.scale_down_draining().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(w.engine.calls(Op::StopContainer), 0, "no stop before the balancer let the member go");
    hub.ack("nginx", u64::MAX, "test").unwrap();
    scaling.await.unwrap().unwrap();
    assert_eq!(w.engine.calls(Op::StopContainer), 1);
    assert_eq!(w.engine.names(), ["web"]);
}

#[tokio::test]
async fn a_relative_change_is_read_under_the_lock_and_kept_within_the_bounds() {
    let engine = Arc::new(FakeEngine::default());
    engine.add_container("web", &[("replicator.enable", "true"), ("replicator.max", "3")]);
    let service = Replicator::for_test(engine.clone(), Scope::default()).await;
    let (a, b) = tokio::join!(service.scale_by("web", 1, "a"), service.scale_by("web", 1, "b"));
    let mut moves = [a.unwrap(), b.unwrap()];
    moves.sort();
    assert_eq!(moves, [(1, 2), (2, 3)], "two steps at once both count");
    assert_eq!(service.scale_by("web", 10, "c").await.unwrap(), (3, 3), "never above max");
    assert_eq!(service.scale_by("web", -10, "d").await.unwrap(), (3, 1), "never below min");
}

#[tokio::test]
async fn a_scale_down_waiting_on_a_silent_balancer_does_not_hold_up_a_scale_up() {
    let w = web_world().await;
    let (hub, _silent, shrinking) = w.scale_down_draining().await;
    // The drain waits up to --drain-timeout (10 s here); the scale-up must not.
    let grown = tokio::time::timeout(Duration::from_secs(5), w.service.scale("web", 2, "test", None))
        .await
        .expect("the scale-up did not wait for the drain")
        .unwrap();
    assert_eq!(grown.running(), 2, "the original and the new replica; the leaving one does not count");
    assert!(!shrinking.is_finished(), "the scale-down still waits for the balancer");
    assert_eq!(w.engine.calls(Op::StopContainer), 0);
    hub.ack("nginx", u64::MAX, "test").unwrap();
    tokio::time::timeout(Duration::from_secs(5), shrinking)
        .await
        .expect("released by the acknowledgement")
        .unwrap()
        .unwrap();
    assert_eq!(w.engine.calls(Op::StopContainer), 1);
}

#[test]
fn an_acknowledgement_is_capped_at_the_latest_event_and_belongs_to_its_follower() {
    let hub = std::sync::Arc::new(super::events::EventHub::default());
    let _nginx = hub.subscribe("nginx-1", None, None, "balancer:nginx-1").unwrap();
    let latest = hub.ack("nginx-1", u64::MAX, "balancer:nginx-1").unwrap();
    assert!(latest < u64::MAX, "capped at the latest event id");
    assert_eq!(hub.ack("nginx-1", 1, "operator").unwrap_err(), "balancer:nginx-1");
    assert!(hub.subscribe("nginx-1", None, None, "operator").is_err(), "the name is taken by its identity");
}

#[tokio::test(start_paused = true)]
async fn a_pause_the_runtime_fails_is_tried_again_and_three_failures_refuse_the_sleep() {
    use crate::engine::Engine as _;
    let w = world(Scope::default()).await;
    let web = w.engine.add_container("web", &[ENABLED, ("replicator.min", "0")]);
    w.resync().await;
    // "unable to freeze": the engine answers 500 and the next try succeeds.
    w.engine.fail(Op::PauseContainer, ErrorKind::Rejected, 2);
    let asleep = w.service.scale("web", 0, "test", None).await.unwrap();
    assert!(asleep.asleep(), "asleep after two failed pauses");
    assert_eq!(w.engine.calls(Op::PauseContainer), 3);

    let awake = w.service.wake("web", "test", None).await.unwrap();
    assert!(!awake.asleep());
    w.engine.fail(Op::PauseContainer, ErrorKind::Rejected, 3);
    assert!(w.service.scale("web", 0, "test", None).await.is_err(), "three failures refuse the sleep");
    assert_eq!(w.engine.inspect_container(&web).await.unwrap().state, RunState::Running);
}

#[tokio::test(start_paused = true)]
async fn a_scale_up_reads_its_group_once_for_the_change_and_once_for_the_answer() {
    let w = world(Scope::default()).await;
    w.engine.add_container("web", &[ENABLED, ("replicator.min", "0"), ("replicator.max", "5")]);
    w.resync().await;
    assert!(w.service.scale("web", 0, "test", None).await.unwrap().asleep());
    w.resync().await;

    // Asleep: the walk wakes the original, admits, grows; none of it reads again.
    let before = w.service.core.group_reads();
    let grown = w.service.scale("web", 3, "test", None).await.unwrap();
    assert_eq!(grown.size(), 3);
    assert_eq!(w.service.core.group_reads() - before, 2, "one read under the lock, one for the answer");

    let before = w.service.core.group_reads();
    w.service.scale("web", 5, "test", None).await.unwrap();
    assert_eq!(w.service.core.group_reads() - before, 2, "awake: the same two reads");
}

#[tokio::test(start_paused = true)]
async fn a_member_that_refuses_is_tried_again_no_more_than_100_ms_apart() {
    use std::sync::Mutex;
    use tokio::time::Instant;
    let w = world(Scope::default()).await;
    let web = w.engine.add_container("web", &[ENABLED]);
    w.engine.attach(&web, "net", "10.0.0.2");
    w.resync().await;
    let began = Instant::now();
    let listens_at = began + Duration::from_millis(1_330);
    let tries = Arc::new(Mutex::new(Vec::new()));
    let reach = super::Reach {
        group: "web",
        port: 8080,
        network: Some("net"),
        deadline: began + Duration::from_secs(10),
        caller: "test",
        wakes: true,
    };
    let attempts = tries.clone();
    let reached = w
        .service
        .reach(reach, &mut super::FirstReady, move |_member| {
            let attempts = attempts.clone();
            async move {
                let now = Instant::now();
                attempts.lock().unwrap().push(now);
                if now >= listens_at {
                    Ok(now)
                } else {
                    Err("connection refused".to_owned())
                }
            }
        })
        .await
        .expect("reached once it listens");
    assert!(
        reached.value - listens_at <= Duration::from_millis(100),
        "{:?} after it listened",
        reached.value - listens_at
    );
    let tries = tries.lock().unwrap();
    let widest = tries.windows(2).map(|w| w[1] - w[0]).max().unwrap();
    assert!(widest <= Duration::from_millis(100), "{widest:?} between two tries");
}

#[tokio::test]
async fn a_group_that_wakes_to_three_answers_with_its_original_and_grows_to_three_behind() {
    let w = world(Scope::default()).await;
    w.engine.add_container("web", &[ENABLED, ("replicator.min", "0"), ("replicator.wake.replicas", "3")]);
    w.resync().await;
    assert!(w.service.scale("web", 0, "test", None).await.unwrap().asleep());
    w.resync().await;
    let woken = w.service.wake("web", "test", None).await.unwrap();
    assert!(!woken.asleep(), "answered once its original runs");
    let mut changes = w.service.inventory().subscribe();
    while w.engine.names_in(RunState::Running).len() < 3 {
        tokio::time::timeout(Duration::from_secs(10), changes.changed()).await.expect("grows to 3").unwrap();
    }
    w.resync().await;
    assert_eq!(w.service.group("web").await.unwrap().size(), 3);
    // Awake already: a wake changes nothing.
    w.service.wake("web", "test", None).await.unwrap();
    assert_eq!(w.engine.names_in(RunState::Running).len(), 3);
}

#[tokio::test]
async fn a_wake_to_more_than_the_max_is_refused_by_name() {
    let w = world(Scope::default()).await;
    w.engine.add_container(
        "web",
        &[ENABLED, ("replicator.min", "0"), ("replicator.max", "2"), ("replicator.wake.replicas", "3")],
    );
    w.resync().await;
    let g = w.service.group("web").await.unwrap();
    let reason = g.bounds.unwrap_err();
    assert!(reason.contains("replicator.wake.replicas=3") && reason.contains("max (2)"), "{reason}");
}

#[tokio::test]
async fn a_request_that_does_not_wake_finds_a_sleeping_group_asleep_and_leaves_it_so() {
    let w = world(Scope::default()).await;
    let web = w.engine.add_container("web", &[ENABLED, ("replicator.min", "0")]);
    w.engine.attach(&web, "net", "10.0.0.2");
    w.resync().await;
    assert!(w.service.scale("web", 0, "test", None).await.unwrap().asleep());
    w.resync().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let reach =
        super::Reach { group: "web", port: 8080, network: Some("net"), deadline, caller: "probe", wakes: false };
    let e = w.service.reach(reach, &mut super::FirstReady, |_| async { Ok(()) }).await.unwrap_err();
    assert!(e.to_string().contains("does not wake it"), "{e}");
    assert!(w.service.group("web").await.unwrap().asleep(), "still asleep");
    assert_eq!(w.engine.calls(Op::UnpauseContainer) + w.engine.calls(Op::StartContainer), 0);
}
