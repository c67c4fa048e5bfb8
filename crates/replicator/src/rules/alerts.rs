//! Alertmanager's alerts as scale changes. An alert names its group in a
//! label (`replicator_group`, or `serve --alert-group-label`); a firing one
//! with `replicator_action=scale-up|scale-down` (annotation or label) and an
//! optional `replicator_step` (default 1) moves the group by that step
//! within its bounds. A resolved one does nothing unless
//! `replicator_action_resolved` says what to do. Alertmanager repeats a
//! firing alert every `repeat_interval` (same fingerprint, same start): it
//! acts once.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The label naming the group, unless `serve --alert-group-label` says otherwise.
pub const DEFAULT_GROUP_LABEL: &str = "replicator_group";
/// What a firing alert asks for.
pub const ACTION: &str = "replicator_action";
/// What a resolved alert asks for (nothing when absent).
pub const ACTION_RESOLVED: &str = "replicator_action_resolved";
/// Members added or removed per alert (default 1).
pub const STEP: &str = "replicator_step";
/// Largest step an alert may ask for.
pub const MAX_STEP: u32 = 100;
/// How long an alert is remembered as acted on.
const REMEMBER: Duration = Duration::from_secs(24 * 3600);
/// Most alerts remembered; the oldest are forgotten first.
const REMEMBER_AT_MOST: usize = 10_000;

/// Whether the alert is firing or resolved, as Alertmanager says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertStatus {
    /// Firing.
    Firing,
    /// Resolved.
    Resolved,
}

/// One alert of a notification, as far as replicator reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    /// Firing or resolved.
    pub status: AlertStatus,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Its annotations.
    pub annotations: BTreeMap<String, String>,
    /// When it started firing (RFC 3339, as sent).
    pub starts_at: String,
    /// Alertmanager's identity of the alert (its label set).
    pub fingerprint: String,
}

/// Which way a group moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Add members.
    Up,
    /// Remove members.
    Down,
}

/// What one alert asks replicator to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Action {
    /// The group to change.
    pub group: String,
    /// Which way.
    pub direction: Direction,
    /// By how many members.
    pub step: u32,
}

impl Action {
    /// Members to add (positive) or remove (negative); the service keeps the
    /// result within the group's bounds.
    pub fn signed_step(&self) -> i64 {
        match self.direction {
            Direction::Up => i64::from(self.step),
            Direction::Down => -i64::from(self.step),
        }
    }
}

impl Alert {
    /// An annotation, else a label, of that name.
    fn setting(&self, key: &str) -> Option<&str> {
        self.annotations.get(key).or_else(|| self.labels.get(key)).map(|v| v.trim())
    }

    /// What the alert asks for: `Ok(None)` when nothing (a resolved alert
    /// without `replicator_action_resolved`, or an alert without an action).
    pub fn action(&self, group_label: &str) -> Result<Option<Action>, String> {
        let key = match self.status {
            AlertStatus::Firing => ACTION,
            AlertStatus::Resolved => ACTION_RESOLVED,
        };
        let Some(asked) = self.setting(key) else { return Ok(None) };
        let direction = match asked {
            "scale-up" => Direction::Up,
            "scale-down" => Direction::Down,
            other => {
                return Err(format!("{key}={:?} is neither scale-up nor scale-down", crate::base::quote::clip(other)))
            }
        };
        let group = self
            .labels
            .get(group_label)
            .ok_or_else(|| format!("the alert has no {group_label} label naming its group"))?;
        let step = match self.setting(STEP) {
            None => 1,
            Some(raw) => raw.parse::<u32>().ok().filter(|s| (1..=MAX_STEP).contains(s)).ok_or_else(|| {
                format!("{STEP}={:?} is not a count from 1 to {MAX_STEP}", crate::base::quote::clip(raw))
            })?,
        };
        Ok(Some(Action { group: group.clone(), direction, step }))
    }

    /// The same alert, in the same state, repeated by Alertmanager has the same key.
    pub fn key(&self) -> String {
        let status = match self.status {
            AlertStatus::Firing => "firing",
            AlertStatus::Resolved => "resolved",
        };
        format!("{}|{}|{status}", self.fingerprint, self.starts_at)
    }
}

/// Alerts already acted on.
#[derive(Default)]
pub struct Seen {
    keys: Mutex<HashMap<String, Instant>>,
}

impl Seen {
    /// True the first time `key` is offered (within a day); later offers are repeats.
    pub fn first(&self, key: &str, now: Instant) -> bool {
        let mut keys = self.keys.lock().expect("seen alerts lock");
        keys.retain(|_, at| now.saturating_duration_since(*at) <= REMEMBER);
        if keys.contains_key(key) {
            return false;
        }
        if keys.len() >= REMEMBER_AT_MOST {
            if let Some(oldest) = keys.iter().min_by_key(|(_, at)| **at).map(|(k, _)| k.clone()) {
                keys.remove(&oldest);
            }
        }
        keys.insert(key.to_owned(), now);
        true
    }

    /// Forgets `key`, so that the alert is acted on when it comes again (after a failure).
    pub fn forget(&self, key: &str) {
        self.keys.lock().expect("seen alerts lock").remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(status: AlertStatus, labels: &[(&str, &str)], annotations: &[(&str, &str)]) -> Alert {
        let map = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Alert {
            status,
            labels: map(labels),
            annotations: map(annotations),
            starts_at: "2026-11-26T00:00:00Z".into(),
            fingerprint: "abc".into(),
        }
    }

    #[test]
    fn a_firing_alert_scales_its_group_by_its_step() {
        let a = alert(AlertStatus::Firing, &[("replicator_group", "web")], &[("replicator_action", "scale-up")]);
        assert_eq!(
            a.action(DEFAULT_GROUP_LABEL),
            Ok(Some(Action { group: "web".into(), direction: Direction::Up, step: 1 }))
        );
        let a = alert(
            AlertStatus::Firing,
            &[("replicator_group", "web"), ("replicator_action", "scale-down"), ("replicator_step", "2")],
            &[],
        );
        assert_eq!(a.action(DEFAULT_GROUP_LABEL).unwrap().unwrap().step, 2, "a label serves as well");
    }

    #[test]
    fn a_resolved_alert_does_nothing_unless_it_says_so() {
        let a = alert(AlertStatus::Resolved, &[("replicator_group", "web")], &[("replicator_action", "scale-up")]);
        assert_eq!(a.action(DEFAULT_GROUP_LABEL), Ok(None));
        let a = alert(
            AlertStatus::Resolved,
            &[("replicator_group", "web")],
            &[("replicator_action_resolved", "scale-down")],
        );
        assert_eq!(a.action(DEFAULT_GROUP_LABEL).unwrap().unwrap().direction, Direction::Down);
    }

    #[test]
    fn malformed_settings_are_named() {
        let bad = alert(AlertStatus::Firing, &[("replicator_group", "web")], &[("replicator_action", "grow")]);
        assert!(bad.action(DEFAULT_GROUP_LABEL).unwrap_err().contains("neither scale-up nor scale-down"));
        let no_group = alert(AlertStatus::Firing, &[], &[("replicator_action", "scale-up")]);
        assert!(no_group.action(DEFAULT_GROUP_LABEL).unwrap_err().contains("replicator_group"));
        let step = alert(
            AlertStatus::Firing,
            &[("replicator_group", "w")],
            &[("replicator_action", "scale-up"), ("replicator_step", "0")],
        );
        assert!(step.action(DEFAULT_GROUP_LABEL).unwrap_err().contains("replicator_step"));
    }

    #[test]
    fn scale_down_is_a_negative_step() {
        let up = Action { group: "w".into(), direction: Direction::Up, step: 3 };
        assert_eq!(up.signed_step(), 3);
        assert_eq!(Action { direction: Direction::Down, ..up }.signed_step(), -3);
    }

    #[test]
    fn a_repeated_notification_acts_once_until_forgotten() {
        let seen = Seen::default();
        let now = Instant::now();
        assert!(seen.first("a|t|firing", now));
        assert!(!seen.first("a|t|firing", now + Duration::from_secs(60)));
        assert!(seen.first("a|t|resolved", now), "resolving is another event");
        seen.forget("a|t|firing");
        assert!(seen.first("a|t|firing", now));
    }
}
