//! From what the engine shows (containers, services, tasks) and what
//! replicator is doing (replicas being created or removed) to groups: pure,
//! so every membership rule has its own test.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::group::{Group, Member, MemberState, ServiceRef};
use crate::model::{ContainerSummary, Health, ServiceDetails, TaskSummary};
use crate::rules::bounds::{self, Bounds, GroupIdentity, GroupKind};
use crate::rules::front::{self, FrontSpec, PortRange};
use crate::rules::labels::{self, Selector};
use crate::rules::policy;
use crate::rules::readiness::ProbeSpec;
use crate::rules::schedule::{ScheduleView, Schedules};

/// A member's readiness by replicator's own probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeStatus {
    /// `Starting` until it first passes, `Healthy` while it passes,
    /// `Unhealthy` once it fails after having passed.
    pub health: Health,
    /// Why the last probe failed, to say why a member is not ready.
    pub last_failure: Option<String>,
}

/// What this replicator manages, from the command line.
#[derive(Debug, Clone)]
pub struct Scope {
    /// Treat every container as opted in (`serve --allow-all`).
    pub allow_all: bool,
    /// `serve --max-replicas`: the largest group, the maximum when the
    /// original carries no `replicator.max`, and a ceiling that label cannot raise.
    pub default_max: u32,
    /// Manage only what carries this label.
    pub selector: Option<Selector>,
    /// Where `replicator.schedule` expressions are read (`serve --timezone`).
    pub timezone: chrono_tz::Tz,
    /// The ports a group's front may claim (`serve --front-ports`); `None`: no fronts.
    pub front_ports: Option<PortRange>,
}

impl Default for Scope {
    fn default() -> Self {
        Self { allow_all: false, default_max: 10, selector: None, timezone: chrono_tz::Tz::UTC, front_ports: None }
    }
}

impl Scope {
    /// Whether labels put a container or service in this replicator's care.
    pub fn selects(&self, labels: &BTreeMap<String, String>) -> bool {
        self.selector.as_ref().is_none_or(|s| s.matches(labels))
    }

    /// Whether a container (or service) with these labels opted in.
    pub fn enabled(&self, labels: &BTreeMap<String, String>) -> bool {
        self.allow_all || labels::is_true(labels, labels::ENABLE)
    }
}

/// A replica replicator is creating: it holds its place before the engine shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Intent {
    /// The group it is for.
    pub group: String,
    /// Its reserved name.
    pub name: String,
    /// Known once the engine has created it.
    pub id: Option<String>,
    /// The request it is part of.
    pub request: String,
    /// Made for the warm pool: a standby, not a member.
    pub standby: bool,
}

/// A Swarm service with its tasks, as last read.
#[derive(Debug, Clone, Default)]
pub struct SwarmService {
    /// The service.
    pub details: ServiceDetails,
    /// Its tasks.
    pub tasks: Vec<TaskSummary>,
}

/// Everything the groups are built from.
pub struct Inputs<'a> {
    /// Every container on the engine, by id.
    pub containers: &'a HashMap<String, ContainerSummary>,
    /// Swarm services that opted in.
    pub services: &'a BTreeMap<String, SwarmService>,
    /// Replicas being created.
    pub intents: &'a [Intent],
    /// Members on their way out: draining, then stopping.
    pub leaving: &'a HashMap<String, MemberState>,
    /// Standbys replicator is starting and will pause once ready.
    pub warming: &'a HashSet<String>,
    /// What replicator's own readiness probes found.
    pub probes: &'a HashMap<String, ProbeStatus>,
    /// Now, for the schedules.
    pub now: chrono::DateTime<chrono::Utc>,
}

/// Whether a container's labels can make it a member of a plain or compose group.
pub fn may_be_member(labels: &BTreeMap<String, String>) -> bool {
    !labels.contains_key(labels::SWARM_SERVICE_ID)
        && !bounds::is_compose_oneoff(labels)
        && (labels.contains_key(labels::ENABLE)
            || labels.contains_key(labels::GROUP)
            || bounds::compose_service(labels).is_some())
}

/// Every managed group, by name.
pub fn groups(scope: &Scope, inputs: &Inputs<'_>) -> Vec<Group> {
    let mut groups = container_groups(scope, inputs);
    groups.extend(inputs.services.values().filter_map(|s| swarm_group(scope, s)));
    groups.sort_by(|a, b| a.name().cmp(b.name()));
    void_front_claims(&mut groups, scope.front_ports);
    groups
}

/// A front claiming a port outside `--front-ports`, or one another group
/// claims, makes its group refuse with the reason, like any malformed label.
fn void_front_claims(groups: &mut [Group], range: Option<PortRange>) {
    let claims: Vec<(&str, u16)> = groups.iter().filter_map(|g| Some((g.name(), g.front.as_ref()?.listen))).collect();
    let void = front::void_claims(&claims, range);
    for g in groups.iter_mut() {
        if let Some(reason) = void.get(g.name()) {
            g.front = None;
            if g.bounds.is_ok() {
                g.bounds = Err(reason.clone());
            }
        }
    }
}

fn container_groups(scope: &Scope, inputs: &Inputs<'_>) -> Vec<Group> {
    let mut buckets: BTreeMap<String, Vec<&ContainerSummary>> = BTreeMap::new();
    for c in inputs.containers.values() {
        if may_be_member(&c.labels) && scope.selects(&c.labels) {
            let identity = bounds::identify(&c.id, &c.name, &c.labels);
            // A name outside the one rule is no group: it reaches no log, metric or lock.
            if crate::base::id::GroupName::parse(&identity.name).is_ok() {
                buckets.entry(identity.name).or_default().push(c);
            }
        }
    }
    buckets
        .into_values()
        .filter(|members| members.iter().any(|c| scope.enabled(&c.labels)))
        .map(|members| container_group(scope, inputs, with_originals(inputs, members)))
        .collect()
}

/// Adds the originals replicas point back to that carry no group label
/// themselves (replicated under `--allow-all`).
fn with_originals<'a>(inputs: &Inputs<'a>, mut members: Vec<&'a ContainerSummary>) -> Vec<&'a ContainerSummary> {
    let sources: HashSet<&str> =
        members.iter().filter_map(|c| c.labels.get(labels::SOURCE)).map(String::as_str).collect();
    for source in sources {
        if !members.iter().any(|c| c.id == source) {
            if let Some(original) =
                inputs.containers.get(source).filter(|o| !o.labels.contains_key(labels::SWARM_SERVICE_ID))
            {
                members.push(original);
            }
        }
    }
    members
}

fn is_original(c: &ContainerSummary) -> bool {
    c.labels.get(labels::SOURCE).is_none_or(|s| s.is_empty())
}

fn container_group(scope: &Scope, inputs: &Inputs<'_>, mut members: Vec<&ContainerSummary>) -> Group {
    members.sort_by(|a, b| (a.created, &a.name, &a.id).cmp(&(b.created, &b.name, &b.id)));
    let originals: Vec<&ContainerSummary> = members.iter().copied().filter(|c| is_original(c)).collect();
    // Replicas carry copies of the original's labels: they speak for it when it is gone.
    let rule_holders = if originals.is_empty() { members.iter().rev().take(1).copied().collect() } else { originals };
    let first = rule_holders[0];
    let identity = bounds::identify(&first.id, &first.name, &first.labels);
    let (bounds, conflict) = rules_of(&rule_holders, scope.default_max);
    let mut policy = policy_of(&first.labels, &bounds);
    // A group may sleep by its own labels; a schedule raising its minimum wakes it.
    let may_sleep = bounds.as_ref().is_ok_and(|b| b.min == 0);
    let (bounds, schedule) = scheduled(&first.labels, bounds, scope.timezone, inputs.now);
    if let (Ok(b), Some(Ok(p))) = (&bounds, policy.as_mut()) {
        p.min = p.min.max(b.min).min(p.max);
    }
    // Each rule below either reads or makes the group refuse with the first reason.
    let labels = &first.labels;
    let (warm, bounds) = also_valid(warm_of(labels), bounds);
    let (wake, bounds) = also_valid(labels::wake_route(labels).map_err(|e| e.to_string()), bounds);
    let (probe, bounds) = also_valid(ProbeSpec::from_labels(labels).map_err(|e| e.to_string()), bounds);
    let (front, bounds) = also_valid(FrontSpec::from_labels(labels).map_err(|e| e.to_string()), bounds);
    let ((sleep_after, wake_to), bounds) = sleep_rules(labels, may_sleep, bounds);
    let probed = probe.is_some().then_some(inputs.probes);
    let mut list: Vec<Member> = members.iter().map(|c| member_of(c, inputs.leaving, probed)).collect();
    add_intents(&mut list, &identity, inputs);
    let standby = |m: &Member| {
        let labelled = members.iter().any(|c| c.id == m.id && c.labels.contains_key(labels::STANDBY));
        let intended = inputs.intents.iter().any(|i| i.standby && i.group == identity.name && i.name == m.name);
        !m.original
            && (intended
                || inputs.warming.contains(&m.id)
                || (m.state == MemberState::Paused && (warm > 0 || labelled)))
    };
    let (standbys, mut list): (Vec<Member>, Vec<Member>) = list.into_iter().partition(|m| standby(m));
    mark_sleeping(&mut list, may_sleep);
    Group {
        policy,
        conflict,
        warm,
        standbys,
        schedule,
        wake,
        probe,
        sleep_after,
        front,
        wake_to,
        ..Group::new(identity, bounds, list)
    }
}

/// `replicator.sleep.after` (only for a group that may sleep) and
/// `replicator.wake.replicas` (at most the group's max), with the bounds.
fn sleep_rules(
    labels: &BTreeMap<String, String>,
    may_sleep: bool,
    bounds: Result<Bounds, String>,
) -> ((Option<std::time::Duration>, Option<u32>), Result<Bounds, String>) {
    let sleep_after = labels::sleep_after(labels).map_err(|e| e.to_string()).and_then(|after| match after {
        Some(_) if !may_sleep => {
            Err(format!("label {} needs {}=0: only a group that may sleep can", labels::SLEEP_AFTER, labels::MIN))
        }
        after => Ok(after),
    });
    let (sleep_after, bounds) = also_valid(sleep_after, bounds);
    let wake_to = labels::wake_replicas(labels).map_err(|e| e.to_string()).and_then(|to| match (to, &bounds) {
        (Some(n), Ok(b)) if n > b.max => Err(format!(
            "label {}={n} is above the group's max ({}), so a wake could never reach it",
            labels::WAKE_REPLICAS,
            b.max
        )),
        (to, _) => Ok(to),
    });
    let (wake_to, bounds) = also_valid(wake_to, bounds);
    ((sleep_after, wake_to), bounds)
}

/// A rule read from the labels, and the bounds: a malformed rule (the
/// first one) makes the group refuse with its reason, and counts as absent.
fn also_valid<T: Default>(rule: Result<T, String>, bounds: Result<Bounds, String>) -> (T, Result<Bounds, String>) {
    match (rule, bounds) {
        (Ok(rule), bounds) => (rule, bounds),
        (Err(reason), Ok(_)) => (T::default(), Err(reason)),
        (Err(_), bounds) => (T::default(), bounds),
    }
}

/// Bounds with the minimum raised by the schedules active `now`, and what
/// the group's JSON says of them (`None` without schedules).
fn scheduled(
    labels: &BTreeMap<String, String>,
    bounds: Result<Bounds, String>,
    timezone: chrono_tz::Tz,
    now: chrono::DateTime<chrono::Utc>,
) -> (Result<Bounds, String>, Option<ScheduleView>) {
    let schedules = match (bounds.is_ok(), Schedules::from_labels(labels)) {
        (true, Ok(s)) if !s.is_empty() => s,
        (true, Err(reason)) => return (Err(reason), None),
        _ => return (bounds, None),
    };
    let view = schedules.view(now, timezone);
    let bounds = bounds.map(|b| Bounds { min: b.min.max(view.min.unwrap_or(0)).min(b.max), ..b });
    (bounds, Some(view))
}

/// A group whose min is 0 and whose replicas are all gone sleeps: its
/// originals, paused or stopped, are asleep rather than members down.
fn mark_sleeping(list: &mut [Member], may_sleep: bool) {
    if !may_sleep || list.iter().any(|m| !m.original && m.state.holds_place()) {
        return;
    }
    let resting = |s: MemberState| matches!(s, MemberState::Paused | MemberState::Exited | MemberState::Created);
    for m in list.iter_mut().filter(|m| m.original && resting(m.state)) {
        m.state = MemberState::Sleeping;
    }
}

/// `replicator.warm`: 0 to [`labels::MAX_WARM`] standbys, 0 when absent.
fn warm_of(labels: &BTreeMap<String, String>) -> Result<u32, String> {
    let Some(raw) = labels.get(labels::WARM) else { return Ok(0) };
    raw.trim().parse::<u32>().ok().filter(|n| *n <= labels::MAX_WARM).ok_or_else(|| {
        format!("{}={:?} is not a count from 0 to {}", labels::WARM, crate::base::quote::clip(raw), labels::MAX_WARM)
    })
}

/// Bounds every original agrees to (the strictest), and a note when they disagree.
fn rules_of(holders: &[&ContainerSummary], default_max: u32) -> (Result<Bounds, String>, Option<String>) {
    let mut all = Vec::new();
    for c in holders {
        if let Err(reason) = bounds::check_group_label(&c.labels) {
            return (Err(reason), None);
        }
        match Bounds::from_labels(&c.labels, default_max) {
            Ok(b) => all.push(b),
            Err(reason) => return (Err(format!("{reason} (on {})", c.name)), None),
        }
    }
    let distinct: HashSet<Bounds> = all.iter().copied().collect();
    let Some(strictest) = Bounds::strictest(&all) else {
        return (Err("the originals' replicator.min/max labels leave no size every one of them allows".into()), None);
    };
    let conflict = (distinct.len() > 1).then(|| {
        let each: Vec<String> =
            holders.iter().zip(&all).map(|(c, b)| format!("{} [{}, {}]", c.name, b.min, b.max)).collect();
        format!(
            "the originals disagree on replicator.min/max ({}); the strictest bounds [{}, {}] apply",
            each.join(", "),
            strictest.min,
            strictest.max
        )
    });
    (Ok(strictest), conflict)
}

fn policy_of(
    labels: &BTreeMap<String, String>,
    bounds: &Result<Bounds, String>,
) -> Option<Result<policy::Policy, String>> {
    match bounds {
        Ok(b) => policy::read(labels, *b).transpose(),
        Err(reason) => {
            labels.contains_key(policy::METRIC).then(|| Err(format!("the group's bounds are invalid: {reason}")))
        }
    }
}

/// `probes`: the group's probe results, when it declares a probe (a member
/// not probed yet is starting by it).
fn member_of(
    c: &ContainerSummary,
    leaving: &HashMap<String, MemberState>,
    probes: Option<&HashMap<String, ProbeStatus>>,
) -> Member {
    let state = match (MemberState::from_engine(c.state), leaving.get(&c.id)) {
        (MemberState::Exited, _) => MemberState::Exited,
        (_, Some(leaving)) => *leaving,
        (s, None) => s,
    };
    Member {
        id: c.id.clone(),
        name: c.name.clone(),
        state,
        health: c.health,
        probe: probes.map(|p| p.get(&c.id).map_or(Health::Starting, |s| s.health)),
        original: is_original(c),
        created: c.created,
        networks: c.networks.clone(),
        published: c.published.clone(),
        node: None,
    }
}

/// Replicas being created appear (or are shown as starting) before the engine reports them.
fn add_intents(list: &mut Vec<Member>, identity: &GroupIdentity, inputs: &Inputs<'_>) {
    for intent in inputs.intents.iter().filter(|i| i.group == identity.name) {
        match list.iter_mut().find(|m| m.name == intent.name) {
            Some(m) if m.state == MemberState::Created => m.state = MemberState::Starting,
            Some(_) => {}
            None => list.push(Member {
                id: intent.id.clone().unwrap_or_default(),
                name: intent.name.clone(),
                state: if intent.id.is_some() { MemberState::Starting } else { MemberState::Creating },
                health: None,
                probe: None,
                original: false,
                created: i64::MAX,
                networks: BTreeMap::new(),
                published: Vec::new(),
                node: None,
            }),
        }
    }
}

fn swarm_group(scope: &Scope, service: &SwarmService) -> Option<Group> {
    let s = &service.details;
    if !scope.selects(&s.labels) || !scope.enabled(&s.labels) {
        return None;
    }
    let bounds = bounds::check_group_label(&s.labels)
        .and_then(|()| Bounds::from_labels(&s.labels, scope.default_max))
        .and_then(|b| match b.min {
            0 => {
                Err(format!("{}=0 (sleeping at zero) is for plain and compose groups, not Swarm services", labels::MIN))
            }
            _ => Ok(b),
        });
    let policy = policy_of(&s.labels, &bounds);
    // Its tasks' addresses on the service's networks are what a front connects to.
    let (front, bounds) = also_valid(FrontSpec::from_labels(&s.labels).map_err(|e| e.to_string()), bounds);
    let members = service
        .tasks
        .iter()
        .map(|t| Member {
            id: if t.container_id.is_empty() { t.id.clone() } else { t.container_id.clone() },
            name: format!("{}.{}.{}", s.name, t.slot.unwrap_or_default(), t.id),
            state: task_state(&t.state),
            health: None,
            probe: None,
            original: false,
            created: t.created,
            networks: t.networks.clone(),
            published: Vec::new(),
            node: (!t.node_id.is_empty()).then(|| t.node_id.clone()),
        })
        .collect();
    let identity = GroupIdentity {
        name: s.name.clone(),
        kind: GroupKind::Swarm,
        original_id: s.id.clone(),
        naming: bounds::Naming::Suffix(s.name.clone()),
    };
    let service =
        ServiceRef { id: s.id.clone(), replicas: s.replicas, rolling_out: s.rolling_out().map(str::to_owned) };
    Some(Group { policy, service: Some(service), front, ..Group::new(identity, bounds, members) })
}

/// Swarm's task states, read as member states: a task on its way counts.
fn task_state(state: &str) -> MemberState {
    match state {
        "running" => MemberState::Running,
        "complete" | "shutdown" | "failed" | "rejected" | "orphaned" | "remove" => MemberState::Exited,
        _ => MemberState::Starting,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::RunState;

    fn container(id: &str, name: &str, created: i64, labels: &[(&str, &str)]) -> ContainerSummary {
        ContainerSummary {
            id: id.into(),
            name: name.into(),
            state: RunState::Running,
            labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            created,
            ..Default::default()
        }
    }

    fn build(scope: &Scope, containers: Vec<ContainerSummary>, intents: &[Intent], stopping: &[&str]) -> Vec<Group> {
        let containers = containers.into_iter().map(|c| (c.id.clone(), c)).collect();
        let leaving = stopping.iter().map(|s| (s.to_string(), MemberState::Stopping)).collect();
        groups(
            scope,
            &Inputs {
                containers: &containers,
                services: &BTreeMap::new(),
                intents,
                leaving: &leaving,
                warming: &HashSet::new(),
                probes: &HashMap::new(),
                now: crate::base::clock::utc_now(),
            },
        )
    }

    const ENABLED: (&str, &str) = ("replicator.enable", "true");

    #[test]
    fn a_services_front_connects_to_its_tasks_on_their_networks() {
        let labels = [ENABLED, ("replicator.front.port", "7001"), ("replicator.front.target", "6379")];
        let task = |slot: u64, ip: &str| TaskSummary {
            id: format!("t{slot}"),
            state: "running".into(),
            slot: Some(slot),
            networks: [("rs_default".to_owned(), ip.to_owned())].into(),
            ..Default::default()
        };
        let details = ServiceDetails {
            id: "s".into(),
            name: "cache".into(),
            labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            replicas: Some(2),
            ..Default::default()
        };
        let services =
            [("s".to_owned(), SwarmService { details, tasks: vec![task(1, "10.0.1.5"), task(2, "10.0.1.6")] })];
        let scope = Scope { front_ports: Some(PortRange::parse("7000-7999").unwrap()), ..Scope::default() };
        let g = groups(
            &scope,
            &Inputs {
                containers: &HashMap::new(),
                services: &services.into_iter().collect(),
                intents: &[],
                leaving: &HashMap::new(),
                warming: &HashSet::new(),
                probes: &HashMap::new(),
                now: crate::base::clock::utc_now(),
            },
        );
        let front = g[0].front.as_ref().expect("the service's front");
        assert_eq!((front.listen, front.target), (7001, 6379));
        let addresses: Vec<&str> = g[0].members.iter().map(|m| m.networks["rs_default"].as_str()).collect();
        assert_eq!(addresses, ["10.0.1.5", "10.0.1.6"]);
    }

    #[test]
    fn an_enabled_container_and_its_replicas_form_a_group() {
        let g = build(
            &Scope::default(),
            vec![
                container("o", "web", 1, &[ENABLED]),
                container("r", "web-2", 2, &[ENABLED, ("replicator.group", "web"), ("replicator.source", "o")]),
                container("x", "other", 1, &[]),
            ],
            &[],
            &[],
        );
        assert_eq!(g.len(), 1);
        assert_eq!(g[0].name(), "web");
        assert_eq!(
            g[0].members.iter().map(|m| (m.name.as_str(), m.original)).collect::<Vec<_>>(),
            [("web", true), ("web-2", false)]
        );
    }

    #[test]
    fn a_group_needs_one_enabled_member() {
        let g = build(&Scope::default(), vec![container("o", "web", 1, &[("replicator.enable", "yes")])], &[], &[]);
        assert!(g.is_empty(), "'yes' is not a boolean: not enabled");
        let all = Scope { allow_all: true, ..Scope::default() };
        let g = build(&all, vec![container("o", "web", 1, &[("replicator.group", "web")])], &[], &[]);
        assert_eq!(g.len(), 1);
    }

    #[test]
    fn an_unlabelled_original_joins_through_its_replicas() {
        let all = Scope { allow_all: true, ..Scope::default() };
        let g = build(
            &all,
            vec![
                container("o", "web", 1, &[]),
                container("r", "web-2", 2, &[("replicator.group", "web"), ("replicator.source", "o")]),
            ],
            &[],
            &[],
        );
        assert_eq!(g[0].members.len(), 2);
        assert!(g[0].members[0].original);
    }

    #[test]
    fn the_selector_leaves_other_containers_alone() {
        let scope = Scope { selector: Some(Selector::parse("team=a").unwrap()), ..Scope::default() };
        let g = build(
            &scope,
            vec![container("o", "web", 1, &[ENABLED]), container("p", "api", 1, &[ENABLED, ("team", "a")])],
            &[],
            &[],
        );
        assert_eq!(g.iter().map(Group::name).collect::<Vec<_>>(), ["api"]);
    }

    #[test]
    fn malformed_bounds_make_the_group_refuse_changes_with_the_reason() {
        let g =
            build(&Scope::default(), vec![container("o", "web", 1, &[ENABLED, ("replicator.max", "-1")])], &[], &[]);
        assert!(g[0].bounds.as_ref().unwrap_err().contains("replicator.max"));
        let autoscaled = build(
            &Scope::default(),
            vec![container("o", "web", 1, &[ENABLED, ("replicator.max", "0"), ("replicator.autoscale.metric", "cpu")])],
            &[],
            &[],
        );
        assert!(matches!(&autoscaled[0].policy, Some(Err(e)) if e.contains("bounds")));
    }

    #[test]
    fn disagreeing_originals_get_the_strictest_bounds_and_a_note() {
        let g = build(
            &Scope::default(),
            vec![
                container("a", "a", 1, &[ENABLED, ("replicator.group", "g"), ("replicator.max", "2")]),
                container("b", "b", 2, &[ENABLED, ("replicator.group", "g"), ("replicator.max", "6")]),
            ],
            &[],
            &[],
        );
        assert_eq!(g[0].bounds, Ok(Bounds { min: 1, max: 2 }));
        assert!(g[0].conflict.as_ref().unwrap().contains("[1, 2] apply"));
    }

    #[test]
    fn a_group_name_outside_the_one_rule_is_no_group_however_it_was_derived() {
        let label = container("o", "web", 1, &[ENABLED, ("replicator.group", "a/b")]);
        let compose = [("com.docker.compose.project", "shop\"\nx"), ("com.docker.compose.service", "web")];
        let forged = container("c", "shop-web-1", 1, &[ENABLED, compose[0], compose[1]]);
        let g = build(&Scope::default(), vec![label, forged], &[], &[]);
        assert!(g.is_empty(), "no log, metric or lock ever sees such a name: {g:?}");
    }

    #[test]
    fn a_group_with_a_probe_has_members_starting_by_it_until_probed() {
        let probed = [ENABLED, ("replicator.ready", "tcp:80")];
        let g = build(&Scope::default(), vec![container("o", "web", 1, &probed)], &[], &[]);
        assert_eq!(g[0].probe.as_ref().map(|p| p.port), Some(80));
        assert_eq!(g[0].members[0].probe, Some(Health::Starting));
        assert!(!g[0].members[0].ready(), "running is not enough once a probe is declared");
        let plain = build(&Scope::default(), vec![container("o", "web", 1, &[ENABLED])], &[], &[]);
        assert_eq!(plain[0].members[0].probe, None);
        assert!(plain[0].members[0].ready());
    }

    #[test]
    fn a_malformed_probe_or_quiet_period_makes_the_group_refuse_with_the_reason() {
        let bad_probe = [ENABLED, ("replicator.ready", "tcp:none")];
        let g = build(&Scope::default(), vec![container("o", "web", 1, &bad_probe)], &[], &[]);
        assert!(g[0].bounds.as_ref().unwrap_err().contains("replicator.ready"));
        let awake_only = [ENABLED, ("replicator.sleep.after", "1m")];
        let g = build(&Scope::default(), vec![container("o", "web", 1, &awake_only)], &[], &[]);
        assert!(g[0].bounds.as_ref().unwrap_err().contains("replicator.min=0"), "{:?}", g[0].bounds);
        let sleepy = [ENABLED, ("replicator.min", "0"), ("replicator.sleep.after", "1m")];
        let g = build(&Scope::default(), vec![container("o", "web", 1, &sleepy)], &[], &[]);
        assert_eq!(g[0].sleep_after, Some(std::time::Duration::from_secs(60)));
    }

    #[test]
    fn compose_containers_join_their_service_and_one_offs_never_do() {
        let compose = [("com.docker.compose.project", "shop"), ("com.docker.compose.service", "web")];
        let mut enabled = compose.to_vec();
        enabled.push(ENABLED);
        let mut oneoff = compose.to_vec();
        oneoff.push(("com.docker.compose.oneoff", "True"));
        let g = build(
            &Scope::default(),
            vec![
                container("a", "shop_web_1", 1, &enabled),
                container("b", "shop_web_2", 2, &compose),
                container("c", "shop_web_run_1", 3, &oneoff),
            ],
            &[],
            &[],
        );
        assert_eq!(g[0].name(), "shop_web");
        assert_eq!(g[0].kind(), GroupKind::Compose);
        assert_eq!(g[0].members.len(), 2);
    }

    #[test]
    fn replicas_being_made_or_removed_are_counted_from_memory() {
        let intents = [
            Intent { group: "web".into(), name: "web-2".into(), id: None, request: "q".into(), standby: false },
            Intent {
                group: "web".into(),
                name: "web-3".into(),
                id: Some("r3".into()),
                request: "q".into(),
                standby: false,
            },
        ];
        let mut created =
            container("r3", "web-3", 3, &[ENABLED, ("replicator.group", "web"), ("replicator.source", "o")]);
        created.state = RunState::Created;
        let leaving = container("r4", "web-4", 4, &[ENABLED, ("replicator.group", "web"), ("replicator.source", "o")]);
        let g =
            build(&Scope::default(), vec![container("o", "web", 1, &[ENABLED]), created, leaving], &intents, &["r4"]);
        let states: Vec<(&str, MemberState)> = g[0].members.iter().map(|m| (m.name.as_str(), m.state)).collect();
        assert_eq!(
            states,
            [
                ("web", MemberState::Running),
                ("web-3", MemberState::Starting),
                ("web-4", MemberState::Stopping),
                ("web-2", MemberState::Creating)
            ]
        );
        assert_eq!(g[0].size(), 3, "the original, one starting, one creating; not the one stopping");
    }
}
