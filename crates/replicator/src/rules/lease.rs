//! Who acts among several replicators (issue 32, part 2; the rules only:
//! no store is wired to them yet). The lease lives in a store that lets
//! exactly one of two writers win, such as a Swarm object updated with the
//! version it was read at, where the second writer is answered "update out
//! of sequence". These rules decide from that record and each replica's own
//! monotonic clock, never from another node's wall clock:
//!
//! - the holder acts until a term, less a fence, after it *sent* its last
//!   successful renewal: a holder that is cut off, or frozen and resumed,
//!   stops acting before anyone may take over;
//! - a candidate may take over once the record has not changed for a whole
//!   term of its *own* clock, counted from when it first saw that version:
//!   that moment comes after the holder sent it, so the holder's acting
//!   window has closed by then, by at least the fence, whatever the clocks
//!   of the two nodes read.

use std::time::Duration;

use tokio::time::Instant;

/// The lease's timings, checked together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// How long a renewal holds the lease.
    pub term: Duration,
    /// How often the holder renews.
    pub renew_every: Duration,
    /// How long before its term ends the holder stops acting: the margin
    /// for clock-rate differences and the time a renewal takes to be written.
    pub fence: Duration,
}

impl Timing {
    /// Timings that leave the holder room to renew before it must stop.
    pub fn new(term: Duration, renew_every: Duration, fence: Duration) -> Result<Self, String> {
        if fence.is_zero() || fence >= term {
            return Err(format!("the fence ({fence:?}) must be above zero and below the term ({term:?})"));
        }
        if renew_every.is_zero() || renew_every * 2 > term - fence {
            return Err(format!(
                "renewing every {renew_every:?} leaves too little of the term ({term:?}, fence {fence:?}): \
                 at least two renewals must fit before the holder stops acting"
            ));
        }
        Ok(Self { term, renew_every, fence })
    }
}

impl Default for Timing {
    /// A leader lost is replaced within 5 s: a 4 s term, renewed every
    /// second, the holder stopping 1 s before its term ends.
    fn default() -> Self {
        Self { term: Duration::from_secs(4), renew_every: Duration::from_secs(1), fence: Duration::from_secs(1) }
    }
}

/// Whether the holder may act now: `sent` is when it sent its last
/// renewal that the store accepted.
pub fn holder_may_act(sent: Instant, now: Instant, timing: &Timing) -> bool {
    now < sent + timing.term - timing.fence
}

/// What a candidate has seen of the lease record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    /// The record's version (the store's own counter).
    pub version: u64,
    /// When this candidate first saw that version, on its own clock.
    pub first_seen: Instant,
}

impl Seen {
    /// What a candidate knows after reading `version` at `now`.
    pub fn after_read(previous: Option<Seen>, version: u64, now: Instant) -> Seen {
        match previous {
            Some(seen) if seen.version == version => seen,
            _ => Seen { version, first_seen: now },
        }
    }
}

/// Whether a candidate may take over a lease whose record it has seen
/// unchanged since `seen.first_seen` (a record with no holder: at once).
pub fn candidate_may_take(seen: Option<&Seen>, now: Instant, timing: &Timing) -> bool {
    seen.is_none_or(|seen| now >= seen.first_seen + timing.term)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn at(base: Instant, ms: u64) -> Instant {
        base + Duration::from_millis(ms)
    }

    #[test]
    fn timings_must_leave_two_renewals_before_the_fence() {
        let s = Duration::from_secs;
        assert!(Timing::new(s(4), s(1), s(1)).is_ok());
        assert!(Timing::new(s(4), s(2), s(1)).is_err(), "one renewal only before the fence");
        assert!(Timing::new(s(4), s(1), s(0)).is_err(), "no fence");
        assert!(Timing::new(s(4), s(1), s(4)).is_err(), "a fence as long as the term");
        assert_eq!(Timing::new(s(4), s(1), s(1)).unwrap(), Timing::default());
    }

    #[test]
    fn a_holder_acts_until_its_term_less_the_fence_after_it_sent_the_renewal() {
        let (base, timing) = (Instant::now(), Timing::default());
        assert!(holder_may_act(base, at(base, 2_999), &timing));
        assert!(!holder_may_act(base, at(base, 3_000), &timing), "the fence: it stops a second early");
        assert!(!holder_may_act(base, at(base, 60_000), &timing), "frozen and resumed: it acts on nothing");
    }

    #[test]
    fn a_candidate_takes_over_a_whole_term_after_it_first_saw_the_last_version() {
        let (base, timing) = (Instant::now(), Timing::default());
        assert!(candidate_may_take(None, base, &timing), "no holder: at once");
        let seen = Seen::after_read(None, 7, base);
        let still = Seen::after_read(Some(seen), 7, at(base, 3_500));
        assert_eq!(still.first_seen, base, "the same version keeps its first sight");
        assert!(!candidate_may_take(Some(&still), at(base, 3_999), &timing));
        assert!(candidate_may_take(Some(&still), at(base, 4_000), &timing));
        let renewed = Seen::after_read(Some(still), 8, at(base, 3_999));
        assert!(!candidate_may_take(Some(&renewed), at(base, 4_000), &timing), "a renewal starts the count again");
    }

    proptest! {
        /// However late the candidate reads the renewal after it was sent,
        /// and however long it keeps polling, the holder's acting window
        /// closes before the candidate may take over.
        #[test]
        fn never_two_act_at_once(read_after_ms in 0u64..10_000, polls in proptest::collection::vec(0u64..2_000, 1..20)) {
            let (sent, timing) = (Instant::now(), Timing::default());
            let mut now = sent + Duration::from_millis(read_after_ms);
            let mut seen = Seen::after_read(None, 1, now);
            for step in polls {
                now += Duration::from_millis(step);
                seen = Seen::after_read(Some(seen), 1, now);
                prop_assert!(!(holder_may_act(sent, now, &timing) && candidate_may_take(Some(&seen), now, &timing)));
            }
        }
    }
}
