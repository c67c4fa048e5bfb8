//! Where the engine is and how to reach it, following the docker CLI:
//! `DOCKER_HOST`, `DOCKER_TLS_VERIFY`, `DOCKER_CERT_PATH`, the unix socket by default.

use std::path::PathBuf;
use std::time::Duration;

/// Where the engine listens when neither `--docker-host` nor `DOCKER_HOST` says otherwise.
pub const DEFAULT_SOCKET: &str = "/var/run/docker.sock";

/// The engine's address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EngineEndpoint {
    /// A unix socket (`unix://PATH`).
    Unix(PathBuf),
    /// A TCP address (`tcp://`, `http://` or `https://`); TLS only when `DOCKER_TLS_VERIFY` is set.
    Tcp {
        /// `host:port`.
        addr: String,
        /// Certificate folder (ca.pem, cert.pem, key.pem) when TLS is on.
        tls: Option<PathBuf>,
    },
}

/// Everything needed to connect to the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineSettings {
    /// How the engine is reached.
    pub endpoint: EngineEndpoint,
    /// Limit on each engine call (calls that wait on purpose, like stop, get more).
    pub timeout: Duration,
}

/// A setting that cannot describe a reachable engine.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid engine address {value:?}: {reason}")]
pub struct EndpointError {
    /// The address as given.
    pub value: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl EngineSettings {
    /// Reads the docker CLI's variables through `env`; `host_flag` (`--docker-host`) wins over `DOCKER_HOST`.
    pub fn resolve(
        host_flag: Option<&str>,
        env: impl Fn(&str) -> Option<String>,
        timeout: Duration,
    ) -> Result<Self, EndpointError> {
        let host = host_flag
            .map(str::to_owned)
            .or_else(|| env("DOCKER_HOST"))
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| format!("unix://{DEFAULT_SOCKET}"));
        let tls = env("DOCKER_TLS_VERIFY").is_some_and(|v| !v.is_empty() && v != "0");
        let cert_path = || {
            env("DOCKER_CERT_PATH")
                .filter(|p| !p.is_empty())
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(env("HOME").unwrap_or_default()).join(".docker"))
        };
        let endpoint = parse_host(&host, tls.then(cert_path))?;
        Ok(Self { endpoint, timeout })
    }
}

fn parse_host(host: &str, tls: Option<PathBuf>) -> Result<EngineEndpoint, EndpointError> {
    let err = |reason| EndpointError { value: host.to_owned(), reason };
    if let Some(path) = host.strip_prefix("unix://") {
        if path.is_empty() {
            return Err(err("the unix socket path is empty"));
        }
        return Ok(EngineEndpoint::Unix(PathBuf::from(path)));
    }
    let rest = host
        .strip_prefix("tcp://")
        .or_else(|| host.strip_prefix("https://"))
        .or_else(|| host.strip_prefix("http://"))
        .ok_or_else(|| err("expected unix://PATH or tcp://HOST:PORT"))?;
    let rest = rest.trim_end_matches('/');
    if rest.is_empty() || rest.contains('/') {
        return Err(err("expected tcp://HOST:PORT"));
    }
    let has_port = match rest.rsplit_once(':') {
        Some((h, p)) => !h.is_empty() && !h.ends_with(':') && p.parse::<u16>().is_ok(),
        None => false,
    };
    let addr = if has_port {
        rest.to_owned()
    } else if rest.contains(':') && !rest.starts_with('[') {
        return Err(err("the port is not a number"));
    } else {
        // The docker CLI's defaults: 2376 with TLS, 2375 without.
        format!("{rest}:{}", if tls.is_some() { 2376 } else { 2375 })
    };
    Ok(EngineEndpoint::Tcp { addr, tls })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn resolve(flag: Option<&str>, vars: &[(&str, &str)]) -> Result<EngineEndpoint, EndpointError> {
        let vars: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        EngineSettings::resolve(flag, |k| vars.get(k).cloned(), Duration::from_secs(1)).map(|s| s.endpoint)
    }

    #[test]
    fn defaults_to_the_unix_socket() {
        assert_eq!(resolve(None, &[]), Ok(EngineEndpoint::Unix(DEFAULT_SOCKET.into())));
        assert_eq!(resolve(None, &[("DOCKER_HOST", "")]), Ok(EngineEndpoint::Unix(DEFAULT_SOCKET.into())));
    }

    #[test]
    fn reads_docker_host_and_the_flag_wins() {
        assert_eq!(
            resolve(None, &[("DOCKER_HOST", "tcp://10.0.0.1:2375")]),
            Ok(EngineEndpoint::Tcp { addr: "10.0.0.1:2375".into(), tls: None })
        );
        assert_eq!(
            resolve(Some("unix:///tmp/d.sock"), &[("DOCKER_HOST", "tcp://10.0.0.1:2375")]),
            Ok(EngineEndpoint::Unix("/tmp/d.sock".into()))
        );
    }

    #[test]
    fn tls_follows_docker_tls_verify_like_the_cli() {
        let tls = |v: &str| match resolve(
            None,
            &[("DOCKER_HOST", "tcp://h:1"), ("DOCKER_TLS_VERIFY", v), ("DOCKER_CERT_PATH", "/c")],
        ) {
            Ok(EngineEndpoint::Tcp { tls, .. }) => tls,
            other => panic!("{other:?}"),
        };
        assert_eq!(tls("1"), Some("/c".into()));
        assert_eq!(tls("yes"), Some("/c".into()));
        assert_eq!(tls("0"), None);
        assert_eq!(tls(""), None);
    }

    #[test]
    fn cert_path_defaults_to_home_docker() {
        let got = resolve(None, &[("DOCKER_HOST", "tcp://h"), ("DOCKER_TLS_VERIFY", "1"), ("HOME", "/home/u")]);
        assert_eq!(got, Ok(EngineEndpoint::Tcp { addr: "h:2376".into(), tls: Some("/home/u/.docker".into()) }));
    }

    #[test]
    fn default_ports() {
        assert_eq!(resolve(Some("tcp://h"), &[]), Ok(EngineEndpoint::Tcp { addr: "h:2375".into(), tls: None }));
        assert_eq!(
            resolve(Some("tcp://[::1]:99"), &[]),
            Ok(EngineEndpoint::Tcp { addr: "[::1]:99".into(), tls: None })
        );
    }

    #[test]
    fn refuses_what_is_not_an_engine_address() {
        for bad in ["ssh://h", "unix://", "tcp://", "tcp://h:port", "tcp://h:1/x", "/var/run/docker.sock"] {
            assert!(resolve(Some(bad), &[]).is_err(), "{bad}");
        }
    }
}
