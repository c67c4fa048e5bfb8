//! Background upkeep: removing the debris of replications that were cut off
//! (replicator killed between create and start), and following the engine's
//! events so groups and the autoscaler react as soon as a member changes.

use std::time::Duration;

use futures_util::StreamExt;
use tracing::{debug, info, warn};

use super::Replicator;
use crate::error::Result;
use crate::labels;
use crate::model::{ListQuery, RunState};

/// How often the reconcile pass runs once it has succeeded.
const RECONCILE_EVERY: Duration = Duration::from_secs(300);
/// How long to wait before retrying when the engine is away.
const RETRY: Duration = Duration::from_secs(2);

impl Replicator {
    /// Removes replicas that were created but never started: a replication
    /// cut off between the two calls. Only containers carrying replicator's
    /// own labels are considered, and never one this process is creating now.
    pub async fn reconcile(&self) -> Result<usize> {
        let query = ListQuery { all: true, labels: self.managed_filter(labels::SOURCE), ..Default::default() };
        let listed = self.engine().list_containers(&query).await?;
        // Read after listing: a replication still between create and start
        // holds its name until the start has returned.
        let in_flight = self.inner.slots.all_pending();
        let mut removed = 0;
        for c in listed {
            let ours = c.labels.contains_key(labels::GROUP);
            if !ours || c.state != RunState::Created || in_flight.contains(&c.name) {
                continue;
            }
            // The listing may be stale: only a container still never started goes.
            if self.engine().inspect_container(&c.id).await.map(|d| d.state) != Ok(RunState::Created) {
                continue;
            }
            self.engine().remove_container(&c.id).await?;
            info!(container = %c.id, name = %c.name, "removed a replica that was created but never started");
            removed += 1;
        }
        Ok(removed)
    }

    /// Runs the reconcile pass now (as soon as the engine answers) and then periodically.
    pub async fn keep_reconciling(self) {
        loop {
            let wait = match self.reconcile().await {
                Ok(_) => RECONCILE_EVERY,
                Err(e) => {
                    debug!(error = %e, "reconcile pass failed; retrying");
                    RETRY
                }
            };
            tokio::time::sleep(wait).await;
        }
    }

    /// Follows container events; a change to a group member wakes the
    /// autoscaler (which refreshes group sizes and gauges). After an
    /// interruption it resumes from the last event seen, so none is lost.
    pub async fn follow_events(self) {
        let mut since: Option<i64> = None;
        loop {
            let mut stream = match self.engine().container_events(since).await {
                Ok(stream) => stream,
                Err(e) => {
                    debug!(error = %e, "cannot follow engine events; retrying");
                    tokio::time::sleep(RETRY).await;
                    continue;
                }
            };
            while let Some(event) = stream.next().await {
                let event = match event {
                    Ok(event) => event,
                    Err(e) => {
                        warn!(error = %e, "engine event stream interrupted; resuming");
                        break;
                    }
                };
                since = Some(event.time_nano + 1);
                let member =
                    event.attributes.contains_key(labels::GROUP) || event.attributes.contains_key(labels::ENABLE);
                if member && event.changes_running_set() {
                    debug!(container = %event.id, action = %event.action, "group member changed");
                    self.metric_store().wake();
                    // The engine announces `die` before its container listing says so:
                    // look again once it has settled.
                    let again = self.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(crate::engine::LISTING_LAG).await;
                        again.metric_store().wake();
                    });
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}
