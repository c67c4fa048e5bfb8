//! Scheduled minimums: `replicator.schedule=<cron>=<min>[;<cron>=<min>...]`.
//! A schedule is active during every minute its (standard, 5-field) cron
//! expression matches, in `serve --timezone`; while one is, the group's
//! minimum is raised to its value (the highest of those active). It never
//! lowers a minimum. Pure: the clock is a parameter.

use std::str::FromStr;

use chrono::{DateTime, DurationRound, Utc};
use chrono_tz::Tz;
use croner::Cron;
use serde::Serialize;

use crate::rules::labels;

/// The label holding a group's schedules.
pub const SCHEDULE: &str = "replicator.schedule";
/// Most schedules one label may hold.
const MAX_ENTRIES: usize = 20;

/// One `<cron>=<min>` entry.
#[derive(Debug, Clone)]
pub struct Entry {
    cron: Cron,
    /// The minimum while the expression matches.
    pub min: u32,
}

/// A group's schedules, parsed.
#[derive(Debug, Clone, Default)]
pub struct Schedules(Vec<Entry>);

/// The `schedule` object of a group's JSON.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct ScheduleView {
    /// Whether a schedule is active now.
    pub active: bool,
    /// The minimum the active schedules ask for (the highest); `null` when none is.
    pub min: Option<u32>,
}

impl Schedules {
    /// The schedules of a label set; empty without the label, an error naming
    /// the entry for a malformed one.
    pub fn from_labels(all: &std::collections::BTreeMap<String, String>) -> Result<Self, String> {
        let Some(raw) = all.get(SCHEDULE) else { return Ok(Self::default()) };
        let entries: Vec<&str> = raw.split(';').map(str::trim).filter(|e| !e.is_empty()).collect();
        if entries.is_empty() || entries.len() > MAX_ENTRIES {
            return Err(format!("label {SCHEDULE} needs 1 to {MAX_ENTRIES} entries <cron>=<min>, separated by ';'"));
        }
        entries.into_iter().map(entry).collect::<Result<Vec<_>, _>>().map(Self)
    }

    /// Whether the group has any schedule.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The highest minimum among the schedules active at `now` in `tz`.
    pub fn active_min(&self, now: DateTime<Utc>, tz: Tz) -> Option<u32> {
        // croner reads a 5-field expression as firing at second 0: the whole
        // minute is what a schedule means, so its seconds are set aside.
        let minute = now.duration_trunc(chrono::TimeDelta::minutes(1)).unwrap_or(now);
        let local = minute.with_timezone(&tz);
        self.0.iter().filter(|e| e.cron.is_time_matching(&local).unwrap_or(false)).map(|e| e.min).max()
    }

    /// What the group's JSON says at `now`.
    pub fn view(&self, now: DateTime<Utc>, tz: Tz) -> ScheduleView {
        let min = self.active_min(now, tz);
        ScheduleView { active: min.is_some(), min }
    }
}

fn entry(text: &str) -> Result<Entry, String> {
    let quoted = crate::base::quote::clip(text);
    let (expression, min) =
        text.rsplit_once('=').ok_or_else(|| format!("{SCHEDULE} entry {quoted:?} is not <cron>=<min>"))?;
    let expression = expression.trim();
    if expression.split_whitespace().count() != 5 {
        return Err(format!("{SCHEDULE} entry {quoted:?}: the cron expression needs the 5 standard fields"));
    }
    let cron = Cron::from_str(expression).map_err(|e| format!("{SCHEDULE} entry {quoted:?}: {e}"))?;
    let min = min.trim();
    let min = min
        .parse::<u32>()
        .ok()
        .filter(|m| (1..=labels::MAX_COUNT).contains(m))
        .ok_or_else(|| format!("{SCHEDULE} entry {quoted:?}: the minimum {min:?} is not a positive count"))?;
    Ok(Entry { cron, min })
}

/// `serve --timezone`: an IANA name such as `Europe/Paris`.
pub fn parse_timezone(raw: &str) -> Result<Tz, String> {
    raw.parse::<Tz>().map_err(|_| format!("{raw:?} is not an IANA time zone such as UTC or Europe/Paris"))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use chrono::TimeZone;

    use super::*;

    fn schedules(value: &str) -> Result<Schedules, String> {
        Schedules::from_labels(&BTreeMap::from([(SCHEDULE.to_owned(), value.to_owned())]))
    }

    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
    }

    #[test]
    fn a_schedule_is_active_during_the_minutes_its_expression_matches() {
        // Weekdays from 09:00 to 17:59.
        let s = schedules("* 9-17 * * 1-5=3").unwrap();
        assert_eq!(s.active_min(at(2026, 11, 26, 9, 0), Tz::UTC), Some(3), "a Thursday at 09:00");
        let mid_minute = at(2026, 11, 26, 9, 0) + chrono::TimeDelta::milliseconds(37_250);
        assert_eq!(s.active_min(mid_minute, Tz::UTC), Some(3), "all through the minute, not only at its second 0");
        assert_eq!(s.active_min(at(2026, 11, 26, 17, 59), Tz::UTC), Some(3));
        assert_eq!(s.active_min(at(2026, 11, 26, 18, 0), Tz::UTC), None);
        assert_eq!(s.active_min(at(2026, 11, 28, 10, 0), Tz::UTC), None, "a Saturday");
    }

    #[test]
    fn overlapping_schedules_take_the_highest_minimum() {
        let s = schedules("* 9-17 * * *=2; * 12 * * *=5").unwrap();
        assert_eq!(s.active_min(at(2026, 11, 26, 12, 30), Tz::UTC), Some(5));
        assert_eq!(s.active_min(at(2026, 11, 26, 10, 30), Tz::UTC), Some(2));
        assert_eq!(s.view(at(2026, 11, 26, 20, 0), Tz::UTC), ScheduleView { active: false, min: None });
    }

    #[test]
    fn the_time_zone_decides_which_hour_it_is() {
        let s = schedules("* 9 * * *=2").unwrap();
        let paris = parse_timezone("Europe/Paris").unwrap();
        assert_eq!(s.active_min(at(2026, 11, 26, 8, 30), paris), Some(2), "08:30 UTC is 09:30 in Paris in November");
        assert_eq!(s.active_min(at(2026, 11, 26, 8, 30), Tz::UTC), None);
        assert!(parse_timezone("Mars/Olympus").is_err());
    }

    #[test]
    fn malformed_schedules_are_named() {
        assert!(schedules("* * * *=2").unwrap_err().contains("5 standard fields"));
        assert!(schedules("* * * * *").unwrap_err().contains("<cron>=<min>") || schedules("* * * * *").is_err());
        assert!(schedules("* * * * *=0").unwrap_err().contains("positive count"));
        assert!(schedules("61 * * * *=2").is_err());
        assert!(schedules(";").unwrap_err().contains("entries"));
        assert!(Schedules::from_labels(&BTreeMap::new()).unwrap().is_empty());
    }
}
