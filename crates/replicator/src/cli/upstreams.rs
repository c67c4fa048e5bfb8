//! `replicator upstreams`: keeps a load balancer's lists of groups' members
//! current, following the engine's events (with a periodic resync as a net)
//! or a replicator's event stream. One follower serves any number of
//! groups: one file each (`--out` with `{group}`) or one file with every
//! block, and one reload per burst of changes.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::balancer_file::{unique_follower_name, Output, Written};
use crate::base::duration;
use crate::base::telemetry::Telemetry;
use crate::engine::{DockerEngine, EngineSettings};
use crate::inventory::{Informer, Inventory, Scope, Store};
use crate::rules::access::{Identity, UnboundPolicy};
use crate::rules::backends::Format;
use crate::service::Prober;

#[derive(Debug, Args)]
pub struct UpstreamsArgs {
    /// A group whose ready members are the upstream servers; repeat it for
    /// several, or give a pattern (`web-*`; `*` any characters, `?` one).
    #[arg(long = "group", required_unless_present = "all_groups", value_parser = parse_pattern)]
    groups: Vec<String>,
    /// Follow every group (as --group '*').
    #[arg(long, conflicts_with = "groups")]
    all_groups: bool,
    #[arg(long, value_enum, default_value_t = Format::Nginx)]
    format: Format,
    /// File to (re)write, replaced atomically: one file with every group's
    /// block, or a path with {group} for one file per group.
    #[arg(long)]
    out: PathBuf,
    /// Changes closer together than this are written, and reloaded, together.
    #[arg(long, default_value = "200ms", value_parser = duration::parse)]
    debounce: Duration,
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

/// A group name, or a pattern of one (`*`, `?` besides the name's characters).
fn parse_pattern(raw: &str) -> Result<String, String> {
    let name = raw.replace(['*', '?'], "x");
    match crate::base::id::GroupName::parse(&name) {
        Ok(_) => Ok(raw.to_owned()),
        Err(_) if raw.chars().all(|c| c == '*') => Ok(raw.to_owned()),
        Err(e) => Err(e.to_string()),
    }
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
    let output = Output::from(&args);
    let mut written = Written::new();
    if args.once {
        informer.resync().await.context("cannot list the engine")?;
        prober.probe_all_once().await;
        refresh(&inventory, &output, &mut written).await;
        return Ok(());
    }
    let mut changes = inventory.subscribe();
    let cancel = CancellationToken::new();
    let informing = tokio::spawn(informer.run(cancel.clone()));
    tokio::spawn(prober.run(cancel.clone()));
    while changes.changed().await.is_ok() {
        settle(&mut changes, output.debounce).await;
        refresh(&inventory, &output, &mut written).await;
    }
    cancel.cancel();
    informing.await.context("the informer failed")
}

/// The name a balancer certificate in `certs` binds its holder to: it may
/// acknowledge as that name only.
fn balancer_name(certs: &std::path::Path) -> Option<String> {
    let cert = crate::tls::load_certs("client certificate", &crate::tls::TlsFiles::client_in(certs).cert).ok()?;
    let uris = crate::tls::uri_names(cert.first()?).ok()?;
    match Identity::from_uris(uris.iter().map(String::as_str), UnboundPolicy::Refuse) {
        Ok(Identity::Balancer { name }) => Some(name),
        _ => None,
    }
}

/// Waits until the inventory has been quiet for `debounce` (at most ten
/// times that in all), so a burst of changes makes one write and one reload.
async fn settle(changes: &mut tokio::sync::watch::Receiver<u64>, debounce: Duration) {
    let latest = tokio::time::Instant::now() + debounce * 10;
    changes.borrow_and_update();
    while let Ok(Ok(())) =
        tokio::time::timeout_at(latest.min(tokio::time::Instant::now() + debounce), changes.changed()).await
    {
        changes.borrow_and_update();
    }
}

/// Renders the followed groups; writes and reloads only what changed.
async fn refresh(inventory: &Store, output: &Output, written: &mut Written) {
    let groups = match inventory.groups() {
        Ok(groups) => groups,
        Err(e) => return warn!(error = %e, "cannot read the groups; keeping the current files"),
    };
    let members = groups
        .iter()
        .filter(|g| output.follows(g.name()))
        .map(|g| (g.name().to_owned(), g.backends(output.port, output.network.as_deref())))
        .collect();
    output.apply(&members, written).await;
}

impl From<&UpstreamsArgs> for Output {
    fn from(args: &UpstreamsArgs) -> Self {
        Output {
            groups: if args.all_groups { vec!["*".to_owned()] } else { args.groups.clone() },
            format: args.format,
            out: args.out.clone(),
            port: args.port,
            network: args.network.clone(),
            reload: args.reload.clone(),
            certs: args.certs.clone(),
            follower: args.follower.clone().or_else(|| balancer_name(&args.certs)).unwrap_or_else(unique_follower_name),
            once: args.once,
            wake: args.wake,
            debounce: args.debounce,
        }
    }
}

impl From<UpstreamsArgs> for Output {
    fn from(args: UpstreamsArgs) -> Self {
        Output::from(&args)
    }
}
