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
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

mod relay;

use crate::base::handover::Sockets;
use crate::rules::backends::Backend;
use crate::rules::front::{proxy_v2_header, FrontSpec};
use crate::service::{Reach, Reached, Replicator, Waiter};

/// How often listeners that could not be opened are tried again.
const RETRY_BIND: Duration = Duration::from_secs(5);

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

/// Opens and closes the fronts as groups claim ports, until `cancel`: a
/// front's listener is the predecessor's when `sockets` inherited one
/// there, and each connection runs under `connections`, so that a process
/// handing over can let them finish.
pub async fn run(
    service: Replicator,
    settings: FrontSettings,
    sockets: Arc<Sockets>,
    connections: TaskTracker,
    cancel: CancellationToken,
) {
    let budget = Arc::new(Semaphore::new(settings.descriptors.min(Semaphore::MAX_PERMITS)));
    let mut changes = service.inventory().subscribe();
    let mut doors = Doors { service, settings, sockets, connections, budget, open: HashMap::new() };
    let mut first = true;
    loop {
        let wanted: HashMap<u16, String> = match doors.service.inventory().groups() {
            Ok(groups) => groups.iter().filter_map(|g| Some((g.front.as_ref()?.listen, g.name().to_owned()))).collect(),
            Err(_) => doors.open.iter().map(|(port, door)| (*port, door.group.clone())).collect(),
        };
        doors.close_unwanted(&wanted);
        for (port, group) in wanted {
            if !doors.open.contains_key(&port) {
                doors.open(port, group, &cancel);
            }
        }
        if std::mem::take(&mut first) {
            for name in doors.sockets.close_unclaimed() {
                info!(socket = %name, "inherited front closed: no group claims its port now");
            }
        }
        tokio::select! {
            _ = changes.changed() => {}
            () = tokio::time::sleep(RETRY_BIND) => {}
            () = cancel.cancelled() => return,
        }
    }
}

/// The open fronts, and what a new one is made with.
struct Doors {
    service: Replicator,
    settings: FrontSettings,
    sockets: Arc<Sockets>,
    connections: TaskTracker,
    budget: Arc<Semaphore>,
    open: HashMap<u16, Door>,
}

impl Doors {
    /// Closes the fronts no group claims any more (or another group does).
    fn close_unwanted(&mut self, wanted: &HashMap<u16, String>) {
        self.open.retain(|port, door| {
            let keep = wanted.get(port) == Some(&door.group);
            if !keep {
                info!(port, group = %door.group, "front closed");
                self.sockets.forget(&socket_name(*port));
                door.close.cancel();
            }
            keep
        });
    }

    /// Opens `group`'s front on `port`; tried again next round if it cannot listen.
    fn open(&mut self, port: u16, group: String, cancel: &CancellationToken) {
        let listening = self.sockets.listen(&socket_name(port), SocketAddr::new(self.settings.address, port));
        let listener = match listening.and_then(TcpListener::from_std) {
            Ok(listener) => listener,
            Err(e) => return warn!(port, group, error = %e, "cannot open the group's front; trying again"),
        };
        info!(port, group, "front open");
        let close = cancel.child_token();
        let front = Front {
            service: self.service.clone(),
            group: group.clone(),
            settings: self.settings,
            held: Arc::new(Semaphore::new(self.settings.hold)),
            carried: Arc::new(Semaphore::new(self.settings.max_connections)),
            budget: self.budget.clone(),
            connections: self.connections.clone(),
        };
        tokio::spawn(Arc::new(front).serve(listener, close.clone()));
        self.open.insert(port, Door { group, close });
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
    /// Every spliced connection of every front.
    connections: TaskTracker,
}

/// The name a front's listener is handed over by.
fn socket_name(port: u16) -> String {
    format!("front:{port}")
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
                () = close.cancelled() => break,
            };
            match accepted {
                Ok((client, peer)) => self.take(client, peer),
                Err(e) => {
                    debug!(group = %self.group, error = %e, "accept failed");
                    // Out of descriptors, most likely: give connections a moment to end.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
        for (client, peer) in crate::base::handover::backlog(listener) {
            self.take(client, peer);
        }
    }

    /// Carries an accepted connection, or closes it at once when the front is at its cap.
    fn take(self: &Arc<Self>, client: TcpStream, peer: SocketAddr) {
        match self.admit() {
            Some(admitted) => {
                self.service.telemetry().front_event(&self.group, "accepted");
                self.connections.spawn(self.clone().connect(client, peer, admitted));
            }
            None => {
                // Closed at once: a flood must not take the descriptors the API needs.
                self.service.telemetry().front_event(&self.group, "refused");
                debug!(group = %self.group, %peer, "front connection refused: at its cap");
                drop(client);
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
        let Some((member, spec, upstream)) = self.reach_member().await else {
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

    /// A connection to a ready member (the one with the fewest open
    /// connections), the client held while the group has none (woken if it
    /// sleeps); `None` once the deadline passes, the hold is full, or the
    /// group has no front anymore.
    async fn reach_member(&self) -> Option<((String, String), FrontSpec, TcpStream)> {
        let groups = self.service.fresh_groups().await.ok()?;
        let spec = groups.iter().find(|g| g.name() == self.group)?.front.clone()?;
        let deadline = Instant::now() + self.settings.timeout;
        let reach = Reach {
            group: &self.group,
            port: spec.target,
            network: spec.network.as_deref(),
            deadline,
            caller: "front",
            wakes: true,
        };
        let mut waiter = LeastBusy { front: self, held: None };
        let reached = self.service.reach(reach, &mut waiter, |member| async move {
            let address = member.address.parse::<SocketAddr>().map_err(|e| e.to_string())?;
            match tokio::time::timeout_at(deadline, TcpStream::connect(address)).await {
                Ok(Ok(upstream)) => Ok(Some(((member.id, member.name), upstream))),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Ok(None),
            }
        });
        match reached.await {
            Ok(Reached { value: Some((member, upstream)), .. }) => Some((member, spec, upstream)),
            Ok(_) => None,
            Err(e) => {
                debug!(group = %self.group, error = %e, "a held connection reached no member");
                None
            }
        }
    }
}

/// The front's way to wait: the ready member with the fewest open
/// connections, and a place under `--front-hold` while there is none.
struct LeastBusy<'a> {
    front: &'a Front,
    held: Option<OwnedSemaphorePermit>,
}

impl Waiter for LeastBusy<'_> {
    fn pick(&mut self, ready: Vec<Backend>) -> Option<Backend> {
        let connections = self.front.service.connections();
        ready.into_iter().min_by_key(|b| connections.open_to(&b.id))
    }

    fn hold(&mut self) -> bool {
        self.held = self.front.held.clone().try_acquire_owned().ok();
        if self.held.is_some() {
            self.front.service.telemetry().front_event(&self.front.group, "held");
        }
        self.held.is_some()
    }
}
