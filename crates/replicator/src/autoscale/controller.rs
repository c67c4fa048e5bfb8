//! The autoscaling loop: every interval (or as soon as a value is pushed) it
//! reads each autoscaled group's metric, decides, records, and applies the
//! decision through the service's own `scale`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use super::decide::{decide, Limits, Stabilizer};
use super::policy::{Metric, Policy};
use super::stats::{cpu_percent, memory_percent};
use super::store::{rfc3339_now, DecisionView, Evaluation};
use crate::model::RunState;
use crate::service::{GroupView, Replicator};
use crate::telemetry::{DecisionLabels, GroupLabel};

/// Pushes closer together than this are acted on together.
const PUSH_DEBOUNCE: Duration = Duration::from_millis(50);

#[derive(Debug, Clone)]
pub struct AutoscaleSettings {
    pub interval: Duration,
    pub stabilization: Duration,
    pub metric_ttl: Duration,
}

pub struct Autoscaler {
    service: Replicator,
    settings: AutoscaleSettings,
    stabilizers: HashMap<String, Stabilizer>,
    /// Scale operations under way: a group is not re-decided until its change is done.
    applying: HashMap<String, JoinHandle<()>>,
    /// Last reason logged per group, so a steady state is logged once.
    last_reason: HashMap<String, String>,
}

impl Autoscaler {
    pub fn new(service: Replicator, settings: AutoscaleSettings) -> Self {
        Self {
            service,
            settings,
            stabilizers: HashMap::new(),
            applying: HashMap::new(),
            last_reason: HashMap::new(),
        }
    }

    /// Runs until the task is dropped or aborted.
    pub async fn run(mut self) {
        loop {
            self.tick().await;
            tokio::select! {
                () = tokio::time::sleep(self.settings.interval) => {}
                () = self.service.metric_store().pushed.notified() => tokio::time::sleep(PUSH_DEBOUNCE).await,
            }
        }
    }

    /// One evaluation of every autoscaled group.
    pub async fn tick(&mut self) {
        self.applying.retain(|_, task| !task.is_finished());
        let groups = match self.service.groups().await {
            Ok(groups) => groups,
            Err(e) => return warn!(error = %e, "autoscaler cannot list groups"),
        };
        let now = Instant::now();
        self.service.metric_store().prune(self.settings.metric_ttl, now);
        let telemetry = self.service.telemetry();
        for g in &groups {
            telemetry
                .group_size
                .get_or_create(&GroupLabel { group: g.name.clone() })
                .set(g.replicas as i64);
        }
        let active: Vec<(&GroupView, &Policy)> = groups
            .iter()
            .filter_map(|g| match &g.policy {
                Some(Ok(p)) if !self.applying.contains_key(&g.name) => Some((g, p)),
                Some(Err(reason)) => {
                    self.log_once(
                        &g.name,
                        reason,
                        || warn!(group = %g.name, reason, "group not autoscaled: malformed labels"),
                    );
                    None
                }
                _ => None,
            })
            .collect();
        let observations = join_all(active.iter().map(|(g, p)| self.observe(g, p))).await;
        for ((group, policy), values) in active.into_iter().zip(observations) {
            self.evaluate(group, policy, &values, now);
        }
    }

    fn evaluate(&mut self, group: &GroupView, policy: &Policy, values: &[Option<f64>], now: Instant) {
        let limits = Limits {
            target: policy.target,
            min: policy.min,
            max: policy.max,
        };
        let window = self.settings.stabilization;
        let stabilizer = self
            .stabilizers
            .entry(group.name.clone())
            .or_insert_with(|| Stabilizer::new(window));
        let d = decide(stabilizer, now, group.replicas as u32, values, &limits);
        let telemetry = self.service.telemetry();
        let label = GroupLabel {
            group: group.name.clone(),
        };
        telemetry.group_desired.get_or_create(&label).set(i64::from(d.desired));
        let direction = match d.to.cmp(&d.from) {
            std::cmp::Ordering::Greater => "up",
            std::cmp::Ordering::Less => "down",
            std::cmp::Ordering::Equal => "none",
        };
        telemetry
            .decisions
            .get_or_create(&DecisionLabels {
                group: group.name.clone(),
                direction: direction.into(),
            })
            .inc();
        let decision = DecisionView {
            at: rfc3339_now(),
            from: d.from,
            to: d.to,
            reason: d.reason.clone(),
        };
        self.service.board().record(
            &group.name,
            Evaluation {
                average: d.average,
                desired: d.desired,
                last_decision: Some(decision),
            },
        );
        if d.to == d.from {
            let name = group.name.clone();
            self.log_once(
                &name,
                &d.reason,
                || info!(group = %name, from = d.from, to = d.to, reason = %d.reason, "autoscaler decision"),
            );
            return debug!(group = %group.name, from = d.from, to = d.to, reason = %d.reason, "autoscaler decision");
        }
        info!(group = %group.name, from = d.from, to = d.to, reason = %d.reason, "autoscaler decision");
        self.last_reason.insert(group.name.clone(), d.reason.clone());
        let (service, name, to) = (self.service.clone(), group.name.clone(), d.to);
        let task = tokio::spawn(async move {
            if let Err(e) = service.scale(&name, to, "autoscaler").await {
                warn!(group = %name, to, error = %e, "autoscaler could not apply its decision");
            }
        });
        self.applying.insert(group.name.clone(), task);
    }

    fn log_once(&mut self, group: &str, reason: &str, log: impl FnOnce()) {
        if self.last_reason.get(group).map(String::as_str) != Some(reason) {
            log();
            self.last_reason.insert(group.to_owned(), reason.to_owned());
        }
    }

    /// One value per running member, `None` where there is no fresh one.
    async fn observe(&self, group: &GroupView, policy: &Policy) -> Vec<Option<f64>> {
        let running = group.members.iter().filter(|m| m.state == RunState::Running);
        let store = self.service.metric_store();
        let now = Instant::now();
        match &policy.metric {
            Metric::Pushed(name) => running
                .map(|m| store.fresh(&m.id, name, self.settings.metric_ttl, now))
                .collect(),
            Metric::Cpu | Metric::Memory => {
                let engine = self.service.engine();
                let samples = join_all(running.map(|m| engine.stats(&m.id))).await;
                samples
                    .into_iter()
                    .map(|s| {
                        let s = s.ok()?;
                        match policy.metric {
                            Metric::Cpu => Some(cpu_percent(&s)),
                            _ => memory_percent(&s),
                        }
                    })
                    .collect()
            }
        }
    }
}
