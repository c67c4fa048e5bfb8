//! Integration harness: a test image built here from Debian's busybox-static,
//! a per-test scope whose label marks everything the test creates (swept on
//! drop, even when the test fails), and a real `replicator serve` process.

#![allow(dead_code)]

pub mod browser;
pub mod grpc;
pub mod imported;
pub mod iperf;
pub mod lb;
pub mod prom;
pub mod proxy;
pub mod redis;
pub mod relay;
pub mod second_engine;
pub mod tcp_proxy;
pub mod two_node_swarm;
pub mod wait;

pub use wait::{eventually, eventually_async, poll_until, poll_until_async, ready_if, Look};

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::time::Duration;

use http::{Method, StatusCode};
use replicator::cli::remote::ApiClient;
use serde_json::Value;

pub const IMAGE: &str = "replicator-test/busybox:1";
pub const TEST_LABEL: &str = "replicator-test";
pub const BIN: &str = env!("CARGO_BIN_EXE_replicator");

/// The engines the suite runs its scenarios against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// The machine's Docker engine, at the default socket.
    Docker,
    /// Podman's Docker-compatible API, served by `scripts/prepare`.
    Podman,
}

/// Where `scripts/prepare` serves Podman's Docker-compatible API.
pub const PODMAN_HOST: &str = "unix:///run/replicator-podman/podman.sock";

impl Engine {
    /// `DOCKER_HOST` for this engine (`None`: the CLI's default).
    pub fn docker_host(self) -> Option<&'static str> {
        match self {
            Engine::Docker => None,
            Engine::Podman => Some(PODMAN_HOST),
        }
    }

    /// The docker CLI against this engine.
    pub fn cli(self) -> DockerCli {
        match self {
            Engine::Docker => DockerCli::machine(),
            Engine::Podman => {
                DockerCli::new("Podman (scripts/prepare serves it)", vec![("DOCKER_HOST", PODMAN_HOST.into())])
            }
        }
    }

    /// Makes sure the test image is in this engine's store (Podman gets a
    /// copy of Docker's: `docker save | docker load`, no registry).
    pub fn image(self) -> &'static str {
        static COPIED: OnceLock<()> = OnceLock::new();
        image();
        if self == Engine::Podman {
            COPIED.get_or_init(|| {
                let podman = self.cli();
                if podman.docker_try(&["image", "inspect", IMAGE]).is_err() {
                    podman.load(IMAGE);
                }
            });
        }
        IMAGE
    }
}

/// A finished command's trimmed stdout, or `Err(its stderr)` when it failed.
pub fn stdout_or_stderr(out: Output) -> Result<String, String> {
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
    }
}

/// The docker CLI pointed at one engine by its environment (none: the
/// machine's engine): every docker command of the harness runs here.
pub struct DockerCli {
    /// The engine, for messages.
    name: String,
    env: Vec<(&'static str, String)>,
}

impl DockerCli {
    /// The machine's engine, at the CLI's default.
    pub fn machine() -> Self {
        Self::new("the machine's engine", Vec::new())
    }

    /// The engine `env` (`DOCKER_HOST`...) points at, called `name`.
    pub fn new(name: &str, env: Vec<(&'static str, String)>) -> Self {
        Self { name: name.to_owned(), env }
    }

    /// The environment that points the docker CLI at this engine.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        self.env.clone()
    }

    /// Runs the docker CLI; `Err(stderr)` when it fails.
    pub fn docker_try(&self, args: &[&str]) -> Result<String, String> {
        let out = Command::new("docker").envs(self.env()).args(args).output().expect("the docker CLI runs");
        stdout_or_stderr(out)
    }

    /// The same, failing the test when the CLI fails.
    pub fn docker(&self, args: &[&str]) -> String {
        self.docker_try(args).unwrap_or_else(|e| panic!("docker {args:?} on {} failed: {e}", self.name))
    }

    /// `docker inspect` of one object.
    pub fn inspect(&self, id: &str) -> Value {
        let text = self.docker(&["inspect", id]);
        let mut list: Vec<Value> = serde_json::from_str(&text).expect("docker inspect prints JSON");
        list.remove(0)
    }

    /// Copies `image` from the machine's engine into this one: `docker save
    /// | docker load`, no registry.
    pub fn load(&self, image: &str) {
        let mut save = Command::new("docker");
        save.args(["save", image]);
        let mut load = Command::new("docker");
        load.envs(self.env()).arg("load");
        let (saved, loaded) = pipe(save, load);
        assert!(saved.success(), "docker save {image}");
        assert!(loaded.success(), "docker load of {image} into {}", self.name);
    }
}

/// Runs the docker CLI against the machine's engine; `Err(stderr)` when it fails.
pub fn docker_try(args: &[&str]) -> Result<String, String> {
    DockerCli::machine().docker_try(args)
}

/// The same, failing the test when the CLI fails.
pub fn docker(args: &[&str]) -> String {
    DockerCli::machine().docker(args)
}

/// `docker inspect` of one object on the machine's engine.
pub fn inspect(id: &str) -> Value {
    DockerCli::machine().inspect(id)
}

/// The test image: busybox (shell, httpd, nslookup...) in an imported rootfs.
pub fn image() -> &'static str {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        if docker_try(&["image", "inspect", IMAGE]).is_ok() {
            return;
        }
        let busybox = Path::new("/bin/busybox");
        assert!(busybox.exists(), "/bin/busybox is missing: apt-get install busybox-static (scripts/test does)");
        let root = tempfile::tempdir().unwrap();
        for dir in ["bin", "etc", "tmp", "data"] {
            std::fs::create_dir_all(root.path().join(dir)).unwrap();
        }
        std::fs::copy(busybox, root.path().join("bin/busybox")).unwrap();
        let applets = Command::new(busybox).arg("--list").output().unwrap();
        for applet in String::from_utf8_lossy(&applets.stdout).lines().filter(|a| *a != "busybox") {
            std::os::unix::fs::symlink("busybox", root.path().join("bin").join(applet)).unwrap();
        }
        std::fs::write(
            root.path().join("etc/passwd"),
            "root:x:0:0:root:/:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(root.path().join("etc/group"), "root:x:0:\nnogroup:x:65534:\n").unwrap();
        let mut tar = Command::new("tar");
        tar.arg("-C").arg(root.path()).args(["-c", "."]);
        let mut import = Command::new("docker");
        import.args(["import", "--change", "CMD [\"sh\"]", "--change", "ENV PATH=/bin", "-", IMAGE]);
        let (tarred, imported) = pipe(tar, import);
        assert!(tarred.success(), "tar of the test image's root failed");
        assert!(imported.success(), "docker import of the test image failed");
    });
    IMAGE
}

/// Runs `from | into` (what `into` prints is dropped): both exit statuses.
fn pipe(mut from: Command, mut into: Command) -> (ExitStatus, ExitStatus) {
    let mut source = from.stdout(Stdio::piped()).spawn().unwrap_or_else(|e| panic!("{from:?}: {e}"));
    let status = into
        .stdin(source.stdout.take().unwrap())
        .stdout(Stdio::null())
        .status()
        .unwrap_or_else(|e| panic!("{into:?}: {e}"));
    (source.wait().unwrap(), status)
}

/// `scripts/build-images` (replicator:local and replicator-demo:local), once per test run.
pub fn images() {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/build-images");
        let out = Command::new(script).output().expect("scripts/build-images runs");
        assert!(out.status.success(), "build-images: {}", String::from_utf8_lossy(&out.stderr));
    });
}

/// Everything one test creates carries its label and is removed on drop.
pub struct Scope {
    pub id: String,
    /// The engine this scope's containers live on.
    pub engine: Engine,
    cli: DockerCli,
}

impl Scope {
    pub fn new(test: &str) -> Self {
        Self::on(Engine::Docker, test)
    }

    /// A scope on `engine` (the test image copied there first).
    pub fn on(engine: Engine, test: &str) -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        engine.image();
        let id = format!("{test}-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        Self { id, engine, cli: engine.cli() }
    }

    /// The docker CLI against this scope's engine.
    pub fn docker(&self, args: &[&str]) -> String {
        self.cli.docker(args)
    }

    /// `docker inspect` on this scope's engine.
    pub fn inspect(&self, id: &str) -> Value {
        self.cli.inspect(id)
    }

    /// `args` with `--docker-host` for this scope's engine first.
    fn with_engine<'a>(&self, args: &[&'a str]) -> Vec<&'a str> {
        via(self.engine.docker_host(), args)
    }

    pub fn label(&self) -> String {
        format!("{TEST_LABEL}={}", self.id)
    }

    /// A replicator managing this scope's containers only, running in this
    /// process (`replicator::server::run` on listeners bound to port 0).
    pub fn server(&self, args: &[&str]) -> Server {
        Server::start_selecting(&self.label(), &self.with_engine(args))
    }

    /// The same, reaching the engine through `docker_host`.
    pub fn server_via(&self, docker_host: &str, args: &[&str]) -> Server {
        Server::start_selecting(&self.label(), &via(Some(docker_host), args))
    }

    /// A `replicator serve` process, for tests that read its logs, signal it or kill it.
    pub fn process_server(&self, args: &[&str]) -> Server {
        Server::process_selecting(&self.label(), &self.with_engine(args))
    }

    /// A `replicator serve` process with the certificates in `certs`, so
    /// that two processes (one taking over from the other) answer the same clients.
    pub fn process_server_with(&self, certs: &Path, args: &[&str]) -> Server {
        let label = self.label();
        let mut all = vec!["--selector", label.as_str()];
        all.extend(self.with_engine(args));
        Server::start_with(certs, &all, &[])
    }

    /// The same, reaching the engine through `docker_host`.
    pub fn process_server_via(&self, docker_host: &str, args: &[&str]) -> Server {
        Server::process_selecting(&self.label(), &via(Some(docker_host), args))
    }

    /// Full ids of this scope's containers, in any state, that also pass `filter`.
    fn ids(&self, filter: Option<String>) -> Vec<String> {
        let scope = format!("label={}", self.label());
        let mut args = vec!["ps", "-aq", "--no-trunc", "--filter", &scope];
        if let Some(filter) = &filter {
            args.extend(["--filter", filter]);
        }
        self.docker(&args).lines().map(str::to_owned).collect()
    }

    /// This scope's containers in `state` (`created`, `running`...).
    pub fn containers_in(&self, state: &str) -> Vec<String> {
        self.ids(Some(format!("status={state}")))
    }

    /// A container name unique to this test.
    pub fn name(&self, suffix: &str) -> String {
        format!("{}-{suffix}", self.id)
    }

    /// `docker run -d` with this scope's label and name; returns the full id.
    pub fn run(&self, suffix: &str, args: &[&str]) -> String {
        let name = self.name(suffix);
        let label = self.label();
        let mut all = vec!["run", "-d", "--name", &name, "--label", &label];
        all.extend_from_slice(args);
        self.docker(&all)
    }

    /// `docker service create` with this scope's label on the service and its
    /// tasks, a name from `suffix`, and the local image as it is (no registry):
    /// `args` are the options, then the image and command. Returns the name.
    pub fn service(&self, suffix: &str, args: &[&str]) -> String {
        let name = self.name(suffix);
        let label = self.label();
        let mut all = vec!["service", "create", "--detach", "--no-resolve-image", "--name", &name];
        all.extend(["--label", &label, "--container-label", &label]);
        all.extend_from_slice(args);
        self.docker(&all);
        name
    }

    /// A long-running enabled container that serves HTTP on 8080.
    pub fn web(&self, suffix: &str, extra: &[&str]) -> String {
        let mut args = vec!["--label", "replicator.enable=true"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&[image(), "httpd", "-f", "-p", "8080"]);
        self.run(suffix, &args)
    }

    /// The container most tests start from: `web("web", extra)`. Its id,
    /// and the name of its group (named after it).
    pub fn web_group(&self, extra: &[&str]) -> (String, String) {
        (self.web("web", extra), self.name("web"))
    }

    pub fn network(&self, suffix: &str) -> String {
        let name = self.name(suffix);
        self.docker(&["network", "create", "--label", &self.label(), &name]);
        name
    }

    pub fn volume(&self, suffix: &str) -> String {
        let name = self.name(suffix);
        self.docker(&["volume", "create", "--label", &self.label(), &name]);
        name
    }

    /// Full ids of this scope's containers, in any state.
    pub fn containers(&self) -> Vec<String> {
        self.ids(None)
    }

    /// This scope's containers labelled as members of `group`.
    pub fn replicas_of(&self, group: &str) -> Vec<String> {
        self.ids(Some(format!("label=replicator.group={group}")))
    }
}

/// A server's `args` with `--docker-host docker_host` first, when there is one.
fn via<'a>(docker_host: Option<&'a str>, args: &[&'a str]) -> Vec<&'a str> {
    let mut all: Vec<&str> = docker_host.map(|h| vec!["--docker-host", h]).unwrap_or_default();
    all.extend_from_slice(args);
    all
}

impl Drop for Scope {
    fn drop(&mut self) {
        let filter = format!("label={}", self.label());
        let ids = self.cli.docker_try(&["ps", "-aq", "--filter", &filter]).unwrap_or_default();
        let ids: Vec<&str> = ids.lines().collect();
        if !ids.is_empty() {
            let _ = self.cli.docker_try(&[&["rm", "-f", "-v"], ids.as_slice()].concat());
        }
        let services = self.cli.docker_try(&["service", "ls", "-q", "--filter", &filter]).unwrap_or_default();
        for service in services.lines() {
            let _ = self.cli.docker_try(&["service", "rm", service]);
        }
        for kind in ["network", "volume"] {
            let list = self.cli.docker_try(&[kind, "ls", "-q", "--filter", &filter]).unwrap_or_default();
            for item in list.lines() {
                let _ = self.cli.docker_try(&[kind, "rm", item]);
            }
        }
    }
}

/// A certificate folder made by `replicator certs init`.
pub fn certs() -> tempfile::TempDir {
    certs_for(&[])
}

/// The same, the server's certificate also valid for each of `sans`.
pub fn certs_for(sans: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let mut command = Command::new(BIN);
    command.args(["certs", "init", "--out"]).arg(dir.path());
    for san in sans {
        command.args(["--san", san]);
    }
    let out = command.output().unwrap();
    assert!(out.status.success(), "certs init failed: {}", String::from_utf8_lossy(&out.stderr));
    dir
}

/// A bundle for `identity` (`app:web`...) issued by the CA in `ca` with
/// `replicator certs issue`, written in a folder of `dir`.
pub fn issue_bundle(ca: &Path, identity: &str, dir: &Path) -> PathBuf {
    let out = dir.join(identity.replace([':', ','], "-"));
    let made = Command::new(BIN)
        .args(["certs", "issue", "--identity", identity, "--ca"])
        .arg(ca)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(made.status.success(), "certs issue {identity}: {}", String::from_utf8_lossy(&made.stderr));
    out
}

/// A running replicator: in this process (stopped on drop) or a
/// `replicator serve` process (killed on drop).
pub struct Server {
    child: Option<Owned>,
    in_process: Option<InProcess>,
    pub port: u16,
    pub admin_port: u16,
    pub certs: PathBuf,
    _certs_dir: Option<tempfile::TempDir>,
    logs: Arc<Mutex<Vec<String>>>,
}

impl Server {
    /// A server that manages nothing of the engine's (for tests of the API's edges).
    pub fn start(args: &[&str]) -> Self {
        let selector = format!("{TEST_LABEL}=nothing-{}", std::process::id());
        Self::start_selecting(&selector, args)
    }

    /// A server that manages only what carries `selector` (tests run in
    /// parallel: each server must leave the other tests' containers alone).
    pub fn start_selecting(selector: &str, args: &[&str]) -> Self {
        let dir = certs();
        let mut all = vec!["--selector", selector];
        all.extend_from_slice(args);
        let mut server = Self::in_process(dir.path(), &all);
        server._certs_dir = Some(dir);
        server
    }

    /// The same as a process of its own.
    pub fn process_selecting(selector: &str, args: &[&str]) -> Self {
        let dir = certs();
        let mut all = vec!["--selector", selector];
        all.extend_from_slice(args);
        let mut server = Self::start_with(dir.path(), &all, &[]);
        server._certs_dir = Some(dir);
        server
    }

    /// `replicator::server::run` on its own thread and runtime, as `serve` would run it.
    pub fn in_process(certs: &Path, args: &[&str]) -> Self {
        let certs_arg = certs.to_string_lossy().into_owned();
        let mut argv = vec!["--listen", "127.0.0.1:0", "--certs", &certs_arg];
        if !args.contains(&"--metrics-listen") {
            argv.extend(["--metrics-listen", "127.0.0.1:0"]);
        }
        argv.extend_from_slice(args);
        let serve = replicator::cli::parse_serve(argv).unwrap_or_else(|e| panic!("serve arguments: {e}"));
        let (ports_tx, ports_rx) = mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
            runtime.block_on(async move {
                let (listeners, config) = replicator::cli::prepare(serve).await.expect("replicator prepares");
                let ports = (listeners.api.local_addr().unwrap().port(), listeners.admin.local_addr().unwrap().port());
                ports_tx.send(ports).unwrap();
                replicator::server::run(listeners, config, async {
                    let _ = stopped.await;
                })
                .await;
            });
        });
        let (port, admin_port) = ports_rx.recv_timeout(Duration::from_secs(30)).expect("replicator starts in-process");
        Self {
            child: None,
            in_process: Some(InProcess { stop: Some(stop), thread: Some(thread) }),
            port,
            admin_port,
            certs: certs.to_owned(),
            _certs_dir: None,
            logs: Arc::default(),
        }
    }

    pub fn start_with(certs: &Path, args: &[&str], env: &[(&str, &str)]) -> Self {
        Self::launch(Command::new(BIN), certs, args, env)
    }

    /// A server whose open-file limit (soft and hard) is `nofile`, managing
    /// only this scope's containers: `ulimit -n` in a shell that then execs it.
    pub fn start_limited(scope: &Scope, nofile: u32, args: &[&str]) -> Self {
        let dir = certs();
        let mut command = Command::new("sh");
        command.args(["-c", &format!("ulimit -n {nofile}; exec \"$0\" \"$@\""), BIN]);
        let label = scope.label();
        let mut all = vec!["--selector", &label];
        all.extend_from_slice(args);
        let mut server = Self::launch(command, dir.path(), &all, &[]);
        server._certs_dir = Some(dir);
        server
    }

    /// Runs `command` (the binary, or what execs it) with `serve` and the
    /// harness's flags, and waits for both listeners to listen.
    fn launch(mut command: Command, certs: &Path, args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut child = command
            .args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json", "--certs"])
            .arg(certs)
            .args(if args.contains(&"--metrics-listen") { &[][..] } else { &["--metrics-listen", "127.0.0.1:0"][..] })
            .args(args)
            .envs(env.iter().copied())
            .env("REPLICATOR_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("replicator starts");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        let sink = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    if v["message"] == "api listening" || v["message"] == "admin listening" {
                        let _ = tx.send((
                            v["message"].as_str().unwrap_or_default().to_owned(),
                            v["addr"].as_str().unwrap_or_default().to_owned(),
                        ));
                    }
                }
                sink.lock().unwrap().push(line);
            }
        });
        let (mut port, mut admin_port) = (0, 0);
        while port == 0 || admin_port == 0 {
            let (what, addr) = rx.recv_timeout(Duration::from_secs(30)).unwrap_or_else(|_| {
                let _ = child.kill();
                panic!("replicator did not start: {:?}", logs.lock().unwrap());
            });
            let p: u16 = addr.rsplit(':').next().unwrap().parse().unwrap();
            if what == "api listening" {
                port = p;
            } else {
                admin_port = p;
            }
        }
        let child = Some(Owned(child));
        Self { child, in_process: None, port, admin_port, certs: certs.to_owned(), _certs_dir: None, logs }
    }

    pub fn url(&self) -> String {
        format!("https://localhost:{}", self.port)
    }

    pub fn client(&self) -> ApiClient {
        ApiClient::new(&self.url(), &self.certs).expect("client certificates load")
    }

    /// The process's log lines so far (a process server only).
    pub fn logs(&self) -> Vec<String> {
        assert!(self.child.is_some(), "logs are read from a process server: use Scope::process_server");
        self.logs.lock().unwrap().clone()
    }

    /// The process id (a process server only).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("a process server: use Scope::process_server").id()
    }

    /// Sends a signal (`TERM`, `KILL`...) to the server process.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill").args([&format!("-{name}"), &self.pid().to_string()]).status().unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit; `None` if it is still running after `within`.
    pub fn wait_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        let child = &mut self.child.as_mut().expect("a process server").0;
        poll_until(within, || child.try_wait().unwrap()).ok()
    }

    /// A GET on the plain-HTTP admin listener: (status, body).
    pub fn admin_get(&self, path: &str) -> (u16, String) {
        plain_http(self.admin_port, "GET", path).expect("the admin listener answers")
    }
}

/// A child process killed (and reaped) on drop.
pub struct Owned(pub Child);

impl Owned {
    pub fn id(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Owned {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The thread an in-process server runs on; stopped and joined on drop.
struct InProcess {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for InProcess {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// One plain-HTTP/1.1 request to 127.0.0.1:port: (status, body), or `None`
/// when nothing answers. The body is read by its Content-Length when there
/// is one (some servers keep the connection open whatever we ask), else to
/// the end.
pub fn plain_http(port: u16, method: &str, path: &str) -> Option<(u16, String)> {
    http_request(port, method, path, &[], "")
}

/// `plain_http` with extra headers and a body.
pub fn http_request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Option<(u16, String)> {
    use std::io::Read;
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    let extra: String = headers.iter().map(|(k, v)| format!("{k}: {v}\r\n")).collect();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    let mut received = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let n = stream.read(&mut chunk).ok()?;
        received.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&received);
        let Some((head, body)) = text.split_once("\r\n\r\n") else {
            if n == 0 {
                return None;
            }
            continue;
        };
        let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok())?;
        let length = head
            .lines()
            .find_map(|l| l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case("content-length")))
            .and_then(|(_, v)| v.trim().parse::<usize>().ok());
        match length {
            Some(length) if body.len() >= length => return Some((status, body[..length].to_owned())),
            None if n == 0 => return Some((status, body.to_owned())),
            _ if n == 0 => return None,
            _ => {}
        }
    }
}

/// A TCP port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

pub fn write_file(path: &Path, text: &str) {
    std::fs::File::create(path).unwrap().write_all(text.as_bytes()).unwrap();
}

/// Writes `text` to the file `name` in `dir`: its path.
pub fn write_in(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    write_file(&path, text);
    path
}

/// A JSON request through the server's client.
pub async fn call(
    server: &Server,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> replicator::cli::remote::ApiResponse {
    server.client().request(method, path, body.as_ref()).await.expect("the server answers")
}

/// `GET /v1/groups/{name}` through `client`: the group, or what came instead.
pub async fn try_group(client: &ApiClient, name: &str) -> Result<Value, String> {
    match client.get(&format!("/v1/groups/{name}")).await {
        Ok(r) if r.status == StatusCode::OK => Ok(r.json()),
        Ok(r) => Err(format!("HTTP {}: {}", r.status, r.text())),
        Err(e) => Err(e.to_string()),
    }
}

/// `GET /v1/groups/{name}`: the group, failing the test on any other answer.
pub async fn group(server: &Server, name: &str) -> Value {
    try_group(&server.client(), name).await.unwrap_or_else(|e| panic!("GET /v1/groups/{name}: {e}"))
}

/// Ids of a group's members in `state` (`running`...).
pub fn members_in(group: &Value, state: &str) -> Vec<String> {
    let members = group["members"].as_array().cloned().unwrap_or_default();
    members.iter().filter(|m| m["state"] == state).map(|m| m["id"].as_str().unwrap().to_owned()).collect()
}

/// Waits until the group counts `want` replicas, all running: the group then.
pub async fn wait_for_size(server: &Server, name: &str, want: usize, within: Duration) -> Value {
    eventually_async(&format!("group {name} to reach {want} running members"), within, async || {
        let g = group(server, name).await;
        ready_if(g["replicas"].as_u64() == Some(want as u64) && members_in(&g, "running").len() == want, g)
    })
    .await
}

/// `docker run`'s options for `labels`: `--label` before each.
pub fn labels<'a>(labels: &[&'a str]) -> Vec<&'a str> {
    labels.iter().flat_map(|label| ["--label", label]).collect()
}

/// `docker run` options for an original autoscaled on the pushed `load`
/// metric (10 a member), with `more` labels (bounds, dry-run...).
pub fn autoscaled_on_load<'a>(more: &[&'a str]) -> Vec<&'a str> {
    labels(&[&["replicator.autoscale.metric=load", "replicator.autoscale.target=10"][..], more].concat())
}

/// `serve` options for an autoscaler that reacts within seconds: it
/// evaluates every second and scales down after 3 s of lower recommendations.
pub const QUICK_AUTOSCALER: [&str; 4] = ["--autoscale-interval", "1s", "--scale-down-stabilization", "3s"];

/// Runs the replicator binary as a client of `server`.
pub fn cli(server: &Server, args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .args(args)
        .args(["--server", &server.url(), "--certs"])
        .arg(&server.certs)
        .output()
        .expect("replicator runs")
}

/// Swarm mode changes the whole engine: its tests take turns (`write`).
/// Joining and leaving a swarm also upsets the engine's embedded DNS for a
/// moment, so tests whose containers find each other by name hold `read`;
/// so does a test that loads the engine for minutes, while the Swarm tests
/// autoscale on the CPU their tasks get.
pub static SWARM: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());
