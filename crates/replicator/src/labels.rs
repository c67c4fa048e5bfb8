//! The label names replicator reads and writes: one place, so the docs,
//! the planner and the group rules cannot drift apart.

/// Opt-in: only containers carrying `replicator.enable=true` are replicated.
pub const ENABLE: &str = "replicator.enable";
/// Full id of the original container a replica was cloned from.
pub const SOURCE: &str = "replicator.source";
/// The group a container belongs to.
pub const GROUP: &str = "replicator.group";
/// Upper bound of a group's size, the original included.
pub const MAX: &str = "replicator.max";
/// Lower bound of a group's size when scaling down.
pub const MIN: &str = "replicator.min";

pub const COMPOSE_PROJECT: &str = "com.docker.compose.project";
pub const COMPOSE_SERVICE: &str = "com.docker.compose.service";
pub const COMPOSE_NUMBER: &str = "com.docker.compose.container-number";
pub const COMPOSE_ONEOFF: &str = "com.docker.compose.oneoff";
pub const SWARM_SERVICE_ID: &str = "com.docker.swarm.service.id";
pub const SWARM_SERVICE_NAME: &str = "com.docker.swarm.service.name";

/// True when a label value means "yes" the way operators write it.
pub fn is_true(value: Option<&str>) -> bool {
    matches!(
        value.map(|v| v.trim().to_ascii_lowercase()).as_deref(),
        Some("true" | "1" | "yes" | "on")
    )
}
