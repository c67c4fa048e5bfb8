//! replicator's own TCP front: for every group whose original claims a
//! port (`replicator.front.port`, within `serve --front-ports`), a listener
//! on `--front-address` that splices each connection to the ready member
//! with the fewest open connections, for any protocol.
//!
//! Each group's front carries at most `--front-max-connections`, and all
//! fronts together at most what the open-file limit leaves after a reserve
//! for the API, the admin listener and the engine client: past either, a
//! connection is closed at once and counted as refused, so a flood on a
//! front never leaves the API without descriptors.
//!
//! A connection that finds no ready member is held (at most `--front-hold`
//! per group; beyond, closed at once), the group woken if it sleeps, and the
//! connection made once a member is ready; a refused connect (an app that
//! listens a moment after it runs) is tried again until `--wake-timeout`.
//! Nothing the client sent is lost meanwhile: it waits in the kernel's
//! buffer until the member takes it. A member leaving gets no new
//! connection; its scale-down waits for the open ones (see
//! `service::connections`).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

mod relay;

use crate::inventory::Group;
use crate::rules::front::{proxy_v2_header, FrontSpec};
use crate::service::Replicator;

/// How often listeners that could not be opened are tried again.
const RETRY_BIND: Duration = Duration::from_secs(5);
/// The first pause before a refused connect is tried again; doubles up to [`LAST_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(20);
const LAST_BACKOFF: Duration = Duration::from_millis(500);

/// Descriptors one front connection may take: the client's and the member's.
const DESCRIPTORS_PER_CONNECTION: u32 = 2;

/// How the fronts listen and hold.
#[derive(Debug, Clone, Copy)]
pub struct FrontSettings {
    /// Where every front listens (`--front-address`).
    pub address: IpAddr,
    /// Connections held per group while it has no ready member (`--front-hold`).
    pub hold: usize,
    /// Connections each group's front carries at once (`--front-max-connections`).
    pub max_connections: usize,
    /// Descriptors all fronts together may hold: what the open-file limit
    /// leaves after the reserve for the API, admin listener and engine.
    pub descriptors: usize,
    /// Longest a held connection waits for a ready member (`--wake-timeout`).
    pub timeout: Duration,
}

/// One open front: its group and the token that closes it.
struct Door {
    group: String,
    close: CancellationToken,
}

/// Opens and closes the fronts as groups claim ports, until `cancel`.
pub async fn run(service: Replicator, settings: FrontSettings, cancel: CancellationToken) {
    let budget = Arc::new(Semaphore::new(settings.descriptors.min(Semaphore::MAX_PERMITS)));
    let mut changes = service.inventory().subscribe();
    let mut doors: HashMap<u16, Door> = HashMap::new();
    loop {
        let wanted: HashMap<u16, String> = match service.inventory().groups() {
            Ok(groups) => groups.iter().filter_map(|g| Some((g.front.as_ref()?.listen, g.name().to_owned()))).collect(),
            Err(_) => doors.iter().map(|(port, door)| (*port, door.group.clone())).collect(),
        };
        doors.retain(|port, door| {
            let keep = wanted.get(port) == Some(&door.group);
            if !keep {
                info!(port, group = %door.group, "front closed");
                door.close.cancel();
            }
            keep
        });
        for (port, group) in wanted {
            if doors.contains_key(&port) {
                continue;
            }
            match TcpListener::bind((settings.address, port)).await {
                Ok(listener) => {
                    info!(port, group, "front open");
                    let close = cancel.child_token();
                    let front = Front {
                        service: service.clone(),
                        group: group.clone(),
                        settings,
                        held: Arc::new(Semaphore::new(settings.hold)),
                        carried: Arc::new(Semaphore::new(settings.max_connections)),
                        budget: budget.clone(),
                    };
                    tokio::spawn(Arc::new(front).serve(listener, close.clone()));
                    doors.insert(port, Door { group, close });
                }
                Err(e) => warn!(port, group, error = %e, "cannot open the group's front; trying again"),
            }
        }
        tokio::select! {
            _ = changes.changed() => {}
            () = tokio::time::sleep(RETRY_BIND) => {}
            () = cancel.cancelled() => return,
        }
    }
}

/// One group's front.
struct Front {
    service: Replicator,
    group: String,
    settings: FrontSettings,
    held: Arc<Semaphore>,
    /// `--front-max-connections` of this group's.
    carried: Arc<Semaphore>,
    /// The descriptors every front shares.
    budget: Arc<Semaphore>,
}

/// What one connection holds of the caps while it lives.
struct Admitted {
    _carried: OwnedSemaphorePermit,
    _descriptors: OwnedSemaphorePermit,
}

impl Front {
    async fn serve(self: Arc<Self>, listener: TcpListener, close: CancellationToken) {
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                () = close.cancelled() => return,
            };
            match accepted {
                Ok((client, peer)) => match self.admit() {
                    Some(admitted) => {
                        self.service.telemetry().front_event(&self.group, "accepted");
                        tokio::spawn(self.clone().connect(client, peer, admitted));
                    }
                    None => {
                        // Closed at once: a flood must not take the descriptors the API needs.
                        self.service.telemetry().front_event(&self.group, "refused");
                        debug!(group = %self.group, %peer, "front connection refused: at its cap");
                        drop(client);
                    }
                },
                Err(e) => {
                    debug!(group = %self.group, error = %e, "accept failed");
                    // Out of descriptors, most likely: give connections a moment to end.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    /// A place under this group's cap and the shared descriptor budget, if both have one.
    fn admit(&self) -> Option<Admitted> {
        let carried = self.carried.clone().try_acquire_owned().ok()?;
        let descriptors = self.budget.clone().try_acquire_many_owned(DESCRIPTORS_PER_CONNECTION).ok()?;
        Some(Admitted { _carried: carried, _descriptors: descriptors })
    }

    /// Finds (or waits for) a ready member, connects and splices.
    async fn connect(self: Arc<Self>, client: TcpStream, peer: SocketAddr, _admitted: Admitted) {
        let _ = client.set_nodelay(true);
        let deadline = Instant::now() + self.settings.timeout;
        let Some((member, spec, upstream)) = self.reach_member(deadline).await else {
            self.service.telemetry().front_event(&self.group, "refused");
            return;
        };
        let connections = self.service.connections();
        let open = connections.opened(&member.0);
        self.service.telemetry().front_open(&self.group, &member.1, connections.open_to(&member.0));
        let mut upstream = upstream;
        let _ = upstream.set_nodelay(true);
        if spec.proxy_protocol {
            let local = client.local_addr().unwrap_or(peer);
            if upstream.write_all(&proxy_v2_header(peer, local)).await.is_err() {
                return;
            }
        }
        let (inbound, outbound) = relay::relay(client, upstream).await.unwrap_or((0, 0));
        self.service.telemetry().front_bytes(&self.group, inbound, outbound);
        drop(open);
        self.service.telemetry().front_open(&self.group, &member.1, connections.open_to(&member.0));
    }

    /// A connection to a ready member, holding the client while the group
    /// has none (waking it if it sleeps); `None` once the deadline passes,
    /// the hold is full, or the group has no front anymore.
    async fn reach_member(&self, deadline: Instant) -> Option<((String, String), FrontSpec, TcpStream)> {
        let mut changes = self.service.inventory().subscribe();
        let mut held = None;
        let mut backoff = FIRST_BACKOFF;
        loop {
            let groups = self.service.fresh_groups().await.ok()?;
            let group = groups.iter().find(|g| g.name() == self.group)?;
            let spec = group.front.clone()?;
            if let Some((id, name, address)) = self.least_busy(group, &spec) {
                match tokio::time::timeout_at(deadline, TcpStream::connect(address)).await {
                    Ok(Ok(upstream)) => return Some(((id, name), spec, upstream)),
                    Ok(Err(e)) if Instant::now() + backoff < deadline => {
                        debug!(group = %self.group, member = %name, error = %e, "member refused; trying again");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(LAST_BACKOFF);
                        continue;
                    }
                    _ => return None,
                }
            }
            if held.is_none() {
                held = Some(self.held.clone().try_acquire_owned().ok()?);
                self.service.telemetry().front_event(&self.group, "held");
            }
            if group.asleep() {
                info!(group = %self.group, "connection held; waking the group");
                if let Err(e) = self.service.wake(&self.group, "front", None).await {
                    warn!(group = %self.group, error = %e, "cannot wake the group for a held connection");
                    return None;
                }
                continue;
            }
            if !matches!(tokio::time::timeout_at(deadline, changes.changed()).await, Ok(Ok(()))) {
                return None;
            }
        }
    }

    /// The ready member with the fewest open connections: its id, name and
    /// address. Members replicator cannot reach from where it runs are left
    /// out, and said why.
    fn least_busy(&self, group: &Group, spec: &FrontSpec) -> Option<(String, String, SocketAddr)> {
        let connections = self.service.connections();
        let reachable = group.reachable(spec.target, spec.network.as_deref(), &self.service.settings().vantage);
        let reachable = reachable.unwrap_or_else(|why| {
            warn!(group = %self.group, reason = %why, "no ready member can be reached from replicator");
            Vec::new()
        });
        reachable
            .into_iter()
            .filter_map(|b| Some((b.id, b.name, b.address.parse::<SocketAddr>().ok()?)))
            .min_by_key(|(id, _, _)| connections.open_to(id))
    }
}
