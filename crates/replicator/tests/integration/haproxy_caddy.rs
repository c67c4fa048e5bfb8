//! `replicator upstreams --format haproxy|caddy` behind the real haproxy and
//! Caddy, the way nginx is tested: a new member gets requests, a removed one
//! none.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use http::{Method, StatusCode};
use serde_json::json;

use crate::common::lb::Upstreams;
use crate::common::{call, eventually, eventually_async, free_port, image, plain_http, write_in, Owned, Scope};

/// Serves its own hostname (its short container id) on 8080.
const SERVE_HOSTNAME: &str = "mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 8080 -h /www";

/// A balancer started on `port` that reads the upstream file.
trait Balancer {
    /// The command `replicator upstreams --reload` runs.
    fn reload(&self) -> String;
}

struct Haproxy {
    main: PathBuf,
    upstream: PathBuf,
    pidfile: PathBuf,
}

impl Haproxy {
    fn start(dir: &Path, port: u16, upstream: &Path, backend: &str) -> Self {
        let main = write_in(
            dir,
            "haproxy.cfg",
            &format!(
                "global\n    maxconn 256\n\ndefaults\n    mode http\n    timeout connect 1s\n    timeout client 10s\n    \
                 timeout server 10s\n    retries 3\n    option redispatch\n\n\
                 frontend site\n    bind 127.0.0.1:{port}\n    default_backend {backend}\n"
            ),
        );
        let haproxy = Self { main, upstream: upstream.to_owned(), pidfile: dir.join("haproxy.pid") };
        let status = Command::new("sh").arg("-c").arg(haproxy.command(false)).status().expect("haproxy runs");
        assert!(status.success(), "haproxy did not start (apt-get install haproxy; scripts/prepare does)");
        haproxy
    }

    fn command(&self, reload: bool) -> String {
        let soft = if reload { format!(" -sf $(cat {})", self.pidfile.display()) } else { String::new() };
        format!(
            "haproxy -D -f {} -f {} -p {}{soft}",
            self.main.display(),
            self.upstream.display(),
            self.pidfile.display()
        )
    }
}

impl Balancer for Haproxy {
    fn reload(&self) -> String {
        self.command(true)
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        if let Ok(pids) = std::fs::read_to_string(&self.pidfile) {
            for pid in pids.split_whitespace() {
                let _ = Command::new("kill").arg(pid).status();
            }
        }
    }
}

struct Caddy {
    config: PathBuf,
    admin: u16,
    _child: Owned,
}

impl Caddy {
    fn start(dir: &Path, port: u16, upstream: &Path, snippet: &str) -> Self {
        let admin = free_port();
        let config = write_in(
            dir,
            "Caddyfile",
            &format!(
                "{{\n    admin 127.0.0.1:{admin}\n    auto_https off\n}}\n\n\
                 import {}\n\nhttp://:{port} {{\n    bind 127.0.0.1\n    import {snippet}\n}}\n",
                upstream.display()
            ),
        );
        let child = Command::new("caddy")
            .args(["run", "--adapter", "caddyfile", "--config"])
            .arg(&config)
            .env("XDG_DATA_HOME", dir)
            .env("XDG_CONFIG_HOME", dir)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("caddy.log")).unwrap())
            .spawn()
            .expect("caddy runs (apt-get install caddy; scripts/prepare does)");
        Self { config, admin, _child: Owned(child) }
    }
}

impl Balancer for Caddy {
    fn reload(&self) -> String {
        format!(
            "caddy reload --adapter caddyfile --config {} --address 127.0.0.1:{}",
            self.config.display(),
            self.admin
        )
    }
}

/// The member that answered one request through the balancer.
fn served_by(port: u16) -> Option<String> {
    plain_http(port, "GET", "/").filter(|(status, _)| *status == 200).map(|(_, body)| body.trim().to_owned())
}

fn short(id: &str) -> String {
    id[..12].to_owned()
}

async fn a_new_member_gets_requests_and_a_removed_one_none(format: &str) {
    let scope = Scope::new(format);
    let network = scope.network("net");
    let original = scope
        .run("web", &["--network", &network, "--label", "replicator.enable=true", image(), "sh", "-c", SERVE_HOSTNAME]);
    let name = scope.name("web");
    let server = scope.server(&[]);
    let dir = tempfile::tempdir().unwrap();
    let upstream = dir.path().join(format!("upstream.{format}"));
    Upstreams::new(&name, &upstream).format(format).network(&network).once();
    let port = free_port();
    let balancer: Box<dyn Balancer> = match format {
        "haproxy" => Box::new(Haproxy::start(dir.path(), port, &upstream, &name)),
        _ => Box::new(Caddy::start(dir.path(), port, &upstream, &format!("{name}_upstream"))),
    };
    let reload = balancer.reload();
    let _follower = Upstreams::new(&name, &upstream).format(format).network(&network).reload(&reload).follow();
    eventually("the original served through the balancer", Duration::from_secs(30), || {
        (served_by(port)? == short(&original)).then_some(())
    });

    let made = call(&server, Method::POST, &format!("/v1/containers/{name}/replicas"), None).await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.text());
    let clone = short(made.json()["replicas"][0]["id"].as_str().unwrap());
    eventually("the new member served", Duration::from_secs(30), || (served_by(port)? == clone).then_some(()));

    let log = upstream.with_file_name("follower.log");
    let reloads = || std::fs::read_to_string(&log).unwrap_or_default().matches("reloaded").count();
    let before = reloads();
    let scaled = call(&server, Method::PUT, &format!("/v1/groups/{name}/replicas"), Some(json!({"replicas": 1}))).await;
    assert_eq!(scaled.status, StatusCode::OK, "{}", scaled.text());
    eventually("the file down to one server, and the balancer reloaded", Duration::from_secs(30), || {
        let text = std::fs::read_to_string(&upstream).ok()?;
        (text.matches(":8080").count() == 1 && reloads() > before).then_some(())
    });
    eventually_async("the original to answer again", Duration::from_secs(10), async || match served_by(port) {
        Some(member) if member == short(&original) => Ok(()),
        other => Err(format!("{other:?}")),
    })
    .await;
    let answers: Vec<Option<String>> = (0..20).map(|_| served_by(port)).collect();
    assert!(
        answers.iter().all(|a| a.as_deref() == Some(short(&original).as_str())),
        "the removed member got none: {answers:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn haproxy_follows_the_group() {
    a_new_member_gets_requests_and_a_removed_one_none("haproxy").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caddy_follows_the_group() {
    a_new_member_gets_requests_and_a_removed_one_none("caddy").await;
}
