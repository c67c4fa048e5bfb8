//! The per-group worker loop every control loop runs on (the autoscaler,
//! the standby keeper, and what comes next): woken every interval, on a
//! change of the groups (debounced, so a burst of events is one round), or
//! by a nudge of its own; at most one job per group at a time; stopped by a
//! cancellation token, after which the jobs under way are waited for or
//! stopped, as the loop chooses.
//!
//! A job that panics must not take its group out of the loop's care until
//! a restart: it is logged, counted (`replicator_job_panics_total`) and its
//! group is free again for the next round.

use std::collections::HashSet;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{error, warn};

use super::telemetry::{Telemetry, WorkerLabel};

/// When a loop looks at its groups.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    /// A round at least this often, even when nothing changed.
    pub every: Duration,
    /// Changes closer together than this are handled in one round.
    pub debounce: Duration,
}

/// Why a round starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// The interval passed.
    Interval,
    /// The groups changed (after the debounce).
    Changed,
    /// The loop's own nudge fired (after its debounce).
    Nudged,
    /// A job ended: its group may want another look.
    JobDone,
}

/// One loop's jobs, one per group at most.
pub struct Worker {
    name: &'static str,
    pace: Pace,
    changes: watch::Receiver<u64>,
    busy: HashSet<String>,
    /// Each job hands back its group, and whether it panicked.
    jobs: JoinSet<(String, bool)>,
    telemetry: Arc<Telemetry>,
}

impl Worker {
    /// A worker named `name` (logs and metrics), woken by `changes` and `pace`.
    pub fn new(name: &'static str, pace: Pace, changes: watch::Receiver<u64>, telemetry: Arc<Telemetry>) -> Self {
        Self { name, pace, changes, busy: HashSet::new(), jobs: JoinSet::new(), telemetry }
    }

    /// Whether a job of `group` is under way.
    pub fn is_busy(&self, group: &str) -> bool {
        self.busy.contains(group)
    }

    /// Starts `job` for `group` unless one is under way; true if started.
    pub fn start(&mut self, group: &str, job: impl Future<Output = ()> + Send + 'static) -> bool {
        self.reap();
        if !self.busy.insert(group.to_owned()) {
            return false;
        }
        let name = group.to_owned();
        self.jobs.spawn(async move {
            let panicked = AssertUnwindSafe(job).catch_unwind().await.is_err();
            (name, panicked)
        });
        true
    }

    /// Frees the groups whose jobs ended.
    pub fn reap(&mut self) {
        while let Some(done) = self.jobs.try_join_next() {
            self.ended(done);
        }
    }

    fn ended(&mut self, done: Result<(String, bool), tokio::task::JoinError>) {
        match done {
            Ok((group, panicked)) => {
                if panicked {
                    error!(worker = self.name, group = %group, "a job panicked; the group is handled again next round");
                    self.telemetry.job_panics.get_or_create(&WorkerLabel { worker: self.name.to_owned() }).inc();
                }
                self.busy.remove(&group);
            }
            // Only a cancelled task gets here (panics are caught in the job), and nothing cancels them.
            Err(e) => warn!(worker = self.name, error = %e, "a job ended abnormally"),
        }
    }

    /// Waits for the next round; `None` once `cancel` fires. `nudge` is the
    /// loop's own wake-up (pushed metrics), debounced by `nudge_debounce`.
    pub async fn next_round(
        &mut self,
        nudge: impl Future<Output = ()>,
        nudge_debounce: Duration,
        cancel: &CancellationToken,
    ) -> Option<Wake> {
        let wake = tokio::select! {
            () = tokio::time::sleep(self.pace.every) => Wake::Interval,
            () = nudge => {
                tokio::time::sleep(nudge_debounce).await;
                Wake::Nudged
            }
            Ok(()) = self.changes.changed() => {
                tokio::time::sleep(self.pace.debounce).await;
                Wake::Changed
            }
            Some(done) = self.jobs.join_next() => {
                self.ended(done);
                Wake::JobDone
            }
            () = cancel.cancelled() => return None,
        };
        self.reap();
        Some(wake)
    }

    /// Waits for every job under way (changes the loop started finish).
    pub async fn finish(&mut self) {
        while let Some(done) = self.jobs.join_next().await {
            self.ended(done);
        }
    }

    /// Stops every job under way (work that is redone next time anyway).
    pub async fn abort(&mut self) {
        self.jobs.shutdown().await;
        self.busy.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn worker() -> (Worker, watch::Sender<u64>, Arc<Telemetry>) {
        let (tx, rx) = watch::channel(0);
        let telemetry = Arc::new(Telemetry::default());
        let pace = Pace { every: Duration::from_secs(5), debounce: Duration::from_millis(100) };
        (Worker::new("test", pace, rx, telemetry.clone()), tx, telemetry)
    }

    fn panics(telemetry: &Telemetry) -> u64 {
        telemetry.job_panics.get_or_create(&WorkerLabel { worker: "test".into() }).get()
    }

    #[tokio::test(start_paused = true)]
    async fn a_group_has_at_most_one_job_at_a_time() {
        let (mut w, _tx, _) = worker();
        let (release, wait) = tokio::sync::oneshot::channel::<()>();
        assert!(w.start("web", async move { drop(wait.await) }));
        assert!(!w.start("web", async {}), "a second job of the same group waits");
        assert!(w.start("api", async {}), "another group is independent");
        release.send(()).unwrap();
        let cancel = CancellationToken::new();
        while w.is_busy("web") {
            w.next_round(std::future::pending(), Duration::ZERO, &cancel).await;
        }
        assert!(w.start("web", async {}), "free again once its job ended");
    }

    #[tokio::test(start_paused = true)]
    async fn a_job_that_panics_is_counted_and_its_group_is_handled_again() {
        let (mut w, _tx, telemetry) = worker();
        assert!(w.start("web", async { panic!("a bug in a job") }));
        let cancel = CancellationToken::new();
        assert_eq!(w.next_round(std::future::pending(), Duration::ZERO, &cancel).await, Some(Wake::JobDone));
        assert!(!w.is_busy("web"));
        assert_eq!(panics(&telemetry), 1);
        let (done, ran) = tokio::sync::oneshot::channel();
        assert!(w.start("web", async move { done.send(()).unwrap() }), "the group is handled again");
        w.finish().await;
        ran.await.expect("the second job ran");
    }

    #[tokio::test(start_paused = true)]
    async fn rounds_come_from_the_interval_changes_and_nudges_until_cancelled() {
        let (mut w, tx, _) = worker();
        let cancel = CancellationToken::new();
        let none = || std::future::pending::<()>();
        assert_eq!(w.next_round(none(), Duration::ZERO, &cancel).await, Some(Wake::Interval));
        tx.send_replace(1);
        assert_eq!(w.next_round(none(), Duration::ZERO, &cancel).await, Some(Wake::Changed));
        assert_eq!(w.next_round(async {}, Duration::ZERO, &cancel).await, Some(Wake::Nudged));
        cancel.cancel();
        assert_eq!(w.next_round(none(), Duration::ZERO, &cancel).await, None);
    }
}
