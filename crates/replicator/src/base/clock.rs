//! Time, in one place and one date crate (chrono).
//!
//! Two clocks meet in replicator: the wall clock, for what is shown or
//! compared with the engine's timestamps (RFC 3339 in answers, creation
//! times, event cursors), and a monotonic clock for windows and deadlines.
//! The free functions read the wall clock. A control loop instead holds a
//! [`Clock`], which gives it both readings from one source: in production
//! the system's, in a test one that follows tokio's (pausable) clock, so
//! `tokio::time::pause` + `advance` move windows, ages and timestamps
//! together.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, SecondsFormat, Utc};

/// Time since the Unix epoch on the wall clock (zero before it).
fn since_epoch() -> Duration {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default()
}

/// Whole seconds since the Unix epoch: containers' creation times are in it.
pub fn unix_now() -> i64 {
    since_epoch().as_secs() as i64
}

/// Milliseconds since the Unix epoch.
pub fn unix_millis_now() -> u64 {
    since_epoch().as_millis() as u64
}

/// Nanoseconds since the Unix epoch: the unit of the engine's event timestamps.
pub fn unix_nanos_now() -> i64 {
    i64::try_from(since_epoch().as_nanos()).unwrap_or(i64::MAX)
}

/// A monotonic instant on tokio's clock: what windows and deadlines are
/// measured with, so tests that pause tokio's time see them move.
pub fn monotonic() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// Now, as a UTC date (for schedules).
pub fn utc_now() -> DateTime<Utc> {
    Utc::now()
}

/// Unix seconds as the API writes timestamps (RFC 3339, UTC, whole
/// seconds); empty for an instant out of range.
pub fn rfc3339(unix: i64) -> String {
    DateTime::from_timestamp(unix, 0).map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true)).unwrap_or_default()
}

/// Reads an RFC 3339 instant (the engine's, Alertmanager's, our own).
pub fn parse_rfc3339(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text).ok().map(|t| t.with_timezone(&Utc))
}

/// Unix seconds of an RFC 3339 instant, zero when it does not parse (the
/// engine writes `0001-01-01T00:00:00Z` for never).
pub fn unix_of_rfc3339(text: &str) -> i64 {
    parse_rfc3339(text).map_or(0, |t| t.timestamp())
}

/// The clock of a control loop: one source for its monotonic instants and
/// its wall-clock readings.
#[derive(Debug, Clone)]
pub struct Clock {
    /// `None`: the system's wall clock. `Some`: the wall-clock reading at
    /// `origin` on tokio's clock, moved on by tokio's clock since.
    anchor: Option<(Instant, Duration)>,
}

impl Clock {
    /// The system's clocks: tokio's monotonic clock (the real one outside
    /// tests) and the wall clock.
    pub fn system() -> Self {
        Self { anchor: None }
    }

    /// A clock whose wall time starts at `unix` seconds and moves only with
    /// tokio's clock: under `tokio::time::pause` a test decides when time passes.
    pub fn following_tokio(unix: i64) -> Self {
        Self { anchor: Some((tokio::time::Instant::now().into_std(), Duration::from_secs(unix.max(0) as u64))) }
    }

    /// A monotonic instant, on tokio's clock.
    pub fn now(&self) -> Instant {
        monotonic()
    }

    /// Wall time since the Unix epoch.
    fn wall(&self) -> Duration {
        match self.anchor {
            None => since_epoch(),
            Some((origin, at)) => at + self.now().saturating_duration_since(origin),
        }
    }

    /// Whole seconds since the Unix epoch.
    pub fn unix(&self) -> i64 {
        self.wall().as_secs() as i64
    }

    /// Now, as the API writes timestamps.
    pub fn rfc3339(&self) -> String {
        rfc3339(self.unix())
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::system()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trips_whole_seconds() {
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(unix_of_rfc3339("2023-11-14T22:13:20Z"), 1_700_000_000);
        assert_eq!(unix_of_rfc3339("2023-11-14T23:13:20.123456789+01:00"), 1_700_000_000);
    }

    #[test]
    fn an_unknown_instant_reads_as_zero_and_writes_as_nothing() {
        assert_eq!(unix_of_rfc3339("not a time"), 0);
        assert_eq!(rfc3339(i64::MAX), "");
    }

    #[tokio::test(start_paused = true)]
    async fn a_clock_following_tokio_moves_only_when_tokio_time_does() {
        let clock = Clock::following_tokio(1_000);
        let before = clock.now();
        assert_eq!(clock.unix(), 1_000);
        tokio::time::advance(Duration::from_secs(90)).await;
        assert_eq!(clock.unix(), 1_090);
        assert_eq!(clock.now() - before, Duration::from_secs(90));
        assert_eq!(clock.rfc3339(), "1970-01-01T00:18:10Z");
    }
}
