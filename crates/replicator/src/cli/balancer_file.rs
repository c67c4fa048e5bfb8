//! The balancer's file, shared by both ways `replicator upstreams` follows a
//! group (the engine's events, or a replicator server's event stream): render
//! the members, write the file atomically when the text changed, run the
//! reload, and remember the text only once the balancer has it.

use std::path::{Path, PathBuf};

use anyhow::Context;
use tracing::{info, warn};

use crate::rules::backends::{render, Backend, Format};

/// Where and how the file is written: shared by both ways of following.
pub(super) struct Output {
    pub(super) group: String,
    pub(super) format: Format,
    pub(super) out: PathBuf,
    pub(super) port: u16,
    pub(super) network: Option<String>,
    pub(super) reload: Option<String>,
    pub(super) certs: PathBuf,
    pub(super) follower: String,
    pub(super) once: bool,
    pub(super) wake: Option<std::net::SocketAddr>,
}

impl Output {
    /// Writes `servers` when the text changed, then reloads; true once the
    /// balancer has what `servers` says (a failed write or reload is
    /// retried at the next change).
    pub(super) async fn apply(&self, servers: &[Backend], written: &mut Option<String>) -> bool {
        let waker;
        let servers = match (servers.is_empty(), self.wake) {
            (true, Some(address)) => {
                waker = [Backend {
                    id: String::new(),
                    name: "replicator's waker: the group has no ready member".into(),
                    address: address.to_string(),
                }];
                &waker[..]
            }
            _ => servers,
        };
        let text = render(self.format, &self.group, servers);
        if written.as_deref() == Some(text.as_str()) {
            return true;
        }
        if let Err(e) = write_atomically(&self.out, &text).await {
            warn!(error = %format!("{e:#}"), "cannot write the upstreams file");
            return false;
        }
        info!(group = %self.group, servers = servers.len(), out = %self.out.display(), "upstreams written");
        *written = self.reload(text).await;
        written.is_some()
    }

    async fn reload(&self, text: String) -> Option<String> {
        // Remembered only once the balancer has it: a failed reload is retried
        // on the next change or resync.
        match &self.reload {
            None => Some(text),
            Some(command) => match tokio::process::Command::new("sh").arg("-c").arg(command).status().await {
                Ok(status) if status.success() => {
                    info!(command, "reloaded");
                    Some(text)
                }
                Ok(status) => {
                    warn!(command, %status, "reload command failed; will retry");
                    None
                }
                Err(e) => {
                    warn!(command, error = %e, "reload command could not run; will retry");
                    None
                }
            },
        }
    }
}

/// A name no other follower has: each balancer must acknowledge for itself.
pub(super) fn unique_follower_name() -> String {
    let nanos = crate::base::clock::unix_nanos_now();
    format!("upstreams-{}-{:x}", std::process::id(), nanos & 0xffff_ffff_ffff)
}

/// Write beside, then rename: a reader never sees half a file.
/// The temporary file is created exclusively under a name nobody can
/// guess: nothing already there (a symlink planted to redirect the write)
/// is followed or overwritten.
async fn write_atomically(path: &Path, text: &str) -> anyhow::Result<()> {
    use tokio::io::AsyncWriteExt;
    let name = path.file_name().context("the output path has no file name")?.to_string_lossy();
    let unique = format!("{:x}{:x}", std::process::id(), crate::base::clock::unix_nanos_now());
    let tmp = path.with_file_name(format!(".{name}.{unique}.tmp"));
    let mut file = tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(&tmp)
        .await
        .with_context(|| format!("cannot create {}", tmp.display()))?;
    let written = async {
        file.write_all(text.as_bytes()).await?;
        file.flush().await
    };
    if let Err(e) = written.await {
        let _ = tokio::fs::remove_file(&tmp).await;
        return Err(e).with_context(|| format!("cannot write {}", tmp.display()));
    }
    tokio::fs::rename(&tmp, path).await.with_context(|| format!("cannot replace {}", path.display()))
}
