//! The CA's work after `certs init`: issue a bundle for one identity (or a
//! server), renew one, revoke one. A bundle is the docker CLI's layout
//! (`ca.pem`, `cert.pem`, `key.pem`; a server's `server-cert.pem` and
//! `server-key.pem`) and never holds the CA's key: it is what is mounted
//! into a container, while the folder `certs init` wrote (with
//! `ca-key.pem`) stays with the operator.

use std::path::{Path, PathBuf};

use rcgen::{
    CertificateRevocationListParams, Issuer, KeyIdMethod, KeyPair, RevocationReason, RevokedCertParams, SerialNumber,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateRevocationListDer;

use super::pki::{
    client_params, midnight, server_params, server_sans, today, write_file, CertsError, CA_CERT, CA_KEY, CLIENT_CERT,
    CLIENT_KEY, SERVER_CERT, SERVER_KEY,
};

/// What a bundle is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// A client: its common name and the URI names that carry its identity.
    Client {
        /// The subject's common name (for people and logs).
        common_name: String,
        /// `urn:replicator:...` names.
        uris: Vec<String>,
    },
    /// replicator's server, answering to these names and addresses (beside
    /// the defaults, `localhost` and the loopback addresses).
    Server {
        /// Extra DNS names and IP addresses.
        sans: Vec<String>,
    },
}

/// What `certs issue` was asked for.
#[derive(Debug, Clone)]
pub struct IssueOptions {
    /// The folder `certs init` wrote: `ca.pem` and `ca-key.pem`.
    pub ca_dir: PathBuf,
    /// The bundle's folder, created if missing.
    pub out: PathBuf,
    /// Who the bundle is for.
    pub subject: Subject,
    /// Validity, 1 to 36500 days from now.
    pub days: u32,
    /// Replace an existing bundle (a renewal).
    pub force: bool,
}

/// Whether `a` and `b` are one folder however they are written (`./certs`,
/// an absolute path, a symbolic link): compared once resolved. A folder that
/// does not exist yet resolves through its nearest existing parent.
fn same_folder(a: &Path, b: &Path) -> bool {
    resolved(a) == resolved(b)
}

fn resolved(path: &Path) -> PathBuf {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
    let mut missing = Vec::new();
    let mut at = absolute.as_path();
    loop {
        if let Ok(real) = at.canonicalize() {
            return missing.iter().rev().fold(real, |p, part| p.join(part));
        }
        match (at.parent(), at.file_name()) {
            (Some(parent), Some(name)) => {
                missing.push(name.to_owned());
                at = parent;
            }
            _ => return absolute,
        }
    }
}

/// The files of a bundle for `subject`.
fn files_of(subject: &Subject) -> [&'static str; 3] {
    match subject {
        Subject::Client { .. } => [CA_CERT, CLIENT_CERT, CLIENT_KEY],
        Subject::Server { .. } => [CA_CERT, SERVER_CERT, SERVER_KEY],
    }
}

/// Writes a bundle signed by the CA in `ca_dir`; refuses to overwrite one
/// unless `force`, and then writes nothing.
pub fn issue(opts: &IssueOptions) -> Result<Vec<PathBuf>, CertsError> {
    if opts.days == 0 || opts.days > 36_500 {
        return Err(CertsError::BadDays);
    }
    if same_folder(&opts.out, &opts.ca_dir) {
        return Err(CertsError::BadBundle(
            "a bundle is never written beside the CA's key: choose another --out".into(),
        ));
    }
    let names = files_of(&opts.subject);
    if !opts.force {
        if let Some(existing) = names.iter().map(|f| opts.out.join(f)).find(|p| p.exists()) {
            return Err(CertsError::Exists(existing));
        }
    }
    let (ca_pem, issuer) = load_ca(&opts.ca_dir)?;
    let key = KeyPair::generate()?;
    let params = match &opts.subject {
        Subject::Client { common_name, uris } => client_params(common_name, uris, opts.days)?,
        Subject::Server { sans } => server_params(&server_sans(sans), opts.days)?,
    };
    let cert = params.signed_by(&key, &issuer)?;
    std::fs::create_dir_all(&opts.out).map_err(|source| CertsError::Write { path: opts.out.clone(), source })?;
    let contents = [(ca_pem, false), (cert.pem(), false), (key.serialize_pem(), true)];
    names
        .iter()
        .zip(contents)
        .map(|(file, (pem, secret))| {
            let path = opts.out.join(file);
            write_file(&path, &pem, secret).map(|()| path)
        })
        .collect()
}

/// What the bundle in `dir` was issued for, read from its certificate, so a
/// renewal issues the same again.
pub fn subject_of(dir: &Path) -> Result<Subject, CertsError> {
    let (path, server) =
        if dir.join(CLIENT_CERT).exists() { (dir.join(CLIENT_CERT), false) } else { (dir.join(SERVER_CERT), true) };
    let certs = super::load_certs("bundle certificate", &path).map_err(|e| CertsError::BadBundle(e.to_string()))?;
    let leaf = &certs[0];
    let (_, parsed) = x509_parser::parse_x509_certificate(leaf.as_ref())
        .map_err(|e| CertsError::BadBundle(format!("{}: {e}", path.display())))?;
    let mut uris = Vec::new();
    let mut sans = Vec::new();
    if let Ok(Some(san)) = parsed.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                x509_parser::extensions::GeneralName::URI(u) => uris.push((*u).to_owned()),
                x509_parser::extensions::GeneralName::DNSName(d) => sans.push((*d).to_owned()),
                x509_parser::extensions::GeneralName::IPAddress(ip) => {
                    if let Some(ip) = ip_text(ip) {
                        sans.push(ip);
                    }
                }
                _ => {}
            }
        }
    }
    Ok(if server {
        Subject::Server { sans }
    } else {
        let common_name = super::common_name(leaf).unwrap_or_else(|| "replicator client".into());
        Subject::Client { common_name, uris }
    })
}

fn ip_text(raw: &[u8]) -> Option<String> {
    match raw.len() {
        4 => Some(std::net::Ipv4Addr::from(<[u8; 4]>::try_from(raw).ok()?).to_string()),
        16 => Some(std::net::Ipv6Addr::from(<[u8; 16]>::try_from(raw).ok()?).to_string()),
        _ => None,
    }
}

/// The CA certificate (PEM, as bundles carry it) and the issuer it signs as.
fn load_ca(dir: &Path) -> Result<(String, Issuer<'static, KeyPair>), CertsError> {
    let read = |name: &str| {
        let path = dir.join(name);
        std::fs::read_to_string(&path)
            .map_err(|e| CertsError::BadBundle(format!("cannot read {}: {e}", path.display())))
    };
    let (ca_pem, key_pem) = (read(CA_CERT)?, read(CA_KEY)?);
    let key = KeyPair::from_pem(&key_pem)
        .map_err(|e| CertsError::BadBundle(format!("{} is not a private key: {e}", dir.join(CA_KEY).display())))?;
    let issuer = Issuer::from_ca_cert_pem(&ca_pem, key)
        .map_err(|e| CertsError::BadBundle(format!("{} is not a CA certificate: {e}", dir.join(CA_CERT).display())))?;
    Ok((ca_pem, issuer))
}

/// Adds `cert` (a bundle's certificate, PEM) to the revocation list `crl`,
/// keeping what it already lists, signed by the CA in `ca_dir`; the list is
/// valid for `days`. Returns the revoked serial number, in hex.
pub fn revoke(ca_dir: &Path, crl: &Path, cert: &Path, days: u32) -> Result<String, CertsError> {
    if days == 0 || days > 36_500 {
        return Err(CertsError::BadDays);
    }
    let (_, issuer) = load_ca(ca_dir)?;
    let certs = super::load_certs("certificate to revoke", cert).map_err(|e| CertsError::BadBundle(e.to_string()))?;
    let (_, parsed) = x509_parser::parse_x509_certificate(certs[0].as_ref())
        .map_err(|e| CertsError::BadBundle(format!("{}: {e}", cert.display())))?;
    let serial = parsed.tbs_certificate.raw_serial().to_vec();
    let mut revoked = listed(crl)?;
    if !revoked.iter().any(|r| r.serial_number == SerialNumber::from_slice(&serial)) {
        revoked.push(RevokedCertParams {
            serial_number: SerialNumber::from_slice(&serial),
            revocation_time: midnight!(today()),
            reason_code: Some(RevocationReason::Unspecified),
            invalidity_date: None,
        });
    }
    let params = CertificateRevocationListParams {
        this_update: midnight!(today() - chrono::Days::new(1)),
        next_update: midnight!(today() + chrono::Days::new(u64::from(days))),
        crl_number: SerialNumber::from(crate::base::clock::unix_now().max(1) as u64),
        issuing_distribution_point: None,
        revoked_certs: revoked,
        key_identifier_method: KeyIdMethod::Sha256,
    };
    let pem = params.signed_by(&issuer)?.pem()?;
    write_file(crl, &pem, false)?;
    Ok(serial.iter().map(|b| format!("{b:02x}")).collect())
}

/// What a revocation list already holds: none when the file does not
/// exist; an error when it exists but cannot be read, so that writing the
/// list again never drops the revocations it held.
fn listed(crl: &Path) -> Result<Vec<RevokedCertParams>, CertsError> {
    let pem = match std::fs::read(crl) {
        Ok(pem) => pem,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(CertsError::BadBundle(format!(
                "cannot read the revocation list {} ({e}): refusing to write a list that would drop its revocations",
                crl.display()
            )))
        }
    };
    let bad = |why: String| CertsError::BadBundle(format!("{}: {why}", crl.display()));
    let der = CertificateRevocationListDer::from_pem_slice(&pem).map_err(|e| bad(e.to_string()))?;
    let (_, parsed) = x509_parser::parse_x509_crl(der.as_ref()).map_err(|e| bad(e.to_string()))?;
    let revoked = parsed.iter_revoked_certificates().map(|r| {
        let day = chrono::DateTime::from_timestamp(r.revocation_date.timestamp(), 0).map(|t| t.date_naive());
        RevokedCertParams {
            serial_number: SerialNumber::from_slice(r.raw_serial()),
            revocation_time: midnight!(day.unwrap_or_else(today)),
            reason_code: Some(RevocationReason::Unspecified),
            invalidity_date: None,
        }
    });
    Ok(revoked.collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::pki::{init, InitOptions};
    use crate::tls::{self, TlsFiles};

    fn tempdir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("replicator-authority-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn ca(dir: &Path) {
        init(&InitOptions { out: dir.to_owned(), sans: Vec::new(), days: 30, force: false }).unwrap();
    }

    fn app(ca_dir: &Path, out: &Path) -> IssueOptions {
        IssueOptions {
            ca_dir: ca_dir.to_owned(),
            out: out.to_owned(),
            subject: Subject::Client { common_name: "app:web".into(), uris: vec!["urn:replicator:app:web".into()] },
            days: 30,
            force: false,
        }
    }

    #[test]
    fn a_client_bundle_holds_the_ca_its_pair_and_no_other_key() {
        let root = tempdir("client");
        let (ca_dir, out) = (root.join("ca"), root.join("web"));
        ca(&ca_dir);
        issue(&app(&ca_dir, &out)).unwrap();
        let mut files: Vec<String> =
            std::fs::read_dir(&out).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into()).collect();
        files.sort();
        assert_eq!(files, ["ca.pem", "cert.pem", "key.pem"]);
        tls::client_config(&TlsFiles::client_in(&out)).unwrap();
        let cert = &tls::load_certs("c", &out.join(CLIENT_CERT)).unwrap()[0];
        assert_eq!(tls::uri_names(cert).unwrap(), ["urn:replicator:app:web"]);
        assert_eq!(subject_of(&out).unwrap(), app(&ca_dir, &out).subject, "a renewal issues the same subject");
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn a_bundle_is_never_written_beside_the_ca_key_nor_over_another() {
        let root = tempdir("refuse");
        let ca_dir = root.join("ca");
        ca(&ca_dir);
        assert!(matches!(issue(&app(&ca_dir, &ca_dir)), Err(CertsError::BadBundle(_))));
        let dotted = ca_dir.join("..").join("ca");
        assert!(matches!(issue(&app(&ca_dir, &dotted)), Err(CertsError::BadBundle(_))), "{}", dotted.display());
        let link = root.join("link-to-ca");
        std::os::unix::fs::symlink(&ca_dir, &link).unwrap();
        assert!(matches!(issue(&app(&ca_dir, &link)), Err(CertsError::BadBundle(_))), "through a symbolic link");
        assert!(!same_folder(&root.join("new").join("sub"), &ca_dir), "a folder still to be made is another");
        let out = root.join("web");
        issue(&app(&ca_dir, &out)).unwrap();
        assert!(matches!(issue(&app(&ca_dir, &out)), Err(CertsError::Exists(_))));
        issue(&IssueOptions { force: true, ..app(&ca_dir, &out) }).unwrap();
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn a_server_bundle_loads_as_a_server_and_a_revocation_list_keeps_what_it_listed() {
        let root = tempdir("server");
        let (ca_dir, server, web, api) = (root.join("ca"), root.join("server"), root.join("web"), root.join("api"));
        ca(&ca_dir);
        let server_opts = IssueOptions {
            subject: Subject::Server { sans: vec!["replicator".into()] },
            out: server.clone(),
            ..app(&ca_dir, &server)
        };
        issue(&server_opts).unwrap();
        issue(&app(&ca_dir, &web)).unwrap();
        issue(&app(&ca_dir, &api)).unwrap();
        let crl = root.join("crl.pem");
        let first = revoke(&ca_dir, &crl, &web.join(CLIENT_CERT), 7).unwrap();
        let second = revoke(&ca_dir, &crl, &api.join(CLIENT_CERT), 7).unwrap();
        assert_ne!(first, second);
        assert_eq!(listed(&crl).unwrap().len(), 2, "the second revocation kept the first");
        let unreadable = root.join("unreadable-crl");
        std::fs::create_dir(&unreadable).unwrap();
        let refused = revoke(&ca_dir, &unreadable, &web.join(CLIENT_CERT), 7).unwrap_err();
        assert!(refused.to_string().contains("cannot read the revocation list"), "{refused}");
        let files = TlsFiles { cert: server.join(SERVER_CERT), key: server.join(SERVER_KEY), ca: server.join(CA_CERT) };
        tls::server_config(&files, Some(&crl), None).unwrap();
        assert!(
            matches!(subject_of(&server).unwrap(), Subject::Server { sans } if sans.contains(&"replicator".to_owned()))
        );
        std::fs::remove_dir_all(&root).unwrap();
    }
}
