//! Prometheus metrics: one registry, written by the service, the engine
//! adapter and the autoscaler, read by the admin listener's `/metrics`.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use std::fmt::Write as _;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// A label value from outside (a group's name), escaped as OpenMetrics
/// asks: the library writes values as they are, so a `"` or a newline could
/// otherwise end the value and forge a line of `/metrics`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, PartialOrd, Ord)]
pub struct LabelText(String);

impl From<&str> for LabelText {
    fn from(text: &str) -> Self {
        Self(text.to_owned())
    }
}

impl From<String> for LabelText {
    fn from(text: String) -> Self {
        Self(text)
    }
}

impl EncodeLabelValue for LabelText {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> std::fmt::Result {
        for c in self.0.chars() {
            match c {
                '\\' => encoder.write_str("\\\\")?,
                '"' => encoder.write_str("\\\"")?,
                '\n' => encoder.write_str("\\n")?,
                c => encoder.write_char(c)?,
            }
        }
        Ok(())
    }
}

/// Labels of a replication: its group and how it ended.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GroupOutcome {
    /// The group.
    pub group: LabelText,
    /// `created`, `limit`, `refused` or `failed`.
    pub outcome: String,
}

/// The label of a per-group series.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GroupLabel {
    /// The group.
    pub group: LabelText,
}

/// Labels of an autoscaler decision.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DecisionLabels {
    /// The group.
    pub group: LabelText,
    /// `up`, `down` or `none`.
    pub direction: String,
}

/// The label of a failed engine call.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorKind {
    /// `unavailable`, `timeout`, `rejected`...
    pub kind: String,
}

/// The label of an engine call.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OpLabel {
    /// `list containers`, `inspect container`...
    pub op: String,
}

/// Why a TLS handshake failed: a handful of values, never client input.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HandshakeReason {
    /// One of a fixed set of reasons.
    pub reason: String,
}

/// Which control loop a job belongs to.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WorkerLabel {
    /// `autoscaler` or `keeper`.
    pub worker: String,
}

/// A refused request: its route, and the kind of identity that asked.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeniedLabels {
    /// The route's template (`/v1/groups/{name}/replicas`).
    pub route: String,
    /// `operator`, `app`, `balancer`, `agent`, `alertmanager`, `unbound` or `invalid`.
    pub identity: String,
}

/// Which ceiling refused a creation.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CeilingLabel {
    /// `containers` (`--max-containers`) or `rate` (`--max-creations-per-minute`).
    pub ceiling: String,
}

/// A phase of new capacity, and how the capacity came.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PhaseLabels {
    /// `cold`, `standby`, `wake-from-pause` or `wake-from-stop`.
    pub how: String,
    /// `create`, `start` or `ready` (running → ready); for a request held by
    /// the wake listener, `held` (arrival → forwarded) or `first_byte`.
    pub phase: String,
}

/// What happened to a request at the wake listener.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WakeEvent {
    /// `held`, `forwarded`, `shed`, `timed_out`, `ignored` or `activity`.
    pub event: String,
}

/// A member of a group with a front.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MemberLabels {
    /// The group.
    pub group: LabelText,
    /// The member's container name.
    pub member: LabelText,
}

/// What happened to connections at a group's front.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FrontEvent {
    /// The group.
    pub group: LabelText,
    /// `accepted`, `held` or `refused`.
    pub event: String,
}

/// Bytes through a group's front, one way.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FrontBytes {
    /// The group.
    pub group: LabelText,
    /// `in` (client to member) or `out` (member to client).
    pub direction: String,
}

/// Every value of a front event's `event` label.
const FRONT_EVENTS: [&str; 3] = ["accepted", "held", "refused"];

/// How long a vanished group's counters and histograms stay by default.
pub const SERIES_GRACE: Duration = Duration::from_secs(300);
/// Every value of a replication's `outcome` label.
const OUTCOMES: [&str; 4] = ["created", "limit", "refused", "failed"];
/// Every value of a decision's `direction` label.
const DIRECTIONS: [&str; 3] = ["up", "down", "none"];

type HistogramFamily = Family<GroupOutcome, Histogram, fn() -> Histogram>;

/// Which groups have series, and since when the ones gone are gone.
#[derive(Default)]
struct GroupSeries {
    seen: HashSet<String>,
    gone: HashMap<String, Instant>,
    /// How long a vanished group's counters and histograms stay for a last scrape.
    grace: Option<Duration>,
}

/// Every series replicator exports, in one registry.
pub struct Telemetry {
    registry: Mutex<Registry>,
    groups: Mutex<GroupSeries>,
    /// Replication requests by group and outcome.
    pub replications: Family<GroupOutcome, Counter>,
    /// Time to answer a replication request.
    pub replication_seconds: HistogramFamily,
    /// Running members of each group.
    pub group_size: Family<GroupLabel, Gauge>,
    /// Size the autoscaler wants for each group.
    pub group_desired: Family<GroupLabel, Gauge>,
    /// Autoscaler evaluations by direction.
    pub decisions: Family<DecisionLabels, Counter>,
    /// Failed engine calls by kind.
    pub engine_errors: Family<ErrorKind, Counter>,
    /// Engine calls by operation.
    pub engine_calls: Family<OpLabel, Counter>,
    /// Refused TLS handshakes on the API listener, by reason.
    pub tls_handshake_failures: Family<HandshakeReason, Counter>,
    /// TLS reloads (SIGHUP or a changed file) that failed, leaving the last good configuration.
    pub tls_reload_failures: Counter,
    /// 1 while this process acts (scales, replicates, runs the autoscaler), else 0.
    pub leader: Gauge,
    /// Times this process began or stopped acting after it started (a takeover, either side).
    pub leader_changes: Counter,
    /// API connections closed by the server: their certificate no longer verifies, or they grew too old.
    pub tls_connections_closed: Family<HandshakeReason, Counter>,
    /// Per-group jobs of a control loop that panicked.
    pub job_panics: Family<WorkerLabel, Counter>,
    /// Requests refused for want of a permission, by route and kind of identity.
    pub access_denied: Family<DeniedLabels, Counter>,
    /// Creations refused by a ceiling.
    pub ceiling_refusals: Family<CeilingLabel, Counter>,
    /// Each phase of new capacity, by how it came.
    pub capacity_phases: Family<PhaseLabels, Histogram, fn() -> Histogram>,
    /// Requests at the wake listener, by what happened to them.
    pub wake_requests: Family<WakeEvent, Counter>,
    /// Open connections through the front, per member.
    pub front_open: Family<MemberLabels, Gauge>,
    /// Connections at each group's front, by what happened to them.
    pub front_events: Family<FrontEvent, Counter>,
    /// Bytes through each group's front, by direction.
    pub front_bytes: Family<FrontBytes, Counter>,
}

fn latency_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.005, 2.0, 14))
}

impl Default for Telemetry {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("replicator");
        Self {
            replications: add(&mut registry, "replications", "Replication requests by group and outcome", Family::default()),
            replication_seconds: add(&mut registry, "replication_duration_seconds", "Time to answer a replication request", Family::new_with_constructor(latency_buckets)),
            group_size: add(&mut registry, "group_size", "Running members of each group", Family::default()),
            group_desired: add(&mut registry, "group_desired_size", "Size the autoscaler wants for each group", Family::default()),
            decisions: add(&mut registry, "autoscaler_decisions", "Autoscaler evaluations by direction", Family::default()),
            engine_errors: add(&mut registry, "engine_errors", "Failed engine calls by kind", Family::default()),
            engine_calls: add(&mut registry, "engine_calls", "Engine calls by operation", Family::default()),
            tls_handshake_failures: add(&mut registry, "tls_handshake_failures", "Refused TLS handshakes on the API listener, by reason", Family::default()),
            tls_reload_failures: add(&mut registry, "tls_reload_failures", "TLS reloads (SIGHUP or a changed file) that failed; the last good configuration stays and `/healthz` answers 503 until a reload succeeds", Counter::default()),
            leader: add(&mut registry, "leader", "1 while this process acts (scales, replicates, runs the autoscaler and the keeper), 0 while it waits for its predecessor or after it handed over", Gauge::default()),
            leader_changes: add(&mut registry, "leader_changes", "Times this process began or stopped acting after it started: a takeover counts one on each side", Counter::default()),
            tls_connections_closed: add(&mut registry, "tls_connections_closed", "API connections the server closed, by reason: revoked (the certificate no longer verifies) or max_age", Family::default()),
            job_panics: add(&mut registry, "job_panics", "Per-group jobs of a control loop that panicked (their group is handled again next round)", Family::default()),
            access_denied: add(&mut registry, "access_denied", "API requests refused for want of a permission, by route and kind of identity", Family::default()),
            ceiling_refusals: add(&mut registry, "ceiling_refusals", "Creations refused by serve --max-containers or --max-creations-per-minute", Family::default()),
            capacity_phases: add(&mut registry, "capacity_phase_duration_seconds", "Each phase of new capacity, by how it came", Family::new_with_constructor(latency_buckets)),
            wake_requests: add(&mut registry, "wake_requests", "Requests at the wake listener, by what happened to them", Family::default()),
            front_open: add(&mut registry, "front_open_connections", "Open connections through the front, per member", Family::default()),
            front_events: add(&mut registry, "front_connections", "Connections at each group's front, by what happened to them", Family::default()),
            front_bytes: add(&mut registry, "front_bytes", "Bytes through each group's front, by direction", Family::default()),
            groups: Mutex::default(),
            registry: Mutex::new(registry),
        }
    }
}

/// Registers `metric` under `name` and hands it back, so each metric of
/// [`Telemetry`] is declared and registered in one line.
fn add<M: prometheus_client::registry::Metric + Clone>(
    registry: &mut Registry,
    name: &str,
    help: &str,
    metric: M,
) -> M {
    registry.register(name, help, metric.clone());
    metric
}

impl Telemetry {
    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        let registry = self.registry.lock().expect("registry lock");
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("writing to a String cannot fail");
        text
    }

    /// Records how long one phase of new capacity took.
    pub fn capacity_phase(&self, how: &str, phase: &str, took: Duration) {
        let labels = PhaseLabels { how: how.to_owned(), phase: phase.to_owned() };
        self.capacity_phases.get_or_create(&labels).observe(took.as_secs_f64());
    }

    /// Counts one request at the wake listener.
    pub fn wake_request(&self, event: &str) {
        self.wake_requests.get_or_create(&WakeEvent { event: event.to_owned() }).inc();
    }

    /// Counts one replication request and its duration.
    pub fn replication(&self, group: &str, outcome: &str, seconds: f64) {
        let labels = GroupOutcome { group: group.into(), outcome: outcome.to_owned() };
        self.seen(group);
        self.replications.get_or_create(&labels).inc();
        self.replication_seconds.get_or_create(&labels).observe(seconds);
    }

    /// Sets a group's running size.
    pub fn group_size(&self, group: &str, size: i64) {
        self.set_group_gauge(&self.group_size, group, size);
    }

    /// Sets the size the autoscaler wants for a group.
    pub fn group_desired(&self, group: &str, size: i64) {
        self.set_group_gauge(&self.group_desired, group, size);
    }

    fn set_group_gauge(&self, family: &Family<GroupLabel, Gauge>, group: &str, value: i64) {
        self.seen(group);
        family.get_or_create(&GroupLabel { group: group.into() }).set(value);
    }

    /// Counts one autoscaler decision (`up`, `down` or `none`).
    pub fn decision(&self, group: &str, direction: &str) {
        self.seen(group);
        self.decisions.get_or_create(&DecisionLabels { group: group.into(), direction: direction.to_owned() }).inc();
    }

    /// How long a vanished group's counters and histograms are kept (for a
    /// last scrape) before they go; gauges go at once. Default 5 minutes.
    pub fn set_series_grace(&self, grace: Duration) {
        self.groups().grace = Some(grace);
    }

    fn groups(&self) -> std::sync::MutexGuard<'_, GroupSeries> {
        self.groups.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn seen(&self, group: &str) {
        let mut groups = self.groups();
        groups.gone.remove(group);
        if !groups.seen.contains(group) {
            groups.seen.insert(group.to_owned());
        }
    }

    /// Drops the series of groups no longer `present`: their gauges at once
    /// (a dashboard must not show members that are gone), their counters
    /// and histograms once the grace has passed. Memory levels off however
    /// many groups come and go.
    pub fn prune_groups(&self, present: &HashSet<&str>, now: Instant) {
        let mut groups = self.groups();
        let grace = groups.grace.unwrap_or(SERIES_GRACE);
        let vanished: Vec<String> = groups.seen.iter().filter(|g| !present.contains(g.as_str())).cloned().collect();
        for group in vanished {
            let label = GroupLabel { group: group.as_str().into() };
            self.group_size.remove(&label);
            self.group_desired.remove(&label);
            let since = *groups.gone.entry(group.clone()).or_insert(now);
            if now.saturating_duration_since(since) >= grace {
                for outcome in OUTCOMES {
                    let labels = GroupOutcome { group: group.as_str().into(), outcome: outcome.to_owned() };
                    self.replications.remove(&labels);
                    self.replication_seconds.remove(&labels);
                }
                for direction in DIRECTIONS {
                    self.decisions
                        .remove(&DecisionLabels { group: group.as_str().into(), direction: direction.to_owned() });
                }
                for event in FRONT_EVENTS {
                    self.front_events.remove(&FrontEvent { group: group.as_str().into(), event: event.to_owned() });
                }
                for direction in ["in", "out"] {
                    self.front_bytes
                        .remove(&FrontBytes { group: group.as_str().into(), direction: direction.to_owned() });
                }
                groups.gone.remove(&group);
                groups.seen.remove(&group);
            }
        }
    }

    /// Counts one connection event at a group's front.
    pub fn front_event(&self, group: &str, event: &str) {
        self.seen(group);
        self.front_events.get_or_create(&FrontEvent { group: group.into(), event: event.to_owned() }).inc();
    }

    /// Counts bytes through a group's front.
    pub fn front_bytes(&self, group: &str, inbound: u64, outbound: u64) {
        for (direction, n) in [("in", inbound), ("out", outbound)] {
            self.front_bytes
                .get_or_create(&FrontBytes { group: group.into(), direction: direction.to_owned() })
                .inc_by(n);
        }
    }

    /// Sets a member's open connections through the front; its series goes at zero.
    pub fn front_open(&self, group: &str, member: &str, open: u64) {
        let labels = MemberLabels { group: group.into(), member: member.into() };
        if open == 0 {
            self.front_open.remove(&labels);
        } else {
            self.front_open.get_or_create(&labels).set(open as i64);
        }
    }

    /// Counts one failed engine call.
    pub fn engine_error(&self, kind: &str) {
        self.engine_errors.get_or_create(&ErrorKind { kind: kind.to_owned() }).inc();
    }

    /// Counts one engine call.
    pub fn engine_call(&self, op: &str) {
        self.engine_calls.get_or_create(&OpLabel { op: op.to_owned() }).inc();
    }

    /// One API connection the server closed: `revoked` or `max_age`.
    pub fn tls_connection_closed(&self, reason: &'static str) {
        self.tls_connections_closed.get_or_create(&HandshakeReason { reason: reason.to_owned() }).inc();
    }

    /// One refused TLS handshake; `reason` is one of the listener's fixed reasons.
    pub fn tls_handshake_failure(&self, reason: &'static str) {
        self.tls_handshake_failures.get_or_create(&HandshakeReason { reason: reason.to_owned() }).inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_label_value_cannot_forge_a_line() {
        let telemetry = Telemetry::default();
        telemetry.group_size("web\"} 1\nreplicator_group_size{group=\"x", 2);
        let text = telemetry.encode();
        let lines: Vec<&str> = text.lines().filter(|l| l.starts_with("replicator_group_size{")).collect();
        assert_eq!(lines.len(), 1, "one series, one line: {text}");
        assert!(lines[0].contains(r#"group="web\"} 1\nreplicator_group_size{group=\"x""#), "{}", lines[0]);
    }

    #[test]
    fn a_vanished_group_loses_its_gauges_at_once_and_its_counters_after_the_grace() {
        let telemetry = Telemetry::default();
        telemetry.set_series_grace(Duration::from_secs(60));
        telemetry.group_size("gone", 2);
        telemetry.decision("gone", "up");
        telemetry.replication("gone", "created", 0.2);
        telemetry.group_size("kept", 1);
        let t0 = Instant::now();
        let present = HashSet::from(["kept"]);
        telemetry.prune_groups(&present, t0);
        let text = telemetry.encode();
        assert!(!text.contains("replicator_group_size{group=\"gone\"}"), "{text}");
        assert!(text.contains("replicator_replications_total{group=\"gone\""), "counters stay for a last scrape");
        telemetry.prune_groups(&present, t0 + Duration::from_secs(61));
        let text = telemetry.encode();
        assert!(!text.contains("\"gone\""), "nothing of the group is left: {text}");
        assert!(text.contains("replicator_group_size{group=\"kept\"} 1"), "{text}");
    }
}
