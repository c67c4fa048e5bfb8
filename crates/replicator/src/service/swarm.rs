//! Swarm mode: a task is never cloned; its service's replica count is raised
//! instead, quoting the service's version (retried when it moved meanwhile).

use serde_json::{json, Value};
use tracing::info;

use super::core::Core;
use super::replica::Replication;
use super::settings::Caller;
use crate::error::{Error, Result};
use crate::inventory::{informer, Group};
use crate::rules::bounds::Bounds;
use crate::rules::labels;

/// Updates retried after "update out of sequence".
const VERSION_RETRIES: usize = 5;

/// Scales Swarm services.
pub(super) struct Services<'a>(pub &'a Core);

impl Services<'_> {
    /// Replicating a task container adds `count` tasks to its service.
    pub async fn replicate_task(
        &self,
        container_id: &str,
        service_id: &str,
        count: u32,
        caller: &Caller,
    ) -> Result<Replication> {
        let service = self.0.engine.inspect_service(service_id).await?;
        self.0.check_selected(&format!("service {}", service.name), &service.labels)?;
        let enabled =
            labels::flag(&service.labels, labels::ENABLE, false).map_err(|e| Error::Conflict(e.to_string()))?;
        if !enabled && !self.0.store.scope().allow_all {
            return Err(Error::NotEnabled(format!("{container_id} (service {})", service.name)));
        }
        let invalid = |reason| Error::InvalidGroup { group: service.name.clone(), reason };
        crate::rules::bounds::check_group_label(&service.labels).map_err(invalid)?;
        let bounds = Bounds::from_labels(&service.labels, self.0.store.scope().default_max).map_err(invalid)?;
        caller.may_replicate(&service.name, container_id)?;
        let caller = caller.name.as_str();
        let _locked = self.0.locks.lock(&service.name).await;
        let (from, to) = self
            .update_replicas(service_id, |current| {
                let to = current + u64::from(count);
                if to > u64::from(bounds.max) {
                    return Err(Error::LimitReached { group: service.name.clone(), max: bounds.max });
                }
                Ok(to)
            })
            .await?;
        info!(group = %service.name, source = container_id, from, to, caller, "service scaled");
        Ok(Replication {
            source: container_id.to_owned(),
            group: service.name.clone(),
            replicas: Vec::new(),
            notes: vec![format!("Swarm service {} scaled from {from} to {to} replicas", service.name)],
        })
    }

    /// Sets the replica count of the Swarm service behind `group`. The caller holds the group's lock.
    pub async fn scale(&self, group: &Group, target: u32, caller: &str) -> Result<()> {
        let service = group.service.as_ref().ok_or_else(|| Error::GroupNotFound(group.name().to_owned()))?;
        let (from, to) = self.update_replicas(&service.id, |_| Ok(u64::from(target))).await?;
        info!(group = group.name(), from, to, caller, "service scaled");
        Ok(())
    }

    async fn update_replicas(&self, service_id: &str, decide: impl Fn(u64) -> Result<u64>) -> Result<(u64, u64)> {
        let mut attempt = 0;
        let changed = loop {
            let service = self.0.engine.inspect_service(service_id).await?;
            self.0.check_selected(&format!("service {}", service.name), &service.labels)?;
            let current = service.replicas.ok_or_else(|| {
                Error::Conflict(format!(
                    "service {} is not a replicated service (global mode runs one task per node): it cannot be scaled",
                    service.name
                ))
            })?;
            let to = decide(current)?;
            if to == current {
                break (current, to);
            }
            let mut spec = Value::Object(service.spec.clone());
            spec["Mode"]["Replicated"] = json!({ "Replicas": to });
            let Value::Object(spec) = spec else { unreachable!("the spec stays an object") };
            match self.0.engine.update_service(&service.id, service.version, &spec).await {
                Ok(()) => break (current, to),
                Err(e) if e.is_conflict() && attempt < VERSION_RETRIES => attempt += 1,
                Err(e) => return Err(e.into()),
            }
        };
        if let Ok(service) = informer::read_service(self.0.engine.as_ref(), service_id).await {
            self.0.intents.service_updated(service);
        }
        Ok(changed)
    }
}
