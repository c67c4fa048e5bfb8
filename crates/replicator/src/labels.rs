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
    matches!(value.map(|v| v.trim().to_ascii_lowercase()).as_deref(), Some("true" | "1" | "yes" | "on"))
}

/// A count label (≥ 1): `default` when absent, an error naming the label when
/// it is not a positive integer.
pub fn positive_count(
    labels: &std::collections::BTreeMap<String, String>,
    key: &str,
    default: u32,
) -> Result<u32, String> {
    match labels.get(key) {
        None => Ok(default),
        Some(v) => v
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| format!("label {key}={v:?} is not a positive integer")),
    }
}

/// `serve --selector KEY=VALUE`: the label a container (or Swarm service) must
/// carry for this replicator to manage it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector {
    pub key: String,
    pub value: String,
}

impl Selector {
    pub fn parse(text: &str) -> Result<Self, String> {
        match text.split_once('=') {
            Some((key, value)) if !key.trim().is_empty() => Ok(Self { key: key.trim().into(), value: value.into() }),
            _ => Err(format!("{text:?} is not KEY=VALUE")),
        }
    }

    pub fn matches(&self, labels: &std::collections::BTreeMap<String, String>) -> bool {
        labels.get(&self.key) == Some(&self.value)
    }

    /// The engine's label filter for it.
    pub fn filter(&self) -> String {
        format!("{}={}", self.key, self.value)
    }
}

impl std::fmt::Display for Selector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}={}", self.key, self.value)
    }
}
