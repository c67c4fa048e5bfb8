//! Exactly one process acts: while a successor takes over (see
//! `server.rs`), the old process finishes the commands it began and then
//! hands acting over, and the new one holds the commands it receives until
//! then. Every command (replicate, scale, wake; the loops' too) runs under a
//! permit: waiting while the role is [`Role::Waiting`], refused once it is
//! [`Role::Released`], and a release waits for every permit out.

use std::sync::Arc;

use tokio::sync::{watch, RwLock, RwLockReadGuard};

use crate::base::telemetry::Telemetry;
use crate::error::{Error, Result};

/// Whether this process acts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Taking over: commands wait until the predecessor hands acting over.
    Waiting,
    /// Acting: commands run.
    Acting,
    /// Handed over to a successor: commands are refused.
    Released,
}

/// The role, and the commands running under it.
pub struct Acting {
    role: watch::Sender<Role>,
    running: RwLock<()>,
    /// Where `replicator_leader` and its changes are counted.
    telemetry: Arc<Telemetry>,
}

impl Acting {
    /// Acting from the start (no predecessor), counted into `telemetry`.
    pub(super) fn new(telemetry: Arc<Telemetry>) -> Self {
        telemetry.leader.set(1);
        Self { role: watch::Sender::new(Role::Acting), running: RwLock::new(()), telemetry }
    }

    /// Waits until this process acts, then holds a permit for one command.
    pub(super) async fn permit(&self) -> Result<RwLockReadGuard<'_, ()>> {
        let mut role = self.role.subscribe();
        loop {
            match *role.borrow_and_update() {
                Role::Acting => break,
                Role::Released => return Err(Error::NotActing),
                Role::Waiting => {}
            }
            role.changed().await.map_err(|_| Error::NotActing)?;
        }
        let permit = self.running.read().await;
        match *self.role.borrow() {
            Role::Acting => Ok(permit),
            _ => Err(Error::NotActing),
        }
    }

    /// Commands wait from now until [`Self::grant`]: a predecessor still acts.
    pub fn wait_for_predecessor(&self) {
        self.role.send_replace(Role::Waiting);
        self.telemetry.leader.set(0);
    }

    /// This process acts from now on.
    pub fn grant(&self) {
        if self.role.send_replace(Role::Acting) != Role::Acting {
            self.telemetry.leader.set(1);
            self.telemetry.leader_changes.inc();
        }
    }

    /// Stops acting: refuses new commands and waits for those running.
    pub async fn release(&self) {
        if self.role.send_replace(Role::Released) == Role::Acting {
            self.telemetry.leader.set(0);
            self.telemetry.leader_changes.inc();
        }
        drop(self.running.write().await);
    }

    /// The role now.
    pub fn role(&self) -> Role {
        *self.role.borrow()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_command_waits_for_the_grant_and_a_release_waits_for_commands_then_refuses() {
        let telemetry = Arc::new(Telemetry::default());
        let acting = Arc::new(Acting::new(telemetry.clone()));
        acting.wait_for_predecessor();
        let waiting = tokio::spawn({
            let acting = acting.clone();
            async move {
                let _permit = acting.permit().await?;
                tokio::time::sleep(Duration::from_secs(5)).await;
                Ok::<_, Error>(())
            }
        });
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(!waiting.is_finished(), "held until the grant");
        acting.grant();
        tokio::time::sleep(Duration::from_millis(10)).await;
        let began = tokio::time::Instant::now();
        acting.release().await;
        assert!(began.elapsed() >= Duration::from_secs(4), "the release waited for the running command");
        assert!(waiting.await.unwrap().is_ok());
        assert!(matches!(acting.permit().await, Err(Error::NotActing)), "refused once released");
        assert_eq!(acting.role(), Role::Released);
        assert_eq!((telemetry.leader.get(), telemetry.leader_changes.get()), (0, 2), "granted, then released");
    }
}
