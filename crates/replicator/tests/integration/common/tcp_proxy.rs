//! A plain TCP proxy to a local port that can cut its connections and
//! refuse new ones for a while: a network break between a client (TLS goes
//! through untouched) and replicator. It runs on its own thread.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

#[derive(Default)]
struct Control {
    refusing: AtomicBool,
    /// Connections handed on to the target so far.
    passed: AtomicUsize,
    connections: Mutex<Vec<JoinHandle<()>>>,
}

pub struct TcpProxy {
    pub port: u16,
    control: Arc<Control>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TcpProxy {
    pub fn start(target_port: u16) -> Self {
        let control = Arc::new(Control::default());
        let (port_tx, port_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let shared = control.clone();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async move {
                let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
                port_tx.send(listener.local_addr().unwrap().port()).unwrap();
                let accept = async {
                    while let Ok((mut client, _)) = listener.accept().await {
                        if shared.refusing.load(Ordering::SeqCst) {
                            drop(client);
                            continue;
                        }
                        shared.passed.fetch_add(1, Ordering::SeqCst);
                        let task = tokio::spawn(async move {
                            let Ok(mut target) = TcpStream::connect(("127.0.0.1", target_port)).await else { return };
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut target).await;
                        });
                        shared.connections.lock().unwrap().push(task);
                    }
                };
                tokio::select! {
                    _ = stopped => {}
                    () = accept => {}
                }
                for task in shared.connections.lock().unwrap().drain(..) {
                    task.abort();
                }
            });
        });
        let port = port_rx.recv().unwrap();
        Self { port, control, stop: Some(stop), thread: Some(thread) }
    }

    /// Closes every open connection and refuses new ones until `reopen`.
    pub fn cut(&self) {
        self.control.refusing.store(true, Ordering::SeqCst);
        for task in self.control.connections.lock().unwrap().drain(..) {
            task.abort();
        }
    }

    pub fn reopen(&self) {
        self.control.refusing.store(false, Ordering::SeqCst);
    }

    /// Connections handed on to the target so far.
    pub fn passed(&self) -> usize {
        self.control.passed.load(Ordering::SeqCst)
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.cut();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
