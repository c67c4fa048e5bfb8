//! Going back to sleep when requests stop, with no metric from the app
//! (`replicator.sleep.after`, Sablier's session duration): the balancer
//! tells replicator of each request (a mirrored copy to the wake listener,
//! see docs/guide/scale-to-zero.md), and a group no request reached for its quiet period is
//! put to sleep as any scale to zero does it (drained, replicas removed,
//! originals paused or stopped).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::core::Core;
use super::scale::scale;

/// How often groups are looked at for their quiet periods.
const LOOK_EVERY: Duration = Duration::from_secs(1);

/// Puts groups to sleep once their quiet period passes, until `cancel`.
/// Also forgets what the activity and cold-start boards keep of groups that are gone.
pub(super) async fn keep_idle_groups_asleep(core: Arc<Core>, cancel: CancellationToken) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(LOOK_EVERY) => {}
            () = cancel.cancelled() => return,
        }
        sleep_idle_groups(&core).await;
    }
}

async fn sleep_idle_groups(core: &Arc<Core>) {
    let Ok(groups) = core.store.groups() else { return };
    let present: HashSet<&str> = groups.iter().map(|g| g.name()).collect();
    core.activity.retain_groups(&present);
    core.capacity.retain_groups(&present);
    for group in groups.iter() {
        let Some(quiet) = group.sleep_after else { continue };
        let awake = !group.asleep() && group.size() > 0 && !group.members.iter().any(|m| m.state.in_flight());
        // A connection open through the group's front is activity for as long as it lasts.
        if group.members.iter().any(|m| core.connections.open_to(&m.id) > 0) {
            core.activity.touch(group.name());
            continue;
        }
        if !awake || core.activity.quiet_for(group.name()) < quiet {
            continue;
        }
        let name = group.name();
        info!(group = name, quiet = %crate::base::duration::format(quiet), "no request in the quiet period; going to sleep");
        // Whatever happens, the next try is a whole quiet period away.
        core.activity.touch(name);
        if let Err(e) = scale(core, name, 0, "idle", None).await {
            warn!(group = name, error = %e, "cannot put the idle group to sleep");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::engine::fake::FakeEngine;
    use crate::inventory::Scope;
    use crate::service::Replicator;

    async fn sleepy() -> Replicator {
        let engine = Arc::new(FakeEngine::default());
        let labels = [("replicator.enable", "true"), ("replicator.min", "0"), ("replicator.sleep.after", "10s")];
        engine.add_container("web", &labels);
        Replicator::for_test(engine, Scope::default()).await
    }

    async fn after(service: &Replicator, wait: Duration) -> bool {
        tokio::time::advance(wait).await;
        sleep_idle_groups(&service.core).await;
        service.group("web").await.unwrap().asleep()
    }

    #[tokio::test(start_paused = true)]
    async fn a_group_no_request_reached_for_its_quiet_period_goes_to_sleep() {
        let service = sleepy().await;
        assert!(!after(&service, Duration::ZERO).await, "first sight starts the quiet period");
        assert!(!after(&service, Duration::from_secs(9)).await);
        assert!(after(&service, Duration::from_secs(2)).await);
    }

    #[tokio::test(start_paused = true)]
    async fn requests_keep_a_group_awake() {
        let service = sleepy().await;
        for _ in 0..5 {
            service.saw_request("web");
            assert!(!after(&service, Duration::from_secs(6)).await);
        }
        assert!(after(&service, Duration::from_secs(11)).await, "then quiet: asleep");
    }
}
