//! Letting new members into a group: ready standbys first, then places and
//! names reserved for the rest, all within the ceilings labels cannot raise.
//! A group's maximum is held under `--max-replicas` where its bounds are
//! read (`rules::bounds`); the two that span groups are every container
//! replicator made (`--max-containers`, checked with the reservation, under
//! the inventory's lock) and how fast it makes them
//! (`--max-creations-per-minute`). Each refusal is counted in
//! `replicator_ceiling_refusals_total{ceiling}`.

use super::core::Core;
use super::pool::Pool;
use super::replica::Replica;
use super::source::Source;
use crate::base::telemetry::CeilingLabel;
use crate::error::{Error, Result};
use crate::inventory::{Full, Group, Limits, Reservation};

/// New members admitted to a group: standbys already unpaused, and the
/// places reserved for those still to be created.
pub(super) struct Admitted {
    pub promoted: Vec<Replica>,
    pub reservation: Reservation,
}

impl Admitted {
    /// How many replicas are to be created cold.
    pub fn cold(&self) -> usize {
        self.reservation.count()
    }
}

/// Admission to groups.
pub(super) struct Admission<'a>(pub &'a Core);

impl Admission<'_> {
    /// The first half of every scale-up: takes up to `count` ready standbys
    /// of `group` (the caller's snapshot, read under the group's lock it
    /// holds) and reserves places for the rest, or refuses at the limit with
    /// the standbys paused back.
    pub async fn admit(&self, source: &Source, group: Option<&Group>, count: usize) -> Result<Admitted> {
        let pool = Pool(self.0);
        let promoted = pool.promote(source, group, count).await?;
        let request = new_request_id();
        match self.reserve(source, &request, count - promoted.len(), false) {
            Ok(reservation) => Ok(Admitted { promoted, reservation }),
            Err(e) => {
                pool.demote(&promoted).await;
                Err(e)
            }
        }
    }

    /// Reserves `count` places for new containers of the source's group:
    /// members within the group's maximum (`standby`: on top of them), all
    /// within `--max-containers` and `--max-creations-per-minute`.
    pub fn reserve(&self, source: &Source, request: &str, count: usize, standby: bool) -> Result<Reservation> {
        let settings = &self.0.settings;
        let group = (!standby).then_some(source.bounds.max as usize);
        let limits = Limits { group, total: settings.max_containers };
        let reservation = match self.0.intents.reserve(&source.group.name, request, count, limits, &source.group.naming)
        {
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
            if let Err(wait) = self.0.creations.take(count) {
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
        self.0.telemetry.ceiling_refusals.get_or_create(&CeilingLabel { ceiling: ceiling.to_owned() }).inc();
    }
}

/// A request id unique to this process and this instant (labels tell the
/// replicas of one request apart from those of any other).
pub(super) fn new_request_id() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{:x}-{:x}-{n:x}", crate::base::clock::unix_nanos_now(), std::process::id())
}
