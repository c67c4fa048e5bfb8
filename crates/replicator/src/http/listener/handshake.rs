//! Refused TLS handshakes: each is logged at debug and counted in
//! `replicator_tls_handshake_failures_total{reason}`; at info, one summary
//! per interval (when there were any), so garbage connections cannot flood
//! the logs.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, info};

use super::PeerIdentity;
use crate::base::telemetry::Telemetry;
use crate::tls::{common_name, ServerTls};

/// A client's certificate chain, leaf first, as it presented it.
pub type Chain = Arc<[rustls_pki_types::CertificateDer<'static>]>;

/// How often refused handshakes are summed up at info.
pub const SUMMARY_EVERY: Duration = Duration::from_secs(10);

/// What a TLS listener needs besides its socket.
#[derive(Clone)]
pub struct Tls {
    /// Read at every handshake: a reload serves new connections at once.
    config: Arc<ServerTls>,
    /// Where refused handshakes are counted.
    pub refusals: Arc<HandshakeRefusals>,
}

impl Tls {
    /// A TLS listener with `config`, counting refusals in `telemetry`.
    pub fn new(config: Arc<ServerTls>, telemetry: Arc<Telemetry>) -> Self {
        Self { config, refusals: Arc::new(HandshakeRefusals::new(telemetry)) }
    }

    /// The handshake within `timeout`: the stream and the client as its
    /// certificate names it, or `None` (counted and logged) when it failed.
    pub async fn handshake(
        &self,
        tcp: TcpStream,
        remote: SocketAddr,
        timeout: Duration,
    ) -> Option<(TlsStream<TcpStream>, PeerIdentity, Chain)> {
        let acceptor = TlsAcceptor::from(self.config.current());
        match tokio::time::timeout(timeout, acceptor.accept(tcp)).await {
            Ok(Ok(stream)) => {
                let chain: Chain = stream.get_ref().1.peer_certificates().unwrap_or_default().to_vec().into();
                let peer = PeerIdentity {
                    common_name: chain.first().and_then(common_name).unwrap_or_default(),
                    claim: Some(self.config.claim_of(&chain)),
                    addr: Some(remote),
                };
                Some((stream, peer, chain))
            }
            Ok(Err(e)) => {
                self.refusals.record(remote, reason_of(&e), &e);
                None
            }
            Err(_) => {
                self.refusals.record(remote, "timeout", &"no handshake within the timeout");
                None
            }
        }
    }

    /// Resolves once `chain` no longer verifies after a reload (a revoked
    /// certificate, a client CA replaced); never while it still does.
    pub async fn untrusted(&self, chain: &Chain) {
        let mut reloads = self.config.reloads();
        // A reload between the handshake and this subscription is seen here.
        if !self.config.still_trusted(chain) {
            return;
        }
        while reloads.changed().await.is_ok() {
            if !self.config.still_trusted(chain) {
                return;
            }
        }
        std::future::pending().await
    }

    /// Where closed connections are counted.
    pub fn telemetry(&self) -> &Telemetry {
        &self.refusals.telemetry
    }

    /// Logs the summary every [`SUMMARY_EVERY`] until aborted.
    pub fn spawn_summaries(&self) -> tokio::task::JoinHandle<()> {
        let refusals = self.refusals.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(SUMMARY_EVERY);
            every.tick().await;
            loop {
                every.tick().await;
                refusals.log_summary();
            }
        })
    }
}

/// Refusals counted since the last summary, by reason.
pub struct HandshakeRefusals {
    telemetry: Arc<Telemetry>,
    pending: Mutex<BTreeMap<&'static str, u64>>,
}

impl HandshakeRefusals {
    /// Counts into `telemetry`'s `tls_handshake_failures`.
    pub fn new(telemetry: Arc<Telemetry>) -> Self {
        Self { telemetry, pending: Mutex::new(BTreeMap::new()) }
    }

    /// One refused handshake: debug line, counter, and the next summary.
    pub fn record(&self, remote: SocketAddr, reason: &'static str, error: &dyn std::fmt::Display) {
        debug!(%remote, reason, error = %error, "TLS handshake refused");
        self.telemetry.tls_handshake_failure(reason);
        *self.pending.lock().expect("refusals lock").entry(reason).or_default() += 1;
    }

    /// `"3 (malformed: 2, timeout: 1)"` for the refusals since the last call, if any.
    pub fn take_summary(&self) -> Option<String> {
        let pending = std::mem::take(&mut *self.pending.lock().expect("refusals lock"));
        let total: u64 = pending.values().sum();
        let reasons: Vec<String> = pending.iter().map(|(reason, n)| format!("{reason}: {n}")).collect();
        (total > 0).then(|| format!("{total} ({})", reasons.join(", ")))
    }

    /// The summary at info, when there is one.
    pub fn log_summary(&self) {
        if let Some(summary) = self.take_summary() {
            info!(refused = %summary, "TLS handshakes refused since the last summary");
        }
    }
}

/// A low-cardinality reason for a failed handshake.
pub fn reason_of(error: &std::io::Error) -> &'static str {
    use std::io::ErrorKind;
    if let Some(tls) = error.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>()) {
        return match tls {
            rustls::Error::InvalidMessage(_)
            | rustls::Error::InappropriateMessage { .. }
            | rustls::Error::InappropriateHandshakeMessage { .. }
            | rustls::Error::PeerSentOversizedRecord => "malformed",
            rustls::Error::NoCertificatesPresented => "no_client_certificate",
            rustls::Error::InvalidCertificate(_) => "bad_client_certificate",
            rustls::Error::AlertReceived(_) => "alert_received",
            rustls::Error::PeerIncompatible(_) => "incompatible",
            _ => "other",
        };
    }
    match error.kind() {
        ErrorKind::UnexpectedEof | ErrorKind::ConnectionReset | ErrorKind::BrokenPipe => "closed",
        _ => "io",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_summed_up_by_reason_once() {
        let refusals = HandshakeRefusals::new(Arc::new(Telemetry::default()));
        let remote: SocketAddr = "127.0.0.1:1".parse().unwrap();
        assert_eq!(refusals.take_summary(), None, "nothing to say");
        for reason in ["malformed", "timeout", "malformed"] {
            refusals.record(remote, reason, &"x");
        }
        assert_eq!(refusals.take_summary().as_deref(), Some("3 (malformed: 2, timeout: 1)"));
        assert_eq!(refusals.take_summary(), None, "each refusal is summed up once");
        let metrics = refusals.telemetry.encode();
        assert!(metrics.contains("replicator_tls_handshake_failures_total{reason=\"malformed\"} 2"), "{metrics}");
    }

    #[test]
    fn reasons_come_from_the_tls_error() {
        let tls = |e: rustls::Error| std::io::Error::new(std::io::ErrorKind::InvalidData, e);
        assert_eq!(reason_of(&tls(rustls::Error::NoCertificatesPresented)), "no_client_certificate");
        let garbage = rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType);
        assert_eq!(reason_of(&tls(garbage)), "malformed");
        assert_eq!(reason_of(&std::io::ErrorKind::UnexpectedEof.into()), "closed");
    }
}
