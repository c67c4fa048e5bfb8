//! Scale to zero with wake on request, behind a real nginx: the upstream
//! points at replicator's wake listener while the group sleeps; the first
//! requests are held, the group woken, and every one answered by the member.

use std::time::Duration;

use http::{Method, StatusCode};
use serde_json::json;

use crate::common::lb::{upstream_servers, Nginx, Upstreams};
use crate::common::{
    call, docker, eventually, eventually_async, free_port, group, http_request, image, labels, members_in, ready_if,
    Scope, QUICK_AUTOSCALER,
};

const SERVE_OK: &str = "mkdir -p /www && echo ok > /www/index.html && exec httpd -f -p 8080 -h /www";

/// 51 requests through nginx at once: all must get the member's 200.
async fn burst(port: u16) -> Vec<(u16, String)> {
    let requests = (0..51).map(|_| {
        tokio::task::spawn_blocking(move || http_request(port, "GET", "/", &[], "").unwrap_or((0, String::new())))
    });
    futures_util::future::join_all(requests).await.into_iter().map(Result::unwrap).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sleeping_group_behind_nginx_wakes_on_the_first_requests_and_the_autoscaler_puts_it_back_to_sleep() {
    let scope = Scope::new("sleep");
    let network = scope.network("net");
    let mut args = labels(&[
        "replicator.enable=true",
        "replicator.min=0",
        "replicator.autoscale.min=0",
        "replicator.autoscale.metric=rps",
        "replicator.autoscale.target=10",
        "replicator.wake.port=8080",
    ]);
    let wake_network = format!("replicator.wake.network={network}");
    args.extend(["--label", &wake_network, "--network", &network, image(), "sh", "-c", SERVE_OK]);
    let original = scope.run("web", &args);
    let name = scope.name("web");
    let wake_port = free_port();
    let wake = format!("127.0.0.1:{wake_port}");
    let server = scope.server(&[&["--wake-listen", &wake, "--metric-ttl", "30s"][..], &QUICK_AUTOSCALER].concat());

    let slept = call(&server, Method::PUT, &format!("/v1/groups/{name}/replicas"), Some(json!({"replicas": 0}))).await;
    assert_eq!(slept.status, StatusCode::OK, "{}", slept.text());
    let g = slept.json();
    assert_eq!((g["replicas"].as_u64(), g["asleep"].as_bool()), (Some(0), Some(true)), "{g}");
    assert_eq!(docker(&["inspect", "-f", "{{.State.Status}}", &original]), "paused", "paused, never removed");

    let dir = tempfile::tempdir().unwrap();
    let upstreams = dir.path().join("upstreams.conf");
    std::fs::write(&upstreams, format!("upstream {name} {{ server {wake}; }}\n")).unwrap();
    // The guide's snippet (docs/guide/scale-to-zero.md): the group only, and no client-supplied X-Replicator-* passes.
    let headers = format!(
        "proxy_set_header X-Replicator-Group {name}; proxy_set_header X-Replicator-Port \"\"; \
         proxy_set_header X-Replicator-Network \"\"; proxy_read_timeout 90s;"
    );
    let nginx = Nginx::start_with(dir.path(), free_port(), &upstreams, &name, &headers);
    let reload = nginx.synchronous_reload("");
    let extra = ["--wake", wake.as_str()];
    let _follower = Upstreams::nginx_following(&server, &name, &upstreams, &network, &reload).extra(&extra).follow();
    eventually("the upstream on the waker", Duration::from_secs(30), || {
        (upstream_servers(&upstreams) == [wake.clone()]).then_some(())
    });

    let answers = burst(nginx.port).await;
    let ok = answers.iter().filter(|(status, body)| *status == 200 && body.trim() == "ok").count();
    assert_eq!(ok, 51, "every held request got the woken member's answer: {answers:?}");
    assert_eq!(group(&server, &name).await["asleep"], false);
    eventually("the upstream on the member", Duration::from_secs(30), || {
        let servers = upstream_servers(&upstreams);
        (servers.len() == 1 && servers[0].ends_with(":8080")).then_some(())
    });

    // Idle: every member at or below the activation (0) for the stabilization window.
    let push = json!({"container": name, "metric": "rps", "value": 0});
    eventually_async("the autoscaler to put the idle group to sleep", Duration::from_secs(30), async || {
        assert_eq!(call(&server, Method::POST, "/v1/metrics", Some(push.clone())).await.status, StatusCode::ACCEPTED);
        let g = group(&server, &name).await;
        ready_if(g["asleep"] == true, g)
    })
    .await;
    eventually("the upstream back on the waker", Duration::from_secs(30), || {
        (upstream_servers(&upstreams) == [wake.clone()]).then_some(())
    });
    let later = tokio::task::spawn_blocking(move || http_request(nginx.port, "GET", "/", &[], "")).await.unwrap();
    assert_eq!(
        later.map(|(s, b)| (s, b.trim().to_owned())),
        Some((200, "ok".to_owned())),
        "a later request wakes it again"
    );
}

/// The wake listener acts only for groups that opted in, only toward the
/// port they named, tells the member who asked, and gives up on a member
/// that never answers.
#[tokio::test]
async fn the_wake_listener_wakes_only_groups_that_opted_in_and_forwards_within_its_timeout() {
    let scope = Scope::new("wakeonly");
    let network = scope.network("net");
    let asleep = |suffix: &str, extra: &[&str], script: &str| {
        let mut args = labels(&["replicator.enable=true", "replicator.min=0"]);
        args.extend_from_slice(extra);
        args.extend(["--network", &network, image(), "sh", "-c", script]);
        scope.run(suffix, &args)
    };
    // Accepts and records a request, and never answers it.
    let records = "sleep 100000 | nc -l -p 8080 >> /requests";
    let wake_network = format!("replicator.wake.network={network}");
    let opted = asleep("opted", &["--label", "replicator.wake.port=8080", "--label", &wake_network], records);
    let closed = asleep("closed", &[], SERVE_OK);
    let wake_port = free_port();
    let wake = format!("127.0.0.1:{wake_port}");
    let server = scope.server(&["--wake-listen", &wake, "--wake-forward-timeout", "2s"]);
    for name in [scope.name("opted"), scope.name("closed")] {
        let r = call(&server, Method::PUT, &format!("/v1/groups/{name}/replicas"), Some(json!({"replicas": 0}))).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    }
    let paused = |id: &str| docker(&["inspect", "-f", "{{.State.Status}}", id]) == "paused";
    assert!(paused(&opted) && paused(&closed));

    let closed_group = scope.name("closed");
    let refused = http_request(wake_port, "GET", "/", &[("X-Replicator-Group", closed_group.as_str())], "").unwrap();
    assert_eq!(refused.0, 403, "{}", refused.1);
    let opted_group = scope.name("opted");
    let elsewhere = [("X-Replicator-Group", opted_group.as_str()), ("X-Replicator-Port", "22")];
    let refused = http_request(wake_port, "GET", "/", &elsewhere, "").unwrap();
    assert_eq!(refused.0, 403, "a port the group did not name: {}", refused.1);
    assert!(paused(&opted) && paused(&closed), "nothing was woken");

    let started = std::time::Instant::now();
    let (status, text) = tokio::task::spawn_blocking(move || {
        let held = [("X-Replicator-Group", opted_group.as_str()), ("X-Forwarded-For", "203.0.113.7")];
        http_request(wake_port, "GET", "/x", &held, "").unwrap()
    })
    .await
    .unwrap();
    assert_eq!(status, 504, "the member never answers: {text}");
    assert!(started.elapsed() < Duration::from_secs(30), "within the forward timeout: {:?}", started.elapsed());
    assert!(!paused(&opted), "the group that opted in woke");
    assert!(paused(&closed), "the other stayed asleep");
    let seen = eventually("the member to record the request", Duration::from_secs(10), || {
        let seen = docker(&["exec", &opted, "cat", "/requests"]).to_lowercase();
        seen.contains("get /x").then_some(seen)
    });
    assert!(seen.contains("x-forwarded-for: 203.0.113.7, 127.0.0.1"), "{seen}");
    assert!(seen.contains("forwarded: for=127.0.0.1"), "{seen}");
    assert!(!seen.contains("x-replicator-"), "{seen}");
}

/// A group asleep by stopping, that takes held requests on 8080 on its own
/// network (`replicator.wake.*`), with `extra` labels, running `script` in
/// the test image: its name, once the container runs.
fn stopped_wake_group(scope: &Scope, extra: &[&str], script: &str) -> String {
    let network = scope.network("net");
    let wake_network = format!("replicator.wake.network={network}");
    let mut args = labels(&["replicator.enable=true", "replicator.min=0", "replicator.sleep=stop"]);
    args.extend(["--label", "replicator.wake.port=8080", "--label", &wake_network]);
    for label in extra {
        args.extend(["--label", label]);
    }
    args.extend(["--network", &network, image(), "sh", "-c", script]);
    scope.run("web", &args);
    scope.name("web")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_request_to_a_group_that_wakes_to_three_is_answered_by_the_first_ready_and_brings_three_up() {
    let scope = Scope::new("waketo3");
    let name = stopped_wake_group(&scope, &["replicator.max=4", "replicator.wake.replicas=3"], SERVE_OK);
    let wake_port = free_port();
    let server = scope.server(&["--wake-listen", &format!("127.0.0.1:{wake_port}")]);
    let slept = call(&server, Method::PUT, &format!("/v1/groups/{name}/replicas"), Some(json!({"replicas": 0}))).await;
    assert_eq!(slept.status, StatusCode::OK, "{}", slept.text());

    let held = name.clone();
    let (status, _) = tokio::task::spawn_blocking(move || {
        http_request(wake_port, "GET", "/", &[("X-Replicator-Group", held.as_str())], "").unwrap()
    })
    .await
    .unwrap();
    assert_eq!(status, 200, "the held request is answered");
    eventually_async("three members up", Duration::from_secs(60), async || {
        let g = group(&server, &name).await;
        ready_if(g["replicas"] == 3 && members_in(&g, "running").len() == 3, g)
    })
    .await;
    assert_eq!(scope.replicas_of(&name).len(), 2, "the original and two replicas");
}

/// An app that listens 3 s after it starts, with a page and a JSON document.
const SLOW_APP: &str = "sleep 3; mkdir -p /www && echo '<h1>the app is awake</h1>' > /www/index.html && \
     echo '{\"app\": \"awake\"}' > /www/data.json && exec httpd -f -p 8080 -h /www";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_sees_the_waiting_page_then_the_app_and_an_api_call_is_held_for_the_apps_json() {
    let scope = Scope::new("wakepage");
    let name = stopped_wake_group(&scope, &["replicator.wake.page=true"], SLOW_APP);
    let dir = tempfile::tempdir().unwrap();
    let template = dir.path().join("waiting.html");
    std::fs::write(&template, "<html><body><p>Custom waiting room for {{group}}</p>{{phases}}</body></html>").unwrap();
    let wake = format!("127.0.0.1:{}", free_port());
    let server = scope.server(&["--wake-listen", &wake, "--wake-page", template.to_str().unwrap()]);
    let to_zero = || Some(json!({"replicas": 0}));
    let slept = call(&server, Method::PUT, &format!("/v1/groups/{name}/replicas"), to_zero()).await;
    assert_eq!(slept.status, StatusCode::OK, "{}", slept.text());
    let upstreams = dir.path().join("upstreams.conf");
    std::fs::write(&upstreams, format!("upstream {name} {{ server {wake}; }}\n")).unwrap();
    let headers = format!("proxy_set_header X-Replicator-Group {name}; proxy_read_timeout 90s;");
    let nginx = Nginx::start_with(dir.path(), free_port(), &upstreams, &name, &headers);

    let browser = crate::common::browser::Browser::start();
    let mut page = browser.open(&format!("http://127.0.0.1:{}/", nginx.port)).await;
    let text = page.eval("document.body.innerText").await;
    let text = text.as_str().unwrap_or_default().to_owned();
    assert!(text.contains(&format!("Custom waiting room for {name}")), "the operator's template: {text}");
    // No reload by hand: the page reloads itself until the app answers.
    page.wait_for("document.body.innerText.includes('the app is awake')", Duration::from_secs(60)).await;
    let (_, metrics) = server.admin_get("/metrics");
    assert!(metrics.contains("replicator_wake_requests_total{event=\"page\"}"), "{metrics}");

    // An API call never gets a page: held, it gets the app's own JSON.
    let slept = call(&server, Method::PUT, &format!("/v1/groups/{name}/replicas"), to_zero()).await;
    assert_eq!(slept.json()["asleep"], true, "{}", slept.text());
    let port = nginx.port;
    let (status, body) = tokio::task::spawn_blocking(move || {
        http_request(port, "GET", "/data.json", &[("Accept", "application/json")], "").unwrap()
    })
    .await
    .unwrap();
    assert_eq!((status, body.trim()), (200, "{\"app\": \"awake\"}"));
}

/// An app with a CGI that answers the SHA-256 of the body it gets, and a
/// 50 MB file, listening 1 s after it starts.
const CHECKSUMS: &str = "mkdir -p /www/cgi-bin && printf '#!/bin/sh\\necho \"Content-Type: text/plain\"\\necho\\n\
     head -c \"$CONTENT_LENGTH\" | sha256sum\\n' > /www/cgi-bin/sum && chmod +x /www/cgi-bin/sum && \
     head -c 50000000 /dev/urandom > /www/big && sleep 1 && exec httpd -f -p 8080 -h /www";

/// The peak resident memory of process `pid` so far, in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).expect("VmHWM");
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
}

/// `sha256sum` of `data`, by the host's own tool.
fn sha256(data: &[u8]) -> String {
    use std::io::Write;
    let mut child = std::process::Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(data).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout).split_whitespace().next().unwrap().to_owned()
}

/// One HTTP/1.0 exchange on a new connection (an answer not chunked): the status and the body.
fn exchange(port: u16, head: &str, body: &[u8]) -> (u16, Vec<u8>) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    stream.write_all(head.as_bytes()).unwrap();
    for chunk in body.chunks(64 * 1024) {
        stream.write_all(chunk).unwrap();
    }
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).unwrap();
    let split = answer.windows(4).position(|w| w == b"\r\n\r\n").expect("a head") + 4;
    let status = String::from_utf8_lossy(&answer[9..12]).parse().unwrap();
    (status, answer[split..].to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_50_mb_upload_wakes_a_stopped_group_and_arrives_whole_and_a_50_mb_download_streams_back() {
    let scope = Scope::new("wakebig");
    let name = stopped_wake_group(&scope, &[], CHECKSUMS);
    let member = scope.containers().pop().expect("the app");
    let wake_port = free_port();
    let server = scope.process_server(&["--wake-listen", &format!("127.0.0.1:{wake_port}")]);
    let slept = call(&server, Method::PUT, &format!("/v1/groups/{name}/replicas"), Some(json!({"replicas": 0}))).await;
    assert_eq!(slept.status, StatusCode::OK, "{}", slept.text());
    let before = peak_rss(server.pid());

    let mut data = vec![0u8; 50_000_000];
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    for byte in data.iter_mut() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        *byte = state as u8;
    }
    let expected = sha256(&data);
    let head = format!(
        "POST /cgi-bin/sum HTTP/1.0\r\nHost: app\r\nX-Replicator-Group: {name}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        data.len()
    );
    let (status, body) = tokio::task::spawn_blocking(move || exchange(wake_port, &head, &data)).await.unwrap();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(
        String::from_utf8_lossy(&body).split_whitespace().next(),
        Some(expected.as_str()),
        "the body arrived whole"
    );
    let grown = peak_rss(server.pid()).saturating_sub(before);
    assert!(grown < 5_000_000, "replicator's peak memory grew by {grown} bytes holding a 50 MB upload");

    let head = format!("GET /big HTTP/1.0\r\nHost: app\r\nX-Replicator-Group: {name}\r\nConnection: close\r\n\r\n");
    let (status, body) = tokio::task::spawn_blocking(move || exchange(wake_port, &head, b"")).await.unwrap();
    assert_eq!((status, body.len()), (200, 50_000_000));
    let served = scope.docker(&["exec", &member, "sha256sum", "/www/big"]);
    assert_eq!(served.split_whitespace().next(), Some(sha256(&body).as_str()), "the download arrived whole");
    let grown = peak_rss(server.pid()).saturating_sub(before);
    assert!(grown < 5_000_000, "replicator's peak memory grew by {grown} bytes streaming a 50 MB download");
}

/// The demo app (`replicator-demo:local`) as a group asleep by stopping
/// that takes held requests on 3000 on its own network, with `extra`
/// labels, listening 1 s after it starts: its name, and the certificates
/// it reads at start (kept as long as it may run).
fn late_demo_group(scope: &Scope, suffix: &str, extra: &[&str]) -> (String, tempfile::TempDir) {
    crate::common::images();
    let network = scope.network("net");
    let certs = crate::common::certs();
    let ssl = format!("{}:/ssl:ro", certs.path().display());
    let wake_network = format!("replicator.wake.network={network}");
    let mut args = labels(&["replicator.enable=true", "replicator.min=0", "replicator.sleep=stop"]);
    args.extend(["--label", "replicator.wake.port=3000", "--label", &wake_network]);
    for label in extra {
        args.extend(["--label", label]);
    }
    args.extend(["-v", &ssl, "-v", "/bin/busybox:/busybox:ro"]);
    args.extend(["--network", &network, "--entrypoint", "/busybox", "replicator-demo:local"]);
    args.extend(["sh", "-c", "/busybox sleep 1; exec /replicator-demo"]);
    scope.run(suffix, &args);
    (scope.name(suffix), certs)
}

/// A text message through `socket`, and the one that comes back.
async fn echoed<S>(socket: &mut tokio_tungstenite::WebSocketStream<S>, text: String) -> String
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    socket.send(Message::text(text)).await.expect("sent");
    match socket.next().await {
        Some(Ok(Message::Text(back))) => back.to_string(),
        other => panic!("no echo: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_opened_while_its_group_sleeps_echoes_keeps_it_awake_and_holds_its_sleep_up_to_the_drain_timeout() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let scope = Scope::new("wakews");
    let (name, _certs) = late_demo_group(&scope, "chat", &["replicator.sleep.after=2s"]);
    let wake_port = free_port();
    let server = scope.server(&["--wake-listen", &format!("127.0.0.1:{wake_port}"), "--drain-timeout", "6s"]);
    let slept = call(&server, Method::PUT, &format!("/v1/groups/{name}/replicas"), Some(json!({"replicas": 0}))).await;
    assert_eq!(slept.json()["asleep"], true, "{}", slept.text());

    let mut request = format!("ws://127.0.0.1:{wake_port}/ws").into_client_request().unwrap();
    request.headers_mut().insert("x-replicator-group", name.parse().unwrap());
    let (mut socket, answer) = tokio_tungstenite::connect_async(request).await.expect("the handshake completes");
    assert_eq!(answer.status(), http::StatusCode::SWITCHING_PROTOCOLS);
    for i in 0..1000 {
        let text = format!("message {i}");
        assert_eq!(echoed(&mut socket, text.clone()).await, text);
    }
    // Three quiet periods with no request: the open connection keeps it awake.
    let quiet_until = std::time::Instant::now() + Duration::from_secs(6);
    while std::time::Instant::now() < quiet_until {
        assert_eq!(group(&server, &name).await["asleep"], false, "asleep with a WebSocket open");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(echoed(&mut socket, "still here".into()).await, "still here");

    // A sleep drains: it waits for the connection, up to the drain timeout.
    let began = std::time::Instant::now();
    let sleeping = tokio::spawn({
        let (client, path) = (server.client(), format!("/v1/groups/{name}/replicas"));
        async move { client.request(Method::PUT, &path, Some(&json!({"replicas": 0}))).await.unwrap() }
    });
    eventually_async("the member draining", Duration::from_secs(10), async || {
        let g = group(&server, &name).await;
        ready_if(members_in(&g, "draining").len() == 1, g)
    })
    .await;
    assert_eq!(echoed(&mut socket, "while draining".into()).await, "while draining");
    let answer = tokio::time::timeout(Duration::from_secs(30), sleeping).await.expect("done").unwrap();
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    let waited = began.elapsed();
    assert!(waited >= Duration::from_secs(5), "the sleep waited for the open WebSocket: {waited:?}");
}

/// gRPC through the wake listener (`replicator.wake.protocol=h2c`): the demo
/// app, listening 1 s late, is asleep before each call. A unary call
/// (`grpc.health.v1.Health/Check`) and a server stream (three messages)
/// get their answers and their `grpc-status: 0` trailer, sent straight to
/// the wake listener in HTTP/2 with prior knowledge and through nginx's
/// `grpc_pass`, as the guide sets it up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_calls_to_a_sleeping_group_get_their_answers_and_status_directly_and_through_nginx_grpc_pass() {
    let scope = Scope::new("wakegrpc");
    let (name, _certs) = late_demo_group(&scope, "grpc", &["replicator.wake.protocol=h2c"]);
    let wake_port = free_port();
    let server = scope.server(&["--wake-listen", &format!("127.0.0.1:{wake_port}")]);
    let dir = tempfile::tempdir().unwrap();
    let nginx_port = free_port();
    let nginx = Nginx::start_server(
        dir.path(),
        nginx_port,
        &format!(
            "    listen 127.0.0.1:{nginx_port} http2;\n    location / {{\n      grpc_set_header X-Replicator-Group {name};\n      \
             grpc_pass grpc://127.0.0.1:{wake_port};\n    }}"
        ),
    );

    let check = crate::common::grpc::Answer { messages: vec![vec![0x08, 0x01]], status: Some("0".into()) };
    let count =
        crate::common::grpc::Answer { messages: (1..=3).map(|n| vec![0x08, n]).collect(), status: Some("0".into()) };
    let calls = [
        ("directly", wake_port, Some(name.as_str()), "/grpc.health.v1.Health/Check", &check),
        ("directly", wake_port, Some(name.as_str()), "/replicator.demo.Counter/Count", &count),
        ("through nginx", nginx.port, None, "/grpc.health.v1.Health/Check", &check),
        ("through nginx", nginx.port, None, "/replicator.demo.Counter/Count", &count),
    ];
    for (how, port, group, path, expected) in calls {
        let slept =
            call(&server, Method::PUT, &format!("/v1/groups/{name}/replicas"), Some(json!({"replicas": 0}))).await;
        assert_eq!(slept.json()["asleep"], true, "{}", slept.text());
        let answer = crate::common::grpc::call(port, path, group).await.unwrap_or_else(|e| panic!("{path} {how}: {e}"));
        assert_eq!(&answer, expected, "{path} {how}");
    }
}
