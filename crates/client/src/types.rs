//! The bodies replicator answers with, as a program reads them. Fields a
//! newer server adds are ignored; the server crate tests that what it
//! sends reads as these types.

use serde::{Deserialize, Serialize};

/// A group: a container and its replicas (`GET /v1/groups/{name}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Group {
    /// The name the API addresses it by.
    pub name: String,
    /// `containers` or `service` (a Swarm service).
    pub kind: String,
    /// Members that count: running or on their way.
    pub replicas: usize,
    /// At zero, its originals paused or stopped until woken.
    #[serde(default)]
    pub asleep: bool,
    /// Its lower bound (`replicator.min`), when its labels are valid.
    #[serde(default)]
    pub min: Option<u32>,
    /// Its upper bound (`replicator.max` under `--max-replicas`), when its labels are valid.
    #[serde(default)]
    pub max: Option<u32>,
    /// Why it refuses changes: its labels are malformed.
    #[serde(default)]
    pub error: Option<String>,
    /// Its members, originals first.
    #[serde(default)]
    pub members: Vec<Member>,
    /// Standbys kept paused beside it (`replicator.warm`).
    #[serde(default)]
    pub warm: u32,
    /// The standbys themselves.
    #[serde(default)]
    pub standbys: Vec<Member>,
}

impl Group {
    /// How many of its members are ready (take traffic).
    pub fn ready(&self) -> usize {
        self.members.iter().filter(|m| m.ready).count()
    }
}

/// A member of a group, or a standby.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// Full container id.
    pub id: String,
    /// Container name.
    pub name: String,
    /// `running`, `starting`, `draining`, `sleeping`, `exited`...
    pub state: String,
    /// Running and passing every check it has: it takes traffic.
    #[serde(default)]
    pub ready: bool,
    /// Its image's healthcheck (`starting`, `healthy`, `unhealthy`), if it has one.
    #[serde(default)]
    pub health: Option<String>,
    /// replicator's own readiness probe, if the group has one.
    #[serde(default)]
    pub probe: Option<String>,
    /// A container someone started, never removed by replicator.
    #[serde(default)]
    pub original: bool,
    /// When it was created (RFC 3339).
    #[serde(default)]
    pub created: String,
}

/// What a replication made (`POST /v1/containers/{id}/replicas`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Replication {
    /// The container replicated.
    pub source: String,
    /// Its group.
    pub group: String,
    /// The replicas made (none when a Swarm service was scaled instead).
    #[serde(default)]
    pub replicas: Vec<Replica>,
    /// What else happened (a service scaled, a standby promoted).
    #[serde(default)]
    pub notes: Vec<String>,
}

/// One replica made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Replica {
    /// Full container id.
    pub id: String,
    /// Container name.
    pub name: String,
}
