//! `replicator upstreams`: keeps a load balancer's list of a group's members
//! current, following the engine's events (with a periodic resync as a net).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::balancer_file::{unique_follower_name, Output};
use crate::base::duration;
use crate::base::telemetry::Telemetry;
use crate::engine::{DockerEngine, EngineSettings};
use crate::error::Error;
use crate::inventory::{Informer, Inventory, Scope, Store};
use crate::rules::access::{Identity, UnboundPolicy};
use crate::rules::backends::Format;
use crate::service::Prober;

/// Changes closer together than this are written together.
const DEBOUNCE: Duration = Duration::from_millis(50);

#[derive(Debug, Args)]
pub struct UpstreamsArgs {
    /// The group whose running members are the upstream servers.
    #[arg(long)]
    group: String,
    #[arg(long, value_enum, default_value_t = Format::Nginx)]
    format: Format,
    /// File to (re)write; replaced atomically.
    #[arg(long)]
    out: PathBuf,
    /// The members' port (on NET, or the host port they publish for it).
    #[arg(long, default_value_t = 80)]
    port: u16,
    /// Use each member's address on this network instead of its published host port.
    #[arg(long)]
    network: Option<String>,
    /// Command run (with sh -c) after each change, e.g. "nginx -s reload".
    #[arg(long)]
    reload: Option<String>,
    /// Engine address; overrides DOCKER_HOST (without --server).
    #[arg(long, env = "REPLICATOR_DOCKER_HOST")]
    docker_host: Option<String>,
    /// Follow a replicator's event stream (https://HOST:PORT) instead of the
    /// engine: members leave the file when they start draining, and each
    /// reload is acknowledged so the scale-down waits for it.
    #[arg(long, env = "REPLICATOR_SERVER")]
    server: Option<String>,
    /// Client certificates for --server (ca.pem, cert.pem, key.pem).
    #[arg(long, env = "REPLICATOR_CERTS", default_value = "./certs")]
    certs: PathBuf,
    /// This follower's name in acknowledgements, unique per balancer (default:
    /// the name a balancer certificate is bound to, else
    /// upstreams-<pid>-<start time>, unique even for PID 1 in many containers).
    #[arg(long)]
    follower: Option<String>,
    /// Re-read the group this often even without events.
    #[arg(long, default_value = "10s", value_parser = duration::parse_positive)]
    resync: Duration,
    /// Write the file once and exit.
    #[arg(long)]
    once: bool,
    /// replicator's wake listener (`serve --wake-listen`, HOST:PORT): the
    /// upstream while the group has no ready member, so the first request
    /// to a sleeping group wakes it instead of failing.
    #[arg(long, value_parser = parse_wake)]
    wake: Option<std::net::SocketAddr>,
}

fn parse_wake(raw: &str) -> Result<std::net::SocketAddr, String> {
    raw.parse().map_err(|_| format!("{raw:?} is not an address like 127.0.0.1:8081"))
}

/// Runs `replicator upstreams` to completion.
pub fn run(args: UpstreamsArgs) -> anyhow::Result<()> {
    super::init_logging(super::LogFormat::Text);
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
    runtime.block_on(follow(args))
}

/// Follows the group through a local inventory (the same informer as
/// `serve`): every change of the group rewrites the file.
async fn follow(args: UpstreamsArgs) -> anyhow::Result<()> {
    if let Some(server) = args.server.clone() {
        return super::follow_server::run(&server, args.into()).await;
    }
    let settings =
        EngineSettings::resolve(args.docker_host.as_deref(), |k| std::env::var(k).ok(), Duration::from_secs(30))?;
    let engine = Arc::new(DockerEngine::new(settings, Arc::new(Telemetry::default()))?);
    // Every member counts here, whether or not it opted in to replication.
    let Inventory { writer, store: inventory, intents } = Inventory::new(Scope { allow_all: true, ..Scope::default() });
    let informer = Informer::new(engine, writer, args.resync);
    // Members of a group with a readiness probe are ready only once probed, here as in serve.
    let prober = Prober::new(inventory.clone(), intents);
    let mut written = tokio::fs::read_to_string(&args.out).await.ok();
    if args.once {
        informer.resync().await.context("cannot list the engine")?;
        prober.probe_all_once().await;
        refresh(&inventory, &args, &mut written).await;
        return Ok(());
    }
    let mut changes = inventory.subscribe();
    let cancel = CancellationToken::new();
    let informing = tokio::spawn(informer.run(cancel.clone()));
    tokio::spawn(prober.run(cancel.clone()));
    while changes.changed().await.is_ok() {
        tokio::time::sleep(DEBOUNCE).await;
        changes.borrow_and_update();
        refresh(&inventory, &args, &mut written).await;
    }
    cancel.cancel();
    informing.await.context("the informer failed")
}

/// The name a balancer certificate in `certs` binds its holder to: it may
/// acknowledge as that name only.
fn balancer_name(certs: &std::path::Path) -> Option<String> {
    let cert = crate::tls::load_certs("client certificate", &crate::tls::TlsFiles::client_in(certs).cert).ok()?;
    let uris = crate::tls::uri_names(cert.first()?);
    match Identity::from_uris(uris.iter().map(String::as_str), UnboundPolicy::Refuse) {
        Ok(Identity::Balancer { name }) => Some(name),
        _ => None,
    }
}

/// Renders the group; writes and reloads only when the text changed.
async fn refresh(inventory: &Store, args: &UpstreamsArgs, written: &mut Option<String>) {
    let servers = match inventory.group(&args.group) {
        Ok(group) => group.backends(args.port, args.network.as_deref()),
        Err(Error::GroupNotFound(_)) => Vec::new(),
        Err(e) => return warn!(group = %args.group, error = %e, "cannot read the group; keeping the current file"),
    };
    Output::from(args).apply(&servers, written).await;
}

impl From<&UpstreamsArgs> for Output {
    fn from(args: &UpstreamsArgs) -> Self {
        Output {
            group: args.group.clone(),
            format: args.format,
            out: args.out.clone(),
            port: args.port,
            network: args.network.clone(),
            reload: args.reload.clone(),
            certs: args.certs.clone(),
            follower: args.follower.clone().or_else(|| balancer_name(&args.certs)).unwrap_or_else(unique_follower_name),
            once: args.once,
            wake: args.wake,
        }
    }
}

impl From<UpstreamsArgs> for Output {
    fn from(args: UpstreamsArgs) -> Self {
        Output::from(&args)
    }
}
