//! A second Docker engine, listening with `--tlsverify` and certificates from
//! `replicator certs init`, as the original tool's docker-machine hosts did.
//!
//! It runs in a network namespace of its own (entered with nsenter): a dockerd started with
//! `--bridge=none` deletes the host's `docker0`, which would break the main
//! engine. Its `tcp://127.0.0.1:2376` inside the namespace is brought to
//! `127.0.0.1:<port>` on the host through a unix socket both sides can see.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use tokio::net::UnixStream;

use super::relay::Relay;
use super::{docker, eventually, poll_until, DockerCli};

pub struct SecondEngine {
    pub port: u16,
    /// The docker CLI pointed at this engine the way the original tool was:
    /// through `DOCKER_HOST`, `DOCKER_TLS_VERIFY` and `DOCKER_CERT_PATH`.
    pub cli: DockerCli,
    namespace: String,
    dir: tempfile::TempDir,
    dockerd: Child,
    socat: Child,
    /// Brings the engine's socket to the host's `port`.
    _forwarder: Relay,
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
        let forwarder = Relay::start(port, move |mut client| {
            let socket = socket.clone();
            Some(async move {
                if let Ok(mut engine) = UnixStream::connect(&socket).await {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut engine).await;
                }
            })
        });
        let env = vec![
            ("DOCKER_HOST", format!("tcp://127.0.0.1:{port}")),
            ("DOCKER_TLS_VERIFY", "1".to_owned()),
            ("DOCKER_CERT_PATH", certs.display().to_string()),
        ];
        let cli = DockerCli::new("the second engine", env);
        let engine = Self { port, cli, namespace, dir, dockerd, socat, _forwarder: forwarder };
        eventually("the second engine to answer over TLS", Duration::from_secs(90), || {
            engine.cli.docker_try(&["info"]).ok()
        });
        engine
    }
}

impl Drop for SecondEngine {
    fn drop(&mut self) {
        if let Ok(ids) = self.cli.docker_try(&["ps", "-aq"]) {
            for id in ids.lines() {
                let _ = self.cli.docker_try(&["rm", "-f", id]);
            }
        }
        let pidfile = self.dir.path().join("docker.pid");
        if let Ok(pid) = std::fs::read_to_string(&pidfile) {
            let _ = Command::new("kill").arg(pid.trim()).status();
            let _ = poll_until(Duration::from_secs(15), || (!pidfile.exists()).then_some(()));
        }
        let _ = self.dockerd.kill();
        let _ = self.dockerd.wait();
        let _ = self.socat.kill();
        let _ = self.socat.wait();
        let _ = Command::new("ip").args(["netns", "del", &self.namespace]).status();
    }
}
