//! A group's autoscaling policy, read from the labels on its original (or its
//! Swarm service). Pure; a malformed label yields a reason, never a panic.
//! It lives beside the group rules (not in the autoscaler) because the
//! inventory reads it once per group for every consumer.

use std::collections::BTreeMap;

use serde::Serialize;

use std::time::Duration;

use crate::base::duration;
use crate::rules::bounds::Bounds;

/// Label naming the metric (`cpu`, `memory`, `prometheus` or a pushed name); it turns autoscaling on.
pub const METRIC: &str = "replicator.autoscale.metric";
/// Label with the per-member value to steer the average to; required with [`METRIC`].
pub const TARGET: &str = "replicator.autoscale.target";
/// Label with the fewest members autoscaling keeps (default 1, never below the group's min).
pub const MIN: &str = "replicator.autoscale.min";
/// Label with the most members autoscaling runs (never above the group's max).
pub const MAX: &str = "replicator.autoscale.max";
/// Label with the PromQL query; required when [`METRIC`] is `prometheus`.
pub const QUERY: &str = "replicator.autoscale.query";
/// Label with the most members one decision adds.
pub const STEP_UP: &str = "replicator.autoscale.step-up";
/// Label with the most members one decision removes.
pub const STEP_DOWN: &str = "replicator.autoscale.step-down";
/// Label with the least time between two scale-ups, as a duration (`30s`, `5m`).
pub const COOLDOWN_UP: &str = "replicator.autoscale.cooldown-up";
/// Label with the least time between two scale-downs, as a duration.
pub const COOLDOWN_DOWN: &str = "replicator.autoscale.cooldown-down";
/// Label that, when true, has decisions reported but never applied.
pub const DRY_RUN: &str = "replicator.autoscale.dry-run";
/// Label that, when false, keeps the group out of burst mode (`serve --burst-window`).
pub const BURST: &str = "replicator.autoscale.burst";
/// Label with the metric value at or below which a group with min 0 goes
/// to sleep, and above which a sleeping one wakes (default 0).
pub const ACTIVATION: &str = "replicator.autoscale.activation";

/// Where the per-member values come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(into = "String")]
pub enum Metric {
    /// Percent of one core, from the engine's stats (as `docker stats`).
    Cpu,
    /// Percent of the container's memory limit, from the engine's stats.
    Memory,
    /// A value containers push to `POST /v1/metrics` under this name.
    Pushed(String),
    /// A PromQL query returning the group's total (divided by the running members).
    Prometheus(String),
    /// Open connections through the group's TCP front, per member, averaged
    /// over the autoscaler's interval.
    Connections,
}

impl From<Metric> for String {
    fn from(m: Metric) -> String {
        m.name().to_owned()
    }
}

impl Metric {
    /// The label value that selects the metric (`prometheus` for any query), as the API shows it.
    pub fn name(&self) -> &str {
        match self {
            Metric::Cpu => "cpu",
            Metric::Memory => "memory",
            Metric::Pushed(n) => n,
            Metric::Prometheus(_) => "prometheus",
            Metric::Connections => "connections",
        }
    }
}

/// How a group autoscales.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// What is measured on each member.
    pub metric: Metric,
    /// Per-member average to steer towards, in the metric's unit; positive and finite.
    pub target: f64,
    /// Fewest members, already raised to the group's own min.
    pub min: u32,
    /// Most members, already capped at the group's own max.
    pub max: u32,
    /// Most members one decision adds (default max(4, current)).
    pub step_up: Option<u32>,
    /// Most members one decision removes (default: unbounded).
    pub step_down: Option<u32>,
    /// Least time between two scale-ups (default 0).
    pub cooldown_up: Option<Duration>,
    /// Least time between two scale-downs (default: the stabilization window).
    pub cooldown_down: Option<Duration>,
    /// Decide and report, never apply.
    pub dry_run: bool,
    /// At or below it a group whose min is 0 sleeps; above it, it wakes.
    pub activation: f64,
    /// Whether burst mode applies to the group (default true).
    pub burst: bool,
}

/// A metric name a container may push: short, plain, like a Prometheus name.
pub fn valid_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= 64
        && chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-'))
}

/// `Ok(None)`: the group does not autoscale. `Err`: it asked to, but the labels are wrong.
pub fn read(labels: &BTreeMap<String, String>, group: Bounds) -> Result<Option<Policy>, String> {
    let Some(metric) = metric_of(labels)? else { return Ok(None) };
    let target = target_of(labels)?;
    let (min, max) = bounds_of(labels, group)?;
    let count =
        |key: &str, default: u32| crate::rules::labels::positive_count(labels, key, default).map_err(|e| e.to_string());
    let optional_count = |key: &str| labels.get(key).map(|_| count(key, 1)).transpose();
    let optional_duration =
        |key: &str| labels.get(key).map(|v| duration::parse(v).map_err(|e| format!("label {key}: {e}"))).transpose();
    Ok(Some(Policy {
        metric,
        target,
        min,
        max,
        step_up: optional_count(STEP_UP)?,
        step_down: optional_count(STEP_DOWN)?,
        cooldown_up: optional_duration(COOLDOWN_UP)?,
        cooldown_down: optional_duration(COOLDOWN_DOWN)?,
        dry_run: crate::rules::labels::flag(labels, DRY_RUN, false).map_err(|e| e.to_string())?,
        activation: activation_of(labels)?,
        burst: crate::rules::labels::flag(labels, BURST, true).map_err(|e| e.to_string())?,
    }))
}

/// What the group measures; `None` when it does not autoscale.
fn metric_of(labels: &BTreeMap<String, String>) -> Result<Option<Metric>, String> {
    let Some(metric) = labels.get(METRIC).map(|m| m.trim()) else { return Ok(None) };
    Ok(Some(match metric {
        "cpu" => Metric::Cpu,
        "memory" => Metric::Memory,
        "connections" => Metric::Connections,
        "prometheus" => match labels.get(QUERY).map(|q| q.trim()).filter(|q| !q.is_empty()) {
            Some(query) => Metric::Prometheus(query.to_owned()),
            None => return Err(format!("label {QUERY} is required with {METRIC}=prometheus")),
        },
        name if valid_metric_name(name) => Metric::Pushed(name.to_owned()),
        other => {
            return Err(format!(
                "label {METRIC}={:?} is not cpu, memory, connections, prometheus or a metric name",
                crate::base::quote::clip(other)
            ))
        }
    }))
}

/// The per-member target: a positive, finite number.
fn target_of(labels: &BTreeMap<String, String>) -> Result<f64, String> {
    let target = labels.get(TARGET).ok_or_else(|| format!("label {TARGET} is required with {METRIC}"))?;
    target
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|t| t.is_finite() && *t > 0.0)
        .ok_or_else(|| format!("label {TARGET}={:?} is not a positive number", crate::base::quote::clip(target)))
}

/// The autoscaler's bounds, within the group's own whatever the labels say;
/// 0 only when asked for, and only for a group whose own min allows it.
fn bounds_of(labels: &BTreeMap<String, String>, group: Bounds) -> Result<(u32, u32), String> {
    let max = crate::rules::labels::positive_count(labels, MAX, group.max).map_err(|e| e.to_string())?.min(group.max);
    let min = crate::rules::labels::count_from(labels, MIN, 1, 0).map_err(|e| e.to_string())?;
    if min == 0 && group.min > 0 {
        return Err(format!("label {MIN}=0 needs the group's {}=0 (sleeping at zero)", crate::rules::labels::MIN));
    }
    let min = min.max(group.min);
    if min > max {
        return Err(format!(
            "autoscale bounds are empty: min {min} is above max {max} (group bounds [{}, {}])",
            group.min, group.max
        ));
    }
    Ok((min, max))
}

/// At or below it a group whose min is 0 sleeps (default 0).
fn activation_of(labels: &BTreeMap<String, String>) -> Result<f64, String> {
    match labels.get(ACTIVATION) {
        None => Ok(0.0),
        Some(raw) => raw.trim().parse::<f64>().ok().filter(|a| a.is_finite() && *a >= 0.0).ok_or_else(|| {
            format!("label {ACTIVATION}={:?} is not a number of at least 0", crate::base::quote::clip(raw))
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GROUP: Bounds = Bounds { min: 1, max: 5 };

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn no_metric_label_means_no_autoscaling() {
        assert_eq!(read(&labels(&[]), GROUP), Ok(None));
    }

    #[test]
    fn reads_metric_target_and_bounds() {
        let p = read(&labels(&[(METRIC, "rps"), (TARGET, "20.5"), (MIN, "2"), (MAX, "4")]), GROUP).unwrap().unwrap();
        assert_eq!((p.metric, p.target, p.min, p.max), (Metric::Pushed("rps".into()), 20.5, 2, 4));
        assert_eq!(
            (p.step_up, p.step_down, p.cooldown_up, p.cooldown_down, p.dry_run),
            (None, None, None, None, false)
        );
        let p = read(&labels(&[(METRIC, "cpu"), (TARGET, "50")]), GROUP).unwrap().unwrap();
        assert_eq!((p.metric, p.min, p.max), (Metric::Cpu, 1, 5));
    }

    #[test]
    fn reads_the_parity_labels() {
        let p = read(
            &labels(&[
                (METRIC, "prometheus"),
                (QUERY, "sum(rate(http_requests_total[1m]))"),
                (TARGET, "100"),
                (STEP_UP, "2"),
                (STEP_DOWN, "1"),
                (COOLDOWN_UP, "30s"),
                (COOLDOWN_DOWN, "5m"),
                (DRY_RUN, "true"),
            ]),
            GROUP,
        )
        .unwrap()
        .unwrap();
        assert_eq!(p.metric, Metric::Prometheus("sum(rate(http_requests_total[1m]))".into()));
        assert_eq!((p.step_up, p.step_down), (Some(2), Some(1)));
        assert_eq!((p.cooldown_up, p.cooldown_down), (Some(Duration::from_secs(30)), Some(Duration::from_secs(300))));
        assert!(p.dry_run);
    }

    #[test]
    fn max_never_exceeds_the_group_limit() {
        let p = read(&labels(&[(METRIC, "memory"), (TARGET, "80"), (MAX, "50")]), GROUP).unwrap().unwrap();
        assert_eq!(p.max, 5);
    }

    #[test]
    fn malformed_labels_give_a_reason() {
        for bad in [
            vec![(METRIC, "cpu")],
            vec![(METRIC, "cpu"), (TARGET, "0")],
            vec![(METRIC, "cpu"), (TARGET, "-3")],
            vec![(METRIC, "cpu"), (TARGET, "NaN")],
            vec![(METRIC, "cpu"), (TARGET, "inf")],
            vec![(METRIC, "cpu"), (TARGET, "lots")],
            vec![(METRIC, "no spaces"), (TARGET, "1")],
            vec![(METRIC, "cpu"), (TARGET, "1"), (MIN, "0")],
            vec![(METRIC, "cpu"), (TARGET, "1"), (MIN, "4"), (MAX, "2")],
            vec![(METRIC, "prometheus"), (TARGET, "1")],
            vec![(METRIC, "cpu"), (TARGET, "1"), (STEP_UP, "0")],
            vec![(METRIC, "cpu"), (TARGET, "1"), (COOLDOWN_DOWN, "soon")],
            vec![(METRIC, "cpu"), (TARGET, "1"), (DRY_RUN, "maybe")],
        ] {
            let reason = read(&labels(&bad), GROUP).unwrap_err();
            assert!(reason.contains("label") || reason.contains("bounds"), "{reason}");
        }
    }
}
