//! Prometheus metrics: one registry, written by the service, the engine
//! adapter and the autoscaler, read by the admin listener's `/metrics`.

use std::sync::Mutex;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Labels of a replication: its group and how it ended.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GroupOutcome {
    /// The group.
    pub group: String,
    /// `created`, `limit`, `refused` or `failed`.
    pub outcome: String,
}

/// The label of a per-group series.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GroupLabel {
    /// The group.
    pub group: String,
}

/// Labels of an autoscaler decision.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DecisionLabels {
    /// The group.
    pub group: String,
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

type HistogramFamily = Family<GroupOutcome, Histogram, fn() -> Histogram>;

/// Every series replicator exports, in one registry.
pub struct Telemetry {
    registry: Mutex<Registry>,
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
    /// Per-group jobs of a control loop that panicked.
    pub job_panics: Family<WorkerLabel, Counter>,
    /// Requests refused for want of a permission, by route and kind of identity.
    pub access_denied: Family<DeniedLabels, Counter>,
    /// Creations refused by a ceiling.
    pub ceiling_refusals: Family<CeilingLabel, Counter>,
}

fn latency_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.005, 2.0, 14))
}

impl Default for Telemetry {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("replicator");
        let replications = Family::default();
        registry.register("replications", "Replication requests by group and outcome", replications.clone());
        let replication_seconds: HistogramFamily = Family::new_with_constructor(latency_buckets);
        registry.register(
            "replication_duration_seconds",
            "Time to answer a replication request",
            replication_seconds.clone(),
        );
        let group_size = Family::default();
        registry.register("group_size", "Running members of each group", group_size.clone());
        let group_desired = Family::default();
        registry.register("group_desired_size", "Size the autoscaler wants for each group", group_desired.clone());
        let decisions = Family::default();
        registry.register("autoscaler_decisions", "Autoscaler evaluations by direction", decisions.clone());
        let engine_errors = Family::default();
        registry.register("engine_errors", "Failed engine calls by kind", engine_errors.clone());
        let engine_calls = Family::default();
        registry.register("engine_calls", "Engine calls by operation", engine_calls.clone());
        let tls_handshake_failures = Family::default();
        registry.register(
            "tls_handshake_failures",
            "Refused TLS handshakes on the API listener, by reason",
            tls_handshake_failures.clone(),
        );
        let job_panics = Family::default();
        registry.register(
            "job_panics",
            "Per-group jobs of a control loop that panicked (their group is handled again next round)",
            job_panics.clone(),
        );
        let access_denied = Family::default();
        registry.register(
            "access_denied",
            "API requests refused for want of a permission, by route and kind of identity",
            access_denied.clone(),
        );
        let ceiling_refusals = Family::default();
        registry.register(
            "ceiling_refusals",
            "Creations refused by serve --max-containers or --max-creations-per-minute",
            ceiling_refusals.clone(),
        );
        Self {
            registry: Mutex::new(registry),
            replications,
            replication_seconds,
            group_size,
            group_desired,
            decisions,
            engine_errors,
            engine_calls,
            tls_handshake_failures,
            job_panics,
            access_denied,
            ceiling_refusals,
        }
    }
}

impl Telemetry {
    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        let registry = self.registry.lock().expect("registry lock");
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("writing to a String cannot fail");
        text
    }

    /// Counts one replication request and its duration.
    pub fn replication(&self, group: &str, outcome: &str, seconds: f64) {
        let labels = GroupOutcome { group: group.to_owned(), outcome: outcome.to_owned() };
        self.replications.get_or_create(&labels).inc();
        self.replication_seconds.get_or_create(&labels).observe(seconds);
    }

    /// Counts one failed engine call.
    pub fn engine_error(&self, kind: &str) {
        self.engine_errors.get_or_create(&ErrorKind { kind: kind.to_owned() }).inc();
    }

    /// Counts one engine call.
    pub fn engine_call(&self, op: &str) {
        self.engine_calls.get_or_create(&OpLabel { op: op.to_owned() }).inc();
    }

    /// One refused TLS handshake; `reason` is one of the listener's fixed reasons.
    pub fn tls_handshake_failure(&self, reason: &'static str) {
        self.tls_handshake_failures.get_or_create(&HandshakeReason { reason: reason.to_owned() }).inc();
    }
}
