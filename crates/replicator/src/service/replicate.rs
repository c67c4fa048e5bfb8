//! Replicating a container: inspect it, check policy and the caller's
//! rights, read its group once under the group's lock to admit the new
//! members, then grow the group without the lock (the reservation holds the
//! places while the clones are made). A Swarm task's service is scaled
//! instead.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::admission::Admission;
use super::core::{detached, Core};
use super::growth::Growth;
use super::ready::Readiness;
use super::replica::Replication;
use super::settings::Caller;
use super::source::Source;
use super::swarm::Services;
use crate::base::id::ContainerRef;
use crate::error::{Error, Result};
use crate::rules::labels;

/// Most replicas one request may ask for; the group limit usually binds first.
pub const MAX_COUNT: u32 = 100;

/// Creates `count` clones of `target`, all or nothing, in its own task (a
/// caller that goes away cannot stop it half-way). With `ready_within`,
/// answers once every clone is ready, or removes them all when one is not
/// in time.
pub(super) async fn replicate(
    core: &Arc<Core>,
    target: &ContainerRef,
    count: u32,
    caller: &Caller,
    ready_within: Option<Duration>,
) -> Result<Replication> {
    if count == 0 || count > MAX_COUNT {
        return Err(Error::BadRequest(format!("count must be between 1 and {MAX_COUNT}")));
    }
    let (shared, target, caller) = (core.clone(), target.clone(), caller.clone());
    let started = Instant::now();
    let result = detached(async move {
        let _acting = shared.acting.permit().await?;
        let replication = Replicate(&shared).now(&target, count, &caller).await?;
        if let Some(within) = ready_within {
            Readiness(&shared).all_or_none(&replication.replicas, within).await?;
        }
        Ok(replication)
    })
    .await;
    let group = result.as_ref().map(|r| r.group.as_str()).unwrap_or_default();
    core.telemetry.replication(group, outcome(&result), started.elapsed().as_secs_f64());
    result
}

/// One replication.
struct Replicate<'a>(&'a Core);

impl Replicate<'_> {
    async fn now(&self, target: &ContainerRef, count: u32, caller: &Caller) -> Result<Replication> {
        let core = self.0;
        let details = core.inspect_target(target).await?;
        if let Some(service_id) = details.label(labels::SWARM_SERVICE_ID) {
            let service_id = service_id.to_owned();
            return Services(core).replicate_task(&details.id, &service_id, count, caller).await;
        }
        let labels = details.labels();
        core.check_selected(&format!("container {target}"), &labels)?;
        let enabled = labels::flag(&labels, labels::ENABLE, false).map_err(|e| Error::Conflict(e.to_string()))?;
        if !enabled && !core.store.scope().allow_all {
            return Err(Error::NotEnabled(target.to_string()));
        }
        let name = Source::identify(&details)?.name;
        caller.may_replicate(&name, target.as_str())?;
        // The engine may not have told the inventory about the source yet.
        core.intents.observe(details.summary());
        let (source, admitted) = {
            let _admitting = core.locks.lock(&name).await;
            let group = core.group_if_any(&name).await?;
            let source = Source::of(details, group.as_ref(), core.store.scope().default_max)?;
            let admitted = Admission(core).admit(&source, group.as_ref(), count as usize).await?;
            (source, admitted)
        };
        Growth(core).grow(&source, admitted, &caller.name).await
    }
}

/// A short name for the replication outcome, for metrics.
fn outcome(result: &Result<Replication>) -> &'static str {
    match result {
        Ok(_) => "created",
        Err(Error::LimitReached { .. }) => "limit",
        Err(Error::Engine(_) | Error::Internal(_)) => "failed",
        Err(_) => "refused",
    }
}
