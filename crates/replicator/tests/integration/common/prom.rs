//! Debian's Prometheus and Alertmanager as real programs, and a scrape
//! target whose counter grows at a rate the test sets.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{eventually, free_port, write_file};

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

/// Debian's Prometheus, on a free loopback port, scraping `target` every second.
pub struct Prometheus {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    pub fn start(target_port: u16) -> Self {
        Self::start_alerting(target_port, None)
    }

    /// The same, evaluating `rules` (a rule file's text) every second and
    /// sending alerts to the Alertmanager on `alertmanager_port`.
    pub fn start_alerting(target_port: u16, alerting: Option<(&str, u16)>) -> Self {
        let binary = Path::new("/usr/bin/prometheus");
        assert!(binary.exists(), "/usr/bin/prometheus is missing: apt-get install prometheus (scripts/prepare does)");
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("prometheus.yml");
        let mut text = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: demo\n    static_configs:\n      - targets: ['127.0.0.1:{target_port}']\n"
        );
        if let Some((rules, alertmanager_port)) = alerting {
            let rules_file = dir.path().join("rules.yml");
            write_file(&rules_file, rules);
            text.push_str(&format!(
                "rule_files: ['{}']\nalerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['127.0.0.1:{alertmanager_port}']\n",
                rules_file.display()
            ));
        }
        write_file(&config, &text);
        let port = free_port();
        let child = Command::new(binary)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            // Without it the first alert waits a minute for an Alertmanager to be discovered.
            .arg("--rules.alert.resend-delay=1s")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus starts");
        let prometheus = Self { child, port, _dir: dir };
        eventually("Prometheus to be ready", Duration::from_secs(60), || {
            let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
            use std::io::{Read, Write};
            write!(stream, "GET /-/ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").ok()?;
            let mut answer = String::new();
            stream.read_to_string(&mut answer).ok()?;
            answer.starts_with("HTTP/1.1 200").then_some(())
        });
        prometheus
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Debian's Alertmanager on a free loopback port, sending every alert to
/// replicator's webhook over mutual TLS, repeating a firing one every 2 s.
pub struct Alertmanager {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Alertmanager {
    pub fn start(webhook: &str, certs: &Path) -> Self {
        let binary = Path::new("/usr/bin/prometheus-alertmanager");
        assert!(
            binary.exists(),
            "{} is missing: apt-get install prometheus-alertmanager (scripts/prepare does)",
            binary.display()
        );
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("alertmanager.yml");
        let cert = |name: &str| certs.join(name).display().to_string();
        write_file(
            &config,
            &format!(
                "route:\n  receiver: replicator\n  group_by: ['alertname']\n  group_wait: 0s\n  group_interval: 1s\n  repeat_interval: 2s\n\
                 receivers:\n  - name: replicator\n    webhook_configs:\n      - url: '{webhook}'\n        send_resolved: true\n\
                 \x20       http_config:\n          tls_config:\n            ca_file: '{}'\n            cert_file: '{}'\n            key_file: '{}'\n",
                cert("ca.pem"),
                cert("cert.pem"),
                cert("key.pem"),
            ),
        );
        let port = free_port();
        let child = Command::new(binary)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("alertmanager.log")).unwrap())
            .spawn()
            .expect("alertmanager starts");
        let alertmanager = Self { child, port, _dir: dir };
        eventually("Alertmanager to be ready", Duration::from_secs(60), || {
            super::plain_http(port, "GET", "/-/ready").filter(|(status, _)| *status == 200).map(drop)
        });
        alertmanager
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

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
