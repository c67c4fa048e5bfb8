//! Headless Chromium (Debian's) driven through the DevTools protocol: open a
//! page, run a line of JavaScript, wait for a condition, take a screenshot.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use super::{eventually, free_port, plain_http};

pub struct Browser {
    child: Child,
    port: u16,
    _profile: tempfile::TempDir,
}

/// One request to DevTools' HTTP endpoint: its body.
fn http(port: u16, method: &str, path: &str) -> Option<String> {
    plain_http(port, method, path).filter(|(status, _)| *status == 200).map(|(_, body)| body)
}

impl Browser {
    pub fn start() -> Self {
        let profile = tempfile::tempdir().unwrap();
        let port = free_port();
        let child = Command::new("chromium")
            .args(["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"])
            .arg(format!("--remote-debugging-port={port}"))
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .args(["--window-size=1200,900", "about:blank"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromium runs (apt-get install chromium; scripts/prepare does)");
        eventually("chromium's DevTools endpoint", Duration::from_secs(30), || http(port, "GET", "/json/version"));
        Self { child, port, _profile: profile }
    }

    pub async fn open(&self, url: &str) -> Page {
        let body = http(self.port, "PUT", "/json/new?about:blank").expect("a new tab");
        let target: Value = serde_json::from_str(&body).expect("DevTools answers JSON");
        let ws = target["webSocketDebuggerUrl"].as_str().expect("a debugger URL").to_owned();
        let (socket, _) =
            tokio_tungstenite::connect_async(&ws).await.unwrap_or_else(|e| panic!("DevTools websocket {ws}: {e}"));
        let mut page = Page { socket, next: 0 };
        page.navigate(url).await;
        page
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct Page {
    socket: tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    next: u64,
}

impl Page {
    async fn call(&mut self, method: &str, params: Value) -> Value {
        self.next += 1;
        let id = self.next;
        let request = json!({ "id": id, "method": method, "params": params }).to_string();
        self.socket.send(Message::Text(request.into())).await.expect("DevTools accepts the call");
        while let Some(message) = self.socket.next().await {
            let Ok(Message::Text(text)) = message else { continue };
            let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            if v["id"] == id {
                assert!(v.get("error").is_none(), "{method}: {}", v["error"]);
                return v["result"].clone();
            }
        }
        panic!("DevTools closed during {method}");
    }

    /// The value of a JavaScript expression (promises awaited).
    pub async fn eval(&mut self, expression: &str) -> Value {
        let params = json!({ "expression": expression, "returnByValue": true, "awaitPromise": true });
        self.call("Runtime.evaluate", params).await["result"]["value"].clone()
    }

    /// Loads a URL and waits until the new document has loaded: the marker
    /// left on the old one tells them apart, even for the same URL.
    pub async fn navigate(&mut self, url: &str) {
        self.eval("window.__leaving = true").await;
        self.call("Page.navigate", json!({ "url": url })).await;
        self.wait_for("!window.__leaving && document.readyState === 'complete'", Duration::from_secs(30)).await;
    }

    /// Polls a JavaScript condition until it holds.
    pub async fn wait_for(&mut self, condition: &str, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            if self.eval(&format!("Boolean({condition})")).await == Value::Bool(true) {
                return;
            }
            let text = self.eval("document.body ? document.body.innerText : ''").await;
            assert!(Instant::now() < deadline, "waited in vain for {condition}; the page says: {text}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Saves a PNG of the page under target/screenshots/ and returns its path.
    pub async fn screenshot(&mut self, name: &str) -> PathBuf {
        let shot = self.call("Page.captureScreenshot", json!({ "format": "png" })).await;
        let png = base64::engine::general_purpose::STANDARD.decode(shot["data"].as_str().unwrap()).unwrap();
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        path
    }
}
