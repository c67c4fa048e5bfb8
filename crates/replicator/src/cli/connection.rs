//! Where the client commands connect, and one request's answer: shared by
//! the one-shot commands (`client.rs`) and those that follow the server
//! (`watch.rs`), so neither needs the other.

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::Args;
use http::Method;
use serde_json::Value;

use crate::cli::remote::{ApiClient, ApiResponse};

#[derive(Debug, Args)]
pub struct Connection {
    /// replicator's URL (default: the per-user client.toml's, else https://localhost:8443).
    #[arg(long, env = "REPLICATOR_SERVER")]
    server: Option<String>,
    /// Folder with ca.pem, cert.pem and key.pem (default: the per-user client.toml's, else ./certs).
    #[arg(long, env = "REPLICATOR_CERTS")]
    certs: Option<PathBuf>,
}

impl Connection {
    /// The server and bundle to use: given, else the per-user defaults, else the built-in ones.
    pub(super) fn resolve(&self) -> anyhow::Result<(String, PathBuf)> {
        let defaults = if self.server.is_some() && self.certs.is_some() {
            super::user_config::UserConfig::default()
        } else {
            super::user_config::load()?
        };
        let server = self.server.clone().or(defaults.server).unwrap_or_else(|| "https://localhost:8443".to_owned());
        let certs = self.certs.clone().or(defaults.certs).unwrap_or_else(|| PathBuf::from("./certs"));
        Ok((server, certs))
    }

    /// A client for the resolved server and bundle.
    pub(super) fn client(&self) -> anyhow::Result<ApiClient> {
        let (server, certs) = self.resolve()?;
        ApiClient::new(&server, &certs).with_context(|| format!("cannot use the certificates in {}", certs.display()))
    }
}

/// One request: the JSON answer, or an error with the server's message.
pub(super) async fn answer_of(
    client: &ApiClient,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> anyhow::Result<Value> {
    let response: ApiResponse = client.request(method, path, body.as_ref()).await?;
    let value = response.json();
    if !response.status.is_success() {
        let message = value["error"]["message"].as_str().map(str::to_owned).unwrap_or_else(|| response.text());
        bail!("{message} (HTTP {})", response.status.as_u16());
    }
    Ok(value)
}
