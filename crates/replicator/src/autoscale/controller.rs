//! The autoscaling loop: every interval (or as soon as a value is pushed) it
//! reads each autoscaled group's metric, decides, records, and applies the
//! decision through the service's own `scale` (unless in dry-run).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::board::DecisionView;
use super::control::{AutoscaleHandle, GroupControl};
use super::decide::{decide, hpa_values, Decision, Limits, Memory};
use super::prometheus::PrometheusClient;
use super::stats::{cpu_percent, memory_percent};
use crate::base::telemetry::Telemetry;
use crate::base::worker::{Pace, Worker};
use crate::inventory::{Group, MemberState};
use crate::rules::policy::{Metric, Policy};

/// Pushes closer together than this are acted on together.
const PUSH_DEBOUNCE: Duration = Duration::from_millis(50);
/// Group changes closer together than this are acted on together.
const CHANGE_DEBOUNCE: Duration = Duration::from_millis(200);

/// How the loop runs, from the command line.
#[derive(Clone)]
pub struct AutoscaleSettings {
    /// Time between two evaluations when nothing happens.
    pub interval: Duration,
    /// Scale-downs go no lower than the highest recommendation of this window.
    pub stabilization: Duration,
    /// How long a pushed value counts as fresh.
    pub metric_ttl: Duration,
    /// Where `replicator.autoscale.metric=prometheus` groups are queried.
    pub prometheus: Option<PrometheusClient>,
    /// CPU of a member younger than this is not counted (start-up spikes).
    pub cpu_initialization: Duration,
    /// Burst mode's window (`serve --burst-window`); zero turns it off.
    pub burst_window: Duration,
}

/// The control loop; it owns its memory of each group and the scale tasks it starts.
pub struct Autoscaler {
    shared: Arc<AutoscaleHandle>,
    telemetry: Arc<Telemetry>,
    settings: AutoscaleSettings,
    memories: HashMap<String, Memory>,
    /// The scale changes under way, one per group: a group is not
    /// re-decided until its change is done.
    worker: Worker,
    /// What was last logged per group and topic, so a steady state is logged once.
    logged: HashMap<(String, &'static str), String>,
}

/// What one observation found: a value per member that counts, how many
/// running members do not count yet, or why there is no value.
struct Observation {
    values: Vec<Option<f64>>,
    /// Running but not ready (or, for CPU, still initializing): HPA's "ignored" pods.
    unready: usize,
    problem: Option<String>,
}

impl Autoscaler {
    /// A loop over the groups `shared` controls.
    pub fn new(shared: Arc<AutoscaleHandle>, telemetry: Arc<Telemetry>, settings: AutoscaleSettings) -> Self {
        let pace = Pace { every: settings.interval, debounce: CHANGE_DEBOUNCE };
        let worker = Worker::new("autoscaler", pace, shared.control.changes(), telemetry.clone());
        Self { shared, telemetry, settings, memories: HashMap::new(), worker, logged: HashMap::new() }
    }

    fn control(&self) -> &dyn GroupControl {
        self.shared.control.as_ref()
    }

    /// Evaluates every interval, on pushed values and on group changes,
    /// until `cancel`; then waits for the scale changes it started.
    pub async fn run(mut self, cancel: CancellationToken) {
        loop {
            self.tick().await;
            let shared = self.shared.clone();
            if self.worker.next_round(shared.metrics.pushed(), PUSH_DEBOUNCE, &cancel).await.is_none() {
                break;
            }
        }
        self.worker.finish().await;
    }

    /// One evaluation of every autoscaled group.
    pub async fn tick(&mut self) {
        self.worker.reap();
        let groups = match self.control().groups() {
            Ok(groups) => groups,
            Err(e) => return warn!(error = %e, "autoscaler cannot read the groups"),
        };
        let now = self.shared.clock.now();
        self.shared.metrics.prune(self.settings.metric_ttl, now);
        self.shared.agents.prune(self.settings.metric_ttl, now);
        // Groups come and go (compose projects, CI runs): forget the ones gone.
        let present: std::collections::HashSet<&str> = groups.iter().map(|g| g.name()).collect();
        self.memories.retain(|name, _| present.contains(name.as_str()));
        self.logged.retain(|(name, _), _| present.contains(name.as_str()));
        self.shared.board.retain(&present);
        self.telemetry.prune_groups(&present, now);
        for g in groups.iter() {
            self.telemetry.group_size(g.name(), g.running() as i64);
            debug!(group = %g.name(), running = g.running(), "group observed");
        }
        let mut active = Vec::new();
        for g in groups.iter() {
            match &g.policy {
                Some(Ok(p)) if !self.worker.is_busy(g.name()) => active.push((g, p)),
                Some(Err(reason)) => self.log_change(
                    g.name(),
                    "labels",
                    reason,
                    |reason| warn!(group = %g.name(), reason, "group not autoscaled: malformed labels"),
                ),
                _ => {}
            }
        }
        let observations = join_all(active.iter().map(|(g, p)| self.observe(g, p))).await;
        let evaluated: Vec<&str> = active.iter().map(|(g, _)| g.name()).collect();
        for ((group, policy), observation) in active.iter().zip(observations) {
            let problem = observation.problem.clone().unwrap_or_default();
            self.log_change(group.name(), "metric", &problem, |problem| {
                if problem.is_empty() {
                    info!(group = %group.name(), "metric readable again")
                } else {
                    warn!(group = %group.name(), problem, "no metric value: the group keeps its size")
                }
            });
            let values = hpa_values(&observation.values, observation.unready, policy.target);
            match group.service.as_ref().and_then(|s| s.rolling_out.as_deref()) {
                Some(update) => {
                    self.hold(group, policy, format!("the service's update is {update}: not scaled until it ends"))
                }
                None => self.evaluate(group, policy, &values, observation.problem.as_deref(), now),
            }
        }
        let unix = self.shared.clock.unix();
        for g in groups.iter() {
            let metric = if evaluated.contains(&g.name()) { self.shared.board.latest_value(g.name()) } else { None };
            self.shared.board.sample(g.name(), (unix, g.running() as u32, metric));
        }
    }

    fn limits(&self, policy: &Policy) -> Limits {
        Limits::from_policy(policy, self.settings.stabilization, self.settings.burst_window)
    }

    /// Records a decision to keep the group as it is, for `reason`.
    fn hold(&mut self, group: &Group, policy: &Policy, reason: String) {
        let size = group.size() as u32;
        let d = Decision { from: size, to: size, desired: size, average: None, reason };
        self.report(group.name(), &d, policy.dry_run || self.shared.dry_run);
    }

    fn evaluate(
        &mut self,
        group: &Group,
        policy: &Policy,
        values: &[Option<f64>],
        problem: Option<&str>,
        now: Instant,
    ) {
        let limits = self.limits(policy);
        let window = self.settings.stabilization;
        let memory = self.memories.entry(group.name().to_owned()).or_insert_with(|| Memory::new(window));
        // The size the service scales from: members holding a place, not only those running.
        let mut d = decide(memory, now, group.size() as u32, values, &limits);
        if let (Some(problem), None, true) = (problem, d.average, d.to == d.from) {
            d.reason = format!("{problem}: the group keeps its size");
        }
        let dry_run = policy.dry_run || self.shared.dry_run;
        self.report(group.name(), &d, dry_run);
        if d.to == d.from || dry_run {
            return;
        }
        let (shared, name, to) = (self.shared.clone(), group.name().to_owned(), d.to);
        self.worker.start(&name.clone(), async move {
            if let Err(e) = shared.control.scale(&name, to).await {
                warn!(group = %name, to, error = %e, "autoscaler could not apply its decision");
            }
        });
    }

    /// Board, metrics and log for one decision.
    fn report(&mut self, group: &str, d: &Decision, dry_run: bool) {
        let telemetry = &self.telemetry;
        telemetry.group_desired(group, i64::from(d.desired));
        let direction = match d.to.cmp(&d.from) {
            std::cmp::Ordering::Greater => "up",
            std::cmp::Ordering::Less => "down",
            std::cmp::Ordering::Equal => "none",
        };
        telemetry.decision(group, direction);
        let applied = d.to != d.from && !dry_run;
        let view = DecisionView {
            at: self.shared.clock.rfc3339(),
            from: d.from,
            to: d.to,
            reason: d.reason.clone(),
            value: d.average,
            dry_run,
            applied,
        };
        if d.to != d.from {
            // The group named in the event too: a client following every group tells them apart.
            let mut data = serde_json::to_value(&view).unwrap_or_default();
            data["group"] = group.into();
            self.shared.events.decision(group, data);
        }
        self.shared.board.record(group, d.desired, view);
        let log =
            |d: &Decision| info!(group, from = d.from, to = d.to, reason = %d.reason, dry_run, "autoscaler decision");
        if d.to != d.from {
            log(d);
            self.logged.insert((group.to_owned(), "decision"), d.reason.clone());
        } else {
            self.log_change(group, "decision", &d.reason, |_| log(d));
            debug!(group, from = d.from, to = d.to, reason = %d.reason, "autoscaler decision");
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
    async fn observe(&self, group: &Group, policy: &Policy) -> Observation {
        let all_running = group.members.iter().filter(|m| m.state == MemberState::Running);
        let initializing = |m: &&crate::inventory::Member| {
            policy.metric == Metric::Cpu
                && self.shared.clock.unix() - m.created < self.settings.cpu_initialization.as_secs() as i64
        };
        let mut running: Vec<&str> =
            all_running.clone().filter(|m| m.ready() && !initializing(m)).map(|m| m.id.as_str()).collect();
        let unready = all_running.count() - running.len();
        if group.asleep() {
            // What is pushed for (or queried about) a sleeping original may wake it.
            let sleeping = group.members.iter().filter(|m| m.state == MemberState::Sleeping);
            running = sleeping.map(|m| m.id.as_str()).collect();
            if matches!(policy.metric, Metric::Cpu | Metric::Memory | Metric::Connections) {
                return Observation { values: Vec::new(), unready: 0, problem: None };
            }
        }
        let now = self.shared.clock.now();
        let ok = |values: Vec<Option<f64>>| Observation { values, unready, problem: None };
        match &policy.metric {
            Metric::Pushed(name) => {
                let store = &self.shared.metrics;
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
                    Err(problem) => Observation { values: vec![None; running.len()], unready, problem: Some(problem) },
                }
            }
            Metric::Cpu | Metric::Memory => self.usage(group, &policy.metric, &running, unready).await,
            Metric::Connections => ok(running.iter().map(|id| Some(self.control().connections(id))).collect()),
        }
    }

    /// CPU or memory of each counted member: from the agent on its node when
    /// one reported, else from this engine's stats for a container it runs.
    /// A task on another node whose agent is silent leaves the whole group
    /// without a value: deciding on the nodes that do report would be
    /// deciding on part of the load.
    async fn usage(&self, group: &Group, metric: &Metric, counted: &[&str], unready: usize) -> Observation {
        let now = self.shared.clock.now();
        let (agents, ttl) = (&self.shared.agents, self.settings.metric_ttl);
        let local = self.control().local_node();
        // Each member's agent value, and the other node it runs on when it has
        // none. A member on this engine's node (or on no known node) is read
        // from this engine: no report replaces what replicator measures itself.
        let reported: Vec<(Option<f64>, Option<String>)> = counted
            .iter()
            .map(|id| {
                let node = group.members.iter().find(|m| m.id == *id).and_then(|m| m.node.clone());
                match node.filter(|n| *n != local) {
                    Some(other) => (agents.usage(id, metric, ttl, now), Some(other)),
                    None => (None, None),
                }
            })
            .collect();
        let silent: std::collections::BTreeSet<&str> =
            reported.iter().filter(|(value, _)| value.is_none()).filter_map(|(_, node)| node.as_deref()).collect();
        if !silent.is_empty() {
            let names: Vec<&str> = silent.into_iter().collect();
            let problem = format!("no fresh report from the agent on node {}", names.join(", "));
            return Observation { values: vec![None; counted.len()], unready, problem: Some(problem) };
        }
        let reads = counted.iter().zip(reported).map(|(id, (value, _))| async move {
            if value.is_some() {
                return value;
            }
            let sample = self.control().stats(id).await.ok()?;
            match metric {
                Metric::Cpu => Some(cpu_percent(&sample)),
                _ => memory_percent(&sample),
            }
        });
        Observation { values: join_all(reads).await, unready, problem: None }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::autoscale::board::AutoscaleView;
    use crate::autoscale::{MetricSample, NodeReport, ReportOutcome, Usage};
    use crate::base::id::ContainerRef;
    use crate::engine::fake::FakeEngine;
    use crate::engine::Op;
    use crate::error::Error;
    use crate::inventory::Scope;
    use crate::rules::access::Identity;
    use crate::service::Replicator;

    async fn autoscaled(labels: &[(&str, &str)]) -> (Arc<FakeEngine>, Replicator, Arc<AutoscaleHandle>, Autoscaler) {
        let engine = Arc::new(FakeEngine::default());
        engine.add_container("web", labels);
        let (service, handle, autoscaler) = autoscaler_over(&engine, Duration::from_secs(30)).await;
        (engine, service, handle, autoscaler)
    }

    /// The service, the autoscaler's handle and its loop over `engine`.
    async fn autoscaler_over(
        engine: &Arc<FakeEngine>,
        cpu_initialization: Duration,
    ) -> (Replicator, Arc<AutoscaleHandle>, Autoscaler) {
        let service = Replicator::for_test(engine.clone(), Scope::default()).await;
        // One clock for windows, ages and timestamps, moved by the tests' paused time.
        let clock = crate::base::clock::Clock::following_tokio(crate::base::clock::unix_now());
        let handle =
            AutoscaleHandle::new(Arc::new(service.clone()), service.events().clone(), false, Duration::from_secs(15))
                .with_clock(clock);
        let settings = AutoscaleSettings {
            interval: Duration::from_secs(5),
            stabilization: Duration::from_secs(60),
            metric_ttl: Duration::from_secs(15),
            prometheus: None,
            cpu_initialization,
            burst_window: Duration::ZERO,
        };
        let autoscaler = Autoscaler::new(handle.clone(), Arc::new(Telemetry::default()), settings);
        (service, handle, autoscaler)
    }

    const LABELS: [(&str, &str); 4] = [
        ("replicator.enable", "true"),
        ("replicator.max", "4"),
        ("replicator.autoscale.metric", "rps"),
        ("replicator.autoscale.target", "10"),
    ];

    async fn running_reaches(service: &Replicator, n: usize) {
        let mut changes = service.inventory().subscribe();
        while service.groups().unwrap()[0].running() != n {
            changes.changed().await.unwrap();
        }
    }

    /// `web` pushes `value` for `rps`, as an operator would.
    async fn push_rps(handle: &AutoscaleHandle, value: f64) {
        let web = ContainerRef::parse("web").unwrap();
        handle
            .push(&[MetricSample { container: web, metric: "rps".into(), value }], &Identity::Operator)
            .await
            .unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn pushed_load_grows_the_group_and_missing_values_never_shrink_it() {
        let (_engine, service, handle, autoscaler) = autoscaled(&LABELS).await;
        let cancel = CancellationToken::new();
        let mut stream = service.events().subscribe("", None, None, "test").unwrap();
        let running = tokio::spawn(autoscaler.run(cancel.clone()));
        push_rps(&handle, 40.0).await;
        running_reaches(&service, 4).await;
        let decisions = handle.history("web");
        assert_eq!((decisions[0].from, decisions[0].to), (1, 4));
        let mut announced = Vec::new();
        while let Ok(event) = stream.live.try_recv() {
            announced.push(event);
        }
        assert!(
            announced.iter().any(|e| e.kind == "decision" && e.json()["to"] == 4),
            "the decision is on the event stream"
        );
        // Members report nothing for longer than the stabilization window: no
        // scale-down on missing data.
        tokio::time::sleep(Duration::from_secs(120)).await;
        assert_eq!(service.groups().unwrap()[0].running(), 4);
        cancel.cancel();
        running.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_waits_for_the_change_under_way() {
        let (engine, service, handle, autoscaler) = autoscaled(&LABELS).await;
        engine.delay(Op::StartContainer, Duration::from_secs(3));
        let cancel = CancellationToken::new();
        let running = tokio::spawn(autoscaler.run(cancel.clone()));
        push_rps(&handle, 40.0).await;
        let mut changes = service.inventory().subscribe();
        while engine.calls(Op::StartContainer) == 0 {
            changes.changed().await.unwrap();
        }
        cancel.cancel();
        running.await.unwrap();
        assert_eq!(service.groups().unwrap()[0].running(), 4, "the scale-up finished before the loop returned");
    }

    const CPU: [(&str, &str); 5] = [
        ("replicator.enable", "true"),
        ("replicator.max", "6"),
        ("replicator.autoscale.metric", "cpu"),
        ("replicator.autoscale.target", "50"),
        ("replicator.autoscale.min", "1"),
    ];

    /// A manager ("m") and a worker ("w"); service `api` with four tasks, two on each.
    async fn two_node_service() -> (Arc<FakeEngine>, Replicator, Arc<AutoscaleHandle>, Autoscaler, String) {
        let engine = Arc::new(FakeEngine::default());
        engine.set_swarm(crate::model::SwarmRole::Manager);
        engine.set_nodes(&["m", "w"]);
        let service_id = engine.add_service("api", 4, &CPU);
        let (service, handle, autoscaler) = autoscaler_over(&engine, Duration::ZERO).await;
        (engine, service, handle, autoscaler, service_id)
    }

    /// The agents' reports: every task of `api` on `node` at `cpu` percent.
    fn report_node(service: &Replicator, handle: &AutoscaleHandle, node: &str, cpu: f64) -> ReportOutcome {
        let group = service.groups().unwrap().iter().find(|g| g.name() == "api").cloned().unwrap();
        let containers = group
            .members
            .iter()
            .filter(|m| m.node.as_deref() == Some(node))
            .map(|m| Usage { container: m.id.clone(), cpu, memory: None })
            .collect();
        handle.report(NodeReport { node: node.into(), hostname: node.into(), containers }).unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn busy_tasks_on_both_nodes_grow_the_service_from_the_agents_reports() {
        let (engine, service, handle, mut autoscaler, id) = two_node_service().await;
        let outcome = report_node(&service, &handle, "w", 100.0);
        assert_eq!((outcome.accepted, outcome.services.clone()), (2, vec![id.clone()]));
        // The manager's own tasks are read from its own engine, whatever an agent says of them.
        engine.set_cpu_percent(100);
        report_node(&service, &handle, "m", 0.0);
        autoscaler.tick().await;
        autoscaler.worker.finish().await;
        assert_eq!(engine.service_replicas(&id), Some(6), "4 tasks at twice the target ask for 8, capped at max 6");
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_agent_holds_the_group_instead_of_deciding_on_half_the_load() {
        let (engine, service, handle, mut autoscaler, id) = two_node_service().await;
        report_node(&service, &handle, "m", 100.0);
        report_node(&service, &handle, "w", 100.0);
        tokio::time::sleep(Duration::from_secs(16)).await;
        report_node(&service, &handle, "m", 100.0);
        autoscaler.tick().await;
        assert_eq!(engine.service_replicas(&id), Some(4));
        let group = service.groups().unwrap().iter().find(|g| g.name() == "api").cloned().unwrap();
        let Some(AutoscaleView::Active { last_decision: Some(d), .. }) = handle.view(&group) else {
            panic!("the group is autoscaled")
        };
        assert_eq!((d.from, d.to), (4, 4));
        assert!(d.reason.contains("no fresh report from the agent on node w"), "{}", d.reason);
        let nodes = handle.nodes(&group);
        let reporting: Vec<(&str, bool, usize)> = nodes.iter().map(|n| (n.id.as_str(), n.reporting, n.tasks)).collect();
        assert_eq!(reporting, [("m", true, 2), ("w", false, 2)]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_service_rolling_out_an_update_is_not_scaled() {
        let (engine, service, handle, mut autoscaler, id) = two_node_service().await;
        engine.set_update_state(&id, Some("updating"));
        let informer =
            crate::inventory::Informer::new(engine.clone(), service.inventory().writer_for_test(), Duration::MAX);
        informer.resync().await.unwrap();
        report_node(&service, &handle, "m", 100.0);
        report_node(&service, &handle, "w", 100.0);
        autoscaler.tick().await;
        assert_eq!(engine.service_replicas(&id), Some(4));
        assert!(handle.board.latest_reason("api").unwrap().contains("update is updating"));
    }

    #[tokio::test(start_paused = true)]
    async fn an_agent_may_report_only_for_tasks_on_its_own_node() {
        let (_engine, service, handle, _autoscaler, _id) = two_node_service().await;
        let group = service.groups().unwrap().iter().find(|g| g.name() == "api").cloned().unwrap();
        let on_m = group.members.iter().find(|m| m.node.as_deref() == Some("m")).unwrap().id.clone();
        let lie = NodeReport {
            node: "w".into(),
            hostname: "w".into(),
            containers: vec![Usage { container: on_m.clone(), cpu: 1.0, memory: None }],
        };
        let e = handle.report(lie).unwrap_err();
        assert!(matches!(e, Error::Forbidden(_)) && e.to_string().contains("not on node w"), "{e}");
        assert_eq!(handle.agents.usage(&on_m, &Metric::Cpu, Duration::from_secs(15), handle.clock.now()), None);
        let stranger = NodeReport { node: "x".into(), hostname: "x".into(), containers: Vec::new() };
        assert!(handle.report(stranger).unwrap_err().to_string().contains("not a node of this swarm"));
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_group_with_min_0_goes_to_sleep_and_a_pushed_value_wakes_it() {
        let labels = [
            ("replicator.enable", "true"),
            ("replicator.min", "0"),
            ("replicator.autoscale.min", "0"),
            ("replicator.autoscale.metric", "rps"),
            ("replicator.autoscale.target", "10"),
        ];
        let (engine, service, handle, autoscaler) = autoscaled(&labels).await;
        let cancel = CancellationToken::new();
        let running = tokio::spawn(autoscaler.run(cancel.clone()));
        let web = || ContainerRef::parse("web").unwrap();
        let push = |value: f64| MetricSample { container: web(), metric: "rps".into(), value };
        let mut changes = service.inventory().subscribe();
        while !service.groups().unwrap()[0].asleep() {
            handle.push(&[push(0.0)], &Identity::Operator).await.unwrap();
            tokio::select! {
                _ = changes.changed() => {}
                () = tokio::time::sleep(Duration::from_secs(5)) => {}
            }
        }
        assert_eq!(engine.calls(Op::PauseContainer), 1, "the original was paused, never removed");
        assert_eq!(engine.calls(Op::RemoveContainer), 0);
        handle.push(&[push(3.0)], &Identity::Operator).await.unwrap();
        while service.groups().unwrap()[0].asleep() {
            changes.changed().await.unwrap();
        }
        assert_eq!((service.groups().unwrap()[0].running(), engine.calls(Op::UnpauseContainer)), (1, 1));
        cancel.cancel();
        running.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_value_pushed_for_another_metric_is_refused() {
        let (_engine, _service, handle, _autoscaler) = autoscaled(&LABELS).await;
        let web = ContainerRef::parse("web").unwrap();
        let e = handle
            .push(&[MetricSample { container: web, metric: "cpu_load".into(), value: 1.0 }], &Identity::Operator)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("not on a pushed \"cpu_load\""), "{e}");
    }
}
