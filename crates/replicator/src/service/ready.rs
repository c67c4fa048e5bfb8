//! Waiting for new members to be ready: running and, if they have a
//! healthcheck, healthy, as the inventory learns from the engine's events.

use std::time::Duration;

use super::Replicator;
use crate::error::{Error, Result};
use crate::model::{Health, RunState};

impl Replicator {
    /// Resolves when every container in `ids` is ready; fails as soon as one
    /// is unhealthy or has exited, or when `within` runs out.
    pub(super) async fn wait_ready(&self, ids: &[String], within: Duration) -> Result<()> {
        let mut changes = self.inventory().subscribe();
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let mut waiting_for = None;
            for id in ids {
                let c = self.inventory().container(id);
                match c.as_ref().map(|c| (c.state, c.health)) {
                    Some((RunState::Running, None | Some(Health::Healthy))) => {}
                    Some((_, Some(Health::Unhealthy))) => return Err(self.not_ready(id, "it is unhealthy").await),
                    Some((RunState::Exited | RunState::Dead, _)) | None => {
                        return Err(self.not_ready(id, "it stopped").await)
                    }
                    Some(_) => waiting_for = Some(id),
                }
            }
            let Some(id) = waiting_for else { return Ok(()) };
            match tokio::time::timeout_at(deadline, changes.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) | Err(_) => {
                    let why = format!("it was not ready within {}", crate::base::duration::format(within));
                    return Err(self.not_ready(id, &why).await);
                }
            }
        }
    }

    /// The error naming the member and its last healthcheck output.
    async fn not_ready(&self, id: &str, why: &str) -> Error {
        let details = self.engine().inspect_container(id).await.ok();
        let name = details.as_ref().map_or_else(|| id.to_owned(), |d| d.name.clone());
        let output = details.and_then(|d| d.health_output).filter(|o| !o.is_empty());
        Error::NotReady {
            member: name,
            reason: why.to_owned(),
            health_output: output.map(|o| crate::base::quote::clip_to(&o, 200)),
        }
    }
}
