//! Metric values pushed by containers for the autoscaler. Any client with a
//! valid certificate may report for any container (the original tool's trust
//! model): the value is only accepted for a group that autoscales on it.

use std::collections::HashMap;
use std::time::Instant;

use super::Replicator;
use crate::autoscale::policy::{self, Metric, Policy};
use crate::error::{Error, Result};
use crate::group::{self, Bounds};
use crate::id::ContainerRef;
use crate::labels;
use crate::model::ContainerDetails;

/// One pushed value, already validated in shape.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricSample {
    pub container: ContainerRef,
    pub metric: String,
    pub value: f64,
}

impl Replicator {
    /// Records every sample, or none if any is refused.
    pub async fn push_metrics(&self, samples: &[MetricSample]) -> Result<()> {
        let mut resolved: HashMap<&ContainerRef, (String, Policy)> = HashMap::new();
        for sample in samples {
            if !resolved.contains_key(&sample.container) {
                let details = self.inspect_for_caller(&sample.container).await?;
                let policy = self.autoscale_policy(&details).await?;
                resolved.insert(&sample.container, (details.id, policy));
            }
            let (_, policy) = &resolved[&sample.container];
            if policy.metric != Metric::Pushed(sample.metric.clone()) {
                return Err(Error::Conflict(format!(
                    "container {} autoscales on {}, not on a pushed {:?}",
                    sample.container,
                    describe(&policy.metric),
                    sample.metric
                )));
            }
        }
        let now = Instant::now();
        for sample in samples {
            let (id, _) = &resolved[&sample.container];
            self.metric_store().record(id, &sample.metric, sample.value, now);
        }
        self.metric_store().wake();
        Ok(())
    }

    /// The autoscaling policy of the container's group (a Swarm task's is its service's).
    async fn autoscale_policy(&self, details: &ContainerDetails) -> Result<Policy> {
        let labels = match details.label(labels::SWARM_SERVICE_ID) {
            Some(service) => self.engine().inspect_service(service).await?.labels,
            None => details.labels(),
        };
        self.check_selected(&format!("container {}", details.name), &labels)?;
        let name = group::identify(&details.id, &details.name, &details.labels()).name;
        let not_autoscaled = |why: String| Error::Conflict(format!("container {} (group {name}) {why}", details.name));
        let default = Bounds { min: 1, max: self.settings().default_max };
        let bounds = group::bounds(&labels, default.max).unwrap_or(default);
        match policy::read(&labels, bounds) {
            Ok(Some(policy)) => Ok(policy),
            Ok(None) => Err(not_autoscaled(format!(
                "is not in an autoscaled group: label its original {}=<metric> and {}=<number>",
                policy::METRIC,
                policy::TARGET
            ))),
            Err(reason) => Err(not_autoscaled(format!("is not autoscaled: {reason}"))),
        }
    }
}

fn describe(metric: &Metric) -> String {
    match metric {
        Metric::Pushed(name) => format!("the pushed metric {name:?}"),
        other => format!("{} from the engine's stats", other.name()),
    }
}
