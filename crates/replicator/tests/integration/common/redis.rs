//! A Redis server image built here, with no registry (see
//! [`super::imported`]), for the TCP front's tests and its benchmark, and
//! the little of Redis's protocol they speak.

use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// The image's tag.
pub const REDIS_IMAGE: &str = "replicator-test/redis:7";
/// The port Redis listens on inside the container.
pub const REDIS_PORT: u16 = 6379;

/// Builds the image once per run (kept while its tag exists); its tag.
pub fn redis_image() -> &'static str {
    static BUILT: OnceLock<()> = OnceLock::new();
    let command = ["/usr/bin/redis-server", "--protected-mode", "no", "--save", ""];
    BUILT.get_or_init(|| super::imported::binary_image(REDIS_IMAGE, "/usr/bin/redis-server", &command, "redis-server"));
    REDIS_IMAGE
}

/// Sends one inline Redis command on `stream` and reads one reply line.
pub fn command(stream: &mut std::net::TcpStream, line: &str) -> std::io::Result<String> {
    use std::io::{BufRead, Write};
    stream.write_all(format!("{line}\r\n").as_bytes())?;
    let mut reader = std::io::BufReader::new(stream.try_clone()?);
    let mut reply = String::new();
    reader.read_line(&mut reply)?;
    if reply.starts_with('$') && !reply.starts_with("$-1") {
        let mut value = String::new();
        reader.read_line(&mut value)?;
        return Ok(value.trim_end().to_owned());
    }
    Ok(reply.trim_end().to_owned())
}

/// One PING on a new connection to `host:port`.
pub fn ping(host: &str, port: u16) -> Result<(), String> {
    let mut stream = TcpStream::connect((host, port)).map_err(|e| format!("connect: {e}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    match command(&mut stream, "PING") {
        Ok(reply) if reply == "+PONG" => Ok(()),
        other => Err(format!("PING: {other:?}")),
    }
}

/// Clients on the front until `stop`: `fresh` of them open a new connection
/// per command, `kept` keep one connection each (a command every 50 ms).
/// Returns (commands answered, failures seen).
pub struct Load {
    stop: Arc<AtomicBool>,
    answered: Arc<AtomicUsize>,
    failures: Arc<std::sync::Mutex<Vec<String>>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Load {
    pub fn start(port: u16, fresh: usize, kept: usize) -> Self {
        let (stop, answered) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicUsize::new(0)));
        let failures = Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut threads = Vec::new();
        for client in 0..fresh + kept {
            let (stop, answered, failures) = (stop.clone(), answered.clone(), failures.clone());
            threads.push(std::thread::spawn(move || {
                let fail = |why: String| failures.lock().unwrap().push(format!("client {client}: {why}"));
                let mut kept_stream = None;
                while !stop.load(Ordering::Relaxed) {
                    let outcome = if client < fresh {
                        ping("127.0.0.1", port)
                    } else {
                        let stream = kept_stream.get_or_insert_with(|| {
                            let s = TcpStream::connect(("127.0.0.1", port)).expect("the front accepts");
                            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                            s
                        });
                        let reply = command(stream, &format!("SET kept{client} {}", answered.load(Ordering::Relaxed)));
                        std::thread::sleep(Duration::from_millis(50));
                        match reply {
                            Ok(r) if r == "+OK" => Ok(()),
                            other => Err(format!("SET on the kept connection: {other:?}")),
                        }
                    };
                    match outcome {
                        Ok(()) => drop(answered.fetch_add(1, Ordering::Relaxed)),
                        Err(why) => fail(why),
                    }
                }
            }));
        }
        Self { stop, answered, failures, threads }
    }

    pub fn answered(&self) -> usize {
        self.answered.load(Ordering::Relaxed)
    }

    /// Stops the clients (closing the kept connections); the failures seen.
    pub fn finish(mut self) -> Vec<String> {
        self.stop.store(true, Ordering::Relaxed);
        for thread in std::mem::take(&mut self.threads) {
            thread.join().unwrap();
        }
        let failures = self.failures.lock().unwrap().clone();
        failures
    }
}

impl Drop for Load {
    /// A test that fails half-way leaves no client running.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
