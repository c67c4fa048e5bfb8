//! Several replicators, exactly one acting: the loop that wins, keeps and
//! gives up the lease, following `rules::lease` against a store that lets
//! one of two writers of a version win (`engine::lease`). It moves this
//! process's role between following and acting, and moves the fence the
//! engine's calls that change the world must pass: the fence closes a
//! margin before the lease could pass to another, whatever happens to this
//! process meanwhile (cut off, frozen).

use std::sync::Arc;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::acting::Role;
use super::core::Core;
use crate::engine::{Fence, LeaseRecord, LeaseStore, Versioned};
use crate::rules::lease::{candidate_may_take, holder_may_act, Seen, Timing};

/// What the lease needs from the operator.
#[derive(Clone)]
pub struct LeaseSettings {
    /// Where the record is kept.
    pub store: Arc<dyn LeaseStore>,
    /// This process's name and address, as the others will read them.
    pub me: LeaseRecord,
    /// The term, the renewal period and the fence.
    pub timing: Timing,
    /// What the engine's calls that change the world must pass.
    pub fence: Fence,
}

/// The loop's memory between two rounds.
struct Elector {
    core: Arc<Core>,
    lease: LeaseSettings,
    /// When this process sent its last renewal the store accepted, while it holds the lease.
    sent: Option<Instant>,
    /// The other holder's record, as first seen.
    seen: Option<Seen>,
}

/// Runs the lease until `cancel`; a holder then stops acting and leaves the
/// record vacant, so another takes over at once instead of a term later.
pub(super) async fn keep_the_lease(core: Arc<Core>, lease: LeaseSettings, cancel: CancellationToken) {
    info!(store = %lease.store.describe(), holder = %lease.me.holder, "following the lease");
    let mut elector = Elector { core, lease, sent: None, seen: None };
    loop {
        let began = Instant::now();
        elector.round().await;
        let next = elector.next_round(began);
        tokio::select! {
            () = tokio::time::sleep_until(next) => {}
            () = cancel.cancelled() => break,
        }
    }
    elector.vacate().await;
}

impl Elector {
    /// When to look again: a renewal period after `began` for the holder, a
    /// quarter of it for the others (they see a renewal soon after it is
    /// written, so a term counted from that sight ends soon after the
    /// holder's), or sooner: the moment the fence closes (a holder that
    /// cannot renew steps down then), or the moment a candidate may take over.
    fn next_round(&self, began: Instant) -> Instant {
        let timing = &self.lease.timing;
        let period = if self.sent.is_some() { timing.renew_every } else { timing.renew_every / 4 };
        let tick = began + period;
        let fence = self.sent.map(|sent| sent + timing.term - timing.fence);
        let take = self.seen.filter(|_| self.sent.is_none()).map(|seen| seen.first_seen + timing.term);
        [Some(tick), fence, take].into_iter().flatten().filter(|at| *at > began).min().unwrap_or(tick)
    }

    /// One look at the record: renew, take over, or follow; then the fence.
    async fn round(&mut self) {
        match self.lease.store.read().await {
            Ok(current) => self.after_read(current).await,
            Err(e) => warn!(error = %e, "cannot read the lease"),
        }
        if self.sent.is_some_and(|sent| !holder_may_act(sent, Instant::now(), &self.lease.timing)) {
            warn!("the lease could not be renewed in time: no longer acting");
            self.step_down(None);
        }
    }

    async fn after_read(&mut self, current: Versioned) {
        let holder = current.record.as_ref().map(|r| r.holder.as_str()).filter(|h| !h.is_empty());
        if holder == Some(self.lease.me.holder.as_str()) {
            return self.write(current.version).await;
        }
        if self.sent.is_some() {
            info!(holder, "another replicator holds the lease now");
            self.step_down(current.record.as_ref().and_then(|r| r.address.clone()));
        }
        let seen = Seen::after_read(self.seen, current.version, Instant::now());
        self.seen = Some(seen);
        let vacant = holder.is_none();
        if vacant || candidate_may_take(Some(&seen), Instant::now(), &self.lease.timing) {
            return self.write(current.version).await;
        }
        let leader = current.record.and_then(|r| r.address);
        // A new leader's address replaces the last one commands were sent to.
        if self.core.acting.role() != Role::Following || self.core.acting.leader() != leader {
            self.core.acting.follow(leader);
        }
    }

    /// Writes this process's record over `version`: a renewal or a taking.
    async fn write(&mut self, version: u64) {
        let sent = Instant::now();
        match self.lease.store.write(version, &self.lease.me).await {
            Ok(true) => self.hold(sent),
            Ok(false) => {} // another write came first: the next round reads it
            Err(e) => warn!(error = %e, "cannot write the lease"),
        }
    }

    /// The store took a write sent at `sent`: act until its term less the fence.
    fn hold(&mut self, sent: Instant) {
        let timing = &self.lease.timing;
        self.lease.fence.open_until(sent + timing.term - timing.fence);
        if self.sent.is_none() {
            info!("holding the lease: acting");
        }
        self.sent = Some(sent);
        self.seen = None;
        self.core.acting.grant();
    }

    fn step_down(&mut self, leader: Option<String>) {
        self.lease.fence.close();
        self.sent = None;
        self.core.acting.follow(leader);
    }

    /// Leaves the record vacant if this process holds it, once it no longer acts.
    async fn vacate(&mut self) {
        let Some(_) = self.sent.take() else { return };
        self.lease.fence.close();
        let vacant = LeaseRecord { holder: String::new(), address: None };
        if let Ok(current) = self.lease.store.read().await {
            let mine = current.record.as_ref().is_some_and(|r| r.holder == self.lease.me.holder);
            if mine && matches!(self.lease.store.write(current.version, &vacant).await, Ok(true)) {
                info!("lease left vacant for the next replicator");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::engine::fake::FakeEngine;
    use crate::engine::lease::MemoryLease;
    use crate::engine::{ErrorKind, FencedEngine, Op};
    use crate::error::Error;
    use crate::inventory::{Informer, Inventory, Scope};
    use crate::service::{Replicator, Settings};

    struct Member {
        service: Replicator,
        fence: Fence,
        elector: tokio::task::JoinHandle<()>,
        cancel: CancellationToken,
    }

    async fn member(engine: &Arc<FakeEngine>, store: &Arc<MemoryLease>, name: &str) -> Member {
        let Inventory { writer, store: inventory, intents } = Inventory::new(Scope::default());
        Informer::new(engine.clone(), writer, Duration::from_secs(3600)).resync().await.unwrap();
        let fence = Fence::shut();
        let fenced = Arc::new(FencedEngine::new(engine.clone(), fence.clone()));
        let service =
            Replicator::new(fenced, (inventory, intents), Default::default(), Settings::default(), Default::default());
        service.acting().await_lease();
        let me = LeaseRecord { holder: name.into(), address: Some(format!("https://{name}:8443")) };
        let lease = LeaseSettings { store: store.clone(), me, timing: Timing::default(), fence: fence.clone() };
        let cancel = CancellationToken::new();
        let elector = tokio::spawn(keep_the_lease(service.core.clone(), lease, cancel.clone()));
        Member { service, fence, elector, cancel }
    }

    /// Acting for real: its role says so and its fence lets calls out.
    fn acts(m: &Member) -> bool {
        m.service.acting().role() == Role::Acting && m.fence.is_open()
    }

    /// Steps the paused clock by 100 ms up to `limit`, checking that never
    /// both act, until `done`.
    async fn until(limit: Duration, a: &Member, b: &Member, done: impl Fn() -> bool) -> Duration {
        let began = Instant::now();
        while !done() {
            assert!(!(acts(a) && acts(b)), "two act at once");
            assert!(began.elapsed() < limit, "not within {limit:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        began.elapsed()
    }

    #[tokio::test(start_paused = true)]
    async fn one_of_two_acts_the_other_names_it_and_takes_over_within_a_term_once_it_is_gone() {
        let engine = Arc::new(FakeEngine::default());
        engine.add_container("web", &[("replicator.enable", "true")]);
        let store = Arc::new(MemoryLease::default());
        let (a, b) = (member(&engine, &store, "a").await, member(&engine, &store, "b").await);
        until(Duration::from_secs(2), &a, &b, || acts(&a) || acts(&b)).await;
        let (leader, follower) = if acts(&a) { (a, b) } else { (b, a) };
        let quiet = Instant::now() + Duration::from_secs(10);
        until(Duration::from_secs(11), &leader, &follower, || Instant::now() >= quiet).await;
        assert!(acts(&leader), "renewed all along");
        let refused = follower.service.scale("web", 2, "test", None).await.unwrap_err();
        assert!(matches!(&refused, Error::NotActing { leader: Some(l) } if l.contains(":8443")), "{refused}");
        leader.service.scale("web", 2, "test", None).await.unwrap();
        assert_eq!(engine.calls(Op::CreateContainer), 1);

        // The leader dies without a word: the other acts within a term and a renewal.
        leader.elector.abort();
        leader.service.acting().await_lease();
        let took = until(Duration::from_secs(6), &leader, &follower, || acts(&follower)).await;
        let timing = Timing::default();
        assert!(
            took <= timing.term + Duration::from_millis(100),
            "a term after its last sight, not a tick later: {took:?}"
        );
        follower.cancel.cancel();
        follower.elector.await.unwrap();
        assert_eq!(store.state.lock().unwrap().record.as_ref().map(|r| r.holder.as_str()), Some(""), "left vacant");
    }

    #[tokio::test(start_paused = true)]
    async fn a_follower_names_the_new_leader_once_the_lease_changes_hands() {
        let engine = Arc::new(FakeEngine::default());
        let store = Arc::new(MemoryLease::default());
        let a = member(&engine, &store, "a").await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(acts(&a));
        let (b, c) = (member(&engine, &store, "b").await, member(&engine, &store, "c").await);
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(b.service.acting().leader().as_deref(), Some("https://a:8443"));
        a.elector.abort();
        a.service.acting().await_lease();
        until(Duration::from_secs(6), &b, &c, || acts(&b) || acts(&c)).await;
        let (leader, follower) = if acts(&b) { ("https://b:8443", &c) } else { ("https://c:8443", &b) };
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(follower.service.acting().leader().as_deref(), Some(leader), "not the dead one's address");
    }

    #[tokio::test(start_paused = true)]
    async fn a_frozen_leader_resumed_after_another_took_over_changes_nothing() {
        let engine = Arc::new(FakeEngine::default());
        engine.add_container("web", &[("replicator.enable", "true")]);
        let store = Arc::new(MemoryLease::default());
        let a = member(&engine, &store, "a").await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(acts(&a));
        let b = member(&engine, &store, "b").await;
        // Frozen: its elector no longer runs, its role still says it acts.
        a.elector.abort();
        until(Duration::from_secs(6), &a, &b, || acts(&b)).await;
        let before = engine.calls(Op::CreateContainer) + engine.calls(Op::StartContainer);
        assert_eq!(a.service.acting().role(), Role::Acting, "it does not know yet");
        let e = a.service.scale("web", 3, "test", None).await.unwrap_err();
        assert!(matches!(&e, Error::Engine(e) if e.kind == ErrorKind::Fenced), "{e}");
        assert_eq!(engine.calls(Op::CreateContainer) + engine.calls(Op::StartContainer), before, "nothing sent");
        b.service.scale("web", 3, "test", None).await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_holder_cut_off_from_the_store_stops_acting_before_another_may_take_over() {
        let engine = Arc::new(FakeEngine::default());
        let store = Arc::new(MemoryLease::default());
        let a = member(&engine, &store, "a").await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(acts(&a));
        store.down.store(true, std::sync::atomic::Ordering::SeqCst);
        let stopped = Instant::now();
        while a.service.acting().role() == Role::Acting {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(!a.fence.is_open());
        let timing = Timing::default();
        assert!(stopped.elapsed() <= timing.term - timing.fence, "{:?}", stopped.elapsed());
        assert_eq!(a.service.acting().role(), Role::Following);
    }
}
