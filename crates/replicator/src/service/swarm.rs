//! Swarm mode: a task is never cloned; its service's replica count is raised
//! instead, quoting the service's version (retried when it moved meanwhile).

use serde_json::{json, Value};
use tracing::info;

use super::groups::{GroupView, MemberView};
use super::{Replication, Replicator};
use crate::autoscale::policy;
use crate::engine::EngineError;
use crate::error::{Error, Result};
use crate::group::{self, Bounds, GroupKind};
use crate::labels;
use crate::model::{RunState, ServiceDetails};

/// Updates retried after "update out of sequence".
const VERSION_RETRIES: usize = 5;

impl Replicator {
    /// Replicating a task container adds `count` tasks to its service.
    pub(super) async fn replicate_task(
        &self,
        container_id: &str,
        service_id: &str,
        count: u32,
        caller: &str,
    ) -> Result<Replication> {
        let service = self.engine().inspect_service(service_id).await?;
        self.check_selected(&format!("service {}", service.name), &service.labels)?;
        if !self.settings().allow_all && !labels::is_true(service.labels.get(labels::ENABLE).map(String::as_str)) {
            return Err(Error::NotEnabled(format!("{container_id} (service {})", service.name)));
        }
        let bounds = group::bounds(&service.labels, self.settings().default_max).map_err(Error::Conflict)?;
        let slot = self.inner.slots.slot(&service.name);
        let _admitted = slot.admit().await;
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

    /// Sets the replica count of the Swarm service behind group `name`.
    pub(super) async fn scale_service(&self, name: &str, target: u32, caller: &str) -> Result<()> {
        let service = self
            .enabled_services()
            .await?
            .into_iter()
            .find(|s| s.name == name)
            .ok_or_else(|| Error::GroupNotFound(name.to_owned()))?;
        let slot = self.inner.slots.slot(name);
        let _admitted = slot.admit().await;
        let (from, to) = self.update_replicas(&service.id, |_| Ok(u64::from(target))).await?;
        info!(group = name, from, to, caller, "service scaled");
        Ok(())
    }

    async fn update_replicas(&self, service_id: &str, decide: impl Fn(u64) -> Result<u64>) -> Result<(u64, u64)> {
        let mut attempt = 0;
        loop {
            let service = self.engine().inspect_service(service_id).await?;
            self.check_selected(&format!("service {}", service.name), &service.labels)?;
            let current = service.replicas.ok_or_else(|| {
                Error::Conflict(format!(
                    "service {} is not a replicated service (global mode runs one task per node): it cannot be scaled",
                    service.name
                ))
            })?;
            let to = decide(current)?;
            if to == current {
                return Ok((current, to));
            }
            let mut spec = Value::Object(service.spec.clone());
            spec["Mode"]["Replicated"] = json!({ "Replicas": to });
            let Value::Object(spec) = spec else { unreachable!("the spec stays an object") };
            match self.engine().update_service(&service.id, service.version, &spec).await {
                Ok(()) => return Ok((current, to)),
                Err(EngineError::Conflict(_)) if attempt < VERSION_RETRIES => attempt += 1,
                Err(e) => return Err(e.into()),
            }
        }
    }

    async fn enabled_services(&self) -> Result<Vec<ServiceDetails>> {
        let mut filter = self.managed_filter(&format!("{}=true", labels::ENABLE));
        if self.settings().allow_all {
            filter.remove(0);
        }
        Ok(self.engine().list_services(&filter).await?)
    }

    pub(super) async fn swarm_groups(&self) -> Result<Vec<GroupView>> {
        let mut groups = Vec::new();
        for service in self.enabled_services().await? {
            let tasks = self.engine().list_tasks(&service.id).await?;
            let default = Bounds { min: 1, max: self.settings().default_max };
            let bounds = group::bounds(&service.labels, default.max).unwrap_or(default);
            let members: Vec<MemberView> = tasks
                .iter()
                .map(|t| MemberView {
                    id: if t.container_id.is_empty() { t.id.clone() } else { t.container_id.clone() },
                    name: format!("{}.{}.{}", service.name, t.slot.unwrap_or_default(), t.id),
                    state: task_state(&t.state),
                    original: false,
                    created: t.created.clone(),
                })
                .collect();
            let replicas = members.iter().filter(|m| m.state == RunState::Running).count();
            let policy = policy::read(&service.labels, bounds).transpose();
            groups.push(GroupView {
                name: service.name.clone(),
                kind: GroupKind::Swarm,
                replicas,
                min: bounds.min,
                max: bounds.max,
                members,
                autoscale: policy
                    .as_ref()
                    .map(|p| self.board().view(&service.name, p, replicas, self.settings().autoscale_dry_run)),
                policy,
            });
        }
        Ok(groups)
    }
}

/// Swarm's task states, read as container states.
fn task_state(state: &str) -> RunState {
    match state {
        "running" => RunState::Running,
        "complete" | "shutdown" | "failed" | "rejected" | "orphaned" | "remove" => RunState::Exited,
        _ => RunState::Created,
    }
}
