//! The hands-on side: `docker replicator …` through the real docker CLI,
//! one `upstreams` follower for twenty groups behind a real nginx (reloaded
//! once per burst), and the commands people watch from a terminal
//! (`events`, `group`, progress while `--wait` waits).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use http::{Method, StatusCode};
use serde_json::{json, Value};

use crate::common::lb::{upstream_servers, Nginx, Upstreams};
use crate::common::{call, eventually, free_port, group, image, labels, ready_if, Owned, Scope, BIN};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_docker_cli_runs_replicator_as_its_plugin() {
    let scope = Scope::new("plugin");
    let (_, name) = scope.web_group(&["--label", "replicator.max=3"]);
    let server = scope.server(&[]);
    let config = tempfile::tempdir().unwrap();
    let installed = Command::new(BIN).args(["install-plugin"]).env("DOCKER_CONFIG", config.path()).output().unwrap();
    assert!(installed.status.success(), "{}", String::from_utf8_lossy(&installed.stderr));
    assert!(config.path().join("cli-plugins/docker-replicator").exists());

    let (url, certs) = (server.url(), server.certs.clone());
    let docker = move |args: &[&str]| {
        let out = Command::new("docker")
            .args(args)
            .env("DOCKER_CONFIG", config.path())
            .env("REPLICATOR_SERVER", &url)
            .env("REPLICATOR_CERTS", &certs)
            .output()
            .unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        (out.status.success(), text)
    };
    let (ok, help) = docker(&["--help"]);
    assert!(ok && help.lines().any(|l| l.trim_start().starts_with("replicator*")), "docker lists the plugin: {help}");
    let (ok, listed) = docker(&["replicator", "groups", "-q"]);
    assert!(ok && listed.lines().any(|l| l == name), "{listed}");
    let (ok, scaled) = docker(&["replicator", "scale", &name, "2", "--wait"]);
    assert!(ok, "{scaled}");
    assert_eq!(group(&server, &name).await["replicas"], 2);
    let (ok, usage) = docker(&["replicator", "scale", &name]);
    assert!(!ok && usage.contains("docker replicator scale"), "usage names the plugin: {usage}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_follower_writes_twenty_groups_files_and_reloads_nginx_once_per_burst() {
    let scope = Scope::new("followmany");
    let network = scope.network("net");
    let names: Vec<String> = (0..20)
        .map(|i| {
            let suffix = format!("g{i:02}");
            let mut args = labels(&["replicator.enable=true", "replicator.max=4"]);
            let serve = "mkdir -p /www && echo ok > /www/index.html && exec httpd -f -p 8080 -h /www";
            args.extend(["--network", &network, image(), "sh", "-c", serve]);
            scope.run(&suffix, &args);
            scope.name(&suffix)
        })
        .collect();
    let server = scope.server(&[]);
    let dir = tempfile::tempdir().unwrap();
    let files = dir.path().join("upstreams");
    std::fs::create_dir_all(&files).unwrap();
    let template = files.join("{group}.conf");
    let reloads = dir.path().join("reloads.log");
    // nginx starts once the first files are there; until then the follower's reload only counts.
    let count_only = format!("echo reload >> {}", reloads.display());
    let pattern = format!("{}-g*", scope.name("").trim_end_matches('-'));
    let extra = ["--debounce", "1s"];
    let path = |g: &str| files.join(format!("{g}.conf"));
    let servers_of = |g: &str| upstream_servers(&path(g));
    Upstreams::nginx_following(&server, &pattern, &template, &network, &count_only).extra(&extra).once();
    for name in &names {
        assert_eq!(servers_of(name).len(), 1, "{name}: {}", std::fs::read_to_string(path(name)).unwrap_or_default());
    }
    let nginx = Nginx::start(dir.path(), free_port(), &files.join("*.conf"), &names[0]);
    let reload = nginx.synchronous_reload(&count_only);
    let _follower = Upstreams::nginx_following(&server, &pattern, &template, &network, &reload).extra(&extra).follow();
    let reloads_so_far = || std::fs::read_to_string(&reloads).unwrap_or_default().lines().count();

    // Five groups scaled at once, then back: each a burst.
    for size in [3u64, 1] {
        let before = reloads_so_far();
        let scaled = names[..5].iter().map(|name| {
            let (client, name) = (server.client(), name.clone());
            async move {
                let body = json!({"replicas": size, "wait": "ready", "timeout": "60s"});
                client.request(Method::PUT, &format!("/v1/groups/{name}/replicas"), Some(&body)).await.unwrap()
            }
        });
        for answer in futures_util::future::join_all(scaled).await {
            assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
        }
        eventually("every group's file right", Duration::from_secs(30), || {
            let wrong: Vec<(&String, usize)> = names
                .iter()
                .enumerate()
                .map(|(i, name)| (name, servers_of(name).len(), if i < 5 { size as usize } else { 1 }))
                .filter(|(_, have, want)| have != want)
                .map(|(name, have, _)| (name, have))
                .collect();
            ready_if(wrong.is_empty(), format!("{wrong:?}"))
        });
        // nginx's reload returns once its old worker is gone: counted when it has.
        let during = eventually("the burst's reload", Duration::from_secs(30), || {
            let n = reloads_so_far() - before;
            (n > 0).then_some(n)
        });
        let log: String = std::fs::read_to_string(files.join("follower.log"))
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.contains("upstreams written"))
            .map(|l| format!("{l}\n"))
            .collect();
        assert!(
            (1..=2).contains(&during),
            "scaling five groups at once to {size} reloaded nginx {during} times: {log}"
        );
    }
    let answered =
        tokio::task::spawn_blocking(move || crate::common::plain_http(nginx.port, "GET", "/")).await.unwrap();
    assert_eq!(answered, Some((200, "ok\n".into())), "nginx loads all twenty files");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_group_and_the_progress_of_wait_show_what_replicator_does() {
    let scope = Scope::new("watching");
    let (_, name) = scope.web_group(&["--label", "replicator.max=3", "--label", "replicator.ready=tcp:8080"]);
    let server = scope.server(&[]);
    let connection = |command: &mut Command| {
        command.args(["--server", &server.url(), "--certs"]).arg(&server.certs);
    };
    let mut events = Command::new(BIN);
    events.args(["events", "--group", &name, "--json"]).stdout(Stdio::piped()).stderr(Stdio::null());
    connection(&mut events);
    let mut events = Owned(events.spawn().unwrap());
    let lines = BufReader::new(events.0.stdout.take().unwrap()).lines();
    let (seen_tx, seen_rx) = std::sync::mpsc::channel::<Value>();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            if seen_tx.send(serde_json::from_str(&line).expect("one JSON object a line")).is_err() {
                return;
            }
        }
    });
    let first = seen_rx.recv_timeout(Duration::from_secs(30)).expect("the snapshot");
    assert_eq!(first["event"], "snapshot", "{first}");

    // Progress: without a terminal, one line per change on standard error.
    let mut scale = Command::new(BIN);
    scale.args(["scale", &name, "2", "--wait"]);
    connection(&mut scale);
    let scaled = tokio::task::spawn_blocking(move || scale.output().unwrap()).await.unwrap();
    assert!(scaled.status.success(), "{}", String::from_utf8_lossy(&scaled.stderr));
    let progress = String::from_utf8_lossy(&scaled.stderr);
    let replica = format!("{name}-2");
    assert!(progress.lines().any(|l| l.starts_with(&replica) && l.contains("ready")), "{progress}");
    assert!(progress.lines().last().is_some_and(|l| l.starts_with("done in")), "{progress}");

    let member = eventually("the replica in the event stream", Duration::from_secs(30), || {
        let event = seen_rx.recv_timeout(Duration::from_secs(1)).ok()?;
        (event["event"] == "member" && event["data"]["member"]["name"] == replica.as_str()).then_some(event)
    });
    assert_eq!(member["data"]["group"], name.as_str());

    let mut detail = Command::new(BIN);
    detail.args(["group", &name]);
    connection(&mut detail);
    let detail = detail.output().unwrap();
    let text = String::from_utf8_lossy(&detail.stdout);
    assert!(detail.status.success() && text.starts_with(&format!("{name} (containers)\n2 running")), "{text}");
    assert!(text.lines().any(|l| l.contains(&replica) && l.contains("running") && l.contains("healthy")), "{text}");

    let unknown = call(&server, Method::GET, "/v1/groups/nope", None).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    let mut missing = Command::new(BIN);
    missing.args(["group", "nope"]);
    connection(&mut missing);
    let missing = missing.output().unwrap();
    assert!(!missing.status.success() && String::from_utf8_lossy(&missing.stderr).contains("HTTP 404"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_terminal_wait_redraws_each_members_progress_in_place() {
    let scope = Scope::new("progresstty");
    let (_, name) = scope.web_group(&["--label", "replicator.max=3", "--label", "replicator.ready=tcp:8080"]);
    let server = scope.server(&[]);
    let command = format!("{BIN} scale {name} 2 --wait --server {} --certs {}", server.url(), server.certs.display());
    // `script` runs the command on a pseudo-terminal and copies what it shows.
    let shown = tokio::task::spawn_blocking(move || {
        Command::new("script").args(["-qec", &command, "/dev/null"]).output().expect("script runs (util-linux)")
    })
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&shown.stdout);
    assert!(shown.status.success(), "{text}");
    let replica = format!("{name}-2");
    assert!(text.contains(&format!("\x1b[2K{replica}  ready")), "the member's line redrawn until ready: {text:?}");
    assert!(text.contains("\x1b[1A"), "the cursor goes back over the lines drawn: {text:?}");
    assert!(text.contains("done in"), "and the time it all took: {text:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_prints_the_decision_and_the_member_changes_of_a_scale_up_as_they_happen() {
    let scope = Scope::new("eventsdecision");
    let autoscaled = [
        "--label",
        "replicator.max=3",
        "--label",
        "replicator.autoscale.metric=rps",
        "--label",
        "replicator.autoscale.target=10",
    ];
    let (_, name) = scope.web_group(&autoscaled);
    let server = scope.server(&crate::common::QUICK_AUTOSCALER);
    let mut events = Command::new(BIN);
    events.args(["events", "--group", &name, "--server", &server.url(), "--certs"]).arg(&server.certs);
    let mut events = Owned(events.stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap());
    let lines = BufReader::new(events.0.stdout.take().unwrap()).lines();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || lines.map_while(Result::ok).try_for_each(|l| tx.send(l)));
    let first = rx.recv_timeout(Duration::from_secs(30)).expect("the snapshot line");
    assert!(first.contains("snapshot") && first.contains(&name), "{first}");

    let push = json!({"container": name, "metric": "rps", "value": 30});
    assert_eq!(call(&server, Method::POST, "/v1/metrics", Some(push)).await.status, StatusCode::ACCEPTED);
    let mut seen = Vec::new();
    let grown = format!("  decision  {name}  1 -> 3  ");
    let replica = format!("  member    {name}  {name}-3  ");
    eventually("the decision and the new members' lines", Duration::from_secs(60), || {
        while let Ok(line) = rx.try_recv() {
            seen.push(line);
        }
        let both = seen.iter().any(|l| l.contains(&grown)) && seen.iter().any(|l| l.contains(&replica));
        ready_if(both, seen.join("\n"))
    });
}
