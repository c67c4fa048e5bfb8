//! A TCP proxy in front of the engine's unix socket that can hold back
//! `start` calls and cut every connection: a slow or flaky engine on demand.
//! It runs on its own thread, so blocking test code never stalls it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

use super::relay::Relay;

#[derive(Default)]
struct Control {
    start_delay: Duration,
    /// Starts still let through at once before the delay applies.
    free_starts: usize,
    /// Held-back starts handed on to the engine so far.
    released_starts: usize,
}

pub struct EngineProxy {
    pub port: u16,
    control: Arc<Mutex<Control>>,
    relay: Relay,
}

impl EngineProxy {
    pub fn start() -> Self {
        let control = Arc::new(Mutex::new(Control::default()));
        let shared = control.clone();
        let relay = Relay::start(0, move |client| {
            let control = shared.clone();
            Some(async move {
                let Ok(engine) = UnixStream::connect("/var/run/docker.sock").await else { return };
                pump(client, engine, control).await;
            })
        });
        Self { port: relay.port, control, relay }
    }

    /// `DOCKER_HOST` for a replicator behind this proxy.
    pub fn docker_host(&self) -> String {
        format!("tcp://127.0.0.1:{}", self.port)
    }

    /// Holds back every container start by `delay` from now on.
    pub fn delay_starts(&self, delay: Duration) {
        self.control.lock().unwrap().start_delay = delay;
    }

    /// Lets the next `n` starts through at once; the delay applies after them.
    pub fn pass_starts(&self, n: usize) {
        self.control.lock().unwrap().free_starts = n;
    }

    /// How many held-back starts have reached the engine.
    pub fn released_starts(&self) -> usize {
        self.control.lock().unwrap().released_starts
    }

    /// Closes every open connection (streams in progress included).
    pub fn cut(&self) {
        self.relay.cut();
    }
}

async fn pump(client: tokio::net::TcpStream, engine: UnixStream, control: Arc<Mutex<Control>>) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut engine_read, mut engine_write) = engine.into_split();
    let upstream = async {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match client_read.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            let head = String::from_utf8_lossy(&buf[..n.min(200)]).into_owned();
            let line = head.lines().next().unwrap_or_default();
            let held = line.starts_with("POST ") && line.contains("/start");
            if held {
                let delay = {
                    let mut c = control.lock().unwrap();
                    if c.free_starts > 0 {
                        c.free_starts -= 1;
                        Duration::ZERO
                    } else {
                        c.start_delay
                    }
                };
                tokio::time::sleep(delay).await;
            }
            if engine_write.write_all(&buf[..n]).await.is_err() {
                return;
            }
            if held {
                control.lock().unwrap().released_starts += 1;
            }
        }
    };
    let downstream = async {
        let _ = tokio::io::copy(&mut engine_read, &mut client_write).await;
    };
    tokio::select! {
        () = upstream => {}
        () = downstream => {}
    }
}
