//! `replicator agent`: runs [`crate::cli::usage_report::Agent`] on one Swarm node until
//! SIGTERM, with the engine found the docker CLI's way.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use tokio_util::sync::CancellationToken;
use tracing::info;

use super::serve::{init_logging, shutdown_signal, LogFormat};
use crate::base::duration;
use crate::base::telemetry::Telemetry;
use crate::cli::remote::ApiClient;
use crate::cli::usage_report::Agent;
use crate::engine::{DockerEngine, EngineSettings};
use crate::tls::TlsFiles;

#[derive(Debug, Args)]
pub struct AgentArgs {
    /// The manager's replicator (https://HOST:PORT).
    #[arg(long, env = "REPLICATOR_SERVER")]
    server: String,
    /// Client certificate folder: ca.pem, cert.pem and key.pem (with --swarm-node-certs, only ca.pem).
    #[arg(long, env = "REPLICATOR_CERTS", default_value = "./certs")]
    certs: PathBuf,
    /// Present this node's own Swarm certificate (swarm-node.crt, swarm-node.key in this folder,
    /// /var/lib/docker/swarm/certificates on a node) instead of cert.pem: it proves the node to serve --swarm-ca.
    #[arg(long, env = "REPLICATOR_SWARM_NODE_CERTS")]
    swarm_node_certs: Option<PathBuf>,
    /// Time between two reports; keep it well under serve's --metric-ttl.
    #[arg(long, env = "REPLICATOR_AGENT_INTERVAL", default_value = "2s", value_parser = duration::parse_positive)]
    interval: Duration,
    /// This node's engine (unix:///path or tcp://host:port); overrides DOCKER_HOST.
    #[arg(long, env = "REPLICATOR_DOCKER_HOST")]
    docker_host: Option<String>,
    /// Log lines as text or JSON.
    #[arg(long, env = "REPLICATOR_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

/// Runs the agent until SIGTERM or SIGINT.
pub fn run(args: AgentArgs) -> anyhow::Result<()> {
    init_logging(args.log_format);
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
    runtime.block_on(async move {
        let settings =
            EngineSettings::resolve(args.docker_host.as_deref(), |k| std::env::var(k).ok(), Duration::from_secs(30))?;
        let engine = DockerEngine::new(settings, Arc::new(Telemetry::default()))?;
        let files = match &args.swarm_node_certs {
            Some(node) => TlsFiles {
                cert: node.join("swarm-node.crt"),
                key: node.join("swarm-node.key"),
                ca: args.certs.join("ca.pem"),
            },
            None => TlsFiles::client_in(&args.certs),
        };
        let config = crate::tls::client_config(&files)
            .with_context(|| format!("cannot use the client certificate {}", files.cert.display()))?;
        let client = ApiClient::with_config(&args.server, config, true)?;
        let cancel = CancellationToken::new();
        let stop = cancel.clone();
        tokio::spawn(async move {
            shutdown_signal().await;
            stop.cancel();
        });
        info!(server = %args.server, interval = ?args.interval, "agent reporting");
        Agent { engine: &engine, client: &client, interval: args.interval }.run(cancel).await;
        Ok(())
    })
}
