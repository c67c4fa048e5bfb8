//! `replicator completions`, `replicator man` and `replicator install-docs`:
//! shell completions and man pages generated from the command definitions
//! themselves (clap's), so they never fall behind a flag.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, CommandFactory};
use clap_complete::Shell;

use super::Cli;

/// The name completions complete and man pages are named after.
const BIN: &str = "replicator";

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell the script is for.
    #[arg(value_enum)]
    shell: Shell,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write one page per command and subcommand into this folder (replicator.1, replicator-serve.1, ...) instead of printing replicator(1).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct InstallDocsArgs {
    /// Where to install: man pages in PREFIX/share/man/man1, completions in PREFIX/share/{bash-completion/completions,zsh/site-functions,fish/vendor_completions.d} [default: /usr/local as root, else ~/.local].
    #[arg(long, value_name = "DIR")]
    prefix: Option<PathBuf>,
}

/// The command definitions, built: subcommands know their full names.
fn command() -> clap::Command {
    let mut cmd = Cli::command().bin_name(BIN);
    cmd.build();
    cmd
}

/// The same without the `help` subcommand, which needs no page.
fn man_command() -> clap::Command {
    let mut cmd = Cli::command().bin_name(BIN).disable_help_subcommand(true);
    cmd.build();
    cmd
}

/// The completion script for `shell`.
fn completion_script(shell: Shell) -> Vec<u8> {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command(), BIN, &mut script);
    script
}

/// `replicator completions SHELL`: the script on stdout.
pub fn completions(args: CompletionsArgs) -> anyhow::Result<()> {
    std::io::stdout().write_all(&completion_script(args.shell)).context("cannot write the script")
}

/// `replicator man [--out DIR]`.
pub fn man(args: ManArgs) -> anyhow::Result<()> {
    match args.out {
        Some(dir) => {
            for page in write_man_pages(&dir)? {
                println!("{}", page.display());
            }
            Ok(())
        }
        None => {
            let mut page = Vec::new();
            clap_mangen::Man::new(man_command()).render(&mut page)?;
            std::io::stdout().write_all(&page).context("cannot write the page")
        }
    }
}

/// One page per command and subcommand, top page first; the files written.
fn write_man_pages(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    fn pages(cmd: &clap::Command, out: &mut Vec<clap_mangen::Man>) {
        out.push(clap_mangen::Man::new(cmd.clone()));
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            pages(sub, out);
        }
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut all = Vec::new();
    pages(&man_command(), &mut all);
    all.iter()
        .map(|page| {
            page.generate_to(dir).with_context(|| format!("cannot write {} in {}", page.get_filename(), dir.display()))
        })
        .collect()
}

/// Where each shell looks for a command's completions under a prefix
/// (bash-completion, zsh's site-functions, fish's vendor completions).
const COMPLETION_FILES: &[(Shell, &str)] = &[
    (Shell::Bash, "share/bash-completion/completions/replicator"),
    (Shell::Zsh, "share/zsh/site-functions/_replicator"),
    (Shell::Fish, "share/fish/vendor_completions.d/replicator.fish"),
];

/// `replicator install-docs [--prefix DIR]`: man pages and the bash, zsh and
/// fish completions, each file named as it is written.
pub fn install_docs(args: InstallDocsArgs) -> anyhow::Result<()> {
    let prefix = match args.prefix {
        Some(prefix) => prefix,
        None => default_prefix()?,
    };
    for file in install(&prefix)? {
        println!("wrote {}", file.display());
    }
    if !matches!(prefix.to_str(), Some("/usr" | "/usr/local")) {
        println!(
            "zsh reads {} only if it is in $fpath (before compinit); man finds {} when {} is on $PATH, or with MANPATH",
            prefix.join("share/zsh/site-functions").display(),
            prefix.join("share/man").display(),
            prefix.join("bin").display()
        );
    }
    Ok(())
}

/// Writes everything under `prefix`; the files written.
fn install(prefix: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut written = write_man_pages(&prefix.join("share/man/man1"))?;
    for (shell, relative) in COMPLETION_FILES {
        let path = prefix.join(relative);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        }
        std::fs::write(&path, completion_script(*shell)).with_context(|| format!("cannot write {}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

/// `/usr/local` for root, else `~/.local` (where man, bash-completion and
/// fish look for a user's own).
fn default_prefix() -> anyhow::Result<PathBuf> {
    if effective_uid() == Some(0) {
        return Ok(PathBuf::from("/usr/local"));
    }
    let home = std::env::var_os("HOME").filter(|h| !h.is_empty()).context("no HOME: give --prefix")?;
    Ok(Path::new(&home).join(".local"))
}

/// The effective user id, from `/proc/self/status` (Linux); `None` elsewhere.
fn effective_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let uids = status.lines().find_map(|l| l.strip_prefix("Uid:"))?;
    uids.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bash_completion_knows_serve_and_its_flags() {
        let script = String::from_utf8(completion_script(Shell::Bash)).expect("utf-8");
        assert!(script.contains("serve"), "{script}");
        assert!(script.contains("--front-ports"), "{script}");
        assert!(script.contains("install-docs"), "{script}");
    }

    #[test]
    fn every_shell_has_a_script() {
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish, Shell::Elvish, Shell::PowerShell] {
            let script = String::from_utf8(completion_script(shell)).expect("utf-8");
            assert!(script.contains("max-replicas"), "{shell}: {script}");
        }
    }

    #[test]
    fn one_man_page_per_command_and_subcommand() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let pages = write_man_pages(dir.path()).expect("pages written");
        let names: Vec<String> = pages.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
        for name in ["replicator.1", "replicator-serve.1", "replicator-certs.1", "replicator-certs-init.1"] {
            assert!(names.iter().any(|n| n == name), "{name} not in {names:?}");
        }
        assert!(!names.iter().any(|n| n.contains("help")), "{names:?}");
        let serve = std::fs::read_to_string(dir.path().join("replicator-serve.1")).expect("serve's page");
        assert!(serve.contains("config"), "{serve}");
        assert!(serve.contains("REPLICATOR_CONFIG"), "{serve}");
        assert!(serve.contains("max\\-replicas"), "{serve}");
        let top = std::fs::read_to_string(dir.path().join("replicator.1")).expect("the top page");
        assert!(top.contains("replicator\\-serve(1)"), "{top}");
    }

    #[test]
    fn install_docs_writes_man_pages_and_completions_under_the_prefix() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let written = install(dir.path()).expect("installed");
        for relative in [
            "share/man/man1/replicator.1",
            "share/man/man1/replicator-serve.1",
            "share/bash-completion/completions/replicator",
            "share/zsh/site-functions/_replicator",
            "share/fish/vendor_completions.d/replicator.fish",
        ] {
            let path = dir.path().join(relative);
            assert!(written.contains(&path), "{relative} not in {written:?}");
            let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{relative}: {e}"));
            assert!(text.contains("serve"), "{relative}: {text}");
        }
        let zsh = std::fs::read_to_string(dir.path().join("share/zsh/site-functions/_replicator")).unwrap();
        assert!(zsh.starts_with("#compdef replicator"), "{zsh}");
    }
}
