//! The same binary as a docker CLI plugin: installed as
//! `docker-replicator` in the docker CLI's `cli-plugins` folder, it answers
//! `docker-cli-plugin-metadata` and runs `docker replicator ARGS` as
//! `replicator ARGS` (docker passes the plugin's name first).

use std::ffi::OsString;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

/// The file name docker looks for.
pub const PLUGIN_FILE: &str = "docker-replicator";

/// What a start under the plugin's name asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Invocation {
    /// `docker-replicator docker-cli-plugin-metadata`: the plugin's metadata.
    Metadata,
    /// Run as the docker CLI's plugin: these are replicator's own arguments.
    Plugin(Vec<OsString>),
    /// Run as `replicator`.
    Direct(Vec<OsString>),
}

/// Tells how the binary was started from its arguments (the first one its name).
pub fn invocation(argv: Vec<OsString>) -> Invocation {
    let name = argv.first().map(PathBuf::from).and_then(|p| p.file_name().map(|n| n.to_owned()));
    if name.as_deref() != Some(std::ffi::OsStr::new(PLUGIN_FILE)) {
        return Invocation::Direct(argv);
    }
    match argv.get(1).and_then(|a| a.to_str()) {
        Some("docker-cli-plugin-metadata") => Invocation::Metadata,
        // docker runs `docker-replicator replicator ARGS`.
        Some("replicator") => {
            Invocation::Plugin([OsString::from("replicator")].into_iter().chain(argv.into_iter().skip(2)).collect())
        }
        _ => Invocation::Plugin([OsString::from("replicator")].into_iter().chain(argv.into_iter().skip(1)).collect()),
    }
}

/// The metadata docker reads (`SchemaVersion` 0.1.0).
pub fn metadata() -> String {
    serde_json::json!({
        "SchemaVersion": "0.1.0",
        "Vendor": "replicator",
        "Version": env!("CARGO_PKG_VERSION"),
        "ShortDescription": "Replicate containers and scale their groups",
    })
    .to_string()
}

/// `replicator install-plugin`: links this binary into the docker CLI's plugins.
#[derive(Debug, Args)]
pub struct InstallPluginArgs {
    /// The plugins folder (default: $DOCKER_CONFIG/cli-plugins, else ~/.docker/cli-plugins).
    #[arg(long)]
    dir: Option<PathBuf>,
}

/// The docker CLI's per-user plugins folder.
fn plugins_dir() -> anyhow::Result<PathBuf> {
    let config = match std::env::var_os("DOCKER_CONFIG") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(std::env::var_os("HOME").context("no HOME: give --dir")?).join(".docker"),
    };
    Ok(config.join("cli-plugins"))
}

/// Links (replacing an older link) `docker-replicator` to this binary.
pub fn install(args: InstallPluginArgs) -> anyhow::Result<()> {
    let dir = match args.dir {
        Some(dir) => dir,
        None => plugins_dir()?,
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let exe = std::env::current_exe().context("cannot tell where this binary is")?;
    let exe = exe.canonicalize().unwrap_or(exe);
    let link = dir.join(PLUGIN_FILE);
    match std::fs::remove_file(&link) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(e).with_context(|| format!("cannot replace {}", link.display()))
        }
        _ => {}
    }
    std::os::unix::fs::symlink(&exe, &link).with_context(|| format!("cannot link {}", link.display()))?;
    println!("{} -> {}", link.display(), exe.display());
    println!("docker replicator --help");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<OsString> {
        list.iter().map(OsString::from).collect()
    }

    #[test]
    fn under_the_plugins_name_the_metadata_or_replicators_own_arguments() {
        assert_eq!(invocation(args(&["/p/docker-replicator", "docker-cli-plugin-metadata"])), Invocation::Metadata);
        assert_eq!(
            invocation(args(&["/p/docker-replicator", "replicator", "groups", "-q"])),
            Invocation::Plugin(args(&["replicator", "groups", "-q"]))
        );
        assert_eq!(
            invocation(args(&["/usr/bin/replicator", "groups"])),
            Invocation::Direct(args(&["/usr/bin/replicator", "groups"]))
        );
        let meta: serde_json::Value = serde_json::from_str(&metadata()).unwrap();
        assert_eq!(meta["SchemaVersion"], "0.1.0");
    }
}
