//! The library's error: what went wrong, in the user's terms. The API maps
//! each variant to a status in one place (`api::error`).

use crate::engine::EngineError;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The request itself is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// The container has not opted in.
    #[error("container {0} is not enabled for replication: add the label replicator.enable=true to it, or start replicator with --allow-all")]
    NotEnabled(String),
    /// Refused on principle (replicator's own container, for one).
    #[error("{0}")]
    Forbidden(String),
    #[error("no such container: {0}")]
    ContainerNotFound(String),
    #[error("no such group: {0}")]
    GroupNotFound(String),
    #[error("replica limit reached: group {group} may have at most {max} members, the original included")]
    LimitReached { group: String, max: u32 },
    /// The client sends more than `--rate-limit` allows.
    #[error("rate limit exceeded: {0}")]
    RateLimited(String),
    /// The request conflicts with the container's or group's state or labels.
    #[error("{0}")]
    Conflict(String),
    /// The engine refused a call; its own message is kept.
    #[error("the Docker engine refused the request: {0}")]
    EngineRejected(String),
    #[error("engine unavailable: {0}")]
    EngineUnavailable(String),
    /// A bug: a task panicked or an invariant broke.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<EngineError> for Error {
    /// The default reading of an engine failure; callers that know better
    /// (a 404 on the container the user named) map it themselves first.
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::Unavailable(_) | EngineError::Timeout(_) => Error::EngineUnavailable(e.to_string()),
            EngineError::NotFound(m) | EngineError::Conflict(m) | EngineError::Rejected(m) => Error::EngineRejected(m),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
