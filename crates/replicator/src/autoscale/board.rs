//! The autoscaler's own state: pushed metric values, kept until they go
//! stale, and its latest word on each group (read by the API and dashboard).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::Notify;

use crate::rules::policy::{Metric, Policy};

/// Values containers pushed, by container id and metric name.
#[derive(Default)]
pub struct MetricStore {
    values: Mutex<HashMap<(String, String), (f64, Instant)>>,
    /// Wakes the autoscaler so a pushed value is acted on without waiting a tick.
    pushed: Notify,
}

impl MetricStore {
    /// Keeps `value` as the container's latest for `metric`.
    pub fn record(&self, container: &str, metric: &str, value: f64, now: Instant) {
        self.values.lock().expect("metric store lock").insert((container.to_owned(), metric.to_owned()), (value, now));
    }

    /// Tells the autoscaler that values arrived.
    pub fn wake(&self) {
        self.pushed.notify_one();
    }

    /// Resolves once values arrived since the last call.
    pub async fn pushed(&self) {
        self.pushed.notified().await;
    }

    /// The value if it is at most `ttl` old.
    pub fn fresh(&self, container: &str, metric: &str, ttl: Duration, now: Instant) -> Option<f64> {
        let values = self.values.lock().expect("metric store lock");
        let (value, at) = values.get(&(container.to_owned(), metric.to_owned()))?;
        (now.saturating_duration_since(*at) <= ttl).then_some(*value)
    }

    /// Drops values older than `ttl` so the store does not grow with dead containers.
    pub fn prune(&self, ttl: Duration, now: Instant) {
        self.values.lock().expect("metric store lock").retain(|_, (_, at)| now.saturating_duration_since(*at) <= ttl);
    }
}

/// How many decisions each group keeps for `GET /v1/groups/{name}/decisions`.
pub const HISTORY: usize = 100;
/// How far back the dashboard's charts look, in seconds.
pub const SERIES_SECONDS: i64 = 15 * 60;

/// One point of a group's chart: unix seconds, running members, metric average.
pub type Sample = (i64, u32, Option<f64>);

/// One decision as the API shows it.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct DecisionView {
    /// RFC 3339.
    pub at: String,
    /// Running members when it was made.
    pub from: u32,
    /// Members it settled on; equal to `from` when nothing changes.
    pub to: u32,
    /// Every rule that shaped `to`, in words.
    pub reason: String,
    /// The per-member average the decision used.
    pub value: Option<f64>,
    /// Computed and reported only (`serve --dry-run` or the group's label).
    pub dry_run: bool,
    /// Handed to the service to carry out.
    pub applied: bool,
}

/// The `autoscale` object of a group.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
#[serde(untagged)]
pub enum AutoscaleView {
    /// The group autoscales under a valid policy.
    Active {
        /// The metric's name (`prometheus` for any query).
        metric: String,
        /// The PromQL query, for the `prometheus` metric only.
        #[serde(skip_serializing_if = "Option::is_none")]
        query: Option<String>,
        /// Per-member value the autoscaler steers towards.
        target: f64,
        /// Fewest members autoscaling keeps.
        min: u32,
        /// Most members autoscaling runs.
        max: u32,
        /// The latest decision's per-member average; `None` before one or without fresh values.
        current: Option<f64>,
        /// The latest recommendation before stabilization; the running count before any decision.
        desired: u32,
        /// Decisions are reported, not applied (by the group's label or `serve --dry-run`).
        dry_run: bool,
        /// The latest evaluation, whether or not it changed anything.
        last_decision: Option<DecisionView>,
    },
    /// The labels ask for autoscaling but are malformed: the group is not autoscaled.
    Invalid {
        /// Why the labels were refused.
        error: String,
    },
}

/// The autoscaler's latest evaluation of each group, and its recent changes.
#[derive(Default)]
pub struct Board {
    groups: Mutex<HashMap<String, GroupRecord>>,
}

#[derive(Debug, Clone, Default)]
struct GroupRecord {
    latest: Option<DecisionView>,
    desired: u32,
    /// Decisions that changed (or, in dry-run, would have changed) the size.
    history: VecDeque<DecisionView>,
    /// Size and metric over the last [`SERIES_SECONDS`].
    series: VecDeque<Sample>,
}

impl Board {
    /// Keeps an evaluation as the group's latest, and in its history when it changes the size.
    pub fn record(&self, group: &str, desired: u32, decision: DecisionView) {
        let mut groups = self.groups.lock().expect("board lock");
        let record = groups.entry(group.to_owned()).or_default();
        if decision.to != decision.from {
            if record.history.len() == HISTORY {
                record.history.pop_front();
            }
            record.history.push_back(decision.clone());
        }
        record.desired = desired;
        record.latest = Some(decision);
    }

    /// Adds a chart point, forgetting those older than the chart's span.
    pub fn sample(&self, group: &str, sample: Sample) {
        let mut groups = self.groups.lock().expect("board lock");
        let series = &mut groups.entry(group.to_owned()).or_default().series;
        while series.front().is_some_and(|(t, _, _)| sample.0 - t > SERIES_SECONDS) {
            series.pop_front();
        }
        series.push_back(sample);
    }

    /// Forgets the groups not in `present`.
    pub fn retain(&self, present: &std::collections::HashSet<&str>) {
        self.groups.lock().expect("board lock").retain(|name, _| present.contains(name.as_str()));
    }

    /// The metric value of the latest decision.
    pub fn latest_value(&self, group: &str) -> Option<f64> {
        let groups = self.groups.lock().expect("board lock");
        groups.get(group)?.latest.as_ref()?.value
    }

    /// The reason of the latest decision.
    pub fn latest_reason(&self, group: &str) -> Option<String> {
        let groups = self.groups.lock().expect("board lock");
        Some(groups.get(group)?.latest.as_ref()?.reason.clone())
    }

    /// Oldest first.
    pub fn series(&self, group: &str) -> Vec<Sample> {
        let groups = self.groups.lock().expect("board lock");
        groups.get(group).map(|r| r.series.iter().copied().collect()).unwrap_or_default()
    }

    /// Oldest first.
    pub fn history(&self, group: &str) -> Vec<DecisionView> {
        let groups = self.groups.lock().expect("board lock");
        groups.get(group).map(|r| r.history.iter().cloned().collect()).unwrap_or_default()
    }

    /// The view for a group with this policy and `replicas` running now.
    pub fn view(
        &self,
        group: &str,
        policy: &Result<Policy, String>,
        replicas: usize,
        global_dry_run: bool,
    ) -> AutoscaleView {
        match policy {
            Err(error) => AutoscaleView::Invalid { error: error.clone() },
            Ok(p) => {
                let seen = self.groups.lock().expect("board lock").get(group).cloned();
                let latest = seen.as_ref().and_then(|r| r.latest.clone());
                AutoscaleView::Active {
                    metric: p.metric.name().to_owned(),
                    query: match &p.metric {
                        Metric::Prometheus(q) => Some(q.clone()),
                        _ => None,
                    },
                    target: p.target,
                    min: p.min,
                    max: p.max,
                    current: latest.as_ref().and_then(|d| d.value),
                    desired: seen.map(|r| r.desired).unwrap_or(replicas as u32),
                    dry_run: p.dry_run || global_dry_run,
                    last_decision: latest,
                }
            }
        }
    }
}
