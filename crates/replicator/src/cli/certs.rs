//! `replicator certs init`.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use crate::tls::pki::{self, InitOptions};

#[derive(Debug, Subcommand)]
pub enum CertsCommand {
    /// Write a development CA, a server pair and a client pair (docker CLI layout).
    Init(InitArgs),
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Folder to write into (created if missing).
    #[arg(long, env = "REPLICATOR_CERTS_OUT", default_value = "./certs")]
    out: PathBuf,
    /// Extra name or IP address for the server certificate (repeatable).
    #[arg(long = "san", value_name = "NAME")]
    sans: Vec<String>,
    /// Validity in days.
    #[arg(long, default_value_t = 365)]
    days: u32,
    /// Overwrite existing files.
    #[arg(long)]
    force: bool,
}

pub fn run(cmd: CertsCommand) -> anyhow::Result<()> {
    let CertsCommand::Init(args) = cmd;
    let written = pki::init(&InitOptions { out: args.out, sans: args.sans, days: args.days, force: args.force })?;
    for path in written {
        println!("wrote {}", path.display());
    }
    Ok(())
}
