//! Reaching a ready member for someone who is waiting: the one loop behind
//! the wake listener's held requests and the TCP fronts' held connections.
//! It reads the group once per change of the inventory, wakes it if it
//! sleeps, waits for a member that is ready and that replicator can reach
//! from where it runs, and tries the caller's attempt on it; a member that
//! refuses (an app that listens a moment after it runs) is tried again with
//! backoff until the deadline. Every way it can fail is a typed reason
//! ([`Unreached`]), mapped to a status in the one place errors are.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tracing::{debug, info};

use super::capacity::How;
use super::core::Core;
use super::scale::wake;
use crate::error::{Error, Result, Unreached};
use crate::inventory::{Group, MemberState};
use crate::model::RunState;
use crate::rules::backends::Backend;

/// The first pause before a refused attempt is tried again; it doubles up
/// to [`LAST_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(20);
/// Never longer between two tries: a member that starts listening is
/// reached within this of its first accept (a connect refused costs little).
const LAST_BACKOFF: Duration = Duration::from_millis(100);

/// Where a waiting request or connection goes, and until when it may wait.
#[derive(Debug, Clone, Copy)]
pub struct Reach<'a> {
    /// The group.
    pub group: &'a str,
    /// The members' port.
    pub port: u16,
    /// The network the group names for it, if any.
    pub network: Option<&'a str>,
    /// When waiting ends.
    pub deadline: Instant,
    /// Who wakes the group (logs and events).
    pub caller: &'a str,
    /// Whether a sleeping group is woken for it: not for a health check,
    /// even one that found the group awake and reached it just as it slept.
    pub wakes: bool,
}

/// What the attempt gave, and how the capacity came when it had to be waited for.
#[derive(Debug)]
pub struct Reached<T> {
    /// The attempt's result.
    pub value: T,
    /// `None`: a member was ready at once.
    pub how: Option<How>,
}

/// How a caller waits: which ready member it takes, and what it does the
/// first time it has to wait (`false`: it may not, and gives up).
pub trait Waiter {
    /// The member to try among the ready ones, if any.
    fn pick(&mut self, ready: Vec<Backend>) -> Option<Backend>;
    /// Called once, when there is no ready member yet.
    fn hold(&mut self) -> bool {
        true
    }
}

/// Reaches members for those who wait.
pub(super) struct Reacher<'a>(pub &'a Arc<Core>);

impl Reacher<'_> {
    /// Waits for a ready member of `reach.group` (waking the group if it
    /// sleeps) and runs `attempt` on it; an `Err` from the attempt (a refused
    /// connection) is tried again with backoff until the deadline.
    pub async fn reach<T, F, Fut>(
        &self,
        reach: Reach<'_>,
        waiter: &mut impl Waiter,
        mut attempt: F,
    ) -> Result<Reached<T>>
    where
        F: FnMut(Backend) -> Fut,
        Fut: Future<Output = std::result::Result<T, String>>,
    {
        let unreached = |reason| Error::Unreachable { group: reach.group.to_owned(), reason };
        let mut changes = self.0.store.subscribe();
        let (mut how, mut held, mut backoff) = (None, false, FIRST_BACKOFF);
        let mut asked_leader = false;
        loop {
            let group = self.0.group(reach.group).await?;
            let vantage = &self.0.settings.vantage;
            let ready = group
                .reachable(reach.port, reach.network, vantage)
                .map_err(|why| unreached(Unreached::NoRoute(why)))?;
            if let Some(member) = waiter.pick(ready) {
                let name = member.name.clone();
                match attempt(member).await {
                    Ok(value) => return Ok(Reached { value, how }),
                    Err(why) if Instant::now() + backoff < reach.deadline => {
                        debug!(group = reach.group, member = %name, reason = %why, "the member refused; trying again");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(LAST_BACKOFF);
                        continue;
                    }
                    Err(why) => return Err(unreached(Unreached::Refused(why))),
                }
            }
            if !std::mem::replace(&mut held, true) && !waiter.hold() {
                return Err(unreached(Unreached::HoldFull));
            }
            if group.asleep() && !reach.wakes {
                return Err(unreached(Unreached::NotWoken("it is asleep, and this request does not wake it".into())));
            }
            if group.asleep() && !asked_leader {
                how = how.or_else(|| Some(self.how_it_sleeps(&group)));
                asked_leader = self.wake_held(&reach).await.map_err(unreached)?;
                continue;
            }
            how = how.or_else(|| Some(self.capacity_on_its_way(reach.group)));
            match tokio::time::timeout_at(reach.deadline, changes.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err(Error::Internal("the inventory stopped".into())),
                Err(_) => return Err(unreached(Unreached::NotInTime)),
            }
        }
    }

    /// Wakes a held request's sleeping group, or (`true`) has the leader
    /// wake it while another replicator acts.
    async fn wake_held(&self, reach: &Reach<'_>) -> std::result::Result<bool, Unreached> {
        info!(group = reach.group, caller = reach.caller, "held; waking the group");
        if let Some(asked) = self.0.acting.wake_through_leader(reach.group).await {
            return asked.map(|()| true).map_err(|e| Unreached::NotWoken(e.to_string()));
        }
        match tokio::time::timeout_at(reach.deadline, wake(self.0, reach.group, reach.caller, None)).await {
            Ok(Ok(_)) => Ok(false),
            Ok(Err(e)) => Err(Unreached::NotWoken(e.to_string())),
            Err(_) => Err(Unreached::NotInTime),
        }
    }

    /// How a sleeping group will come back: unpaused, or started again.
    fn how_it_sleeps(&self, group: &Group) -> How {
        let paused = group
            .members
            .iter()
            .filter(|m| m.state == MemberState::Sleeping)
            .any(|m| self.0.store.container(&m.id).is_some_and(|c| c.state == RunState::Paused));
        if paused {
            How::WakeFromPause
        } else {
            How::WakeFromStop
        }
    }

    /// How the capacity an awake group is waiting for comes: named as it came
    /// (a wake, a standby, a cold clone).
    fn capacity_on_its_way(&self, group: &str) -> How {
        let coming = self.0.capacity.recent(group).into_iter().rev().find(|c| c.ready.is_none() && c.failed.is_none());
        coming.map_or(How::Cold, |c| c.how)
    }
}

/// Takes the first ready member: the wake listener's way.
pub struct FirstReady;

impl Waiter for FirstReady {
    fn pick(&mut self, ready: Vec<Backend>) -> Option<Backend> {
        ready.into_iter().next()
    }
}
