//! Per-user defaults for the client commands (`groups`, `scale`, `events`,
//! `docker replicator …`): where replicator answers and which certificate
//! bundle to use, in `$XDG_CONFIG_HOME/replicator/client.toml` (else
//! `~/.config/replicator/client.toml`; `REPLICATOR_CLIENT_CONFIG` names
//! another file). Flags and environment variables win over it. `certs issue
//! --make-default` fills it in.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

/// What the file may hold.
#[derive(Debug, Default, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    /// replicator's URL (`https://HOST:PORT`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// The bundle folder (ca.pem, cert.pem, key.pem).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certs: Option<PathBuf>,
}

/// Where the file is, when a home or config folder is known.
pub fn path() -> Option<PathBuf> {
    if let Some(file) = std::env::var_os("REPLICATOR_CLIENT_CONFIG") {
        return Some(file.into());
    }
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".config")))?;
    Some(base.join("replicator").join("client.toml"))
}

/// The defaults; none when there is no file. A file that cannot be read
/// or holds an unknown key is an error naming it.
pub fn load() -> anyhow::Result<UserConfig> {
    let Some(file) = path() else { return Ok(UserConfig::default()) };
    match std::fs::read_to_string(&file) {
        Ok(text) => toml::from_str(&text).with_context(|| format!("{} is not a client configuration", file.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(UserConfig::default()),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", file.display())),
    }
}

/// Merges `update` into the file (creating it); returns its path.
pub fn save(update: UserConfig) -> anyhow::Result<PathBuf> {
    let file = path().context("no home folder: set HOME or REPLICATOR_CLIENT_CONFIG")?;
    let mut config = load()?;
    config.server = update.server.or(config.server);
    config.certs = update.certs.or(config.certs);
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let text = toml::to_string(&config).context("cannot write the client configuration")?;
    std::fs::write(&file, text).with_context(|| format!("cannot write {}", file.display()))?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_holds_a_server_and_a_bundle_and_nothing_else() {
        let read: UserConfig = toml::from_str("server = \"https://r:8443\"\ncerts = \"/b\"\n").unwrap();
        assert_eq!(read, UserConfig { server: Some("https://r:8443".into()), certs: Some("/b".into()) });
        let unknown = toml::from_str::<UserConfig>("serve = \"x\"").unwrap_err().to_string();
        assert!(unknown.contains("serve"), "{unknown}");
    }
}
