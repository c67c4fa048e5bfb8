//! `certs init`: a development CA with a server and a client certificate, in
//! the docker CLI's layout so the folder also works as `DOCKER_CERT_PATH`.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use chrono::{Days, NaiveDate};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};

/// Names every server certificate answers to, before any `--san`.
pub const DEFAULT_SANS: &[&str] = &["localhost", "127.0.0.1", "::1"];
/// The CA certificate both sides trust; the docker CLI's name for it.
pub const CA_CERT: &str = "ca.pem";
/// The CA's private key, needed only to sign more certificates (mode 0600).
pub const CA_KEY: &str = "ca-key.pem";
/// The server's certificate, valid for [`DEFAULT_SANS`] and every `--san`.
pub const SERVER_CERT: &str = "server-cert.pem";
/// The server's private key (mode 0600).
pub const SERVER_KEY: &str = "server-key.pem";
/// The client's certificate, named as the docker CLI expects.
pub const CLIENT_CERT: &str = "cert.pem";
/// The client's private key, named as the docker CLI expects (mode 0600).
pub const CLIENT_KEY: &str = "key.pem";
const ALL_FILES: [&str; 6] = [CA_CERT, CA_KEY, SERVER_CERT, SERVER_KEY, CLIENT_CERT, CLIENT_KEY];

/// What `certs init` was asked for.
#[derive(Debug, Clone)]
pub struct InitOptions {
    /// Folder to write the six files into, created if missing.
    pub out: PathBuf,
    /// Extra subject alternative names for the server (DNS names or IP addresses).
    pub sans: Vec<String>,
    /// Validity of every certificate, 1 to 36500 days from now.
    pub days: u32,
    /// Replace existing files instead of refusing.
    pub force: bool,
}

/// Why `certs init` failed; every cause but `Write` is found before any file is touched.
#[derive(Debug, thiserror::Error)]
pub enum CertsError {
    /// One of the six files is already there and `force` is off.
    #[error("{} already exists (use --force to overwrite)", .0.display())]
    Exists(PathBuf),
    /// A `--san` that is neither a DNS name nor an IP address.
    #[error("invalid subject alternative name {0:?}: use a DNS name or an IP address")]
    BadSan(String),
    /// `days` outside 1..=36500.
    #[error("--days must be between 1 and 36500")]
    BadDays,
    /// A folder or file could not be created or written; earlier files may already be written.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The folder or file that failed.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The CA folder, a bundle or a revocation list cannot be used.
    #[error("{0}")]
    BadBundle(String),
    /// rcgen could not build a key or a certificate.
    #[error("cannot generate certificates: {0}")]
    Generate(#[from] rcgen::Error),
}

/// Writes the six files and returns their paths; refuses to overwrite any of
/// them unless `force`, and then writes nothing at all.
pub fn init(opts: &InitOptions) -> Result<Vec<PathBuf>, CertsError> {
    if opts.days == 0 || opts.days > 36_500 {
        return Err(CertsError::BadDays);
    }
    if !opts.force {
        if let Some(existing) = ALL_FILES.iter().map(|f| opts.out.join(f)).find(|p| p.exists()) {
            return Err(CertsError::Exists(existing));
        }
    }
    let bundle = generate(opts)?;
    std::fs::create_dir_all(&opts.out).map_err(|source| CertsError::Write { path: opts.out.clone(), source })?;
    bundle
        .into_iter()
        .map(|(file, pem, secret)| {
            let path = opts.out.join(file);
            write_file(&path, &pem, secret).map(|_| path)
        })
        .collect()
}

/// Midnight UTC of a chrono date, as rcgen takes dates (a macro: rcgen's
/// date type belongs to a date crate this one does not use).
macro_rules! midnight {
    ($date:expr) => {{
        let d: chrono::NaiveDate = $date;
        rcgen::date_time_ymd(
            chrono::Datelike::year(&d),
            chrono::Datelike::month(&d) as u8,
            chrono::Datelike::day(&d) as u8,
        )
    }};
}
pub(super) use midnight;

/// Today, UTC.
pub(super) fn today() -> NaiveDate {
    crate::base::clock::utc_now().date_naive()
}

/// Sets a certificate's validity: from yesterday (a day of slack for
/// clocks a little behind ours; rcgen takes whole dates) for `days`.
pub(super) fn set_validity(p: &mut CertificateParams, days: u32) {
    p.not_before = midnight!(today() - Days::new(1));
    p.not_after = midnight!(today() + Days::new(u64::from(days)));
}

/// A client certificate's parameters: `common_name`, the URI names that
/// carry its identity, client authentication only.
pub(super) fn client_params(common_name: &str, uris: &[String], days: u32) -> Result<CertificateParams, CertsError> {
    let mut client = CertificateParams::new(Vec::<String>::new())?;
    client.distinguished_name.push(DnType::CommonName, common_name);
    for uri in uris {
        let uri = rcgen::string::Ia5String::try_from(uri.as_str()).map_err(|_| CertsError::BadSan(uri.clone()))?;
        client.subject_alt_names.push(rcgen::SanType::URI(uri));
    }
    client.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    client.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    set_validity(&mut client, days);
    Ok(client)
}

/// A server certificate's parameters for `sans` (DNS names and addresses).
pub(super) fn server_params(sans: &[String], days: u32) -> Result<CertificateParams, CertsError> {
    for san in sans {
        if san.is_empty() || !san.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '*')) {
            return Err(CertsError::BadSan(san.clone()));
        }
    }
    let mut server = CertificateParams::new(sans.to_vec()).map_err(|_| CertsError::BadSan(sans.join(",")))?;
    server.distinguished_name.push(DnType::CommonName, "replicator server");
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    server.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    set_validity(&mut server, days);
    Ok(server)
}

fn generate(opts: &InitOptions) -> Result<Vec<(&'static str, String, bool)>, CertsError> {
    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.distinguished_name.push(DnType::CommonName, "replicator development CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages =
        vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    set_validity(&mut ca_params, opts.days);
    let ca = CertifiedIssuer::self_signed(ca_params, ca_key)?;

    let server_key = KeyPair::generate()?;
    let server_cert = server_params(&server_sans(&opts.sans), opts.days)?.signed_by(&server_key, &ca)?;

    // The development client is the operator: it may do everything.
    let operator = vec![format!("{}operator", super::IDENTITY_URI_PREFIX)];
    let client_key = KeyPair::generate()?;
    let client_cert = client_params("replicator client", &operator, opts.days)?.signed_by(&client_key, &ca)?;

    Ok(vec![
        (CA_CERT, ca.pem(), false),
        (CA_KEY, ca.key().serialize_pem(), true),
        (SERVER_CERT, server_cert.pem(), false),
        (SERVER_KEY, server_key.serialize_pem(), true),
        (CLIENT_CERT, client_cert.pem(), false),
        (CLIENT_KEY, client_key.serialize_pem(), true),
    ])
}

/// [`DEFAULT_SANS`] and every extra one, once each.
pub(super) fn server_sans(extra: &[String]) -> Vec<String> {
    let mut sans: Vec<String> = DEFAULT_SANS.iter().map(|s| s.to_string()).collect();
    for san in extra {
        if !sans.contains(san) {
            sans.push(san.clone());
        }
    }
    sans
}

/// Keys are created 0600 from the first byte, never chmod-ed after the fact.
pub(super) fn write_file(path: &Path, contents: &str, secret: bool) -> Result<(), CertsError> {
    let err = |source| CertsError::Write { path: path.to_owned(), source };
    let _ = std::fs::remove_file(path); // --force: a fresh file gets the right mode
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(if secret { 0o600 } else { 0o644 })
        .open(path)
        .map_err(err)?;
    file.write_all(contents.as_bytes()).map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::{self, TlsFiles};
    use std::os::unix::fs::PermissionsExt;

    fn opts(dir: &Path) -> InitOptions {
        InitOptions { out: dir.to_owned(), sans: vec!["replicator".into(), "10.1.2.3".into()], days: 30, force: false }
    }

    fn tempdir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("replicator-certs-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn writes_the_docker_layout_with_private_keys() {
        let dir = tempdir("layout");
        init(&opts(&dir)).unwrap();
        for file in ALL_FILES {
            let mode = std::fs::metadata(dir.join(file)).unwrap().permissions().mode() & 0o777;
            let secret = file.ends_with("key.pem");
            assert_eq!(mode, if secret { 0o600 } else { 0o644 }, "{file}");
        }
        // The pairs load as a server and a client of one another.
        tls::server_config(
            &TlsFiles { cert: dir.join(SERVER_CERT), key: dir.join(SERVER_KEY), ca: dir.join(CA_CERT) },
            None,
            None,
        )
        .unwrap();
        tls::client_config(&TlsFiles::client_in(&dir)).unwrap();
        let client = tls::load_certs("c", &dir.join(CLIENT_CERT)).unwrap();
        assert_eq!(tls::common_name(&client[0]).as_deref(), Some("replicator client"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn refuses_to_overwrite_without_force() {
        let dir = tempdir("force");
        init(&opts(&dir)).unwrap();
        let before = std::fs::read(dir.join(CA_CERT)).unwrap();
        assert!(matches!(init(&opts(&dir)), Err(CertsError::Exists(_))));
        assert_eq!(std::fs::read(dir.join(CA_CERT)).unwrap(), before);
        init(&InitOptions { force: true, ..opts(&dir) }).unwrap();
        assert_ne!(std::fs::read(dir.join(CA_CERT)).unwrap(), before);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn refuses_bad_sans_and_days_before_writing() {
        let dir = tempdir("bad");
        assert!(matches!(init(&InitOptions { sans: vec!["a b".into()], ..opts(&dir) }), Err(CertsError::BadSan(_))));
        assert!(matches!(init(&InitOptions { days: 0, ..opts(&dir) }), Err(CertsError::BadDays)));
        assert!(!dir.exists());
    }
}
