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
    swarm_ca: Option<PathBuf>,
    current: RwLock<Loaded>,
}

/// One reading of the files.
struct Loaded {
    config: Arc<ServerConfig>,
    /// The swarm root CA's subject: certificates it issued are Swarm nodes.
    swarm_subject: Option<Vec<u8>>,
    stamps: Vec<Option<SystemTime>>,
}

impl ServerTls {
    /// Reads `files`, the revocation list `crl` and the swarm's root CA
    /// `swarm_ca` (agents' node certificates), when given.
    pub fn load(files: TlsFiles, crl: Option<PathBuf>, swarm_ca: Option<PathBuf>) -> Result<Self, TlsError> {
        let loaded = read(&files, crl.as_ref(), swarm_ca.as_ref())?;
        Ok(Self { files, crl, swarm_ca, current: RwLock::new(loaded) })
    }

    fn lock(&self) -> std::sync::RwLockReadGuard<'_, Loaded> {
        self.current.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The configuration new handshakes use.
    pub fn current(&self) -> Arc<ServerConfig> {
        self.lock().config.clone()
    }

    /// The Swarm node a client certificate proves, when the swarm's root CA issued it.
    pub fn swarm_node_of(&self, cert: &rustls_pki_types::CertificateDer<'_>) -> Option<Result<String, String>> {
        let subject = self.lock().swarm_subject.clone()?;
        super::swarm_node(cert, &subject)
    }

    /// Reads the files again; on failure the running configuration stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let loaded = read(&self.files, self.crl.as_ref(), self.swarm_ca.as_ref())?;
        *self.current.write().unwrap_or_else(std::sync::PoisonError::into_inner) = loaded;
        Ok(())
    }

    /// Whether a file changed (its modification time) since the last load.
    pub fn changed_on_disk(&self) -> bool {
        stamps(&self.files, self.crl.as_ref(), self.swarm_ca.as_ref()) != self.lock().stamps
    }
}

fn read(files: &TlsFiles, crl: Option<&PathBuf>, swarm_ca: Option<&PathBuf>) -> Result<Loaded, TlsError> {
    let stamps = stamps(files, crl, swarm_ca);
    let config = Arc::new(server_config(files, crl.map(PathBuf::as_path), swarm_ca.map(PathBuf::as_path))?);
    let swarm_subject = swarm_ca.map(|path| super::subject_of("swarm root CA", path)).transpose()?;
    Ok(Loaded { config, swarm_subject, stamps })
}

fn stamps(files: &TlsFiles, crl: Option<&PathBuf>, swarm_ca: Option<&PathBuf>) -> Vec<Option<SystemTime>> {
    [Some(&files.cert), Some(&files.key), Some(&files.ca), crl, swarm_ca]
        .into_iter()
        .flatten()
        .map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
        .collect()
}
