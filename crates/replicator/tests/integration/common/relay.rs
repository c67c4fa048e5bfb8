//! A TCP listener on a thread and runtime of its own (blocking test code never
//! stalls it) that hands each connection to a task: the body of the harness's
//! proxies. Its connections can be cut at any time; dropping it stops the
//! listener and cuts them.

use std::future::Future;
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

type Connections = Arc<Mutex<Vec<JoinHandle<()>>>>;

pub struct Relay {
    pub port: u16,
    connections: Connections,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Relay {
    /// Listens on 127.0.0.1:`port` (0: a free port) and runs what `handle`
    /// makes of each connection it accepts; one it refuses (`None`) is closed.
    pub fn start<H, F>(port: u16, handle: H) -> Self
    where
        H: Fn(TcpStream) -> Option<F> + Send + 'static,
        F: Future<Output = ()> + Send + 'static,
    {
        let connections = Connections::default();
        let (port_tx, port_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let shared = connections.clone();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async move {
                let listener = TcpListener::bind(("127.0.0.1", port)).await.expect("the relay's port is free");
                port_tx.send(listener.local_addr().unwrap().port()).unwrap();
                let accept = async {
                    while let Ok((client, _)) = listener.accept().await {
                        if let Some(connection) = handle(client) {
                            shared.lock().unwrap().push(tokio::spawn(connection));
                        }
                    }
                };
                tokio::select! {
                    _ = stopped => {}
                    () = accept => {}
                }
                cut(&shared);
            });
        });
        let port = port_rx.recv().unwrap();
        Self { port, connections, stop: Some(stop), thread: Some(thread) }
    }

    /// Closes every open connection (streams in progress included).
    pub fn cut(&self) {
        cut(&self.connections);
    }
}

fn cut(connections: &Connections) {
    for task in connections.lock().unwrap().drain(..) {
        task.abort();
    }
}

impl Drop for Relay {
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
