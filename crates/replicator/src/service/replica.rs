//! What a replication answers: the replicas made, in the API's words.

use serde::Serialize;

/// The answer to a replication.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct Replication {
    /// Full id of the container that was replicated.
    pub source: String,
    /// The group the replicas joined.
    pub group: String,
    /// The replicas made.
    pub replicas: Vec<Replica>,
    /// What differs from the source and why (ephemeral host ports...).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// One replica made.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct Replica {
    /// Full container id.
    pub id: String,
    /// Container name.
    pub name: String,
}
