//! What the autoscaler may see and do, and what others may ask of it.
//!
//! [`GroupControl`] is all the autoscaler knows of the service: read the
//! groups, wait for them to change, scale one, read a member's stats. The
//! service never imports this module; the implementation for
//! [`Replicator`] lives here. [`AutoscaleHandle`] is the autoscaler's side
//! for the API and the dashboard: pushed metrics in, decisions out.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::watch;

use super::agents::{AgentReports, NodeReport, NodeView};
use super::board::{AutoscaleView, Board, DecisionView, MetricStore, Sample};
use crate::base::clock::Clock;
use crate::base::id::ContainerRef;
use crate::base::quote::clip;
use crate::error::{Error, Result};
use crate::inventory::Group;
use crate::model::{NodeSummary, StatsSample};
use crate::rules::access::{Identity, Permission};
use crate::rules::bounds::GroupKind;
use crate::rules::policy::{self, Metric};
use crate::service::events::EventHub;
use crate::service::Replicator;

/// The service as the autoscaler sees it.
#[async_trait]
pub trait GroupControl: Send + Sync + 'static {
    /// Every managed group.
    fn groups(&self) -> Result<Arc<Vec<Group>>>;
    /// Changes whenever the groups do.
    fn changes(&self) -> watch::Receiver<u64>;
    /// Brings a group to `to` members.
    async fn scale(&self, group: &str, to: u32) -> Result<()>;
    /// One reading of a member's counters.
    async fn stats(&self, container: &str) -> Result<StatsSample>;
    /// The full id of the container `target` names, and its group.
    async fn locate(&self, target: &ContainerRef) -> Result<(String, Group)>;
    /// The swarm's nodes (empty off a Swarm manager).
    fn swarm_nodes(&self) -> Vec<NodeSummary>;
    /// The Swarm node id of replicator's own engine (empty off a swarm).
    fn local_node(&self) -> String;
    /// A member's open connections through the front, averaged since the last call.
    fn connections(&self, member: &str) -> f64;
}

#[async_trait]
impl GroupControl for Replicator {
    fn connections(&self, member: &str) -> f64 {
        self.connections().average(member)
    }

    fn groups(&self) -> Result<Arc<Vec<Group>>> {
        Replicator::groups(self)
    }

    fn changes(&self) -> watch::Receiver<u64> {
        self.inventory().subscribe()
    }

    async fn scale(&self, group: &str, to: u32) -> Result<()> {
        Replicator::scale(self, group, to, "autoscaler", None).await.map(drop)
    }

    async fn stats(&self, container: &str) -> Result<StatsSample> {
        Ok(self.engine().stats(container).await?)
    }

    async fn locate(&self, target: &ContainerRef) -> Result<(String, Group)> {
        Replicator::locate(self, target).await
    }

    fn swarm_nodes(&self) -> Vec<NodeSummary> {
        self.inventory().nodes()
    }

    fn local_node(&self) -> String {
        self.inventory().engine().map(|e| e.node_id).unwrap_or_default()
    }
}

/// One pushed value, already validated in shape.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricSample {
    /// The container it is for.
    pub container: ContainerRef,
    /// The metric's name.
    pub metric: String,
    /// Its value.
    pub value: f64,
}

/// The autoscaler's state, shared with the API and the dashboard.
pub struct AutoscaleHandle {
    pub(super) control: Arc<dyn GroupControl>,
    pub(super) metrics: MetricStore,
    pub(super) board: Board,
    /// Where decisions are announced to followers of `GET /v1/events`.
    pub(super) events: Arc<EventHub>,
    /// `serve --dry-run`: decide and report, never apply.
    pub(super) dry_run: bool,
    /// What the agents on each Swarm node last said.
    pub(super) agents: AgentReports,
    /// How long a pushed value or an agent's report counts.
    pub(super) metric_ttl: Duration,
    /// The one clock of the autoscaler: its windows, ages and timestamps.
    pub(super) clock: Clock,
}

/// What became of an agent's report.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct ReportOutcome {
    /// Values kept for containers of autoscaled groups.
    pub accepted: usize,
    /// Containers that are no task of a managed group (yet): not kept.
    pub ignored: Vec<String>,
    /// The services whose tasks the agent should measure: those autoscaled on CPU or memory.
    pub services: Vec<String>,
}

impl AutoscaleHandle {
    /// A handle over `control`; [`super::Autoscaler::new`] makes the loop that uses it.
    pub fn new(
        control: Arc<dyn GroupControl>,
        events: Arc<EventHub>,
        dry_run: bool,
        metric_ttl: Duration,
    ) -> Arc<Self> {
        Arc::new(Self {
            control,
            metrics: MetricStore::default(),
            board: Board::default(),
            events,
            dry_run,
            agents: AgentReports::default(),
            metric_ttl,
            clock: Clock::system(),
        })
    }

    /// The same handle on another clock (tests: one that follows tokio's paused clock).
    pub fn with_clock(self: Arc<Self>, clock: Clock) -> Arc<Self> {
        let mut handle = Arc::try_unwrap(self).unwrap_or_else(|_| panic!("with_clock before the handle is shared"));
        handle.clock = clock;
        Arc::new(handle)
    }

    /// Keeps an agent's report, or refuses it whole: an agent may report
    /// only for task containers that Swarm placed on its own node.
    pub fn report(&self, report: NodeReport) -> Result<ReportOutcome> {
        let nodes = self.control.swarm_nodes();
        if nodes.is_empty() {
            return Err(Error::Conflict(
                "this replicator's engine is not a Swarm manager: agents report to the manager's replicator".into(),
            ));
        }
        if !nodes.iter().any(|n| n.id == report.node) {
            return Err(Error::Forbidden(format!("node {} is not a node of this swarm", clip(&report.node))));
        }
        let groups = self.control.groups()?;
        let tasks: HashMap<&str, (&Group, Option<&str>)> = groups
            .iter()
            .filter(|g| g.kind() == GroupKind::Swarm)
            .flat_map(|g| g.members.iter().map(move |m| (m.id.as_str(), (g, m.node.as_deref()))))
            .collect();
        let mut ignored = Vec::new();
        for usage in &report.containers {
            match tasks.get(usage.container.as_str()) {
                Some((group, Some(node))) if *node != report.node => {
                    return Err(Error::Forbidden(format!(
                        "container {} is a task of {} on node {node}, not on node {}: an agent reports only for its own node",
                        usage.container,
                        group.name(),
                        report.node
                    )))
                }
                Some(_) => {}
                None => ignored.push(usage.container.clone()),
            }
        }
        let services = groups
            .iter()
            .filter(|g| matches!(&g.policy, Some(Ok(p)) if matches!(p.metric, Metric::Cpu | Metric::Memory)))
            .filter_map(|g| g.service.as_ref().map(|s| s.id.clone()))
            .collect();
        let accepted = report.containers.len() - ignored.len();
        let mut kept = report;
        kept.containers.retain(|u| !ignored.contains(&u.container));
        self.agents.record(kept, self.clock.now(), self.clock.unix());
        if accepted > 0 {
            self.metrics.wake();
        }
        Ok(ReportOutcome { accepted, ignored, services })
    }

    /// The nodes holding a Swarm group's tasks, and whether their agents report.
    pub fn nodes(&self, group: &Group) -> Vec<NodeView> {
        if group.kind() != GroupKind::Swarm {
            return Vec::new();
        }
        let (swarm, local) = (self.control.swarm_nodes(), self.control.local_node());
        self.agents.nodes_of(group, &swarm, &local, self.metric_ttl, self.clock.now())
    }

    /// Records every sample, or none if any is refused: `identity` must be
    /// allowed to push for each sample's group (an app only for its own), and
    /// a value is only accepted for a group that autoscales on it.
    pub async fn push(&self, samples: &[MetricSample], identity: &Identity) -> Result<()> {
        let mut resolved: HashMap<&ContainerRef, String> = HashMap::new();
        for sample in samples {
            if resolved.contains_key(&sample.container) {
                continue;
            }
            let (id, group) = self.control.locate(&sample.container).await?;
            let action = format!("push metrics for container {}", sample.container);
            identity.check_for(Permission::PushMetrics, group.name(), &action)?;
            check_pushed(&sample.container, &group, &sample.metric)?;
            resolved.insert(&sample.container, id);
        }
        let now = self.clock.now();
        for sample in samples {
            self.metrics.record(&resolved[&sample.container], &sample.metric, sample.value, now);
        }
        self.metrics.wake();
        Ok(())
    }

    /// The `autoscale` object of a group's view, `None` when it is not autoscaled.
    pub fn view(&self, group: &Group) -> Option<AutoscaleView> {
        group.policy.as_ref().map(|p| self.board.view(group.name(), p, group.running(), self.dry_run))
    }

    /// The group's recent decisions, oldest first.
    pub fn history(&self, group: &str) -> Vec<DecisionView> {
        self.board.history(group)
    }

    /// The group's size and metric over the last minutes, oldest first.
    pub fn series(&self, group: &str) -> Vec<Sample> {
        self.board.series(group)
    }
}

/// Refuses a pushed value for a group that does not autoscale on it.
fn check_pushed(container: &ContainerRef, group: &Group, metric: &str) -> Result<()> {
    let name = group.name();
    let not_autoscaled = |why: String| Error::Conflict(format!("container {container} (group {name}) {why}"));
    match &group.policy {
        Some(Ok(p)) if p.metric == Metric::Pushed(metric.to_owned()) => Ok(()),
        Some(Ok(p)) => Err(Error::Conflict(format!(
            "container {container} autoscales on {}, not on a pushed {:?}",
            describe(&p.metric),
            metric
        ))),
        Some(Err(reason)) => Err(not_autoscaled(format!("is not autoscaled: {reason}"))),
        None => Err(not_autoscaled(format!(
            "is not in an autoscaled group: label its original {}=<metric> and {}=<number>",
            policy::METRIC,
            policy::TARGET
        ))),
    }
}

fn describe(metric: &Metric) -> String {
    match metric {
        Metric::Pushed(name) => format!("the pushed metric {name:?}"),
        other => format!("{} from the engine's stats", other.name()),
    }
}
