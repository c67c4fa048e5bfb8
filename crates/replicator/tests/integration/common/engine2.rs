//! A second Docker engine, listening with `--tlsverify` and certificates from
//! `replicator certs init`, as the original tool's docker-machine hosts did.
//!
//! It runs in a network namespace of its own (entered with nsenter): a dockerd started with
//! `--bridge=none` deletes the host's `docker0`, which would break the main
//! engine. Its `tcp://127.0.0.1:2376` inside the namespace is brought to
//! `127.0.0.1:<port>` on the host through a unix socket both sides can see.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use tokio::net::{TcpListener, UnixStream};

use super::{docker, eventually};

pub struct SecondEngine {
    pub port: u16,
    certs: PathBuf,
    namespace: String,
    dir: tempfile::TempDir,
    dockerd: Child,
    socat: Child,
    forwarder: Option<std::thread::JoinHandle<()>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

fn run(program: &str, args: &[&str]) {
    let status = Command::new(program).args(args).status().unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(status.success(), "{program} {args:?} failed");
}

impl SecondEngine {
    /// Starts the engine on host port `port`, with the server pair and CA in `certs`.
    pub fn start(port: u16, certs: &Path) -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let namespace = format!("rt-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        let dir = tempfile::Builder::new().prefix("rt").tempdir_in("/tmp").unwrap();
        run("ip", &["netns", "add", &namespace]);
        run("nsenter", &[&format!("--net=/var/run/netns/{namespace}"), "ip", "link", "set", "lo", "up"]);
        let d = dir.path();
        std::fs::write(d.join("daemon.json"), "{}").unwrap();
        let driver = docker(&["info", "--format", "{{.Driver}}"]);
        let path = |name: &str| d.join(name).display().to_string();
        let cert = |name: &str| certs.join(name).display().to_string();
        let log = std::fs::File::create(d.join("dockerd.log")).unwrap();
        // nsenter, not `ip netns exec`: that one also remounts /sys, hiding the cgroups from dockerd.
        let enter = format!("--net=/var/run/netns/{namespace}");
        let dockerd = Command::new("nsenter")
            .args([&enter, "dockerd"])
            .arg(format!("--config-file={}", path("daemon.json")))
            .arg(format!("--data-root={}", path("data")))
            .arg(format!("--exec-root={}", path("exec")))
            .arg(format!("--pidfile={}", path("docker.pid")))
            .args(["--bridge=none", "--iptables=false", "--ip-masq=false", "-H", "tcp://127.0.0.1:2376", "--tlsverify"])
            .arg(format!("--tlscacert={}", cert("ca.pem")))
            .arg(format!("--tlscert={}", cert("server-cert.pem")))
            .arg(format!("--tlskey={}", cert("server-key.pem")))
            .arg(format!("--storage-driver={driver}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("dockerd starts");
        let socket = path("engine.sock");
        let socat = Command::new("nsenter")
            .args([&enter, "socat", &format!("UNIX-LISTEN:{socket},fork"), "TCP:127.0.0.1:2376"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("socat starts (apt-get install socat; scripts/prepare does)");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let forwarder = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async move {
                let listener = TcpListener::bind(("127.0.0.1", port)).await.expect("the engine's port is free");
                ready_tx.send(()).unwrap();
                let accept = async {
                    while let Ok((mut client, _)) = listener.accept().await {
                        let socket = socket.clone();
                        tokio::spawn(async move {
                            if let Ok(mut engine) = UnixStream::connect(&socket).await {
                                let _ = tokio::io::copy_bidirectional(&mut client, &mut engine).await;
                            }
                        });
                    }
                };
                tokio::select! {
                    _ = stopped => {}
                    () = accept => {}
                }
            });
        });
        ready_rx.recv().unwrap();
        let engine = Self {
            port,
            certs: certs.to_owned(),
            namespace,
            dir,
            dockerd,
            socat,
            forwarder: Some(forwarder),
            stop: Some(stop),
        };
        eventually("the second engine to answer over TLS", Duration::from_secs(90), || {
            engine.docker_try(&["info"]).ok()
        });
        engine
    }

    /// The docker CLI pointed at this engine the way the original tool was: through the environment.
    pub fn env(&self) -> [(&'static str, String); 3] {
        [
            ("DOCKER_HOST", format!("tcp://127.0.0.1:{}", self.port)),
            ("DOCKER_TLS_VERIFY", "1".to_owned()),
            ("DOCKER_CERT_PATH", self.certs.display().to_string()),
        ]
    }

    pub fn docker_try(&self, args: &[&str]) -> Result<String, String> {
        let out = Command::new("docker").args(args).envs(self.env()).output().unwrap();
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
        }
    }

    pub fn docker(&self, args: &[&str]) -> String {
        self.docker_try(args).unwrap_or_else(|e| panic!("second engine: docker {args:?}: {e}"))
    }

    /// Copies an image of the main engine into this one (no registry).
    pub fn load(&self, image: &str) {
        let mut save = Command::new("docker").args(["save", image]).stdout(Stdio::piped()).spawn().unwrap();
        let status = Command::new("docker")
            .arg("load")
            .envs(self.env())
            .stdin(save.stdout.take().unwrap())
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(save.wait().unwrap().success(), "docker save {image}");
        assert!(status.success(), "docker load into the second engine");
    }
}

impl Drop for SecondEngine {
    fn drop(&mut self) {
        if let Ok(ids) = self.docker_try(&["ps", "-aq"]) {
            for id in ids.lines() {
                let _ = self.docker_try(&["rm", "-f", id]);
            }
        }
        let pidfile = self.dir.path().join("docker.pid");
        if let Ok(pid) = std::fs::read_to_string(&pidfile) {
            let _ = Command::new("kill").arg(pid.trim()).status();
            for _ in 0..150 {
                if !pidfile.exists() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        let _ = self.dockerd.kill();
        let _ = self.dockerd.wait();
        let _ = self.socat.kill();
        let _ = self.socat.wait();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(f) = self.forwarder.take() {
            let _ = f.join();
        }
        let _ = Command::new("ip").args(["netns", "del", &self.namespace]).status();
    }
}
