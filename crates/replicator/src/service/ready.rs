//! Waiting for new members to be ready: running and passing what tells
//! their readiness (the image's healthcheck, the group's probe), as the
//! inventory learns from the engine's events and replicator's probes.
//!
//! A member with neither says nothing about its app, so "ready" then means
//! running and still running [`MONITOR`] later (as Swarm's update monitor):
//! a process that exits at once fails the wait instead of passing it.

use std::time::Duration;

use tokio::time::Instant;

use tracing::warn;

use super::core::Core;
use super::replica::Replica;
use crate::error::{Error, Result};
use crate::inventory::{Health, Member, MemberState};

/// How long a member without a healthcheck or probe must keep running.
pub const MONITOR: Duration = Duration::from_millis(500);

/// Where one member stands in a wait.
#[derive(Debug, PartialEq)]
enum Verdict {
    Ready,
    Waiting,
    Failed(&'static str),
}

fn verdict(m: Option<&Member>) -> Verdict {
    let Some(m) = m else { return Verdict::Failed("it is gone") };
    match m.state {
        MemberState::Exited => Verdict::Failed("it exited"),
        MemberState::Restarting => Verdict::Failed("it exited and is being restarted"),
        MemberState::Draining | MemberState::Stopping => Verdict::Failed("it is being removed"),
        _ if m.health == Some(Health::Unhealthy) => Verdict::Failed("it is unhealthy"),
        _ if m.probe == Some(Health::Unhealthy) => Verdict::Failed("its readiness probe fails"),
        // A standby is paused once ready: paused and checked, it is ready.
        MemberState::Running | MemberState::Paused if m.checks_pass() => Verdict::Ready,
        _ => Verdict::Waiting,
    }
}

/// Waits on new members' readiness.
pub(super) struct Readiness<'a>(pub &'a Core);

impl Readiness<'_> {
    /// Resolves when every container in `ids` is ready; fails as soon as one
    /// is unhealthy or has exited, or when `within` runs out.
    pub async fn wait(&self, ids: &[String], within: Duration) -> Result<()> {
        let mut changes = self.0.store.subscribe();
        let deadline = Instant::now() + within;
        // Set once all are ready, when one of them has nothing that tells its readiness.
        let mut watched_until: Option<Instant> = None;
        loop {
            let members: Vec<(&String, Option<Member>)> = ids.iter().map(|id| (id, self.0.store.member(id))).collect();
            let mut waiting_for = None;
            for (id, m) in &members {
                match verdict(m.as_ref()) {
                    Verdict::Ready => {}
                    Verdict::Failed(why) => return Err(self.not_ready(id, why).await),
                    Verdict::Waiting => waiting_for = Some(*id),
                }
            }
            let wake_at = match (waiting_for, watched_until) {
                (Some(_), _) => deadline,
                (None, Some(until)) if Instant::now() >= until => return Ok(()),
                (None, Some(until)) => until.min(deadline),
                (None, None) if members.iter().all(|(_, m)| m.as_ref().is_some_and(Member::is_checked)) => {
                    return Ok(())
                }
                (None, None) => *watched_until.insert(Instant::now() + MONITOR),
            };
            match tokio::time::timeout_at(wake_at, changes.changed()).await {
                Ok(Ok(())) => {}
                Err(_) if waiting_for.is_none() => {}
                Ok(Err(_)) | Err(_) => {
                    let id = waiting_for.unwrap_or(&ids[0]);
                    let why = format!("it was not ready within {}", crate::base::duration::format(within));
                    return Err(self.not_ready(id, &why).await);
                }
            }
        }
    }

    /// Waits until every replica is ready; if one is not within `within`
    /// (or turns unhealthy, or exits), removes them all.
    pub async fn all_or_none(&self, replicas: &[Replica], within: Duration) -> Result<()> {
        let ids: Vec<String> = replicas.iter().map(|r| r.id.clone()).collect();
        let Err(e) = self.wait(&ids, within).await else { return Ok(()) };
        for id in &ids {
            self.0.remove_quietly(id).await;
        }
        warn!(error = %e, "replicas not ready in time; removed");
        Err(e)
    }

    /// The error naming the member, with its exit code or its last health
    /// check's or probe's output.
    async fn not_ready(&self, id: &str, why: &str) -> Error {
        let details = self.0.engine.inspect_container(id).await.ok();
        let name = details.as_ref().map_or_else(|| id.to_owned(), |d| d.name.clone());
        let exited = details.as_ref().filter(|d| !d.state.is_live()).and_then(|d| d.exit_code);
        let reason = match exited {
            Some(code) => format!("{why} (exit code {code})"),
            None => why.to_owned(),
        };
        let health = details.and_then(|d| d.health_output).filter(|o| !o.is_empty());
        let output = health.or_else(|| self.0.store.probe_failure(id));
        Error::NotReady { member: name, reason, health_output: output.map(|o| crate::base::quote::clip_to(&o, 200)) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(state: MemberState, health: Option<Health>, probe: Option<Health>) -> Member {
        Member { health, probe, ..Member::for_test("a", state) }
    }

    #[test]
    fn a_member_is_ready_when_running_and_passing_every_check_it_has() {
        assert_eq!(verdict(Some(&member(MemberState::Running, None, None))), Verdict::Ready);
        let both = member(MemberState::Running, Some(Health::Healthy), Some(Health::Healthy));
        assert_eq!(verdict(Some(&both)), Verdict::Ready);
        let probe_pending = member(MemberState::Running, Some(Health::Healthy), Some(Health::Starting));
        assert_eq!(verdict(Some(&probe_pending)), Verdict::Waiting, "both must pass when both exist");
        assert_eq!(verdict(Some(&member(MemberState::Starting, None, None))), Verdict::Waiting);
    }

    #[test]
    fn a_member_that_exited_failed_or_went_away_fails_the_wait() {
        assert_eq!(verdict(Some(&member(MemberState::Exited, None, None))), Verdict::Failed("it exited"));
        assert!(matches!(verdict(Some(&member(MemberState::Restarting, None, None))), Verdict::Failed(_)));
        let failing = member(MemberState::Running, None, Some(Health::Unhealthy));
        assert_eq!(verdict(Some(&failing)), Verdict::Failed("its readiness probe fails"));
        assert_eq!(verdict(None), Verdict::Failed("it is gone"));
    }
}
