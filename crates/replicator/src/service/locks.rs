//! One lock per group: a scale holds it for its whole change, a replication
//! only while it is admitted, so two changes to one group never interleave
//! and other groups never wait.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

/// The locks, created on first use.
#[derive(Default)]
pub(super) struct GroupLocks {
    locks: Mutex<HashMap<String, Arc<AsyncMutex<()>>>>,
}

impl GroupLocks {
    /// Exclusive right to change `group`'s size.
    pub(super) async fn lock(&self, group: &str) -> OwnedMutexGuard<()> {
        let lock = {
            let mut locks = self.locks.lock().unwrap_or_else(PoisonError::into_inner);
            if locks.len() >= PRUNE_ABOVE {
                // Held or awaited locks have another owner; the rest are unused.
                locks.retain(|_, lock| Arc::strong_count(lock) > 1);
            }
            locks.entry(group.to_owned()).or_default().clone()
        };
        lock.lock_owned().await
    }

    /// How many locks are kept now.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.locks.lock().unwrap_or_else(PoisonError::into_inner).len()
    }
}

/// Locks kept before unused ones are dropped: groups come and go.
const PRUNE_ABOVE: usize = 64;

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn locks_of_groups_gone_do_not_pile_up_and_a_held_one_stays() {
        let locks = GroupLocks::default();
        let held = locks.lock("web").await;
        for n in 0..1000 {
            drop(locks.lock(&format!("gone-{n}")).await);
        }
        assert!(locks.len() <= PRUNE_ABOVE + 1, "{} locks kept", locks.len());
        let waiting = tokio::time::timeout(std::time::Duration::from_millis(50), locks.lock("web")).await;
        assert!(waiting.is_err(), "the held lock was kept: a second holder waits");
        drop(held);
    }
}
