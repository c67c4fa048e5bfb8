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
            locks.entry(group.to_owned()).or_default().clone()
        };
        lock.lock_owned().await
    }
}
