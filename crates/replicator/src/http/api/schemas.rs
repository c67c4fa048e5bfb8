//! The schemas of what the API reads from outside, built from the same
//! constants as the parsers that enforce them, so that the description
//! states exactly what the server takes: patterns, bounds, enums, formats.
//! Each type here is a name for a schema, never a value; the handlers parse
//! with their own code, and the tests below keep both readings together.

use utoipa::openapi::extensions::Extensions;
use utoipa::openapi::schema::{
    AdditionalProperties, ArrayBuilder, KnownFormat, ObjectBuilder, OneOfBuilder, SchemaFormat, SchemaType, Type,
};
use utoipa::openapi::{Ref, RefOr, Schema};
use utoipa::{PartialSchema, ToSchema};

use crate::base::id::MAX_LEN;
use crate::service::MAX_COUNT;

/// The longest `timeout` a request may ask for.
pub const MAX_READY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(600);

/// The longest Swarm node id taken (Swarm makes 25 characters).
pub const MAX_NODE_ID: usize = 64;

/// Most samples one push may carry.
pub const MAX_SAMPLES: usize = 1000;

/// One sample of `POST /v1/metrics`.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MetricBody {
    /// The container the value is of.
    #[schema(value_type = ContainerRef)]
    pub container: String,
    /// The metric, as the group's `replicator.autoscale.metric` names it.
    #[schema(value_type = MetricName)]
    pub metric: String,
    /// The value (a finite number).
    pub value: f64,
}

/// A string schema matching `pattern`, described.
fn string(pattern: String, description: &str) -> RefOr<Schema> {
    ObjectBuilder::new().schema_type(Type::String).pattern(Some(pattern)).description(Some(description)).into()
}

/// A JSON Schema keyword utoipa has no field for (`dependentRequired`,
/// `anyOf` beside `properties`, `contentSchema`), written as it is: not as
/// an `x-` extension, which no validator would read.
pub(super) fn keyword(name: &str, value: serde_json::Value) -> Option<Extensions> {
    let mut keywords = Extensions::default();
    keywords.insert(name.to_owned(), value);
    Some(keywords)
}

/// `^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`: a container id or name, a group
/// name, a follower name ([`crate::base::id`]).
pub fn name_pattern() -> String {
    format!("^[A-Za-z0-9][A-Za-z0-9_.-]{{0,{}}}$", MAX_LEN - 1)
}

/// A container id (full or short) or name.
pub struct ContainerRef;

impl PartialSchema for ContainerRef {
    fn schema() -> RefOr<Schema> {
        string(name_pattern(), "A container id (full or short) or name: a letter or digit, then letters, digits, `_`, `.` or `-`; at most 128 characters.")
    }
}

impl ToSchema for ContainerRef {}

/// A group's name (or a follower's: the same syntax).
pub struct GroupName;

impl PartialSchema for GroupName {
    fn schema() -> RefOr<Schema> {
        string(
            name_pattern(),
            "A name: a letter or digit, then letters, digits, `_`, `.` or `-`; at most 128 characters.",
        )
    }
}

impl ToSchema for GroupName {}

/// A Swarm node id, as [`super::nodes`] accepts it.
pub struct NodeId;

impl PartialSchema for NodeId {
    fn schema() -> RefOr<Schema> {
        string(format!("^[a-z0-9]{{1,{}}}$", MAX_NODE_ID), "A Swarm node id: lowercase letters and digits.")
    }
}

impl ToSchema for NodeId {}

/// The longest metric name [`crate::rules::policy::valid_metric_name`] takes.
const MAX_METRIC_NAME: usize = 64;

/// A metric's name ([`crate::rules::policy::valid_metric_name`]).
pub struct MetricName;

impl PartialSchema for MetricName {
    fn schema() -> RefOr<Schema> {
        string(
            format!("^[A-Za-z_][A-Za-z0-9_.:-]{{0,{}}}$", MAX_METRIC_NAME - 1),
            "A metric name: a letter or `_`, then letters, digits, `_`, `.`, `:` or `-`; at most 64 characters.",
        )
    }
}

impl ToSchema for MetricName {}

/// An event id of the stream: any u64.
pub struct EventId;

impl PartialSchema for EventId {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .format(Some(SchemaFormat::Custom("uint64".into())))
            .minimum(Some(0u64 as usize))
            .maximum(Some(u64::MAX as usize))
            .description(Some("An event id (an unsigned 64-bit integer)."))
            .into()
    }
}

impl ToSchema for EventId {}

/// `count`: replicas to make in one request.
pub struct ReplicaCount;

impl PartialSchema for ReplicaCount {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int32)))
            .minimum(Some(1usize))
            .maximum(Some(MAX_COUNT as usize))
            .default(Some(1.into()))
            .description(Some("Replicas to make, all or nothing (digits only)."))
            .into()
    }
}

impl ToSchema for ReplicaCount {}

/// Decimal numbers from 1 to `n` without leading zeros, as a regular
/// expression (an alternation, ungrouped).
fn one_to(n: u64) -> String {
    let digits: Vec<u8> = n.to_string().bytes().map(|b| b - b'0').collect();
    let k = digits.len();
    let mut parts = Vec::new();
    // Fewer digits than n: any number of them.
    if k > 1 {
        parts.push(if k == 2 { "[1-9]".to_owned() } else { format!("[1-9][0-9]{{0,{}}}", k - 2) });
    }
    // As many digits: below n at one position, equal before it.
    for (i, d) in digits.iter().enumerate() {
        let low = if i == 0 { 1 } else { 0 };
        if *d > low {
            let range = if d - 1 == low { low.to_string() } else { format!("[{low}-{}]", d - 1) };
            let rest = k - i - 1;
            let tail = match rest {
                0 => String::new(),
                1 => "[0-9]".to_owned(),
                r => format!("[0-9]{{{r}}}"),
            };
            let prefix: String = digits[..i].iter().map(|d| d.to_string()).collect();
            parts.push(format!("{prefix}{range}{tail}"));
        }
    }
    parts.push(n.to_string());
    parts.join("|")
}

/// What `timeout` takes: a positive duration of at most 600s in `ms`, `s`
/// (or no unit: seconds) or `m`, leading zeros allowed, nothing around it
/// ([`crate::base::duration::parse`] and [`super::query::ready_wait`]).
pub fn timeout_pattern() -> String {
    let millis = MAX_READY_TIMEOUT.as_millis() as u64;
    let mut units = vec![format!("(?:{})ms", one_to(millis)), format!("(?:{})s?", one_to(millis / 1000))];
    for (unit, size) in [("m", 60_000), ("h", 3_600_000)] {
        if millis / size > 0 {
            units.push(format!("(?:{}){unit}", one_to(millis / size)));
        }
    }
    format!("^0*(?:{})$", units.join("|"))
}

/// `timeout`: how long `wait=ready` waits.
pub struct ReadyTimeout;

impl PartialSchema for ReadyTimeout {
    fn schema() -> RefOr<Schema> {
        string(
            timeout_pattern(),
            "With `wait`: how long to wait, from 1ms to 600s, as `500ms`, `30s` (or `30`) or `2m`; 60s when absent.",
        )
    }
}

impl ToSchema for ReadyTimeout {}

/// `wait`: only `ready`.
fn wait_schema(nullable: bool) -> ObjectBuilder {
    let (kind, values): (SchemaType, Vec<serde_json::Value>) = if nullable {
        (SchemaType::from_iter([Type::String, Type::Null]), vec!["ready".into(), serde_json::Value::Null])
    } else {
        (Type::String.into(), vec!["ready".into()])
    };
    ObjectBuilder::new().schema_type(kind).enum_values(Some(values)).description(Some(
        "`ready`: answer once the new members are ready (running, healthy, passing the group's probe).",
    ))
}

/// The query's `wait=ready[&timeout=D]`: one object, exploded into its two
/// parameters, so that the description can say `timeout` needs `wait`.
pub struct Readiness;

impl PartialSchema for Readiness {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .property("wait", wait_schema(false))
            .property("timeout", ReadyTimeout::schema())
            .additional_properties(Some(AdditionalProperties::FreeForm(false)))
            .description(Some("`wait=ready`, and with it optionally `timeout`; `timeout` alone is refused."))
            .extensions(keyword("dependentRequired", serde_json::json!({ "timeout": ["wait"] })))
            .into()
    }
}

impl ToSchema for Readiness {}

/// The body of `PUT /v1/groups/{name}/replicas` (the handler reads it as
/// `routes::ScaleRequest`).
pub struct ScaleRequest;

impl PartialSchema for ScaleRequest {
    fn schema() -> RefOr<Schema> {
        let replicas = ObjectBuilder::new()
            .schema_type(Type::Integer)
            .format(Some(SchemaFormat::Custom("uint32".into())))
            .minimum(Some(0usize))
            .maximum(Some(u32::MAX as usize))
            .description(Some(
                "The size asked for, within the group's bounds (0 puts a `replicator.min=0` group to sleep).",
            ));
        let timeout = ObjectBuilder::new()
            .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
            .pattern(Some(timeout_pattern()))
            .description(Some(
                "With `wait`: how long to wait, from 1ms to 600s (`500ms`, `30s`, `2m`); 60s when absent.",
            ));
        // `timeout` is refused without `wait`: absent or null, or `wait` is there.
        let needs_wait = serde_json::json!([
            { "properties": { "timeout": { "type": "null" } } },
            { "required": ["wait"], "properties": { "wait": { "const": "ready" } } }
        ]);
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .property("replicas", replicas)
            .required("replicas")
            .property("wait", wait_schema(true))
            .property("timeout", timeout)
            .additional_properties(Some(AdditionalProperties::FreeForm(false)))
            .extensions(keyword("anyOf", needs_wait))
            .into()
    }
}

impl ToSchema for ScaleRequest {}

/// The body of `POST /v1/metrics`: one sample, or an array of them.
pub struct MetricPush;

impl PartialSchema for MetricPush {
    fn schema() -> RefOr<Schema> {
        let sample = || RefOr::Ref(Ref::from_schema_name(MetricBody::name()));
        let many = ArrayBuilder::new()
            .items(sample())
            .min_items(Some(1))
            .max_items(Some(MAX_SAMPLES))
            .description(Some("Up to 1000 samples at once"));
        OneOfBuilder::new().item(sample()).item(many).description(Some("One sample, or an array of 1 to 1000")).into()
    }
}

impl ToSchema for MetricPush {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((MetricBody::name().into_owned(), MetricBody::schema()));
        MetricBody::schemas(schemas);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::duration;

    #[test]
    fn the_metric_name_length_is_the_policys() {
        use crate::rules::policy::valid_metric_name;
        assert!(valid_metric_name(&"m".repeat(MAX_METRIC_NAME)));
        assert!(!valid_metric_name(&"m".repeat(MAX_METRIC_NAME + 1)));
    }

    #[test]
    fn numbers_up_to_n_as_a_pattern() {
        assert_eq!(one_to(600), "[1-9][0-9]{0,1}|[1-5][0-9]{2}|600");
        assert_eq!(one_to(10), "[1-9]|10");
        assert_eq!(one_to(9), "[1-8]|9");
        assert_eq!(one_to(1), "1");
        assert_eq!(one_to(600_000), "[1-9][0-9]{0,4}|[1-5][0-9]{5}|600000");
        assert_eq!(one_to(250), "[1-9][0-9]{0,1}|1[0-9]{2}|2[0-4][0-9]|250");
    }

    #[test]
    fn the_timeout_pattern_is_the_parsers_reading() {
        assert_eq!(MAX_READY_TIMEOUT, std::time::Duration::from_secs(600), "timeout_pattern writes its units from it");
        assert_eq!(
            timeout_pattern(),
            "^0*(?:(?:[1-9][0-9]{0,4}|[1-5][0-9]{5}|600000)ms|(?:[1-9][0-9]{0,1}|[1-5][0-9]{2}|600)s?|(?:[1-9]|10)m)$"
        );
        // The boundaries the pattern draws, as the parser sees them.
        for ok in ["1ms", "600000ms", "1", "600s", "0600s", "10m", "1m"] {
            let d = duration::parse_positive(ok).unwrap();
            assert!(d <= MAX_READY_TIMEOUT, "{ok}");
        }
        for over in ["600001ms", "601s", "11m", "1h"] {
            assert!(duration::parse_positive(over).unwrap() > MAX_READY_TIMEOUT, "{over}");
        }
    }
}
