//! Headless Chromium (Debian's) driven through the DevTools protocol: open a
//! page, run a line of JavaScript, wait for a condition, take a screenshot.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use base64::Engine as _;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use super::{eventually, free_port, plain_http, poll_until_async, Owned};

pub struct Browser {
    _child: Owned,
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
        Self { _child: Owned(child), port, _profile: profile }
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

pub struct Page {
    socket: tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    next: u64,
}

impl Page {
    /// One DevTools call: its result, or the protocol's error.
    async fn call(&mut self, method: &str, params: Value) -> Result<Value, String> {
        self.next += 1;
        let id = self.next;
        let request = json!({ "id": id, "method": method, "params": params }).to_string();
        self.socket.send(Message::Text(request.into())).await.expect("DevTools accepts the call");
        while let Some(message) = self.socket.next().await {
            let Ok(Message::Text(text)) = message else { continue };
            let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            if v["id"] == id {
                return match v.get("error") {
                    Some(error) => Err(format!("{method}: {error}")),
                    None => Ok(v["result"].clone()),
                };
            }
        }
        panic!("DevTools closed during {method}");
    }

    /// A JavaScript expression's value (promises awaited), or what went
    /// wrong: an exception, or a document that went away meanwhile.
    pub async fn try_eval(&mut self, expression: &str) -> Result<Value, String> {
        let params = json!({ "expression": expression, "returnByValue": true, "awaitPromise": true });
        let result = self.call("Runtime.evaluate", params).await?;
        match result.get("exceptionDetails") {
            Some(e) => Err(format!("{expression}: {}", e["exception"]["description"].as_str().unwrap_or("exception"))),
            None => Ok(result["result"]["value"].clone()),
        }
    }

    pub async fn eval(&mut self, expression: &str) -> Value {
        self.try_eval(expression).await.unwrap_or_else(|e| panic!("{e}"))
    }

    /// Loads a URL and waits until the new document has loaded: the marker
    /// left on the old one tells them apart, even for the same URL.
    pub async fn navigate(&mut self, url: &str) {
        self.eval("window.__leaving = true").await;
        self.call("Page.navigate", json!({ "url": url })).await.expect("the browser navigates");
        self.wait_for("!window.__leaving && document.readyState === 'complete'", Duration::from_secs(30)).await;
    }

    /// Polls a JavaScript condition until it holds. A document replaced
    /// meanwhile (a refresh, a form's redirect) only means another look.
    pub async fn wait_for(&mut self, condition: &str, within: Duration) {
        let check = format!("Boolean({condition})");
        let held = poll_until_async(within, async || match self.try_eval(&check).await {
            Ok(Value::Bool(true)) => Ok(()),
            last => Err(format!("{last:?}")),
        })
        .await;
        if let Err(last) = held {
            let text = self.try_eval("document.body ? document.body.innerText : ''").await;
            panic!("waited in vain for {condition} (last: {last}); the page says: {text:?}");
        }
    }

    /// Clicks the element a CSS selector names, once it is there.
    pub async fn click(&mut self, selector: &str, within: Duration) {
        let selector = serde_json::to_string(selector).unwrap();
        let click =
            format!("(() => {{ const e = document.querySelector({selector}); if (e) e.click(); return !!e; }})()");
        self.wait_for(&click, within).await;
    }

    /// Saves a PNG of the page under target/screenshots/ and returns its path.
    pub async fn screenshot(&mut self, name: &str) -> PathBuf {
        let shot = self.call("Page.captureScreenshot", json!({ "format": "png" })).await.expect("a screenshot");
        let png = base64::engine::general_purpose::STANDARD.decode(shot["data"].as_str().unwrap()).unwrap();
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        path
    }
}
