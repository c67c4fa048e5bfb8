//! Why an engine call failed: the operation, the object it concerned, and a
//! kind the service can reason about without reading message text.

use std::fmt;

/// The engine call that failed, named the way an operator would say it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `GET /_ping`.
    Ping,
    /// `GET /info` and `/version`.
    Info,
    /// `GET /containers/{id}/json`.
    InspectContainer,
    /// `GET /images/{name}/json`.
    InspectImage,
    /// `GET /containers/json`.
    ListContainers,
    /// `POST /containers/create`.
    CreateContainer,
    /// `POST /networks/{id}/connect`.
    ConnectNetwork,
    /// `POST /containers/{id}/start`.
    StartContainer,
    /// `POST /containers/{id}/pause`.
    PauseContainer,
    /// `POST /containers/{id}/unpause`.
    UnpauseContainer,
    /// `POST /containers/{id}/stop`.
    StopContainer,
    /// `DELETE /containers/{id}`.
    RemoveContainer,
    /// `GET /services/{id}`.
    InspectService,
    /// `GET /services`.
    ListServices,
    /// `POST /services/{id}/update`.
    UpdateService,
    /// `GET /tasks`.
    ListTasks,
    /// `GET /nodes`.
    ListNodes,
    /// `GET /containers/{id}/stats`.
    Stats,
    /// `GET /events`.
    Events,
    /// Reading or writing the lease's record.
    Lease,
}

impl Op {
    /// The operation in words: error messages and the `op` label of metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Ping => "ping",
            Op::Info => "read engine info",
            Op::InspectContainer => "inspect container",
            Op::InspectImage => "inspect image",
            Op::ListContainers => "list containers",
            Op::CreateContainer => "create container",
            Op::ConnectNetwork => "connect network",
            Op::StartContainer => "start container",
            Op::PauseContainer => "pause container",
            Op::UnpauseContainer => "unpause container",
            Op::StopContainer => "stop container",
            Op::RemoveContainer => "remove container",
            Op::InspectService => "inspect service",
            Op::ListServices => "list services",
            Op::UpdateService => "update service",
            Op::ListTasks => "list tasks of service",
            Op::ListNodes => "list swarm nodes",
            Op::Stats => "read stats of container",
            Op::Events => "follow events",
            Op::Lease => "read or write the lease",
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What kind of failure, as far as the caller's next step is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The object does not exist (HTTP 404 from the engine).
    NotFound,
    /// A name or state conflict, or a stale version (HTTP 409).
    Conflict,
    /// The engine answered but refused the call; its message is kept for the user.
    Rejected,
    /// The engine could not be reached at all.
    Unavailable,
    /// The engine presented a TLS certificate our CA does not vouch for.
    Untrusted,
    /// The engine did not answer within the configured timeout.
    Timeout,
    /// Never sent: this replicator's lease ended, another may act now.
    Fenced,
}

impl ErrorKind {
    /// A short name for metrics.
    pub fn name(self) -> &'static str {
        match self {
            Self::NotFound => "not_found",
            Self::Conflict => "conflict",
            Self::Rejected => "rejected",
            Self::Unavailable => "unavailable",
            Self::Untrusted => "untrusted",
            Self::Timeout => "timeout",
            Self::Fenced => "fenced",
        }
    }
}

/// A failed engine call: `inspect container web: No such container: web`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{op}{}: {message}", if object.is_empty() { String::new() } else { format!(" {object}") })]
pub struct EngineError {
    /// The call that failed.
    pub op: Op,
    /// The id or name it concerned (empty for listings).
    pub object: String,
    /// How the caller should read it.
    pub kind: ErrorKind,
    /// The engine's own words, or the transport's.
    pub message: String,
}

impl EngineError {
    /// An error of `kind` for `op` on `object`.
    pub fn new(op: Op, object: impl Into<String>, kind: ErrorKind, message: impl Into<String>) -> Self {
        Self { op, object: object.into(), kind, message: message.into() }
    }

    /// The engine said the object does not exist.
    pub fn is_not_found(&self) -> bool {
        self.kind == ErrorKind::NotFound
    }

    /// A name clash or stale version: retrying with other input may succeed.
    pub fn is_conflict(&self) -> bool {
        self.kind == ErrorKind::Conflict
    }

    /// The failure says nothing about the request, only about reaching the engine.
    pub fn is_unreachable(&self) -> bool {
        matches!(self.kind, ErrorKind::Unavailable | ErrorKind::Timeout | ErrorKind::Untrusted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_names_the_operation_and_the_object() {
        let e = EngineError::new(Op::InspectContainer, "abc", ErrorKind::NotFound, "No such container: abc");
        assert_eq!(e.to_string(), "inspect container abc: No such container: abc");
        let listing = EngineError::new(Op::ListContainers, "", ErrorKind::Unavailable, "connection refused");
        assert_eq!(listing.to_string(), "list containers: connection refused");
    }
}
