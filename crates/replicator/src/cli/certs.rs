//! `replicator certs`: a development CA (`init`), bundles for identities
//! (`issue`, which also renews), and revocation (`revoke`).

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};

use crate::rules::access::Identity;
use crate::tls::authority::{self, IssueOptions, Subject};
use crate::tls::pki::{self, InitOptions};

#[derive(Debug, Subcommand)]
pub enum CertsCommand {
    /// Write a development CA, a server pair and an operator client pair (docker CLI layout).
    Init(InitArgs),
    /// Write a bundle (ca.pem, cert.pem, key.pem) for one identity, or a server bundle; never the CA's key.
    Issue(IssueArgs),
    /// Add a bundle's certificate to a revocation list (serve --crl), keeping what it already lists.
    Revoke(RevokeArgs),
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

#[derive(Debug, Args)]
pub struct IssueArgs {
    /// Who the bundle is for: operator, app:GROUP, balancer:NAME, agent:NODE_ID, alertmanager[:GROUP,...].
    #[arg(long, value_parser = Identity::parse, required_unless_present_any = ["server", "renew"], conflicts_with_all = ["server", "renew"])]
    identity: Option<Identity>,
    /// A server bundle (server-cert.pem, server-key.pem, ca.pem) instead of a client's.
    #[arg(long, conflicts_with = "renew")]
    server: bool,
    /// Extra name or IP address for a server bundle (repeatable).
    #[arg(long = "san", value_name = "NAME", requires = "server")]
    sans: Vec<String>,
    /// Issue the bundle in --out again, for the identity (or names) its certificate holds.
    #[arg(long)]
    renew: bool,
    /// The folder `certs init` wrote, with ca.pem and ca-key.pem.
    #[arg(long, env = "REPLICATOR_CA_DIR", default_value = "./certs")]
    ca: PathBuf,
    /// The bundle's folder (created if missing).
    #[arg(long)]
    out: PathBuf,
    /// Validity in days.
    #[arg(long, default_value_t = 365)]
    days: u32,
    /// Overwrite an existing bundle.
    #[arg(long)]
    force: bool,
    /// Make this client bundle the per-user default of the client commands
    /// and `docker replicator` (written to ~/.config/replicator/client.toml).
    #[arg(long, conflicts_with = "server")]
    make_default: bool,
    /// With --make-default: replicator's URL to keep beside it.
    #[arg(long = "default-server", value_name = "URL", requires = "make_default")]
    default_server: Option<String>,
}

#[derive(Debug, Args)]
pub struct RevokeArgs {
    /// The certificate to revoke (a bundle's cert.pem).
    cert: PathBuf,
    /// The folder `certs init` wrote, with ca.pem and ca-key.pem.
    #[arg(long, env = "REPLICATOR_CA_DIR", default_value = "./certs")]
    ca: PathBuf,
    /// The revocation list to add it to (created if missing); give it to serve --crl.
    #[arg(long)]
    crl: PathBuf,
    /// Days until the list must be issued again (clients are refused once it expires).
    #[arg(long, default_value_t = 30)]
    days: u32,
}

pub fn run(cmd: CertsCommand) -> anyhow::Result<()> {
    match cmd {
        CertsCommand::Init(args) => {
            let opts = InitOptions { out: args.out, sans: args.sans, days: args.days, force: args.force };
            print_written(pki::init(&opts)?);
        }
        CertsCommand::Issue(args) => {
            let subject = match (&args.identity, args.server, args.renew) {
                (Some(identity), ..) => Subject::Client { common_name: identity.to_string(), uris: identity.uris() },
                (None, true, _) => Subject::Server { sans: args.sans.clone() },
                (None, false, _) => authority::subject_of(&args.out)
                    .with_context(|| format!("cannot renew the bundle in {}", args.out.display()))?,
            };
            let force = args.force || args.renew;
            let out = args.out.clone();
            let opts = IssueOptions { ca_dir: args.ca, out: args.out, subject, days: args.days, force };
            print_written(authority::issue(&opts)?);
            if args.make_default {
                let certs = Some(std::path::absolute(&out).unwrap_or(out));
                let file =
                    super::user_config::save(super::user_config::UserConfig { server: args.default_server, certs })?;
                println!("the client commands now default to this bundle ({})", file.display());
            }
        }
        CertsCommand::Revoke(args) => {
            let serial = authority::revoke(&args.ca, &args.crl, &args.cert, args.days)?;
            println!(
                "revoked serial {serial} in {}: send serve SIGHUP (or wait a few seconds) to apply",
                args.crl.display()
            );
        }
    }
    Ok(())
}

fn print_written(paths: Vec<PathBuf>) {
    for path in paths {
        println!("wrote {}", path.display());
    }
}
