//! What labels cannot raise: the operator's ceilings on what replicator
//! creates. A group's maximum is held under `--max-replicas` where its
//! bounds are read (`rules::bounds`); here are the two that span groups:
//! every container replicator made (`--max-containers`, checked with the
//! reservation, under the inventory's lock) and how fast it makes them
//! (`--max-creations-per-minute`, a token bucket). Each refusal is counted
//! in `replicator_ceiling_refusals_total{ceiling}`.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::replicate::Source;
use super::Replicator;
use crate::base::telemetry::CeilingLabel;
use crate::error::{Error, Result};
use crate::inventory::{Full, Limits, Reservation};

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
    fn take(&self, count: usize) -> std::result::Result<(), Duration> {
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

impl Replicator {
    /// Reserves `count` places for new containers of the source's group:
    /// members within the group's maximum (`standby`: on top of them), all
    /// within `--max-containers` and `--max-creations-per-minute`.
    pub(super) fn reserve_within_ceilings(
        &self,
        source: &Source,
        request: &str,
        count: usize,
        standby: bool,
    ) -> Result<Reservation> {
        let settings = self.settings();
        let group = (!standby).then_some(source.bounds.max as usize);
        let limits = Limits { group, total: settings.max_containers };
        let reservation = self.intents().reserve(&source.group.name, request, count, limits, &source.group.naming);
        let reservation = match reservation {
            Ok(r) => r,
            Err(Full::Group) => {
                return Err(Error::LimitReached { group: source.group.name.clone(), max: source.bounds.max })
            }
            Err(Full::Total { made }) => {
                self.refused_by("containers");
                return Err(Error::Conflict(format!(
                    "replicator has made {made} containers and may make at most {} (serve --max-containers): \
                     {count} more refused",
                    settings.max_containers
                )));
            }
        };
        if count > 0 {
            if let Err(wait) = self.inner.creations.take(count) {
                self.refused_by("rate");
                return Err(Error::RateLimited(format!(
                    "replicator creates at most {} containers a minute (serve --max-creations-per-minute): \
                     {count} more possible in {}s",
                    settings.max_creations_per_minute,
                    wait.as_secs().max(1)
                )));
            }
        }
        Ok(reservation)
    }

    fn refused_by(&self, ceiling: &str) {
        self.telemetry().ceiling_refusals.get_or_create(&CeilingLabel { ceiling: ceiling.to_owned() }).inc();
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
