//! PEM files into rustls configurations, with errors that name the file.
//!
//! One crypto provider (ring) for the whole process; every config is built
//! with it explicitly so no code path depends on a process-wide default.

pub mod authority;
pub mod pki;
mod reload;
mod verify;

pub use reload::{Claim, ServerTls};
pub use verify::{ClientVerifier, Root};

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use x509_parser::extensions::GeneralName;

/// A TLS file or setting that cannot be used, with the file named.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {what} {}: {error}", path.display())]
    /// The file could not be read.
    Read {
        /// What the file is for, as the message names it (`client CA`, `server key`...).
        what: &'static str,
        /// The file as configured.
        path: PathBuf,
        /// Why the read failed.
        error: std::io::Error,
    },
    #[error("{what} {} is not a PEM file with {expected}", path.display())]
    /// The file holds no PEM block of the kind expected.
    Parse {
        /// What the file is for, as the message names it.
        what: &'static str,
        /// The file as configured.
        path: PathBuf,
        /// What it should have held (`a certificate`, `a private key`).
        expected: &'static str,
    },
    #[error("{what} {}: {reason}", path.display())]
    /// The file parsed, but rustls refused what it holds.
    Invalid {
        /// What the file is for, as the message names it.
        what: &'static str,
        /// The file as configured.
        path: PathBuf,
        /// rustls's reason.
        reason: String,
    },
}

/// Where replicator writes an identity in a certificate: a URI subject
/// alternative name starting with this (the rules are `rules::access`).
pub const IDENTITY_URI_PREFIX: &str = "urn:replicator:";

/// The one crypto provider (ring) every config is built with; no process-wide default is installed.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|error| TlsError::Read { what, path: path.to_owned(), error })
}

/// Every certificate in a PEM file, in order; a file without one is an error.
/// `what` names the file in errors.
pub fn load_certs(what: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(what, path)?;
    let certs = CertificateDer::pem_slice_iter(&pem).collect::<Result<Vec<_>, _>>().ok().filter(|c| !c.is_empty());
    certs.ok_or_else(|| TlsError::Parse { what, path: path.to_owned(), expected: "a certificate" })
}

/// The first private key in a PEM file (PKCS#8, PKCS#1 or SEC1); `what` names the file in errors.
pub fn load_key(what: &'static str, path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = without_pem_headers(&read(what, path)?);
    PrivateKeyDer::from_pem_slice(&pem).map_err(|_| TlsError::Parse {
        what,
        path: path.to_owned(),
        expected: "a private key",
    })
}

/// PEM as RFC 7468 has it: Swarm writes its node key with headers
/// (`kek-version: 0`) inside the block, which strict parsers refuse.
fn without_pem_headers(pem: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(pem);
    let kept: Vec<&str> = text.lines().filter(|l| l.starts_with("-----") || !l.contains(": ")).collect();
    (kept.join("\n") + "\n").into_bytes()
}

fn roots(what: &'static str, ca: &Path) -> Result<RootCertStore, TlsError> {
    let mut store = RootCertStore::empty();
    for cert in load_certs(what, ca)? {
        store.add(cert).map_err(|e| TlsError::Invalid { what, path: ca.to_owned(), reason: e.to_string() })?;
    }
    Ok(store)
}

/// Paths of a certificate, its key, and the CA that vouches for the other side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// This side's certificate chain, leaf first (PEM).
    pub cert: PathBuf,
    /// The private key of `cert` (PEM).
    pub key: PathBuf,
    /// The only CA trusted to sign the other side's certificate (PEM).
    pub ca: PathBuf,
}

impl TlsFiles {
    /// The docker CLI's client layout: `ca.pem`, `cert.pem`, `key.pem`.
    pub fn client_in(dir: &Path) -> Self {
        Self { cert: dir.join("cert.pem"), key: dir.join("key.pem"), ca: dir.join("ca.pem") }
    }
}

/// A server that requires a client certificate signed by `files.ca` and
/// not revoked by `crl` (a PEM file of revocation lists), or, for agents,
/// a node certificate of the Swarm's root CA `swarm_ca`; with the verifier,
/// which tells which root vouches for a chain.
pub fn server_config(
    files: &TlsFiles,
    crl: Option<&Path>,
    swarm_ca: Option<&Path>,
) -> Result<(ServerConfig, Arc<ClientVerifier>), TlsError> {
    let clients = roots("client CA", &files.ca)?;
    let swarm = swarm_ca.map(|path| roots("swarm root CA", path)).transpose()?;
    let crls = crl.map(revocation_lists).transpose()?.unwrap_or_default();
    let verifier = ClientVerifier::new(clients, crls, swarm).map_err(|e| TlsError::Invalid {
        what: "client CA",
        path: files.ca.clone(),
        reason: e.to_string(),
    })?;
    let verifier = Arc::new(verifier);
    let certs = load_certs("server certificate", &files.cert)?;
    let key = load_key("server key", &files.key)?;
    let config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_client_cert_verifier(verifier.clone())
        .with_single_cert(certs, key)
        .map_err(|e| TlsError::Invalid { what: "server key", path: files.key.clone(), reason: e.to_string() })?;
    Ok((config, verifier))
}

/// Every revocation list in a PEM file; a file without one is an error.
fn revocation_lists(path: &Path) -> Result<Vec<CertificateRevocationListDer<'static>>, TlsError> {
    let pem = read("revocation list", path)?;
    let lists = CertificateRevocationListDer::pem_slice_iter(&pem).collect::<Result<Vec<_>, _>>().ok();
    lists.filter(|l| !l.is_empty()).ok_or_else(|| TlsError::Parse {
        what: "revocation list",
        path: path.to_owned(),
        expected: "a certificate revocation list",
    })
}

/// A client that trusts only `files.ca` and presents `files.cert`.
pub fn client_config(files: &TlsFiles) -> Result<ClientConfig, TlsError> {
    let roots = roots("CA certificate", &files.ca)?;
    let certs = load_certs("client certificate", &files.cert)?;
    let key = load_key("client key", &files.key)?;
    ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_root_certificates(roots)
        .with_client_auth_cert(certs, key)
        .map_err(|e| TlsError::Invalid { what: "client key", path: files.key.clone(), reason: e.to_string() })
}

/// The URI subject alternative names of a DER certificate (where replicator
/// writes identities), in order; an error when the certificate or its
/// names cannot be read, so that an unreadable identity is never taken for
/// none.
pub fn uri_names(cert: &CertificateDer<'_>) -> Result<Vec<String>, String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref())
        .map_err(|e| format!("the certificate cannot be read: {e}"))?;
    let san = parsed
        .subject_alternative_name()
        .map_err(|e| format!("the certificate's subject alternative names cannot be read: {e}"))?;
    let Some(san) = san else { return Ok(Vec::new()) };
    let mut uris = Vec::new();
    for name in &san.value.general_names {
        match name {
            GeneralName::URI(uri) => uris.push((*uri).to_owned()),
            // x509-parser keeps an entry it cannot read (a DNS name that is
            // not text, an unknown kind) as `Invalid`: it could have been ours.
            GeneralName::Invalid(tag, _) => {
                return Err(format!(
                    "the certificate's subject alternative names cannot be read: an entry [{}] that does not parse",
                    tag.0
                ))
            }
            _ => {}
        }
    }
    Ok(uris)
}

/// The node a certificate the Swarm's root verified names (its common
/// name), when it is a manager's or a worker's; else why it is no node's.
pub fn swarm_node(cert: &CertificateDer<'_>) -> Result<String, String> {
    let refused = || "a certificate of the swarm's CA that is no node's (OU swarm-manager or swarm-worker, CN its id)";
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).map_err(|_| refused().to_owned())?;
    let text = |attr: Option<&x509_parser::x509::AttributeTypeAndValue<'_>>| {
        attr.and_then(|a| a.as_str().ok()).map(str::to_owned)
    };
    let role = text(parsed.subject().iter_organizational_unit().next());
    let node = text(parsed.subject().iter_common_name().next());
    match (role.as_deref(), node) {
        (Some("swarm-manager" | "swarm-worker"), Some(node)) if !node.is_empty() => Ok(node),
        _ => Err(refused().into()),
    }
}

/// The subject common name of a DER certificate.
pub fn common_name(cert: &CertificateDer<'_>) -> Option<String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    let cn = parsed.subject().iter_common_name().next()?.as_str().ok()?.to_owned();
    Some(cn)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_san(content: Vec<u8>) -> CertificateDer<'static> {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.custom_extensions.push(rcgen::CustomExtension::from_oid_content(&[2, 5, 29, 17], content));
        let key = rcgen::KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().clone()
    }

    #[test]
    fn names_that_do_not_parse_are_an_error_not_an_empty_list() {
        for (what, san) in [
            ("a DNS name that is not text", vec![0x30, 0x06, 0x82, 0x04, b'b', b'a', b'd', 0xff]),
            ("an entry of no known kind", vec![0x30, 0x03, 0x89, 0x01, 0x00]),
            ("a truncated sequence", vec![0x30, 0x09, 0x86, 0x02]),
        ] {
            let read = uri_names(&with_san(san));
            assert!(read.as_ref().is_err_and(|e| e.contains("cannot be read")), "{what}: {read:?}");
        }
        let uri = b"urn:replicator:operator";
        let mut ok = vec![0x30, 2 + uri.len() as u8, 0x86, uri.len() as u8];
        ok.extend_from_slice(uri);
        assert_eq!(uri_names(&with_san(ok)), Ok(vec!["urn:replicator:operator".to_owned()]));
    }
}
