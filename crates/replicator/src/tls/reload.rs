//! The server's TLS configuration, swapped whole on reload: a rotated
//! server pair, a new client CA or a new revocation list serves the next
//! handshake. Connections already made are told of every reload (a
//! generation number they watch) and ask whether their peer's chain still
//! verifies, so that a revoked certificate loses its open connections too.
//! A reload that fails keeps the running configuration, and says so until
//! one succeeds: `/healthz` reads [`ServerTls::reload_failure`].

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use rustls::ServerConfig;
use rustls_pki_types::CertificateDer;
use tokio::sync::watch;

use super::verify::{ClientVerifier, Root};
use super::{server_config, TlsError, TlsFiles};

/// The API's TLS configuration and the files it is read from.
pub struct ServerTls {
    files: TlsFiles,
    crl: Option<PathBuf>,
    swarm_ca: Option<PathBuf>,
    current: RwLock<Loaded>,
    /// Why the last reload failed, until one succeeds.
    failure: RwLock<Option<String>>,
    /// Bumped by every successful reload.
    generation: watch::Sender<u64>,
}

/// One reading of the files.
struct Loaded {
    config: Arc<ServerConfig>,
    verifier: Arc<ClientVerifier>,
    stamps: Vec<Option<SystemTime>>,
}

/// Who a verified client is, as far as TLS can tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The client CA verified it: its URI names, or why they cannot be read.
    Names(Result<Vec<String>, String>),
    /// The Swarm's root verified it: the node it names, or why it names none.
    SwarmNode(Result<String, String>),
}

impl ServerTls {
    /// Reads `files`, the revocation list `crl` and the swarm's root CA
    /// `swarm_ca` (agents' node certificates), when given.
    pub fn load(files: TlsFiles, crl: Option<PathBuf>, swarm_ca: Option<PathBuf>) -> Result<Self, TlsError> {
        let loaded = read(&files, crl.as_ref(), swarm_ca.as_ref())?;
        let (generation, _) = watch::channel(0);
        Ok(Self { files, crl, swarm_ca, current: RwLock::new(loaded), failure: RwLock::default(), generation })
    }

    fn lock(&self) -> std::sync::RwLockReadGuard<'_, Loaded> {
        self.current.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The configuration new handshakes use.
    pub fn current(&self) -> Arc<ServerConfig> {
        self.lock().config.clone()
    }

    /// What a chain the handshake accepted (leaf first) claims.
    pub fn claim_of(&self, chain: &[CertificateDer<'_>]) -> Claim {
        let Some(leaf) = chain.first() else { return Claim::Names(Ok(Vec::new())) };
        match self.lock().verifier.root_of(chain) {
            Some(Root::Swarm) => Claim::SwarmNode(super::swarm_node(leaf)),
            Some(Root::Clients) => Claim::Names(super::uri_names(leaf)),
            // A reload since the handshake (a revocation) took its trust away.
            None => Claim::Names(Err("the certificate no longer verifies".into())),
        }
    }

    /// Whether `chain` still verifies under the configuration in force.
    pub fn still_trusted(&self, chain: &[CertificateDer<'_>]) -> bool {
        self.lock().verifier.root_of(chain).is_some()
    }

    /// Tells of every successful reload: a connection that watches it asks
    /// [`Self::still_trusted`] again.
    pub fn reloads(&self) -> watch::Receiver<u64> {
        self.generation.subscribe()
    }

    /// Reads the files again; on failure the running configuration stays,
    /// and [`Self::reload_failure`] says why until a reload succeeds.
    pub fn reload(&self) -> Result<(), TlsError> {
        let loaded = match read(&self.files, self.crl.as_ref(), self.swarm_ca.as_ref()) {
            Ok(loaded) => loaded,
            Err(e) => {
                *self.failure.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(e.to_string());
                return Err(e);
            }
        };
        *self.current.write().unwrap_or_else(std::sync::PoisonError::into_inner) = loaded;
        *self.failure.write().unwrap_or_else(std::sync::PoisonError::into_inner) = None;
        self.generation.send_modify(|g| *g += 1);
        Ok(())
    }

    /// Why the last reload failed, while no later one succeeded.
    pub fn reload_failure(&self) -> Option<String> {
        self.failure.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Whether a file changed (its modification time) since the last load
    /// (or the last failed attempt, so a broken file is not read every look).
    pub fn changed_on_disk(&self) -> bool {
        let now = stamps(&self.files, self.crl.as_ref(), self.swarm_ca.as_ref());
        let mut current = self.current.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        if now == current.stamps {
            return false;
        }
        current.stamps = now;
        true
    }
}

fn read(files: &TlsFiles, crl: Option<&PathBuf>, swarm_ca: Option<&PathBuf>) -> Result<Loaded, TlsError> {
    let stamps = stamps(files, crl, swarm_ca);
    let (config, verifier) = server_config(files, crl.map(PathBuf::as_path), swarm_ca.map(PathBuf::as_path))?;
    Ok(Loaded { config: Arc::new(config), verifier, stamps })
}

fn stamps(files: &TlsFiles, crl: Option<&PathBuf>, swarm_ca: Option<&PathBuf>) -> Vec<Option<SystemTime>> {
    [Some(&files.cert), Some(&files.key), Some(&files.ca), crl, swarm_ca]
        .into_iter()
        .flatten()
        .map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
        .collect()
}
