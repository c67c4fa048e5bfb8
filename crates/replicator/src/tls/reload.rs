//! The server's TLS configuration, swapped whole on reload: a rotated
//! server pair, a new client CA or a new revocation list serves the next
//! handshake, while connections already made keep the configuration they
//! were accepted with. A reload that fails keeps the running configuration.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use rustls::ServerConfig;

use super::{server_config, TlsError, TlsFiles};

/// The API's TLS configuration and the files it is read from.
pub struct ServerTls {
    files: TlsFiles,
    crl: Option<PathBuf>,
    current: RwLock<(Arc<ServerConfig>, Vec<Option<SystemTime>>)>,
}

impl ServerTls {
    /// Reads `files` and the revocation list `crl`, if any.
    pub fn load(files: TlsFiles, crl: Option<PathBuf>) -> Result<Self, TlsError> {
        let config = Arc::new(server_config(&files, crl.as_deref())?);
        let stamps = stamps(&files, crl.as_ref());
        Ok(Self { files, crl, current: RwLock::new((config, stamps)) })
    }

    /// A configuration made in memory (tests), never reloaded.
    pub fn fixed(config: Arc<ServerConfig>) -> Self {
        let files = TlsFiles { cert: PathBuf::new(), key: PathBuf::new(), ca: PathBuf::new() };
        Self { files, crl: None, current: RwLock::new((config, Vec::new())) }
    }

    /// The configuration new handshakes use.
    pub fn current(&self) -> Arc<ServerConfig> {
        self.current.read().unwrap_or_else(std::sync::PoisonError::into_inner).0.clone()
    }

    /// Reads the files again; on failure the running configuration stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        if self.files.cert.as_os_str().is_empty() {
            return Ok(());
        }
        let stamps = stamps(&self.files, self.crl.as_ref());
        let config = Arc::new(server_config(&self.files, self.crl.as_deref())?);
        *self.current.write().unwrap_or_else(std::sync::PoisonError::into_inner) = (config, stamps);
        Ok(())
    }

    /// Whether a file changed (its modification time) since the last load.
    pub fn changed_on_disk(&self) -> bool {
        if self.files.cert.as_os_str().is_empty() {
            return false;
        }
        let now = stamps(&self.files, self.crl.as_ref());
        self.current.read().unwrap_or_else(std::sync::PoisonError::into_inner).1 != now
    }
}

fn stamps(files: &TlsFiles, crl: Option<&PathBuf>) -> Vec<Option<SystemTime>> {
    [Some(&files.cert), Some(&files.key), Some(&files.ca), crl]
        .into_iter()
        .flatten()
        .map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
        .collect()
}
