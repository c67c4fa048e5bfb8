//! What `replicator agent` does: the eyes of the manager's autoscaler on one Swarm
//! node. A manager's engine reads stats only for its own containers; the
//! agent runs on every node (a global service), measures the task
//! containers of the services the manager autoscales on CPU or memory, the
//! way `docker stats` does, and reports them every interval. The manager's
//! answer names the services it wants measured next time, so an agent
//! reads no stats nobody uses, and its first report is a bare heartbeat.

use std::collections::BTreeSet;
use std::time::Duration;

use futures_util::stream::{self, StreamExt};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::autoscale::stats::{cpu_percent, memory_percent};
use crate::cli::remote::ApiClient;
use crate::engine::Engine;
use crate::model::{ListQuery, SwarmRole};
use crate::rules::labels::SWARM_SERVICE_ID;

/// Stats read at once: each takes the engine about a second.
const PARALLEL_STATS: usize = 16;

/// One agent: this node's engine, and the manager's replicator.
pub struct Agent<'a> {
    /// This node's engine.
    pub engine: &'a dyn Engine,
    /// The manager's replicator, reached with the agent's client certificate.
    pub client: &'a ApiClient,
    /// Time between two reports.
    pub interval: Duration,
}

/// Why one round sent nothing.
#[derive(Debug, thiserror::Error)]
pub enum RoundError {
    /// This node's engine cannot be read.
    #[error("cannot read this node's engine: {0}")]
    Engine(#[from] crate::engine::EngineError),
    /// The engine is not in a swarm: there is nothing to report for.
    #[error("this node's engine is not in a swarm (docker info shows no node id)")]
    NotInSwarm,
    /// The manager could not be reached.
    #[error("cannot reach replicator: {0}")]
    Unreachable(String),
    /// The manager refused the report.
    #[error("replicator refused the report ({status}): {message}")]
    Refused {
        /// The HTTP status.
        status: u16,
        /// replicator's message.
        message: String,
    },
}

impl Agent<'_> {
    /// Reports every interval until `cancel`; a failed round is logged
    /// (once per distinct failure) and the next one tried.
    pub async fn run(&self, cancel: CancellationToken) {
        let mut wanted = BTreeSet::new();
        let mut last_problem = String::new();
        let mut ticks = tokio::time::interval(self.interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                () = cancel.cancelled() => return,
            }
            let problem = match self.round(&wanted).await {
                Ok(next) => {
                    if next != wanted {
                        info!(services = ?next, "services to measure");
                    }
                    wanted = next;
                    String::new()
                }
                Err(e) => e.to_string(),
            };
            if problem != last_problem {
                if problem.is_empty() {
                    info!("reporting again");
                } else {
                    warn!(problem, "report not sent; retrying every interval");
                }
                last_problem = problem;
            }
        }
    }

    /// Measures the wanted services' containers, reports them, and returns
    /// the services the manager wants next.
    pub async fn round(&self, wanted: &BTreeSet<String>) -> Result<BTreeSet<String>, RoundError> {
        let info = self.engine.info().await?;
        if info.node_id.is_empty() || info.swarm == SwarmRole::Inactive {
            return Err(RoundError::NotInSwarm);
        }
        let body = self.measure(&info.hostname, wanted).await?;
        let path = format!("/v1/nodes/{}/usage", info.node_id);
        let answer = self
            .client
            .request(http::Method::PUT, &path, Some(&body))
            .await
            .map_err(|e| RoundError::Unreachable(e.to_string()))?;
        let reply = answer.json();
        if !answer.status.is_success() {
            let message = reply.pointer("/error/message").and_then(Value::as_str).unwrap_or_default().to_owned();
            return Err(RoundError::Refused { status: answer.status.as_u16(), message });
        }
        let services = reply.get("services").and_then(Value::as_array).into_iter().flatten();
        Ok(services.filter_map(Value::as_str).map(str::to_owned).collect())
    }

    /// The report's body: usage of each running task container of `wanted`.
    async fn measure(&self, hostname: &str, wanted: &BTreeSet<String>) -> Result<Value, RoundError> {
        let containers = if wanted.is_empty() {
            Vec::new()
        } else {
            let query = ListQuery { labels: vec![SWARM_SERVICE_ID.to_owned()], ..Default::default() };
            self.engine.list_containers(&query).await?
        };
        let ids: Vec<String> = containers
            .into_iter()
            .filter(|c| c.labels.get(SWARM_SERVICE_ID).is_some_and(|s| wanted.contains(s)))
            .map(|c| c.id)
            .collect();
        let usage: Vec<Value> = stream::iter(ids)
            .map(|id| async move {
                match self.engine.stats(&id).await {
                    Ok(s) => Some(json!({ "id": id, "cpu": cpu_percent(&s), "memory": memory_percent(&s) })),
                    // Gone between the listing and the reading: nothing to say about it.
                    Err(e) => {
                        debug!(container = %id, error = %e, "no stats");
                        None
                    }
                }
            })
            .buffer_unordered(PARALLEL_STATS)
            .filter_map(|u| async move { u })
            .collect()
            .await;
        Ok(json!({ "hostname": hostname, "containers": usage }))
    }
}
