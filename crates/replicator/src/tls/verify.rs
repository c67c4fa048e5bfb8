//! Who vouches for a client certificate. Two roots may: the client CA
//! (replicator's own certificates, checked against the revocation list when
//! there is one) and the Swarm's root CA (node certificates, which the
//! Swarm rotates itself and no list of ours names). Each has a verifier of
//! its own, so a revocation list of the client CA never makes a node
//! certificate's status "unknown", and which root verified a chain is
//! known, not guessed from an issuer's name: a node certificate issued
//! through an intermediate, or by a second root in the Swarm CA file, is
//! still a node's, and nothing the client CA signed can pass for one.

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, UnixTime};

use super::provider;

/// The root that verified a client's chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Root {
    /// The client CA: the certificate's URIs name its identity.
    Clients,
    /// The Swarm's root CA: the certificate is a node's, or nothing.
    Swarm,
}

/// Accepts a chain that either root verifies.
#[derive(Debug)]
pub struct ClientVerifier {
    clients: Arc<dyn ClientCertVerifier>,
    swarm: Option<Arc<dyn ClientCertVerifier>>,
    hints: Vec<DistinguishedName>,
}

impl ClientVerifier {
    /// Verifiers for `clients` (with `crls`, when any) and `swarm` (without).
    pub fn new(
        clients: rustls::RootCertStore,
        crls: Vec<CertificateRevocationListDer<'static>>,
        swarm: Option<rustls::RootCertStore>,
    ) -> Result<Self, rustls::server::VerifierBuilderError> {
        let mut hints = clients.subjects();
        let mut builder = WebPkiClientVerifier::builder_with_provider(Arc::new(clients), provider());
        if !crls.is_empty() {
            // Only the client's own certificate is checked: the CA is ours.
            builder = builder.with_crls(crls).only_check_end_entity_revocation();
        }
        let clients = builder.build()?;
        let swarm = match swarm {
            Some(roots) => {
                hints.extend(roots.subjects());
                Some(WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider()).build()?)
            }
            None => None,
        };
        Ok(Self { clients, swarm, hints })
    }

    /// The root that verifies `chain` (leaf first) now, if one does. The
    /// Swarm's is asked first: whatever it verifies is a node's or nothing.
    pub fn root_of(&self, chain: &[CertificateDer<'_>]) -> Option<Root> {
        let (leaf, intermediates) = chain.split_first()?;
        let now = UnixTime::now();
        let verifies = |v: &Arc<dyn ClientCertVerifier>| v.verify_client_cert(leaf, intermediates, now).is_ok();
        if self.swarm.as_ref().is_some_and(verifies) {
            return Some(Root::Swarm);
        }
        verifies(&self.clients).then_some(Root::Clients)
    }
}

impl ClientCertVerifier for ClientVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.hints
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        match self.clients.verify_client_cert(end_entity, intermediates, now) {
            Ok(verified) => Ok(verified),
            Err(first) => match &self.swarm {
                // The client CA's reason (revoked, expired) is the one to report.
                Some(swarm) => swarm.verify_client_cert(end_entity, intermediates, now).map_err(|_| first),
                None => Err(first),
            },
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.clients.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.clients.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.clients.supported_verify_schemes()
    }
}
