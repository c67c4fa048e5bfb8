//! A two-node Docker Swarm: the machine's engine as the manager, and a second
//! dockerd, in a network namespace of its own, as the worker.
//!
//! The namespace (`rs2-<pid>-<n>`) is joined to the host by a veth pair:
//! `h-<ns>` (10.79.0.1/24) on the host, `n-<ns>` (10.79.0.2/24) inside, with
//! a default route through the host end. The worker runs from a temporary
//! folder (`/tmp/rs2-<pid>-*`: config, data root, exec root, pid file,
//! socket, log) and is entered with nsenter (`ip netns exec` remounts /sys,
//! hiding the cgroups from dockerd).
//!
//! Its dockerd runs with `DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1`: a worker
//! otherwise asks the registry for every task's image first, even one created
//! with `--no-resolve-image` and present locally, and from the namespace that
//! lookup times out (a task took 20.6 s to start instead of 0.8 s).
//!
//! Everything is torn down on drop, even after a failed test; a run killed
//! before its drop leaves things that the next `start` sweeps (a namespace,
//! veth, dockerd or mount of a process that no longer exists). A host engine
//! already in a swarm is never touched: `start` refuses. (A killed run's
//! `docker_gwbridge` cannot be told from one of the operator's: it stays.)

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use super::{docker, docker_try, eventually, poll_until, stdout_or_stderr, DockerCli};

/// The manager's address (the host end of the veth pair).
pub const MANAGER_ADDR: &str = "10.79.0.1";
/// The worker's address (the namespace's end).
pub const WORKER_ADDR: &str = "10.79.0.2";
const GWBRIDGE: &str = "docker_gwbridge";
const PREFIX: &str = "rs2-";
const TASK_FILTER: &str = "label=com.docker.swarm.task.id";

pub struct TwoNodeSwarm {
    /// The docker CLI against the worker's engine.
    pub worker: DockerCli,
    namespace: String,
    dir: tempfile::TempDir,
    dockerd: Option<Child>,
    /// `docker_gwbridge` did not exist on the host before the swarm.
    made_gwbridge: bool,
    manager_id: String,
    worker_id: String,
}

/// Runs a command; `Err(stderr)` when it fails.
fn run_try(program: &str, args: &[&str]) -> Result<String, String> {
    stdout_or_stderr(Command::new(program).args(args).output().map_err(|e| format!("{program}: {e}"))?)
}

fn run(program: &str, args: &[&str]) -> String {
    run_try(program, args).unwrap_or_else(|e| panic!("{program} {args:?} failed: {e}"))
}

/// Whether a `docker ps -q` answered with no container (an engine that does not answer has none left to wait for).
fn no_tasks(ps: Result<String, String>) -> bool {
    ps.map_or(true, |ids| ids.is_empty())
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// The pid in a name made by this harness (`rs2-<pid>-...`, `h-rs2-<pid>-...`).
fn owner(name: &str) -> Option<u32> {
    let rest = name.strip_prefix("h-").unwrap_or(name).strip_prefix(PREFIX)?;
    rest.split('-').next()?.parse().ok()
}

/// Sends `signal` to `pid` and waits up to `within` for it to be gone.
fn stop_pid(pid: u32, signal: &str, within: Duration) -> bool {
    let _ = Command::new("kill").args([&format!("-{signal}"), &pid.to_string()]).status();
    poll_until(within, || (!alive(pid)).then_some(())).is_ok()
}

/// Unmounts everything mounted under `dir`, deepest first. The worker's dockerd
/// bind-mounts its namespace at `exec/netns/default` and leaves it mounted
/// when it exits: that mount alone keeps the namespace (and the veth) alive.
fn unmount_under(dir: &Path) {
    let prefix = format!("{}/", dir.display());
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    let mut points: Vec<&str> =
        mounts.lines().filter_map(|l| l.split_whitespace().nth(1)).filter(|p| p.starts_with(&prefix)).collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for point in points {
        let _ = run_try("umount", &["-l", point]);
    }
}

/// Removes what a run of this harness killed before its drop left behind:
/// its worker dockerd, mounts and folder, namespace and host-side veth.
fn sweep_leftovers() {
    if let Ok(entries) = std::fs::read_dir("/tmp") {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(pid) = owner(&name) else { continue };
            if alive(pid) {
                continue;
            }
            let dir = entry.path();
            if !dir.join("daemon.json").is_file() {
                continue; // not a worker's folder
            }
            if let Some(worker) =
                std::fs::read_to_string(dir.join("docker.pid")).ok().and_then(|p| p.trim().parse().ok())
            {
                let comm = std::fs::read_to_string(format!("/proc/{worker}/comm")).unwrap_or_default();
                if comm.trim() == "dockerd" && !stop_pid(worker, "TERM", Duration::from_secs(60)) {
                    stop_pid(worker, "KILL", Duration::from_secs(10));
                }
            }
            unmount_under(&dir);
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
    for namespace in run_try("ip", &["netns", "list"]).unwrap_or_default().lines() {
        let name = namespace.split_whitespace().next().unwrap_or_default();
        if owner(name).is_some_and(|pid| !alive(pid)) {
            let _ = run_try("ip", &["netns", "del", name]);
        }
    }
    for line in run_try("ip", &["-o", "link", "show"]).unwrap_or_default().lines() {
        // "7: h-rs2-123-0@if6: <...>"
        let Some(name) = line.split(':').nth(1).map(|n| n.trim().split('@').next().unwrap_or_default()) else {
            continue;
        };
        if name.starts_with("h-") && owner(name).is_some_and(|pid| !alive(pid)) {
            let _ = run_try("ip", &["link", "del", name]);
        }
    }
}

impl TwoNodeSwarm {
    /// Starts the worker engine and the two-node swarm; waits for both nodes to be Ready.
    pub fn start() -> Self {
        Self::start_joining("worker")
    }

    /// The same, the second node joining as a manager too: what runs on
    /// managers only (replicator, with the lease in the Raft store) gets a
    /// node on each. Two managers keep no quorum when one goes: a test of
    /// this swarm stops no node.
    pub fn start_two_managers() -> Self {
        Self::start_joining("manager")
    }

    fn start_joining(role: &str) -> Self {
        let state = docker(&["info", "--format", "{{.Swarm.LocalNodeState}}"]);
        assert!(
            state == "inactive",
            "the host engine is already in a swarm (LocalNodeState={state}): a two-node swarm test will not \
             touch it; `docker swarm leave --force` if it is a leftover"
        );
        sweep_leftovers();

        static NEXT: AtomicU32 = AtomicU32::new(0);
        let namespace = format!("{PREFIX}{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        assert!(namespace.len() <= 13, "interface names h-{namespace} must fit in 15 characters");
        let made_gwbridge = docker_try(&["network", "inspect", GWBRIDGE]).is_err();
        let dir =
            tempfile::Builder::new().prefix(&format!("{PREFIX}{}-", std::process::id())).tempdir_in("/tmp").unwrap();
        let socket = format!("unix://{}", dir.path().join("docker.sock").display());
        let worker = DockerCli::new("the worker", vec![("DOCKER_HOST", socket)]);
        let (manager_id, worker_id) = (String::new(), String::new());
        let mut swarm = Self { worker, namespace, dir, dockerd: None, made_gwbridge, manager_id, worker_id };
        // From here on, a failure drops `swarm`, which undoes whatever was done.
        swarm.network();
        swarm.start_worker();
        docker(&["swarm", "init", "--advertise-addr", MANAGER_ADDR]);
        let token = docker(&["swarm", "join-token", "-q", role]);
        let manager_join = format!("{MANAGER_ADDR}:2377");
        swarm.worker.docker(&["swarm", "join", "--advertise-addr", WORKER_ADDR, "--token", &token, &manager_join]);
        eventually("both swarm nodes to be Ready", Duration::from_secs(60), || {
            let nodes = docker(&["node", "ls", "--format", "{{.Status}}"]);
            (nodes.lines().filter(|s| *s == "Ready").count() == 2).then_some(())
        });
        swarm.manager_id = docker(&["info", "--format", "{{.Swarm.NodeID}}"]);
        swarm.worker_id = swarm.worker.docker(&["info", "--format", "{{.Swarm.NodeID}}"]);
        swarm
    }

    fn host_if(&self) -> String {
        format!("h-{}", self.namespace)
    }

    fn ns_if(&self) -> String {
        format!("n-{}", self.namespace)
    }

    fn in_ns(&self, args: &[&str]) {
        let enter = format!("--net=/var/run/netns/{}", self.namespace);
        let mut all = vec![enter.as_str()];
        all.extend_from_slice(args);
        run("nsenter", &all);
    }

    /// The namespace, the veth pair, their addresses and the namespace's default route.
    fn network(&self) {
        let (ns, host_if, ns_if) = (self.namespace.as_str(), self.host_if(), self.ns_if());
        run("ip", &["netns", "add", ns]);
        run("ip", &["link", "add", &host_if, "type", "veth", "peer", "name", &ns_if]);
        run("ip", &["link", "set", &ns_if, "netns", ns]);
        run("ip", &["addr", "add", &format!("{MANAGER_ADDR}/24"), "dev", &host_if]);
        run("ip", &["link", "set", &host_if, "up"]);
        self.in_ns(&["ip", "link", "set", "lo", "up"]);
        self.in_ns(&["ip", "addr", "add", &format!("{WORKER_ADDR}/24"), "dev", &ns_if]);
        self.in_ns(&["ip", "link", "set", &ns_if, "up"]);
        self.in_ns(&["ip", "route", "add", "default", "via", MANAGER_ADDR]);
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The worker's dockerd (its own config file: the host's daemon.json
    /// names a data root and storage driver of its own); waits for it to answer.
    ///
    /// It also gets a mount namespace with its own `/run` and its own
    /// `/var/lib/docker/swarm`, as a real node has: a task that mounts
    /// `/var/run/docker.sock` or the node's Swarm certificates (replicator's
    /// agent) must reach the worker's, not the manager's. It answers there
    /// and, for the test, on a socket in its folder.
    fn start_worker(&mut self) {
        /// The worker's own `/run` and Swarm folder, then its dockerd.
        const WORKER_MOUNTS: &str = r#"mount -t tmpfs tmpfs /run \
            && mkdir -p "$WORKER_SWARM_DIR" /var/lib/docker/swarm \
            && mount --bind "$WORKER_SWARM_DIR" /var/lib/docker/swarm \
            && exec dockerd -H unix:///run/docker.sock "$@""#;
        let d = |name: &str| self.path(name).display().to_string();
        std::fs::write(self.path("daemon.json"), "{}").unwrap();
        let log = std::fs::File::create(self.path("dockerd.log")).unwrap();
        let child = Command::new("nsenter")
            .arg(format!("--net=/var/run/netns/{}", self.namespace))
            .args(["unshare", "--mount", "--propagation", "private", "--"])
            .args(["sh", "-c", WORKER_MOUNTS, "sh"])
            .env("WORKER_SWARM_DIR", d("data/swarm"))
            .arg(format!("--config-file={}", d("daemon.json")))
            .arg(format!("--data-root={}", d("data")))
            .arg(format!("--exec-root={}", d("exec")))
            .arg(format!("--pidfile={}", d("docker.pid")))
            .args(["-H", &format!("unix://{}", d("docker.sock")), "--storage-driver=vfs"])
            .env("DOCKER_SERVICE_PREFER_OFFLINE_IMAGE", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("dockerd starts");
        self.dockerd = Some(child);
        let answered = poll_until(Duration::from_secs(60), || {
            if let Some(status) = self.dockerd.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                self.dockerd = None;
                panic!("the worker's dockerd exited ({status}):\n{}", self.dockerd_log());
            }
            self.worker.docker_try(&["version", "--format", "{{.Server.Version}}"])
        });
        if let Err(last) = answered {
            panic!("the worker's dockerd did not answer within 60 s ({last}):\n{}", self.dockerd_log());
        }
    }

    pub fn manager_node_id(&self) -> &str {
        &self.manager_id
    }

    pub fn worker_node_id(&self) -> &str {
        &self.worker_id
    }

    /// The manager's address, where the worker reaches the host.
    pub fn manager_addr(&self) -> &'static str {
        MANAGER_ADDR
    }

    /// Stops the worker's dockerd (SIGTERM by its pid file, as a node going
    /// away): its containers stop with it (a task that ignores SIGTERM takes
    /// its 10 s stop timeout) and the manager sees the node Down as the
    /// process exits. Waits for the exit, up to a minute.
    pub fn stop_worker(&mut self) {
        let Some(mut child) = self.dockerd.take() else { return };
        let pid = std::fs::read_to_string(self.path("docker.pid"))
            .ok()
            .and_then(|p| p.trim().parse::<u32>().ok())
            .unwrap_or_else(|| child.id());
        let _ = Command::new("kill").args(["-TERM", &pid.to_string()]).status();
        if poll_until(Duration::from_secs(60), || child.try_wait().ok().flatten()).is_err() {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the worker's dockerd did not exit within 60 s of SIGTERM:\n{}", self.dockerd_log());
        }
        unmount_under(self.dir.path());
    }

    /// Whether the worker's dockerd is still running.
    pub fn worker_running(&self) -> bool {
        self.dockerd.is_some()
    }

    /// The worker's dockerd log so far.
    pub fn dockerd_log(&self) -> String {
        std::fs::read_to_string(self.path("dockerd.log")).unwrap_or_default()
    }

    /// Polls `done` for up to `within`; a teardown goes on (with a note) when it never is.
    fn settle(&self, what: &str, within: Duration, mut done: impl FnMut() -> bool) {
        if poll_until(within, || done().then_some(())).is_err() {
            eprintln!("two-node swarm teardown: gave up waiting for {what}");
        }
    }

    fn teardown(&mut self) {
        let manager_active =
            docker_try(&["info", "--format", "{{.Swarm.LocalNodeState}}"]).is_ok_and(|s| s == "active");
        if manager_active {
            for stack in docker_try(&["stack", "ls", "--format", "{{.Name}}"]).unwrap_or_default().lines() {
                let _ = docker_try(&["stack", "rm", stack]);
            }
            let services = docker_try(&["service", "ls", "-q"]).unwrap_or_default();
            let services: Vec<&str> = services.lines().collect();
            if !services.is_empty() {
                let _ = docker_try(&[&["service", "rm"], services.as_slice()].concat());
            }
            self.settle("the host's task containers to go", Duration::from_secs(30), || {
                no_tasks(docker_try(&["ps", "-aq", "--filter", TASK_FILTER]))
            });
            if self.dockerd.is_some() {
                self.settle("the worker's task containers to go", Duration::from_secs(30), || {
                    no_tasks(self.worker.docker_try(&["ps", "-aq", "--filter", TASK_FILTER]))
                });
            }
        }
        if self.dockerd.is_some() {
            let _ = self.worker.docker_try(&["swarm", "leave", "--force"]);
        }
        if manager_active {
            if let Err(e) = docker_try(&["swarm", "leave", "--force"]) {
                eprintln!("two-node swarm teardown: the host engine did not leave the swarm: {e}");
            }
        }
        // Whatever task container survived the services' removal.
        let leftover = docker_try(&["ps", "-aq", "--filter", TASK_FILTER]).unwrap_or_default();
        let leftover: Vec<&str> = leftover.lines().collect();
        if !leftover.is_empty() {
            let _ = docker_try(&[&["rm", "-f", "-v"], leftover.as_slice()].concat());
        }
        if let Some(mut child) = self.dockerd.take() {
            let pid = std::fs::read_to_string(self.path("docker.pid"))
                .ok()
                .and_then(|p| p.trim().parse::<u32>().ok())
                .unwrap_or_else(|| child.id());
            let _ = Command::new("kill").args(["-TERM", &pid.to_string()]).status();
            self.settle("the worker's dockerd to exit", Duration::from_secs(60), || {
                child.try_wait().ok().flatten().is_some()
            });
            let _ = child.kill();
            let _ = child.wait();
        }
        unmount_under(self.dir.path());
        let _ = run_try("ip", &["netns", "del", &self.namespace]);
        let host_if = self.host_if();
        self.settle("the veth pair to go with the namespace", Duration::from_secs(10), || {
            run_try("ip", &["link", "show", &host_if]).is_err()
        });
        let _ = run_try("ip", &["link", "del", &host_if]);
        // Leaving removes the swarm's networks; ingress too, normally.
        if docker_try(&["network", "inspect", "ingress"]).is_ok_and(|j| j.contains("\"Scope\": \"swarm\"")) {
            let _ = docker_try(&["network", "rm", "ingress"]);
        }
        if self.made_gwbridge {
            let _ = docker_try(&["network", "rm", GWBRIDGE]);
        }
    }
}

impl Drop for TwoNodeSwarm {
    fn drop(&mut self) {
        self.teardown();
    }
}
