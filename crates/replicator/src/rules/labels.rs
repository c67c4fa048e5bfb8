//! The label names replicator reads and writes, and the one syntax for each
//! kind of value: one place, so the docs, the planner, the group rules and
//! the autoscaler cannot drift apart.

use std::collections::BTreeMap;

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
/// How a group at zero sleeps: `pause` (default; wakes in milliseconds) or
/// `stop` (frees its memory; wakes with a cold start).
pub const SLEEP: &str = "replicator.sleep";
/// Paused, ready standby clones the group keeps beside its members (0-10).
pub const WARM: &str = "replicator.warm";
/// The members' port that requests held by the wake listener go to: the
/// group opts in to wake on request with it.
pub const WAKE_PORT: &str = "replicator.wake.port";
/// The network whose address the wake listener forwards to (else the host
/// port the member publishes for `replicator.wake.port`).
pub const WAKE_NETWORK: &str = "replicator.wake.network";
/// Requests the wake listener neither wakes the group for nor counts as
/// activity: health checks (`/healthz,agent=kube-probe`).
pub const WAKE_IGNORE: &str = "replicator.wake.ignore";
/// A browser's request to a sleeping or waking group gets a waiting page.
pub const WAKE_PAGE: &str = "replicator.wake.page";
/// The protocol held requests are forwarded in: `http1` (the default) or
/// `h2c` (HTTP/2 with prior knowledge, as gRPC servers speak it).
pub const WAKE_PROTOCOL: &str = "replicator.wake.protocol";
/// How many members a sleeping group wakes to (default 1: its originals).
pub const WAKE_REPLICAS: &str = "replicator.wake.replicas";
/// A readiness probe replicator runs (see [`crate::rules::readiness`]).
pub const READY: &str = "replicator.ready";
/// The quiet period after which a group no request reached goes to sleep
/// (Sablier's session duration); needs `replicator.min=0`.
pub const SLEEP_AFTER: &str = "replicator.sleep.after";
/// On a clone made for the warm pool: it is a standby until replicator unpauses it.
pub const STANDBY: &str = "replicator.standby";
/// Most standbys a group may ask for.
pub const MAX_WARM: u32 = 10;
/// The replication request a replica was made by: a request that did not
/// finish (replicator died) is undone whole by the reconcile pass.
pub const REQUEST: &str = "replicator.request";
/// How many replicas that request asked for (for people reading labels).
pub const REQUEST_SIZE: &str = "replicator.request-size";

/// Compose's project of a container.
pub const COMPOSE_PROJECT: &str = "com.docker.compose.project";
/// Compose's service of a container.
pub const COMPOSE_SERVICE: &str = "com.docker.compose.service";
/// Compose's number of a container within its service.
pub const COMPOSE_NUMBER: &str = "com.docker.compose.container-number";
/// Set by `docker-compose run`: never a group member.
pub const COMPOSE_ONEOFF: &str = "com.docker.compose.oneoff";
/// The Swarm service a task container belongs to.
pub const SWARM_SERVICE_ID: &str = "com.docker.swarm.service.id";
/// The name of that service.
pub const SWARM_SERVICE_NAME: &str = "com.docker.swarm.service.name";

/// Largest count a label may hold: far above any sane group, far below overflow.
pub const MAX_COUNT: u32 = 1_000_000;

/// Where the wake listener sends a group's requests, from its labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WakeRoute {
    /// The members' port.
    pub port: u16,
    /// The network whose address to use; `None`: the published host port.
    pub network: Option<String>,
    /// Requests that neither wake the group nor keep it awake.
    pub ignore: Vec<Ignore>,
    /// A browser gets a waiting page instead of being held (`replicator.wake.page`).
    pub page: bool,
    /// What the members speak (`replicator.wake.protocol`).
    pub protocol: WakeProtocol,
}

/// The protocol a group's members take held requests in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum WakeProtocol {
    /// HTTP/1.1.
    #[default]
    Http1,
    /// HTTP/2 with prior knowledge, trailers included (gRPC).
    H2c,
}

/// A request the wake listener does not take for the group's own traffic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ignore {
    /// Its path starts with this.
    Path(String),
    /// Its `User-Agent` contains this.
    Agent(String),
}

impl WakeRoute {
    /// Whether a request with this path and user agent is a health check to ignore.
    pub fn ignores(&self, path: &str, agent: Option<&str>) -> bool {
        self.ignore.iter().any(|rule| match rule {
            Ignore::Path(prefix) => path.starts_with(prefix.as_str()),
            Ignore::Agent(text) => agent.is_some_and(|a| a.contains(text.as_str())),
        })
    }
}

/// `replicator.wake.ignore`: comma-separated path prefixes (`/healthz`) and
/// user-agent substrings (`agent=kube-probe`).
fn ignore_rules(labels: &BTreeMap<String, String>) -> Result<Vec<Ignore>, LabelError> {
    let Some(raw) = labels.get(WAKE_IGNORE) else { return Ok(Vec::new()) };
    let wrong = |problem: &str| LabelError::new(WAKE_IGNORE, raw, problem);
    raw.split(',')
        .map(str::trim)
        .map(|entry| match entry.strip_prefix("agent=") {
            Some(text) if !text.is_empty() && text.bytes().all(|b| b == b' ' || b.is_ascii_graphic()) => {
                Ok(Ignore::Agent(text.to_owned()))
            }
            Some(_) => Err(wrong("has an empty or unprintable agent=")),
            None if entry.starts_with('/') && entry.bytes().all(|b| b.is_ascii_graphic()) => {
                Ok(Ignore::Path(entry.to_owned()))
            }
            None => Err(wrong("holds an entry that is neither a path (/healthz) nor agent=TEXT")),
        })
        .collect()
}

/// `replicator.sleep.after`: the quiet period, `None` when absent.
pub fn sleep_after(labels: &BTreeMap<String, String>) -> Result<Option<std::time::Duration>, LabelError> {
    let Some(raw) = labels.get(SLEEP_AFTER) else { return Ok(None) };
    let quiet = crate::base::duration::parse_positive(raw).map_err(|e| LabelError::new(SLEEP_AFTER, raw, e))?;
    if quiet < std::time::Duration::from_secs(1) {
        return Err(LabelError::new(SLEEP_AFTER, raw, "must be at least 1s"));
    }
    Ok(Some(quiet))
}

/// `replicator.wake.replicas`: how many members a wake brings up, `None`
/// when absent (its originals only).
pub fn wake_replicas(labels: &BTreeMap<String, String>) -> Result<Option<u32>, LabelError> {
    let Some(raw) = labels.get(WAKE_REPLICAS) else { return Ok(None) };
    match raw.parse::<u32>() {
        Ok(n) if (1..=1000).contains(&n) => Ok(Some(n)),
        _ => Err(LabelError::new(WAKE_REPLICAS, raw, "must be a whole number from 1 to 1000")),
    }
}

/// `replicator.wake.port` (and `.network`): `None` when the group did not
/// opt in to wake on request.
pub fn wake_route(labels: &BTreeMap<String, String>) -> Result<Option<WakeRoute>, LabelError> {
    let Some(port) = labels.get(WAKE_PORT) else {
        return match [WAKE_NETWORK, WAKE_IGNORE, WAKE_PAGE, WAKE_PROTOCOL]
            .iter()
            .find_map(|k| Some((k, labels.get(*k)?)))
        {
            Some((key, value)) => Err(LabelError::new(key, value, format!("needs {WAKE_PORT}"))),
            None => Ok(None),
        };
    };
    let port = port
        .trim()
        .parse::<u16>()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| LabelError::new(WAKE_PORT, port, "is not a port from 1 to 65535"))?;
    let network = match labels.get(WAKE_NETWORK) {
        Some(n) if crate::base::id::GroupName::parse(n).is_ok() => Some(n.clone()),
        Some(n) => return Err(LabelError::new(WAKE_NETWORK, n, "is not a network name")),
        None => None,
    };
    let page = match labels.get(WAKE_PAGE).map(|v| v.trim()) {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => return Err(LabelError::new(WAKE_PAGE, other, "must be true or false")),
    };
    let protocol = match labels.get(WAKE_PROTOCOL).map(|v| v.trim()) {
        None | Some("http1") => WakeProtocol::Http1,
        Some("h2c") => WakeProtocol::H2c,
        Some(other) => return Err(LabelError::new(WAKE_PROTOCOL, other, "must be http1 or h2c")),
    };
    Ok(Some(WakeRoute { port, network, ignore: ignore_rules(labels)?, page, protocol }))
}

/// A label value replicator cannot use, with the label named.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("label {key}={value:?} {problem}")]
pub struct LabelError {
    /// The label's name.
    pub key: String,
    /// A short prefix of its value.
    pub value: String,
    /// What is wrong, for the operator.
    pub problem: String,
}

impl LabelError {
    /// Names the label and at most a short prefix of its value.
    pub fn new(key: &str, value: &str, problem: impl Into<String>) -> Self {
        Self { key: key.to_owned(), value: crate::base::quote::clip(value), problem: problem.into() }
    }
}

/// Booleans as docker and Traefik read them (Go's `strconv.ParseBool`):
/// `1 t T TRUE true True` and `0 f F FALSE false False`.
pub fn parse_bool(value: &str) -> Option<bool> {
    match value {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// A boolean label: `default` when absent, an error naming it when malformed.
pub fn flag(labels: &BTreeMap<String, String>, key: &str, default: bool) -> Result<bool, LabelError> {
    match labels.get(key) {
        None => Ok(default),
        Some(v) => parse_bool(v).ok_or_else(|| LabelError::new(key, v, "is not a boolean (true or false)")),
    }
}

/// Whether the label is present and true; a malformed value is not true.
pub fn is_true(labels: &BTreeMap<String, String>, key: &str) -> bool {
    labels.get(key).and_then(|v| parse_bool(v)) == Some(true)
}

/// A count label (1 ..= [`MAX_COUNT`]): `default` when absent, an error
/// naming the label and what is wrong with it otherwise.
pub fn positive_count(labels: &BTreeMap<String, String>, key: &str, default: u32) -> Result<u32, LabelError> {
    count_from(labels, key, default, 1)
}

/// A count label (`least` ..= [`MAX_COUNT`]): `default` when absent.
pub fn count_from(labels: &BTreeMap<String, String>, key: &str, default: u32, least: u32) -> Result<u32, LabelError> {
    let Some(v) = labels.get(key) else { return Ok(default) };
    let digits = v.trim();
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        let what = if least == 0 { "is not a whole number" } else { "is not a positive integer" };
        return Err(LabelError::new(key, v, what));
    }
    match digits.parse::<u64>() {
        Ok(n) if n < u64::from(least) => Err(LabelError::new(key, v, format!("must be at least {least}"))),
        Ok(n) if n <= u64::from(MAX_COUNT) => Ok(n as u32),
        _ => Err(LabelError::new(key, v, format!("is too large (at most {MAX_COUNT})"))),
    }
}

/// `serve --selector KEY=VALUE`: the label a container (or Swarm service) must
/// carry for this replicator to manage it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector {
    /// The label's name.
    pub key: String,
    /// The value it must have.
    pub value: String,
}

impl Selector {
    /// `KEY=VALUE`, the key not empty.
    pub fn parse(text: &str) -> Result<Self, String> {
        match text.split_once('=') {
            Some((key, value)) if !key.trim().is_empty() => Ok(Self { key: key.trim().into(), value: value.into() }),
            _ => Err(format!("{text:?} is not KEY=VALUE")),
        }
    }

    /// Whether a container or service with these labels is ours to manage.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn booleans_follow_go_parse_bool() {
        for yes in ["1", "t", "T", "TRUE", "true", "True"] {
            assert_eq!(parse_bool(yes), Some(true), "{yes}");
        }
        for no in ["0", "f", "F", "FALSE", "false", "False"] {
            assert_eq!(parse_bool(no), Some(false), "{no}");
        }
        for neither in ["yes", "on", "tRUE", " true", "", "2"] {
            assert_eq!(parse_bool(neither), None, "{neither:?}");
        }
    }

    #[test]
    fn a_malformed_flag_is_an_error_naming_the_label() {
        let l = labels(&[("replicator.enable", "yes")]);
        assert!(!is_true(&l, ENABLE));
        assert_eq!(
            flag(&l, ENABLE, false).unwrap_err().to_string(),
            "label replicator.enable=\"yes\" is not a boolean (true or false)"
        );
        assert_eq!(flag(&labels(&[]), ENABLE, true), Ok(true));
    }

    #[test]
    fn health_checks_are_told_apart_by_path_prefix_or_agent() {
        let l = labels(&[(WAKE_PORT, "80"), (WAKE_IGNORE, "/healthz, agent=kube-probe")]);
        let route = wake_route(&l).unwrap().unwrap();
        assert!(route.ignores("/healthz/deep", None));
        assert!(route.ignores("/", Some("kube-probe/1.29")));
        assert!(!route.ignores("/api", Some("curl/8")));
        for bad in ["healthz", "/a b", "agent=", ""] {
            let l = labels(&[(WAKE_PORT, "80"), (WAKE_IGNORE, bad)]);
            assert!(wake_route(&l).unwrap_err().to_string().contains(WAKE_IGNORE), "{bad:?}");
        }
        assert!(wake_route(&labels(&[(WAKE_IGNORE, "/h")])).unwrap_err().problem.contains("needs"));
    }

    #[test]
    fn a_wake_protocol_is_http1_by_default_h2c_when_asked_and_nothing_else() {
        let protocol = |value: Option<&str>| {
            let mut l = labels(&[(WAKE_PORT, "50051")]);
            if let Some(v) = value {
                l.insert(WAKE_PROTOCOL.into(), v.into());
            }
            wake_route(&l).map(|r| r.unwrap().protocol)
        };
        assert_eq!(protocol(None), Ok(WakeProtocol::Http1));
        assert_eq!(protocol(Some("http1")), Ok(WakeProtocol::Http1));
        assert_eq!(protocol(Some("h2c")), Ok(WakeProtocol::H2c));
        for bad in ["h2", "HTTP/2", "grpc", ""] {
            assert!(protocol(Some(bad)).unwrap_err().to_string().contains("must be http1 or h2c"), "{bad:?}");
        }
        let alone = wake_route(&labels(&[(WAKE_PROTOCOL, "h2c")])).unwrap_err();
        assert_eq!((alone.key.as_str(), alone.problem.contains("needs")), (WAKE_PROTOCOL, true));
    }

    #[test]
    fn a_quiet_period_is_a_duration_of_at_least_a_second() {
        assert_eq!(sleep_after(&labels(&[(SLEEP_AFTER, "30s")])), Ok(Some(std::time::Duration::from_secs(30))));
        assert_eq!(wake_replicas(&labels(&[(WAKE_REPLICAS, "3")])), Ok(Some(3)));
        assert_eq!(wake_replicas(&labels(&[])), Ok(None));
        for bad in ["0", "-1", "1001", "three", ""] {
            assert!(wake_replicas(&labels(&[(WAKE_REPLICAS, bad)])).is_err(), "{bad}");
        }
        assert_eq!(sleep_after(&labels(&[])), Ok(None));
        for bad in ["0s", "500ms", "soon", "-1s"] {
            assert!(sleep_after(&labels(&[(SLEEP_AFTER, bad)])).is_err(), "{bad}");
        }
    }

    #[test]
    fn counts_say_what_is_wrong() {
        let count = |v: &str| positive_count(&labels(&[("replicator.max", v)]), MAX, 10);
        assert_eq!(count("3"), Ok(3));
        assert_eq!(count(" 3 "), Ok(3));
        assert!(count("0").unwrap_err().problem.contains("at least 1"));
        assert!(count("-1").unwrap_err().problem.contains("not a positive integer"));
        assert!(count("lots").unwrap_err().problem.contains("not a positive integer"));
        assert!(count("99999999999").unwrap_err().problem.contains("too large"));
        assert!(count(&"9".repeat(300)).unwrap_err().to_string().len() < 150, "the value is not echoed whole");
        assert_eq!(positive_count(&labels(&[]), MAX, 10), Ok(10));
    }
}
