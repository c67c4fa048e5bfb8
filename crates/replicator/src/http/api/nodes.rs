//! `PUT /v1/nodes/{node}/usage`: where `replicator agent` on each Swarm node
//! reports the CPU and memory of the task containers it runs. The body is
//! checked in shape here; whether the node may report for those containers
//! is the autoscaler's rule ([`AutoscaleHandle::report`]).
//!
//! [`AutoscaleHandle::report`]: crate::autoscale::AutoscaleHandle::report

use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::Json;
use serde::Deserialize;

use super::schemas::MAX_NODE_ID;
use super::status::ApiError;
use super::{json, AppState};
use crate::autoscale::{NodeReport, ReportOutcome, Usage};
use crate::base::quote::{clip, clip_to};

/// Containers one report may carry; a node running more splits nothing, it
/// is refused (the body limit would refuse it first anyway).
pub const MAX_CONTAINERS: usize = 500;
/// Percent of one core: 1,024 busy cores is past any host's.
const MAX_CPU: f64 = 102_400.0;
/// The longest host name taken.
const MAX_HOSTNAME: usize = 253;

/// A node's report of its task containers' usage.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct ReportBody {
    /// The node's host name (letters, digits, `.`, `-`, `_`; may be empty).
    #[schema(schema_with = hostname_schema)]
    hostname: String,
    /// At most 500; a container reported twice counts once, with its last values.
    #[schema(schema_with = containers_schema)]
    containers: Vec<UsageBody>,
}

/// One container's usage.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct UsageBody {
    /// The container's full id: 64 lowercase hex digits.
    #[schema(pattern = "^[0-9a-f]{64}$")]
    id: String,
    /// Percent of one core, from 0 to 102400.
    #[schema(minimum = 0, maximum = 102400)]
    cpu: f64,
    /// Percent of the memory limit, from 0 to 100; null without a limit.
    #[schema(minimum = 0, maximum = 100)]
    memory: Option<f64>,
}

fn hostname_schema() -> impl Into<utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>> {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::Type::String)
        .pattern(Some(format!("^[A-Za-z0-9._-]{{0,{MAX_HOSTNAME}}}$")))
}

fn containers_schema() -> impl Into<utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>> {
    use utoipa::PartialSchema;
    utoipa::openapi::schema::ArrayBuilder::new().items(UsageBody::schema()).max_items(Some(MAX_CONTAINERS))
}

/// Keeps the node's report; answers which services the agent should measure.
#[utoipa::path(put, path = "/v1/nodes/{node}/usage", tag = "swarm",
    params(("node" = inline(super::schemas::NodeId), Path, description = "Swarm node id")),
    request_body = ReportBody,
    responses((status = 200, description = "Which services the agent should measure", body = ReportOutcome),
              (status = 400, description = "A malformed node id or report", body = super::status::ErrorBody),
              (status = 403, description = "A node not in the swarm, or a task on another node", body = super::status::ErrorBody),
              (status = 409, description = "The engine is no Swarm manager", body = super::status::ErrorBody),
              super::status::EngineFailures))]
pub async fn report(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    body: Bytes,
) -> Result<Json<ReportOutcome>, ApiError> {
    let Path(node) = path.map_err(|_| ApiError::bad_request("the path is not valid UTF-8"))?;
    let report = parse(&node, &body)?;
    Ok(Json(state.autoscale.report(report)?))
}

/// A Swarm node id: lowercase letters and digits (Swarm makes 25 of them).
fn valid_node_id(id: &str) -> bool {
    (1..=MAX_NODE_ID).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

fn valid_hostname(name: &str) -> bool {
    name.len() <= MAX_HOSTNAME && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
}

fn valid_container_id(id: &str) -> bool {
    id.len() == 64 && id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn parse(node: &str, body: &[u8]) -> Result<NodeReport, ApiError> {
    let shape = r#"expected {"hostname": "<name>", "containers": [{"id": "<64-hex container id>", "cpu": <percent of a core>, "memory": <percent or null>}]}"#;
    let refuse = |why: String| ApiError::bad_request(format!("{shape}: {why}"));
    if !valid_node_id(node) {
        return Err(ApiError::bad_request(format!("{:?} is not a Swarm node id", clip(node))));
    }
    let value = json::parse(body).map_err(|e| refuse(clip_to(&e.to_string(), 160)))?;
    if !value.is_object() {
        return Err(refuse("not a JSON object".into()));
    }
    let body: ReportBody = serde_json::from_value(value).map_err(|e| refuse(clip_to(&e.to_string(), 160)))?;
    if !valid_hostname(&body.hostname) {
        return Err(refuse(format!("{:?} is not a host name", clip(&body.hostname))));
    }
    if body.containers.len() > MAX_CONTAINERS {
        return Err(refuse(format!("at most {MAX_CONTAINERS} containers per report")));
    }
    let mut seen = std::collections::HashMap::new();
    let mut containers: Vec<Usage> = Vec::with_capacity(body.containers.len());
    for c in body.containers {
        if !valid_container_id(&c.id) {
            return Err(refuse(format!("{:?} is not a full container id", clip(&c.id))));
        }
        if !(c.cpu.is_finite() && (0.0..=MAX_CPU).contains(&c.cpu)) {
            return Err(refuse(format!("cpu of {} is not a percentage from 0 to {MAX_CPU}", c.id)));
        }
        if c.memory.is_some_and(|m| !(m.is_finite() && (0.0..=100.0).contains(&m))) {
            return Err(refuse(format!("memory of {} is not a percentage from 0 to 100", c.id)));
        }
        // Reported twice: once, with the last values (the description cannot say "unique by id").
        let usage = Usage { container: c.id, cpu: c.cpu, memory: c.memory };
        match seen.get(&usage.container) {
            Some(&at) => containers[at] = usage,
            None => {
                seen.insert(usage.container.clone(), containers.len());
                containers.push(usage);
            }
        }
    }
    Ok(NodeReport { node: node.to_owned(), hostname: body.hostname, containers })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn refused(node: &str, body: &str) -> String {
        parse(node, body.as_bytes()).unwrap_err().0.to_string()
    }

    #[test]
    fn a_well_formed_report_is_read() {
        let body = format!(r#"{{"hostname": "vm-1", "containers": [{{"id": "{ID}", "cpu": 51.5, "memory": null}}]}}"#);
        let report = parse("abc123", body.as_bytes()).unwrap();
        assert_eq!(report.containers, [Usage { container: ID.into(), cpu: 51.5, memory: None }]);
    }

    #[test]
    fn the_description_states_the_bounds_the_parser_enforces() {
        use utoipa::PartialSchema;
        let body = serde_json::to_value(ReportBody::schema()).unwrap();
        let containers = &body["properties"]["containers"];
        assert_eq!(containers["maxItems"], MAX_CONTAINERS);
        let usage = &containers["items"]["properties"];
        assert_eq!(usage["cpu"]["maximum"].as_f64(), Some(MAX_CPU));
        assert_eq!(usage["memory"]["maximum"].as_f64(), Some(100.0));
        let report = format!(r#"{{"hostname": "{}", "containers": []}}"#, "h".repeat(MAX_HOSTNAME));
        assert!(parse("n1", report.as_bytes()).is_ok());
        assert!(parse(&"n".repeat(MAX_NODE_ID), br#"{"hostname": "h", "containers": []}"#).is_ok());
        assert!(parse(&"n".repeat(MAX_NODE_ID + 1), br#"{"hostname": "h", "containers": []}"#).is_err());
    }

    #[test]
    fn a_container_reported_twice_counts_once_with_its_last_values() {
        let twice =
            format!(r#"{{"hostname": "h", "containers": [{{"id": "{ID}", "cpu": 1}}, {{"id": "{ID}", "cpu": 2}}]}}"#);
        let report = parse("n1", twice.as_bytes()).unwrap();
        assert_eq!(report.containers, [Usage { container: ID.into(), cpu: 2.0, memory: None }]);
    }

    #[test]
    fn malformed_reports_are_refused_by_what_is_wrong() {
        assert!(refused("ABC", r#"{"hostname": "h", "containers": []}"#).contains("not a Swarm node id"));
        assert!(refused("n1", r#"{"hostname": "a b", "containers": []}"#).contains("not a host name"));
        assert!(refused("n1", r#"{"hostname": "h", "containers": [{"id": "abc", "cpu": 1}]}"#)
            .contains("not a full container id"));
        let negative = format!(r#"{{"hostname": "h", "containers": [{{"id": "{ID}", "cpu": -1}}]}}"#);
        assert!(refused("n1", &negative).contains("cpu of"));
        assert!(refused("n1", r#"{"hostname": "h", "containers": [], "extra": 1}"#).contains("unknown field"));
        assert!(refused("n1", "[]").contains("not a JSON object"));
    }
}
