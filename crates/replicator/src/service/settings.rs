//! What the service is told from outside: the operator's switches and who
//! is asking. Plain values every part reads; nothing here acts.

use std::time::Duration;

use crate::error::Result;
use crate::rules::access::{Identity, Permission};

/// Policy switches from the command line.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Keep fixed host ports on clones instead of publishing ephemeral ones.
    pub keep_host_ports: bool,
    /// How long a replica may take to stop before it is killed.
    pub stop_timeout: Duration,
    /// Our own container, never replicated.
    pub self_id: Option<String>,
    /// Longest a command waits for the inventory to re-list a lost engine.
    pub engine_timeout: Duration,
    /// Longest a scale-down waits for the balancers to let a draining member go.
    pub drain_timeout: Duration,
    /// How long a standby without a healthcheck runs before it counts as ready and is paused.
    pub warm_settle: Duration,
    /// Most containers replicator may have made at once (replicas and standbys).
    pub max_containers: usize,
    /// Most containers replicator may create a minute.
    pub max_creations_per_minute: u32,
    /// Where replicator runs, for the connections it makes to members.
    pub vantage: crate::rules::backends::Vantage,
}

impl Settings {
    /// The stop timeout as the engine takes it (whole seconds).
    pub(super) fn stop_seconds(&self) -> i32 {
        self.stop_timeout.as_secs().min(i32::MAX as u64) as i32
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            keep_host_ports: false,
            stop_timeout: Duration::from_secs(10),
            self_id: None,
            engine_timeout: Duration::from_secs(30),
            drain_timeout: Duration::from_secs(10),
            warm_settle: Duration::from_secs(5),
            max_containers: 500,
            max_creations_per_minute: 600,
            vantage: Default::default(),
        }
    }
}

/// Who asks for a replication: the name logs and events give it, and the
/// identity the access rules check once the container's group is known
/// (before anything changes, after the checks that say whether the
/// container is replicable at all).
#[derive(Debug, Clone)]
pub struct Caller {
    /// For logs and events (a certificate's common name, `dashboard`...).
    pub name: String,
    /// What it may do.
    pub identity: Identity,
}

impl Caller {
    /// An operator named `name` (replicator's own callers, tests).
    pub fn operator(name: &str) -> Self {
        Self { name: name.to_owned(), identity: Identity::Operator }
    }

    /// `Ok` if it may replicate the containers of `group`.
    pub(super) fn may_replicate(&self, group: &str, container: &str) -> Result<()> {
        let action = format!("replicate container {container}");
        Ok(self.identity.check_for(Permission::Replicate, group, &action)?)
    }
}
