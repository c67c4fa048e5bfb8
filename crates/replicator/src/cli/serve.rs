//! `replicator serve`: configuration, wiring, and the process lifecycle.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, ValueEnum};
use tracing::{info, warn};

use tokio::net::TcpListener;

use crate::autoscale::prometheus::PrometheusClient;
use crate::autoscale::AutoscaleSettings;
use crate::base::duration;
use crate::base::handover::Sockets;
use crate::base::telemetry::Telemetry;
use crate::engine::{DockerEngine, Engine, EngineEndpoint, EngineSettings, ErrorKind};
use crate::http::api::{self, ServerOptions};
use crate::http::listener;
use crate::inventory::Scope;
use crate::rules::access::UnboundPolicy;
use crate::server::{self, Config, Listeners};
use crate::service::Settings;
use crate::takeover;
use crate::tls::pki::{self, InitOptions};
use crate::tls::{ServerTls, TlsFiles};

/// Where `serve` keeps development certificates when given no TLS option.
const DEFAULT_CERTS: &str = "./certs";

/// A Prometheus label name: `[a-zA-Z_][a-zA-Z0-9_]*`.
fn parse_alert_label(raw: &str) -> Result<String, String> {
    let mut chars = raw.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if first_ok && chars.all(|c| c.is_ascii_alphanumeric() || c == '_') && raw.len() <= 128 {
        Ok(raw.to_owned())
    } else {
        Err(format!("{raw:?} is not a Prometheus label name"))
    }
}

/// `replicator serve`'s flags, each also read from a `REPLICATOR_*` variable.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// A TOML file of these flags under their long names (max-replicas = 20, dashboard-actions = true); flags and environment variables win over it.
    #[arg(long, env = "REPLICATOR_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address of the HTTPS API.
    #[arg(long, env = "REPLICATOR_LISTEN", default_value = "0.0.0.0:8443")]
    pub listen: SocketAddr,
    /// Certificate folder: server-cert.pem/server-key.pem (or cert.pem/key.pem) and ca.pem for clients.
    #[arg(long, env = "REPLICATOR_CERTS", conflicts_with_all = ["tls_cert", "tls_key", "client_ca"])]
    pub certs: Option<PathBuf>,
    /// Server certificate (PEM), with --tls-key and --client-ca.
    #[arg(long, env = "REPLICATOR_TLS_CERT", requires_all = ["tls_key", "client_ca"])]
    pub tls_cert: Option<PathBuf>,
    /// Server private key (PEM).
    #[arg(long, env = "REPLICATOR_TLS_KEY", requires_all = ["tls_cert", "client_ca"])]
    pub tls_key: Option<PathBuf>,
    /// CA that signs the client certificates (PEM).
    #[arg(long, env = "REPLICATOR_CLIENT_CA", requires_all = ["tls_cert", "tls_key"])]
    pub client_ca: Option<PathBuf>,
    /// Certificate revocation list (PEM) of the client CA: a listed client certificate is refused. Re-read on SIGHUP and when it changes.
    #[arg(long, env = "REPLICATOR_CRL")]
    pub crl: Option<PathBuf>,
    /// Let the dashboard's buttons scale groups (off: the admin listener only shows). They act only from the page itself (its token, same origin), for peers in --dashboard-actions-from.
    #[arg(long, env = "REPLICATOR_DASHBOARD_ACTIONS")]
    pub dashboard_actions: bool,
    /// Peer addresses whose dashboard may act, comma-separated ranges (default loopback: 127.0.0.0/8,::1/128). In a container, where published ports arrive from (the bridge's gateway, e.g. 172.17.0.1); never the members' network.
    #[arg(
        long,
        env = "REPLICATOR_DASHBOARD_ACTIONS_FROM",
        value_delimiter = ',',
        requires = "dashboard_actions",
        value_name = "CIDR"
    )]
    pub dashboard_actions_from: Option<Vec<crate::base::cidr::Cidr>>,
    /// The swarm's root CA (on a manager, /var/lib/docker/swarm/certificates/swarm-root-ca.crt): agents that present their node's Swarm certificate are that node's agent.
    #[arg(long, env = "REPLICATOR_SWARM_CA")]
    pub swarm_ca: Option<PathBuf>,
    /// What a client certificate without a replicator identity (urn:replicator:... URI) may do: refuse (nothing, the default), read, or operator (everything, as the original tool allowed; see docs/guide/security.md, moving a deployment to identities).
    #[arg(long, env = "REPLICATOR_UNBOUND_CLIENTS", value_enum, default_value_t = UnboundPolicy::Refuse)]
    pub unbound_clients: UnboundPolicy,
    /// Replicate any container, not only those labelled replicator.enable=true.
    #[arg(long, env = "REPLICATOR_ALLOW_ALL")]
    pub allow_all: bool,
    /// Largest group size (original included): the maximum when the original has no replicator.max label, and a ceiling no label can raise.
    #[arg(long, env = "REPLICATOR_MAX_REPLICAS", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub max_replicas: u32,
    /// Most containers replicator may have made at once (replicas and standbys, in its scope); beyond it a request is refused (409).
    #[arg(long, env = "REPLICATOR_MAX_CONTAINERS", default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub max_containers: u32,
    /// Most containers replicator may create a minute; beyond it a request is refused (429) with the wait.
    #[arg(long, env = "REPLICATOR_MAX_CREATIONS_PER_MINUTE", default_value_t = 600, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub max_creations_per_minute: u32,
    /// How long a vanished group's counters and histograms stay in /metrics (for a last scrape); its gauges go at once.
    #[arg(long, env = "REPLICATOR_SERIES_GRACE", default_value = "5m", value_parser = duration::parse)]
    pub series_grace: Duration,
    /// Keep fixed host ports on clones (they will fail to start if the port is taken).
    #[arg(long, env = "REPLICATOR_KEEP_HOST_PORTS")]
    pub keep_host_ports: bool,
    /// Engine address (unix:///path or tcp://host:port); overrides DOCKER_HOST.
    #[arg(long, env = "REPLICATOR_DOCKER_HOST")]
    pub docker_host: Option<String>,
    /// Longest any single engine call may take.
    #[arg(long, env = "REPLICATOR_ENGINE_TIMEOUT", default_value = "30s", value_parser = duration::parse_positive)]
    pub engine_timeout: Duration,
    /// How long a replica may take to stop on scale-down before it is killed.
    #[arg(long, env = "REPLICATOR_STOP_TIMEOUT", default_value = "10s", value_parser = duration::parse)]
    pub stop_timeout: Duration,
    /// How long shutdown waits for requests in flight and spliced front connections to end.
    #[arg(long, env = "REPLICATOR_SHUTDOWN_GRACE", default_value = "30s", value_parser = duration::parse)]
    pub shutdown_grace: Duration,
    /// Where a new `serve` takes over from this one (`none`: never). Default: a file per --listen address
    /// in $XDG_RUNTIME_DIR/replicator, /run/replicator for root; none when --listen has port 0.
    #[arg(long, env = "REPLICATOR_CONTROL_SOCKET")]
    pub control_socket: Option<String>,
    /// The lease that lets several replicators run with exactly one acting: `swarm` (or `swarm:NAME`), a config
    /// object of the swarm's own Raft store updated by version; or a file on a folder they share (kept under the
    /// kernel's flock). Off by default: this replicator always acts.
    #[arg(long, env = "REPLICATOR_LEASE")]
    pub lease: Option<std::path::PathBuf>,
    /// How long a renewal of the lease holds it; a replicator lost is replaced within about this (see --lease-fence).
    #[arg(long, env = "REPLICATOR_LEASE_TERM", default_value = "4s", value_parser = duration::parse_positive)]
    pub lease_term: Duration,
    /// How often the holder renews the lease.
    #[arg(long, env = "REPLICATOR_LEASE_RENEW", default_value = "1s", value_parser = duration::parse_positive)]
    pub lease_renew: Duration,
    /// How long before its term the holder stops acting when it could not renew: the margin for clock rates and slow writes.
    #[arg(long, env = "REPLICATOR_LEASE_FENCE", default_value = "1s", value_parser = duration::parse_positive)]
    pub lease_fence: Duration,
    /// A bundle folder (ca.pem, cert.pem, key.pem of a `peer` identity: `certs issue --identity peer`) with which
    /// this replicator forwards commands and wakes to the one that acts; without it, it answers them 503 naming the leader.
    #[arg(long, env = "REPLICATOR_PEER_CERTS")]
    pub peer_certs: Option<std::path::PathBuf>,
    /// The name a leader's certificate must carry when this replicator forwards to it (default: the host of the
    /// leader's --advertise address): for replicators that advertise addresses their certificate cannot name,
    /// as tasks of one Swarm service do.
    #[arg(long, env = "REPLICATOR_PEER_SERVER_NAME", requires = "peer_certs")]
    pub peer_server_name: Option<String>,
    /// The address of this replicator's API that the others name to a client (and forward to) when they do not act:
    /// https://HOST[:PORT], the port of --listen when it names none (default: https://HOSTNAME:PORT).
    #[arg(long, env = "REPLICATOR_ADVERTISE")]
    pub advertise: Option<String>,
    /// Manage only containers and Swarm services carrying this label (KEY=VALUE); others are left alone.
    #[arg(long, env = "REPLICATOR_SELECTOR", value_parser = crate::rules::labels::Selector::parse)]
    pub selector: Option<crate::rules::labels::Selector>,
    /// Prometheus server for groups labelled replicator.autoscale.metric=prometheus (http://HOST:PORT).
    #[arg(long, env = "REPLICATOR_PROMETHEUS_URL")]
    pub prometheus_url: Option<String>,
    /// The autoscaler decides, logs and reports, but never changes a group.
    #[arg(long, env = "REPLICATOR_DRY_RUN")]
    pub dry_run: bool,
    /// Plain-HTTP admin listener: /healthz and /metrics.
    #[arg(long, env = "REPLICATOR_METRICS_LISTEN", default_value = "127.0.0.1:9090")]
    pub metrics_listen: SocketAddr,
    /// How often the autoscaler evaluates each group.
    #[arg(long, env = "REPLICATOR_AUTOSCALE_INTERVAL", default_value = "5s", value_parser = duration::parse_positive)]
    pub autoscale_interval: Duration,
    /// Scale-downs go no lower than the highest recommendation of this window.
    #[arg(long, env = "REPLICATOR_SCALE_DOWN_STABILIZATION", default_value = "60s", value_parser = duration::parse)]
    pub scale_down_stabilization: Duration,
    /// How long a pushed metric value counts as fresh (default: 3 × the autoscale interval).
    #[arg(long, env = "REPLICATOR_METRIC_TTL", value_parser = duration::parse_positive)]
    pub metric_ttl: Option<Duration>,
    /// CPU samples of a member younger than this are ignored by the autoscaler
    /// (start-up spikes must not cause runaway scale-ups).
    #[arg(long, env = "REPLICATOR_CPU_INITIALIZATION_PERIOD", default_value = "30s", value_parser = duration::parse)]
    pub cpu_initialization_period: Duration,
    /// How long a scale-down waits for the balancers following `GET /v1/events`
    /// to confirm that a draining member is out, before stopping it anyway.
    #[arg(long, env = "REPLICATOR_DRAIN_TIMEOUT", default_value = "10s", value_parser = duration::parse)]
    pub drain_timeout: Duration,
    /// How often the inventory re-lists the engine, besides following its events.
    #[arg(long, env = "REPLICATOR_RESYNC_INTERVAL", default_value = "30s", value_parser = duration::parse_positive)]
    pub resync_interval: Duration,
    /// How often, on a Swarm manager, services, tasks and nodes are read
    /// again (tasks on other nodes send this engine no events).
    #[arg(long, env = "REPLICATOR_SWARM_INTERVAL", default_value = "5s", value_parser = duration::parse_positive)]
    pub swarm_interval: Duration,
    /// How long a standby without a healthcheck runs before it counts as ready and is paused.
    #[arg(long, env = "REPLICATOR_WARM_SETTLE", default_value = "5s", value_parser = duration::parse)]
    pub warm_settle: Duration,
    /// Plain-HTTP listener holding requests for sleeping groups (for the balancer's host).
    #[arg(long, env = "REPLICATOR_WAKE_LISTEN")]
    pub wake_listen: Option<SocketAddr>,
    /// Requests the wake listener holds at once; beyond it, 503 with Retry-After.
    #[arg(long, env = "REPLICATOR_WAKE_QUEUE", default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub wake_queue: u32,
    /// Longest a woken member may take to answer a request the wake listener forwards (then 504).
    #[arg(long, env = "REPLICATOR_WAKE_FORWARD_TIMEOUT", default_value = "60s", value_parser = duration::parse_positive)]
    pub wake_forward_timeout: Duration,
    /// Request bodies the wake listener holds at once, in bytes (beyond it, 503 with Retry-After).
    #[arg(long, env = "REPLICATOR_WAKE_MAX_HELD_BYTES", default_value_t = 64 << 20, value_parser = clap::value_parser!(u32).range(1..=(1 << 30)))]
    pub wake_max_held_bytes: u32,
    /// Burst mode's window: a recommendation of at least twice a group's size scales it up at once, and it
    /// does not scale down until this long passes without one (0s: off; replicator.autoscale.burst=false opts a group out).
    #[arg(long, env = "REPLICATOR_BURST_WINDOW", default_value = "6s", value_parser = duration::parse)]
    pub burst_window: Duration,
    /// The ports groups may claim for a TCP front (replicator.front.port), e.g. 7000-7999; no fronts without it.
    #[arg(long, env = "REPLICATOR_FRONT_PORTS", value_parser = crate::rules::front::PortRange::parse)]
    pub front_ports: Option<crate::rules::front::PortRange>,
    /// The address every TCP front listens on.
    #[arg(long, env = "REPLICATOR_FRONT_ADDRESS", default_value = "0.0.0.0")]
    pub front_address: std::net::IpAddr,
    /// Connections a front holds per group while it has no ready member; beyond it, closed at once.
    #[arg(long, env = "REPLICATOR_FRONT_HOLD", default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub front_hold: u32,
    /// Connections each group's front carries at once (held, connecting and spliced); beyond it, closed at once. All fronts together also stay within what the open-file limit leaves after a reserve for the API, the admin listener and the engine.
    #[arg(long, env = "REPLICATOR_FRONT_MAX_CONNECTIONS", default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub front_max_connections: u32,
    /// The waiting page shown to browsers for groups labelled replicator.wake.page=true: an HTML template
    /// with {{group}}, {{waited}}, {{phases}} and {{refresh}} (default: a built-in page).
    #[arg(long, env = "REPLICATOR_WAKE_PAGE")]
    pub wake_page: Option<std::path::PathBuf>,
    /// Longest a held request waits for its group to wake.
    #[arg(long, env = "REPLICATOR_WAKE_TIMEOUT", default_value = "60s", value_parser = duration::parse_positive)]
    pub wake_timeout: Duration,
    /// The alert label naming the group an Alertmanager alert scales (POST /v1/alertmanager).
    #[arg(long, env = "REPLICATOR_ALERT_GROUP_LABEL", default_value = crate::rules::alerts::DEFAULT_GROUP_LABEL, value_parser = parse_alert_label)]
    pub alert_group_label: String,
    /// The time zone of replicator.schedule expressions (an IANA name).
    #[arg(long, env = "REPLICATOR_TIMEZONE", default_value = "UTC", value_parser = crate::rules::schedule::parse_timezone)]
    pub timezone: chrono_tz::Tz,
    /// Per-client (address) request rate, e.g. 10/s; answered 429 beyond it. Off by default.
    #[arg(long, env = "REPLICATOR_RATE_LIMIT", value_parser = api::parse_rate)]
    pub rate_limit: Option<f64>,
    /// Longest a client may take to complete the TLS handshake.
    #[arg(long, env = "REPLICATOR_HANDSHAKE_TIMEOUT", default_value = "10s", value_parser = duration::parse_positive)]
    pub handshake_timeout: Duration,
    /// Longest a client may take to send a request's headers (and so the longest a keep-alive connection idles).
    #[arg(long, env = "REPLICATOR_HEADER_TIMEOUT", default_value = "10s", value_parser = duration::parse_positive)]
    pub header_timeout: Duration,
    /// Longest a client may take to send a request's whole body.
    #[arg(long, env = "REPLICATOR_BODY_TIMEOUT", default_value = "10s", value_parser = duration::parse_positive)]
    pub body_timeout: Duration,
    /// Connections each listener serves at once; more wait in the kernel backlog
    /// (default: what the open-file limit leaves after a reserve for the engine client, halved).
    #[arg(long, env = "REPLICATOR_MAX_CONNECTIONS", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: Option<u32>,
    /// Oldest an API connection may grow: then it ends after its request in flight, and the client reconnects (off by default; revoked certificates lose their connections at the next reload anyway).
    #[arg(long, env = "REPLICATOR_MAX_CONNECTION_AGE", value_parser = duration::parse_positive)]
    pub max_connection_age: Option<Duration>,
    /// Log format.
    #[arg(long, env = "REPLICATOR_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    init_logging(args.log_format);
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the runtime")?;
    runtime.block_on(serve(args))
}

pub(super) fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("REPLICATOR_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only for a person watching; files and journald get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    match format {
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(true).init(),
        LogFormat::Text => builder.init(),
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let (listeners, config) = prepare(args).await?;
    info!(addr = %listeners.admin.local_addr()?, "admin listening");
    let self_id = config.settings.self_id.clone();
    info!(addr = %listeners.api.local_addr()?, self_id = self_id.as_deref().unwrap_or("none"), "api listening");
    let reloading = tokio::spawn(keep_tls_current(config.tls.clone(), config.telemetry.clone()));
    server::run(listeners, config, shutdown_signal()).await;
    reloading.abort();
    Ok(())
}

/// How often the certificate files are looked at for a change.
const TLS_LOOK_EVERY: Duration = Duration::from_secs(5);

/// Reloads the server pair, the client CA and the revocation list on
/// SIGHUP, and when one of the files changes: new handshakes get the new
/// configuration, and connections whose certificate no longer verifies are
/// closed. A failed reload is counted, and `/healthz` says why until one
/// succeeds.
async fn keep_tls_current(tls: Arc<ServerTls>, telemetry: Arc<Telemetry>) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut hangups) = signal(SignalKind::hangup()) else {
        return warn!("cannot watch SIGHUP; certificates are reloaded when their files change");
    };
    loop {
        let why = tokio::select! {
            _ = hangups.recv() => "SIGHUP",
            () = tokio::time::sleep(TLS_LOOK_EVERY) => if tls.changed_on_disk() { "a file changed" } else { continue },
        };
        match tls.reload() {
            Ok(()) => info!(why, "TLS configuration reloaded"),
            Err(e) => {
                telemetry.tls_reload_failures.inc();
                warn!(why, error = %e, "TLS configuration not reloaded; the running one stays");
            }
        }
    }
}

/// Everything `serve` does before serving: certificates, engine, listeners
/// bound, configuration resolved. Tests call it to run replicator in-process.
pub async fn prepare(args: ServeArgs) -> anyhow::Result<(Listeners, Config)> {
    let tls_files = server_tls_files(&args)?;
    let tls = Arc::new(ServerTls::load(tls_files, args.crl.clone(), args.swarm_ca.clone())?);
    let engine_settings =
        EngineSettings::resolve(args.docker_host.as_deref(), |k| std::env::var(k).ok(), args.engine_timeout)?;
    let prometheus = args
        .prometheus_url
        .as_deref()
        .map(|url| PrometheusClient::new(url, args.engine_timeout))
        .transpose()
        .map_err(anyhow::Error::msg)?;
    let telemetry = Arc::new(Telemetry::default());
    telemetry.set_series_grace(args.series_grace);
    let engine = Arc::new(DockerEngine::new(engine_settings.clone(), telemetry.clone())?);
    check_engine(engine.as_ref(), &engine_settings).await?;
    let (sockets, control) = take_over(&args)?;
    let listeners = bind_listeners(&args, &sockets)?;
    let self_id = crate::base::selfid::own_container_id();
    let server = server_options(&args);
    let vantage = vantage(engine.as_ref(), self_id.as_deref()).await;
    let lease = lease(&args, listeners.api.local_addr()?.port(), &engine)?;
    let config = Config {
        tls,
        unbound: args.unbound_clients,
        dashboard_actions: dashboard_actions(&args)?,
        engine,
        scope: scope(&args),
        settings: settings(&args, self_id, vantage),
        autoscale: autoscale(&args, prometheus),
        dry_run: args.dry_run,
        resync: args.resync_interval,
        swarm_poll: args.swarm_interval,
        wake: wake(&args)?,
        front: front(&args, server.nofile),
        alert_group_label: args.alert_group_label.clone(),
        server: server.options,
        rate_limit: args.rate_limit,
        telemetry,
        sockets,
        takeover: control,
        lease,
        forwarder: args
            .peer_certs
            .as_deref()
            .map(|certs| crate::http::api::Forwarder::new(certs, args.peer_server_name.clone()))
            .transpose()?,
    };
    Ok((listeners, config))
}

/// The lease, with `--lease`: the store, this process's record (its
/// address on the API port as bound), its timings.
fn lease(
    args: &ServeArgs,
    api_port: u16,
    engine: &Arc<DockerEngine>,
) -> anyhow::Result<Option<crate::service::LeaseSettings>> {
    let Some(path) = &args.lease else { return Ok(None) };
    let timing = crate::rules::lease::Timing::new(args.lease_term, args.lease_renew, args.lease_fence)
        .map_err(|e| anyhow::anyhow!("--lease-term, --lease-renew, --lease-fence: {e}"))?;
    let store = lease_store(path, engine)?;
    let host = rustix::system::uname().nodename().to_string_lossy().into_owned();
    let started = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let holder = format!("{host}/{}/{}", std::process::id(), started.as_nanos());
    let address = advertised(args.advertise.as_deref(), &host, api_port)?;
    Ok(Some(crate::service::LeaseSettings {
        store,
        me: crate::engine::LeaseRecord { holder, address: Some(address) },
        timing,
        fence: crate::engine::Fence::shut(),
    }))
}

/// `--lease`: `swarm[:NAME]`, a config object of the swarm's Raft store
/// (`replicator-lease` by default), else a file in an existing folder.
fn lease_store(path: &Path, engine: &Arc<DockerEngine>) -> anyhow::Result<Arc<dyn crate::engine::LeaseStore>> {
    let text = path.to_string_lossy();
    if let Some(rest) = text.strip_prefix("swarm").filter(|r| r.is_empty() || r.starts_with(':')) {
        let name = rest.strip_prefix(':').unwrap_or("replicator-lease");
        crate::base::id::GroupName::parse(name)
            .map_err(|_| anyhow::anyhow!("--lease {text}: {name:?} is not a valid name"))?;
        return Ok(Arc::new(crate::engine::docker::SwarmLease::new(engine.clone(), name)));
    }
    let folder = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    anyhow::ensure!(folder.is_dir(), "--lease {}: the folder {} does not exist", path.display(), folder.display());
    Ok(Arc::new(crate::engine::FileLease::new(path)))
}

/// `--advertise` (`https://HOST[:PORT]`, the bound API port when it names
/// none), or `https://HOSTNAME:PORT`.
fn advertised(flag: Option<&str>, host: &str, api_port: u16) -> anyhow::Result<String> {
    let Some(url) = flag else { return Ok(format!("https://{host}:{api_port}")) };
    let uri: http::Uri = url.parse().map_err(|_| anyhow::anyhow!("--advertise {url:?}: not a URL"))?;
    let (Some("https"), Some(named), "/") = (uri.scheme_str(), uri.host(), uri.path()) else {
        anyhow::bail!("--advertise {url:?}: expected https://HOST or https://HOST:PORT");
    };
    Ok(format!("https://{named}:{}", uri.port_u16().unwrap_or(api_port)))
}

/// The predecessor's sockets when one runs on the control socket (it hands
/// them over), and this process's own control socket. A control socket the
/// operator named must work; the default one only warns when it cannot (a
/// read-only root, a runtime folder of another user): serving matters more
/// than a later takeover.
fn take_over(args: &ServeArgs) -> anyhow::Result<(Arc<Sockets>, Option<server::Takeover>)> {
    let Some(path) = control_socket(args) else { return Ok((Arc::default(), None)) };
    let named = args.control_socket.is_some();
    let mut predecessor = takeover::ask(&path).or_else(|e| unless_default(named, e))?;
    let control = takeover::Control::bind(&path).map(Some).or_else(|e| unless_default(named, e))?;
    let sockets = match &mut predecessor {
        Some(p) => Sockets::inheriting(std::mem::take(&mut p.handover.sockets)),
        None => Sockets::default(),
    };
    Ok((Arc::new(sockets), Some(server::Takeover { control, predecessor })))
}

/// A control socket the operator named must work (the error); the default
/// one only warns (`None`).
fn unless_default<T>(named: bool, e: std::io::Error) -> anyhow::Result<Option<T>> {
    if named {
        return Err(anyhow::Error::new(e).context("--control-socket"));
    }
    warn!(error = %e, "no control socket: a new serve cannot take over from this one (see --control-socket)");
    Ok(None)
}

/// `--control-socket`, or its default for `--listen`.
fn control_socket(args: &ServeArgs) -> Option<std::path::PathBuf> {
    match args.control_socket.as_deref() {
        Some("none") => None,
        Some(path) => Some(path.into()),
        None => {
            let runtime = std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()).map(Into::into);
            takeover::default_path(args.listen, runtime, rustix::process::getuid().as_raw())
        }
    }
}

/// The API, admin and (with `--wake-listen`) wake listeners: the
/// predecessor's where they listen, else bound.
fn bind_listeners(args: &ServeArgs, sockets: &Sockets) -> anyhow::Result<Listeners> {
    let listen = |name: &str, address: std::net::SocketAddr, flag: &str| {
        let bound = sockets.listen(name, address).with_context(|| format!("cannot listen on {address}{flag}"))?;
        TcpListener::from_std(bound).with_context(|| format!("cannot listen on {address}{flag}"))
    };
    let api = listen("api", args.listen, "")?;
    let admin = listen("admin", args.metrics_listen, " (--metrics-listen)")?;
    let wake = args.wake_listen.map(|addr| listen("wake", addr, " (--wake-listen)")).transpose()?;
    Ok(Listeners { api, admin, wake })
}

/// Who may act from the dashboard, with `--dashboard-actions`.
fn dashboard_actions(args: &ServeArgs) -> anyhow::Result<Option<crate::http::admin::DashboardActions>> {
    if !args.dashboard_actions {
        return Ok(None);
    }
    Ok(Some(crate::http::admin::DashboardActions {
        token: crate::http::admin::new_action_token().context("cannot make the dashboard's token")?,
        from: args.dashboard_actions_from.clone().unwrap_or_else(crate::base::cidr::Cidr::loopback).into(),
    }))
}

/// What this replicator manages.
fn scope(args: &ServeArgs) -> Scope {
    Scope {
        allow_all: args.allow_all,
        default_max: args.max_replicas,
        selector: args.selector.clone(),
        timezone: args.timezone,
        front_ports: args.front_ports,
    }
}

/// The service's switches.
fn settings(args: &ServeArgs, self_id: Option<String>, vantage: crate::rules::backends::Vantage) -> Settings {
    Settings {
        keep_host_ports: args.keep_host_ports,
        stop_timeout: args.stop_timeout,
        self_id,
        engine_timeout: args.engine_timeout,
        drain_timeout: args.drain_timeout,
        warm_settle: args.warm_settle,
        max_containers: args.max_containers as usize,
        max_creations_per_minute: args.max_creations_per_minute,
        vantage,
    }
}

/// The autoscaler's loop.
fn autoscale(args: &ServeArgs, prometheus: Option<PrometheusClient>) -> AutoscaleSettings {
    AutoscaleSettings {
        interval: args.autoscale_interval,
        stabilization: args.scale_down_stabilization,
        metric_ttl: args.metric_ttl.unwrap_or(args.autoscale_interval * 3),
        prometheus,
        cpu_initialization: args.cpu_initialization_period,
        burst_window: args.burst_window,
    }
}

/// How the wake listener holds requests.
fn wake(args: &ServeArgs) -> anyhow::Result<crate::http::wake::WakeSettings> {
    let page = args.wake_page.as_deref().map(crate::http::wake_page::load).transpose().map_err(anyhow::Error::msg)?;
    Ok(crate::http::wake::WakeSettings {
        queue: args.wake_queue as usize,
        timeout: args.wake_timeout,
        forward_timeout: args.wake_forward_timeout,
        max_held_bytes: args.wake_max_held_bytes as usize,
        page: page.map(Into::into),
    })
}

/// How the TCP fronts listen, hold and share the descriptors `nofile` leaves; `None` without `--front-ports`.
fn front(args: &ServeArgs, nofile: u64) -> Option<crate::front::FrontSettings> {
    args.front_ports.map(|_| crate::front::FrontSettings {
        address: args.front_address,
        hold: args.front_hold as usize,
        max_connections: args.front_max_connections as usize,
        descriptors: listener::descriptor_budget(nofile),
        timeout: args.wake_timeout,
    })
}

/// Where replicator runs: in a container, the networks it is attached to
/// (read once at start), which are the only way its fronts and wake
/// listener reach members that no group label places on a network.
async fn vantage(engine: &DockerEngine, self_id: Option<&str>) -> crate::rules::backends::Vantage {
    use crate::rules::backends::Vantage;
    let Some(id) = self_id else { return Vantage::Host };
    match engine.inspect_container(id).await {
        Ok(me) => Vantage::container(me.endpoints.keys().cloned().collect()),
        Err(e) => {
            warn!(error = %e, "cannot read replicator's own networks: members are reached only on networks groups name");
            Vantage::Container { networks: Vec::new() }
        }
    }
}

/// The listeners' bounds and the open-file limit they were derived from.
struct Bounds {
    options: ServerOptions,
    nofile: u64,
}

/// The bounds of both listeners, from the flags. Raises the open-file
/// limit first: the default connection cap is derived from it.
fn server_options(args: &ServeArgs) -> Bounds {
    let nofile = listener::raise_fd_limit();
    let listeners = if args.wake_listen.is_some() { 3 } else { 2 };
    let max_connections =
        args.max_connections.map_or_else(|| listener::default_max_connections(nofile, listeners), |n| n as usize);
    if !listener::leaves_reserve(max_connections, nofile, listeners) {
        warn!(
            max_connections,
            nofile, listeners, "listeners this full could leave the engine client without file descriptors"
        );
    }
    info!(max_connections, nofile, "connection cap per listener");
    let options = ServerOptions {
        handshake_timeout: args.handshake_timeout,
        header_timeout: args.header_timeout,
        body_timeout: args.body_timeout,
        max_header_bytes: listener::MAX_HEADER_BYTES,
        max_body_bytes: api::MAX_BODY,
        max_connections,
        shutdown_grace: args.shutdown_grace,
        max_connection_age: args.max_connection_age,
        // The API and admin listeners speak HTTP/1.1; the wake listener's options add h2c.
        h2c: false,
    };
    Bounds { options, nofile }
}

/// An engine that is down may come up later: start anyway. One whose TLS
/// certificate our CA does not vouch for will not: refuse, naming the file.
async fn check_engine(engine: &DockerEngine, settings: &EngineSettings) -> anyhow::Result<()> {
    let Err(e) = engine.ping().await else {
        info!(engine = ?settings.endpoint, "engine reachable");
        return Ok(());
    };
    if let (EngineEndpoint::Tcp { tls: Some(dir), addr }, ErrorKind::Untrusted) = (&settings.endpoint, e.kind) {
        anyhow::bail!(
            "the engine at {addr} presented a certificate that {} does not vouch for: {e}",
            dir.join("ca.pem").display()
        );
    }
    warn!(engine = ?settings.endpoint, error = %e, "engine unreachable; will keep trying on each request");
    Ok(())
}

/// The server's certificate, key and client CA from the flags, or the
/// development folder (created on first start).
fn server_tls_files(args: &ServeArgs) -> anyhow::Result<TlsFiles> {
    if let (Some(cert), Some(key), Some(ca)) = (&args.tls_cert, &args.tls_key, &args.client_ca) {
        return Ok(TlsFiles { cert: cert.clone(), key: key.clone(), ca: ca.clone() });
    }
    if let Some(dir) = &args.certs {
        return Ok(files_in(dir));
    }
    let dir = Path::new(DEFAULT_CERTS);
    if !dir.join(pki::CA_CERT).exists() {
        pki::init(&InitOptions { out: dir.to_owned(), sans: Vec::new(), days: 365, force: false })
            .context("cannot create development certificates in ./certs")?;
        println!("Created development certificates in {}", dir.display());
    }
    let port = args.listen.port();
    println!(
        "Try: curl --cacert certs/ca.pem --cert certs/cert.pem --key certs/key.pem https://localhost:{port}/<container-id>"
    );
    Ok(files_in(dir))
}

/// `server-cert.pem`/`server-key.pem`, or a docker-machine folder's `cert.pem`/`key.pem`.
fn files_in(dir: &Path) -> TlsFiles {
    let (cert, key) = if dir.join(pki::SERVER_CERT).exists() || dir.join(pki::SERVER_KEY).exists() {
        (pki::SERVER_CERT, pki::SERVER_KEY)
    } else {
        (pki::CLIENT_CERT, pki::CLIENT_KEY)
    };
    TlsFiles { cert: dir.join(cert), key: dir.join(key), ca: dir.join(pki::CA_CERT) }
}

pub(super) async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = term.recv() => info!("SIGTERM received"),
        _ = int.recv() => info!("SIGINT received"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(extra: &[&str]) -> ServeArgs {
        let mut all = vec!["--listen", "127.0.0.1:1"];
        all.extend_from_slice(extra);
        super::super::parse_serve(all).unwrap()
    }

    #[test]
    fn the_advertised_address_takes_the_bound_port_unless_it_names_one() {
        assert_eq!(advertised(None, "vm", 8443).unwrap(), "https://vm:8443");
        assert_eq!(advertised(Some("https://127.0.0.1"), "vm", 40000).unwrap(), "https://127.0.0.1:40000");
        assert_eq!(advertised(Some("https://r1.example:9443"), "vm", 1).unwrap(), "https://r1.example:9443");
        for bad in ["http://r1", "r1:8443", "https://r1/path", "https://"] {
            assert!(advertised(Some(bad), "vm", 1).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_named_control_socket_that_cannot_be_made_stops_serve_and_none_turns_it_off() {
        let folder = tempfile::tempdir().unwrap();
        let blocked = folder.path().join("a-file");
        std::fs::write(&blocked, "").unwrap();
        let inside = blocked.join("control.sock");
        let e = take_over(&args(&["--control-socket", inside.to_str().unwrap()])).err().expect("refused");
        assert!(format!("{e:#}").contains("--control-socket"), "{e:#}");
        let (sockets, takeover) = take_over(&args(&["--control-socket", "none"])).unwrap();
        assert!(takeover.is_none() && sockets.serving().unwrap().is_empty());
    }

    #[test]
    fn a_default_control_socket_that_cannot_be_made_only_warns() {
        let folder = tempfile::tempdir().unwrap();
        let e = unless_default::<()>(false, std::io::Error::other("read-only"));
        assert!(e.unwrap().is_none());
        let named = folder.path().join("x.sock");
        let path = control_socket(&args(&["--control-socket", named.to_str().unwrap()])).unwrap();
        assert_eq!(path, named);
        assert!(control_socket(&args(&[])).is_some_and(|p| p.to_string_lossy().ends_with("control-127.0.0.1_1.sock")));
    }
}
