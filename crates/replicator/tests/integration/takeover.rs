//! A new `replicator serve` taking over from a running one on the same
//! control socket: the listening sockets pass from one process to the other
//! (`SCM_RIGHTS`), so no command through a Redis group's front fails and no
//! request nginx sends to the wake listener goes unanswered; the old
//! process keeps splicing its open connections until they end, acting moves
//! to the new process, and the old one exits 0.

use std::time::{Duration, Instant};

use http::{Method, StatusCode};
use serde_json::json;

use crate::common::lb::Nginx;
use crate::common::redis::{ping, redis_image, Load};
use crate::common::{call, certs, eventually, free_port, http_request, image, labels, poll_until, Scope};

/// A redis group behind a front on `port`, probed ready once Redis accepts.
fn redis_group(scope: &Scope, port: u16) -> String {
    let network = scope.network("net");
    let front = format!("replicator.front.port={port}");
    let on = format!("replicator.front.network={network}");
    let mut args = labels(&["replicator.enable=true", "replicator.max=4", "replicator.front.target=6379"]);
    args.extend(["--label", &front, "--label", &on, "--label", "replicator.ready=tcp:6379,period=500ms"]);
    args.extend(["--network", &network, redis_image()]);
    scope.run("cache", &args);
    scope.name("cache")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_serve_takes_over_the_listeners_fronts_and_acting_without_a_failed_command() {
    let scope = Scope::new("takeover");
    let port = free_port();
    let name = redis_group(&scope, port);
    let certs = certs();
    let control = tempfile::tempdir().unwrap();
    let socket = control.path().join("control.sock");
    let ports = port.to_string();
    let args = [
        "--front-ports",
        &ports,
        "--front-address",
        "127.0.0.1",
        "--control-socket",
        socket.to_str().unwrap(),
        "--shutdown-grace",
        "60s",
    ];
    let mut old = scope.process_server_with(certs.path(), &args);
    eventually("the front answers", Duration::from_secs(30), || ping("127.0.0.1", port).ok());

    let load = Load::start(port, 8, 4);
    eventually("the load runs", Duration::from_secs(10), || (load.answered() > 50).then_some(()));
    let new = scope.process_server_with(certs.path(), &args);
    assert_eq!((new.port, new.admin_port), (old.port, old.admin_port), "the new process serves on the old sockets");
    let said = |server: &crate::common::Server, what: &str| server.logs().iter().any(|l| l.contains(what));
    assert!(said(&new, "taking over from the running replicator"), "{:#?}", new.logs());
    let handed = poll_until(Duration::from_secs(30), || {
        old.logs().iter().any(|l| l.contains("acting handed over")).then_some(())
    });
    assert!(handed.is_ok(), "the old process hands acting over: {:#?}", old.logs());

    let released =
        poll_until(Duration::from_secs(10), || said(&new, "the predecessor handed acting over").then_some(()));
    assert!(released.is_ok(), "the new process acts once the old one says so: {:#?}", new.logs());
    let (_, metrics) = new.admin_get("/metrics");
    let acting: Vec<&str> = metrics.lines().filter(|l| l.starts_with("replicator_leader")).collect();
    assert_eq!(acting, ["replicator_leader 1", "replicator_leader_changes_total 1"], "{metrics}");

    // The new process acts: a scale through it is made, once.
    let body = json!({"replicas": 2, "wait": "ready", "timeout": "60s"});
    let scaled = call(&new, Method::PUT, &format!("/v1/groups/{name}/replicas"), Some(body)).await;
    assert_eq!(scaled.status, StatusCode::OK, "{}", scaled.text());
    assert_eq!(scope.containers_in("running").len(), 2, "one replica made, by one process");

    // The kept connections stay with the old process, which splices them on.
    let after = load.answered();
    let served_until = Instant::now() + Duration::from_secs(15);
    while Instant::now() < served_until {
        assert!(old.wait_exit(Duration::from_millis(500)).is_none(), "the old process left while splicing");
    }
    assert!(load.answered() > after + 15 * 4 * 10, "commands went on for 15 s: {} then {}", after, load.answered());
    let failures = load.finish();
    assert!(failures.is_empty(), "{} failed commands: {:?}", failures.len(), &failures[..failures.len().min(5)]);
    let status = old.wait_exit(Duration::from_secs(20)).expect("the old process ends once its connections do");
    assert!(status.success(), "the old process exits 0: {status}");
    assert!(socket.exists(), "the control socket is the new process's now");
    ping("127.0.0.1", port).expect("the new process serves the front");
}

/// An app that listens 3 s after it starts: a wake from `stop` takes that long.
const SLOW_START: &str = "sleep 3; mkdir -p /www && echo awake > /www/index.html && exec httpd -f -p 8080 -h /www";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_through_nginx_held_for_a_sleeping_group_across_a_takeover_all_get_the_apps_answer() {
    let scope = Scope::new("takeoverwake");
    let network = scope.network("net");
    let wake_network = format!("replicator.wake.network={network}");
    let mut app = labels(&["replicator.enable=true", "replicator.min=0", "replicator.sleep=stop"]);
    app.extend(["--label", "replicator.wake.port=8080", "--label", &wake_network]);
    app.extend(["--network", &network, image(), "sh", "-c", SLOW_START]);
    scope.run("web", &app);
    let name = scope.name("web");
    let certs = certs();
    let control = tempfile::tempdir().unwrap();
    let socket = control.path().join("control.sock");
    let wake_port = free_port();
    let wake = format!("127.0.0.1:{wake_port}");
    let args = ["--wake-listen", &wake, "--control-socket", socket.to_str().unwrap(), "--wake-timeout", "60s"];
    let old = scope.process_server_with(certs.path(), &args);
    let asleep = call(&old, Method::PUT, &format!("/v1/groups/{name}/replicas"), Some(json!({"replicas": 0}))).await;
    assert_eq!(asleep.status, StatusCode::OK, "{}", asleep.text());

    // nginx sends the group's requests to the wake listener (the guide's snippet).
    let dir = tempfile::tempdir().unwrap();
    let upstreams = dir.path().join("upstreams.conf");
    std::fs::write(&upstreams, format!("upstream {name} {{ server {wake}; }}\n")).unwrap();
    let headers = format!("proxy_set_header X-Replicator-Group {name}; proxy_read_timeout 90s;");
    let nginx = Nginx::start_with(dir.path(), free_port(), &upstreams, &name, &headers);

    // 30 requests held by the old process (which starts the wake), 30 more
    // reaching whichever process accepts during and after the takeover.
    let port = nginx.port;
    let request = || std::thread::spawn(move || http_request(port, "GET", "/", &[], ""));
    let mut held: Vec<_> = (0..30).map(|_| request()).collect();
    let holding = poll_until(Duration::from_secs(10), || {
        old.logs().iter().any(|l| l.contains("held; waking the group")).then_some(())
    });
    assert!(holding.is_ok(), "the old process holds the requests: {:#?}", old.logs());
    let new = scope.process_server_with(certs.path(), &args);
    held.extend((0..30).map(|_| request()));
    let answers: Vec<(u16, String)> = held.into_iter().map(|t| t.join().unwrap().expect("an answer")).collect();
    let wrong: Vec<&(u16, String)> = answers.iter().filter(|(s, body)| *s != 200 || body.trim() != "awake").collect();
    assert!(wrong.is_empty(), "{} of 60 did not get the app's answer: {:?}", wrong.len(), &wrong[..wrong.len().min(3)]);
    let group = call(&new, Method::GET, &format!("/v1/groups/{name}"), None).await;
    let group = group.json();
    assert_eq!(
        (&group["replicas"], &group["asleep"]),
        (&json!(1), &json!(false)),
        "woken once, to one member: {group}"
    );
}

/// `socat` as user nobody: what it got back from the control socket at
/// `path` after asking for a takeover, or why it could not connect.
fn ask_as_nobody(path: &std::path::Path) -> Result<String, String> {
    let out = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "sh", "-c"])
        .arg(format!("printf 'takeover v1\\n' | socat -t 5 - UNIX-CONNECT:{}", path.display()))
        .output()
        .expect("setpriv runs");
    match out.status.success() {
        true => Ok(String::from_utf8_lossy(&out.stdout).into_owned()),
        false => Err(String::from_utf8_lossy(&out.stderr).into_owned()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_user_can_neither_reach_the_control_socket_nor_take_over_through_it() {
    use std::os::unix::fs::PermissionsExt;
    let scope = Scope::new("takeoverstranger");
    let certs = certs();
    let control = tempfile::tempdir().unwrap();
    let socket = control.path().join("run/control.sock");
    let server = scope.process_server_with(certs.path(), &["--control-socket", socket.to_str().unwrap()]);
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!((mode(&socket), mode(socket.parent().unwrap())), (0o600, 0o700));
    let refused = ask_as_nobody(&socket).expect_err("the folder and the socket are the owner's only");
    assert!(refused.to_lowercase().contains("permission denied"), "{refused}");

    // Even with the file opened to everyone, the kernel tells the peer's user: no sockets go out.
    for (path, mode) in [(control.path(), 0o755), (socket.parent().unwrap(), 0o755), (socket.as_path(), 0o666)] {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    let answer = ask_as_nobody(&socket).unwrap_or_default();
    assert!(answer.is_empty(), "nothing is handed to another user: {answer:?}");
    let logged = poll_until(Duration::from_secs(10), || {
        server.logs().iter().any(|l| l.contains("takeover request on the control socket was refused")).then_some(())
    });
    assert!(logged.is_ok(), "the refusal is logged: {:#?}", server.logs());
    let (status, _) = server.admin_get("/healthz");
    assert_eq!(status, 200, "the server serves on, acting");
    assert!(server.logs().iter().all(|l| !l.contains("sockets handed over")));
}
