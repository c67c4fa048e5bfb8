//! The autoscaling loop: every interval (or as soon as a value is pushed) it
//! reads each autoscaled group's metric, decides, records, and applies the
//! decision through the service's own `scale` (unless in dry-run).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use super::decide::{decide, Decision, Limits, Memory};
use super::policy::{Metric, Policy};
use super::prometheus::PrometheusClient;
use super::stats::{cpu_percent, memory_percent};
use super::store::{rfc3339_now, DecisionView};
use crate::model::RunState;
use crate::service::{GroupView, Replicator};
use crate::telemetry::{DecisionLabels, GroupLabel};

/// Pushes closer together than this are acted on together.
const PUSH_DEBOUNCE: Duration = Duration::from_millis(50);

#[derive(Clone)]
pub struct AutoscaleSettings {
    pub interval: Duration,
    pub stabilization: Duration,
    pub metric_ttl: Duration,
    /// Where `replicator.autoscale.metric=prometheus` groups are queried.
    pub prometheus: Option<PrometheusClient>,
}

pub struct Autoscaler {
    service: Replicator,
    settings: AutoscaleSettings,
    memories: HashMap<String, Memory>,
    /// Scale operations under way: a group is not re-decided until its change is done.
    applying: HashMap<String, JoinHandle<()>>,
    /// What was last logged per group and topic, so a steady state is logged once.
    logged: HashMap<(String, &'static str), String>,
}

/// What one observation found: a value per running member, or why there is none.
struct Observation {
    values: Vec<Option<f64>>,
    problem: Option<String>,
}

impl Autoscaler {
    pub fn new(service: Replicator, settings: AutoscaleSettings) -> Self {
        Self { service, settings, memories: HashMap::new(), applying: HashMap::new(), logged: HashMap::new() }
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
        for g in &groups {
            let size = self.service.telemetry().group_size.get_or_create(&GroupLabel { group: g.name.clone() });
            size.set(g.replicas as i64);
            debug!(group = %g.name, running = g.replicas, "group observed");
        }
        let mut active = Vec::new();
        for g in &groups {
            match &g.policy {
                Some(Ok(p)) if !self.applying.contains_key(&g.name) => active.push((g, p)),
                Some(Err(reason)) => self.log_change(
                    &g.name,
                    "labels",
                    reason,
                    |reason| warn!(group = %g.name, reason, "group not autoscaled: malformed labels"),
                ),
                _ => {}
            }
        }
        let observations = join_all(active.iter().map(|(g, p)| self.observe(g, p))).await;
        let evaluated: Vec<String> = active.iter().map(|(g, _)| g.name.clone()).collect();
        for ((group, policy), observation) in active.into_iter().zip(observations) {
            let problem = observation.problem.clone().unwrap_or_default();
            self.log_change(&group.name, "metric", &problem, |problem| {
                if problem.is_empty() {
                    info!(group = %group.name, "metric readable again")
                } else {
                    warn!(group = %group.name, problem, "no metric value: the group keeps its size")
                }
            });
            self.evaluate(group, policy, &observation.values, now);
        }
        let unix =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
        for g in &groups {
            let metric = if evaluated.contains(&g.name) { self.service.board().latest_value(&g.name) } else { None };
            self.service.board().sample(&g.name, (unix, g.replicas as u32, metric));
        }
    }

    fn limits(&self, policy: &Policy) -> Limits {
        Limits {
            target: policy.target,
            min: policy.min,
            max: policy.max,
            step_up: policy.step_up,
            step_down: policy.step_down,
            cooldown_up: policy.cooldown_up.unwrap_or(Duration::ZERO),
            cooldown_down: policy.cooldown_down.unwrap_or(self.settings.stabilization),
        }
    }

    fn evaluate(&mut self, group: &GroupView, policy: &Policy, values: &[Option<f64>], now: Instant) {
        let limits = self.limits(policy);
        let window = self.settings.stabilization;
        let memory = self.memories.entry(group.name.clone()).or_insert_with(|| Memory::new(window));
        let d = decide(memory, now, group.replicas as u32, values, &limits);
        let dry_run = policy.dry_run || self.service.settings().autoscale_dry_run;
        self.report(group, &d, dry_run);
        if d.to == d.from || dry_run {
            return;
        }
        let (service, name, to) = (self.service.clone(), group.name.clone(), d.to);
        let task = tokio::spawn(async move {
            if let Err(e) = service.scale(&name, to, "autoscaler").await {
                warn!(group = %name, to, error = %e, "autoscaler could not apply its decision");
            }
        });
        self.applying.insert(group.name.clone(), task);
    }

    /// Board, metrics and log for one decision.
    fn report(&mut self, group: &GroupView, d: &Decision, dry_run: bool) {
        let telemetry = self.service.telemetry();
        telemetry.group_desired.get_or_create(&GroupLabel { group: group.name.clone() }).set(i64::from(d.desired));
        let direction = match d.to.cmp(&d.from) {
            std::cmp::Ordering::Greater => "up",
            std::cmp::Ordering::Less => "down",
            std::cmp::Ordering::Equal => "none",
        };
        let labels = DecisionLabels { group: group.name.clone(), direction: direction.into() };
        telemetry.decisions.get_or_create(&labels).inc();
        let applied = d.to != d.from && !dry_run;
        let view = DecisionView {
            at: rfc3339_now(),
            from: d.from,
            to: d.to,
            reason: d.reason.clone(),
            value: d.average,
            dry_run,
            applied,
        };
        self.service.board().record(&group.name, d.desired, view);
        let log = |d: &Decision| info!(group = %group.name, from = d.from, to = d.to, reason = %d.reason, dry_run, "autoscaler decision");
        if d.to != d.from {
            log(d);
            self.logged.insert((group.name.clone(), "decision"), d.reason.clone());
        } else {
            self.log_change(&group.name, "decision", &d.reason, |_| log(d));
            debug!(group = %group.name, from = d.from, to = d.to, reason = %d.reason, "autoscaler decision");
        }
    }

    /// Logs `text` for (group, topic) only when it differs from the last one logged.
    fn log_change(&mut self, group: &str, topic: &'static str, text: &str, log: impl FnOnce(&str)) {
        let key = (group.to_owned(), topic);
        if self.logged.get(&key).map(String::as_str) != Some(text) {
            if !text.is_empty() || self.logged.contains_key(&key) {
                log(text);
            }
            self.logged.insert(key, text.to_owned());
        }
    }

    /// One value per running member, `None` where there is no fresh one.
    async fn observe(&self, group: &GroupView, policy: &Policy) -> Observation {
        let running: Vec<&str> =
            group.members.iter().filter(|m| m.state == RunState::Running).map(|m| m.id.as_str()).collect();
        let now = Instant::now();
        let ok = |values: Vec<Option<f64>>| Observation { values, problem: None };
        match &policy.metric {
            Metric::Pushed(name) => {
                let store = self.service.metric_store();
                ok(running.iter().map(|id| store.fresh(id, name, self.settings.metric_ttl, now)).collect())
            }
            Metric::Prometheus(query) => {
                let result = match &self.settings.prometheus {
                    Some(client) => client.query(query).await,
                    None => Err("the group queries Prometheus but serve has no --prometheus-url".to_owned()),
                };
                match result {
                    // The query gives the group's total; each running member carries its share.
                    Ok(total) => ok(vec![Some(total / running.len().max(1) as f64); running.len()]),
                    Err(problem) => Observation { values: vec![None; running.len()], problem: Some(problem) },
                }
            }
            Metric::Cpu | Metric::Memory => {
                let engine = self.service.engine();
                let samples = join_all(running.iter().map(|id| engine.stats(id))).await;
                let values = samples
                    .into_iter()
                    .map(|s| {
                        let s = s.ok()?;
                        match policy.metric {
                            Metric::Cpu => Some(cpu_percent(&s)),
                            _ => memory_percent(&s),
                        }
                    })
                    .collect();
                ok(values)
            }
        }
    }
}
