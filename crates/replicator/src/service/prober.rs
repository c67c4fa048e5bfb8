//! Readiness probes replicator runs itself (`replicator.ready`), for images
//! without a `HEALTHCHECK`: one task per running member of a group that
//! declares a probe, started and stopped as the inventory changes. What a
//! probe finds is written to the inventory, where it is the member's
//! readiness for every reader: `wait=ready`, balancers, events, standbys,
//! the wake listener and the autoscaler.
//!
//! A probe reaches the member on its network address, from wherever
//! replicator runs: replicator in a container must share a network with
//! the members (the probe's `network=`, else the group's wake network, else
//! the first network the member has an address on).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::inventory::{Health, Intents, ProbeStatus, Store};
use crate::model::RunState;
use crate::rules::readiness::{passes, Check, ProbeSpec, Tally};

/// How often the set of probed members is looked at again without a change.
const LOOK_AGAIN: Duration = Duration::from_secs(1);
/// Most bytes of an answer read to find its status line.
const STATUS_LINE_MAX: usize = 1024;

/// What one member is probed with: the group's probe and the network to use.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Target {
    spec: ProbeSpec,
    network: Option<String>,
}

/// Runs the probes over an inventory: `serve`'s, or the one `replicator
/// upstreams` keeps when it follows the engine itself.
#[derive(Clone)]
pub struct Prober {
    store: Store,
    intents: Intents,
}

impl Prober {
    /// A prober reading members from `store` and writing what it finds to `intents`.
    pub fn new(store: Store, intents: Intents) -> Self {
        Self { store, intents }
    }

    /// Probes every running member of every group that declares a probe,
    /// until `cancel`.
    pub async fn run(self, cancel: CancellationToken) {
        let mut changes = self.store.subscribe();
        let mut probing: HashMap<String, (Target, CancellationToken)> = HashMap::new();
        loop {
            let wanted = self.targets();
            probing.retain(|id, (target, stop)| {
                let keep = wanted.get(id) == Some(target);
                if !keep {
                    stop.cancel();
                }
                keep
            });
            for (id, target) in wanted {
                if let std::collections::hash_map::Entry::Vacant(slot) = probing.entry(id) {
                    let stop = cancel.child_token();
                    tokio::spawn(self.clone().probe_member(slot.key().clone(), target.clone(), stop.clone()));
                    slot.insert((target, stop));
                }
            }
            tokio::select! {
                _ = changes.changed() => {}
                () = tokio::time::sleep(LOOK_AGAIN) => {}
                () = cancel.cancelled() => return,
            }
        }
    }

    /// Probes every target once (`replicator upstreams --once`).
    pub async fn probe_all_once(&self) {
        let targets = self.targets();
        let probes = targets.iter().map(|(id, target)| async move {
            let mut tally = Tally::default();
            tally.add(&target.spec, self.probe(id, target).await);
            self.record(id, &tally);
        });
        futures_util::future::join_all(probes).await;
    }

    /// Running members (and standbys) of groups with a probe.
    fn targets(&self) -> HashMap<String, Target> {
        let Ok(groups) = self.store.groups() else { return HashMap::new() };
        let mut targets = HashMap::new();
        for group in groups.iter() {
            let Some(spec) = &group.probe else { continue };
            let network = spec.network.clone().or_else(|| group.wake.as_ref().and_then(|w| w.network.clone()));
            for m in group.members.iter().chain(&group.standbys) {
                let running = self.store.container(&m.id).is_some_and(|c| c.state == RunState::Running);
                if running {
                    targets.insert(m.id.clone(), Target { spec: spec.clone(), network: network.clone() });
                }
            }
        }
        targets
    }

    async fn probe_member(self, id: String, target: Target, stop: CancellationToken) {
        // A member unpaused keeps what its probe found before the pause.
        let mut tally = Tally::default();
        if self.store.member(&id).and_then(|m| m.probe) == Some(Health::Healthy) {
            (tally.ready, tally.was_ready) = (true, true);
        }
        loop {
            let outcome = self.probe(&id, &target).await;
            if let Err(why) = &outcome {
                debug!(container = %id, reason = %why, "probe failed");
            }
            tally.add(&target.spec, outcome);
            self.record(&id, &tally);
            tokio::select! {
                () = tokio::time::sleep(tally.next_in(&target.spec)) => {}
                () = stop.cancelled() => return,
            }
        }
    }

    async fn probe(&self, id: &str, target: &Target) -> Result<(), String> {
        match self.address(id, target) {
            Some(address) => probe_once(address, &target.spec).await,
            None => Err(match &target.network {
                Some(n) => format!("it has no address on network {n}"),
                None => "it has no network address".to_owned(),
            }),
        }
    }

    fn record(&self, id: &str, tally: &Tally) {
        let health = match (tally.ready, tally.was_ready) {
            (true, _) => Health::Healthy,
            (false, true) => Health::Unhealthy,
            (false, false) => Health::Starting,
        };
        self.intents.probed(id, ProbeStatus { health, last_failure: tally.last_failure.clone() });
    }

    /// The member's address for the probe's port on the chosen network; on
    /// the host's loopback for a member on the host's network.
    fn address(&self, id: &str, target: &Target) -> Option<SocketAddr> {
        let c = self.store.container(id)?;
        let ip = match &target.network {
            Some(n) => c.networks.get(n).filter(|ip| !ip.is_empty()).cloned(),
            None if c.networks.contains_key("host") => Some("127.0.0.1".to_owned()),
            None => c.networks.values().find(|ip| !ip.is_empty()).cloned(),
        }?;
        format!("{ip}:{}", target.spec.port)
            .parse()
            .ok()
            .or_else(|| format!("[{ip}]:{}", target.spec.port).parse().ok())
    }
}

/// One probe, within the spec's timeout.
async fn probe_once(address: SocketAddr, spec: &ProbeSpec) -> Result<(), String> {
    let attempt = async {
        let mut stream = TcpStream::connect(address).await.map_err(|e| format!("connect to {address}: {e}"))?;
        match &spec.check {
            Check::Tcp => Ok(()),
            Check::Http { path } => http_get(&mut stream, address, path).await,
        }
    };
    match tokio::time::timeout(spec.timeout, attempt).await {
        Ok(outcome) => outcome,
        Err(_) => Err(format!("no answer from {address} within {}", crate::base::duration::format(spec.timeout))),
    }
}

/// `GET path` over an open connection: a pass when the status is 2xx or 3xx.
async fn http_get(stream: &mut TcpStream, address: SocketAddr, path: &str) -> Result<(), String> {
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nUser-Agent: replicator-probe\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.map_err(|e| format!("send to {address}: {e}"))?;
    let mut answer = Vec::with_capacity(128);
    let mut chunk = [0u8; 256];
    while !answer.contains(&b'\n') && answer.len() < STATUS_LINE_MAX {
        let n = stream.read(&mut chunk).await.map_err(|e| format!("read from {address}: {e}"))?;
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&chunk[..n]);
    }
    let line = String::from_utf8_lossy(&answer);
    let line = line.lines().next().unwrap_or_default();
    let status = line
        .strip_prefix("HTTP/")
        .and_then(|rest| rest.split_whitespace().nth(1))
        .and_then(|code| code.parse::<u16>().ok())
        .ok_or_else(|| format!("{address} did not answer HTTP"))?;
    if passes(status) {
        Ok(())
    } else {
        Err(format!("GET {path} answered {status}"))
    }
}

#[cfg(test)]
mod tests {
    use tokio::net::TcpListener;

    use super::*;

    async fn server(answer: &'static str) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                let _ = s.write_all(answer.as_bytes()).await;
            }
        });
        address
    }

    #[tokio::test]
    async fn an_http_probe_passes_on_2xx_and_3xx_and_says_why_it_fails() {
        let spec = |path: &str| ProbeSpec::parse(&format!("http:1{path}")).unwrap();
        let ok = server("HTTP/1.1 204 No Content\r\n\r\n").await;
        assert_eq!(probe_once(ok, &spec("/healthz")).await, Ok(()));
        let moved = server("HTTP/1.0 302 Found\r\nLocation: /x\r\n\r\n").await;
        assert_eq!(probe_once(moved, &spec("/")).await, Ok(()));
        let broken = server("HTTP/1.1 503 Service Unavailable\r\n\r\n").await;
        assert_eq!(probe_once(broken, &spec("/ready")).await, Err("GET /ready answered 503".into()));
        let not_http = server("+PONG\r\n").await;
        assert!(probe_once(not_http, &spec("/")).await.unwrap_err().contains("did not answer HTTP"));
    }

    #[tokio::test]
    async fn a_tcp_probe_fails_on_a_refused_connection_and_passes_on_an_accepted_one() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let open = listener.local_addr().unwrap();
        let spec = ProbeSpec::parse("tcp:1").unwrap();
        assert_eq!(probe_once(open, &spec).await, Ok(()));
        drop(listener);
        assert!(probe_once(open, &spec).await.unwrap_err().contains("connect to"));
    }

    #[tokio::test]
    async fn a_probe_that_gets_no_answer_fails_at_its_timeout() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let silent = listener.local_addr().unwrap();
        let spec = ProbeSpec::parse("http:1/,timeout=200ms").unwrap();
        assert!(probe_once(silent, &spec).await.unwrap_err().contains("within 200ms"));
    }
}
