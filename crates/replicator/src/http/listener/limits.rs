//! File descriptors: the listeners, the engine client and the process's
//! own files share one `RLIMIT_NOFILE`. The soft limit is raised to the hard
//! one at start (as servers commonly do), and the default connection cap
//! leaves a reserve, so that every listener together (API, admin, and the
//! wake listener when there is one) can never starve the engine client.

use tracing::warn;

/// Highest soft limit asked for when the hard limit is unlimited.
const CEILING: u64 = 1 << 20;

/// Descriptors kept out of the listeners' reach: a quarter of the limit, at least this.
pub const MIN_RESERVE: u64 = 128;

/// Raises the soft `RLIMIT_NOFILE` to the hard limit; returns the soft limit in effect.
pub fn raise_fd_limit() -> u64 {
    match rlimit::increase_nofile_limit(CEILING) {
        Ok(limit) => limit,
        Err(e) => {
            let current = rlimit::Resource::NOFILE.get().map(|(soft, _)| soft).unwrap_or(1024);
            warn!(error = %e, limit = current, "cannot raise the open-file limit");
            current
        }
    }
}

/// The default `--max-connections` of each of `listeners` for a soft limit
/// of `nofile`: what is left after the reserve, shared by the listeners.
pub fn default_max_connections(nofile: u64, listeners: u64) -> usize {
    usize::try_from(nofile.saturating_sub(reserve(nofile)) / listeners.max(1)).unwrap_or(usize::MAX).max(1)
}

/// Descriptors kept for the engine client and the process's own files.
fn reserve(nofile: u64) -> u64 {
    (nofile / 4).max(MIN_RESERVE)
}

/// Descriptors the TCP fronts may hold together for a soft limit of
/// `nofile`: what is left after the same reserve, so that a flood on a front
/// leaves the API, the admin listener and the engine client their share.
pub fn descriptor_budget(nofile: u64) -> usize {
    usize::try_from(nofile.saturating_sub(reserve(nofile))).unwrap_or(usize::MAX)
}

/// Whether `listeners` capped at `max_connections` each leave the reserve free.
pub fn leaves_reserve(max_connections: usize, nofile: u64, listeners: u64) -> bool {
    (max_connections as u64).saturating_mul(listeners).saturating_add(MIN_RESERVE) <= nofile
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listener_together_leaves_the_reserve() {
        assert_eq!(default_max_connections(256, 2), 64);
        assert_eq!(default_max_connections(1024, 2), 384);
        assert_eq!(default_max_connections(1024, 3), 256, "the wake listener takes its share");
        assert_eq!(default_max_connections(100, 2), 1, "a tiny limit still serves");
        for nofile in [256, 1024, 20_000, 1 << 20] {
            for listeners in [2, 3] {
                let cap = default_max_connections(nofile, listeners);
                assert!(leaves_reserve(cap, nofile, listeners), "{nofile} {listeners}");
            }
        }
        assert!(!leaves_reserve(500, 1024, 2));
        assert!(!leaves_reserve(384, 1024, 3), "two listeners' share is too much for three");
    }

    #[test]
    fn the_fronts_leave_the_reserve_to_everything_else() {
        assert_eq!(descriptor_budget(512), 384);
        assert_eq!(descriptor_budget(20_000), 15_000);
        assert_eq!(descriptor_budget(100), 0, "a limit below the reserve leaves the fronts nothing");
    }
}
