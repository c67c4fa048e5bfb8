//! Debian's Prometheus and Alertmanager as real programs, and a scrape
//! target whose counter grows at a rate the test sets.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{eventually, free_port, write_in, Owned};

/// A scrape target serving `demo_requests_total`, a counter growing at a rate the test sets.
pub struct CounterTarget {
    pub port: u16,
    rate: Arc<Mutex<f64>>,
    task: tokio::task::JoinHandle<()>,
}

impl CounterTarget {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let rate = Arc::new(Mutex::new(0.0f64));
        let state = Arc::new(Mutex::new((0.0f64, Instant::now())));
        let task_rate = rate.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut conn, _)) = listener.accept().await else {
                    return;
                };
                let mut request = [0u8; 4096];
                let _ = conn.read(&mut request).await;
                let count = {
                    let mut s = state.lock().unwrap();
                    let now = Instant::now();
                    s.0 += *task_rate.lock().unwrap() * now.duration_since(s.1).as_secs_f64();
                    s.1 = now;
                    s.0
                };
                let body = format!("# TYPE demo_requests_total counter\ndemo_requests_total {count}\n");
                let response = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = conn.write_all(response.as_bytes()).await;
            }
        });
        Self { port, rate, task }
    }

    pub fn set_rate(&self, per_second: f64) {
        *self.rate.lock().unwrap() = per_second;
    }
}

impl Drop for CounterTarget {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One of Debian's Prometheus programs on a free loopback port, its files
/// in a folder of its own; killed on drop.
struct Daemon {
    _child: Owned,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Daemon {
    /// Runs `/usr/bin/{program}` (Debian's package of that name) with
    /// `config` written to `config_file` in `dir` and `storage` (its
    /// data-folder flag), plus `extra` flags, logging to `{program}.log`;
    /// waits until it is ready.
    fn start(
        program: &str,
        dir: tempfile::TempDir,
        config_file: &str,
        config: &str,
        storage: &str,
        extra: &[&str],
    ) -> Self {
        let binary = Path::new("/usr/bin").join(program);
        assert!(binary.exists(), "{} is missing: apt-get install {program} (scripts/prepare does)", binary.display());
        let config_path = write_in(dir.path(), config_file, config);
        let port = free_port();
        let child = Command::new(&binary)
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!("{storage}={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .args(extra)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join(format!("{program}.log"))).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("{program} starts: {e}"));
        let daemon = Self { _child: Owned(child), port, _dir: dir };
        eventually(&format!("{program} to be ready"), Duration::from_secs(60), || {
            super::plain_http(port, "GET", "/-/ready").filter(|(status, _)| *status == 200).map(drop)
        });
        daemon
    }
}

/// Debian's Prometheus, on a free loopback port, scraping `target` every second.
pub struct Prometheus {
    pub port: u16,
    _daemon: Daemon,
}

impl Prometheus {
    pub fn start(target_port: u16) -> Self {
        Self::start_alerting(target_port, None)
    }

    /// The same, evaluating `rules` (a rule file's text) every second and
    /// sending alerts to the Alertmanager on `alertmanager_port`.
    pub fn start_alerting(target_port: u16, alerting: Option<(&str, u16)>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: demo\n    static_configs:\n      - targets: ['127.0.0.1:{target_port}']\n"
        );
        if let Some((rules, alertmanager_port)) = alerting {
            let rules_file = write_in(dir.path(), "rules.yml", rules);
            config.push_str(&format!(
                "rule_files: ['{}']\nalerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['127.0.0.1:{alertmanager_port}']\n",
                rules_file.display()
            ));
        }
        // Without the resend delay the first alert waits a minute for an Alertmanager to be discovered.
        let extra = ["--rules.alert.resend-delay=1s"];
        let daemon = Daemon::start("prometheus", dir, "prometheus.yml", &config, "--storage.tsdb.path", &extra);
        Self { port: daemon.port, _daemon: daemon }
    }
}

/// Debian's Alertmanager on a free loopback port, sending every alert to
/// replicator's webhook over mutual TLS, repeating a firing one every 2 s.
pub struct Alertmanager {
    pub port: u16,
    _daemon: Daemon,
}

impl Alertmanager {
    pub fn start(webhook: &str, certs: &Path) -> Self {
        let cert = |name: &str| certs.join(name).display().to_string();
        let config = format!(
            "route:\n  receiver: replicator\n  group_by: ['alertname']\n  group_wait: 0s\n  group_interval: 1s\n  repeat_interval: 2s\n\
             receivers:\n  - name: replicator\n    webhook_configs:\n      - url: '{webhook}'\n        send_resolved: true\n\
             \x20       http_config:\n          tls_config:\n            ca_file: '{}'\n            cert_file: '{}'\n            key_file: '{}'\n",
            cert("ca.pem"),
            cert("cert.pem"),
            cert("key.pem"),
        );
        let daemon = Daemon::start(
            "prometheus-alertmanager",
            tempfile::tempdir().unwrap(),
            "alertmanager.yml",
            &config,
            "--storage.path",
            &["--cluster.listen-address="],
        );
        Self { port: daemon.port, _daemon: daemon }
    }

    /// Webhook notifications sent so far (Alertmanager's own counter).
    pub fn notifications(&self) -> u64 {
        let (_, metrics) = super::plain_http(self.port, "GET", "/metrics").unwrap_or_default();
        metrics
            .lines()
            .filter(|l| l.starts_with("alertmanager_notifications_total{") && l.contains("integration=\"webhook\""))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64
    }
}
