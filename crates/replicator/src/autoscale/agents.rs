//! What `replicator agent`s report: the CPU and memory of the Swarm tasks
//! on their node. A manager's engine answers stats only for its own
//! containers, so on a multi-node swarm these reports are the autoscaler's
//! only view of the other nodes; a node whose agent falls silent is known
//! as such, so the autoscaler holds instead of deciding on half the data.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::inventory::Group;
use crate::model::NodeSummary;
use crate::rules::policy::Metric;

/// One container's usage, as an agent measured it (the way `docker stats` does).
#[derive(Debug, Clone, PartialEq)]
pub struct Usage {
    /// Full container id.
    pub container: String,
    /// Percent of one core.
    pub cpu: f64,
    /// Percent of the container's memory limit; `None` when the engine gave none.
    pub memory: Option<f64>,
}

/// One report: every managed task container the agent's node runs.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeReport {
    /// The agent's Swarm node id.
    pub node: String,
    /// Its host name, for people reading the group.
    pub hostname: String,
    /// The usage of each container it measured.
    pub containers: Vec<Usage>,
}

struct Seen {
    hostname: String,
    at: Instant,
    /// Unix seconds, for people.
    wall: i64,
}

#[derive(Default)]
struct Reports {
    nodes: HashMap<String, Seen>,
    /// By container id: its usage and when it arrived.
    usage: HashMap<String, (Usage, Instant)>,
    /// Which containers each node reported last, to drop the ones it stopped reporting.
    by_node: HashMap<String, Vec<String>>,
}

/// The latest report of every agent.
#[derive(Default)]
pub struct AgentReports {
    reports: Mutex<Reports>,
}

/// How long a node that stopped reporting is still listed as silent before
/// it is forgotten (a node removed from the swarm, or an agent undeployed).
const FORGET_AFTER: Duration = Duration::from_secs(3600);

impl AgentReports {
    /// Keeps `report` as its node's latest, replacing what the node said before.
    pub fn record(&self, report: NodeReport, now: Instant, unix: i64) {
        let mut r = self.reports.lock().expect("agent reports lock");
        for gone in r.by_node.remove(&report.node).unwrap_or_default() {
            r.usage.remove(&gone);
        }
        let ids = report.containers.iter().map(|u| u.container.clone()).collect();
        r.by_node.insert(report.node.clone(), ids);
        for usage in report.containers {
            r.usage.insert(usage.container.clone(), (usage, now));
        }
        let seen = Seen { hostname: report.hostname, at: now, wall: unix };
        r.nodes.insert(report.node, seen);
    }

    /// The container's `cpu` or `memory` value if an agent reported it at most `ttl` ago.
    pub fn usage(&self, container: &str, metric: &Metric, ttl: Duration, now: Instant) -> Option<f64> {
        let r = self.reports.lock().expect("agent reports lock");
        let (usage, at) = r.usage.get(container)?;
        if now.saturating_duration_since(*at) > ttl {
            return None;
        }
        match metric {
            Metric::Cpu => Some(usage.cpu),
            Metric::Memory => usage.memory,
            _ => None,
        }
    }

    /// Whether the node's agent reported at most `ttl` ago.
    pub fn reporting(&self, node: &str, ttl: Duration, now: Instant) -> bool {
        let r = self.reports.lock().expect("agent reports lock");
        r.nodes.get(node).is_some_and(|s| now.saturating_duration_since(s.at) <= ttl)
    }

    /// Forgets usage older than `ttl` and nodes silent for an hour.
    pub fn prune(&self, ttl: Duration, now: Instant) {
        let mut r = self.reports.lock().expect("agent reports lock");
        r.usage.retain(|_, (_, at)| now.saturating_duration_since(*at) <= ttl);
        r.nodes.retain(|_, s| now.saturating_duration_since(s.at) <= FORGET_AFTER);
        let Reports { nodes, by_node, .. } = &mut *r;
        by_node.retain(|node, _| nodes.contains_key(node));
    }

    /// Every node of the swarm (and any other a task names), with the
    /// group's tasks on it and whether its agent reports.
    pub fn nodes_of(
        &self,
        group: &Group,
        swarm: &[NodeSummary],
        local: &str,
        ttl: Duration,
        now: Instant,
    ) -> Vec<NodeView> {
        let mut tasks: std::collections::BTreeMap<&str, usize> = swarm.iter().map(|n| (n.id.as_str(), 0)).collect();
        for m in group.members.iter().filter(|m| m.state.holds_place()) {
            if let Some(node) = &m.node {
                *tasks.entry(node.as_str()).or_default() += 1;
            }
        }
        let r = self.reports.lock().expect("agent reports lock");
        tasks
            .into_iter()
            .map(|(id, tasks)| {
                let known = swarm.iter().find(|n| n.id == id);
                let seen = r.nodes.get(id);
                NodeView {
                    id: id.to_owned(),
                    hostname: known
                        .map(|n| n.hostname.clone())
                        .or_else(|| seen.map(|s| s.hostname.clone()))
                        .unwrap_or_default(),
                    state: known.map(|n| n.state.clone()).unwrap_or_else(|| "unknown".into()),
                    local: id == local,
                    tasks,
                    reporting: seen.is_some_and(|s| now.saturating_duration_since(s.at) <= ttl),
                    last_report: seen.map(|s| crate::base::clock::rfc3339(s.wall)),
                }
            })
            .collect()
    }
}

/// A node as a Swarm group's JSON shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct NodeView {
    /// Swarm's node id.
    pub id: String,
    /// The node's host name.
    pub hostname: String,
    /// `ready` or `down` (or `unknown`), as the managers see the node.
    pub state: String,
    /// The node of replicator's own engine, whose stats it reads itself.
    pub local: bool,
    /// The group's tasks placed on it (0 on a node that runs none).
    pub tasks: usize,
    /// Its agent reported within the metric TTL.
    pub reporting: bool,
    /// RFC 3339; `null` when its agent never reported.
    pub last_report: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(node: &str, containers: &[(&str, f64)]) -> NodeReport {
        NodeReport {
            node: node.into(),
            hostname: format!("host-{node}"),
            containers: containers
                .iter()
                .map(|(c, cpu)| Usage { container: (*c).into(), cpu: *cpu, memory: Some(1.0) })
                .collect(),
        }
    }

    const TTL: Duration = Duration::from_secs(15);

    #[test]
    fn a_value_counts_until_the_ttl_and_a_node_is_silent_after_it() {
        let reports = AgentReports::default();
        let t0 = Instant::now();
        reports.record(report("n1", &[("c1", 50.0)]), t0, 0);
        assert_eq!(reports.usage("c1", &Metric::Cpu, TTL, t0 + TTL), Some(50.0));
        assert_eq!(reports.usage("c1", &Metric::Memory, TTL, t0), Some(1.0));
        assert!(reports.reporting("n1", TTL, t0 + TTL));
        assert_eq!(reports.usage("c1", &Metric::Cpu, TTL, t0 + TTL * 2), None);
        assert!(!reports.reporting("n1", TTL, t0 + TTL * 2));
    }

    #[test]
    fn a_container_the_node_no_longer_reports_has_no_value() {
        let reports = AgentReports::default();
        let t0 = Instant::now();
        reports.record(report("n1", &[("c1", 50.0), ("c2", 10.0)]), t0, 0);
        reports.record(report("n1", &[("c2", 20.0)]), t0, 0);
        assert_eq!(reports.usage("c1", &Metric::Cpu, TTL, t0), None);
        assert_eq!(reports.usage("c2", &Metric::Cpu, TTL, t0), Some(20.0));
    }
}
