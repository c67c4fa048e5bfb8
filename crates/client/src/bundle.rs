//! Certificate bundles as the docker CLI lays them out, into rustls client
//! configurations built with one crypto provider (ring) explicitly, so no
//! code path depends on a process-wide default.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// A bundle file that cannot be used, named.
#[derive(Debug, thiserror::Error)]
#[error("{what} {}: {reason}", path.display())]
pub struct BundleError {
    /// What the file is for (`CA certificate`, `client key`...).
    pub what: &'static str,
    /// The file.
    pub path: PathBuf,
    /// Why it cannot be used.
    pub reason: String,
}

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, BundleError> {
    std::fs::read(path).map_err(|e| BundleError { what, path: path.to_owned(), reason: format!("cannot be read: {e}") })
}

fn certificates(what: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, BundleError> {
    let pem = read(what, path)?;
    let certs = CertificateDer::pem_slice_iter(&pem).collect::<Result<Vec<_>, _>>().ok().filter(|c| !c.is_empty());
    certs.ok_or_else(|| BundleError { what, path: path.to_owned(), reason: "holds no PEM certificate".into() })
}

fn roots(path: &Path) -> Result<RootCertStore, BundleError> {
    let mut roots = RootCertStore::empty();
    for cert in certificates("CA certificate", path)? {
        roots.add(cert).map_err(|e| BundleError {
            what: "CA certificate",
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
    }
    Ok(roots)
}

/// PEM as RFC 7468 has it: Swarm writes its node key with headers
/// (`kek-version: 0`) inside the block, which strict parsers refuse.
fn without_pem_headers(pem: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(pem);
    let kept: Vec<&str> = text.lines().filter(|l| l.starts_with("-----") || !l.contains(": ")).collect();
    (kept.join("\n") + "\n").into_bytes()
}

fn builder() -> rustls::ConfigBuilder<ClientConfig, rustls::WantsVerifier> {
    ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
}

/// A configuration that trusts only `dir/ca.pem` and presents
/// `dir/cert.pem` (its chain, leaf first) with `dir/key.pem`.
pub fn client_config(dir: &Path) -> Result<ClientConfig, BundleError> {
    let (ca, cert, key) = (dir.join("ca.pem"), dir.join("cert.pem"), dir.join("key.pem"));
    let chain = certificates("client certificate", &cert)?;
    let pem = without_pem_headers(&read("client key", &key)?);
    let private = PrivateKeyDer::from_pem_slice(&pem).map_err(|_| BundleError {
        what: "client key",
        path: key.clone(),
        reason: "holds no PEM private key".into(),
    })?;
    builder().with_root_certificates(roots(&ca)?).with_client_auth_cert(chain, private).map_err(|e| BundleError {
        what: "client key",
        path: key,
        reason: e.to_string(),
    })
}

/// A configuration that trusts only `ca` and presents no certificate (to
/// see a server refuse it).
pub fn anonymous_config(ca: &Path) -> Result<ClientConfig, BundleError> {
    Ok(builder().with_root_certificates(roots(ca)?).with_no_client_auth())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_bundle_names_the_file() {
        let e = client_config(Path::new("/nonexistent-bundle")).unwrap_err();
        assert!(e.to_string().starts_with("client certificate /nonexistent-bundle/cert.pem: cannot be read"), "{e}");
    }

    #[test]
    fn headers_inside_a_pem_block_are_dropped() {
        let pem = b"-----BEGIN EC PRIVATE KEY-----\nkek-version: 0\nAAAA\n-----END EC PRIVATE KEY-----\n";
        assert_eq!(without_pem_headers(pem), b"-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n");
    }
}
