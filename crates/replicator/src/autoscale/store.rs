//! Pushed metric values, kept until they go stale, and the autoscaler's
//! latest word on each group (read by the API).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;
use tokio::sync::Notify;

use super::policy::Policy;

/// Values containers pushed, by container id and metric name.
#[derive(Default)]
pub struct MetricStore {
    values: Mutex<HashMap<(String, String), (f64, Instant)>>,
    /// Wakes the autoscaler so a pushed value is acted on without waiting a tick.
    pub pushed: Notify,
}

impl MetricStore {
    pub fn record(&self, container: &str, metric: &str, value: f64, now: Instant) {
        self.values
            .lock()
            .expect("metric store lock")
            .insert((container.to_owned(), metric.to_owned()), (value, now));
    }

    pub fn wake(&self) {
        self.pushed.notify_one();
    }

    /// The value if it is at most `ttl` old.
    pub fn fresh(&self, container: &str, metric: &str, ttl: Duration, now: Instant) -> Option<f64> {
        let values = self.values.lock().expect("metric store lock");
        let (value, at) = values.get(&(container.to_owned(), metric.to_owned()))?;
        (now.saturating_duration_since(*at) <= ttl).then_some(*value)
    }

    /// Drops values older than `ttl` so the store does not grow with dead containers.
    pub fn prune(&self, ttl: Duration, now: Instant) {
        self.values
            .lock()
            .expect("metric store lock")
            .retain(|_, (_, at)| now.saturating_duration_since(*at) <= ttl);
    }
}

/// One decision as the API shows it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DecisionView {
    /// RFC 3339.
    pub at: String,
    pub from: u32,
    pub to: u32,
    pub reason: String,
}

/// The `autoscale` object of a group.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(untagged)]
pub enum AutoscaleView {
    Active {
        metric: String,
        target: f64,
        min: u32,
        max: u32,
        current: Option<f64>,
        desired: u32,
        last_decision: Option<DecisionView>,
    },
    /// The labels ask for autoscaling but are malformed: the group is not autoscaled.
    Invalid { error: String },
}

/// The autoscaler's latest evaluation of each group.
#[derive(Default)]
pub struct Board {
    groups: Mutex<HashMap<String, Evaluation>>,
}

#[derive(Debug, Clone)]
pub struct Evaluation {
    pub average: Option<f64>,
    pub desired: u32,
    pub last_decision: Option<DecisionView>,
}

impl Board {
    pub fn record(&self, group: &str, evaluation: Evaluation) {
        self.groups
            .lock()
            .expect("board lock")
            .insert(group.to_owned(), evaluation);
    }

    pub fn get(&self, group: &str) -> Option<Evaluation> {
        self.groups.lock().expect("board lock").get(group).cloned()
    }

    /// The view for a group with this policy and `replicas` running now.
    pub fn view(&self, group: &str, policy: &Result<Policy, String>, replicas: usize) -> AutoscaleView {
        match policy {
            Err(error) => AutoscaleView::Invalid { error: error.clone() },
            Ok(p) => {
                let seen = self.get(group);
                AutoscaleView::Active {
                    metric: p.metric.name().to_owned(),
                    target: p.target,
                    min: p.min,
                    max: p.max,
                    current: seen.as_ref().and_then(|e| e.average),
                    desired: seen.as_ref().map(|e| e.desired).unwrap_or(replicas as u32),
                    last_decision: seen.and_then(|e| e.last_decision),
                }
            }
        }
    }
}

pub fn rfc3339_now() -> String {
    let now: time::OffsetDateTime = SystemTime::now().into();
    now.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
