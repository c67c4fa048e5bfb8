//! The engine's view of containers, in the project's own types.
//!
//! `Config` and `HostConfig` are kept as Engine API JSON objects so that every
//! field the engine reports (resources, devices, ulimits, ...) reaches the
//! clone unchanged, including fields newer than this code; the planner edits
//! only the keys it has a rule for. Nothing here knows bollard.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Map, Value};

/// A JSON object in the Engine API's own field names (`"Image"`, `"PortBindings"`...).
pub type ApiObject = Map<String, Value>;

/// Everything the planner needs to know about one inspected container.
#[derive(Debug, Clone, Default)]
pub struct ContainerDetails {
    /// Full id, as the engine reports it.
    pub id: String,
    /// Without the engine's leading `/`.
    pub name: String,
    /// The exact image the container runs (`sha256:...`).
    pub image_id: String,
    /// RFC 3339, as inspect reports it; [`Self::summary`] turns it into unix seconds.
    pub created: String,
    /// Lifecycle state at inspect time.
    pub state: RunState,
    /// The Engine API `Config` object.
    pub config: ApiObject,
    /// The Engine API `HostConfig` object.
    pub host_config: ApiObject,
    /// Attached networks by name.
    pub endpoints: BTreeMap<String, Endpoint>,
    /// Ports published on the host.
    pub published: Vec<PublishedPort>,
    /// The engine's health report, when the container has a healthcheck.
    pub health: Option<Health>,
    /// The last healthcheck's output, to say why a member is not ready.
    pub health_output: Option<String>,
    /// The last run's exit code (0 while it runs or never ran).
    pub exit_code: Option<i64>,
    /// When its last run ended (unix seconds); `None` while it never ended.
    pub finished_at: Option<i64>,
    /// Never started since it was created (`State.StartedAt` is the zero
    /// time): what reconcile removes. A container Podman reset to "created"
    /// after a reboot has started before, and stays.
    pub never_started: bool,
}

impl ContainerDetails {
    /// One label's value; `None` when the label, or `Labels` itself, is missing.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.config.get("Labels")?.get(key)?.as_str()
    }

    /// Every label, copied out of `Config.Labels`.
    pub fn labels(&self) -> BTreeMap<String, String> {
        labels_of(&self.config)
    }

    /// The 12-character prefix `docker ps` shows (the whole id if shorter).
    pub fn short_id(&self) -> &str {
        &self.id[..self.id.len().min(12)]
    }

    /// The same container as a listing would show it.
    pub fn summary(&self) -> ContainerSummary {
        let created = crate::base::clock::unix_of_rfc3339(&self.created);
        ContainerSummary {
            id: self.id.clone(),
            name: self.name.clone(),
            state: self.state,
            labels: self.labels(),
            created,
            networks: self.endpoints.iter().map(|(name, e)| (name.clone(), e.ip_address.clone())).collect(),
            published: self.published.clone(),
            health: self.health,
            image_id: self.image_id.clone(),
        }
    }
}

/// What a container's healthcheck reports (containers without one report nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    /// Within its start period, or no check has passed yet.
    Starting,
    /// The last checks passed.
    Healthy,
    /// Failed checks in a row: not to be routed to.
    Unhealthy,
}

impl Health {
    /// `State.Health.Status` of an inspect; `none` (no healthcheck) is `None`.
    pub fn parse(status: &str) -> Option<Self> {
        match status {
            "starting" => Some(Self::Starting),
            "healthy" => Some(Self::Healthy),
            "unhealthy" => Some(Self::Unhealthy),
            _ => None,
        }
    }

    /// The human `Status` of a listing: `Up 5 seconds (healthy)`, `(health: starting)`.
    pub fn from_status_text(text: &str) -> Option<Self> {
        if text.contains("(health: starting)") {
            Some(Self::Starting)
        } else if text.contains("(healthy)") {
            Some(Self::Healthy)
        } else if text.contains("(unhealthy)") {
            Some(Self::Unhealthy)
        } else {
            None
        }
    }
}

/// A container port the engine publishes on a host address.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct PublishedPort {
    /// The port inside the container.
    pub container_port: u16,
    /// `tcp`, `udp` or `sctp`.
    pub protocol: String,
    /// The host address it is bound to (`0.0.0.0`, `::`, or one address).
    pub host_ip: String,
    /// The host port.
    pub host_port: u16,
}

/// The `Labels` of a Config object as a map (empty when absent).
pub fn labels_of(config: &ApiObject) -> BTreeMap<String, String> {
    config
        .get("Labels")
        .and_then(Value::as_object)
        .map(|m| m.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned()))).collect())
        .unwrap_or_default()
}

/// One network attachment as inspected.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Endpoint {
    /// The network's id; `NetworkMode` may name the primary network by it.
    pub network_id: String,
    /// DNS names on this network, including those the engine derived from the container's id and name.
    pub aliases: Vec<String>,
    /// Legacy links on this network.
    pub links: Vec<String>,
    /// Address on this network; empty while the container is stopped.
    pub ip_address: String,
    /// Driver-specific options, carried over to a clone's attachment.
    pub driver_opts: BTreeMap<String, String>,
}

/// A container's lifecycle state as the engine names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RunState {
    /// Created but never started; already holds its place in the group.
    Created,
    /// Its processes run.
    Running,
    /// Frozen by `docker pause`; still a live member.
    Paused,
    /// Between two runs under its restart policy.
    Restarting,
    /// Being removed; no longer a live member.
    Removing,
    /// Stopped, kept until removed.
    Exited,
    /// Removal failed part-way; only removing it again is possible.
    Dead,
    /// A state this code does not know (a newer engine's); never live.
    #[default]
    Unknown,
}

impl RunState {
    /// The engine's lowercase state name; anything else becomes [`RunState::Unknown`].
    pub fn parse(s: &str) -> Self {
        match s {
            "created" => Self::Created,
            "running" => Self::Running,
            "paused" => Self::Paused,
            "restarting" => Self::Restarting,
            "removing" => Self::Removing,
            // Podman says "stopped" where Docker says "exited".
            "exited" | "stopped" => Self::Exited,
            "dead" => Self::Dead,
            _ => Self::Unknown,
        }
    }

    /// Whether the container holds a place in its group (counts against the limit).
    pub fn is_live(self) -> bool {
        matches!(self, Self::Created | Self::Running | Self::Paused | Self::Restarting)
    }
}

/// A container as listed (cheaper than an inspect): what the inventory keeps.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerSummary {
    /// The image it runs (`sha256:...`).
    pub image_id: String,
    /// Full id.
    pub id: String,
    /// Without the engine's leading `/`.
    pub name: String,
    /// The engine's lifecycle state.
    pub state: RunState,
    /// Every label, the source of group membership and rules.
    pub labels: BTreeMap<String, String>,
    /// Unix seconds.
    pub created: i64,
    /// Address on each attached network, by network name (empty while stopped).
    pub networks: BTreeMap<String, String>,
    /// Ports published on the host.
    pub published: Vec<PublishedPort>,
    /// The engine's health report, when the container has a healthcheck.
    pub health: Option<Health>,
}

/// Which containers to list.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    /// Include stopped containers.
    pub all: bool,
    /// `key` or `key=value` filters, all of which must match.
    pub labels: Vec<String>,
    /// Substring of the name.
    pub name: Option<String>,
    /// Exactly this container.
    pub id: Option<String>,
}

/// A container to create: its name and the Engine API create body
/// (Config fields, `HostConfig` and `NetworkingConfig`).
#[derive(Debug, Clone, PartialEq)]
pub struct CreateRequest {
    /// The new container's name, without a leading `/`.
    pub name: String,
    /// The create body, sent as is.
    pub body: ApiObject,
}

/// A network to connect a created container to before it starts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NetworkAttachment {
    /// Network name to connect to.
    pub network: String,
    /// DNS names the container answers to there, besides its own name.
    pub aliases: Vec<String>,
    /// Legacy links on that network, `target:alias`.
    pub links: Vec<String>,
    /// Driver-specific options for the endpoint.
    pub driver_opts: BTreeMap<String, String>,
}

/// A Swarm-mode service.
#[derive(Debug, Clone, Default)]
pub struct ServiceDetails {
    /// Swarm's id for the service.
    pub id: String,
    /// The service name, which also names its group.
    pub name: String,
    /// The version index an update must quote.
    pub version: u64,
    /// The service's own labels (not its tasks'), where its group and autoscale rules are read.
    pub labels: BTreeMap<String, String>,
    /// Desired replicas; `None` for a global-mode (or job) service.
    pub replicas: Option<u64>,
    /// The Engine API `Spec` object, sent back whole on update.
    pub spec: ApiObject,
    /// The state of the service's last rolling update (`updating`, `paused`,
    /// `completed`, `rollback_started`...); `None` when it was never updated.
    pub update_state: Option<String>,
}

impl ServiceDetails {
    /// Whether a rolling update (or its rollback) is under way or paused:
    /// changing the replica count then would fight the rollout.
    pub fn rolling_out(&self) -> Option<&str> {
        self.update_state
            .as_deref()
            .filter(|s| matches!(*s, "updating" | "paused" | "rollback_started" | "rollback_paused"))
    }
}

/// One task of a Swarm-mode service.
#[derive(Debug, Clone, Default)]
pub struct TaskSummary {
    /// Swarm's id for the task (not its container's).
    pub id: String,
    /// The service it belongs to.
    pub service_id: String,
    /// The container running the task; empty until one is created.
    pub container_id: String,
    /// The task's own state (`running`, `pending`, `shutdown`...).
    pub state: String,
    /// What Swarm is driving the task towards (`running`, `shutdown`...).
    pub desired_state: String,
    /// Replicated services number their tasks.
    pub slot: Option<u64>,
    /// The Swarm node the task is placed on; empty while unassigned.
    pub node_id: String,
    /// Unix seconds.
    pub created: i64,
    /// Its address on each network it is attached to, by network name
    /// (what a front or a balancer on that network connects to).
    pub networks: std::collections::BTreeMap<String, String>,
}

/// What the engine is: its kind and version, and whether Swarm calls make sense.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EngineInfo {
    /// `docker` or `podman`.
    pub kind: String,
    /// The engine's own version.
    pub version: String,
    /// The API version in use.
    pub api_version: String,
    /// This node's place in a swarm.
    pub swarm: SwarmRole,
    /// This engine's Swarm node id; empty outside a swarm.
    pub node_id: String,
    /// The engine host's name, as `docker info` shows it.
    pub hostname: String,
}

/// One node of a swarm, as a manager lists it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct NodeSummary {
    /// Swarm's id for the node.
    pub id: String,
    /// The node's host name.
    pub hostname: String,
    /// `ready`, `down`, `unknown` or `disconnected`, as the managers see it.
    pub state: String,
    /// `active`, `pause` or `drain`.
    pub availability: String,
}

/// A node's place in a swarm: only a manager answers service and task calls.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SwarmRole {
    /// Swarm mode is off (or the engine has none, as Podman).
    #[default]
    Inactive,
    /// A worker: runs tasks, cannot list services.
    Worker,
    /// A manager: services and tasks can be read and updated.
    Manager,
}

/// One reading of a container's resource counters, with the previous CPU
/// reading the engine took for it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatsSample {
    /// The container's CPU time so far (`cpu_stats.cpu_usage.total_usage`).
    pub cpu_total: u64,
    /// `cpu_total` at the engine's previous reading.
    pub precpu_total: u64,
    /// The host's CPU time so far (`cpu_stats.system_cpu_usage`).
    pub system: u64,
    /// `system` at the engine's previous reading.
    pub presystem: u64,
    /// CPUs the container can use, which scale the CPU percentage (0 when unreported).
    pub online_cpus: u32,
    /// Bytes in use, page cache included.
    pub memory_usage: u64,
    /// Inactive page cache, which `docker stats` leaves out of usage.
    pub memory_inactive_file: u64,
    /// Bytes the container may use (the host's memory when unlimited); 0 when unreported.
    pub memory_limit: u64,
}

/// A container event from the engine's event stream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerEvent {
    /// `create`, `start`, `die`, `destroy`...
    pub action: String,
    /// Full id of the container.
    pub id: String,
    /// The container's labels (and `name`, `image`), as the engine attaches them.
    pub attributes: BTreeMap<String, String>,
    /// Unix nanoseconds.
    pub time_nano: i64,
}

impl ContainerEvent {
    /// Whether the event can change which containers run (as opposed to
    /// `exec_*`, `health_status`, `attach` and the like).
    pub fn changes_running_set(&self) -> bool {
        matches!(self.action.as_str(), "start" | "die" | "destroy" | "pause" | "unpause")
    }
}
