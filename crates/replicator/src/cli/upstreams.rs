//! `replicator upstreams`: keeps a load balancer's list of a group's members
//! current, following the engine's events (with a periodic resync as a net).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::duration;
use crate::engine::{DockerEngine, EngineSettings};
use crate::error::Error;
use crate::inventory::{Informer, Inventory, Scope};
use crate::telemetry::Telemetry;
use crate::upstreams::{backends, render, Format};

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
    let inventory = Inventory::new(Scope { allow_all: true, ..Scope::default() });
    let informer = Informer::new(engine, inventory.clone(), args.resync);
    let mut written = tokio::fs::read_to_string(&args.out).await.ok();
    if args.once {
        informer.resync().await.context("cannot list the engine")?;
        refresh(&inventory, &args, &mut written).await;
        return Ok(());
    }
    let mut changes = inventory.subscribe();
    let cancel = CancellationToken::new();
    let informing = tokio::spawn(informer.run(cancel.clone()));
    while changes.changed().await.is_ok() {
        tokio::time::sleep(DEBOUNCE).await;
        changes.borrow_and_update();
        refresh(&inventory, &args, &mut written).await;
    }
    cancel.cancel();
    informing.await.context("the informer failed")
}

/// Renders the group; writes and reloads only when the text changed.
async fn refresh(inventory: &Inventory, args: &UpstreamsArgs, written: &mut Option<String>) {
    let servers = match inventory.group(&args.group) {
        Ok(group) => backends(&group, args.port, args.network.as_deref()),
        Err(Error::GroupNotFound(_)) => Vec::new(),
        Err(e) => return warn!(group = %args.group, error = %e, "cannot read the group; keeping the current file"),
    };
    Output::from(args).apply(&servers, written).await;
}

/// Where and how the file is written: shared by both ways of following.
pub(super) struct Output {
    pub(super) group: String,
    pub(super) format: Format,
    pub(super) out: PathBuf,
    pub(super) port: u16,
    pub(super) network: Option<String>,
    pub(super) reload: Option<String>,
    pub(super) certs: PathBuf,
    pub(super) follower: String,
    pub(super) once: bool,
    pub(super) wake: Option<std::net::SocketAddr>,
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
            follower: args.follower.clone().unwrap_or_else(unique_follower_name),
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

impl Output {
    /// Writes `servers` when the text changed, then reloads; true once the
    /// balancer has what `servers` says (a failed write or reload is
    /// retried at the next change).
    pub(super) async fn apply(&self, servers: &[crate::upstreams::Backend], written: &mut Option<String>) -> bool {
        let waker;
        let servers = match (servers.is_empty(), self.wake) {
            (true, Some(address)) => {
                waker = [crate::upstreams::Backend {
                    id: String::new(),
                    name: "replicator's waker: the group has no ready member".into(),
                    address: address.to_string(),
                }];
                &waker[..]
            }
            _ => servers,
        };
        let text = render(self.format, &self.group, servers);
        if written.as_deref() == Some(text.as_str()) {
            return true;
        }
        if let Err(e) = write_atomically(&self.out, &text).await {
            warn!(error = %format!("{e:#}"), "cannot write the upstreams file");
            return false;
        }
        info!(group = %self.group, servers = servers.len(), out = %self.out.display(), "upstreams written");
        *written = self.reload(text).await;
        written.is_some()
    }

    async fn reload(&self, text: String) -> Option<String> {
        // Remembered only once the balancer has it: a failed reload is retried
        // on the next change or resync.
        match &self.reload {
            None => Some(text),
            Some(command) => match tokio::process::Command::new("sh").arg("-c").arg(command).status().await {
                Ok(status) if status.success() => {
                    info!(command, "reloaded");
                    Some(text)
                }
                Ok(status) => {
                    warn!(command, %status, "reload command failed; will retry");
                    None
                }
                Err(e) => {
                    warn!(command, error = %e, "reload command could not run; will retry");
                    None
                }
            },
        }
    }
}

/// A name no other follower has: each balancer must acknowledge for itself.
fn unique_follower_name() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("upstreams-{}-{:x}", std::process::id(), nanos & 0xffff_ffff_ffff)
}

/// Write beside, then rename: a reader never sees half a file.
async fn write_atomically(path: &Path, text: &str) -> anyhow::Result<()> {
    let name = path.file_name().context("the output path has no file name")?.to_string_lossy();
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    tokio::fs::write(&tmp, text).await.with_context(|| format!("cannot write {}", tmp.display()))?;
    tokio::fs::rename(&tmp, path).await.with_context(|| format!("cannot replace {}", path.display()))
}
