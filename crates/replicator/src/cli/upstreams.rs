//! `replicator upstreams`: keeps a load balancer's list of a group's members
//! current, following the engine's events (with a periodic resync as a net).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use tracing::{info, warn};

use crate::duration;
use crate::engine::{DockerEngine, Engine, EngineResult, EngineSettings, LISTING_LAG};
use crate::model::ContainerEvent;

/// The pause before following the engine again after it went away.
const RETRY: Duration = Duration::from_secs(2);
use crate::error::Error;
use crate::service::{Replicator, Settings};
use crate::telemetry::Telemetry;
use crate::upstreams::{render, Format};

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
    /// Engine address; overrides DOCKER_HOST.
    #[arg(long, env = "REPLICATOR_DOCKER_HOST")]
    docker_host: Option<String>,
    /// Re-read the group this often even without events.
    #[arg(long, default_value = "10s", value_parser = duration::parse_positive)]
    resync: Duration,
    /// Write the file once and exit.
    #[arg(long)]
    once: bool,
}

pub fn run(args: UpstreamsArgs) -> anyhow::Result<()> {
    super::init_logging(super::LogFormat::Text);
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
    runtime.block_on(follow(args))
}

async fn follow(args: UpstreamsArgs) -> anyhow::Result<()> {
    let settings =
        EngineSettings::resolve(args.docker_host.as_deref(), |k| std::env::var(k).ok(), Duration::from_secs(30))?;
    let engine = Arc::new(DockerEngine::new(settings, Arc::new(Telemetry::default()))?);
    // Every member counts here, whether or not it opted in to replication.
    let service = Replicator::new(
        engine.clone(),
        Settings { allow_all: true, ..Settings::default() },
        Arc::new(Telemetry::default()),
    );
    let mut written = std::fs::read_to_string(&args.out).ok();
    // Events are asked for from before the first look, so none falls between.
    let mut since = Some(unix_nanos_now());
    refresh(&service, &args, &mut written).await;
    if args.once {
        return Ok(());
    }
    loop {
        if let Ok(events) = engine.container_events(since).await {
            follow_stream(events, &service, &args, &mut written, &mut since).await;
        }
        // The engine is away or the stream broke: a pause, then a fresh look.
        tokio::time::sleep(RETRY).await;
        refresh(&service, &args, &mut written).await;
    }
}

/// Refreshes on each event that can change the running set, again once the
/// engine's listing has caught up with it, and every `--resync`; returns
/// when the stream ends or fails.
async fn follow_stream(
    mut events: BoxStream<'static, EngineResult<ContainerEvent>>,
    service: &Replicator,
    args: &UpstreamsArgs,
    written: &mut Option<String>,
    since: &mut Option<i64>,
) {
    use tokio::time::Instant;
    let mut settle: Option<Instant> = None;
    // A deadline of its own, so a chatty stream of other events cannot put it off.
    let mut resync_at = Instant::now() + args.resync;
    loop {
        let next_look = settle.map_or(resync_at, |at| at.min(resync_at));
        tokio::select! {
            event = events.next() => match event {
                Some(Ok(event)) => {
                    *since = Some(event.time_nano + 1);
                    if event.changes_running_set() {
                        refresh(service, args, written).await;
                        settle = Some(Instant::now() + LISTING_LAG);
                    }
                }
                Some(Err(e)) => return warn!(error = %e, "engine event stream interrupted; resuming"),
                None => return,
            },
            () = tokio::time::sleep_until(next_look) => {
                settle = None;
                resync_at = Instant::now() + args.resync;
                refresh(service, args, written).await;
            }
        }
    }
}

fn unix_nanos_now() -> i64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    i64::try_from(now.as_nanos()).unwrap_or(i64::MAX)
}

/// Renders the group; writes and reloads only when the text changed.
async fn refresh(service: &Replicator, args: &UpstreamsArgs, written: &mut Option<String>) {
    let backends = match service.backends(&args.group, args.port, args.network.as_deref()).await {
        Ok(b) => b,
        Err(Error::GroupNotFound(_)) => Vec::new(),
        Err(e) => return warn!(group = %args.group, error = %e, "cannot read the group; keeping the current file"),
    };
    let text = render(args.format, &args.group, &backends);
    if written.as_deref() == Some(text.as_str()) {
        return;
    }
    if let Err(e) = write_atomically(&args.out, &text) {
        return warn!(error = %format!("{e:#}"), "cannot write the upstreams file");
    }
    info!(group = %args.group, servers = backends.len(), out = %args.out.display(), "upstreams written");
    // Remembered only once the balancer has it: a failed reload is retried
    // on the next event or resync.
    *written = match &args.reload {
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
    };
}

/// Write beside, then rename: a reader never sees half a file.
fn write_atomically(path: &Path, text: &str) -> anyhow::Result<()> {
    let name = path.file_name().context("the output path has no file name")?.to_string_lossy();
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    std::fs::write(&tmp, text).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot replace {}", path.display()))
}
