//! Readiness probes replicator runs itself, for images without a
//! `HEALTHCHECK`: one label on the original, in the shape of a Kubernetes
//! readiness probe, and the pure rules of how its results add up.
//!
//! `replicator.ready=tcp:PORT` or `replicator.ready=http:PORT/PATH`, then
//! optional `,key=value` settings: `period` (between probes once ready,
//! default 2s), `timeout` (each probe, 1s), `successes` (in a row to become
//! ready, 1), `failures` (in a row to stop being ready, 3), `network` (the
//! network whose address is probed). Until its first success a member is
//! probed every [`STARTING_PERIOD`], since requests may be waiting on it.

use std::collections::BTreeMap;
use std::time::Duration;

use super::labels::{LabelError, READY};

/// How often a member that has not been ready yet is probed.
pub const STARTING_PERIOD: Duration = Duration::from_millis(100);
/// Longest period or timeout a probe may ask for.
const LONGEST: Duration = Duration::from_secs(3600);
/// Most successes or failures a threshold may ask for.
const MOST_IN_A_ROW: u32 = 100;

/// What a probe checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// A TCP connection to the port is accepted.
    Tcp,
    /// `GET path` answers 2xx or 3xx.
    Http {
        /// Starts with `/`; printable ASCII without spaces or commas.
        path: String,
    },
}

/// One group's probe, from `replicator.ready`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeSpec {
    /// What is checked.
    pub check: Check,
    /// The members' port.
    pub port: u16,
    /// Between probes once ready.
    pub period: Duration,
    /// Each probe's deadline.
    pub timeout: Duration,
    /// Passes in a row that make a member ready.
    pub successes: u32,
    /// Failures in a row that make a ready member not ready.
    pub failures: u32,
    /// The network whose address is probed; `None`: the first with an address.
    pub network: Option<String>,
}

impl ProbeSpec {
    /// The probe a group declares; `None` when it declares none.
    pub fn from_labels(labels: &BTreeMap<String, String>) -> Result<Option<Self>, LabelError> {
        labels
            .get(READY)
            .map(|raw| Self::parse(raw).map_err(|problem| LabelError::new(READY, raw, problem)))
            .transpose()
    }

    /// `tcp:PORT` or `http:PORT/PATH`, then `,key=value` settings.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let mut parts = raw.trim().split(',');
        let target = parts.next().unwrap_or_default().trim();
        let (check, port) = parse_target(target)?;
        let mut spec = ProbeSpec {
            check,
            port,
            period: Duration::from_secs(2),
            timeout: Duration::from_secs(1),
            successes: 1,
            failures: 3,
            network: None,
        };
        for setting in parts {
            let (key, value) = setting
                .split_once('=')
                .ok_or_else(|| format!("setting {:?} is not key=value", crate::base::quote::clip(setting)))?;
            spec.set(key.trim(), value.trim())?;
        }
        Ok(spec)
    }

    fn set(&mut self, key: &str, value: &str) -> Result<(), String> {
        let duration = |v: &str| {
            crate::base::duration::parse_positive(v).and_then(|d| {
                if d > LONGEST {
                    Err(format!("{key} may be at most 1h"))
                } else {
                    Ok(d)
                }
            })
        };
        let count = |v: &str| {
            v.parse::<u32>()
                .ok()
                .filter(|n| (1..=MOST_IN_A_ROW).contains(n))
                .ok_or_else(|| format!("{key} must be a whole number from 1 to {MOST_IN_A_ROW}"))
        };
        match key {
            "period" => self.period = duration(value)?,
            "timeout" => self.timeout = duration(value)?,
            "successes" => self.successes = count(value)?,
            "failures" => self.failures = count(value)?,
            "network" => {
                crate::base::id::GroupName::parse(value).map_err(|_| format!("{value:?} is not a network name"))?;
                self.network = Some(value.to_owned());
            }
            other => {
                return Err(format!(
                    "unknown setting {:?}: use period, timeout, successes, failures or network",
                    crate::base::quote::clip(other)
                ))
            }
        }
        Ok(())
    }
}

fn parse_target(target: &str) -> Result<(Check, u16), String> {
    let (kind, rest) = target.split_once(':').ok_or("must start with tcp:PORT or http:PORT/PATH")?;
    let (port, path) = match rest.find('/') {
        Some(at) => rest.split_at(at),
        None => (rest, ""),
    };
    let port = port.parse::<u16>().ok().filter(|p| *p > 0).ok_or("names no port from 1 to 65535")?;
    let check = match (kind, path) {
        ("tcp", "") => Check::Tcp,
        ("tcp", _) => return Err("a tcp probe takes no path".into()),
        ("http", "") => Check::Http { path: "/".into() },
        ("http", path) if path.bytes().all(|b| b.is_ascii_graphic()) => Check::Http { path: path.to_owned() },
        ("http", _) => return Err("the path must be printable ASCII without spaces".into()),
        _ => return Err("must start with tcp: or http:".into()),
    };
    Ok((check, port))
}

/// What the probes of one member have found so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    /// Passes in a row.
    pub successes: u32,
    /// Failures in a row.
    pub failures: u32,
    /// Whether the member is ready by its probe.
    pub ready: bool,
    /// Whether it has ever been ready since it started (it is probed less often then).
    pub was_ready: bool,
    /// Why the last probe failed.
    pub last_failure: Option<String>,
}

impl Tally {
    /// Adds one probe's outcome: `successes` passes in a row make the member
    /// ready, `failures` failures in a row make it not ready.
    pub fn add(&mut self, spec: &ProbeSpec, outcome: Result<(), String>) {
        match outcome {
            Ok(()) => {
                self.successes = self.successes.saturating_add(1);
                self.failures = 0;
                if self.successes >= spec.successes {
                    self.ready = true;
                    self.was_ready = true;
                    self.last_failure = None;
                }
            }
            Err(why) => {
                self.failures = self.failures.saturating_add(1);
                self.successes = 0;
                self.last_failure = Some(why);
                if self.failures >= spec.failures {
                    self.ready = false;
                }
            }
        }
    }

    /// How long until the next probe.
    pub fn next_in(&self, spec: &ProbeSpec) -> Duration {
        if self.was_ready {
            spec.period
        } else {
            STARTING_PERIOD.min(spec.period)
        }
    }
}

/// Whether an HTTP status line's code counts as a pass (2xx or 3xx).
pub fn passes(status: u16) -> bool {
    (200..400).contains(&status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tcp_probe_names_a_port_and_takes_defaults() {
        let spec = ProbeSpec::parse("tcp:6379").unwrap();
        assert_eq!(spec.check, Check::Tcp);
        assert_eq!((spec.port, spec.period, spec.timeout), (6379, Duration::from_secs(2), Duration::from_secs(1)));
        assert_eq!((spec.successes, spec.failures, spec.network), (1, 3, None));
    }

    #[test]
    fn an_http_probe_names_a_path_and_settings() {
        let spec =
            ProbeSpec::parse("http:8080/healthz?full=1,period=500ms,timeout=200ms,successes=2,failures=5,network=web")
                .unwrap();
        assert_eq!(spec.check, Check::Http { path: "/healthz?full=1".into() });
        assert_eq!(spec.period, Duration::from_millis(500));
        assert_eq!(spec.timeout, Duration::from_millis(200));
        assert_eq!((spec.successes, spec.failures), (2, 5));
        assert_eq!(spec.network.as_deref(), Some("web"));
        assert_eq!(ProbeSpec::parse("http:80").unwrap().check, Check::Http { path: "/".into() });
    }

    #[test]
    fn a_malformed_probe_says_what_is_wrong() {
        for (raw, says) in [
            ("8080", "tcp:PORT"),
            ("udp:53", "tcp: or http:"),
            ("tcp:0", "port"),
            ("tcp:99999", "port"),
            ("tcp:80/x", "no path"),
            ("http:80/a b", "printable"),
            ("tcp:80,period=0s", "above zero"),
            ("tcp:80,period=2h", "at most 1h"),
            ("tcp:80,failures=0", "1 to 100"),
            ("tcp:80,retries=3", "unknown setting"),
            ("tcp:80,period", "key=value"),
            ("tcp:80,network=../x", "network name"),
        ] {
            let e = ProbeSpec::parse(raw).unwrap_err();
            assert!(e.contains(says), "{raw}: {e}");
        }
    }

    #[test]
    fn the_label_error_names_the_label() {
        let labels = BTreeMap::from([(READY.to_owned(), "tcp:x".to_owned())]);
        assert!(ProbeSpec::from_labels(&labels).unwrap_err().to_string().starts_with("label replicator.ready="));
        assert_eq!(ProbeSpec::from_labels(&BTreeMap::new()), Ok(None));
    }

    #[test]
    fn successes_in_a_row_make_ready_and_failures_in_a_row_unready() {
        let spec = ProbeSpec::parse("tcp:80,successes=2,failures=2").unwrap();
        let mut t = Tally::default();
        t.add(&spec, Ok(()));
        assert!(!t.ready, "one pass of two");
        t.add(&spec, Err("refused".into()));
        t.add(&spec, Ok(()));
        assert!(!t.ready, "a failure resets the passes");
        t.add(&spec, Ok(()));
        assert!(t.ready);
        t.add(&spec, Err("refused".into()));
        assert!(t.ready, "one failure of two");
        t.add(&spec, Err("refused".into()));
        assert!(!t.ready);
        assert_eq!(t.last_failure.as_deref(), Some("refused"));
    }

    #[test]
    fn a_member_never_ready_is_probed_often_then_at_its_period() {
        let spec = ProbeSpec::parse("tcp:80,period=5s").unwrap();
        let mut t = Tally::default();
        assert_eq!(t.next_in(&spec), STARTING_PERIOD);
        t.add(&spec, Ok(()));
        assert_eq!(t.next_in(&spec), Duration::from_secs(5));
    }

    #[test]
    fn two_and_three_hundreds_pass() {
        assert!(passes(200) && passes(204) && passes(302));
        assert!(!passes(404) && !passes(500) && !passes(101));
    }
}
