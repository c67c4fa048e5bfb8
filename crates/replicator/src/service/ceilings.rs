//! How fast replicator may create containers (`--max-creations-per-minute`):
//! a token bucket, refilled continuously, that admission takes from after
//! the reservation (see `admission.rs` for the ceilings as a whole).

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Creations allowed per minute, refilled continuously.
pub(super) struct CreationRate {
    per_minute: u32,
    bucket: Mutex<(f64, Instant)>,
}

impl CreationRate {
    pub(super) fn new(per_minute: u32) -> Self {
        Self { per_minute, bucket: Mutex::new((f64::from(per_minute), crate::base::clock::monotonic())) }
    }

    /// Takes `count` creations, or says how long until they would be allowed.
    pub(super) fn take(&self, count: usize) -> std::result::Result<(), Duration> {
        let rate = f64::from(self.per_minute) / 60.0;
        let now = crate::base::clock::monotonic();
        let mut bucket = self.bucket.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (tokens, at) = *bucket;
        let tokens = (tokens + now.saturating_duration_since(at).as_secs_f64() * rate).min(f64::from(self.per_minute));
        let wanted = count as f64;
        if tokens >= wanted {
            *bucket = (tokens - wanted, now);
            Ok(())
        } else {
            *bucket = (tokens, now);
            Err(Duration::from_secs_f64(((wanted - tokens) / rate.max(f64::MIN_POSITIVE)).min(3600.0)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_creation_rate_refills_over_a_minute() {
        let rate = CreationRate::new(60);
        assert!(rate.take(60).is_ok(), "a full bucket at start");
        let wait = rate.take(1).unwrap_err();
        assert!(wait <= Duration::from_secs(1), "{wait:?}");
        tokio::time::advance(Duration::from_secs(10)).await;
        assert!(rate.take(10).is_ok(), "ten seconds refill ten at 60 a minute");
        assert!(rate.take(1).is_err());
    }
}
