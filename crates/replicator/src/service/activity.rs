//! When each group last saw a request: the clock behind
//! `replicator.sleep.after`. Touched by the wake listener, the balancer's
//! mirror and every wake; read by the idle watch.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// When each group last saw a request (or woke, or was first seen).
#[derive(Default)]
pub(super) struct Activity {
    last: Mutex<HashMap<String, Instant>>,
}

impl Activity {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Instant>> {
        self.last.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The group's quiet period starts again now.
    pub(super) fn touch(&self, group: &str) {
        self.lock().insert(group.to_owned(), Instant::now());
    }

    /// How long the group has been quiet; its first sight counts as activity.
    pub(super) fn quiet_for(&self, group: &str) -> Duration {
        self.lock().entry(group.to_owned()).or_insert_with(Instant::now).elapsed()
    }

    /// Forgets groups that are gone.
    pub(super) fn retain_groups(&self, present: &HashSet<&str>) {
        self.lock().retain(|g, _| present.contains(g.as_str()));
    }
}
