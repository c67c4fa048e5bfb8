//! Exact group limits under concurrency.
//!
//! Admission to a group is serialized by a per-group lock held only while the
//! members are counted and places reserved; the slow create/start work runs
//! outside it, so replications of one group proceed in parallel and other
//! groups never wait. A reservation holds replica names until the containers
//! exist in the engine (or have been rolled back), and is released on drop.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use tokio::sync::{Mutex as AsyncMutex, MutexGuard as AsyncGuard};

#[derive(Default)]
pub(super) struct GroupSlots {
    slots: Mutex<HashMap<String, Arc<GroupSlot>>>,
}

#[derive(Default)]
pub(super) struct GroupSlot {
    admission: AsyncMutex<()>,
    pending: Mutex<HashSet<String>>,
}

impl GroupSlots {
    /// Names reserved by replications in flight, in every group.
    pub(super) fn all_pending(&self) -> HashSet<String> {
        let slots = self.slots.lock().expect("group slots lock");
        slots.values().flat_map(|slot| slot.pending()).collect()
    }

    pub(super) fn slot(&self, group: &str) -> Arc<GroupSlot> {
        let mut slots = self.slots.lock().expect("group slots lock");
        slots.entry(group.to_owned()).or_default().clone()
    }
}

impl GroupSlot {
    /// Exclusive right to count this group's members and reserve places.
    pub(super) async fn admit(&self) -> AsyncGuard<'_, ()> {
        self.admission.lock().await
    }

    /// Names reserved by replications still in flight.
    pub(super) fn pending(&self) -> HashSet<String> {
        self.pending.lock().expect("pending lock").clone()
    }

    /// Call with the admission guard held.
    pub(super) fn reserve(self: &Arc<Self>, names: Vec<String>) -> Reservation {
        self.pending.lock().expect("pending lock").extend(names.iter().cloned());
        Reservation { slot: self.clone(), names }
    }
}

/// Places in a group held for replicas being created.
pub(super) struct Reservation {
    slot: Arc<GroupSlot>,
    names: Vec<String>,
}

impl Reservation {
    pub(super) fn names(&self) -> &[String] {
        &self.names
    }

    /// Swaps a name the engine refused (taken meanwhile) for another free one.
    pub(super) fn rename(&mut self, old: &str, pick: impl FnOnce(&HashSet<String>) -> String) -> String {
        let mut pending = self.slot.pending.lock().expect("pending lock");
        let new = pick(&pending);
        pending.remove(old);
        pending.insert(new.clone());
        if let Some(n) = self.names.iter_mut().find(|n| *n == old) {
            *n = new.clone();
        }
        new
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let mut pending = self.slot.pending.lock().expect("pending lock");
        for name in &self.names {
            pending.remove(name);
        }
    }
}
