//! The pool keeper: keeps every warm group's pool at its size in the
//! background (recycling standbys that no longer match their original, as
//! after a redeploy, and removing those of a group that asks for none or is
//! gone), and raises a group below the minimum an active
//! `replicator.schedule` sets.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::admission::{new_request_id, Admission};
use super::core::Core;
use super::growth::Growth;
use super::pool::Pool;
use super::ready::Readiness;
use super::replica::Replica;
use super::scale::scale;
use super::source::Source;
use crate::base::worker::{Pace, Worker};
use crate::error::Result;
use crate::inventory::{Group, Member, MemberState};
use crate::rules::bounds::GroupKind;

/// How often every pool is looked at even when nothing changed.
const LOOK_EVERY: Duration = Duration::from_secs(5);
/// Changes closer together than this are looked at together.
const DEBOUNCE: Duration = Duration::from_millis(300);
/// Longest a standby may take to become ready before it is removed.
const READY_WITHIN: Duration = Duration::from_secs(120);

/// The background task that tends the pools.
#[derive(Clone)]
pub(super) struct Keeper(pub Arc<Core>);

impl Keeper {
    /// Keeps every group's pool at its size, and raises a group below the
    /// minimum an active `replicator.schedule` sets, until `cancel`: on every
    /// change of the groups (debounced) and every few seconds.
    pub async fn run(self, cancel: CancellationToken) {
        let core = &self.0;
        let pace = Pace { every: LOOK_EVERY, debounce: DEBOUNCE };
        let mut worker = Worker::new("keeper", pace, core.store.subscribe(), core.telemetry.clone());
        loop {
            for (name, raise_to) in core.store.groups().map(|g| wanting_care(&g)).unwrap_or_default() {
                worker.start(&name, self.clone().tend(name.clone(), raise_to));
            }
            if worker.next_round(std::future::pending(), Duration::ZERO, &cancel).await.is_none() {
                break;
            }
        }
        // A pool half-filled is filled at the next start.
        worker.abort().await;
    }

    /// Raises the group to `raise_to` (its scheduled minimum), or keeps its pool.
    async fn tend(self, name: String, raise_to: Option<u32>) {
        match raise_to {
            Some(min) => match scale(&self.0, &name, min, "schedule", None).await {
                Ok(_) => info!(group = %name, min, "raised to its scheduled minimum"),
                Err(e) => warn!(group = %name, min, error = %e, "cannot raise the group to its scheduled minimum"),
            },
            None => {
                if let Err(e) = self.keep_pool(&name).await {
                    debug!(group = %name, error = %e, "warm pool not kept this time");
                }
            }
        }
    }

    /// One look at one group's pool: recycle, trim, refill.
    async fn keep_pool(&self, name: &str) -> Result<()> {
        let core = self.0.as_ref();
        let warming = {
            let _locked = core.locks.lock(name).await;
            let group = core.group(name).await?;
            let Some(live) = group.clone_source().filter(|m| !m.state.in_flight()) else {
                // The group is gone but for its standbys: they go with it.
                self.remove_all(&group.standbys, "its group has no member left").await;
                return Ok(());
            };
            let details = core.engine.inspect_container(&live.id).await?;
            let source = Source::of(details, Some(&group), core.store.scope().default_max)?;
            let fresh: HashSet<String> = Pool(core).fresh(&group, &source).into_iter().map(|m| m.id.clone()).collect();
            let starting = group.standbys.iter().filter(|m| m.state != MemberState::Paused).count();
            let stale: Vec<Member> = group
                .standbys
                .iter()
                .filter(|m| m.state == MemberState::Paused && !fresh.contains(&m.id))
                .cloned()
                .collect();
            self.remove_all(&stale, "it no longer matches its original").await;
            let wanted = group.warm as usize;
            let surplus: Vec<Member> = group
                .standbys
                .iter()
                .filter(|m| fresh.contains(&m.id))
                .skip(wanted.saturating_sub(starting))
                .cloned()
                .collect();
            self.remove_all(&surplus, "the pool is larger than replicator.warm").await;
            // Standbys count against the ceiling too: members and standbys within --max-replicas.
            let ceiling = core.store.scope().default_max as usize;
            let room = ceiling.saturating_sub(group.size() + fresh.len() + starting);
            let missing = wanted.saturating_sub(fresh.len() + starting).min(room);
            if missing == 0 {
                return Ok(());
            }
            let reservation = Admission(core).reserve(&source, &new_request_id(), missing, true)?;
            let made = Growth(core).create(&source, reservation, "warm pool").await?;
            made.replicas
        };
        // Readiness is waited for outside the group's lock: scaling goes on meanwhile.
        join_all(warming.iter().map(|r| self.settle_and_pause(r))).await;
        Ok(())
    }

    /// Waits until a new standby is ready (healthy and passing its group's
    /// probe, or running for `--warm-settle` when it has neither), then pauses it.
    async fn settle_and_pause(&self, standby: &Replica) {
        let id = standby.id.as_str();
        let core = self.0.as_ref();
        let ready = Readiness(core).wait(&[id.to_owned()], READY_WITHIN).await;
        let has_check = core.store.member(id).is_some_and(|m| m.is_checked());
        if ready.is_ok() && !has_check {
            tokio::time::sleep(core.settings.warm_settle).await;
        }
        // The engine refuses to pause a container that stopped meanwhile: that is the check.
        let outcome = match ready {
            Ok(()) => Pool(core).pause(id).await,
            Err(e) => Err(e),
        };
        if let Err(e) = outcome {
            warn!(standby = %standby.name, error = %e, "standby never got ready; removed");
            // Removed while still warming: not a member for a moment, even if the removal fails.
            self.0.remove_quietly(id).await;
        } else {
            info!(standby = %standby.name, container = id, "standby ready and paused");
        }
        self.0.intents.set_warming(id, false);
    }

    async fn remove_all(&self, standbys: &[Member], why: &str) {
        for m in standbys {
            info!(standby = %m.name, container = %m.id, why, "standby removed");
            self.0.remove_quietly(&m.id).await;
        }
    }
}

/// The groups the keeper has work for: raising one below the minimum an
/// active schedule sets (`Some(min)`) comes before its pool (`None`).
fn wanting_care(groups: &[Group]) -> Vec<(String, Option<u32>)> {
    let mut work = Vec::new();
    for g in groups.iter().filter(|g| g.kind() != GroupKind::Swarm) {
        let Ok(bounds) = &g.bounds else { continue };
        let scheduled = g.schedule.is_some_and(|s| s.active) && g.size() < bounds.min as usize;
        if scheduled {
            work.push((g.name().to_owned(), Some(bounds.min)));
        } else if g.warm > 0 || !g.standbys.is_empty() {
            work.push((g.name().to_owned(), None));
        }
    }
    work
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::fake::FakeEngine;
    use crate::engine::{Engine, Op};
    use crate::inventory::Scope;
    use crate::rules::labels;
    use crate::service::Replicator;

    const WARM: [(&str, &str); 3] = [("replicator.enable", "true"), ("replicator.max", "5"), ("replicator.warm", "2")];

    fn web(service: &Replicator) -> Group {
        service.groups().unwrap().iter().find(|g| g.name() == "web").cloned().unwrap()
    }

    fn paused_standbys(service: &Replicator) -> usize {
        web(service).standbys.iter().filter(|m| m.state == MemberState::Paused).count()
    }

    /// A fake engine with a group `web` asking for standbys, and a service over it.
    async fn warm_web() -> (Arc<FakeEngine>, Replicator) {
        let engine = Arc::new(FakeEngine::default());
        engine.add_container("web", &WARM);
        let service = Replicator::for_test(engine.clone(), Scope::default()).await;
        (engine, service)
    }

    /// The keeper, running until the token is cancelled.
    fn keep(service: &Replicator) -> (CancellationToken, tokio::task::JoinHandle<()>) {
        let cancel = CancellationToken::new();
        (cancel.clone(), tokio::spawn(Keeper(service.core.clone()).run(cancel)))
    }

    /// Polls (on tokio's paused clock) until `done`, for at most a virtual minute.
    async fn until(what: &str, mut done: impl FnMut() -> bool) {
        for _ in 0..600 {
            if done() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("never: {what}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_warm_group_fills_its_pool_grows_by_unpausing_and_shrinks_into_the_pool() {
        let (engine, service) = warm_web().await;
        let (cancel, keeper) = keep(&service);
        until("two paused standbys", || paused_standbys(&service) == 2).await;
        assert_eq!(web(&service).size(), 1, "standbys are not members");

        let creates = engine.calls(Op::CreateContainer);
        let grown = service.scale("web", 3, "test", None).await.unwrap();
        assert_eq!(engine.calls(Op::CreateContainer), creates, "the scale-up created nothing");
        assert_eq!((grown.running(), engine.calls(Op::UnpauseContainer)), (3, 2));
        until("the pool refilled", || paused_standbys(&service) == 2).await;

        // The pool is full: the surplus members are removed, not paused.
        service.scale("web", 1, "test", None).await.unwrap();
        assert_eq!((web(&service).running(), paused_standbys(&service)), (1, 2));
        assert_eq!(engine.calls(Op::PauseContainer), 4, "only the four standbys were ever paused");
        cancel.cancel();
        keeper.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_keeper_job_that_panics_is_counted_and_its_group_is_kept_next_round() {
        let (engine, service) = warm_web().await;
        engine.panic_on(Op::InspectContainer, 1);
        let (cancel, keeper) = keep(&service);
        until("two paused standbys", || paused_standbys(&service) == 2).await;
        let label = crate::base::telemetry::WorkerLabel { worker: "keeper".into() };
        assert_eq!(service.telemetry().job_panics.get_or_create(&label).get(), 1, "the first job panicked");
        cancel.cancel();
        keeper.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_scale_down_pauses_members_into_a_short_pool() {
        let (engine, service) = warm_web().await;
        // No keeper: the pool stays empty until the scale-down fills it.
        service.scale("web", 4, "test", None).await.unwrap();
        service.scale("web", 1, "test", None).await.unwrap();
        let group = web(&service);
        assert_eq!((group.running(), paused_standbys(&service)), (1, 2), "two paused into the pool, one removed");
        assert_eq!(engine.calls(Op::RemoveContainer), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn standbys_of_a_recreated_original_are_recycled() {
        let engine = Arc::new(FakeEngine::default());
        let first = engine.add_container("web", &WARM);
        let service = Replicator::for_test(engine.clone(), Scope::default()).await;
        let (cancel, keeper) = keep(&service);
        until("two paused standbys", || paused_standbys(&service) == 2).await;
        let old: Vec<String> = web(&service).standbys.iter().map(|m| m.id.clone()).collect();
        engine.remove_silently(&first);
        service.core.intents.removed(&first);
        let second = engine.add_container("web", &WARM);
        let informer =
            crate::inventory::Informer::new(engine.clone(), service.inventory().writer_for_test(), Duration::MAX);
        informer.resync().await.unwrap();
        until("a fresh pool of the new original", || {
            let g = web(&service);
            let ids: Vec<&String> =
                g.standbys.iter().filter(|m| m.state == MemberState::Paused).map(|m| &m.id).collect();
            ids.len() == 2 && ids.iter().all(|id| !old.contains(id))
        })
        .await;
        for id in &old {
            assert!(engine.inspect_container(id).await.is_err(), "stale standby {id} was removed");
        }
        let source = |id: &str| service.inventory().container(id).unwrap().labels[labels::SOURCE].clone();
        assert!(web(&service).standbys.iter().all(|m| source(&m.id) == second));
        cancel.cancel();
        keeper.await.unwrap();
    }
}
