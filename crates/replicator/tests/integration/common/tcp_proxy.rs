//! A plain TCP proxy to a local port that can cut its connections and
//! refuse new ones for a while: a network break between a client (TLS goes
//! through untouched) and replicator. It runs on its own thread.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::net::TcpStream;

use super::relay::Relay;

#[derive(Default)]
struct Control {
    refusing: AtomicBool,
    /// Connections handed on to the target so far.
    passed: AtomicUsize,
}

pub struct TcpProxy {
    pub port: u16,
    control: Arc<Control>,
    relay: Relay,
}

impl TcpProxy {
    pub fn start(target_port: u16) -> Self {
        let control = Arc::new(Control::default());
        let shared = control.clone();
        let relay = Relay::start(0, move |mut client| {
            if shared.refusing.load(Ordering::SeqCst) {
                return None;
            }
            shared.passed.fetch_add(1, Ordering::SeqCst);
            Some(async move {
                let Ok(mut target) = TcpStream::connect(("127.0.0.1", target_port)).await else { return };
                let _ = tokio::io::copy_bidirectional(&mut client, &mut target).await;
            })
        });
        Self { port: relay.port, control, relay }
    }

    /// Closes every open connection and refuses new ones until `reopen`.
    pub fn cut(&self) {
        self.control.refusing.store(true, Ordering::SeqCst);
        self.relay.cut();
    }

    pub fn reopen(&self) {
        self.control.refusing.store(false, Ordering::SeqCst);
    }

    /// Connections handed on to the target so far.
    pub fn passed(&self) -> usize {
        self.control.passed.load(Ordering::SeqCst)
    }
}
