//! Exactly one process acts: while a successor takes over (see
//! `server.rs`), the old process finishes the commands it began and then
//! hands acting over, and the new one holds the commands it receives until
//! then. Every command (replicate, scale, wake; the loops' too) runs under a
//! permit: waiting while the role is [`Role::Waiting`], refused once it is
//! [`Role::Released`], and a release waits for every permit out. With a
//! lease (several replicators, `service::lease`), the role moves between
//! [`Role::Following`] and [`Role::Acting`] as the lease is won and lost.

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
    /// Another replicator holds the lease: commands are refused, naming it.
    Following,
    /// Handed over to a successor: commands are refused.
    Released,
}

/// How a replicator that does not act reaches the one that does: the data
/// path's wakes go there (implemented by the API layer, over mutual TLS
/// with this replicator's peer identity).
#[async_trait::async_trait]
pub trait LeaderLink: Send + Sync + 'static {
    /// Asks the replicator at `leader` to wake `group`.
    async fn wake(&self, leader: &str, group: &str) -> Result<()>;
}

/// The role, and the commands running under it.
pub struct Acting {
    /// How to reach the leader while following; `None`: refuse instead.
    link: std::sync::OnceLock<Arc<dyn LeaderLink>>,
    role: watch::Sender<Role>,
    /// Where the replicator that acts answers, when another does and said so.
    leader: std::sync::Mutex<Option<String>>,
    running: RwLock<()>,
    /// Where `replicator_leader` and its changes are counted.
    telemetry: Arc<Telemetry>,
}

impl Acting {
    /// Acting from the start (no predecessor), counted into `telemetry`.
    pub(super) fn new(telemetry: Arc<Telemetry>) -> Self {
        telemetry.leader.set(1);
        Self {
            link: std::sync::OnceLock::new(),
            role: watch::Sender::new(Role::Acting),
            leader: Default::default(),
            running: RwLock::new(()),
            telemetry,
        }
    }

    /// Waits until this process acts, then holds a permit for one command.
    pub(super) async fn permit(&self) -> Result<RwLockReadGuard<'_, ()>> {
        let mut role = self.role.subscribe();
        loop {
            match *role.borrow_and_update() {
                Role::Acting => break,
                Role::Released | Role::Following => return Err(self.refusal()),
                Role::Waiting => {}
            }
            role.changed().await.map_err(|_| self.refusal())?;
        }
        let permit = self.running.read().await;
        match *self.role.borrow() {
            Role::Acting => Ok(permit),
            _ => Err(self.refusal()),
        }
    }

    /// Why a command is refused here: it names the leader when one is known.
    fn refusal(&self) -> Error {
        Error::NotActing { leader: self.leader() }
    }

    /// Where the replicator that acts answers, if another does and said so.
    pub fn leader(&self) -> Option<String> {
        self.leader.lock().expect("leader").clone()
    }

    /// Another replicator acts (at `leader`, when known): commands are
    /// refused from now on. Those running finish; their calls that change
    /// the world meet the closed fence.
    pub fn follow(&self, leader: Option<String>) {
        *self.leader.lock().expect("leader") = leader;
        if self.role.send_replace(Role::Following) == Role::Acting {
            self.telemetry.leader.set(0);
            self.telemetry.leader_changes.inc();
        }
    }

    /// Reaches the leader through `link` from now on (set once).
    pub fn link_to_leader(&self, link: Arc<dyn LeaderLink>) {
        let _ = self.link.set(link);
    }

    /// While another acts and a link reaches it: asks it to wake `group`.
    /// `None` when this process should act itself (or cannot forward).
    pub(super) async fn wake_through_leader(&self, group: &str) -> Option<Result<()>> {
        if self.role() != Role::Following {
            return None;
        }
        let (link, leader) = (self.link.get()?, self.leader()?);
        Some(link.wake(&leader, group).await)
    }

    /// Waits until the role is other than `role`, and answers the new one.
    pub async fn changed_from(&self, role: Role) -> Role {
        let mut roles = self.role.subscribe();
        let Ok(now) = roles.wait_for(|r| *r != role).await else { return self.role() };
        *now
    }

    /// Commands wait from now until [`Self::grant`]: a predecessor still acts.
    pub fn wait_for_predecessor(&self) {
        self.role.send_replace(Role::Waiting);
        self.telemetry.leader.set(0);
    }

    /// Commands are refused from now on until a lease is won: a replicator
    /// among several starts so.
    pub fn await_lease(&self) {
        self.role.send_replace(Role::Following);
        self.telemetry.leader.set(0);
    }

    /// This process acts from now on.
    pub fn grant(&self) {
        *self.leader.lock().expect("leader") = None;
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
        assert!(matches!(acting.permit().await, Err(Error::NotActing { leader: None })), "refused once released");
        assert_eq!(acting.role(), Role::Released);
        assert_eq!((telemetry.leader.get(), telemetry.leader_changes.get()), (0, 2), "granted, then released");
    }
}

#[cfg(test)]
mod following {
    use super::*;

    #[tokio::test]
    async fn a_follower_refuses_naming_the_leader_and_acts_once_granted() {
        let telemetry = Arc::new(Telemetry::default());
        let acting = Acting::new(telemetry.clone());
        acting.follow(Some("https://other:8443".into()));
        let refused = acting.permit().await.unwrap_err();
        assert_eq!(refused, Error::NotActing { leader: Some("https://other:8443".into()) });
        assert_eq!(telemetry.leader.get(), 0);
        acting.grant();
        assert!(acting.permit().await.is_ok());
        assert_eq!((acting.leader(), telemetry.leader.get()), (None, 1));
    }
}
