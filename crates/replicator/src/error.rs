//! The library's error: what went wrong, in the user's terms, with the
//! object it concerns. The API maps each variant to a status in one place
//! (`api::error`).

use crate::engine::EngineError;
use crate::rules::access::Denied;

/// Every way a command can fail.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The request itself is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// The container has not opted in.
    #[error("container {0} is not enabled for replication: add the label replicator.enable=true to it, or start replicator with --allow-all")]
    NotEnabled(String),
    /// Refused on principle (replicator's own container, a container outside `--selector`).
    #[error("{0}")]
    Forbidden(String),
    /// The container the caller named does not exist.
    #[error("no such container: {0}")]
    ContainerNotFound(String),
    /// No managed group has that name.
    #[error("no such group: {0}")]
    GroupNotFound(String),
    /// A replication would take the group past its maximum.
    #[error("replica limit reached: group {group} may have at most {max} members, the original included")]
    LimitReached {
        /// The group.
        group: String,
        /// Its maximum.
        max: u32,
    },
    /// A scale request outside the group's bounds.
    #[error("group {group} must have between {min} and {max} replicas (min and max); {asked} asked")]
    OutOfBounds {
        /// The group.
        group: String,
        /// Its minimum.
        min: u32,
        /// Its maximum.
        max: u32,
        /// The size asked for.
        asked: u32,
    },
    /// The group's labels are malformed: it refuses every change until they are fixed.
    #[error("group {group} refuses changes: {reason}")]
    InvalidGroup {
        /// The group.
        group: String,
        /// What is wrong with its labels.
        reason: String,
    },
    /// A new member was not ready in time (`wait=ready`); the request's members were removed.
    #[error("replica {member} was not ready: {reason}{}; the replicas of this request were removed",
            health_output.as_deref().map(|o| format!(" (last health check: {o})")).unwrap_or_default())]
    NotReady {
        /// The member's name.
        member: String,
        /// Unhealthy, stopped, or out of time.
        reason: String,
        /// The last healthcheck's output, when it has one.
        health_output: Option<String>,
    },
    /// The caller's identity lacks the permission the request needs.
    #[error("{0}")]
    Denied(Denied),
    /// The client sends more than `--rate-limit` allows.
    #[error("rate limit exceeded: {0}")]
    RateLimited(String),
    /// The request conflicts with the container's or group's state or labels.
    #[error("{0}")]
    Conflict(String),
    /// An engine call failed; the operation, the object and the engine's words are kept.
    #[error("{}", engine_message(.0))]
    Engine(EngineError),
    /// No member of a group could take a held request or connection.
    #[error("group {group}: {reason}")]
    Unreachable {
        /// The group.
        group: String,
        /// Why.
        reason: Unreached,
    },
    /// A command reached a replicator that does not act: it handed acting
    /// over to a successor, or another holds the lease.
    #[error("this replicator does not act now: {}", match leader {
        Some(leader) => format!("the replicator at {leader} does; send it there"),
        None => "retry, and the one that acts answers".to_owned(),
    })]
    NotActing {
        /// Where the replicator that acts answers, when known.
        leader: Option<String>,
    },

    /// A bug: a task panicked or an invariant broke.
    #[error("internal error: {0}")]
    Internal(String),
}

/// Why a held request or connection reached no member.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unreached {
    /// No member was ready by the deadline.
    #[error("it did not wake in time")]
    NotInTime,
    /// A ready member kept refusing the connection until the deadline.
    #[error("its member did not accept a connection before the wake timeout: {0}")]
    Refused(String),
    /// Ready members exist, but none where replicator can reach it.
    #[error("no ready member can be reached from replicator: {0}")]
    NoRoute(String),
    /// As many wait for the group as its hold allows (`--front-hold`).
    #[error("it has no ready member and already holds as many waiting connections as --front-hold allows")]
    HoldFull,
    /// Waking it failed.
    #[error("it could not be woken: {0}")]
    NotWoken(String),
}

fn engine_message(e: &EngineError) -> String {
    if e.is_unreachable() {
        format!("engine unavailable: {e}")
    } else {
        format!("the Docker engine refused the request: {e}")
    }
}

impl From<Denied> for Error {
    fn from(e: Denied) -> Self {
        Error::Denied(e)
    }
}

impl From<EngineError> for Error {
    fn from(e: EngineError) -> Self {
        Error::Engine(e)
    }
}

/// The library's result.
pub type Result<T, E = Error> = std::result::Result<T, E>;
